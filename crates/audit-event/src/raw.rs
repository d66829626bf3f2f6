//! Borrowing JSON helpers. An object is read as a list of `(key, raw value)` pairs: values stay
//! unparsed text (`&RawValue`, syntax-checked by serde_json) until a rule needs them, so
//! validation costs little more than one parse and never builds a DOM.

use std::{borrow::Cow, fmt};

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the input when it has no escapes.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// An object's members in input order: keys decoded, values unparsed.
pub(crate) type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// A JSON object as its members in input order, values unparsed.
pub(crate) struct Object<'a> {
    pub(crate) members: Members<'a>,
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
                while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Object { members })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl<'a> Object<'a> {
    /// Keys that appear more than once, each reported once, with the raw value of a repeat.
    /// Allocates nothing when there are none.
    pub(crate) fn duplicates(&self) -> Vec<(&str, &'a RawValue)> {
        let members = &self.members;
        let mut found: Vec<(&str, &'a RawValue)> = Vec::new();
        if members.len() <= 32 {
            for (i, (key, raw)) in members.iter().enumerate().skip(1) {
                if members[..i].iter().any(|(k, _)| k == key) && !found.iter().any(|(k, _)| k == key) {
                    found.push((key.as_ref(), *raw));
                }
            }
            return found;
        }
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| members[a].0.cmp(&members[b].0).then(a.cmp(&b)));
        for pair in order.windows(2) {
            let (first, second) = (&members[pair[0]], &members[pair[1]]);
            if first.0 == second.0 && found.last().is_none_or(|(k, _)| *k != first.0.as_ref()) {
                found.push((first.0.as_ref(), second.1));
            }
        }
        found
    }
}

/// The JSON type of a raw value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    pub(crate) fn of(raw: &RawValue) -> Kind {
        // serde_json's raw values start at the value itself; trim only in the unexpected case.
        let text = raw.get();
        let first = match text.as_bytes().first() {
            Some(b' ' | b'\t' | b'\n' | b'\r') => text.trim_start().as_bytes().first(),
            other => other,
        };
        match first {
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'"') => Kind::String,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    /// The type's name with an article, for messages ("found a number").
    pub(crate) fn described(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// Reads a raw value known to be a JSON string.
pub(crate) fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    // Fast path: serde_json already checked the syntax, so a quoted text without escapes is the
    // string itself.
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
        && !inner.as_bytes().contains(&b'\\')
        && !inner.contains('"')
    {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<Str<'_>>(text).ok().map(|s| s.0)
}

/// Parses a raw value known to be a JSON object.
pub(crate) fn object(raw: &RawValue) -> Option<Object<'_>> {
    serde_json::from_str::<Object<'_>>(raw.get()).ok()
}

/// The byte offset of `part` inside `base`, when `part` is a slice of it.
pub(crate) fn offset_in(base: &str, part: &str) -> Option<usize> {
    let start = base.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    (at >= start && at + part.len() <= start + base.len()).then(|| at - start)
}
