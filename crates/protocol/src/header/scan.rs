//! The fast path for JSON request headers: reads the usual shape (integers as numbers,
//! language by name, string ext values) in one forward pass and leaves anything else, and
//! every error message, to the serde decoder in `json`.
//! Must not: recurse, or answer differently from the serde path (the tests hold it to that).

use super::model::{language_code, Header};
use crate::cursor::{set_once, Cursor, Scan};

pub use crate::cursor::Fallback;

/// Decodes a JSON RemotingCommand header of the usual shape (integers as numbers, language
/// by name, string ext values); anything else goes to the serde decoder in `header`.
pub fn json_header(json: &[u8]) -> Scan<Header> {
    let mut c = Cursor::new(json);
    let mut ints: [Option<i32>; 4] = [None; 4];
    let mut language: Option<Option<u8>> = None;
    let mut remark: Option<Option<String>> = None;
    let mut ext_fields: Option<Option<Vec<(String, String)>>> = None;
    c.object(|c, key| {
        let slot = match key {
            b"code" => 0,
            b"version" => 1,
            b"opaque" => 2,
            b"flag" => 3,
            b"language" => {
                let name = c.nullable(Cursor::plain_str)?;
                // An unknown name decodes as no language, as in the serde path.
                let code = name.and_then(|n| std::str::from_utf8(n).ok()).and_then(language_code);
                return set_once(&mut language, code);
            }
            b"remark" => return set_once(&mut remark, c.nullable(Cursor::plain_string)?),
            b"extFields" => return set_once(&mut ext_fields, c.nullable(Cursor::attributes)?),
            _ => return c.skip_value(),
        };
        // `null` is 0 in the serde path; a second occurrence is its error.
        let value = if c.null()? { 0 } else { c.i32()? };
        set_once(&mut ints[slot], value)
    })?;
    c.end()?;
    Ok(Header {
        code: ints[0].unwrap_or(0),
        language: language.flatten(),
        version: ints[1].unwrap_or(0),
        opaque: ints[2].unwrap_or(0),
        flag: ints[3].unwrap_or(0),
        remark: remark.flatten(),
        ext_fields: ext_fields.flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn show(json: &[u8]) -> String {
        let text = String::from_utf8_lossy(json);
        text.chars().take(400).collect()
    }

    // --- JSON headers -------------------------------------------------------------------

    fn header_agrees(json: &[u8]) -> bool {
        let reference = crate::header::decode_json_serde(json);
        match json_header(json) {
            Ok(scanned) => {
                match &reference {
                    Ok(r) => assert_eq!(&scanned, r, "scanner and serde differ on header {}", show(json)),
                    Err(e) => panic!("the scanner accepted a header serde refuses ({e}): {}", show(json)),
                }
                true
            }
            Err(Fallback) => false,
        }
    }

    #[test]
    fn golden_headers_scan_exactly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden");
        let (mut total, mut scanned) = (0, 0);
        for file in ["java-5.3.3-examples.jsonl", "rocketmq-rust-broker-1.0.0.jsonl"] {
            let text = std::fs::read_to_string(dir.join(file)).expect("golden file");
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                for side in ["request", "response"] {
                    let (Some(hex), Some("JSON")) =
                        (v[format!("{side}_hex")].as_str(), v[format!("{side}_serialize_type")].as_str())
                    else {
                        continue;
                    };
                    let frame: Vec<u8> =
                        (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
                    let header_bytes = u32::from_be_bytes([0, frame[5], frame[6], frame[7]]) as usize;
                    let header = &frame[8..8 + header_bytes];
                    total += 1;
                    scanned += usize::from(header_agrees(header));
                }
            }
        }
        // Real peers' headers are the scanner's to read (the odd one may carry an escape).
        assert!(total > 60 && scanned * 10 >= total * 9, "{scanned} of {total} golden JSON headers scanned");
    }

    #[test]
    fn header_edge_cases() {
        let cases: &[(&str, bool)] = &[
            (
                r#"{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":7,"serializeTypeCurrentRPC":"JSON","version":479}"#,
                true,
            ),
            (r#"{"code":105,"language":"NOPE","remark":null,"extFields":null}"#, true),
            (r#"{"code":null,"extFields":{"a":null,"b":"x","b":"y"}}"#, true),
            ("{}", true),
            (r#"{"code":"105"}"#, false),
            (r#"{"code":105,"code":106}"#, false),
            (r#"{"code":4294967296}"#, false),
            (r#"{"code":1.5}"#, false),
            (r#"{"language":12}"#, false),
            (r#"{"remark":"a\nb"}"#, false),
            (r#"{"extFields":{"a":1,"b":true}}"#, false),
            (r#"{"extFields":"x"}"#, false),
            (r#"{"code":105}x"#, false),
            (r#"[]"#, false),
        ];
        for (json, scanned) in cases {
            assert_eq!(header_agrees(json.as_bytes()), *scanned, "{json}");
        }
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i32>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("null".to_string()),
            any::<i32>().prop_map(|n| format!("\"{n}\"")),
            "[A-Z_]{0,8}".prop_map(|s| format!("\"{s}\"")),
            "[a-z\\\\\"]{0,4}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("1.0".to_string()),
            Just("true".to_string()),
            prop::collection::vec(
                (
                    "[a-zA-Z]{1,6}",
                    prop_oneof![
                        "[a-z0-9:.]{0,8}".prop_map(|s| format!("\"{s}\"")),
                        Just("null".to_string()),
                        any::<i32>().prop_map(|n| n.to_string()),
                    ]
                ),
                0..4
            )
            .prop_map(|v| {
                let members: Vec<String> = v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]
        #[test]
        fn generated_headers_agree_with_serde(
            fields in prop::collection::vec((prop_oneof![
                Just("code"), Just("version"), Just("opaque"), Just("flag"), Just("language"),
                Just("remark"), Just("extFields"), Just("serializeTypeCurrentRPC"), Just("other"),
            ], header_value()), 0..9)
        ) {
            let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            header_agrees(format!("{{{}}}", members.join(",")).as_bytes());
        }
    }
}
