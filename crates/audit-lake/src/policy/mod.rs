//! IAM-style policy documents and their evaluation, shared by every place the lake authorizes:
//! channel resource policies on `PutAuditEvents` (and, with the identity issue, role trust and
//! permission policies).
//!
//! Supported: `Effect` Allow/Deny (an explicit Deny wins); `Action` / `NotAction` and `Resource`
//! with `*` and `?` wildcards; `Principal` as `"*"`, `{"AWS": …}` holding account ids, account root
//! ARNs, role or user ARNs, assumed-role session ARNs, or `"*"`; and conditions `StringEquals`,
//! `StringNotEquals`, `StringLike`, `StringNotLike`, `ArnEquals`, `ArnLike` (and their `IfExists`
//! forms) over the request's context keys. A condition on a key the request does not carry fails,
//! as in AWS.

use std::collections::HashMap;

use serde_json::Value;

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The statements, in order.
    pub statements: Vec<Statement>,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The statement id, if any.
    pub sid: Option<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// Who the statement is about (resource policies); `None` in identity policies.
    pub principals: Option<Vec<String>>,
    /// Action patterns.
    pub actions: Vec<String>,
    /// Whether `actions` is a `NotAction` list.
    pub not_action: bool,
    /// Resource patterns; `None` when the statement has no `Resource`.
    pub resources: Option<Vec<String>>,
    /// Conditions: operator → key → allowed values.
    pub conditions: Vec<Condition>,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, winning over any Allow.
    Deny,
}

/// One condition test: `operator` applied to the request's value of `key` against `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The operator name as written (e.g. `StringEquals`).
    pub operator: String,
    /// The context key (case-insensitive).
    pub key: String,
    /// The allowed values.
    pub values: Vec<String>,
}

/// What a request looks like to a policy.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The caller's ARN (`arn:aws:iam::111122223333:root`, a role, an assumed-role session).
    pub principal_arn: &'a str,
    /// The caller's account.
    pub principal_account: &'a str,
    /// Other ARNs the principal matches (an assumed-role session also matches its role's ARN).
    pub principal_aliases: &'a [String],
    /// The action, e.g. `cloudtrail-data:PutAuditEvents`.
    pub action: &'a str,
    /// The resource ARN.
    pub resource: &'a str,
    /// Condition keys of the request (lower-case names), e.g. `cloudtrail:externalid`.
    pub context: HashMap<String, String>,
}

/// The outcome of evaluating a policy for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// A Deny statement matched.
    ExplicitDeny,
    /// Nothing matched.
    NotApplicable,
}

/// Why a policy document is not acceptable. The text completes "the policy …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Policy {
    /// Parses a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let err = |m: String| PolicyError(m);
        let doc: Value = serde_json::from_str(text).map_err(|e| err(format!("is not valid JSON: {e}")))?;
        let Value::Object(doc) = doc else {
            return Err(err("must be a JSON object".into()));
        };
        if let Some(version) = doc.get("Version")
            && version != "2012-10-17"
            && version != "2008-10-17"
        {
            return Err(err(format!("has Version {version}; use \"2012-10-17\"")));
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(single @ Value::Object(_)) => vec![single.clone()],
            Some(_) => return Err(err("has a Statement that is neither an object nor a list".into())),
            None => return Err(err("has no Statement".into())),
        };
        let statements = statements
            .iter()
            .enumerate()
            .map(|(i, s)| parse_statement(s).map_err(|m| err(format!("statement {}: {m}", i + 1))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { statements })
    }

    /// Evaluates the policy for `request`. Resource policies match on principals; identity policies
    /// (no `Principal`) apply to whoever holds them.
    pub fn evaluate(&self, request: &Request<'_>) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            if !statement.applies_to(request) {
                continue;
            }
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
        if allowed { Decision::Allow } else { Decision::NotApplicable }
    }
}

impl Statement {
    fn applies_to(&self, request: &Request<'_>) -> bool {
        if let Some(principals) = &self.principals
            && !principals.iter().any(|p| principal_matches(p, request))
        {
            return false;
        }
        let action = self
            .actions
            .iter()
            .any(|pattern| wildcard_match(&pattern.to_ascii_lowercase(), &request.action.to_ascii_lowercase()));
        if action == self.not_action {
            return false;
        }
        if let Some(resources) = &self.resources
            && !resources.iter().any(|pattern| wildcard_match(pattern, request.resource))
        {
            return false;
        }
        self.conditions.iter().all(|c| c.holds(request))
    }
}

