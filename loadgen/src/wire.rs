//! What loadgen puts on the wire and how it reads answers: request frames (Meridian's
//! `HeaderOut` + `frame::encode`), frame splitting over a plain byte slice
//! (`frame::check` for validation), and the check of a GET_ROUTEINFO_BY_TOPIC answer body.
//!
//! Every request is signed (RocketMQ ACL, `meridian_protocol::acl`) once [`sign_with`] has
//! been given credentials at startup; until then the bytes are those of unsigned requests.
//!
//! Must not: do I/O or keep state between calls (beyond the credentials set once at
//! startup); the caller owns buffers and caches.

use meridian_protocol::acl::{self, Credentials};
use meridian_protocol::body::{decode_answer_json, BrokerData, QueueData};
use meridian_protocol::codes;
use meridian_protocol::frame::{self, FrameError, SerializeType, HEADER_LEN_FIELD_MAX, HEADER_WORD_BYTES};
use meridian_protocol::header::{Header, HeaderOut, FLAG_ONEWAY, FLAG_RESPONSE};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Largest answer frame accepted from a NameServer. Route answers are KB; a topic list of
/// millions of names is tens of MB. Anything larger means a broken stream.
pub const ANSWER_FRAME_BYTES_MAX: u32 = 256 * 1024 * 1024;
/// Largest answer header accepted: the header length field is 24 bits wide.
pub const ANSWER_HEADER_BYTES_MAX: u32 = HEADER_LEN_FIELD_MAX;
/// Language code stamped on requests: JAVA, as the stock clients and brokers do.
const LANGUAGE_JAVA: u8 = 0;

/// How request headers are written.
#[derive(Debug, Clone, Copy)]
pub struct RequestStyle {
    pub version: i32,
    pub serialize_type: SerializeType,
}

/// What every request is signed with; set once, before any encoder exists.
static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();

/// Signs every request from now on with `credentials` (`--access-key`/`--credentials`).
/// Call before building any [`LookupEncoder`]; `None` (or a second call) changes nothing.
pub fn sign_with(credentials: Option<Credentials>) {
    if let Some(credentials) = credentials {
        let _ = CREDENTIALS.set(credentials);
    }
}

/// Appends one request frame, signed if [`sign_with`] was given credentials. `oneway` sets
/// flag bit 1 (no answer will come).
pub fn encode_request(
    out: &mut Vec<u8>,
    style: RequestStyle,
    code: i32,
    opaque: i32,
    oneway: bool,
    ext_fields: &[(&str, &str)],
    body: &[u8],
) {
    let mut header = HeaderOut::request(code, LANGUAGE_JAVA, style.version, opaque, Some(ext_fields));
    if oneway {
        header.flag = FLAG_ONEWAY;
    }
    match CREDENTIALS.get() {
        None => header.encode_frame(style.serialize_type, body, out),
        Some(credentials) => encode_signed(out, header, style.serialize_type, body, credentials),
    }
}

/// Appends `header`'s frame with its ext fields signed as Java's ACL hook signs them.
fn encode_signed(
    out: &mut Vec<u8>,
    header: HeaderOut<'_>,
    serialize_type: SerializeType,
    body: &[u8],
    credentials: &Credentials,
) {
    let mut signed: Vec<(String, String)> =
        header.ext_fields.unwrap_or_default().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    acl::sign(&mut signed, body, credentials);
    let signed: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    HeaderOut { ext_fields: Some(&signed), ..header }.encode_frame(serialize_type, body, out);
}

/// GET_ROUTEINFO_BY_TOPIC requests, fast: the JSON header `HeaderOut` writes for a lookup
/// is cut once into three constant parts around the topic and the opaque, so a request
/// costs three copies and an integer format instead of an escaping pass and an allocation.
/// Byte-identical to `encode_request` (tested); names needing JSON escapes, binary
/// headers and signed requests take `encode_request`.
pub struct LookupEncoder {
    style: RequestStyle,
    /// Before the topic, between topic and opaque, after the opaque.
    parts: Option<[Vec<u8>; 3]>,
}

