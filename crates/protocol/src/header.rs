//! The RemotingCommand header in its JSON and ROCKETMQ binary forms, with its ext fields.
//!
//! Decoding is lenient the way fastjson is (any key order, unknown keys, missing keys with
//! Java's defaults, scalar ext values stringified); encoding reproduces Java's bytes exactly
//! (alphabetical keys, `serializeTypeCurrentRPC`, nulls omitted, no whitespace).
//! Must not: touch route state. Reference: ../shared/protocol/framing.md §2–§6.

use super::codes::VERSION_CURRENT;
use super::frame::SerializeType;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Flag bit 0: the frame is a response.
pub const FLAG_RESPONSE: i32 = 0x1;
/// Flag bit 1: the requester will not read an answer.
pub const FLAG_ONEWAY: i32 = 0x2;
/// Bytes of the fixed part of a binary header (framing.md §2.2).
const BINARY_FIXED_BYTES: usize = 21;

/// Language names by code (framing.md §5).
const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST",
    "NODE_JS",
];

/// A decoded header. Ext field values are always text on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub code: i32,
    /// Language code (framing.md §5); `None` when absent or unknown, as Java decodes it.
    pub language: Option<u8>,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    /// `None` when the header had no extFields at all.
    pub ext_fields: Option<Vec<(String, String)>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct HeaderError(pub String);

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Header {
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// The value of an ext field; an empty value counts as absent only in binary headers,
    /// where the decoder already dropped it (framing.md §2.2).
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.as_ref()?.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn decode(serialize_type: SerializeType, bytes: &[u8]) -> Result<Header, HeaderError> {
        match serialize_type {
            SerializeType::Json => decode_json(bytes),
            SerializeType::RocketMq => decode_binary(bytes),
        }
    }
}

/// Java's `Boolean.parseBoolean`: only case-insensitive `true` is true.
pub fn parse_java_bool(value: &str) -> bool {
    value.eq_ignore_ascii_case("true")
}

pub fn language_code(name: &str) -> Option<u8> {
    LANGUAGES.iter().position(|l| *l == name).map(|i| i as u8)
}

pub fn language_name(code: u8) -> Option<&'static str> {
    LANGUAGES.get(code as usize).copied()
}

// ---------- JSON form ----------

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

fn decode_json(bytes: &[u8]) -> Result<Header, HeaderError> {
    // Every request passes here; the scanner reads the usual shape in a fraction of serde's
    // time and leaves anything else (and every error message) to it.
    if let Ok(header) = super::scan::json_header(bytes) {
        return Ok(header);
    }
    decode_json_serde(bytes)
}

/// The reference decoder, with fastjson's leniencies (framing.md §3).
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

