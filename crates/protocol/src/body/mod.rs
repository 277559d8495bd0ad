//! Typed bodies of the NameServer requests and answers, and their JSON / compressed forms.
//!
//! Owns: decoding registration bodies (RegisterBrokerBody JSON in its 4.x and 5.x shapes,
//! the pre-V3_0_11 bare TopicConfigSerializeWrapper, RocketMQ's deflate "compressed" layout
//! wrapped in zlib (Java brokers) or raw deflate (rocketmq-rust brokers), and Meridian's
//! opt-in zstd extension), the CRC32 check, and encoding every answer body in Java's exact
//! JSON flavours (fastjson default "legacy" form and the "standard" form).
//! Must not: touch route state, or allocate past `decompressed_bytes_max` before checking it.
//!
//! Layout: `model` holds the types, `registration` the decoded registration on top of them
//! (`RegisterBrokerBody`, its topics as one `TopicConfigs`); `decode` (serde), `scan` (the
//! fast path), `encode` and `compress` read and write bytes and import only those two and
//! each other downwards (compress → decode → scan, compress → encode); this module picks
//! among them, and no child imports it.

mod compress;
mod decode;
mod encode;
#[cfg(test)]
mod gate_tests;
mod model;
mod registration;
#[cfg(test)]
mod resend_tests;
pub mod scan;
#[cfg(test)]
mod tests;

pub use compress::encode_register_body_compressed;
pub use decode::{
    decode_answer_json, decode_data_version, decode_register_body_json_serde, decode_register_topic_queue_datas,
};
pub use encode::*;
pub use model::*;
pub use registration::{
    member_hash, DeltaOp, MemberPrint, MemberPrints, NamesTooLong, RegisterBrokerBody, TopicConfigRef, TopicConfigs,
    TopicFields, TopicsDelta,
};

use compress::{decode_compressed_register_body, is_zlib_header, zstd_decompress_capped};
use decode::decode_register_body_json;
use std::time::Instant;

/// A JSON body through the scanner, fingerprinted as `prints` asks; serde decides (with
/// no fingerprints) whatever the scanner declines.
fn decode_json_resend(json: &[u8], version: i32, prints: Prints<'_>) -> Result<Decoded, BodyError> {
    let prev = match prints {
        Prints::No => {
            return decode_register_body_json(json, version).map(|body| Decoded { body, delta: None, prints: None })
        }
        Prints::Yes => None,
        Prints::Against(prev) => Some(prev),
    };
    match scan::register_body_resend(json, version, prev) {
        Ok((body, delta, prints)) => Ok(Decoded { body, delta, prints: Some(prints) }),
        Err(scan::Fallback) => {
            let body = decode_register_body_json_serde(json, version)?;
            Ok(Decoded { body, delta: None, prints: None })
        }
    }
}

/// CRC-32 (IEEE) of the body exactly as sent, masked to 31 bits like Java's
/// `UtilAll.crc32`, so it fits the positive range of the `bodyCrc32` header.
pub fn body_crc32(body: &[u8]) -> i32 {
    crc32_field(crc32fast::hash(body))
}

/// A CRC32 as the `bodyCrc32` field carries it (Java masks it to a non-negative int).
pub fn crc32_field(crc: u32) -> i32 {
    // The mask keeps the value within i32::MAX, so the cast cannot change it.
    (crc & 0x7FFF_FFFF) as i32
}

/// Checks a `bodyCrc32` header value against the body's CRC (`body_crc32`, or the same
/// value computed as the bytes arrived); 0 means the sender did not ask for a check. An
/// empty body has CRC 0, so a non-zero value with no body fails, as in Java.
pub fn check_body_crc32(crc32_expected: i32, crc32_actual: i32) -> Result<(), BodyError> {
    if crc32_expected == 0 || crc32_actual == crc32_expected {
        Ok(())
    } else {
        Err(BodyError::Crc32Mismatch { crc32_expected, crc32_actual })
    }
}

/// Decodes a REGISTER_BROKER body sent with request `version`, charging nothing.
///
/// Never inflates past `decompressed_bytes_max`. An empty body is an empty registration
/// with a zero DataVersion, as in Java's `DefaultRequestProcessor.registerBroker`.
pub fn decode_register_body(
    body: &[u8],
    version: i32,
    encoding: BodyEncoding,
    decompressed_bytes_max: usize,
) -> Result<RegisterBrokerBody, BodyError> {
    decode_register_body_metered(body, version, encoding, decompressed_bytes_max, &mut Unmetered)
}

