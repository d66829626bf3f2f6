//! CloudTrail Lake's SQL as users write it, turned into a statement DataFusion plans.
//!
//! CloudTrail Lake runs Trino SQL over `FROM <event data store id>`. Three things differ from what
//! DataFusion accepts as is, and each has one step here:
//!
//! 1. **Bare store ids and ARNs after `FROM` / `JOIN`.** `ec682140-3e75-…` tokenizes as a
//!    subtraction and an id may start with a digit, so before parsing, [`quote_tables`] wraps an id
//!    (five or more dash-joined alphanumeric runs) or an event data store ARN in double quotes, as
//!    the lower-case store id. It skips string literals, quoted identifiers and comments.
//! 2. **Only one SELECT.** [`parse`] refuses anything but a single query (no `INSERT`, `CREATE`,
//!    `COPY`, `SET`, `EXPLAIN`, `SELECT … INTO`, several statements), naming what it found;
//!    planning is checked again with DataFusion's `SQLOptions`.
//! 3. **Case-insensitive names.** Trino folds identifiers, so `eventdata.useridentity.principalid`
//!    and `eventData.userIdentity.principalId` are one column. The rewrite resolves every column
//!    path against the store schema ignoring case and quotes each part in the schema's own case.
//!    A map column's subscript (`eventData.requestParameters['ruleId']`) becomes
//!    `element_at(…, 'ruleId')` (see `functions`), and an unnamed select item is named as Trino
//!    names it: a column path by its last field (`eventName`), anything else `_col<position>`.
//!    `element_at(eventData.requestParameters, '<key>')` of a key the catalog declares, with a
//!    literal key, becomes that key's parameter column (`columnar::params`).
//!
//! Known gap: a select alias equal to a top-level column name, ignoring case, is read as that
//! column where it is referenced again (`ORDER BY eventid` after `count(*) AS eventID`).

use std::{collections::HashSet, ops::ControlFlow};

use datafusion::{
    arrow::datatypes::{DataType, Fields},
    sql::{
        parser::{DFParser, Statement as DfStatement},
        sqlparser::{
            ast::{
                AccessExpr, BinaryOperator, CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
                Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement, Subscript, Value, VisitMut,
                VisitorMut, helpers::attached_token::AttachedToken,
            },
            dialect::GenericDialect,
            parser::Parser,
        },
    },
};

use super::super::columnar::{JSON_FIELDS, params, schema};

/// Why a statement is refused, in words for the person who wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// A statement ready to plan, and the tables it names.
#[derive(Debug)]
pub struct Prepared {
    /// The rewritten statement.
    pub statement: DfStatement,
    /// Table names it reads (lower-case), CTE names excluded.
    pub tables: Vec<String>,
}

