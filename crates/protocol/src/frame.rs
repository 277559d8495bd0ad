//! Bytes ⇄ `Frame`: the 4-byte total length, the header word (serialize type in the top
//! byte, header length in the low 24 bits), the header bytes and the body bytes.
//!
//! `check` answers "is a whole frame buffered?" without allocating, and keeps *incomplete*
//! (wait for more bytes) apart from *invalid* (close the peer). Must not: do I/O or know
//! what a request code means. Java's side is `NettyDecoder` and `RemotingCommand.decode`.

use bytes::{Bytes, BytesMut};
use std::fmt;

/// Bytes of the total-length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Bytes of the header word that follows the length prefix.
pub const HEADER_WORD_BYTES: usize = 4;
/// The header length field is 24 bits wide.
pub const HEADER_LEN_FIELD_MAX: u32 = 0x00FF_FFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerializeType {
    Json,
    RocketMq,
}

impl SerializeType {
    pub fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }
}

/// One frame split into its parts; nothing is decoded yet.
#[derive(Debug, Clone)]
pub struct Frame {
    pub serialize_type: SerializeType,
    pub header: Bytes,
    pub body: Bytes,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Not enough bytes buffered yet; read more.
    Incomplete,
    /// The peer sent something no RocketMQ peer sends; the connection must be closed.
    Invalid(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Incomplete => f.write_str("incomplete frame"),
            FrameError::Invalid(why) => f.write_str(why),
        }
    }
}

/// Length of the whole frame starting at `buf[0]` (prefix included) once the prefix is
/// buffered, validated against `frameBytesMax` (which counts the prefix too, as Java's
/// decoder does). Used to size the read buffer before the frame is complete.
pub fn peek_frame_len(buf: &[u8], frame_bytes_max: u32) -> Result<usize, FrameError> {
    if buf.len() < LENGTH_PREFIX_BYTES {
        return Err(FrameError::Incomplete);
    }
    let total_len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    // Java reads the prefix as a signed int: anything >= 2^31 is a negative length.
    if total_len > i32::MAX as u32 {
        return Err(FrameError::Invalid(format!("negative frame length {}", total_len as i32)));
    }
    if (total_len as usize) < HEADER_WORD_BYTES {
        return Err(FrameError::Invalid(format!(
            "frame length {total_len} bytes is shorter than the {HEADER_WORD_BYTES}-byte header word"
        )));
    }
    let frame_bytes = total_len as u64 + LENGTH_PREFIX_BYTES as u64;
    if frame_bytes > frame_bytes_max as u64 {
        return Err(FrameError::Invalid(format!("frame length {frame_bytes} bytes > frameBytesMax {frame_bytes_max}")));
    }
    Ok(frame_bytes as usize)
}

/// Checks whether `buf` starts with a whole, well-formed frame and returns its length.
pub fn check(buf: &[u8], frame_bytes_max: u32, header_bytes_max: u32) -> Result<usize, FrameError> {
    let frame_bytes = peek_frame_len(buf, frame_bytes_max)?;
    if buf.len() < LENGTH_PREFIX_BYTES + HEADER_WORD_BYTES {
        return Err(FrameError::Incomplete);
    }
    let word = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let type_code = (word >> 24) as u8;
    if type_code > 1 {
        return Err(FrameError::Invalid(format!("unknown serialize type {type_code}")));
    }
    let header_len = word & HEADER_LEN_FIELD_MAX;
    let header_room = frame_bytes - LENGTH_PREFIX_BYTES - HEADER_WORD_BYTES;
    if header_len as usize > header_room {
        return Err(FrameError::Invalid(format!(
            "header length {header_len} bytes exceeds the {header_room} bytes left in the frame"
        )));
    }
    if header_len > header_bytes_max {
        return Err(FrameError::Invalid(format!(
            "header length {header_len} bytes > headerBytesMax {header_bytes_max}"
        )));
    }
    if buf.len() < frame_bytes {
        return Err(FrameError::Incomplete);
    }
    Ok(frame_bytes)
}

/// Splits the first `frame_bytes` bytes off `buf` (already validated by `check`).
pub fn parse(buf: &mut BytesMut, frame_bytes: usize) -> Frame {
    debug_assert!(buf.len() >= frame_bytes);
    let whole = buf.split_to(frame_bytes).freeze();
    let parts = split(&whole, frame_bytes);
    Frame { serialize_type: parts.serialize_type, header: whole.slice(parts.header), body: whole.slice(parts.body) }
}