// ---------- binary (ROCKETMQ) form ----------

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], HeaderError> {
        if self.bytes.len() - self.at < n {
            return Err(HeaderError(format!(
                "binary header: {what} of {n} bytes runs past the header end ({} bytes left)",
                self.bytes.len() - self.at
            )));
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn i16(&mut self, what: &str) -> Result<i16, HeaderError> {
        Ok(i16::from_be_bytes(self.take(2, what)?.try_into().expect("took 2 bytes")))
    }
    fn i32(&mut self, what: &str) -> Result<i32, HeaderError> {
        Ok(i32::from_be_bytes(self.take(4, what)?.try_into().expect("took 4 bytes")))
    }
    fn len(&mut self, what: &str, raw: i64) -> Result<usize, HeaderError> {
        if raw < 0 {
            return Err(HeaderError(format!("binary header: negative {what} length {raw}")));
        }
        Ok(raw as usize)
    }
    fn text(&mut self, n: usize, what: &str) -> Result<Option<String>, HeaderError> {
        let b = self.take(n, what)?;
        if b.is_empty() {
            return Ok(None);
        }
        String::from_utf8(b.to_vec()).map(Some).map_err(|_| HeaderError(format!("binary header: {what} is not UTF-8")))
    }
}

fn decode_binary(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() < BINARY_FIXED_BYTES {
        return Err(HeaderError(format!("binary header of {} bytes < {BINARY_FIXED_BYTES}", bytes.len())));
    }
    let mut r = Reader { bytes, at: 0 };
    let code = r.i16("code")? as i32;
    let language_raw = r.take(1, "language")?[0];
    let language = language_name(language_raw).map(|_| language_raw);
    let version = r.i16("version")? as i32;
    let opaque = r.i32("opaque")?;
    let flag = r.i32("flag")?;
    let raw = r.i32("remark length")? as i64;
    let remark_len = r.len("remark", raw)?;
    let remark = r.text(remark_len, "remark")?;
    let raw = r.i32("extFields length")? as i64;
    let ext_len = r.len("extFields", raw)?;
    let ext_block = r.take(ext_len, "extFields")?;
    let mut fields = Vec::new();
    let mut e = Reader { bytes: ext_block, at: 0 };
    while e.at < ext_block.len() {
        let raw = e.i16("ext key length")? as i64;
        let key_len = e.len("ext key", raw)?;
        let key = e.text(key_len, "ext key")?;
        let raw = e.i32("ext value length")? as i64;
        let value_len = e.len("ext value", raw)?;
        let value = e.text(value_len, "ext value")?;
        // Java decodes zero-length strings as null, and a null key or value is as if absent.
        if let (Some(k), Some(v)) = (key, value) {
            fields.push((k, v));
        }
    }
    Ok(Header {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        // Java's binary decoder always builds a map, so presence is what matters for req checks.
        ext_fields: Some(fields),
    })
}

// ---------- encoding ----------

/// What we put in a header we send. Java answers always come in JSON (framing.md §3).
pub struct HeaderOut<'a> {
    pub code: i32,
    pub language: u8,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<&'a str>,
    /// `None` omits the key; `Some(&[])` writes `"extFields":{}` as Java does for typed
    /// response headers that end up empty.
    pub ext_fields: Option<&'a [(&'a str, &'a str)]>,
}

impl<'a> HeaderOut<'a> {
    /// A response header as the Java NameServer writes it.
    pub fn response(
        code: i32,
        opaque: i32,
        remark: Option<&'a str>,
        ext_fields: Option<&'a [(&'a str, &'a str)]>,
    ) -> Self {
        HeaderOut { code, language: 0, version: VERSION_CURRENT, opaque, flag: FLAG_RESPONSE, remark, ext_fields }
    }

    pub fn encode(&self, serialize_type: SerializeType, out: &mut Vec<u8>) {
        match serialize_type {
            SerializeType::Json => self.encode_json(out),
            SerializeType::RocketMq => self.encode_binary(out),
        }
    }

