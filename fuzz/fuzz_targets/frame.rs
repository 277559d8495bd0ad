//! Arbitrary bytes as a connection's input: frame checks, splitting and both header forms
//! must never panic, and `check` must never accept a frame it cannot split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use meridian_protocol::frame::{self, FrameError};
use meridian_protocol::header::Header;

const FRAME_BYTES_MAX: u32 = 1 << 20;
const HEADER_BYTES_MAX: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Several frames back to back, as a read may bring them.
    while let Ok(frame_bytes) = frame::check(rest, FRAME_BYTES_MAX, HEADER_BYTES_MAX) {
        assert!(frame_bytes <= rest.len() && frame_bytes >= 8, "check accepted {frame_bytes} of {}", rest.len());
        let parts = frame::split(rest, frame_bytes);
        assert!(parts.header.end <= frame_bytes && parts.body.end == frame_bytes);
        let _ = Header::decode(parts.serialize_type, &rest[parts.header.clone()]);
        rest = &rest[frame_bytes..];
    }
    if let Err(FrameError::Incomplete) = frame::check(rest, FRAME_BYTES_MAX, HEADER_BYTES_MAX) {
        let _ = frame::peek_frame_len(rest, FRAME_BYTES_MAX);
    }
});