/// Placeholders used to find where the topic and the opaque go in the encoded header.
const TOPIC_MARK: &str = "TOPIC_MARK";
const OPAQUE_MARK: i32 = 987_654_321;

impl LookupEncoder {
    pub fn new(style: RequestStyle) -> LookupEncoder {
        if style.serialize_type != SerializeType::Json || CREDENTIALS.get().is_some() {
            return LookupEncoder { style, parts: None };
        }
        let mut header = Vec::new();
        HeaderOut {
            code: codes::GET_ROUTEINFO_BY_TOPIC,
            language: LANGUAGE_JAVA,
            version: style.version,
            opaque: OPAQUE_MARK,
            flag: 0,
            remark: None,
            ext_fields: Some(&[("topic", TOPIC_MARK)]),
        }
        .encode(SerializeType::Json, &mut header);
        let find = |needle: &[u8]| header.windows(needle.len()).position(|w| w == needle);
        let topic_at = find(TOPIC_MARK.as_bytes()).expect("the topic placeholder is written verbatim");
        let opaque_text = OPAQUE_MARK.to_string();
        let opaque_at = find(opaque_text.as_bytes()).expect("the opaque placeholder is written verbatim");
        assert!(topic_at + TOPIC_MARK.len() <= opaque_at, "HeaderOut writes extFields before opaque");
        let parts = [
            header[..topic_at].to_vec(),
            header[topic_at + TOPIC_MARK.len()..opaque_at].to_vec(),
            header[opaque_at + opaque_text.len()..].to_vec(),
        ];
        LookupEncoder { style, parts: Some(parts) }
    }

    pub fn encode(&self, out: &mut Vec<u8>, opaque: i32, topic: &str) {
        let plain =
            topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'%' || b == b'|');
        match &self.parts {
            Some([head, middle, tail]) if plain => {
                let mut digits = itoa::Buffer::new();
                let digits = digits.format(opaque);
                let header_len = head.len() + topic.len() + middle.len() + digits.len() + tail.len();
                let total_len = HEADER_WORD_BYTES + header_len;
                out.reserve(frame::LENGTH_PREFIX_BYTES + total_len);
                out.extend_from_slice(&(total_len as u32).to_be_bytes());
                // Serialize type 0 (JSON) in the top byte, the header length below it.
                out.extend_from_slice(&(header_len as u32).to_be_bytes());
                out.extend_from_slice(head);
                out.extend_from_slice(topic.as_bytes());
                out.extend_from_slice(middle);
                out.extend_from_slice(digits.as_bytes());
                out.extend_from_slice(tail);
            }
            _ => {
                encode_request(out, self.style, codes::GET_ROUTEINFO_BY_TOPIC, opaque, false, &[("topic", topic)], &[])
            }
        }
    }
}

/// (code, opaque, flag) of an answer header, fast, for the exact layout Java and Meridian
/// use for a successful answer without ext fields:
/// `{"code":0,"flag":1,"language":"JAVA","opaque":N,"serializeTypeCurrentRPC":"JSON","version":479}`
/// (keys in alphabetical order, so ext fields would sit between code and flag, and a remark
/// right after the opaque). `None` for anything else; the caller then uses `Header::decode`.
pub fn quick_answer_fields(header: &[u8]) -> Option<(i32, i32, i32)> {
    const HEAD: &[u8] = b"{\"code\":0,\"flag\":1,\"language\":\"";
    const OPAQUE: &[u8] = b"\",\"opaque\":";
    let rest = header.strip_prefix(HEAD)?;
    let language_end = rest.iter().take(16).position(|&b| b == b'"')?;
    let rest = rest[language_end..].strip_prefix(OPAQUE)?;
    let digits_end = rest.iter().position(|b| !b.is_ascii_digit())?;
    if digits_end == 0 || digits_end > 10 {
        return None;
    }
    let after = &rest[digits_end..];
    if !(after.starts_with(b",\"serializeTypeCurrentRPC\":") || after.starts_with(b",\"version\":") || after == b"}") {
        return None;
    }
    let mut opaque: i64 = 0;
    for &d in &rest[..digits_end] {
        opaque = opaque * 10 + (d - b'0') as i64;
    }
    Some((0, i32::try_from(opaque).ok()?, 1))
}

