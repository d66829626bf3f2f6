//! Trino's `regexp_extract(text, pattern[, group])`: the first match of `pattern` in `text` (or its
//! capturing group `group`, 0 being the whole match), NULL when nothing matches. DataFusion has
//! `regexp_match`, which answers a list; CloudTrail Lake users write `regexp_extract` to pull an
//! account or a name out of an ARN or a user agent.
//!
//! Patterns are Rust `regex` syntax, which shares Java's for what such queries use (classes,
//! groups, anchors, repetition) and matches in time linear in the text, so no pattern can stall a
//! query; a compiled pattern is bounded in size ([`MAX_PATTERN_BYTES`]).

use std::sync::Arc;

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, StringArray},
        compute::cast,
        datatypes::{DataType, Int64Type},
    },
    common::{Result, exec_err, plan_err},
    logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility},
};
use regex::{Regex, RegexBuilder};

/// The most memory one compiled pattern may take.
const MAX_PATTERN_BYTES: usize = 1 << 20;

/// The functions to register.
pub(super) fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(RegexpExtract { signature: Signature::user_defined(Volatility::Immutable) })]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
}

const USAGE: &str = "regexp_extract(text, pattern[, group]), e.g. regexp_extract(eventData.userAgent, '/([0-9.]+)', 1)";

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        "regexp_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, given: &[DataType]) -> Result<Vec<DataType>> {
        let text = |t: &DataType| match t {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Ok(DataType::Utf8),
            other => plan_err!("regexp_extract: expected text, found {other}; call it as {USAGE}"),
        };
        match given {
            [value, pattern] => Ok(vec![text(value)?, text(pattern)?]),
            [value, pattern, group] if group.is_integer() || group == &DataType::Null => {
                Ok(vec![text(value)?, text(pattern)?, DataType::Int64])
            }
            [_, _, other] => {
                plan_err!("regexp_extract: the group must be an integer, found {other}; call it as {USAGE}")
            }
            _ => plan_err!("regexp_extract takes 2 or 3 arguments; call it as {USAGE}"),
        }
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let scalar = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<Result<Vec<ArrayRef>>>()?;
        let (texts, patterns) = match arrays.as_slice() {
            [texts, patterns, ..] => (cast(texts, &DataType::Utf8)?, cast(patterns, &DataType::Utf8)?),
            _ => return exec_err!("regexp_extract takes 2 or 3 arguments; call it as {USAGE}"),
        };
        let groups = arrays.get(2).map(|g| cast(g, &DataType::Int64)).transpose()?;
        let groups = groups.as_ref().map(|g| g.as_primitive::<Int64Type>());
        let (texts, patterns) = (texts.as_string::<i32>(), patterns.as_string::<i32>());
        let mut compiled: Option<(String, Regex)> = None;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let group = match groups {
                Some(groups) if groups.is_null(row) => None,
                Some(groups) => Some(groups.value(row)),
                None => Some(0),
            };
            if texts.is_null(row) || patterns.is_null(row) || group.is_none() {
                out.push(None);
                continue;
            }
            let (text, pattern, group) = (texts.value(row), patterns.value(row), group.unwrap_or(0));
            if compiled.as_ref().is_none_or(|(given, _)| given != pattern) {
                compiled = Some((pattern.to_owned(), compile(pattern)?));
            }
            let (_, regex) = compiled.as_ref().expect("just compiled");
            let Ok(index) = usize::try_from(group) else {
                return exec_err!("regexp_extract: group {group} is negative");
            };
            if index >= regex.captures_len() {
                return exec_err!(
                    "regexp_extract: the pattern {pattern:?} has {} capturing group(s); group {group} does not exist",
                    regex.captures_len() - 1
                );
            }
            let found = if index == 0 {
                regex.find(text).map(|m| m.as_str().to_owned())
            } else {
                regex.captures(text).and_then(|c| c.get(index)).map(|m| m.as_str().to_owned())
            };
            out.push(found);
        }
        let array: ArrayRef = Arc::new(StringArray::from(out));
        super::functions::answer(array, scalar)
    }
}

fn compile(pattern: &str) -> Result<Regex> {
    match RegexBuilder::new(pattern).size_limit(MAX_PATTERN_BYTES).build() {
        Ok(regex) => Ok(regex),
        Err(err) => exec_err!("regexp_extract: the pattern {pattern:?} is not valid: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::all;

    async fn column(sql: &str) -> Result<Vec<Option<String>>, String> {
        let ctx = SessionContext::new();
        for function in all() {
            ctx.register_udf(function);
        }
        let batches = ctx.sql(sql).await.map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
        Ok(batches
            .iter()
            .flat_map(|b| {
                let strings =
                    datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8)
                        .unwrap();
                use datafusion::arrow::array::AsArray;
                strings.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect::<Vec<_>>()
            })
            .collect())
    }

    #[tokio::test]
    async fn extracts_the_first_match_or_a_group() {
        let arn = "'arn:aws:iam::123456789012:role/CTEventPublisher'";
        let cases = [
            (format!("regexp_extract({arn}, '[0-9]{{12}}')"), Some("123456789012")),
            (format!("regexp_extract({arn}, 'role/(.+)$', 1)"), Some("CTEventPublisher")),
            (format!("regexp_extract({arn}, 'user/(.+)$', 1)"), None),
            (format!("regexp_extract({arn}, 'iam::(\\d+):(\\w+)', 2)"), Some("role")),
            (format!("regexp_extract({arn}, 'x', NULL)"), None),
        ];
        for (sql, expected) in cases {
            let got = column(&format!("SELECT {sql}")).await.unwrap();
            assert_eq!(got, vec![expected.map(str::to_owned)], "{sql}");
        }
        // Row by row, with the pattern from a column.
        let got = column(
            "SELECT regexp_extract(t, p, 1) FROM (VALUES ('a1b22', '([0-9]+)'), ('xyz', 'y(z)'), (NULL, 'a')) AS v(t, p)",
        )
        .await
        .unwrap();
        assert_eq!(got, vec![Some("1".to_owned()), Some("z".to_owned()), None]);
    }

    #[tokio::test]
    async fn a_bad_pattern_or_group_is_named() {
        for (sql, expected) in [
            ("regexp_extract('abc', '(')", "the pattern \"(\" is not valid"),
            ("regexp_extract('abc', 'a(b)', 2)", "has 1 capturing group(s); group 2 does not exist"),
            ("regexp_extract('abc', 'a', -1)", "group -1 is negative"),
            ("regexp_extract('abc', 'a', 'x')", "the group must be an integer"),
            ("regexp_extract('abc', 'a{100000}{100000}')", "is not valid"),
        ] {
            let message = column(&format!("SELECT {sql}")).await.expect_err(sql);
            assert!(message.contains(expected), "{sql}: {message}");
        }
    }
}
