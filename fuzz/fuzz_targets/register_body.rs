//! REGISTER_BROKER bodies in every form. The first byte picks the form (JSON, RocketMQ's
//! compressed layout, zstd) and the request version; the rest is the body. Never a panic,
//! never more than the decompression cap, and for JSON the scanner agrees with serde.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meridian_protocol::body::{decode_register_body, decode_register_body_json_serde, BodyEncoding};
use meridian_protocol::body::scan;

const DECOMPRESSED_BYTES_MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let version = if selector & 0x80 != 0 { 36 } else { 479 };
    let encoding = match selector % 3 {
        0 => BodyEncoding::Json,
        1 => BodyEncoding::Compressed,
        _ => BodyEncoding::Zstd,
    };
    let decoded = decode_register_body(body, version, encoding, DECOMPRESSED_BYTES_MAX);
    if let Ok(decoded) = &decoded {
        assert!(decoded.topic_configs.len() <= DECOMPRESSED_BYTES_MAX, "more topics than bytes");
    }
    if matches!(encoding, BodyEncoding::Json) {
        let reference = decode_register_body_json_serde(body, version);
        if let Ok(scanned) = scan::register_body(body, version) {
            match reference {
                Ok(r) => assert_eq!(scanned, r, "scanner and serde differ"),
                Err(e) => panic!("the scanner accepted a body serde refuses: {e}"),
            }
        }
    }
});
