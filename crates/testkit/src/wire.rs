//! Frame helpers: encode a request (JSON or ROCKETMQ binary header) with its own small
//! encoder, split and decode an answer frame. Must not: use Meridian's header encoder, so a
//! codec bug cannot cancel itself out between request and answer.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::TcpStream;

/// Bytes of the frame's total-length prefix.
pub const PREFIX_BYTES: usize = 4;

/// Java's language names by code.
const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST",
    "NODE_JS",
];

/// Serialize type byte of a JSON header.
pub const SERIALIZE_JSON: u8 = 0;
/// Serialize type byte of a ROCKETMQ binary header.
pub const SERIALIZE_ROCKETMQ: u8 = 1;

/// A whole frame: total length, header word, header, body.
pub fn frame(serialize_type: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    assert!(header.len() <= 0x00FF_FFFF, "header {} bytes", header.len());
    let total_len = 4 + header.len() + body.len();
    let mut out = Vec::with_capacity(PREFIX_BYTES + total_len);
    out.extend_from_slice(&(total_len as u32).to_be_bytes());
    out.extend_from_slice(&(((serialize_type as u32) << 24) | header.len() as u32).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

/// One request to send. Built with `Request::new(code)` and the setters below.
#[derive(Debug, Clone)]
pub struct Request {
    pub code: i32,
    pub language: u8,
    pub version: i32,
    /// `None` takes the client's next opaque.
    pub opaque: Option<i32>,
    pub flag: i32,
    pub remark: Option<String>,
    /// `None` omits extFields from the JSON header.
    pub ext: Option<Vec<(String, String)>>,
    pub body: Vec<u8>,
    /// Send a ROCKETMQ binary header instead of JSON.
    pub binary: bool,
}

/// Flag bit 1: the requester will not read an answer.
pub const FLAG_ONEWAY: i32 = 0x2;
/// Flag bit 0: the frame is a response.
pub const FLAG_RESPONSE: i32 = 0x1;

impl Request {
    pub fn new(code: i32) -> Request {
        Request {
            code,
            language: 0,
            version: 479,
            opaque: None,
            flag: 0,
            remark: None,
            ext: None,
            body: Vec::new(),
            binary: false,
        }
    }

    pub fn ext(mut self, key: &str, value: impl ToString) -> Request {
        self.ext.get_or_insert_with(Vec::new).push((key.to_string(), value.to_string()));
        self
    }

    pub fn version(mut self, version: i32) -> Request {
        self.version = version;
        self
    }

    pub fn opaque(mut self, opaque: i32) -> Request {
        self.opaque = Some(opaque);
        self
    }

    pub fn oneway(mut self) -> Request {
        self.flag |= FLAG_ONEWAY;
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    pub fn binary(mut self) -> Request {
        self.binary = true;
        self
    }

    pub fn language(mut self, language: u8) -> Request {
        self.language = language;
        self
    }

    /// The whole frame with `opaque`.
    pub fn encode(&self, opaque: i32) -> Vec<u8> {
        if self.binary {
            frame(SERIALIZE_ROCKETMQ, &self.binary_header(opaque), &self.body)
        } else {
            frame(SERIALIZE_JSON, &self.json_header(opaque), &self.body)
        }
    }

    /// Java's shape: alphabetical keys (serde_json's default map is sorted), nulls omitted.
    fn json_header(&self, opaque: i32) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        header.insert("code".into(), self.code.into());
        if let Some(ext) = &self.ext {
            let fields: serde_json::Map<String, serde_json::Value> =
                ext.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            header.insert("extFields".into(), fields.into());
        }
        header.insert("flag".into(), self.flag.into());
        if let Some(name) = LANGUAGES.get(self.language as usize) {
            header.insert("language".into(), (*name).into());
        }
        header.insert("opaque".into(), opaque.into());
        if let Some(remark) = &self.remark {
            header.insert("remark".into(), remark.clone().into());
        }
        header.insert("serializeTypeCurrentRPC".into(), "JSON".into());
        header.insert("version".into(), self.version.into());
        serde_json::to_vec(&header).expect("a map of strings and numbers serializes")
    }

    /// The ROCKETMQ binary header: code, language, version, opaque, flag, remark, ext fields.
    fn binary_header(&self, opaque: i32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.code as i16).to_be_bytes());
        out.push(self.language);
        out.extend_from_slice(&(self.version as i16).to_be_bytes());
        out.extend_from_slice(&opaque.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        let remark = self.remark.as_deref().unwrap_or("");
        out.extend_from_slice(&(remark.len() as i32).to_be_bytes());
        out.extend_from_slice(remark.as_bytes());
        let mut ext = Vec::new();
        for (k, v) in self.ext.iter().flatten() {
            ext.extend_from_slice(&(k.len() as i16).to_be_bytes());
            ext.extend_from_slice(k.as_bytes());
            ext.extend_from_slice(&(v.len() as i32).to_be_bytes());
            ext.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(&(ext.len() as i32).to_be_bytes());
        out.extend_from_slice(&ext);
        out
    }
}

/// One decoded answer frame.
#[derive(Debug, Clone)]
pub struct Reply {
    pub serialize_type: u8,
    /// The header as JSON (a binary header is converted to the JSON key names).
    pub header: serde_json::Value,
    /// The header bytes as received.
    pub header_bytes: Vec<u8>,
    pub body: Vec<u8>,
}

impl Reply {
    fn int(&self, key: &str) -> i64 {
        self.header[key].as_i64().unwrap_or_else(|| panic!("header {key} missing or not a number: {}", self.header))
    }

    pub fn code(&self) -> i32 {
        self.int("code") as i32
    }

    pub fn opaque(&self) -> i32 {
        self.int("opaque") as i32
    }

    pub fn flag(&self) -> i32 {
        self.int("flag") as i32
    }

    pub fn remark(&self) -> Option<&str> {
        self.header.get("remark").and_then(|r| r.as_str())
    }

    /// extFields, or `None` when the header has none.
    pub fn ext(&self) -> Option<BTreeMap<String, String>> {
        let fields = self.header.get("extFields")?.as_object()?;
        Some(
            fields.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect(),
        )
    }

    pub fn ext_field(&self, key: &str) -> Option<String> {
        self.ext().and_then(|e| e.get(key).cloned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The header without `opaque`, for comparing with a golden answer.
    pub fn header_without_opaque(&self) -> serde_json::Value {
        without_opaque(&self.header)
    }
}

pub fn without_opaque(header: &serde_json::Value) -> serde_json::Value {
    let mut header = header.clone();
    if let Some(map) = header.as_object_mut() {
        map.remove("opaque");
    }
    header
}

/// Reads one whole frame (length prefix included) off `stream`. A length prefix below the
/// header word or above `frameBytesMax` is `InvalidData`, so garbage never allocates.
pub fn read_frame(stream: &mut impl Read, frame_bytes_max: usize) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; PREFIX_BYTES];
    stream.read_exact(&mut prefix)?;
    let total_len = u32::from_be_bytes(prefix) as usize;
    if !(4..=frame_bytes_max).contains(&total_len) {
        let text = format!("frame length prefix {total_len} outside 4..={frame_bytes_max}");
        return Err(io::Error::new(io::ErrorKind::InvalidData, text));
    }
    let mut whole = vec![0u8; PREFIX_BYTES + total_len];
    whole[..PREFIX_BYTES].copy_from_slice(&prefix);
    stream.read_exact(&mut whole[PREFIX_BYTES..])?;
    Ok(whole)
}

/// Largest request a fake NameServer of the tests accepts.
const REQUEST_FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// For fake NameServers: reads one request frame off `stream` and returns its opaque;
/// `None` when the stream ends or errs first.
pub fn read_request_opaque(stream: &mut TcpStream) -> Option<i64> {
    let whole = read_frame(stream, REQUEST_FRAME_BYTES_MAX).ok()?;
    let (serialize_type, header, _) = split_frame(&whole);
    header_json(serialize_type, &header)["opaque"].as_i64()
}

/// Splits a whole frame into (serialize type, header bytes, body).
pub fn split_frame(frame: &[u8]) -> (u8, Vec<u8>, Vec<u8>) {
    assert!(frame.len() >= 8, "frame of {} bytes", frame.len());
    let total_len = u32::from_be_bytes(frame[0..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(total_len + PREFIX_BYTES, frame.len(), "length prefix disagrees with the frame");
    let word = u32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
    let header_len = (word & 0x00FF_FFFF) as usize;
    ((word >> 24) as u8, frame[8..8 + header_len].to_vec(), frame[8 + header_len..].to_vec())
}

/// Decodes a header of either serialize type into JSON.
pub fn header_json(serialize_type: u8, header: &[u8]) -> serde_json::Value {
    match serialize_type {
        SERIALIZE_JSON => serde_json::from_slice(header)
            .unwrap_or_else(|e| panic!("JSON header {:?}: {e}", String::from_utf8_lossy(header))),
        SERIALIZE_ROCKETMQ => {
            use meridian_protocol::frame::SerializeType;
            use meridian_protocol::header::Header;
            let h = Header::decode(SerializeType::RocketMq, header).unwrap_or_else(|e| panic!("binary header: {e}"));
            let mut map = serde_json::Map::new();
            map.insert("code".into(), h.code.into());
            if let Some(ext) = h.ext_fields {
                let fields: serde_json::Map<String, serde_json::Value> =
                    ext.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
                map.insert("extFields".into(), fields.into());
            }
            map.insert("flag".into(), h.flag.into());
            if let Some(name) = h.language.and_then(|l| LANGUAGES.get(l as usize)) {
                map.insert("language".into(), (*name).into());
            }
            map.insert("opaque".into(), h.opaque.into());
            if let Some(remark) = h.remark {
                map.insert("remark".into(), remark.into());
            }
            map.insert("version".into(), h.version.into());
            map.into()
        }
        other => panic!("unknown serialize type {other} in an answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_frame_reads_back_whole_and_splits_into_its_parts() {
        let request = Request::new(105).ext("topic", "T").body(b"xy".to_vec());
        let bytes = request.encode(7);
        let whole = read_frame(&mut &bytes[..], 1024).expect("a whole frame");
        assert_eq!(whole, bytes);
        let (serialize_type, header, body) = split_frame(&whole);
        assert_eq!((serialize_type, body.as_slice()), (SERIALIZE_JSON, &b"xy"[..]));
        let header = header_json(serialize_type, &header);
        assert_eq!((header["code"].as_i64(), header["opaque"].as_i64()), (Some(105), Some(7)));
        assert_eq!(header["extFields"]["topic"], "T");
    }

    #[test]
    fn a_length_prefix_out_of_bounds_is_invalid_data_without_allocating() {
        for prefix in [0u32, 3, 1025, u32::MAX] {
            let bytes = prefix.to_be_bytes();
            let error = read_frame(&mut &bytes[..], 1024).expect_err("out of bounds");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "prefix {prefix}");
        }
    }

    #[test]
    fn a_binary_header_decodes_to_the_json_key_names() {
        let bytes = Request::new(105).ext("topic", "T").binary().encode(9);
        let (serialize_type, header, _) = split_frame(&bytes);
        let header = header_json(serialize_type, &header);
        assert_eq!((serialize_type, header["opaque"].as_i64()), (SERIALIZE_ROCKETMQ, Some(9)));
        assert_eq!(header["extFields"]["topic"], "T");
    }
}