/// Parses, checks and rewrites one CloudTrail Lake query.
pub fn parse(sql: &str) -> Result<Prepared, Refused> {
    let text = quote_tables(sql);
    let mut statements = DFParser::parse_sql_with_dialect(&text, &GenericDialect {}).map_err(|e| {
        let first = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        if ["SELECT", "WITH", "(", "VALUES"].iter().any(|k| first.starts_with(k)) {
            Refused(format!("The query could not be parsed: {}", clean_error(&e.to_string())))
        } else {
            Refused(format!("Only SELECT statements are allowed; found {}.", first_words(&text)))
        }
    })?;
    if statements.len() != 1 {
        return Err(Refused(format!(
            "A query is one SELECT statement; found {} statements. Remove the extra ones.",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    let DfStatement::Statement(inner) = statement else {
        return Err(Refused(format!("Only SELECT statements are allowed; found {}.", first_words(&text))));
    };
    let mut inner = *inner;
    let Statement::Query(query) = &mut inner else {
        return Err(Refused(format!("Only SELECT statements are allowed; found {}.", first_words(&text))));
    };
    let mut rewrite = Rewrite::default();
    if let ControlFlow::Break(refused) = query.visit(&mut rewrite) {
        return Err(refused);
    }
    let tables = rewrite.tables.into_iter().filter(|t| !rewrite.ctes.contains(t)).collect();
    Ok(Prepared { statement: DfStatement::Statement(Box::new(inner)), tables })
}

/// The statement's first two words, upper-cased, to name what was refused.
fn first_words(sql: &str) -> String {
    let words: Vec<String> = sql.split_whitespace().take(2).map(str::to_uppercase).collect();
    if words.is_empty() { "nothing".into() } else { format!("'{}'", words.join(" ")) }
}

fn clean_error(message: &str) -> String {
    message.trim_start_matches("SQL error: ").trim_start_matches("ParserError(\"").trim_end_matches("\")").to_owned()
}

/// Quotes bare event data store ids and ARNs that follow `FROM` or `JOIN` (see the module).
pub fn quote_tables(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut previous_word = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        // Literals, quoted names and comments pass through untouched.
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let skip_to = match c {
            // `E'…'`: a string whose backslashes escape (`\'` does not end it).
            b'E' | b'e' if starts_word && bytes.get(i + 1) == Some(&b'\'') => Some(end_of_escaped(bytes, i + 1)),
            // `$$…$$` or `$tag$…$tag$`: a dollar-quoted string.
            b'$' => end_of_dollar_quoted(sql, i),
            b'\'' | b'"' | b'`' => Some(end_of_quoted(bytes, i, c)),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                Some(bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p))
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                Some(sql[i + 2..].find("*/").map_or(bytes.len(), |p| i + 2 + p + 2))
            }
            _ => None,
        };
        if let Some(end) = skip_to {
            out.push_str(&sql[i..end]);
            previous_word.clear();
            i = end;
            continue;
        }
        if c.is_ascii_alphanumeric() || c == b'_' {
            let end = i + bytes[i..]
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b"_-:/.".contains(&b)))
                .unwrap_or(bytes.len() - i);
            let token = &sql[i..end];
            let after_from = previous_word.eq_ignore_ascii_case("from") || previous_word.eq_ignore_ascii_case("join");
            let after_comma = previous_word == ",";
            if let Some(id) = table_id(token).filter(|id| after_from || (after_comma && is_uuid(id))) {
                out.push('"');
                out.push_str(&id);
                out.push('"');
                previous_word.clear();
                i = end;
                continue;
            }
            // An ordinary word: copy its plain part only, so `a.b` or `x-1` keep their meaning.
            let word_end = i + bytes[i..]
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))
                .unwrap_or(bytes.len() - i);
            out.push_str(&sql[i..word_end]);
            previous_word = sql[i..word_end].to_owned();
            i = word_end;
            continue;
        }
        if c == b',' {
            previous_word = ",".into();
        } else if !c.is_ascii_whitespace() {
            previous_word.clear();
        }
        let ch = sql[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The end of an `E'…'` string whose opening quote is at `start`: a backslash escapes the next
/// byte, a doubled quote is a quote.
fn end_of_escaped(bytes: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'\'' if bytes.get(j + 1) == Some(&b'\'') => j += 2,
            b'\'' => return j + 1,
            _ => j += 1,
        }
    }
    bytes.len()
}

