//! JSON request headers: the scanner (fast path) and the serde decoder (reference) must
//! agree whenever the scanner answers, and neither may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meridian_protocol::header::decode_json_serde;
use meridian_protocol::header::scan;

fuzz_target!(|data: &[u8]| {
    let reference = decode_json_serde(data);
    if let Ok(scanned) = scan::json_header(data) {
        match reference {
            Ok(r) => assert_eq!(scanned, r, "scanner and serde differ"),
            Err(e) => panic!("the scanner accepted a header serde refuses: {e}"),
        }
    }
});
