//! The blocking client the tools share: `meridian admin` (meridian-admin), routeDiff and the peer
//! watch (route_diff::fetch), and the route-watch client (watch). One `std::net::TcpStream`
//! per NameServer; connecting and every answer bounded by a timeout; answers bounded by
//! [`ANSWER_FRAME_BYTES_MAX`]; requests encoded as a 5.3.3 client's (JSON header, language
//! RUST). Also the answer bodies the tools read (cluster info, route, topic list), parsed
//! leniently: unknown keys ignored, missing ones empty.
//!
//! Given [`Credentials`] ([`Conn::with_credentials`]), every request is signed as the
//! stock Java client's ACL hook signs it (`meridian_protocol::acl`); without, the bytes are
//! those of an unsigned request.
//!
//! Errors ([`ClientError`]) are text naming what failed (`cannot connect: …`, `no answer
//! within N ms`, `malformed answer: …`), split into I/O and malformed answers; callers add
//! which NameServer. Must not: use anything of Meridian's
//! but `protocol` (it is a client).

use meridian_protocol::acl;
pub use meridian_protocol::acl::Credentials;
use meridian_protocol::body::{decode_answer_json, MASTER_ID};
pub use meridian_protocol::body::{BrokerData, QueueData};
use meridian_protocol::codes;
use meridian_protocol::frame::{self, SerializeType};
use meridian_protocol::header::{Header, HeaderOut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest answer frame accepted (prefix included). A Java NameServer sends at most 16 MiB
/// and Meridian at most its `frameBytesMax`; anything past this is garbage, not an answer.
pub const ANSWER_FRAME_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// `LanguageCode.RUST` (ordinal 12): this client is not Java, and says so.
pub const LANGUAGE_RUST: u8 = 12;

/// A request frame with a JSON header, as a 5.3.3 client sends it
/// (`RemotingCommand.createRequestCommand`).
pub fn encode_request(code: i32, opaque: i32, ext: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    // Java leaves extFields out (null) for a request without a custom header.
    let ext_fields = if ext.is_empty() { None } else { Some(ext) };
    let header = HeaderOut::request(code, LANGUAGE_RUST, codes::VERSION_CURRENT, opaque, ext_fields);
    let mut out = Vec::new();
    header.encode_frame(SerializeType::Json, body, &mut out);
    out
}

/// [`encode_request`], signed with `credentials` when given (the `AccessKey`,
/// `SecurityToken` and `Signature` ext fields added); without, the same bytes.
pub fn encode_signed_request(
    code: i32,
    opaque: i32,
    ext: &[(&str, &str)],
    body: &[u8],
    credentials: Option<&Credentials>,
) -> Vec<u8> {
    let Some(credentials) = credentials else {
        return encode_request(code, opaque, ext, body);
    };
    let mut signed: Vec<(String, String)> = ext.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    acl::sign(&mut signed, body, credentials);
    let signed: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    encode_request(code, opaque, &signed, body)
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// A TCP connection to the first address `addr` resolves to that accepts one within `timeout`.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let resolved: Vec<_> =
        addr.to_socket_addrs().map_err(|e| ClientError::Io(format!("cannot resolve: {e}")))?.collect();
    let mut last_error = None;
    for socket_addr in &resolved {
        match TcpStream::connect_timeout(socket_addr, timeout) {
            Ok(stream) => {
                // Requests are small and latency matters: no Nagle delay.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(ClientError::Io(match last_error {
        Some(e) if is_timeout(&e) => format!("cannot connect within {} ms", timeout.as_millis()),
        Some(e) => format!("cannot connect: {e}"),
        None => "cannot resolve: no address".to_string(),
    }))
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Connecting, sending or reading failed, or timed out.
    Io(String),
    /// The bytes that came back are not an answer frame.
    Malformed(String),
}

impl std::error::Error for ClientError {}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(text) | ClientError::Malformed(text) => f.write_str(text),
        }
    }
}

/// An answer frame.
pub struct Reply {
    pub header: Header,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as the JSON of `body_name`, read as leniently as a Java client does.
    pub fn json<T: DeserializeOwned>(&self, body_name: &'static str) -> Result<T, ClientError> {
        decode_answer_json(&self.body, body_name).map_err(|e| ClientError::Malformed(format!("malformed answer: {e}")))
    }
}

/// One connection to one NameServer.
pub struct Conn {
    addr: String,
    stream: TcpStream,
    timeout: Duration,
    opaque_next: i32,
    answer_bytes_max: u32,
    credentials: Option<Credentials>,
}

