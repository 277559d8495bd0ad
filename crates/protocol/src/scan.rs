//! A purpose-built scanner for REGISTER_BROKER JSON bodies and JSON request headers: the
//! fast path in front of the serde decoders in `body` and `header`.
//!
//! It reads the shape real brokers send (Java's fastjson, rocketmq-rust's serde) in one
//! forward pass, with no recursion and no intermediate values, and gives up — returning
//! `Fallback` — on anything it does not handle exactly: escapes in strings, `$ref`,
//! unquoted keys, non-empty static-topic mappings, duplicate fields, odd types, nesting
//! deeper than `DEPTH_MAX`. The serde path then decides (and produces the error, if any).
//! So whenever the scanner returns a body, it is the body the serde path would return; the
//! differential tests in this module hold it to that.

use super::body::{DataVersion, RegisterBrokerBody, TopicConfig, TopicFilterType, VERSION_REGISTER_BODY_MIN};
use super::header::Header;

/// Container depth the skipper follows; deeper input goes to the serde path (limit 128).
const DEPTH_MAX: usize = 64;
/// Longest integer the scanner converts itself (always fits an i64).
const INT_DIGITS_MAX: usize = 18;
/// Java's TopicConfig defaults, as in `body`.
const TOPIC_PERM_DEFAULT: i32 = 6;
const TOPIC_QUEUE_NUMS_DEFAULT: i32 = 16;

/// The scanner does not handle this input; the serde path must decide.
#[derive(Debug, PartialEq, Eq)]
pub struct Fallback;

type Scan<T> = Result<T, Fallback>;

/// What a registration says before its topics: enough to answer a re-send whose data
/// version did not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterPreamble {
    pub data_version: DataVersion,
    /// As `RegisterBrokerBody::filter_server_list`.
    pub filter_server_list: Option<Vec<String>>,
}

/// Decodes a whole REGISTER_BROKER JSON body sent with request `version`.
pub fn register_body(json: &[u8], version: i32) -> Scan<RegisterBrokerBody> {
    let mut c = Cursor { b: json, i: 0 };
    let body = if version >= VERSION_REGISTER_BODY_MIN {
        let mut filter: Option<Option<Vec<String>>> = None;
        let mut wrapper: Option<Option<Wrapper>> = None;
        c.object(|c, key| match key {
            b"filterServerList" => set_once(&mut filter, c.nullable(Cursor::str_list)?),
            b"topicConfigSerializeWrapper" => set_once(&mut wrapper, c.nullable(|c| c.wrapper(true))?),
            _ => c.skip_value(),
        })?;
        // Absent: Java's empty default list (clears filter servers); null: leave them.
        let filter_server_list = filter.unwrap_or(Some(Vec::new()));
        into_body(wrapper.flatten(), filter_server_list)
    } else {
        into_body(Some(c.wrapper(true)?), None)
    };
    c.end()?;
    Ok(body)
}

/// Reads only the data version and the filter server list, skipping the topics unread (the
/// input after both were found is not looked at).
pub fn register_preamble(json: &[u8], version: i32) -> Scan<RegisterPreamble> {
    let mut c = Cursor { b: json, i: 0 };
    if version < VERSION_REGISTER_BODY_MIN {
        let wrapper = c.wrapper(false)?;
        return Ok(RegisterPreamble { data_version: wrapper.data_version, filter_server_list: None });
    }
    let mut filter: Option<Option<Vec<String>>> = None;
    let mut data_version: Option<DataVersion> = None;
    let mut wrapper_seen = false;
    c.eat(b'{')?;
    if c.peek() == Some(b'}') {
        return Err(Fallback);
    }
    loop {
        let key = c.key()?;
        match key {
            b"filterServerList" => set_once(&mut filter, c.nullable(Cursor::str_list)?)?,
            b"topicConfigSerializeWrapper" => {
                if wrapper_seen || c.peek() != Some(b'{') {
                    return Err(Fallback);
                }
                wrapper_seen = true;
                c.i += 1;
                // Inside the wrapper: the data version, skipping anything before it.
                if c.peek() == Some(b'}') {
                    return Err(Fallback);
                }
                loop {
                    let key = c.key()?;
                    if key == b"dataVersion" {
                        data_version = Some(c.data_version()?);
                        break;
                    }
                    c.skip_value()?;
                    if !c.comma_or_close(b'}')? {
                        return Err(Fallback); // no dataVersion in the wrapper
                    }
                }
                if filter.is_some() {
                    break; // Java's order: filterServerList first, then the wrapper
                }
                // Skip the rest of the wrapper to look for filterServerList after it.
                while c.comma_or_close(b'}')? {
                    c.key()?;
                    c.skip_value()?;
                }
            }
            _ => c.skip_value()?,
        }
        if filter.is_some() && data_version.is_some() {
            break;
        }
        if !c.comma_or_close(b'}')? {
            break;
        }
    }
    let data_version = data_version.ok_or(Fallback)?;
    Ok(RegisterPreamble { data_version, filter_server_list: filter.unwrap_or(Some(Vec::new())) })
}