/// The end of a dollar-quoted string starting at `start` (`$$…$$`, `$tag$…$tag$`, a tag being a
/// letter or `_` then letters, digits or `_`), or `None` when no such string starts there (`$1`).
fn end_of_dollar_quoted(sql: &str, start: usize) -> Option<usize> {
    let rest = &sql[start + 1..];
    let tag_len = rest.find('$')?;
    let tag = &rest[..tag_len];
    let valid = tag.is_empty()
        || (tag.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !valid {
        return None;
    }
    let delimiter = &sql[start..start + tag_len + 2];
    let body = start + delimiter.len();
    Some(sql[body..].find(delimiter).map_or(sql.len(), |at| body + at + delimiter.len()))
}

fn end_of_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut j = start + 1;
    while j < bytes.len() {
        if bytes[j] == quote {
            if bytes.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    bytes.len()
}

/// The store id a bare table token names: an id of five or more dash-joined alphanumeric runs, or
/// an event data store ARN.
fn table_id(token: &str) -> Option<String> {
    let id = match token.strip_prefix("arn:") {
        Some(_) => token.rsplit_once(":eventdatastore/")?.1,
        None => token,
    };
    let parts: Vec<&str> = id.split('-').collect();
    let shaped =
        parts.len() >= 5 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    shaped.then(|| id.to_ascii_lowercase())
}

/// Whether `id` has a UUID's shape (8-4-4-4-12), the only bare table name accepted after a
/// comma (`FROM a, b`), where an arithmetic expression could also stand.
fn is_uuid(id: &str) -> bool {
    let lengths: Vec<usize> = id.split('-').map(str::len).collect();
    lengths == [8, 4, 4, 4, 12]
}

/// The rewrite of names (see the module); also collects table and CTE names.
#[derive(Default)]
struct Rewrite {
    tables: Vec<String>,
    ctes: HashSet<String>,
    /// Output names given to select items, to resolve later references to them.
    aliases: Vec<String>,
}

impl VisitorMut for Rewrite {
    type Break = Refused;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<Refused> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        self.name_select_items(&mut query.body)
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<Refused> {
        let name = relation
            .0
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(ident) => ident.value.to_lowercase(),
                ObjectNamePart::Function(f) => f.name.value.to_lowercase(),
            })
            .collect::<Vec<_>>()
            .join(".");
        self.tables.push(name);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Refused> {
        if let Some(rewritten) = self.resolve(expr) {
            *expr = rewritten;
        } else if let Some(column) = element_at_call(expr).and_then(|(map, key)| parameter_column(map, key)) {
            *expr = column;
        } else if let Some(rewritten) = trino_if(expr) {
            match rewritten {
                Ok(rewritten) => *expr = rewritten,
                Err(refused) => return ControlFlow::Break(refused),
            }
        } else if let Some(rewritten) = approx_percentile(expr) {
            match rewritten {
                Ok(rewritten) => *expr = rewritten,
                Err(refused) => return ControlFlow::Break(refused),
            }
        } else if let Expr::BinaryOp { op: BinaryOperator::StringConcat, left, right } = expr {
            // `a || b` as a function, whose calls are bounded like every function's (`bounds`).
            let (left, right) = (
                std::mem::replace(&mut **left, Expr::value(Value::Null)),
                std::mem::replace(&mut **right, Expr::value(Value::Null)),
            );
            *expr = call(super::bounds::ConcatOp::NAME, left, right);
        }
        ControlFlow::Continue(())
    }
}

impl Rewrite {
    /// Refuses `SELECT … INTO` and names unnamed select items (of every SELECT in a set operation).
    fn name_select_items(&mut self, body: &mut SetExpr) -> ControlFlow<Refused> {
        match body {
            SetExpr::Select(select) => {
                if select.into.is_some() {
                    return ControlFlow::Break(Refused(
                        "Only SELECT statements are allowed; SELECT … INTO creates a table.".into(),
                    ));
                }
                let mut used: HashSet<String> = select
                    .projection
                    .iter()
                    .filter_map(|item| match item {
                        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
                        _ => None,
                    })
                    .collect();
                for (position, item) in select.projection.iter_mut().enumerate() {
                    let SelectItem::UnnamedExpr(expr) = item else { continue };
                    let name = match column_path(expr) {
                        // A subscript or field access past the path is an expression (`m['k']`).
                        Some((_, rest)) if !rest.is_empty() => format!("_col{position}"),
                        Some((parts, _)) => {
                            let resolved = resolve_path(&parts);
                            match resolved {
                                Some(path) if !path.names.is_empty() => path.names.last().expect("not empty").clone(),
                                _ => continue, // not a column of ours: leave DataFusion's name
                            }
                        }
                        None => format!("_col{position}"),
                    };
                    if !used.insert(name.to_lowercase()) {
                        continue;
                    }
                    self.aliases.push(name.clone());
                    *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::with_quote('"', name) };
                }
                ControlFlow::Continue(())
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.name_select_items(left)?;
                self.name_select_items(right)
            }
            SetExpr::Query(query) => self.name_select_items(&mut query.body),
            _ => ControlFlow::Continue(()),
        }
    }

    /// The rewritten form of a column reference, if `expr` is one.
    fn resolve(&self, expr: &Expr) -> Option<Expr> {
        let (parts, rest) = column_path(expr)?;
        let Some(path) = resolve_path(&parts) else {
            // Not a column: maybe a reference to a select item's name, in another case.
            if let [only] = parts.as_slice()
                && only.quote_style.is_none()
            {
                let alias = self.aliases.iter().find(|a| a.eq_ignore_ascii_case(&only.value))?;
                return Some(Expr::Identifier(Ident::with_quote('"', alias.clone())));
            }
            return None;
        };
        let mut idents: Vec<Ident> = parts[..path.qualifier].to_vec();
        idents.extend(path.names.iter().map(|n| Ident::with_quote('"', n.clone())));
        let mut out = if idents.len() == 1 {
            Expr::Identifier(idents.pop().expect("one"))
        } else {
            Expr::CompoundIdentifier(idents)
        };
        let mut rest = rest.into_iter().peekable();
        if path.json {
            // A map column's subscripts: element_at for each key.
            while let Some(AccessExpr::Subscript(Subscript::Index { index })) = rest.peek() {
                out = element_at(out, index.clone());
                rest.next();
            }
        }
        let rest: Vec<AccessExpr> = rest.collect();
        if !rest.is_empty() {
            out = Expr::CompoundFieldAccess { root: Box::new(out), access_chain: rest };
        }
        Some(out)
    }
}