    fn encode_json(&self, out: &mut Vec<u8>) {
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

    fn encode_binary(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.code as i16).to_be_bytes());
        out.push(self.language);
        out.extend_from_slice(&(self.version as i16).to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        let remark = self.remark.unwrap_or("");
        out.extend_from_slice(&(remark.len() as i32).to_be_bytes());
        out.extend_from_slice(remark.as_bytes());
        let fields = self.ext_fields.unwrap_or(&[]);
        let ext_len: usize =
            fields.iter().filter(|(k, v)| !k.is_empty() && !v.is_empty()).map(|(k, v)| 6 + k.len() + v.len()).sum();
        out.extend_from_slice(&(ext_len as i32).to_be_bytes());
        for (k, v) in fields.iter().filter(|(k, v)| !k.is_empty() && !v.is_empty()) {
            out.extend_from_slice(&(k.len() as i16).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as i32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn check_json(input: &str, expected: Header) {
        assert_eq!(Header::decode(SerializeType::Json, input.as_bytes()), Ok(expected));
    }

    fn ext(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn java_json_request_decodes() {
        check_json(
            r#"{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#,
            Header {
                code: 105,
                language: Some(0),
                version: 479,
                opaque: 1,
                flag: 0,
                remark: None,
                ext_fields: ext(&[("topic", "TopicTest")]),
            },
        );
    }

    #[test]
    fn lenient_json_forms_decode() {
        // Go client: other order, empty remark, no serializeTypeCurrentRPC.
        check_json(
            r#"{"code":105,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"topic":"T"}}"#,
            Header {
                code: 105,
                language: Some(9),
                version: 317,
                opaque: 1,
                flag: 0,
                remark: Some(String::new()),
                ext_fields: ext(&[("topic", "T")]),
            },
        );
        // rocketmq-rust: explicit nulls; scalar ext values stringified; unknown language.
        check_json(
            r#"{"code":104,"language":"KLINGON","remark":null,"extFields":{"brokerId":0,"x":true,"n":null}}"#,
            Header { code: 104, ext_fields: ext(&[("brokerId", "0"), ("x", "true")]), ..Header::default() },
        );
        check_json(r#"{"code":"106","extFields":null}"#, Header { code: 106, ..Header::default() });
        assert!(Header::decode(SerializeType::Json, b"{\"code\":").is_err());
        assert!(Header::decode(SerializeType::Json, b"{\"code\":99999999999}").is_err());
    }

    #[test]
    fn binary_request_example_decodes() {
        // framing.md §8.2, header part only.
        let h = hex("00690001 df000000 01000000 00000000 00000000 14000574 6f706963 00000009 546f7069 63546573 74");
        assert_eq!(
            Header::decode(SerializeType::RocketMq, &h),
            Ok(Header {
                code: 105,
                language: Some(0),
                version: 479,
                opaque: 1,
                flag: 0,
                remark: None,
                ext_fields: ext(&[("topic", "TopicTest")])
            })
        );
    }

    #[test]
    fn binary_lies_are_errors() {
        // Remark length past the end.
        assert!(
            Header::decode(SerializeType::RocketMq, &hex("0069 00 01df 00000001 00000000 000000ff 00000000")).is_err()
        );
        // Negative ext length.
        assert!(
            Header::decode(SerializeType::RocketMq, &hex("0069 00 01df 00000001 00000000 00000000 ffffffff")).is_err()
        );
        // Ext entry value length past the block.
        assert!(Header::decode(
            SerializeType::RocketMq,
            &hex("0069 00 01df 00000001 00000000 00000000 00000007 0001 61 00000009")
        )
        .is_err());
        // Too short.
        assert!(Header::decode(SerializeType::RocketMq, &hex("0069")).is_err());
    }

    #[test]
    fn binary_empty_value_is_absent() {
        let h = hex("0067 00 01df 00000001 00000000 00000000 00000012 0005 746f706963 00000000 0001 61 00000000");
        let header = Header::decode(SerializeType::RocketMq, &h).unwrap();
        assert_eq!(header.ext("topic"), None);
        assert_eq!(header.ext_fields, Some(vec![]));
    }

    #[test]
    fn response_json_matches_java_bytes() {
        // framing.md §8.3 and the golden 103 answer to a slave.
        let mut out = Vec::new();
        HeaderOut::response(0, 1, None, None).encode(SerializeType::Json, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"code":0,"flag":1,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#
        );
        let mut out = Vec::new();
        let fields = [("haServerAddr", "127.0.0.1:41012"), ("masterAddr", "127.0.0.1:41011")];
        HeaderOut::response(0, 3, None, Some(&fields)).encode(SerializeType::Json, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"code":0,"extFields":{"haServerAddr":"127.0.0.1:41012","masterAddr":"127.0.0.1:41011"},"flag":1,"language":"JAVA","opaque":3,"serializeTypeCurrentRPC":"JSON","version":479}"#
        );
        let mut out = Vec::new();
        HeaderOut::response(17, 2, Some("a\nb \"c\""), None).encode(SerializeType::Json, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"code":17,"flag":1,"language":"JAVA","opaque":2,"remark":"a\nb \"c\"","serializeTypeCurrentRPC":"JSON","version":479}"#
        );
    }

    #[test]
    fn response_binary_matches_java_bytes() {
        // framing.md §8.4 header (remark shortened).
        let mut out = Vec::new();
        let remark = "No topic route info in name server for the topic: X";
        HeaderOut::response(17, 2, Some(remark), None).encode(SerializeType::RocketMq, &mut out);
        let expected = hex("00110001 df000000 02000000 01000000 334e6f20 746f7069 6320726f 75746520 696e666f 20696e20 6e616d65 20736572 76657220 666f7220 74686520 746f7069 633a2058 00000000");
        assert_eq!(out, expected);
        let back = Header::decode(SerializeType::RocketMq, &out).unwrap();
        assert_eq!(back.remark.as_deref(), Some(remark));
        assert_eq!(back.code, 17);
    }
}
