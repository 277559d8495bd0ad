//! The one-pass scanner for REGISTER_BROKER JSON bodies: the fast path in front of the
//! serde reference decoder in `decode`.
//!
//! It reads the shape real brokers send (Java's fastjson, rocketmq-rust's serde) in one
//! forward pass, with no recursion and no intermediate values, and gives up — returning
//! `Fallback` — on anything it does not handle exactly: escapes in strings, `$ref`,
//! unquoted keys, non-empty static-topic mappings, duplicate fields, odd types, nesting
//! deeper than the cursor follows. The serde path then decides (and produces the error, if
//! any). So whenever the scanner returns a body, it is the body the serde path would
//! return; the differential tests in this module hold it to that.
//! Must not: recurse, or answer differently from the serde path.

use super::model::{
    DataVersion, TopicFilterType, TOPIC_PERM_DEFAULT, TOPIC_QUEUE_NUMS_DEFAULT, VERSION_REGISTER_BODY_MIN,
};
use super::registration::{
    member_hash, DeltaOp, MemberPrint, MemberPrints, RegisterBrokerBody, TopicConfigs, TopicFields, TopicsDelta,
};
use crate::cursor::{set_once, Cursor, Scan};

pub use crate::cursor::Fallback;

/// A topic table at least this long is scanned by two threads (see `topic_table`): about
/// 20k topics, where a thread's start (~50 µs) is noise against ~3.5 ms of scanning.
pub const SPLIT_SCAN_BYTES_MIN: usize = 4 << 20;
/// Table bytes per topic in a real broker's body (about 220), rounded down a little: only
/// sizes the first allocation.
const TABLE_BYTES_PER_TOPIC_GUESS: usize = 200;

/// Decodes a whole REGISTER_BROKER JSON body sent with request `version`.
pub fn register_body(json: &[u8], version: i32) -> Scan<RegisterBrokerBody> {
    register_body_split_from(json, version, SPLIT_SCAN_BYTES_MIN)
}

/// `register_body`, splitting topic tables from `split_min` bytes on (tests use 0).
fn register_body_split_from(json: &[u8], version: i32, split_min: usize) -> Scan<RegisterBrokerBody> {
    let mut table = TableScan { split_min, prints: None, prev: None, delta: None };
    register_body_with(json, version, &mut table)
}

/// What `register_body_resend` read: the body (its `topic_configs` empty when `delta` is
/// given), the topic table against the previous body's members, and this body's members.
pub type Resend = (RegisterBrokerBody, Option<TopicsDelta>, MemberPrints);

/// `register_body`, also fingerprinting the topic table's members. Given the previous
/// body's (`prev`), the table is described against it instead (`TopicsDelta`): members
/// equal byte for byte are only hashed, not decoded.
pub fn register_body_resend(json: &[u8], version: i32, prev: Option<&MemberPrints>) -> Scan<Resend> {
    let mut table = TableScan {
        split_min: SPLIT_SCAN_BYTES_MIN,
        prints: Some(Vec::new()),
        prev: prev.map(|p| &p.0[..]),
        delta: prev.map(|_| TopicsDelta::default()),
    };
    let body = register_body_with(json, version, &mut table)?;
    let prints = MemberPrints(table.prints.unwrap_or_default());
    Ok((body, table.delta, prints))
}

fn register_body_with(json: &[u8], version: i32, table: &mut TableScan<'_>) -> Scan<RegisterBrokerBody> {
    let mut c = Cursor::new(json);
    let body = if version >= VERSION_REGISTER_BODY_MIN {
        let mut filter: Option<Option<Vec<String>>> = None;
        let mut wrapper: Option<Option<Wrapper>> = None;
        c.object(|c, key| match key {
            b"filterServerList" => set_once(&mut filter, c.nullable(Cursor::str_list)?),
            b"topicConfigSerializeWrapper" => set_once(&mut wrapper, c.nullable(|c| c.wrapper(table))?),
            _ => c.skip_value(),
        })?;
        // Absent: Java's empty default list (clears filter servers); null: leave them.
        let filter_server_list = filter.unwrap_or(Some(Vec::new()));
        into_body(wrapper.flatten(), filter_server_list)
    } else {
        into_body(Some(c.wrapper(table)?), None)
    };
    c.end()?;
    Ok(body)
}

/// How a body's topic table is read.
struct TableScan<'p> {
    /// Scanned by two threads from this many bytes on (`Cursor::topic_table`).
    split_min: usize,
    /// The members' fingerprints, when asked for.
    prints: Option<Vec<MemberPrint>>,
    /// The previous body's members: the table is read as `delta` against them.
    prev: Option<&'p [MemberPrint]>,
    delta: Option<TopicsDelta>,
}

