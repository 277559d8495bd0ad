//! The RemotingCommand header in its JSON and ROCKETMQ binary forms, with its ext fields.
//!
//! Decoding is lenient the way fastjson is (any key order, unknown keys, missing keys with
//! Java's defaults, scalar ext values stringified); encoding reproduces Java's bytes exactly
//! (alphabetical keys, `serializeTypeCurrentRPC`, nulls omitted, no whitespace). The
//! value types live in `model`; `json`, `binary` and `scan` only read and write bytes, and
//! this module picks among them. Java's side is `RemotingCommand` with
//! `RemotingSerializable` (JSON) and `RocketMQSerializable` (binary).
//! Must not: touch route state.

mod binary;
mod json;
mod model;
pub mod scan;

use crate::frame::{self, SerializeType};

pub use json::{decode_json_serde, write_json_str};
pub use model::{
    language_code, language_name, parse_java_bool, Header, HeaderError, HeaderOut, FLAG_ONEWAY, FLAG_RESPONSE,
};

impl Header {
    pub fn decode(serialize_type: SerializeType, bytes: &[u8]) -> Result<Header, HeaderError> {
        match serialize_type {
            SerializeType::Json => decode_json(bytes),
            SerializeType::RocketMq => binary::decode_binary(bytes),
        }
    }
}

impl<'a> HeaderOut<'a> {
    /// A request header as clients and brokers write it: no remark, flag 0 (set `flag` to
    /// `FLAG_ONEWAY` for a request that wants no answer). Java leaves `extFields` out for a
    /// request without a custom header, which `ext_fields: None` does.
    pub fn request(
        code: i32,
        language: u8,
        version: i32,
        opaque: i32,
        ext_fields: Option<&'a [(&'a str, &'a str)]>,
    ) -> HeaderOut<'a> {
        HeaderOut { code, language, version, opaque, flag: 0, remark: None, ext_fields }
    }

    pub fn encode(&self, serialize_type: SerializeType, out: &mut Vec<u8>) {
        match serialize_type {
            SerializeType::Json => self.encode_json(out),
            SerializeType::RocketMq => self.encode_binary(out),
        }
    }

    /// Appends a whole frame: length prefix, header word, this header, then `body`.
    pub fn encode_frame(&self, serialize_type: SerializeType, body: &[u8], out: &mut Vec<u8>) {
        let mut header = Vec::with_capacity(HEADER_BYTES_TYPICAL);
        self.encode(serialize_type, &mut header);
        frame::encode(out, serialize_type, &header, body);
    }
}

/// Room reserved for an encoded header: a request with a few ext fields fits.
const HEADER_BYTES_TYPICAL: usize = 160;

fn decode_json(bytes: &[u8]) -> Result<Header, HeaderError> {
    // Every request passes here; the scanner reads the usual shape in a fraction of serde's
    // time and leaves anything else (and every error message) to it.
    if let Ok(header) = scan::json_header(bytes) {
        return Ok(header);
    }
    decode_json_serde(bytes)
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
        // A Java client's binary GET_ROUTEINFO_BY_TOPIC request, header part only.
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
        // The golden 103 answer to a slave (testdata/golden).
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
        // A Java NameServer's binary answer header (remark shortened).
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