/// Where the parts of a frame lie in its buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameParts {
    pub serialize_type: SerializeType,
    pub header: std::ops::Range<usize>,
    pub body: std::ops::Range<usize>,
}

/// The parts of the frame at the start of `buf` (already validated by `check`), without
/// copying or splitting anything.
pub fn split(buf: &[u8], frame_bytes: usize) -> FrameParts {
    debug_assert!(buf.len() >= frame_bytes);
    let word = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let serialize_type = if word >> 24 == 0 { SerializeType::Json } else { SerializeType::RocketMq };
    let header_start = LENGTH_PREFIX_BYTES + HEADER_WORD_BYTES;
    let header_end = header_start + (word & HEADER_LEN_FIELD_MAX) as usize;
    FrameParts { serialize_type, header: header_start..header_end, body: header_end..frame_bytes }
}

/// Appends a frame made of an encoded header and a body to `out`.
pub fn encode(out: &mut Vec<u8>, serialize_type: SerializeType, header: &[u8], body: &[u8]) {
    assert!(header.len() as u64 <= HEADER_LEN_FIELD_MAX as u64, "header {} bytes", header.len());
    let total_len = HEADER_WORD_BYTES + header.len() + body.len();
    assert!(total_len <= i32::MAX as usize, "frame {total_len} bytes");
    out.reserve(LENGTH_PREFIX_BYTES + total_len);
    let start = out.len();
    out.extend_from_slice(&(total_len as u32).to_be_bytes());
    let word = ((serialize_type.code() as u32) << 24) | header.len() as u32;
    out.extend_from_slice(&word.to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    debug_assert_eq!(out.len() - start, LENGTH_PREFIX_BYTES + total_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 16 * 1024 * 1024;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn check_result(bytes: &[u8], expected: Result<usize, FrameError>) {
        assert_eq!(check(bytes, MAX, 64 * 1024), expected);
    }

    #[test]
    fn binary_request_example_splits() {
        // A Java client's GET_ROUTEINFO_BY_TOPIC request with a binary header.
        let bytes = hex("0000002d 01000029 00690001 df000000 01000000 00000000 00000000 14000574
             6f706963 00000009 546f7069 63546573 74");
        check_result(&bytes, Ok(49));
        let mut buf = BytesMut::from(&bytes[..]);
        let frame = parse(&mut buf, 49);
        assert_eq!(frame.serialize_type, SerializeType::RocketMq);
        assert_eq!(frame.header.len(), 41);
        assert!(frame.body.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_input_is_incomplete() {
        let bytes = hex("0000002d 01000029 0069");
        for end in 0..bytes.len() {
            check_result(&bytes[..end], Err(FrameError::Incomplete));
        }
    }

    #[test]
    fn lying_lengths_are_invalid() {
        // Header longer than the frame.
        assert!(matches!(check(&hex("00000008 00000010 00000000"), MAX, 1024), Err(FrameError::Invalid(_))));
        // Unknown serialize type.
        assert!(matches!(check(&hex("00000004 02000000"), MAX, 1024), Err(FrameError::Invalid(_))));
        // Negative length.
        assert!(matches!(check(&hex("80000000"), MAX, 1024), Err(FrameError::Invalid(_))));
        // Shorter than the header word.
        assert!(matches!(check(&hex("00000003"), MAX, 1024), Err(FrameError::Invalid(_))));
        // Over frameBytesMax: 16,777,212 is the largest accepted prefix value.
        assert_eq!(peek_frame_len(&hex("00fffffc"), MAX), Ok(MAX as usize));
        assert!(matches!(peek_frame_len(&hex("00fffffd"), MAX), Err(FrameError::Invalid(_))));
        // Over headerBytesMax.
        assert!(matches!(check(&hex("00000104 00000100"), MAX, 255), Err(FrameError::Invalid(_))));
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let mut out = Vec::new();
        encode(&mut out, SerializeType::Json, b"{\"code\":0}", b"body");
        let n = check(&out, MAX, 1024).unwrap();
        assert_eq!(n, out.len());
        let frame = parse(&mut BytesMut::from(&out[..]), n);
        assert_eq!(&frame.header[..], b"{\"code\":0}");
        assert_eq!(&frame.body[..], b"body");
    }
}