impl Conn {
    /// Connects within `timeout`, which also bounds every later call; answers up to
    /// [`ANSWER_FRAME_BYTES_MAX`].
    pub fn open(addr: &str, timeout: Duration) -> Result<Conn, ClientError> {
        let stream = connect(addr, timeout)?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| ClientError::Io(format!("socket: {e}")))?;
        Ok(Conn {
            addr: addr.to_string(),
            stream,
            timeout,
            opaque_next: 1,
            answer_bytes_max: ANSWER_FRAME_BYTES_MAX,
            credentials: None,
        })
    }

    /// Accepts answer frames up to `bytes` (prefix included) instead.
    pub fn with_answer_bytes_max(mut self, bytes: u32) -> Conn {
        self.answer_bytes_max = bytes;
        self
    }

    /// Signs every request sent from now on with `credentials` (`None`: unsigned).
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Conn {
        self.credentials = credentials;
        self
    }

    /// The address as given to [`Conn::open`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Appends one request to `out`, signed if the connection has credentials; returns its opaque.
    pub fn encode(&mut self, out: &mut Vec<u8>, code: i32, ext: &[(&str, &str)], body: &[u8]) -> i32 {
        let opaque = self.opaque_next;
        self.opaque_next = self.opaque_next.wrapping_add(1);
        out.extend_from_slice(&encode_signed_request(code, opaque, ext, body, self.credentials.as_ref()));
        opaque
    }

    /// Writes requests (one or several, encoded with [`Conn::encode`]).
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes).map_err(|e| {
            ClientError::Io(if is_timeout(&e) {
                format!("request not taken within {} ms", self.timeout.as_millis())
            } else {
                format!("sending the request: {e}")
            })
        })
    }

    /// One request and its answer (matched by opaque; other frames are skipped), all within
    /// the timeout.
    pub fn call(&mut self, code: i32, ext: &[(&str, &str)], body: &[u8]) -> Result<Reply, ClientError> {
        self.call_by(code, ext, body, Instant::now() + self.timeout)
    }

    /// [`Conn::call`], answered by `deadline` (a long poll's answer may take longer than
    /// the timeout).
    pub fn call_by(
        &mut self,
        code: i32,
        ext: &[(&str, &str)],
        body: &[u8],
        deadline: Instant,
    ) -> Result<Reply, ClientError> {
        let mut bytes = Vec::new();
        let opaque = self.encode(&mut bytes, code, ext, body);
        self.send(&bytes)?;
        loop {
            let reply = self.read_reply(deadline)?;
            if reply.header.opaque == opaque {
                return Ok(reply);
            }
        }
    }

    /// The next answer frame, by `deadline`. A NameServer sends nothing but answers on a
    /// client connection; anything else (a request) is skipped.
    pub fn read_reply(&mut self, deadline: Instant) -> Result<Reply, ClientError> {
        let max = self.answer_bytes_max;
        let malformed = |e: &dyn std::fmt::Display| ClientError::Malformed(format!("malformed answer: {e}"));
        loop {
            let mut prefix = [0u8; frame::LENGTH_PREFIX_BYTES];
            self.read_exact_by(&mut prefix, deadline)?;
            let frame_bytes = frame::peek_frame_len(&prefix, max).map_err(|e| malformed(&e))?;
            let mut whole = vec![0u8; frame_bytes];
            whole[..prefix.len()].copy_from_slice(&prefix);
            self.read_exact_by(&mut whole[prefix.len()..], deadline)?;
            frame::check(&whole, max, max).map_err(|e| malformed(&e))?;
            let parts = frame::split(&whole, frame_bytes);
            let header = Header::decode(parts.serialize_type, &whole[parts.header])
                .map_err(|e| ClientError::Malformed(format!("malformed answer header: {e}")))?;
            if header.is_response() {
                return Ok(Reply { header, body: whole[parts.body].to_vec() });
            }
        }
    }

    /// `read_exact`, but the whole read ends at `deadline` however the bytes trickle in.
    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), ClientError> {
        let timed_out = || ClientError::Io(format!("no answer within {} ms", self.timeout.as_millis()));
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| ClientError::Io(format!("socket: {e}")))?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err(ClientError::Io("connection closed before the answer was complete".to_string())),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(timed_out()),
                Err(e) => return Err(ClientError::Io(format!("reading the answer: {e}"))),
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Answer bodies: Java's ClusterInfo, TopicRouteData and TopicList
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    pub cluster_addr_table: BTreeMap<String, Vec<String>>,
}