/// A column path: the identifiers of `a.b.c` (or of the root and leading `.x` parts of a field
/// access), and the access operations after them.
fn column_path(expr: &Expr) -> Option<(Vec<Ident>, Vec<AccessExpr>)> {
    match expr {
        Expr::Identifier(ident) => Some((vec![ident.clone()], vec![])),
        Expr::CompoundIdentifier(idents) => Some((idents.clone(), vec![])),
        Expr::CompoundFieldAccess { root, access_chain } => {
            let (mut parts, _) = column_path(root)?;
            let mut chain = access_chain.iter().peekable();
            while let Some(AccessExpr::Dot(Expr::Identifier(ident))) = chain.peek() {
                parts.push(ident.clone());
                chain.next();
            }
            Some((parts, chain.cloned().collect()))
        }
        _ => None,
    }
}

/// A path resolved against the schema.
struct Resolved {
    /// How many leading parts are a table name or alias (0 or 1).
    qualifier: usize,
    /// The path's names in the schema's case; parts past the deepest match are kept as written.
    names: Vec<String>,
    /// Whether the path ends at a JSON map column.
    json: bool,
}

fn resolve_path(parts: &[Ident]) -> Option<Resolved> {
    let top = schema();
    let top_fields = top.fields();
    let find = |fields: &Fields, name: &Ident| {
        fields
            .iter()
            .find(|f| {
                if name.quote_style.is_some() {
                    f.name() == &name.value
                } else {
                    f.name().eq_ignore_ascii_case(&name.value)
                }
            })
            .cloned()
    };
    let qualifier = match find(top_fields, parts.first()?) {
        Some(_) => 0,
        None if parts.len() > 1 && find(top_fields, &parts[1]).is_some() => 1,
        None => return None,
    };
    let mut names = Vec::new();
    let mut fields = top_fields.clone();
    let mut json = false;
    for (i, part) in parts[qualifier..].iter().enumerate() {
        let field = match find(&fields, part) {
            Some(field) => field,
            None if i > 0 => {
                // Past a leaf, or a field that does not exist: keep the rest as written and let
                // the planner report it.
                names.extend(parts[qualifier + i..].iter().map(|p| p.value.clone()));
                json = false;
                break;
            }
            None => return None,
        };
        names.push(field.name().clone());
        json = JSON_FIELDS.contains(&field.name().as_str()) && *field.data_type() == DataType::Utf8;
        match field.data_type() {
            DataType::Struct(children) => fields = children.clone(),
            _ => fields = Fields::empty(),
        }
    }
    Some(Resolved { qualifier, names, json })
}

/// `element_at(map, key)`, or the key's parameter column where it has one.
fn element_at(map: Expr, key: Expr) -> Expr {
    parameter_column(&map, &key).unwrap_or_else(|| call("element_at", map, key))
}

/// The arguments of a call `element_at(map, key)`.
fn element_at_call(expr: &Expr) -> Option<(&Expr, &Expr)> {
    let (function, args) = plain_call(expr, "element_at")?;
    if function.filter.is_some() || function.over.is_some() {
        return None;
    }
    match args?.as_slice() {
        [map, key] => Some((map, key)),
        _ => None,
    }
}