/// One frame inside a read buffer, borrowed.
pub struct FrameRef<'a> {
    pub serialize_type: SerializeType,
    pub header: &'a [u8],
    pub body: &'a [u8],
}

/// The first whole frame of `buf` and its length, `Ok(None)` if more bytes are needed.
/// Uses `frame::check` for every validation; the split itself is done here on a slice so a
/// read buffer can be reused without allocating per frame.
pub fn next_frame(buf: &[u8]) -> Result<Option<(FrameRef<'_>, usize)>, String> {
    match frame::check(buf, ANSWER_FRAME_BYTES_MAX, ANSWER_HEADER_BYTES_MAX) {
        Ok(frame_bytes) => {
            let word = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            // `check` accepted the type byte, so it is 0 or 1.
            let serialize_type = if word >> 24 == 0 { SerializeType::Json } else { SerializeType::RocketMq };
            let header_start = frame::LENGTH_PREFIX_BYTES + HEADER_WORD_BYTES;
            let header_end = header_start + (word & HEADER_LEN_FIELD_MAX) as usize;
            let frame = FrameRef {
                serialize_type,
                header: &buf[header_start..header_end],
                body: &buf[header_end..frame_bytes],
            };
            Ok(Some((frame, frame_bytes)))
        }
        Err(FrameError::Incomplete) => Ok(None),
        Err(FrameError::Invalid(why)) => Err(why),
    }
}

/// What loadgen needs from an answer header on its hot path.
pub struct AnswerFields {
    pub code: i32,
    pub opaque: i32,
    /// Only decoded for answers that are not SUCCESS.
    pub remark: Option<String>,
}

/// The answer's code and opaque (and remark when it is an error), through
/// `quick_answer_fields` when it applies and `Header::decode` otherwise.
pub fn answer_fields(frame: &FrameRef<'_>) -> Result<AnswerFields, String> {
    if frame.serialize_type == SerializeType::Json {
        if let Some((code, opaque, flag)) = quick_answer_fields(frame.header) {
            if flag & FLAG_RESPONSE != 0 {
                return Ok(AnswerFields { code, opaque, remark: None });
            }
        }
    }
    let header = decode_answer_header(frame)?;
    Ok(AnswerFields { code: header.code, opaque: header.opaque, remark: header.remark })
}

/// Decodes an answer header and insists it is a response.
pub fn decode_answer_header(frame: &FrameRef<'_>) -> Result<Header, String> {
    let header = Header::decode(frame.serialize_type, frame.header).map_err(|e| e.0)?;
    if !header.is_response() {
        return Err(format!("the server sent a request (code {}) instead of an answer", header.code));
    }
    Ok(header)
}

// ---------------------------------------------------------------------------------------
// Route answers
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct RouteJson {
    #[serde(rename = "brokerDatas", default)]
    broker_datas: Vec<BrokerData>,
    #[serde(rename = "queueDatas", default)]
    queue_datas: Vec<QueueData>,
}

/// What a route answer says, reduced to what loadgen checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSummary {
    /// (brokerName, readQueueNums, writeQueueNums) per queue data.
    pub queues: Vec<(String, i32, i32)>,
    /// (brokerName, number of addresses) per broker data.
    pub brokers: Vec<(String, usize)>,
}

impl RouteSummary {
    pub fn has_broker(&self, name: &str) -> bool {
        self.queues.iter().any(|q| q.0 == name) && self.brokers.iter().any(|b| b.0 == name && b.1 > 0)
    }

    pub fn read_queue_nums(&self, name: &str) -> Option<i32> {
        self.queues.iter().find(|q| q.0 == name).map(|q| q.1)
    }
}