/// Where a member of a topic table may begin, at or after `from`: a key right after `},`
/// (the previous member's object closing) whose value opens an object. Topic configs
/// close a nested `attributes` object the same way, hence the check of the value. Only a
/// guess (a nested object inside an attribute would pass it): `Cursor::members` detects a
/// wrong one.
fn member_start_after(json: &[u8], mut from: usize) -> Option<usize> {
    let close_comma_quote = memchr::memmem::Finder::new(b"},\"");
    loop {
        let key = from + close_comma_quote.find(json.get(from..)?)? + 2;
        let key_len = memchr::memchr(b'"', json.get(key + 1..)?)?;
        let after_key = key + 1 + key_len + 1;
        if json.get(after_key..after_key + 2) == Some(b":{") {
            return Some(key);
        }
        from = key;
    }
}

/// Which previous members a member may equal, in order of likelihood, given that
/// `prev[..next]` are placed and `unplaced` members were decoded since: the next one (a
/// topic added before it), the one after (one removed), and the same two shifted by the
/// decoded ones (that many changed in place). Few, so a body unlike the last costs a few
/// hashes per member, not a search.
fn candidates(next: usize, unplaced: usize, len: usize) -> impl Iterator<Item = usize> {
    let shifted = next + unplaced;
    [next, next + 1, shifted, shifted + 1]
        .into_iter()
        .enumerate()
        .filter(move |&(i, k)| k < len && (i < 2 || unplaced > 1))
        .map(|(_, k)| k)
}

/// How `Cursor::members` ended.
enum Members {
    /// The table's closing brace was read.
    Closed,
    /// The cursor stands at `stop`: the start of a member's key.
    AtStop,
}

struct Wrapper {
    data_version: DataVersion,
    topics: TopicConfigs,
}

fn into_body(wrapper: Option<Wrapper>, filter_server_list: Option<Vec<String>>) -> RegisterBrokerBody {
    let (data_version, topic_configs) = wrapper.map(|w| (w.data_version, w.topics)).unwrap_or_default();
    RegisterBrokerBody { data_version, topic_configs, filter_server_list, topic_queue_mapping_infos: Vec::new() }
}