/// `<qualifier>.eventData."$rp:<key>"` for `element_at(<qualifier>.eventData.requestParameters,
/// '<key>')` (the map path already resolved) when the catalog declares `key`: the column holds
/// what that call answers, and reading it costs a fraction of parsing each row's JSON text (see
/// `columnar::params`).
fn parameter_column(map: &Expr, key: &Expr) -> Option<Expr> {
    let Expr::CompoundIdentifier(idents) = map else { return None };
    let (path, qualifier) = match idents.as_slice() {
        [q, a, b] => ([a, b], Some(q)),
        [a, b] => ([a, b], None),
        _ => return None,
    };
    let resolved = |ident: &Ident, name: &str| ident.value == name && ident.quote_style == Some('"');
    if !resolved(path[0], "eventData") || !resolved(path[1], "requestParameters") {
        return None;
    }
    let Expr::Value(value) = key else { return None };
    let Value::SingleQuotedString(key) = &value.value else { return None };
    params::keys().binary_search(key).ok()?;
    let mut out: Vec<Ident> = qualifier.into_iter().cloned().collect();
    out.extend([Ident::with_quote('"', "eventData"), Ident::with_quote('"', params::column(key))]);
    Some(Expr::CompoundIdentifier(out))
}

/// A call of `name` (without WITHIN GROUP) and its arguments: `None` for the arguments when one
/// is not a plain unnamed expression, or the list has DISTINCT or clauses of its own.
fn plain_call<'e>(expr: &'e Expr, name: &str) -> Option<(&'e Function, Option<Vec<&'e Expr>>)> {
    let Expr::Function(function) = expr else { return None };
    let [ObjectNamePart::Identifier(called)] = function.name.0.as_slice() else { return None };
    if !called.value.eq_ignore_ascii_case(name) || !function.within_group.is_empty() {
        return None;
    }
    let FunctionArguments::List(list) = &function.args else { return None };
    let args: Vec<&Expr> = list
        .args
        .iter()
        .filter_map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect();
    let plain = args.len() == list.args.len() && list.duplicate_treatment.is_none() && list.clauses.is_empty();
    Some((function, plain.then_some(args)))
}

/// Trino's `if(condition, value[, otherwise])` as `CASE WHEN condition THEN value [ELSE otherwise]
/// END`.
fn trino_if(expr: &Expr) -> Option<Result<Expr, Refused>> {
    let (function, args) = plain_call(expr, "if")?;
    if function.filter.is_some() || function.over.is_some() {
        return None;
    }
    let (condition, value, otherwise) = match args.as_deref() {
        Some([condition, value]) => (*condition, *value, None),
        Some([condition, value, otherwise]) => (*condition, *value, Some(*otherwise)),
        _ => return Some(Err(Refused("if takes (condition, value) or (condition, value, otherwise).".into()))),
    };
    Some(Ok(Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen { condition: condition.clone(), result: value.clone() }],
        else_result: otherwise.map(|e| Box::new(e.clone())),
    }))
}

/// Trino's `approx_percentile(x, p)` and `approx_percentile(x, w, p)` as DataFusion spells them:
/// `approx_percentile_cont(p) WITHIN GROUP (ORDER BY x)` and
/// `approx_percentile_cont_with_weight(w, p) WITHIN GROUP (ORDER BY x)`. `None` for any other
/// expression; refused for the forms DataFusion has no counterpart of (an array of percentiles).
fn approx_percentile(expr: &Expr) -> Option<Result<Expr, Refused>> {
    let forms =
        || Some(Err(Refused("approx_percentile takes (value, percentage) or (value, weight, percentage).".into())));
    let (function, Some(args)) = plain_call(expr, "approx_percentile")? else {
        return forms();
    };
    let (value, rest, template) = match args.as_slice() {
        [value, percentile] => (*value, vec![*percentile], "approx_percentile_cont(p) WITHIN GROUP (ORDER BY x)"),
        [value, weight, percentile] => {
            (*value, vec![*weight, *percentile], "approx_percentile_cont_with_weight(w, p) WITHIN GROUP (ORDER BY x)")
        }
        _ => return forms(),
    };
    if rest.last().is_some_and(|p| matches!(p, Expr::Array(_))) {
        return Some(Err(Refused(
            "approx_percentile with an array of percentages is not supported; call it once for each percentage.".into(),
        )));
    }
    let mut call = Parser::new(&GenericDialect {})
        .try_with_sql(template)
        .and_then(|mut p| p.parse_expr())
        .expect("a valid template");
    if let Expr::Function(rewritten) = &mut call
        && let FunctionArguments::List(list) = &mut rewritten.args
        && let Some(order) = rewritten.within_group.first_mut()
    {
        list.args = rest.into_iter().map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e.clone()))).collect();
        order.expr = value.clone();
        rewritten.filter.clone_from(&function.filter);
        rewritten.over.clone_from(&function.over);
    }
    Some(Ok(call))
}