impl From<RouteJson> for RouteSummary {
    fn from(route: RouteJson) -> RouteSummary {
        RouteSummary {
            queues: route
                .queue_datas
                .into_iter()
                .map(|q| (q.broker_name.to_string(), q.read_queue_nums, q.write_queue_nums))
                .collect(),
            brokers: route.broker_datas.into_iter().map(|b| (b.broker_name, b.broker_addrs.len())).collect(),
        }
    }
}

/// Parses a TopicRouteData body in the standard or the legacy (unquoted integer keys) form.
pub fn parse_route(body: &[u8]) -> Result<RouteSummary, String> {
    let route: RouteJson = decode_answer_json(body, "TopicRouteData").map_err(|e| e.to_string())?;
    Ok(route.into())
}

/// One topic of a route-watch answer (Meridian extension, request code 43701).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchChange {
    pub topic: String,
    /// The route version to hold from now on (0: the topic has no route).
    pub version: u64,
    /// The route, reduced as `parse_route` does; `None` when the topic has no route.
    pub route: Option<RouteSummary>,
}

#[derive(Deserialize)]
struct WatchAnswerJson {
    changed: BTreeMap<String, WatchChangeJson>,
}

#[derive(Deserialize)]
struct WatchChangeJson {
    version: u64,
    route: Option<RouteJson>,
}

/// Parses a route-watch answer body `{"generation":G,"changed":{"T":{"version":V,"route":{…}|null}}}`;
/// an empty `changed` means the hold passed without a change.
pub fn parse_watch_answer(body: &[u8]) -> Result<Vec<WatchChange>, String> {
    let answer: WatchAnswerJson = decode_answer_json(body, "route-watch answer").map_err(|e| e.to_string())?;
    Ok(answer
        .changed
        .into_iter()
        .map(|(topic, c)| WatchChange { topic, version: c.version, route: c.route.map(RouteSummary::from) })
        .collect())
}

/// Why a route answer failed its check: a stable category (the error key, free of topic
/// and broker names) and the detail.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteError {
    pub key: &'static str,
    pub detail: String,
}

