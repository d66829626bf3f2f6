//! Trino functions CloudTrail Lake users call that DataFusion lacks or spells differently, over
//! the store's JSON map columns (see `columnar`):
//!
//! - `element_at(map, key)`: the value of `key` — a string value as the string, any other value as
//!   its JSON text, NULL when the key is missing (Trino's `element_at` on a `map<varchar,varchar>`).
//!   It replaces DataFusion's `element_at`, which returns a list.
//! - `json_extract_scalar(json, '$.a.b[0]')`: the scalar at a JSONPath as a string; NULL for an
//!   object, an array or no match.
//! - `json_extract(json, path)`: the JSON text at a JSONPath.
//!
//! And Trino's date functions (`date_add`, `date_diff`, `from_iso8601_timestamp`, the fields of a
//! time, `date_format`, …; see `dates`) and `regexp_extract` (see `strings`).

use std::{borrow::Cow, sync::Arc};

use datafusion::{
    arrow::{
        array::{Array, ArrayRef, AsArray, StringBuilder},
        compute::cast,
        datatypes::DataType,
    },
    common::{Result, exec_err},
    logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility},
};
use serde_json::Value;

use crate::columnar::params::element_at;

/// The functions to register on a query's session.
pub(super) fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(JsonFunction::new("element_at", Kind::ElementAt)),
        ScalarUDF::from(JsonFunction::new("json_extract_scalar", Kind::ExtractScalar)),
        ScalarUDF::from(JsonFunction::new("json_extract", Kind::Extract)),
    ]
    .into_iter()
    .chain(super::dates::all())
    .chain(super::strings::all())
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    ElementAt,
    ExtractScalar,
    Extract,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunction {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl JsonFunction {
    fn new(name: &'static str, kind: Kind) -> JsonFunction {
        JsonFunction { name, kind, signature: Signature::string(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [json, key] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name);
        };
        let scalar = matches!((json, key), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        // A key (or path) given once for every row, as a literal is: the same in each row, by
        // construction (a column's values may differ from row to row whatever its first and last).
        let constant = matches!(key, ColumnarValue::Scalar(value) if !value.is_null()) && rows > 0;
        let json = utf8(json.to_array(rows)?)?;
        let key = utf8(key.to_array(rows)?)?;
        let (json, key) = (json.as_string::<i32>(), key.as_string::<i32>());
        // A constant key is looked for in each object's text before the object is parsed; a
        // constant path is parsed once.
        let probe = (self.kind == Kind::ElementAt && constant).then(|| KeyProbe::new(key.value(0)));
        let path = match self.kind {
            Kind::ExtractScalar | Kind::Extract if constant => Some(JsonPath::parse(key.value(0))?),
            _ => None,
        };
        let mut out = StringBuilder::with_capacity(json.len(), json.len() * 8);
        for i in 0..json.len() {
            if json.is_null(i) || key.is_null(i) {
                out.append_null();
                continue;
            }
            let value = match self.kind {
                Kind::ElementAt if probe.as_ref().is_some_and(|p| p.absent(json.value(i))) => None,
                Kind::ElementAt => element_at(json.value(i), key.value(i)),
                Kind::ExtractScalar | Kind::Extract => {
                    let parsed;
                    let path = match &path {
                        Some(path) => path,
                        None => {
                            parsed = JsonPath::parse(key.value(i))?;
                            &parsed
                        }
                    };
                    extract(json.value(i), path, self.kind == Kind::ExtractScalar)
                }
            };
            out.append_option(value);
        }
        answer(Arc::new(out.finish()), scalar)
    }
}

/// The type a text argument of `function` is taken as (`Utf8`), or what is wrong with `given`.
pub(super) fn text_argument(function: &str, what: &str, given: &DataType) -> Result<DataType> {
    match given {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => Ok(DataType::Utf8),
        other => datafusion::common::plan_err!("{function}: the {what} must be text, found {other}"),
    }
}

/// A function's answer: one value when every argument was one (a scalar call), else the array.
pub(super) fn answer(array: ArrayRef, scalar: bool) -> Result<ColumnarValue> {
    if scalar {
        Ok(ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&array, 0)?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

fn utf8(array: ArrayRef) -> Result<ArrayRef> {
    if array.data_type() == &DataType::Utf8 { Ok(array) } else { Ok(cast(&array, &DataType::Utf8)?) }
}

/// A quick test that a JSON object has no member `key`, so that most rows of a key filter skip the
/// parse: an object whose text holds neither `"key"` nor any escape (through which a key could
/// spell the same name differently) cannot have it. A text that does hold it may still not (it
/// may be a value, or a nested member's name): the parse decides.
struct KeyProbe {
    /// `"key"`, when the key needs no escape in JSON; otherwise nothing is skipped.
    quoted: Option<memchr::memmem::Finder<'static>>,
}

impl KeyProbe {
    fn new(key: &str) -> KeyProbe {
        let plain = !key.chars().any(|c| c == '"' || c == '\\' || c.is_control());
        KeyProbe { quoted: plain.then(|| memchr::memmem::Finder::new(format!("\"{key}\"").as_bytes()).into_owned()) }
    }

    fn absent(&self, json: &str) -> bool {
        self.quoted.as_ref().is_some_and(|quoted| {
            quoted.find(json.as_bytes()).is_none() && memchr::memchr(b'\\', json.as_bytes()).is_none()
        })
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A JSONPath of the simple form Trino's JSON functions take: `$`, `.name`, `["name"]`, `[0]`.
#[derive(Debug, PartialEq)]
struct JsonPath(Vec<Step>);

impl JsonPath {
    fn parse(text: &str) -> Result<JsonPath> {
        let bad = |why: &str| exec_err!("invalid JSON path {text:?}: {why}");
        let Some(mut rest) = text.trim().strip_prefix('$') else {
            return bad("it must start with $");
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return bad("a '.' must be followed by a name");
                }
                steps.push(Step::Field(after[..end].to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let Some(end) = after.find(']') else { return bad("a '[' is not closed") };
                let inner = after[..end].trim();
                if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(Step::Field(quoted.to_owned()));
                } else if let Ok(index) = inner.parse() {
                    steps.push(Step::Index(index));
                } else {
                    return bad("use [<number>] or [\"name\"]");
                }
                rest = &after[end + 1..];
            } else {
                return bad("expected '.' or '['");
            }
        }
        Ok(JsonPath(steps))
    }
}

fn extract(json: &str, path: &JsonPath, scalar: bool) -> Option<Cow<'static, str>> {
    let mut value: Value = serde_json::from_str(json).ok()?;
    for step in &path.0 {
        value = match (step, value) {
            (Step::Field(name), Value::Object(mut map)) => map.remove(name)?,
            (Step::Index(i), Value::Array(mut items)) if *i < items.len() => items.swap_remove(*i),
            _ => return None,
        };
    }
    match value {
        Value::Null => None,
        Value::String(s) if scalar => Some(Cow::Owned(s)),
        Value::Object(_) | Value::Array(_) if scalar => None,
        other => Some(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_at_reads_a_key_as_a_string_map_would() {
        let json = r#"{"ruleId":"r-\"1\"","n":3,"nested":{"a":[1,2]},"none":null}"#;
        assert_eq!(element_at(json, "ruleId").as_deref(), Some("r-\"1\""));
        assert_eq!(element_at(json, "n").as_deref(), Some("3"));
        assert_eq!(element_at(json, "nested").as_deref(), Some(r#"{"a":[1,2]}"#));
        assert_eq!(element_at(json, "none"), None);
        assert_eq!(element_at(json, "missing"), None);
        assert_eq!(element_at("not json", "n"), None);
    }

    #[test]
    fn a_key_skipped_unparsed_is_one_the_parse_would_not_find() {
        let texts = [
            r#"{"resourceType":"DynamoDB"}"#,
            r#"{"resourceArn":"arn:x"}"#,
            // Spelled with an escape: the same key, not in the text as written.
            r#"{"resource\u0054ype":"EC2"}"#,
            // The key's name as a value, or as a nested member's: the parse says no.
            r#"{"kind":"resourceType"}"#,
            r#"{"outer":{"resourceType":"RDS"}}"#,
            "not json",
            "{}",
        ];
        let probe = KeyProbe::new("resourceType");
        for text in texts {
            let found = element_at(text, "resourceType");
            if probe.absent(text) {
                assert_eq!(found, None, "{text}");
            }
        }
        assert!(probe.absent(texts[1]) && probe.absent(texts[5]) && probe.absent(texts[6]));
        assert!(!probe.absent(texts[2]), "a text with an escape is parsed");
        assert_eq!(element_at(texts[2], "resourceType").as_deref(), Some("EC2"));
        assert_eq!(element_at(texts[0], "resourceType").as_deref(), Some("DynamoDB"));
        // A key that itself needs escaping is never skipped.
        assert!(!KeyProbe::new("a\"b").absent("{}"));
    }

    /// Keys and paths from a column are read row by row, even when the column's first and last
    /// values agree (they once decided that a key was constant).
    #[tokio::test]
    async fn a_key_or_path_from_a_column_is_read_per_row() {
        use datafusion::{arrow::compute::concat_batches, prelude::SessionContext};
        let ctx = SessionContext::new();
        for function in all() {
            ctx.register_udf(function);
        }
        let sql = r#"SELECT element_at(j, k) AS v, json_extract_scalar(j, p) AS x, element_at(j, 'a') AS c
            FROM (VALUES ('{"x":"0"}', 'a', '$.a'), ('{"b":"2"}', 'b', '$.b'), ('{"a":"1"}', 'a', '$.a')) AS t(j, k, p)"#;
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let all = concat_batches(&batches[0].schema(), &batches).unwrap();
        let column = |i: usize| -> Vec<Option<String>> {
            all.column(i).as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
        };
        let expected = vec![None, Some("2".to_owned()), Some("1".to_owned())];
        assert_eq!(column(0), expected, "element_at with the key from a column");
        assert_eq!(column(1), expected, "json_extract_scalar with the path from a column");
        assert_eq!(column(2), vec![None, None, Some("1".to_owned())], "element_at with a literal key");
    }

    #[test]
    fn json_paths_extract_scalars_and_text() {
        let json = r#"{"a":{"b":[{"c":"x"},7]},"k":"v"}"#;
        let path = |p| JsonPath::parse(p).unwrap();
        assert_eq!(extract(json, &path("$.a.b[0].c"), true).as_deref(), Some("x"));
        assert_eq!(extract(json, &path("$.a.b[1]"), true).as_deref(), Some("7"));
        assert_eq!(extract(json, &path("$[\"k\"]"), true).as_deref(), Some("v"));
        assert_eq!(extract(json, &path("$.a"), true), None);
        assert_eq!(extract(json, &path("$.a.b[0]"), false).as_deref(), Some(r#"{"c":"x"}"#));
        assert_eq!(extract(json, &path("$.a.z"), true), None);
        assert!(JsonPath::parse("a.b").is_err());
        assert!(JsonPath::parse("$.a[").is_err());
    }
}