/// `name(first, second)`, built from a parsed template so every field of the call is valid.
fn call(name: &str, first: Expr, second: Expr) -> Expr {
    let mut call = Parser::new(&GenericDialect {})
        .try_with_sql(&format!("{name}(a, b)"))
        .and_then(|mut p| p.parse_expr())
        .expect("a valid template");
    if let Expr::Function(function) = &mut call
        && let FunctionArguments::List(list) = &mut function.args
    {
        list.args = vec![
            FunctionArg::Unnamed(FunctionArgExpr::Expr(first)),
            FunctionArg::Unnamed(FunctionArgExpr::Expr(second)),
        ];
    }
    call
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(statement: &str) -> String {
        match parse(statement).unwrap().statement {
            DfStatement::Statement(s) => s.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bare_ids_and_arns_are_quoted_after_from_and_join() {
        assert_eq!(
            quote_tables("SELECT eventID FROM EC682140-3e75-40c0-8e04-f06207791c2e LIMIT 10"),
            r#"SELECT eventID FROM "ec682140-3e75-40c0-8e04-f06207791c2e" LIMIT 10"#
        );
        assert_eq!(
            quote_tables(
                "select 1 from arn:aws:cloudtrail:us-east-1:123456789012:eventdatastore/12345678-90ab-cdef-1234-567890abcdef e"
            ),
            r#"select 1 from "12345678-90ab-cdef-1234-567890abcdef" e"#
        );
        // Not after FROM, inside literals or comments: untouched.
        let untouched = "SELECT 'FROM a-b-c-d-e' -- from a-b-c-d-e\n, x-1 FROM t";
        assert_eq!(quote_tables(untouched), untouched);
        for untouched in [
            "SELECT $$ FROM a-b-c-d-e $$ FROM t",
            "SELECT $q$ FROM a-b-c-d-e $q$, $$x$$ FROM t",
            "SELECT E'it\\'s FROM a-b-c-d-e' FROM t",
            "SELECT e'\\\\' , 'FROM a-b-c-d-e' FROM t",
        ] {
            assert_eq!(quote_tables(untouched), untouched);
        }
        // A word ending in E before a quote is not an escape string; `$1` is not a dollar quote.
        assert_eq!(quote_tables("SELECT name'x' FROM a-b-c-d-e"), r#"SELECT name'x' FROM "a-b-c-d-e""#);
        assert_eq!(quote_tables("SELECT $1 FROM a-b-c-d-e"), r#"SELECT $1 FROM "a-b-c-d-e""#);
        // After a comma only a UUID-shaped name is a table; elsewhere it stays arithmetic.
        assert_eq!(
            quote_tables(
                "SELECT x, 1-2-3-4-5 FROM 12345678-90ab-cdef-1234-567890abcdef a, 12345678-90ab-cdef-1234-567890abcde0 b"
            ),
            r#"SELECT x, 1-2-3-4-5 FROM "12345678-90ab-cdef-1234-567890abcdef" a, "12345678-90ab-cdef-1234-567890abcde0" b"#
        );
        assert_eq!(
            quote_tables("SELECT * FROM a1-b-c-d-e UNION ALL SELECT * FROM (SELECT 1) JOIN f-g-h-i-j ON true"),
            r#"SELECT * FROM "a1-b-c-d-e" UNION ALL SELECT * FROM (SELECT 1) JOIN "f-g-h-i-j" ON true"#
        );
    }

    #[test]
    fn names_resolve_ignoring_case_and_items_are_named_as_trino_names_them() {
        assert_eq!(
            sql("SELECT eventdata.useridentity.principalid, count(*) FROM a-b-c-d-e GROUP BY 1"),
            r#"SELECT "eventData"."userIdentity"."principalId" AS "principalId", count(*) AS "_col1" FROM "a-b-c-d-e" GROUP BY 1"#
        );
        assert_eq!(
            sql("SELECT e.EVENTDATA.eventName AS n FROM a-b-c-d-e e WHERE EventTime > '2022-01-01 00:00:00'"),
            r#"SELECT e."eventData"."eventName" AS n FROM "a-b-c-d-e" e WHERE "eventTime" > '2022-01-01 00:00:00'"#
        );
    }

    #[test]
    fn trinos_if_becomes_a_case() {
        assert_eq!(
            sql("SELECT if(eventTime > now(), 'future', 'past') AS w, IF(eventID = 'x', 1) AS o FROM a-b-c-d-e"),
            r#"SELECT CASE WHEN "eventTime" > now() THEN 'future' ELSE 'past' END AS w, CASE WHEN "eventID" = 'x' THEN 1 END AS o FROM "a-b-c-d-e""#
        );
        let message = parse("SELECT if(true) FROM a-b-c-d-e").unwrap_err().0;
        assert!(message.contains("if takes (condition, value)"), "{message}");
    }

    #[test]
    fn approx_percentile_is_spelled_as_datafusion_spells_it() {
        assert_eq!(
            sql("SELECT approx_percentile(n, 0.9) AS p, APPROX_PERCENTILE(n, w, 0.5) AS q FROM a-b-c-d-e"),
            r#"SELECT approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY n) AS p, approx_percentile_cont_with_weight(w, 0.5) WITHIN GROUP (ORDER BY n) AS q FROM "a-b-c-d-e""#
        );
        for (statement, refused) in [
            ("SELECT approx_percentile(n, ARRAY[0.5, 0.9]) FROM a-b-c-d-e", "once for each percentage"),
            ("SELECT approx_percentile(n) FROM a-b-c-d-e", "takes (value, percentage)"),
        ] {
            let message = parse(statement).unwrap_err().0;
            assert!(message.contains(refused), "{statement}: {message}");
        }
    }

    #[test]
    fn map_subscripts_become_element_at() {
        assert_eq!(
            sql("SELECT eventData.requestParameters['noSuchKey'] AS r FROM a-b-c-d-e"),
            r#"SELECT element_at("eventData"."requestParameters", 'noSuchKey') AS r FROM "a-b-c-d-e""#
        );
    }

    /// A catalog key of `requestParameters`, named with a literal, is read from its column;
    /// anything else (another key, a key from a column, another map) stays a call.
    #[test]
    fn a_catalog_key_reads_its_parameter_column() {
        assert_eq!(
            sql(
                "SELECT element_at(eventdata.requestparameters, 'ruleId') AS r, eventData.requestParameters['ruleName'] \
                 FROM a-b-c-d-e WHERE ELEMENT_AT(eventData.requestParameters, 'resourceType') = 'EC2'"
            ),
            r#"SELECT "eventData"."$rp:ruleId" AS r, "eventData"."$rp:ruleName" AS "_col1" FROM "a-b-c-d-e" WHERE "eventData"."$rp:resourceType" = 'EC2'"#
        );
        assert_eq!(
            sql("SELECT element_at(t.eventData.requestParameters, 'ruleId') AS r FROM a-b-c-d-e t"),
            r#"SELECT t."eventData"."$rp:ruleId" AS r FROM "a-b-c-d-e" t"#
        );
        for kept in [
            "element_at(\"eventData\".\"requestParameters\", 'noSuchKey')",
            "element_at(\"eventData\".\"requestParameters\", \"eventData\".\"eventName\")",
            "element_at(\"eventData\".\"responseElements\", 'ruleId')",
            "element_at(\"eventData\".\"userIdentity\".\"details\", 'ruleId')",
        ] {
            assert_eq!(
                sql(&format!("SELECT {kept} AS v FROM a-b-c-d-e")),
                format!(r#"SELECT {kept} AS v FROM "a-b-c-d-e""#)
            );
        }
    }

    #[test]
    fn only_one_select_is_accepted() {
        for statement in [
            "INSERT INTO t VALUES (1)",
            "DROP TABLE t",
            "CREATE TABLE x AS SELECT 1",
            "SELECT 1; DROP TABLE t",
            "SELECT * INTO x FROM t",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "COPY t TO '/tmp/x'",
            "SET datafusion.execution.batch_size = 1",
            "EXPLAIN SELECT 1",
            "DELETE FROM t",
        ] {
            let refused = parse(statement).unwrap_err();
            assert!(refused.0.contains("SELECT") || refused.0.contains("parsed"), "{statement}: {}", refused.0);
        }
    }

    #[test]
    fn tables_exclude_ctes() {
        let prepared = parse("WITH recent AS (SELECT * FROM a-b-c-d-e) SELECT * FROM recent").unwrap();
        assert_eq!(prepared.tables, vec!["a-b-c-d-e".to_string()]);
    }
}
