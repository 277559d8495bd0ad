//! The JSON form of the header: the serde reference decoder with fastjson's leniencies,
//! and the encoder that writes Java's exact bytes.
//! Must not: hold the fast path (that is `scan`) or touch route state.

use super::model::{language_code, language_name, Header, HeaderError, HeaderOut};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A JSON number or a string holding one (fastjson coerces both).
struct LenientInt(i64);

impl<'de> Deserialize<'de> for LenientInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LenientInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LenientInt, E> {
                Ok(LenientInt(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LenientInt, E> {
                i64::try_from(v).map(LenientInt).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LenientInt, E> {
                v.trim().parse().map(LenientInt).map_err(|_| E::custom(format!("not an integer: {v:?}")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<LenientInt, E> {
                Ok(LenientInt(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// extFields: string→string, with scalars stringified and nulls dropped, as fastjson does.
struct ExtFields(Option<Vec<(String, String)>>);

impl<'de> Deserialize<'de> for ExtFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<ExtFields, E> {
                Ok(ExtFields(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ExtFields, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<String>()? {
                    let value: serde_json::Value = map.next_value()?;
                    let text = match value {
                        serde_json::Value::Null => continue,
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Bool(b) => b.to_string(),
                        serde_json::Value::Number(n) => n.to_string(),
                        other => other.to_string(),
                    };
                    fields.push((key, text));
                }
                Ok(ExtFields(Some(fields)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct JsonHeader {
    code: Option<LenientInt>,
    language: Option<serde_json::Value>,
    version: Option<LenientInt>,
    opaque: Option<LenientInt>,
    flag: Option<LenientInt>,
    remark: Option<String>,
    #[serde(rename = "extFields")]
    ext_fields: Option<ExtFields>,
}

fn to_i32(field: &str, value: Option<LenientInt>) -> Result<i32, HeaderError> {
    let v = value.map(|v| v.0).unwrap_or(0);
    i32::try_from(v).map_err(|_| HeaderError(format!("header field {field} {v} out of range")))
}

/// The reference decoder, with fastjson's leniencies: any key order, unknown keys ignored,
/// integers as numbers or strings, scalar ext values stringified, nulls dropped.
pub fn decode_json_serde(bytes: &[u8]) -> Result<Header, HeaderError> {
    let raw: JsonHeader =
        serde_json::from_slice(bytes).map_err(|e| HeaderError(format!("undecodable JSON header: {e}")))?;
    let language = match raw.language {
        Some(serde_json::Value::String(name)) => language_code(&name),
        Some(serde_json::Value::Number(n)) => n.as_u64().and_then(|c| u8::try_from(c).ok()),
        _ => None,
    };
    Ok(Header {
        code: to_i32("code", raw.code)?,
        language,
        version: to_i32("version", raw.version)?,
        opaque: to_i32("opaque", raw.opaque)?,
        flag: to_i32("flag", raw.flag)?,
        remark: raw.remark,
        ext_fields: raw.ext_fields.and_then(|e| e.0),
    })
}

impl HeaderOut<'_> {
    pub(super) fn encode_json(&self, out: &mut Vec<u8>) {
        let mut num = itoa::Buffer::new();
        out.extend_from_slice(b"{\"code\":");
        out.extend_from_slice(num.format(self.code).as_bytes());
        if let Some(fields) = self.ext_fields {
            out.extend_from_slice(b",\"extFields\":{");
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, k);
                out.push(b':');
                write_json_str(out, v);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"flag\":");
        out.extend_from_slice(num.format(self.flag).as_bytes());
        if let Some(lang) = language_name(self.language) {
            out.extend_from_slice(b",\"language\":\"");
            out.extend_from_slice(lang.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"opaque\":");
        out.extend_from_slice(num.format(self.opaque).as_bytes());
        if let Some(remark) = self.remark {
            out.extend_from_slice(b",\"remark\":");
            write_json_str(out, remark);
        }
        out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
        out.extend_from_slice(num.format(self.version).as_bytes());
        out.push(b'}');
    }
}

/// Writes a JSON string as fastjson's default writer does (raw UTF-8, short escapes).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{:04X}", b).as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
