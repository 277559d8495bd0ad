//! The ROCKETMQ binary form of the header (Java's `RocketMQSerializable`): a fixed part,
//! then length-prefixed remark and ext fields. Every length is checked against what is left.
//! Must not: trust a length before checking it, or touch route state.

use super::model::{language_name, Header, HeaderError, HeaderOut};

/// Bytes of the fixed part of a binary header: code i16, language u8, version i16,
/// opaque i32, flag i32, remark length i32, ext length i32.
const BINARY_FIXED_BYTES: usize = 21;

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

pub(super) fn decode_binary(bytes: &[u8]) -> Result<Header, HeaderError> {
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

impl HeaderOut<'_> {
    pub(super) fn encode_binary(&self, out: &mut Vec<u8>) {
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