// The body-specific readers; the generic JSON ones are in `crate::cursor`.
impl Cursor<'_> {
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

    /// A TopicConfigSerializeWrapper object, its topic table read as `table` says.
    fn wrapper(&mut self, table: &mut TableScan<'_>) -> Scan<Wrapper> {
        let mut data_version: Option<Option<DataVersion>> = None;
        let mut topics: Option<Option<TopicConfigs>> = None;
        let mut mapping_seen = false;
        self.object(|c, key| match key {
            b"dataVersion" => set_once(&mut data_version, c.nullable(Cursor::data_version)?),
            b"topicConfigTable" => set_once(&mut topics, c.nullable(|c| c.topic_table(table))?),
            b"topicQueueMappingInfoMap" => {
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
            topics: topics.flatten().unwrap_or_default(),
        })
    }

    /// The topicConfigTable object. From `split_min` bytes on, a second thread scans its
    /// second half while this one scans the first: the split is a guessed member start
    /// (`member_start_after`), which counts only if this thread, reading from the table's
    /// start, lands on it exactly between two members; otherwise this thread reads on to
    /// the end and the other's work is dropped. So the topics, their order and any
    /// fallback are what one thread would produce.
    fn topic_table(&mut self, table: &mut TableScan<'_>) -> Scan<TopicConfigs> {
        self.eat(b'{')?;
        if let (Some(prev), Some(delta)) = (table.prev, table.delta.as_mut()) {
            let prints = table.prints.get_or_insert_with(Vec::new);
            prints.reserve(prev.len()); // a re-send lists about as many topics
            self.members_against(prev, delta, prints)?;
            return Ok(TopicConfigs::new());
        }
        // Names take about a fifth of a real broker's table.
        let remaining = self.b.len() - self.i;
        let mut topics = TopicConfigs::with_capacity(remaining / TABLE_BYTES_PER_TOPIC_GUESS, remaining / 5);
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(topics);
        }
        let mut prints = table.prints.as_mut();
        if let Some(prints) = prints.as_deref_mut() {
            prints.reserve(remaining / TABLE_BYTES_PER_TOPIC_GUESS);
        }
        let split =
            (remaining >= table.split_min).then(|| member_start_after(self.b, self.i + remaining / 2)).flatten();
        let Some(split) = split else {
            self.members(&mut topics, prints, usize::MAX)?;
            return Ok(topics);
        };
        let (json, printing) = (self.b, prints.is_some());
        let (first, second) = std::thread::scope(|scope| {
            let second = std::thread::Builder::new().name("meridian-scan".into()).spawn_scoped(scope, move || {
                let mut c = Cursor { b: json, i: split };
                let rest = json.len() - split;
                let mut topics = TopicConfigs::with_capacity(rest / TABLE_BYTES_PER_TOPIC_GUESS, rest / 5);
                let mut prints = Vec::with_capacity(if printing { rest / TABLE_BYTES_PER_TOPIC_GUESS } else { 0 });
                let members = c.members(&mut topics, printing.then_some(&mut prints), usize::MAX);
                members.map(|_| (topics, prints, c.i))
            });
            let stop = if second.is_ok() { split } else { usize::MAX };
            let first = self.members(&mut topics, prints.as_deref_mut(), stop);
            (first, second.map(|handle| handle.join()))
        });
        match (first?, second) {
            (Members::Closed, _) => Ok(topics),
            (Members::AtStop, Ok(Ok(Ok((rest, mut rest_prints, end))))) => {
                topics.append(rest).map_err(|_| Fallback)?;
                if let Some(prints) = prints {
                    prints.append(&mut rest_prints);
                }
                self.i = end;
                Ok(topics)
            }
            // The second half fell back (or its thread failed): read it here, which gives
            // exactly what one thread would.
            (Members::AtStop, _) => {
                self.members(&mut topics, prints, usize::MAX)?;
                Ok(topics)
            }
        }
    }

    /// Topic table members, from a key on, into `topics` (and their fingerprints into
    /// `prints`): up to the closing brace, or until the cursor stands at `stop` between two
    /// members.
    fn members(
        &mut self,
        topics: &mut TopicConfigs,
        mut prints: Option<&mut Vec<MemberPrint>>,
        stop: usize,
    ) -> Scan<Members> {
        loop {
            let start = self.i;
            self.key()?;
            if self.null()? {
                // A null member: serde skips it too.
            } else {
                self.topic_config(topics)?;
                if let Some(prints) = prints.as_deref_mut() {
                    prints.push(self.print_since(start)?);
                }
            }
            if !self.comma_or_close(b'}')? {
                return Ok(Members::Closed);
            }
            self.ws();
            if self.i == stop {
                return Ok(Members::AtStop);
            }
        }
    }

    /// The fingerprint of the bytes from `start` to the cursor.
    fn print_since(&self, start: usize) -> Scan<MemberPrint> {
        let len = u32::try_from(self.i - start).map_err(|_| Fallback)?;
        Ok(MemberPrint::new(member_hash(&self.b[start..self.i]), len))
    }

    /// The table's members (after its `{`) against the previous body's `prev`: a member
    /// whose bytes equal the next previous member's (or, past removed or changed ones, a
    /// later one's: see `candidates`) is only hashed; any other is decoded into
    /// `delta.changed`. One thread: hashing runs several times faster than decoding.
    fn members_against(
        &mut self,
        prev: &[MemberPrint],
        delta: &mut TopicsDelta,
        prints: &mut Vec<MemberPrint>,
    ) -> Scan<()> {
        // prev[..next] are placed; `unplaced` members were decoded since the last match.
        let (mut next, mut unplaced) = (0usize, 0usize);
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                let start = self.i;
                let found = candidates(next, unplaced, prev.len()).find(|&k| {
                    let end = start + prev[k].len();
                    end <= self.b.len() && member_hash(&self.b[start..end]) == prev[k].hash()
                });
                if let Some(k) = found {
                    self.i = start + prev[k].len();
                    if k > next {
                        delta.push(DeltaOp::Skip((k - next) as u32));
                    }
                    delta.push(DeltaOp::Same(1));
                    prints.push(prev[k]);
                    (next, unplaced) = (k + 1, 0);
                    delta.members += 1;
                } else {
                    self.key()?;
                    if !self.null()? {
                        self.topic_config(&mut delta.changed)?;
                        delta.push(DeltaOp::Changed(1));
                        prints.push(self.print_since(start)?);
                        unplaced += 1;
                        delta.members += 1;
                    }
                }
                if !self.comma_or_close(b'}')? {
                    break;
                }
                self.ws();
            }
        }
        if next < prev.len() {
            delta.push(DeltaOp::Skip((prev.len() - next) as u32));
        }
        Ok(())
    }

    /// One topic config object, appended to `topics`.
    fn topic_config(&mut self, topics: &mut TopicConfigs) -> Scan<()> {
        // One slot per field: None = absent, Some(None) = explicit null.
        let mut name: Option<Option<&str>> = None;
        let mut ints: [Option<Option<i32>>; 4] = [None; 4];
        let mut order: Option<Option<bool>> = None;
        let mut filter: Option<Option<TopicFilterType>> = None;
        let mut attributes: Option<Option<Vec<(String, String)>>> = None;
        self.object(|c, key| match key {
            b"topicName" => set_once(&mut name, c.nullable(Cursor::plain_utf8)?),
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
        let fields = TopicFields {
            read_queue_nums: int(0, TOPIC_QUEUE_NUMS_DEFAULT),
            write_queue_nums: int(1, TOPIC_QUEUE_NUMS_DEFAULT),
            perm: int(2, TOPIC_PERM_DEFAULT),
            topic_sys_flag: int(3, 0),
            order: order.flatten().unwrap_or(false),
            topic_filter_type: filter.flatten().unwrap_or_default(),
        };
        topics.push_parts(topic_name, fields, attributes.flatten().unwrap_or_default()).map_err(|_| Fallback)
    }

    fn filter_type(&mut self) -> Scan<TopicFilterType> {
        match self.plain_str()? {
            b"SINGLE_TAG" => Ok(TopicFilterType::SingleTag),
            b"MULTI_TAG" => Ok(TopicFilterType::MultiTag),
            _ => Err(Fallback),
        }
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
        // Split at any size: the same answer as one thread, fallbacks included.
        assert_eq!(
            register_body_split_from(json, version, 0),
            register_body_split_from(json, version, usize::MAX),
            "split and unsplit scans differ on {}",
            show(json)
        );
        let reference = serde_decode(json, version);
        match register_body(json, version) {
            Ok(scanned) => {
                match &reference {
                    Ok(r) => assert_eq!(&scanned, r, "scanner and serde differ on {}", show(json)),
                    Err(e) => panic!("the scanner accepted what serde refuses ({e}): {}", show(json)),
                }
                true
            }
            Err(Fallback) => false,
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

    /// A 5.x body of `n` topics in Java's field order; `extra` puts an unknown object field
    /// before `attributes`, so a guessed split can land inside a member.
    fn big_body(n: usize, extra: bool) -> Vec<u8> {
        let mut out = String::from(
            r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1},"topicConfigTable":{"#,
        );
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            let name = format!("prod_trade_refund_notify_{i:07}");
            let extra = if extra { r#""extra":{"k":[1,{"x":2}]},"# } else { "" };
            let attributes = if i % 3 == 0 { r#"{"+message.type":"NORMAL"}"# } else { "{}" };
            out.push_str(&format!(
                r#""{name}":{{{extra}"attributes":{attributes},"order":false,"perm":{},"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"{name}","topicSysFlag":0,"writeQueueNums":8}}"#,
                if i % 7 == 0 { 4 } else { 6 }
            ));
        }
        out.push_str(r#"},"topicQueueMappingInfoMap":{}}}"#);
        out.into_bytes()
    }

    #[test]
    fn big_tables_split_into_the_same_topics_in_the_same_order() {
        for extra in [false, true] {
            let json = big_body(30_000, extra);
            assert!(json.len() >= SPLIT_SCAN_BYTES_MIN, "{} bytes", json.len());
            let split = register_body(&json, V5).expect("a real broker's shape scans");
            assert_eq!(split, serde_decode(&json, V5).unwrap());
            assert_eq!(split.topic_configs.len(), 30_000);
            assert_eq!(Ok(split), register_body_split_from(&json, V5, usize::MAX));
        }
        // The guess skips closes of nested objects whose next value is not an object.
        let table = |json: &[u8]| memchr::memmem::find(json, b"topicConfigTable").unwrap() + 20;
        let json = big_body(4, false);
        let start = member_start_after(&json, table(&json)).unwrap();
        assert!(json[start..].starts_with(br#""prod_trade_refund_notify_0000001":{"#));
        let json = big_body(4, true);
        let inside = member_start_after(&json, table(&json)).unwrap();
        assert!(json[inside..].starts_with(br#""attributes":{"#), "a guess inside a member, which the scan detects");
        // A cut-off second half falls back, as one thread would.
        let mut cut = big_body(30_000, false);
        cut.truncate(cut.len() - 1_000);
        assert_eq!(register_body(&cut, V5), Err(Fallback));
    }

    #[test]
    fn deep_nesting_falls_back_without_recursion() {
        for depth in [10, 63, 64, 65, 1_000, 1_000_000] {
            let body = format!(r#"{{"x":{}{},"filterServerList":[]}}"#, "[".repeat(depth), "]".repeat(depth));
            assert_eq!(register_body(body.as_bytes(), V5).is_ok(), depth <= crate::cursor::DEPTH_MAX, "depth {depth}");
        }
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
}