/// Decodes a JSON RemotingCommand header of the usual shape (integers as numbers, language
/// by name, string ext values); anything else goes to the serde decoder in `header`.
pub fn json_header(json: &[u8]) -> Scan<Header> {
    let mut c = Cursor { b: json, i: 0 };
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
                let code = name.and_then(|n| std::str::from_utf8(n).ok()).and_then(super::header::language_code);
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

struct Wrapper {
    data_version: DataVersion,
    topics: Vec<TopicConfig>,
}

fn into_body(wrapper: Option<Wrapper>, filter_server_list: Option<Vec<String>>) -> RegisterBrokerBody {
    let (data_version, topic_configs) = wrapper.map(|w| (w.data_version, w.topics)).unwrap_or_default();
    RegisterBrokerBody { data_version, topic_configs, filter_server_list, topic_queue_mapping_infos: Vec::new() }
}

/// Stores a field's value, refusing a second occurrence (serde's derive rejects it).
fn set_once<T>(slot: &mut Option<T>, value: T) -> Scan<()> {
    if slot.is_some() {
        return Err(Fallback);
    }
    *slot = Some(value);
    Ok(())
}

/// End of the run of bytes from `at` that need no attention inside a string: printable
/// ASCII other than `"` and `\`. Eight bytes per step (SWAR), since names are most of a body.
#[inline]
fn plain_ascii_run(b: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes of `v` below `n` (n <= 128) get their high bit set (exact when v's bytes < 128).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    while let Some(chunk) = b.get(at..at + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let special = (v & HIGH)
            | below(v, 0x20)
            | below(v ^ (ONES * u64::from(b'"')), 1)
            | below(v ^ (ONES * u64::from(b'\\')), 1);
        if special != 0 {
            break;
        }
        at += 8;
    }
    at
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Scan<()> {
        if self.peek() != Some(c) {
            return Err(Fallback);
        }
        self.i += 1;
        Ok(())
    }

    /// Only whitespace may follow the body.
    fn end(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Fallback),
        }
    }

    /// After a member or element: `true` on a comma (more follow), `false` on `close`.
    #[inline]
    fn comma_or_close(&mut self, close: u8) -> Scan<bool> {
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Fallback),
        }
    }

    /// A string without escapes or control characters, valid UTF-8: its raw bytes.
    /// Names and keys are short, so a byte loop beats a memchr call here.
    #[inline]
    fn plain_str(&mut self) -> Scan<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        self.i = plain_ascii_run(self.b, self.i);
        let mut ascii = true;
        loop {
            let c = *self.b.get(self.i).ok_or(Fallback)?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return Err(Fallback);
            }
            ascii &= c < 0x80;
            self.i += 1;
        }
        let s = &self.b[start..self.i];
        self.i += 1;
        if !ascii && std::str::from_utf8(s).is_err() {
            return Err(Fallback);
        }
        Ok(s)
    }

    #[inline]
    fn plain_string(&mut self) -> Scan<String> {
        let s = self.plain_str()?;
        Ok(std::str::from_utf8(s).map_err(|_| Fallback)?.to_owned())
    }

    /// An object key (valid UTF-8, as serde requires) followed by its colon.
    #[inline]
    fn key(&mut self) -> Scan<&'a [u8]> {
        let key = self.plain_str()?;
        if key == b"$ref" {
            return Err(Fallback); // fastjson references: the serde path resolves them
        }
        self.eat(b':')?;
        Ok(key)
    }

    /// Calls `member` for each key of an object (positioned after the colon).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Scan<()>) -> Scan<()> {
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.key()?;
            member(self, key)?;
            if !self.comma_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    #[inline]
    fn null(&mut self) -> Scan<bool> {
        if self.peek() == Some(b'n') {
            if !self.b[self.i..].starts_with(b"null") {
                return Err(Fallback);
            }
            self.i += 4;
            return Ok(true);
        }
        Ok(false)
    }

    /// `null` → None, else the value read by `read`.
    #[inline]
    fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Scan<T>) -> Scan<Option<T>> {
        if self.null()? {
            return Ok(None);
        }
        read(self).map(Some)
    }

    #[inline]
    fn int(&mut self) -> Scan<i64> {
        self.ws();
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut value: i64 = 0;
        while let Some(&c) = self.b.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            value = value * 10 + i64::from(c - b'0');
            self.i += 1;
            if self.i - start > INT_DIGITS_MAX {
                return Err(Fallback);
            }
        }
        let digits = self.i - start;
        // serde_json reads `-0` as a float, which an integer field refuses.
        if digits == 0 || (self.b[start] == b'0' && (digits > 1 || negative)) {
            return Err(Fallback);
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return Err(Fallback); // a float: serde refuses it for an integer field
        }
        Ok(if negative { -value } else { value })
    }

    fn i32(&mut self) -> Scan<i32> {
        i32::try_from(self.int()?).map_err(|_| Fallback)
    }

    fn bool(&mut self) -> Scan<bool> {
        self.ws();
        let rest = &self.b[self.i..];
        if rest.starts_with(b"true") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Ok(false)
        } else {
            Err(Fallback)
        }
    }

    /// `[]` or an array of strings and nulls (nulls dropped, as the serde path does).
    fn str_list(&mut self) -> Scan<Vec<String>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(out);
        }
        loop {
            if let Some(s) = self.nullable(Cursor::plain_string)? {
                out.push(s);
            }
            if !self.comma_or_close(b']')? {
                return Ok(out);
            }
        }
    }

    fn data_version(&mut self) -> Scan<DataVersion> {
        let mut fields: [Option<Option<i64>>; 3] = [None, None, None];
        self.object(|c, key| {
            let slot = match key {
                b"counter" => 0,
                b"stateVersion" => 1,
                b"timestamp" => 2,
                _ => return c.skip_value(),
            };
            let value = c.nullable(Cursor::int)?;
            set_once(&mut fields[slot], value)
        })?;
        let get = |slot: usize| fields[slot].flatten().unwrap_or(0);
        Ok(DataVersion { counter: get(0), state_version: get(1), timestamp: get(2) })
    }

    /// A TopicConfigSerializeWrapper object; `topics = false` skips the topic table.
    fn wrapper(&mut self, topics: bool) -> Scan<Wrapper> {
        let mut data_version: Option<Option<DataVersion>> = None;
        let mut table: Option<Option<Vec<TopicConfig>>> = None;
        let mut mapping_seen = false;
        self.object(|c, key| match key {
            b"dataVersion" => set_once(&mut data_version, c.nullable(Cursor::data_version)?),
            b"topicConfigTable" if topics => set_once(&mut table, c.nullable(Cursor::topic_table)?),
            b"topicQueueMappingInfoMap" if topics => {
                // Static-topic mappings are rare; only their empty form is read here.
                if mapping_seen {
                    return Err(Fallback);
                }
                mapping_seen = true;
                if c.null()? {
                    return Ok(());
                }
                c.eat(b'{')?;
                c.eat(b'}')
            }
            _ => c.skip_value(),
        })?;
        Ok(Wrapper {
            data_version: data_version.flatten().unwrap_or_default(),
            topics: table.flatten().unwrap_or_default(),
        })
    }

    fn topic_table(&mut self) -> Scan<Vec<TopicConfig>> {
        let mut topics = Vec::new();
        self.object(|c, _key| {
            if let Some(topic) = c.nullable(Cursor::topic_config)? {
                topics.push(topic);
            }
            Ok(())
        })?;
        Ok(topics)
    }

    fn topic_config(&mut self) -> Scan<TopicConfig> {
        // One slot per field: None = absent, Some(None) = explicit null.
        let mut name: Option<Option<String>> = None;
        let mut ints: [Option<Option<i32>>; 4] = [None; 4];
        let mut order: Option<Option<bool>> = None;
        let mut filter: Option<Option<TopicFilterType>> = None;
        let mut attributes: Option<Option<Vec<(String, String)>>> = None;
        self.object(|c, key| match key {
            b"topicName" => set_once(&mut name, c.nullable(Cursor::plain_string)?),
            b"readQueueNums" => set_once(&mut ints[0], c.nullable(Cursor::i32)?),
            b"writeQueueNums" => set_once(&mut ints[1], c.nullable(Cursor::i32)?),
            b"perm" => set_once(&mut ints[2], c.nullable(Cursor::i32)?),
            b"topicSysFlag" => set_once(&mut ints[3], c.nullable(Cursor::i32)?),
            b"order" => set_once(&mut order, c.nullable(Cursor::bool)?),
            b"topicFilterType" => set_once(&mut filter, c.nullable(Cursor::filter_type)?),
            b"attributes" => set_once(&mut attributes, c.nullable(Cursor::attributes)?),
            _ => c.skip_value(),
        })?;
        // No topicName: the serde path refuses the registration; let it say so.
        let topic_name = name.flatten().ok_or(Fallback)?;
        let int = |slot: usize, default: i32| ints[slot].flatten().unwrap_or(default);
        Ok(TopicConfig {
            topic_name,
            read_queue_nums: int(0, TOPIC_QUEUE_NUMS_DEFAULT),
            write_queue_nums: int(1, TOPIC_QUEUE_NUMS_DEFAULT),
            perm: int(2, TOPIC_PERM_DEFAULT),
            topic_sys_flag: int(3, 0),
            order: order.flatten().unwrap_or(false),
            topic_filter_type: filter.flatten().unwrap_or_default(),
            attributes: attributes.flatten().unwrap_or_default(),
        })
    }

    fn filter_type(&mut self) -> Scan<TopicFilterType> {
        match self.plain_str()? {
            b"SINGLE_TAG" => Ok(TopicFilterType::SingleTag),
            b"MULTI_TAG" => Ok(TopicFilterType::MultiTag),
            _ => Err(Fallback),
        }
    }

    /// `{}` or string → string (other value types go to the serde path).
    fn attributes(&mut self) -> Scan<Vec<(String, String)>> {
        let mut out = Vec::new();
        self.object(|c, key| {
            let key = String::from_utf8_lossy(key).into_owned();
            if let Some(value) = c.nullable(Cursor::plain_string)? {
                out.push((key, value));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Skips one JSON value of any kind, checking it as strictly as serde_json does when it
    /// ignores a value. Iterative: nesting costs a byte of `open`, not a stack frame.
    fn skip_value(&mut self) -> Scan<()> {
        // true = object, false = array.
        let mut open = [false; DEPTH_MAX];
        let mut depth = 0;
        loop {
            // A value.
            match self.peek().ok_or(Fallback)? {
                open_char @ (b'{' | b'[') => {
                    self.i += 1;
                    if depth == DEPTH_MAX {
                        return Err(Fallback);
                    }
                    let is_object = open_char == b'{';
                    open[depth] = is_object;
                    depth += 1;
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        depth -= 1;
                    } else {
                        if is_object {
                            self.skip_str()?;
                            self.eat(b':')?;
                        }
                        continue;
                    }
                }
                b'"' => self.skip_str()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return Err(Fallback),
            }
            // After a value: close what ends here, then the next member or element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let is_object = open[depth - 1];
                if self.comma_or_close(if is_object { b'}' } else { b']' })? {
                    if is_object {
                        self.skip_str()?;
                        self.eat(b':')?;
                    }
                    break;
                }
                depth -= 1;
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if !self.b[self.i..].starts_with(word) {
            return Err(Fallback);
        }
        self.i += word.len();
        Ok(())
    }

    /// Any string: escapes are checked for shape only, as serde_json does when ignoring.
    fn skip_str(&mut self) -> Scan<()> {
        self.eat(b'"')?;
        loop {
            let rest = &self.b[self.i..];
            let at = memchr::memchr2(b'"', b'\\', rest).ok_or(Fallback)?;
            if rest[..at].iter().any(|&c| c < 0x20) {
                return Err(Fallback);
            }
            self.i += at + 1;
            if rest[at] == b'"' {
                return Ok(());
            }
            match self.b.get(self.i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                Some(b'u') => {
                    let hex = self.b.get(self.i + 1..self.i + 5).ok_or(Fallback)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Fallback);
                    }
                    self.i += 5;
                }
                _ => return Err(Fallback),
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Scan<()> {
        let digits = |c: &mut Self| {
            let start = c.i;
            while c.b.get(c.i).is_some_and(u8::is_ascii_digit) {
                c.i += 1;
            }
            c.i - start
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            return Err(Fallback);
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(Fallback);
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(Fallback);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::decode_register_body_json_serde as serde_decode;
    use proptest::prelude::*;

    const V5: i32 = 479;
    const V_BARE: i32 = 36;

    /// Scanner and serde agree whenever the scanner answers; returns whether it answered.
    fn agree(json: &[u8], version: i32) -> bool {
        let reference = serde_decode(json, version);
        match register_body(json, version) {
            Ok(scanned) => {
                match &reference {
                    Ok(r) => assert_eq!(&scanned, r, "scanner and serde differ on {}", show(json)),
                    Err(e) => panic!("the scanner accepted what serde refuses ({e}): {}", show(json)),
                }
                // The preamble needs an explicit dataVersion; when it answers, it is right.
                if let Ok(preamble) = register_preamble(json, version) {
                    assert_eq!(preamble.data_version, scanned.data_version, "{}", show(json));
                    assert_eq!(preamble.filter_server_list, scanned.filter_server_list, "{}", show(json));
                }
                true
            }
            Err(Fallback) => {
                if let (Ok(p), Ok(r)) = (register_preamble(json, version), &reference) {
                    // The preamble may answer where the full scan falls back (it does not read
                    // the topics), but what it reads must be right.
                    assert_eq!(p.data_version, r.data_version, "{}", show(json));
                    assert_eq!(p.filter_server_list, r.filter_server_list, "{}", show(json));
                }
                false
            }
        }
    }

    fn show(json: &[u8]) -> String {
        let text = String::from_utf8_lossy(json);
        text.chars().take(400).collect()
    }

    fn golden_bodies() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden");
        let mut bodies = Vec::new();
        for file in ["java-5.3.3-examples.jsonl", "rocketmq-rust-broker-1.0.0.jsonl"] {
            let text = std::fs::read_to_string(dir.join(file)).expect("golden file");
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                if v["request_header"]["code"] != 103 || v["request_header"]["extFields"]["compressed"] == "true" {
                    continue;
                }
                let hex = v["request_hex"].as_str().unwrap();
                let frame: Vec<u8> =
                    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
                let header_bytes = u32::from_be_bytes([0, frame[5], frame[6], frame[7]]) as usize;
                let body = frame[8 + header_bytes..].to_vec();
                if body.first() == Some(&b'{') {
                    bodies.push(body);
                }
            }
        }
        bodies
    }

    #[test]
    fn golden_registrations_scan_exactly() {
        let bodies = golden_bodies();
        assert!(bodies.len() >= 4, "expected Java and rocketmq-rust JSON registrations, got {}", bodies.len());
        for body in &bodies {
            assert!(agree(body, V5), "the scanner fell back on a real broker's body: {}", show(body));
        }
    }

    #[test]
    fn edge_cases_fall_back_or_agree() {
        let topic = r#""t":{"topicName":"t","perm":6}"#;
        let cases: Vec<(String, bool)> = vec![
            // (body, whether the scanner must answer it itself)
            ("{}".into(), true),
            (r#"{"filterServerList":null}"#.into(), true),
            (r#"{"filterServerList":["a:1",null,"b:2"]}"#.into(), true),
            (format!(r#"{{"topicConfigSerializeWrapper":{{"topicConfigTable":{{{topic}}}}}}}"#), true),
            (format!(r#" {{ "topicConfigSerializeWrapper" : {{ "topicConfigTable" : {{ {topic} }} }} }} "#), true),
            (r#"{"topicConfigSerializeWrapper":{"dataVersion":{"counter":-5,"timestamp":null}}}"#.into(), true),
            (r#"{"topicConfigSerializeWrapper":{"dataVersion":{"counter":-0}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":null,"x":[1,2.5e-3,{"a":[true,false,null,"\u00e9\n"]}]}"#.into(), true),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":null,"b":{"topicName":"b","attributes":{"+x":"1","y":null}}}}}"#.into(), true),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"b":{"topicName":"b","topicFilterType":"MULTI_TAG","order":true,"topicSysFlag":3,"readQueueNums":null}}}}"#.into(), true),
            (r#"{"topicConfigSerializeWrapper":{"topicQueueMappingInfoMap":{},"mappingDataVersion":{"counter":1},"topicQueueMappingDetailMap":{"x":{"y":[]}}}}"#.into(), true),
            // Left to serde (which accepts or refuses them).
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a\"b"}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"perm":6}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a","perm":6.0}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a","perm":6,"perm":7}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a","perm":99999999999}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a","topicFilterType":1}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"$ref":"$.x"}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{0:{"topicName":"a"}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":{"topicQueueMappingInfoMap":{"t":{"bname":"b"}}}}"#.into(), false),
            (r#"{"topicConfigSerializeWrapper":[]}"#.into(), false),
            (r#"{"filterServerList":[1]}"#.into(), false),
            (r#"{"filterServerList":[],"filterServerList":[]}"#.into(), false),
            (r#"{"x":01}"#.into(), false),
            (r#"{"x":"a	b"}"#.into(), false),
            (r#"{"x":"\q"}"#.into(), false),
            (r#"{"x":tru}"#.into(), false),
            (r#"{"x":1}}"#.into(), false),
            (r#"{"x":1"#.into(), false),
            ("".into(), false),
            ("[]".into(), false),
        ];
        for (body, scanned) in &cases {
            assert_eq!(agree(body.as_bytes(), V5), *scanned, "scanner answered (or not) unexpectedly: {body}");
        }
        // Invalid UTF-8 in a topic name is serde's to refuse.
        let mut bad = br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"#.to_vec();
        bad.extend_from_slice(b"\"\xff\"}}}}");
        assert!(!agree(&bad, V5));
        // Pre-V3_0_11 bodies are the bare wrapper.
        let bare = format!(r#"{{"dataVersion":{{"counter":3}},"topicConfigTable":{{{topic}}}}}"#);
        assert!(agree(bare.as_bytes(), V_BARE));
    }

    #[test]
    fn deep_nesting_falls_back_without_recursion() {
        for depth in [10, 63, 64, 65, 1_000, 1_000_000] {
            let body = format!(r#"{{"x":{}{},"filterServerList":[]}}"#, "[".repeat(depth), "]".repeat(depth));
            assert_eq!(register_body(body.as_bytes(), V5).is_ok(), depth <= DEPTH_MAX, "depth {depth}");
        }
    }

    #[test]
    fn preamble_stops_after_the_data_version_in_java_order() {
        // Java (fastjson, sorted keys): everything after the data version is not read.
        let body = br#"{"filterServerList":["f:1"],"topicConfigSerializeWrapper":{"dataVersion":{"counter":7,"stateVersion":1,"timestamp":9},"topicConfigTable":{"#;
        let p = register_preamble(body, V5).unwrap();
        assert_eq!(p.data_version, DataVersion { counter: 7, state_version: 1, timestamp: 9 });
        assert_eq!(p.filter_server_list, Some(vec!["f:1".to_string()]));
        // rocketmq-rust order: the topics come first and are skipped; filterServerList absent.
        let body = br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a"}},"dataVersion":{"counter":2}}}"#;
        let p = register_preamble(body, V5).unwrap();
        assert_eq!(p.data_version.counter, 2);
        assert_eq!(p.filter_server_list, Some(Vec::new()));
    }

    /// name, read, write, perm, filter type choice, order, attributes.
    type GenTopic = (String, i32, i32, i32, u8, bool, Vec<(String, String)>);

    /// Generated bodies: clean ones must be scanned; any of them must agree with serde.
    #[derive(Debug, Clone)]
    struct Shape {
        java_order: bool,
        spaces: bool,
        filter: u8,
        data_version: Option<(i64, i64, i64)>,
        topics: Vec<GenTopic>,
        junk: Option<String>,
        twist: u8,
    }

    fn junk_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
            "[a-z\\\\\"é\u{1F600}]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z]{1,4}", inner), 0..4).prop_map(|v| {
                    let members: Vec<String> = v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    fn shape() -> impl Strategy<Value = Shape> {
        let topic = (
            "[A-Za-z0-9_%-]{1,24}",
            -1..2000i32,
            0..2000i32,
            0..8i32,
            0..3u8,
            any::<bool>(),
            prop::collection::vec(("[+a-z.]{1,8}", "[a-z0-9]{0,6}"), 0..2),
        );
        (
            any::<bool>(),
            any::<bool>(),
            0..4u8,
            prop::option::of((
                -999_999_999_999_999_999..=999_999_999_999_999_999i64,
                -3..3i64,
                0..2_000_000_000_000i64,
            )),
            prop::collection::vec(topic, 0..6),
            prop::option::of(junk_value()),
            0..12u8,
        )
            .prop_map(|(java_order, spaces, filter, data_version, topics, junk, twist)| Shape {
                java_order,
                spaces,
                filter,
                data_version,
                topics,
                junk,
                twist,
            })
    }

    fn render(s: &Shape) -> (String, bool) {
        let sep = if s.spaces { " \n" } else { "" };
        let mut clean = true;
        let mut topics = Vec::new();
        for (i, (name, read, write, perm, filter, order, attributes)) in s.topics.iter().enumerate() {
            let filter = ["\"SINGLE_TAG\"", "\"MULTI_TAG\"", "null"][*filter as usize];
            let attributes: Vec<String> = attributes.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
            let mut fields = vec![
                format!("\"topicName\":\"{name}\""),
                format!("\"readQueueNums\":{read}"),
                format!("\"writeQueueNums\":{write}"),
                format!("\"perm\":{perm}"),
                format!("\"topicFilterType\":{filter}"),
                format!("\"order\":{order}"),
                format!("\"attributes\":{{{}}}", attributes.join(",")),
            ];
            if s.java_order {
                fields.sort();
            }
            // One twist per body, on its first topic, that the scanner leaves to serde.
            if i == 0 {
                match s.twist {
                    0 => fields.push("\"perm\":1".into()),
                    1 => fields[0] = format!("\"topicName\":\"{name}\\u0041\""),
                    2 => fields.push("\"readQueueNums\":1.5".into()),
                    3 => fields.retain(|f| !f.starts_with("\"topicName\"")),
                    _ => {}
                }
                clean &= s.twist > 3;
            }
            topics.push(format!("\"{name}{i}\":{{{}}}", fields.join(&format!(",{sep}"))));
        }
        let mut wrapper = Vec::new();
        if let Some((counter, state, timestamp)) = s.data_version {
            wrapper.push(format!(
                "\"dataVersion\":{{\"counter\":{counter},\"stateVersion\":{state},\"timestamp\":{timestamp}}}"
            ));
        }
        wrapper.push("\"mappingDataVersion\":{\"counter\":0,\"stateVersion\":0,\"timestamp\":0}".into());
        wrapper.push(format!("\"topicConfigTable\":{{{}}}", topics.join(&format!(",{sep}"))));
        wrapper.push("\"topicQueueMappingInfoMap\":{}".into());
        if !s.java_order {
            wrapper.reverse();
        }
        let mut top = Vec::new();
        match s.filter {
            0 => top.push("\"filterServerList\":[]".to_string()),
            1 => top.push("\"filterServerList\":[\"10.0.0.1:1\",null]".to_string()),
            2 => top.push("\"filterServerList\":null".to_string()),
            _ => {}
        }
        if let Some(junk) = &s.junk {
            top.push(format!("\"junk\":{junk}"));
        }
        top.push(format!("\"topicConfigSerializeWrapper\":{{{}}}", wrapper.join(&format!(",{sep}"))));
        if !s.java_order {
            top.reverse();
        }
        (format!("{sep}{{{}}}{sep}", top.join(&format!("{sep},{sep}"))), clean)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
        #[test]
        fn generated_bodies_agree_with_serde(s in shape()) {
            let (json, clean) = render(&s);
            let scanned = agree(json.as_bytes(), V5);
            // Clean bodies (no twist) are the scanner's to read; junk values are skipped.
            if clean {
                prop_assert!(scanned, "the scanner fell back on a clean body: {}", json);
            }
        }
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