/// Checks a route answer: queues present, every queue's broker described, and every
/// expected broker present with at least one address.
pub fn check_route<'a>(body: &[u8], expected_brokers: impl IntoIterator<Item = &'a str>) -> Result<(), RouteError> {
    let fail = |key, detail| Err(RouteError { key, detail });
    let route = match parse_route(body) {
        Ok(route) => route,
        Err(detail) => return fail("route body undecodable", detail),
    };
    if route.queues.is_empty() {
        return fail("route without queueDatas", "route has no queueDatas".into());
    }
    for (name, read, write) in &route.queues {
        if *read <= 0 && *write <= 0 {
            return fail("route with an empty queue data", format!("queue data of {name} has no queues"));
        }
        if !route.brokers.iter().any(|b| &b.0 == name) {
            return fail(
                "route queue data without broker data",
                format!("queue data names broker {name}, absent from brokerDatas"),
            );
        }
    }
    for expected in expected_brokers {
        if !route.has_broker(expected) {
            return fail(
                "route lacks an expected broker",
                format!("expected broker {expected} missing from the route"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_protocol::codes;

    const STANDARD: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;
    const LEGACY: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#;

    #[test]
    fn watch_answers_parse() {
        let body = format!(
            r#"{{"generation":12,"changed":{{"TopicA":{{"version":9,"route":{STANDARD}}},"TopicB":{{"version":0,"route":null}}}}}}"#
        );
        let changes = parse_watch_answer(body.as_bytes()).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!((changes[0].topic.as_str(), changes[0].version), ("TopicA", 9));
        let route = changes[0].route.as_ref().unwrap();
        assert!(route.has_broker("broker-a"));
        assert!(!route.has_broker("broker-b"));
        assert_eq!(changes[1], WatchChange { topic: "TopicB".into(), version: 0, route: None });
        assert_eq!(parse_watch_answer(br#"{"generation":3,"changed":{}}"#).unwrap(), vec![]);
        assert!(parse_watch_answer(b"{\"generation\":3}").is_err(), "changed is required");
        assert!(parse_watch_answer(b"not json").is_err());
    }

    #[test]
    fn both_route_forms_parse_the_same() {
        let a = parse_route(STANDARD.as_bytes()).unwrap();
        let b = parse_route(LEGACY.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.brokers, vec![("broker-a".to_string(), 2)]);
        assert_eq!(a.read_queue_nums("broker-a"), Some(4));
        assert!(a.has_broker("broker-a"));
        assert!(!a.has_broker("broker-b"));
    }

    #[test]
    fn route_checks() {
        assert_eq!(check_route(STANDARD.as_bytes(), ["broker-a"]), Ok(()));
        assert!(check_route(STANDARD.as_bytes(), ["broker-b"]).unwrap_err().detail.contains("broker-b"));
        let empty = r#"{"brokerDatas":[],"filterServerTable":{},"queueDatas":[]}"#;
        assert_eq!(check_route(empty.as_bytes(), []).unwrap_err().key, "route without queueDatas");
        let orphan = r#"{"brokerDatas":[],"queueDatas":[{"brokerName":"x","readQueueNums":1,"writeQueueNums":1}]}"#;
        assert!(check_route(orphan.as_bytes(), []).unwrap_err().detail.contains("absent from brokerDatas"));
        assert_eq!(check_route(b"not json", []).unwrap_err().key, "route body undecodable");
    }

    #[test]
    fn lookup_encoder_matches_the_codec_byte_for_byte() {
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            for version in [479, 317, 0] {
                let style = RequestStyle { version, serialize_type };
                let fast = LookupEncoder::new(style);
                for (opaque, topic) in
                    [(0, "T"), (17, "TopicTest000123"), (i32::MAX, "prod_a-b_%RETRY%x"), (5, "needs \"escape\"")]
                {
                    let mut a = Vec::new();
                    fast.encode(&mut a, opaque, topic);
                    let mut b = Vec::new();
                    encode_request(
                        &mut b,
                        style,
                        codes::GET_ROUTEINFO_BY_TOPIC,
                        opaque,
                        false,
                        &[("topic", topic)],
                        &[],
                    );
                    assert_eq!(a, b, "{serialize_type:?} v{version} {opaque} {topic}");
                }
            }
        }
    }

    #[test]
    fn quick_answer_fields_agree_with_the_codec_or_step_aside() {
        let java =
            br#"{"code":0,"flag":1,"language":"JAVA","opaque":123,"serializeTypeCurrentRPC":"JSON","version":479}"#;
        assert_eq!(quick_answer_fields(java), Some((0, 123, 1)));
        let header = Header::decode(SerializeType::Json, java).unwrap();
        assert_eq!((header.code, header.opaque, header.flag), (0, 123, 1));
        // Errors, ext fields and other layouts go to the full decoder.
        assert_eq!(quick_answer_fields(br#"{"code":17,"flag":1,"opaque":1,"remark":"x"}"#), None);
        assert_eq!(quick_answer_fields(br#"{"code":0,"extFields":{"opaque":"5"},"flag":1,"opaque":6}"#), None);
        assert_eq!(quick_answer_fields(br#"{"code":0,"flag":1,"remark":"\"opaque\":9","opaque":6}"#), None);
        assert_eq!(quick_answer_fields(br#"{"opaque":6,"code":0,"flag":1}"#), None);
        assert_eq!(quick_answer_fields(br#"{"code":0,"flag":1}"#), None, "no opaque");
        let frame = FrameRef {
            serialize_type: SerializeType::Json,
            header: br#"{"code":17,"flag":1,"opaque":4,"remark":"gone"}"#,
            body: b"",
        };
        let fields = answer_fields(&frame).unwrap();
        assert_eq!((fields.code, fields.opaque, fields.remark.as_deref()), (17, 4, Some("gone")));
        let request =
            FrameRef { serialize_type: SerializeType::Json, header: br#"{"code":0,"flag":0,"opaque":4}"#, body: b"" };
        assert!(answer_fields(&request).is_err(), "flag 0 is a request");
    }

    #[test]
    fn unsigned_requests_keep_their_bytes() {
        // Frames as loadgen sent them before requests could be signed (no test signs
        // through the process-wide credentials, so these stay unsigned).
        let before_json: &[u8] = b"\0\0\0\x80\0\0\0\x7c{\"code\":105,\"extFields\":{\"topic\":\"T1\"},\"flag\":0,\"language\":\"JAVA\",\"opaque\":7,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":479}";
        let before_binary: &[u8] =
            b"\0\0\0\x29\x01\0\0\x22\0\x69\0\x01\xdf\0\0\0\x07\0\0\0\0\0\0\0\0\0\0\0\x0d\0\x05topic\0\0\0\x02T1xyz";
        for (serialize_type, before) in [(SerializeType::Json, before_json), (SerializeType::RocketMq, before_binary)] {
            let style = RequestStyle { version: 479, serialize_type };
            let body: &[u8] = if serialize_type == SerializeType::Json { b"" } else { b"xyz" };
            let mut out = Vec::new();
            encode_request(&mut out, style, codes::GET_ROUTEINFO_BY_TOPIC, 7, false, &[("topic", "T1")], body);
            assert_eq!(out, before, "{serialize_type:?}");
        }
    }

    #[test]
    fn signed_requests_verify_after_encoding_and_decoding() {
        let mut credentials = Credentials::new("loadgen", "s3cret");
        credentials.security_token = Some("token".to_string());
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            for (code, ext, body) in [
                (codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", "T1")][..], &b""[..]),
                (
                    codes::REGISTER_BROKER,
                    &[("brokerName", "lg-broker-0"), ("compressed", "false")][..],
                    &b"{\"x\":1}"[..],
                ),
                (codes::BROKER_HEARTBEAT, &[][..], &b""[..]),
            ] {
                let mut out = Vec::new();
                let header = HeaderOut::request(code, LANGUAGE_JAVA, 479, 9, Some(ext));
                encode_signed(&mut out, header, serialize_type, body, &credentials);
                let (frame, n) = next_frame(&out).unwrap().unwrap();
                assert_eq!(n, out.len());
                let header = Header::decode(frame.serialize_type, frame.header).unwrap();
                let fields = header.ext_fields.clone().unwrap();
                assert_eq!(
                    acl::verify(header.version, &fields, frame.body, "s3cret"),
                    Ok(()),
                    "{serialize_type:?} {code}"
                );
                assert!(acl::verify(header.version, &fields, frame.body, "other").is_err());
                assert_eq!(header.ext(acl::ACCESS_KEY), Some("loadgen"));
                for (key, value) in ext {
                    assert_eq!(header.ext(key), Some(*value));
                }
            }
        }
    }

    #[test]
    fn request_frames_round_trip_through_meridians_codec() {
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let mut out = Vec::new();
            let style = RequestStyle { version: 479, serialize_type };
            encode_request(&mut out, style, codes::GET_ROUTEINFO_BY_TOPIC, 7, false, &[("topic", "T1")], b"");
            encode_request(&mut out, style, codes::BROKER_HEARTBEAT, 8, true, &[], b"xyz");
            let (first, n) = next_frame(&out).unwrap().unwrap();
            let header = Header::decode(first.serialize_type, first.header).unwrap();
            assert_eq!((header.code, header.opaque, header.version), (105, 7, 479));
            assert_eq!(header.ext("topic"), Some("T1"));
            assert!(!header.is_oneway());
            let (second, m) = next_frame(&out[n..]).unwrap().unwrap();
            let header = Header::decode(second.serialize_type, second.header).unwrap();
            assert!(header.is_oneway());
            assert_eq!(second.body, b"xyz");
            assert_eq!(n + m, out.len());
            // A request is not an answer.
            assert!(decode_answer_header(&second).is_err());
            // Every strict prefix is incomplete.
            for end in 0..n {
                assert!(next_frame(&out[..end]).unwrap().is_none());
            }
        }
        assert!(next_frame(&[0, 0, 0, 4, 9, 0, 0, 0]).is_err(), "unknown serialize type");
    }
}
