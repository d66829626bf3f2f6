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
        array::{Array, AsArray, StringArray, StringBuilder},
        compute::cast,
        datatypes::{DataType, Int64Type},
    },
    common::{Result, exec_err, plan_err},
    logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility},
};
use regex::{Regex, RegexBuilder};

use super::functions::{answer, text_argument};

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
        let texts = |value, pattern| -> Result<[DataType; 2]> {
            Ok([text_argument(self.name(), "value", value)?, text_argument(self.name(), "pattern", pattern)?])
        };
        match given {
            [value, pattern] => Ok(texts(value, pattern)?.to_vec()),
            [value, pattern, group] if group.is_integer() || group == &DataType::Null => {
                let [value, pattern] = texts(value, pattern)?;
                Ok(vec![value, pattern, DataType::Int64])
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
        let (texts, pattern, group) = match args.args.as_slice() {
            [texts, pattern] => (texts, pattern, None),
            [texts, pattern, group] => (texts, pattern, Some(group)),
            _ => return exec_err!("regexp_extract takes 2 or 3 arguments; call it as {USAGE}"),
        };
        let texts = cast(&texts.to_array(rows)?, &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let groups = group.map(|g| g.to_array(rows).and_then(|g| Ok(cast(&g, &DataType::Int64)?))).transpose()?;
        let groups = groups.as_ref().map(|g| g.as_primitive::<Int64Type>());
        // A constant pattern, as queries write it, is compiled once; one from a column, once for
        // each run of rows that share it.
        let patterns = match pattern {
            ColumnarValue::Scalar(_) => None,
            ColumnarValue::Array(patterns) => Some(cast(patterns, &DataType::Utf8)?),
        };
        let patterns = patterns.as_ref().map(|p| p.as_string::<i32>());
        let mut compiled: Option<(String, Regex)> = match pattern {
            ColumnarValue::Scalar(value) => match value.try_as_str().flatten() {
                Some(text) => Some((text.to_owned(), compile(text)?)),
                None => return answer(Arc::new(StringArray::new_null(rows)), scalar),
            },
            ColumnarValue::Array(_) => None,
        };
        let mut out = StringBuilder::with_capacity(rows, 0);
        for row in 0..rows {
            let group = match groups {
                Some(groups) => groups.is_valid(row).then(|| groups.value(row)),
                None => Some(0),
            };
            let pattern = match patterns {
                Some(patterns) => patterns.is_valid(row).then(|| patterns.value(row)),
                None => compiled.as_ref().map(|(text, _)| text.as_str()),
            };
            let (Some(pattern), Some(group)) = (pattern, group) else {
                out.append_null();
                continue;
            };
            if texts.is_null(row) {
                out.append_null();
                continue;
            }
            if compiled.as_ref().is_none_or(|(given, _)| given != pattern) {
                compiled = Some((pattern.to_owned(), compile(pattern)?));
            }
            let (pattern, regex) = compiled.as_ref().expect("just compiled");
            let Ok(index) = usize::try_from(group) else {
                return exec_err!("regexp_extract: group {group} is negative");
            };
            if index >= regex.captures_len() {
                return exec_err!(
                    "regexp_extract: the pattern {pattern:?} has {} capturing group(s); group {group} does not exist",
                    regex.captures_len() - 1
                );
            }
            let text = texts.value(row);
            let found = if index == 0 { regex.find(text) } else { regex.captures(text).and_then(|c| c.get(index)) };
            out.append_option(found.map(|m| m.as_str()));
        }
        answer(Arc::new(out.finish()), scalar)
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