/// The owned, decoded form of a route answer. The server only encodes routes, from the
/// borrowed `body::TopicRouteView`, so this type lives with the clients.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicRouteData {
    pub broker_datas: Vec<BrokerData>,
    pub queue_datas: Vec<QueueData>,
    pub order_topic_conf: Option<String>,
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct TopicList {
    pub topic_list: Vec<String>,
}

/// One broker address as a NameServer's cluster info (106) lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerEntry {
    pub cluster: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub addr: String,
}

impl BrokerEntry {
    pub fn role(&self) -> &'static str {
        if self.broker_id == MASTER_ID {
            "MASTER"
        } else {
            "SLAVE"
        }
    }
}

/// Every broker address of a cluster info, by cluster, broker name and id (mqadmin's
/// clusterList order), under each cluster that lists its name. Brokers no cluster lists
/// (never seen in practice) come last under their own `cluster`.
pub fn broker_entries(info: &ClusterInfo) -> Vec<BrokerEntry> {
    fn push(cluster: &str, broker: &BrokerData, entries: &mut Vec<BrokerEntry>) {
        for (id, addr) in &broker.broker_addrs {
            entries.push(BrokerEntry {
                cluster: cluster.to_string(),
                broker_name: broker.broker_name.clone(),
                broker_id: *id,
                addr: addr.clone(),
            });
        }
    }
    let mut entries = Vec::new();
    let mut listed = BTreeSet::new();
    for (cluster, names) in &info.cluster_addr_table {
        let names: BTreeSet<&String> = names.iter().collect();
        for name in names {
            if let Some(broker) = info.broker_addr_table.get(name) {
                listed.insert(name.as_str());
                push(cluster, broker, &mut entries);
            }
        }
    }
    for (name, broker) in &info.broker_addr_table {
        if !listed.contains(name.as_str()) {
            push(&broker.cluster, broker, &mut entries);
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frames_decode_as_sent() {
        assert_eq!(meridian_protocol::header::language_name(LANGUAGE_RUST), Some("RUST"));
        let bytes = encode_request(codes::PUT_KV_CONFIG, 7, &[("namespace", "ns"), ("key", "k\"1")], b"body");
        let len = frame::check(&bytes, ANSWER_FRAME_BYTES_MAX, ANSWER_FRAME_BYTES_MAX).unwrap();
        assert_eq!(len, bytes.len());
        let parts = frame::split(&bytes, len);
        let header = Header::decode(parts.serialize_type, &bytes[parts.header]).unwrap();
        assert_eq!((header.code, header.opaque, header.flag, header.version), (100, 7, 0, 479));
        assert_eq!(header.ext("key"), Some("k\"1"));
        assert_eq!(header.ext("namespace"), Some("ns"));
        assert_eq!(&bytes[parts.body], b"body");
        // No custom header: no extFields at all, as Java sends it.
        let bytes = encode_request(codes::GET_BROKER_CLUSTER_INFO, 1, &[], b"");
        let parts = frame::split(&bytes, bytes.len());
        assert_eq!(Header::decode(parts.serialize_type, &bytes[parts.header]).unwrap().ext_fields, None);
    }

    /// A connection to a listener that never answers: enough to encode requests.
    fn idle_conn() -> (std::net::TcpListener, Conn) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = Conn::open(&listener.local_addr().unwrap().to_string(), Duration::from_secs(5)).unwrap();
        (listener, conn)
    }

    fn decode(bytes: &[u8]) -> (Header, Vec<u8>) {
        let len = frame::check(bytes, ANSWER_FRAME_BYTES_MAX, ANSWER_FRAME_BYTES_MAX).unwrap();
        assert_eq!(len, bytes.len());
        let parts = frame::split(bytes, len);
        (Header::decode(parts.serialize_type, &bytes[parts.header]).unwrap(), bytes[parts.body].to_vec())
    }

    #[test]
    fn unsigned_requests_keep_their_bytes() {
        // The frame as this client sent it before requests could be signed.
        let before: &[u8] = b"\0\0\0\x92\0\0\0\x8a{\"code\":100,\"extFields\":{\"namespace\":\"ns\",\"key\":\"k\"},\"flag\":0,\"language\":\"RUST\",\"opaque\":1,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":479}body";
        let ext = [("namespace", "ns"), ("key", "k")];
        assert_eq!(encode_request(codes::PUT_KV_CONFIG, 1, &ext, b"body"), before);
        assert_eq!(encode_signed_request(codes::PUT_KV_CONFIG, 1, &ext, b"body", None), before);
        let (_listener, conn) = idle_conn();
        let mut conn = conn.with_credentials(None);
        let mut out = Vec::new();
        assert_eq!(conn.encode(&mut out, codes::PUT_KV_CONFIG, &ext, b"body"), 1);
        assert_eq!(out, before);
    }

    #[test]
    fn signed_requests_verify_after_encoding_and_decoding() {
        let mut credentials = Credentials::new("rocketmq2", "12345678");
        credentials.security_token = Some("tok\"€n".to_string());
        let (_listener, conn) = idle_conn();
        let mut conn = conn.with_credentials(Some(credentials.clone()));
        let ext = [("namespace", "ORDER_TOPIC_CONFIG"), ("key", "主题\\\"x"), ("value", "")];
        for (code, ext, body) in [
            (codes::PUT_KV_CONFIG, &ext[..], &b""[..]),
            (codes::GET_BROKER_CLUSTER_INFO, &[][..], &b""[..]),
            (codes::UPDATE_NAMESRV_CONFIG, &[][..], "orderMessageEnable=true\nü".as_bytes()),
        ] {
            let mut out = Vec::new();
            conn.encode(&mut out, code, ext, body);
            let (header, sent_body) = decode(&out);
            let fields = header.ext_fields.clone().expect("a signed request has ext fields");
            assert_eq!(sent_body, body);
            assert_eq!(acl::verify(header.version, &fields, &sent_body, "12345678"), Ok(()));
            assert_eq!(
                acl::verify(header.version, &fields, &sent_body, "12345679"),
                Err(acl::AclError::SignatureMismatch)
            );
            assert_eq!(header.ext(acl::ACCESS_KEY), Some("rocketmq2"));
            assert_eq!(header.ext(acl::SECURITY_TOKEN), Some("tok\"€n"));
            for (key, value) in ext.iter().filter(|(_, v)| !v.is_empty()) {
                assert_eq!(header.ext(key), Some(*value));
            }
            let signed = encode_signed_request(code, header.opaque, ext, body, Some(&credentials));
            assert_eq!(signed, out, "Conn::encode and encode_signed_request agree");
        }
    }

    #[test]
    fn cluster_info_in_java_legacy_form_gives_sorted_entries() {
        let body = br#"{"brokerAddrTable":{"broker-b":{"brokerAddrs":{0:"10.0.0.2:10911"},"brokerName":"broker-b","cluster":"c1","enableActingMaster":false},"broker-a":{"brokerAddrs":{1:"10.0.0.3:10911",0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"c1","enableActingMaster":false},"lost":{"brokerAddrs":{0:"10.0.0.9:10911"},"brokerName":"lost","cluster":"c9"}},"clusterAddrTable":{"c1":["broker-b","broker-a"]}}"#;
        let info: ClusterInfo = decode_answer_json(body, "ClusterInfo").unwrap();
        let entries: Vec<(String, String, i64, String)> =
            broker_entries(&info).into_iter().map(|r| (r.cluster, r.broker_name, r.broker_id, r.addr)).collect();
        let entry = |c: &str, n: &str, id: i64, a: &str| (c.to_string(), n.to_string(), id, a.to_string());
        assert_eq!(
            entries,
            vec![
                entry("c1", "broker-a", 0, "10.0.0.1:10911"),
                entry("c1", "broker-a", 1, "10.0.0.3:10911"),
                entry("c1", "broker-b", 0, "10.0.0.2:10911"),
                entry("c9", "lost", 0, "10.0.0.9:10911"),
            ]
        );
    }

    #[test]
    fn route_in_both_flavours_decodes_the_same() {
        let standard = br#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"c1","enableActingMaster":false}],"filterServerTable":{},"orderTopicConf":"broker-a:4","queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":8}]}"#;
        let legacy = String::from_utf8(standard.to_vec()).unwrap().replace(r#"{"0":"#, "{0:");
        for body in [&standard[..], legacy.as_bytes()] {
            let route: TopicRouteData = decode_answer_json(body, "TopicRouteData").unwrap();
            assert_eq!(route.broker_datas[0].broker_addrs.get(&0).map(String::as_str), Some("10.0.0.1:10911"));
            let q = &route.queue_datas[0];
            assert_eq!((q.read_queue_nums, q.write_queue_nums, q.perm, q.topic_sys_flag), (4, 8, 6, 0));
            assert_eq!(route.order_topic_conf.as_deref(), Some("broker-a:4"));
        }
        assert!(decode_answer_json::<TopicRouteData>(b"{\"brokerDatas\":[", "TopicRouteData").is_err());
    }
}
