//! The catalog's request parameters as columns of their own (*parameter columns*).
//!
//! `eventData.requestParameters` is kept as the JSON text of the object (CloudTrail's
//! `map<string,string>`), so reading one key — `element_at(eventData.requestParameters, 'k')` —
//! parses every row's text. Each key an application of the catalog declares
//! ([`keys`]) is also kept as a string leaf of `eventData`, named [`PREFIX`] and the key, holding
//! exactly what `element_at` answers for that key: a string value as the string, any other value
//! as its JSON text, NULL when the key is missing or `null`. The SQL front end (`sql::dialect`)
//! reads such a leaf where a query names a catalog key with a literal, so Parquet reads one short
//! column instead of the whole text; results render `eventData` without these leaves.
//!
//! A file written before a key was in the catalog lacks its leaf; a query computes it from the
//! JSON text for that file (`sql::older`). Which keys a file holds is read from its schema.

use std::{borrow::Cow, sync::OnceLock};

use datafusion::arrow::datatypes::{DataType, Schema};

use serde::{
    Deserialize,
    de::{DeserializeSeed, MapAccess, Visitor},
};
use serde_json::value::RawValue;

/// What a parameter column's name starts with, before the key.
pub const PREFIX: &str = "$rp:";

/// The keys kept as parameter columns: every request parameter of the embedded catalog, sorted.
pub fn keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let catalog = audit_event::Catalog::embedded();
        let mut keys: Vec<String> = catalog
            .applications()
            .iter()
            .flat_map(|a| &a.event_types)
            .flat_map(|t| &t.parameters)
            .map(|p| p.name.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    })
}

/// The keys a table of `schema` keeps as parameter columns.
pub fn keys_in(schema: &Schema) -> Vec<String> {
    match schema.field_with_name("eventData").map(|f| f.data_type()) {
        Ok(DataType::Struct(fields)) => fields.iter().filter_map(|f| key_of(f.name())).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The column name of key `key`.
pub fn column(key: &str) -> String {
    format!("{PREFIX}{key}")
}

/// Whether a field of `eventData` is a parameter column (left out of rendered results).
pub fn is_column(field: &str) -> bool {
    field.starts_with(PREFIX)
}

/// The key of a parameter column's name.
pub fn key_of(field: &str) -> Option<&str> {
    field.strip_prefix(PREFIX)
}

/// A JSON object's key, borrowed from the text when it has no escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// Calls `each` with every member of the JSON object `json`, in order (a key may repeat: Trino's
/// map keeps the first); `false` when `json` is not an object.
fn members<'a>(json: &'a str, each: &mut dyn FnMut(&str, &'a RawValue)) -> bool {
    struct Members<'f, 'a>(&'f mut dyn FnMut(&str, &'a RawValue));
    impl<'a> DeserializeSeed<'a> for Members<'_, 'a> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'a>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'a> Visitor<'a> for Members<'_, 'a> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
                let value = map.next_value::<&'a RawValue>()?;
                (self.0)(&key, value);
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    Members(each).deserialize(&mut de).and_then(|()| de.end()).is_ok()
}

/// The value of `key` in the JSON object `json`, as Trino's map would give it (see
/// [`scalar_text`]); NULL when `json` is not an object or lacks the key.
pub(crate) fn element_at<'a>(json: &'a str, key: &str) -> Option<Cow<'a, str>> {
    let mut found = None;
    let object = members(json, &mut |k, v| {
        if found.is_none() && k == key {
            found = Some(v);
        }
    });
    scalar_text(found.filter(|_| object)?.get())
}

/// A JSON value as a map's string: a string unquoted, `null` as NULL, anything else as written.
fn scalar_text(raw: &str) -> Option<Cow<'_, str>> {
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<Key<'_>>(raw).ok().map(|k| k.0),
        Some(b'n') if raw == "null" => None,
        Some(_) => Some(Cow::Borrowed(raw)),
        None => None,
    }
}

/// Each of [`keys`]' values in one `requestParameters` text, in the order of [`keys`], into `out`
/// (`seen` is scratch space).
pub(crate) fn values<'a>(json: Option<&'a str>, out: &mut Vec<Option<Cow<'a, str>>>, seen: &mut Vec<bool>) {
    let keys = keys();
    out.clear();
    out.resize(keys.len(), None);
    let Some(json) = json else { return };
    seen.clear();
    seen.resize(keys.len(), false);
    let object = members(json, &mut |k, v| {
        if let Ok(i) = keys.binary_search_by(|probe| probe.as_str().cmp(k))
            && !std::mem::replace(&mut seen[i], true)
        {
            out[i] = scalar_text(v.get());
        }
    });
    if !object {
        out.iter_mut().for_each(|v| *v = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogs_keys_are_sorted_and_unique() {
        let keys = keys();
        assert!(keys.len() > 10, "{keys:?}");
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert!(keys.iter().any(|k| k == "resourceType"));
    }

    #[test]
    fn a_rows_values_are_what_element_at_answers() {
        let keys = keys();
        let texts = [
            r#"{"resourceType":"DynamoDB","machinesCount":12,"region":null}"#,
            r#"{"resource\u0054ype":"E\"C2","resourceType":"second","osType":{"a":[1]}}"#,
            r#"{"resourceType":"x"} trailing"#,
            "[1,2]",
            "{}",
        ];
        let (mut out, mut seen) = (Vec::new(), Vec::new());
        for text in texts {
            values(Some(text), &mut out, &mut seen);
            for (key, value) in keys.iter().zip(&out) {
                assert_eq!(value, &element_at(text, key), "{key} in {text}");
            }
        }
        values(Some(texts[1]), &mut out, &mut seen);
        let at = |k: &str| out[keys.iter().position(|x| x == k).unwrap()].clone();
        assert_eq!(at("resourceType").as_deref(), Some("E\"C2"), "the first of a repeated key");
        assert_eq!(at("osType").as_deref(), Some(r#"{"a":[1]}"#));
        values(None, &mut out, &mut seen);
        assert!(out.iter().all(Option::is_none));
    }

    proptest::proptest! {
        /// Any object of catalog keys (some spelled with escapes, some repeated) and other keys,
        /// with values of every JSON kind: each column holds what `element_at` answers.
        #[test]
        fn every_column_holds_what_element_at_answers(
            members in proptest::collection::vec((0usize..40, proptest::bool::ANY, 0usize..6), 0..12)
        ) {
            let keys = keys();
            let values_of = ["\"text\"", "\"a \\\"quoted\\\" é\"", "12", "null", "true", "{\"n\":[1,{\"k\":null}]}"];
            let text = members
                .iter()
                .map(|&(k, escaped, v)| {
                    let key = keys.get(k).cloned().unwrap_or_else(|| format!("other{k}"));
                    // The first letter as a \u escape: the same key, spelled otherwise.
                    let key = match (escaped, key.chars().next()) {
                        (true, Some(c)) => format!("\\u{:04x}{}", c as u32, &key[c.len_utf8()..]),
                        _ => key,
                    };
                    format!("\"{key}\":{}", values_of[v])
                })
                .collect::<Vec<_>>()
                .join(",");
            let text = format!("{{{text}}}");
            proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{}", text);
            let (mut out, mut seen) = (Vec::new(), Vec::new());
            values(Some(&text), &mut out, &mut seen);
            for (key, value) in keys.iter().zip(&out) {
                proptest::prop_assert_eq!(value, &element_at(&text, key), "{} in {}", key, text);
            }
        }
    }
}