impl Condition {
    fn holds(&self, request: &Request<'_>) -> bool {
        let (operator, if_exists) = match self.operator.strip_suffix("IfExists") {
            Some(op) => (op, true),
            None => (self.operator.as_str(), false),
        };
        let key = self.key.to_ascii_lowercase();
        let actual = match key.as_str() {
            "aws:principalaccount" => Some(request.principal_account),
            "aws:principalarn" => Some(request.principal_arn),
            _ => request.context.get(&key).map(String::as_str),
        };
        let Some(actual) = actual else {
            // AWS: a missing key fails the condition, except for the negated operators and IfExists.
            return if_exists || operator.starts_with("StringNot") || operator.starts_with("ArnNot");
        };
        match operator {
            "StringEquals" | "ArnEquals" => self.values.iter().any(|v| v == actual),
            "StringNotEquals" | "ArnNotEquals" => self.values.iter().all(|v| v != actual),
            "StringEqualsIgnoreCase" => self.values.iter().any(|v| v.eq_ignore_ascii_case(actual)),
            "StringNotEqualsIgnoreCase" => self.values.iter().all(|v| !v.eq_ignore_ascii_case(actual)),
            "StringLike" | "ArnLike" => self.values.iter().any(|v| wildcard_match(v, actual)),
            "StringNotLike" | "ArnNotLike" => self.values.iter().all(|v| !wildcard_match(v, actual)),
            // Unknown operators never hold (parse refuses them; this is defence in depth).
            _ => false,
        }
    }
}

const OPERATORS: [&str; 10] = [
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
];

fn strings(value: &Value, what: &str) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("{what} must hold strings, found {v}")))
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        other => Err(format!("{what} must be a string or a non-empty list of strings, found {other}")),
    }
}

fn parse_statement(value: &Value) -> Result<Statement, String> {
    let Value::Object(s) = value else {
        return Err("must be an object".into());
    };
    for key in s.keys() {
        if ![
            "Sid",
            "Effect",
            "Principal",
            "NotPrincipal",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Condition",
        ]
        .contains(&key.as_str())
        {
            return Err(format!("has an unknown element {key:?}"));
        }
    }
    if s.contains_key("NotPrincipal") || s.contains_key("NotResource") {
        return Err("NotPrincipal and NotResource are not supported".into());
    }
    let effect = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => return Err(format!("has Effect {other:?}; use \"Allow\" or \"Deny\"")),
        None => return Err("has no Effect".into()),
    };
    let principals = match s.get("Principal") {
        None => None,
        Some(Value::String(star)) if star == "*" => Some(vec!["*".to_owned()]),
        Some(Value::Object(map)) => {
            let mut all = Vec::new();
            for (kind, value) in map {
                if kind != "AWS" {
                    return Err(format!("has a {kind:?} principal; only \"AWS\" principals are supported"));
                }
                all.extend(strings(value, "Principal.AWS")?);
            }
            Some(all)
        }
        Some(other) => return Err(format!("has Principal {other}; use \"*\" or {{\"AWS\": [...]}}")),
    };
    let (actions, not_action) = match (s.get("Action"), s.get("NotAction")) {
        (Some(a), None) => (strings(a, "Action")?, false),
        (None, Some(a)) => (strings(a, "NotAction")?, true),
        (Some(_), Some(_)) => return Err("has both Action and NotAction".into()),
        (None, None) => return Err("has no Action".into()),
    };
    let resources = s.get("Resource").map(|r| strings(r, "Resource")).transpose()?;
    let mut conditions = Vec::new();
    if let Some(condition) = s.get("Condition") {
        let Value::Object(ops) = condition else {
            return Err("has a Condition that is not an object".into());
        };
        for (operator, keys) in ops {
            let base = operator.strip_suffix("IfExists").unwrap_or(operator);
            if !OPERATORS.contains(&base) {
                return Err(format!("uses condition operator {operator:?}; supported: {}", OPERATORS.join(", ")));
            }
            let Value::Object(keys) = keys else {
                return Err(format!("condition {operator} must map keys to values"));
            };
            for (key, values) in keys {
                conditions.push(Condition {
                    operator: operator.clone(),
                    key: key.clone(),
                    values: strings(values, key)?,
                });
            }
        }
    }
    Ok(Statement {
        sid: s.get("Sid").and_then(Value::as_str).map(str::to_owned),
        effect,
        principals,
        actions,
        not_action,
        resources,
        conditions,
    })
}

/// Whether a principal entry of a policy names the caller.
fn principal_matches(entry: &str, request: &Request<'_>) -> bool {
    if entry == "*" {
        return true;
    }
    // An account id, or its root ARN, names every principal of that account.
    if entry == request.principal_account || entry == format!("arn:aws:iam::{}:root", request.principal_account) {
        return true;
    }
    entry == request.principal_arn || request.principal_aliases.iter().any(|alias| alias == entry)
}

/// IAM wildcard matching: `*` any run of characters, `?` any one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests;