/// [`decode_register_body`], charging to `gate` what the decode allocates beyond `body`
/// itself, before it is allocated: each growth of an inflation buffer (released with the
/// buffer) and an estimate of the decoded body (left charged: the caller holds the body).
/// The estimate for JSON is the length of the JSON: every decoded entry comes from more
/// bytes of JSON (its keys and punctuation) than its fields take once decoded.
pub fn decode_register_body_metered(
    body: &[u8],
    version: i32,
    encoding: BodyEncoding,
    decompressed_bytes_max: usize,
    gate: &mut dyn MemoryGate,
) -> Result<RegisterBrokerBody, BodyError> {
    decode_register_body_timed(body, version, encoding, decompressed_bytes_max, gate, &mut DecodeStages::default())
}

/// [`decode_register_body_metered`], also noting in `stages` how long inflating (if the
/// body is compressed) and scanning the plain bytes took. The result is the same.
pub fn decode_register_body_timed(
    body: &[u8],
    version: i32,
    encoding: BodyEncoding,
    decompressed_bytes_max: usize,
    gate: &mut dyn MemoryGate,
    stages: &mut DecodeStages,
) -> Result<RegisterBrokerBody, BodyError> {
    let decoded =
        decode_register_body_resend(body, version, encoding, decompressed_bytes_max, gate, stages, Prints::No)?;
    Ok(decoded.body)
}

/// Whether a decode fingerprints the topic table's members, and against what.
#[derive(Debug, Clone, Copy)]
pub enum Prints<'p> {
    No,
    /// Fingerprint the members (for the next body from the same broker).
    Yes,
    /// Fingerprint them and describe the table against the previous body's.
    Against(&'p MemberPrints),
}

/// What [`decode_register_body_resend`] decoded: the body, with `topic_configs` empty when
/// `delta` stands for them; the members' fingerprints when asked for and the JSON scanner
/// read the body (a compressed layout, or a body only the serde path reads, has none).
#[derive(Debug)]
pub struct Decoded {
    pub body: RegisterBrokerBody,
    pub delta: Option<TopicsDelta>,
    pub prints: Option<MemberPrints>,
}

/// [`decode_register_body_timed`] with the members fingerprinted as `prints` asks. The
/// same body comes out whether or not a delta stands for its topics (differential tests).
pub fn decode_register_body_resend(
    body: &[u8],
    version: i32,
    encoding: BodyEncoding,
    decompressed_bytes_max: usize,
    gate: &mut dyn MemoryGate,
    stages: &mut DecodeStages,
    prints: Prints<'_>,
) -> Result<Decoded, BodyError> {
    let full = |body| Decoded { body, delta: None, prints: None };
    if body.is_empty() {
        return Ok(full(RegisterBrokerBody::default()));
    }
    if version < 0 {
        return Err(BodyError::VersionNegative { version });
    }
    match encoding {
        BodyEncoding::Json => {
            // 5.x Java brokers compress with `compressed=false` in the header
            // (BrokerOuterAPI.registerBrokerAll), which a stock NameServer rejects; we
            // accept the body when it cannot be JSON and carries a valid zlib header.
            if version >= VERSION_REGISTER_BODY_MIN && !starts_like_json(body) && is_zlib_header(body) {
                decode_compressed_register_body(body, version, decompressed_bytes_max, gate, stages).map(full)
            } else {
                let scan_started = Instant::now();
                gate.reserve(body.len())?;
                let decoded = decode_json_resend(body, version, prints);
                stages.scan = scan_started.elapsed();
                decoded
            }
        }
        BodyEncoding::Compressed => {
            decode_compressed_register_body(body, version, decompressed_bytes_max, gate, stages).map(full)
        }
        BodyEncoding::Zstd => {
            let inflate_started = Instant::now();
            let json = zstd_decompress_capped(body, decompressed_bytes_max, gate)?;
            let scan_started = Instant::now();
            stages.inflate = Some(scan_started - inflate_started);
            let json_bytes = json.capacity();
            let decoded = gate.reserve(json.len()).and_then(|()| decode_json_resend(&json, version, prints));
            stages.scan = scan_started.elapsed();
            drop(json);
            gate.release(json_bytes);
            decoded
        }
    }
}

fn starts_like_json(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b == b'{')
}
