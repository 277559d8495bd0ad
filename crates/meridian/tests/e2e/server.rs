//! End-to-end tests: the real `meridian` binary on an ephemeral port, driven over TCP with
//! RocketMQ remoting frames, answers compared with Java's exact shapes (golden/*.jsonl and
//! the protocol notes quoted in comments). Every test starts its own server and ends by itself.

use crate::common;
use crate::common::builders::*;

use meridian_protocol::body::{self, DataVersion, TopicConfig};
use meridian_protocol::codes::{
    BROKER_HEARTBEAT, GET_BROKER_CLUSTER_INFO, GET_ROUTEINFO_BY_TOPIC, QUERY_DATA_VERSION, REGISTER_BROKER,
    REGISTER_TOPIC_IN_NAMESRV, SUCCESS, TOPIC_NOT_EXIST, UNREGISTER_BROKER,
};
use meridian_testkit::{
    golden_lines, header_json, hex_decode, poll_until, split_frame, without_opaque, Client, Closed, Request, Server,
    ServerOptions, FLAG_ONEWAY, POLL_DEADLINE, SERIALIZE_JSON,
};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Java's FAQ suffix on TOPIC_NOT_EXIST (requests.md §2, 105).
const FAQ_SUFFIX: &str = "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";
const JAVA_GOLDEN: &str = "java-5.3.3-examples.jsonl";
const RUST_BROKER_GOLDEN: &str = "rocketmq-rust-broker-1.0.0.jsonl";
const RUST_BROKER_ON_JAVA_GOLDEN: &str = "rocketmq-rust-broker-1.0.0-replayed-on-java-5.3.3.jsonl";
/// Request codes Meridian serves today; the golden replay skips the others.
const SERVED_CODES: [i32; 7] = [103, 104, 105, 106, 217, 322, 904];

// ---------------------------------------------------------------------------------------
// Helpers: brokers, bodies, expected JSON
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Broker {
    cluster: String,
    name: String,
    id: i64,
    addr: String,
    ha_addr: String,
}

impl Broker {
    /// A broker listening on 127.0.0.1:`port`, its HA listener on the next port.
    fn new(cluster: &str, name: &str, id: i64, port: u16) -> Broker {
        Broker {
            cluster: cluster.to_string(),
            name: name.to_string(),
            id,
            addr: format!("127.0.0.1:{port}"),
            ha_addr: format!("127.0.0.1:{}", port + 1),
        }
    }

    /// `request` with the broker quadruple (104, 322).
    fn identity(&self, request: Request) -> Request {
        request
            .ext("brokerName", &self.name)
            .ext("brokerAddr", &self.addr)
            .ext("clusterName", &self.cluster)
            .ext("brokerId", self.id)
    }

    /// A 5.x broker's REGISTER_BROKER header (without bodyCrc32).
    fn register_header(&self) -> Request {
        self.identity(Request::new(REGISTER_BROKER))
            .ext("haServerAddr", &self.ha_addr)
            .ext("compressed", "false")
            .ext("enableActingMaster", "false")
    }

    /// A 5.x broker's REGISTER_BROKER with a JSON body and its CRC.
    fn register(&self, body: Vec<u8>) -> Request {
        let crc = crc32(&body);
        self.register_header().ext("bodyCrc32", crc).body(body)
    }

    fn unregister(&self) -> Request {
        self.identity(Request::new(UNREGISTER_BROKER))
    }

    fn query_data_version(&self, data_version: &DataVersion) -> Request {
        let mut body = Vec::new();
        body::encode_data_version(&mut body, data_version);
        self.identity(Request::new(QUERY_DATA_VERSION)).body(body)
    }

    fn heartbeat(&self) -> Request {
        Request::new(BROKER_HEARTBEAT)
            .ext("clusterName", &self.cluster)
            .ext("brokerAddr", &self.addr)
            .ext("brokerName", &self.name)
    }
}

fn cluster_info_request() -> Request {
    Request::new(GET_BROKER_CLUSTER_INFO)
}

fn broker_data_json(cluster: &str, name: &str, addrs: &[(i64, &str)], standard: bool) -> String {
    format!(
        "{{\"brokerAddrs\":{},\"brokerName\":\"{name}\",\"cluster\":\"{cluster}\",\"enableActingMaster\":false}}",
        addrs_json(addrs, standard)
    )
}

fn queue_data_json(name: &str, queue_nums: i32, perm: i32) -> String {
    format!(
        "{{\"brokerName\":\"{name}\",\"perm\":{perm},\"readQueueNums\":{queue_nums},\"topicSysFlag\":0,\"writeQueueNums\":{queue_nums}}}"
    )
}

/// TopicRouteData as Java writes it (bodies.md §6), from already encoded parts.
fn route_json(broker_datas: &[impl AsRef<str>], queue_datas: &[impl AsRef<str>]) -> String {
    fn join(parts: &[impl AsRef<str>]) -> String {
        parts.iter().map(AsRef::as_ref).collect::<Vec<&str>>().join(",")
    }
    format!(
        "{{\"brokerDatas\":[{}],\"filterServerTable\":{{}},\"queueDatas\":[{}]}}",
        join(broker_datas),
        join(queue_datas)
    )
}

/// Java's answer header for a plain SUCCESS (golden seq 12), opaque left out.
fn java_success_header() -> Value {
    json!({"code":0,"flag":1,"language":"JAVA","serializeTypeCurrentRPC":"JSON","version":479})
}

/// Java's REGISTER_BROKER answer header, `extFields` included (golden seq 2–4).
fn java_register_header(code: i32, ext: Value, remark: Option<&str>) -> Value {
    let mut h =
        json!({"code":code,"extFields":ext,"flag":1,"language":"JAVA","serializeTypeCurrentRPC":"JSON","version":479});
    if let Some(r) = remark {
        h["remark"] = Value::String(r.to_string());
    }
    h
}

fn java_error_header(code: i32, remark: &str) -> Value {
    json!({"code":code,"flag":1,"language":"JAVA","remark":remark,"serializeTypeCurrentRPC":"JSON","version":479})
}

/// Asserts a successful registration with Java's answer shape and no body.
fn assert_registered(client: &mut Client, request: &Request) {
    let reply = client.call(request);
    assert_eq!(reply.header_without_opaque(), java_register_header(0, json!({}), None), "{}", reply.header);
    assert!(reply.body.is_empty(), "register answer body: {}", reply.body_text());
}

/// The route answer body of `topic`, asserting SUCCESS.
fn route_body(client: &mut Client, request: Request) -> String {
    let reply = client.call(&request);
    assert_eq!(reply.code(), 0, "route lookup {request:?}: {}", reply.header);
    assert_eq!(reply.header_without_opaque(), java_success_header());
    reply.body_text()
}

fn assert_topic_not_exist(client: &mut Client, topic: &str) {
    let reply = client.call(&route_request(topic));
    let remark = format!("No topic route info in name server for the topic: {topic}{FAQ_SUFFIX}");
    assert_eq!(reply.header_without_opaque(), java_error_header(17, &remark));
    assert!(reply.body.is_empty());
}

fn cluster_info(client: &mut Client) -> String {
    let reply = client.call(&cluster_info_request());
    assert_eq!(reply.header_without_opaque(), java_success_header());
    reply.body_text()
}

const EMPTY_CLUSTER_INFO: &str = r#"{"brokerAddrTable":{},"clusterAddrTable":{}}"#;

// ---------------------------------------------------------------------------------------
// Registration forms
// ---------------------------------------------------------------------------------------

#[test]
fn register_5x_json_body_with_crc_then_lookup() {
    let server = common::server(&[]);
    let mut broker_conn = server.client();
    let mut client = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 8, 7)])));

    let bd = broker_data_json("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    assert_eq!(route_body(&mut client, route_request("T1")), route_json(&[&bd], &[queue_data_json("broker-a", 4, 6)]));
    assert_eq!(route_body(&mut client, route_request("T2")), route_json(&[bd], &[queue_data_json("broker-a", 8, 7)]));
}

/// Brokers re-send the same bytes every 30 s; Meridian applies such a re-send without
/// reading its topics, unless the table changed in a way the full body would repair.
#[test]
fn identical_re_sends_skip_the_topics_yet_stay_exact() {
    let server = Server::start_with(common::options().env("RUST_LOG", "meridian=debug"));
    let mut conn = server.client();
    let mut client = server.client();
    // Each registration logs one debug line, full or unread; the log is read by another
    // thread, so wait until `registrations` lines are there and count the unread ones.
    let unread_count_after = |registrations: usize| {
        let count =
            |text: &str| (text.matches("REGISTER_BROKER answered").count(), text.matches("answered unread").count());
        poll_until(POLL_DEADLINE, || {
            let (full, unread) = count(&server.log_text());
            full + unread >= registrations
        });
        count(&server.log_text()).1
    };
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let full = b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 8, 6)]));
    assert_registered(&mut conn, &full);
    assert_registered(&mut conn, &full);
    assert_eq!(unread_count_after(2), 1, "the identical re-send was read again");

    // An admin delete removes T1; Java re-adds a deleted topic on the next re-send of the
    // same data version, so that re-send must be read in full.
    let delete = Request::new(216).ext("topic", "T1");
    assert_eq!(conn.call(&delete).code(), SUCCESS);
    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, "T1") == TOPIC_NOT_EXIST));
    assert_registered(&mut conn, &full);
    assert_eq!(unread_count_after(3), 1, "a re-send after a topic delete was not read");
    assert_eq!(route_code(&mut client, "T1"), SUCCESS);

    // Split registration: chunks share the data version but not the topics. Only the body
    // the table applied last may stand for itself (another one in between could have left
    // fewer of its topics), so alternating chunks are read in full; the same chunk twice
    // in a row is not.
    let chunk_a = b.register(json_body(2, &[topic("T1", 4, 6), topic("T2", 8, 6)]));
    let chunk_b = b.register(json_body(2, &[topic("T3", 2, 6), topic("T4", 2, 6)]));
    for request in [&chunk_a, &chunk_b, &chunk_a, &chunk_b, &chunk_b] {
        assert_registered(&mut conn, request);
    }
    assert_eq!(unread_count_after(8), 2, "chunk re-sends");
    for t in ["T1", "T2", "T3", "T4"] {
        assert_eq!(route_code(&mut client, t), SUCCESS, "{t}");
    }
    // Another connection has not seen these bytes: read in full, same answer.
    let mut other = server.client();
    assert_registered(&mut other, &chunk_a);
    assert_eq!(unread_count_after(9), 2);
}

/// Frames that arrive together are answered together, in order, whatever mix of lookups
/// and writer-bound requests they are, and however many replies that makes.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let mut burst = Vec::new();
    let mut expected = Vec::new();
    let mut add = |request: &Request, code: i32| {
        let opaque = 1000 + expected.len() as i32;
        burst.extend(request.encode(opaque));
        expected.push((opaque, code));
    };
    // Before the registration the topic is unknown; after it (same burst), it is served.
    (0..400).for_each(|_| add(&route_request("TP"), TOPIC_NOT_EXIST));
    add(&b.register(json_body(1, &[topic("TP", 4, 6), topic("TQ", 4, 6)])), SUCCESS);
    (0..400).for_each(|_| add(&route_request("TP"), SUCCESS));
    conn.write_raw(&burst).expect("writing the burst");
    for (opaque, code) in expected {
        let reply = conn.read_reply().expect("a reply for every request");
        assert_eq!((reply.opaque(), reply.code()), (opaque, code));
    }
}

#[test]
fn register_compressed_zlib_body_then_lookup() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-z", 0, 10911);
    let mut compressed = Vec::new();
    body::encode_register_body_compressed(
        &mut compressed,
        &register_body(1, &[topic("TZ", 4, 6), topic("TZ2", 2, 6)]),
        479,
        true,
    );
    assert_eq!(&compressed[..2], &[0x78, 0xDA], "Java brokers send a zlib stream (bodies.md §3)");
    let crc = crc32(&compressed);
    let request = b.register_header().ext("compressed", "true").ext("bodyCrc32", crc).body(compressed);
    assert_registered(&mut conn, &request);
    let bd = broker_data_json("c1", "broker-z", &[(0, "127.0.0.1:10911")], true);
    assert_eq!(route_body(&mut conn, route_request("TZ")), route_json(&[&bd], &[queue_data_json("broker-z", 4, 6)]));
    assert_eq!(route_body(&mut conn, route_request("TZ2")), route_json(&[bd], &[queue_data_json("broker-z", 2, 6)]));
}

#[test]
fn register_compressed_raw_deflate_body_then_lookup() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-r", 0, 10911);
    let mut compressed = Vec::new();
    body::encode_register_body_compressed(
        &mut compressed,
        &register_body(1, &[topic("TR", 4, 6), topic("TR2", 1, 6)]),
        474,
        false,
    );
    let crc = crc32(&compressed);
    let request = b.register_header().version(474).ext("compressed", "true").ext("bodyCrc32", crc).body(compressed);
    assert_registered(&mut conn, &request);
    let bd = broker_data_json("c1", "broker-r", &[(0, "127.0.0.1:10911")], true);
    assert_eq!(route_body(&mut conn, route_request("TR")), route_json(&[&bd], &[queue_data_json("broker-r", 4, 6)]));
    assert_eq!(route_body(&mut conn, route_request("TR2")), route_json(&[bd], &[queue_data_json("broker-r", 1, 6)]));
}

#[test]
fn register_4x_body_without_acting_master_header() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // A 4.9.x broker: no enableActingMaster, no attributes, no static-topic keys (bodies.md §2).
    let body = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":2,"timestamp":1700000000002},"topicConfigTable":{"T4":{"order":false,"perm":6,"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"T4","topicSysFlag":0,"writeQueueNums":4},"T4b":{"order":false,"perm":4,"readQueueNums":2,"topicFilterType":"SINGLE_TAG","topicName":"T4b","topicSysFlag":0,"writeQueueNums":2}}}}"#.to_vec();
    let crc = crc32(&body);
    let request = Request::new(REGISTER_BROKER)
        .version(399)
        .ext("brokerName", "broker-4")
        .ext("brokerAddr", "127.0.0.1:10911")
        .ext("clusterName", "c4")
        .ext("haServerAddr", "127.0.0.1:10912")
        .ext("brokerId", 0)
        .ext("compressed", "false")
        .ext("bodyCrc32", crc)
        .body(body);
    assert_registered(&mut conn, &request);
    let standard = route_json(
        &[broker_data_json("c4", "broker-4", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data_json("broker-4", 4, 6)],
    );
    assert_eq!(route_body(&mut conn, route_request("T4")), standard);
    let legacy = route_json(
        &[broker_data_json("c4", "broker-4", &[(0, "127.0.0.1:10911")], false)],
        &[queue_data_json("broker-4", 2, 4)],
    );
    assert_eq!(route_body(&mut conn, route_request("T4b").version(399)), legacy);
}

#[test]
fn register_bare_wrapper_body_below_version_37() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // Before V3_0_11 (ordinal 37) the body is a bare TopicConfigSerializeWrapper.
    let body = br#"{"dataVersion":{"counter":1,"timestamp":1700000000001},"topicConfigTable":{"TOld":{"order":false,"perm":6,"readQueueNums":3,"topicFilterType":"SINGLE_TAG","topicName":"TOld","topicSysFlag":0,"writeQueueNums":3},"TOld2":{"order":false,"perm":6,"readQueueNums":1,"topicFilterType":"SINGLE_TAG","topicName":"TOld2","topicSysFlag":0,"writeQueueNums":1}}}"#.to_vec();
    let request = Request::new(REGISTER_BROKER)
        .version(36)
        .ext("brokerName", "broker-old")
        .ext("brokerAddr", "127.0.0.1:10911")
        .ext("clusterName", "c-old")
        .ext("haServerAddr", "127.0.0.1:10912")
        .ext("brokerId", 0)
        .body(body);
    assert_registered(&mut conn, &request);
    let expected = route_json(
        &[broker_data_json("c-old", "broker-old", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data_json("broker-old", 3, 6)],
    );
    assert_eq!(route_body(&mut conn, route_request("TOld")), expected);
    assert_eq!(route_code(&mut conn, "TOld2"), 0);
}

#[test]
fn register_with_rocketmq_binary_header() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-bin", 0, 10911);
    let request = b.register(json_body(1, &[topic("TB", 4, 6), topic("TB2", 4, 6)])).binary();
    let reply = conn.call(&request);
    // The stock NameServer answers in JSON whatever the request used (framing.md §3).
    assert_eq!(reply.serialize_type, SERIALIZE_JSON);
    assert_eq!(reply.header_without_opaque(), java_register_header(0, json!({}), None));
    let expected = route_json(
        &[broker_data_json("c1", "broker-bin", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data_json("broker-bin", 4, 6)],
    );
    // A binary route request too.
    assert_eq!(route_body(&mut conn, route_request("TB").binary()), expected);
}

// ---------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------

#[test]
fn route_flavours_follow_version_and_accept_standard_json_only() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let master = Broker::new("c1", "broker-a", 0, 10911);
    let slave = Broker::new("c1", "broker-a", 1, 10921);
    let topics = [topic("TF", 4, 6), topic("TF2", 4, 6)];
    assert_registered(&mut conn, &master.register(json_body(1, &topics)));
    conn.call(&slave.register(json_body(1, &topics)));
    let addrs = [(0, "127.0.0.1:10911"), (1, "127.0.0.1:10921")];
    let standard =
        route_json(&[broker_data_json("c1", "broker-a", &addrs, true)], &[queue_data_json("broker-a", 4, 6)]);
    let legacy = route_json(&[broker_data_json("c1", "broker-a", &addrs, false)], &[queue_data_json("broker-a", 4, 6)]);

    let check = |conn: &mut Client, request: Request, expected: &str| {
        assert_eq!(route_body(conn, request.clone()), expected, "{request:?}");
    };
    check(&mut conn, route_request("TF"), &standard);
    check(&mut conn, route_request("TF").version(401), &standard);
    check(&mut conn, route_request("TF").version(400), &legacy);
    check(&mut conn, route_request("TF").version(317), &legacy);
    check(&mut conn, route_request("TF").version(400).ext("acceptStandardJsonOnly", "true"), &standard);
    check(&mut conn, route_request("TF").version(400).ext("acceptStandardJsonOnly", "TRUE"), &standard);
    check(&mut conn, route_request("TF").version(400).ext("acceptStandardJsonOnly", "false"), &legacy);
}

#[test]
fn unknown_topic_is_topic_not_exist_with_java_remark() {
    let server = common::server(&[]);
    let mut conn = server.client();
    assert_topic_not_exist(&mut conn, "no-such-topic");
    // Binary request, same answer (in JSON).
    let reply = conn.call(&route_request("nosuch").binary());
    assert_eq!(reply.code(), 17);
    assert_eq!(
        reply.remark(),
        Some(format!("No topic route info in name server for the topic: nosuch{FAQ_SUFFIX}").as_str())
    );
}

#[test]
fn slave_answer_carries_master_and_ha_addresses() {
    let server = common::server(&[]);
    let mut master_conn = server.client();
    let mut slave_conn = server.client();
    let master = Broker::new("c1", "broker-a", 0, 10911);
    let slave = Broker::new("c1", "broker-a", 1, 10921);
    let topics = [topic("TS", 4, 6), topic("TS2", 4, 6)];

    // No master yet: no addresses.
    assert_registered(&mut slave_conn, &slave.register(json_body(1, &topics)));
    assert_registered(&mut master_conn, &master.register(json_body(1, &topics)));
    let reply = slave_conn.call(&slave.register(json_body(1, &topics)));
    let ext = json!({"haServerAddr":"127.0.0.1:10912","masterAddr":"127.0.0.1:10911"});
    assert_eq!(reply.header_without_opaque(), java_register_header(0, ext, None));
    // The master itself gets none.
    assert_registered(&mut master_conn, &master.register(json_body(1, &topics)));

    // Once the master is gone, the slave's answer has none again.
    assert_eq!(master_conn.call(&master.unregister()).code(), 0);
    assert_registered(&mut slave_conn, &slave.register(json_body(1, &topics)));
}

// ---------------------------------------------------------------------------------------
// Refused registrations
// ---------------------------------------------------------------------------------------

#[test]
fn one_topic_first_registration_is_refused() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let reply = conn.call(&b.register(json_body(1, &[topic("T1", 4, 6)])));
    assert_eq!(reply.header_without_opaque(), java_register_header(1, json!({}), Some("register broker failed")));
    assert_topic_not_exist(&mut conn, "T1");
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);

    // After a full registration, an incremental one-topic registration is fine.
    assert_registered(&mut conn, &b.register(json_body(2, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_registered(&mut conn, &b.register(json_body(3, &[topic("T3", 2, 6)])));
    let expected = route_json(
        &[broker_data_json("c1", "broker-a", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data_json("broker-a", 2, 6)],
    );
    assert_eq!(route_body(&mut conn, route_request("T3")), expected);
}

/// Frames above the 64 KiB read buffer have their body CRC computed while they arrive;
/// sent in pieces, a right CRC is accepted and a wrong one refused.
#[test]
fn large_frames_arriving_in_pieces_are_crc_checked() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-big", 0, 10911);
    let topics: Vec<TopicConfig> = (0..2000).map(|i| topic(&format!("BigTopic{i:05}"), 4, 6)).collect();
    let body = json_body(1, &topics);
    assert!(body.len() > 200 * 1024, "{} bytes", body.len());
    let send_in_pieces = |conn: &mut Client, crc: u32| {
        let frame = b.register_header().ext("bodyCrc32", crc).body(body.clone()).encode(77);
        // Pieces that split the length prefix, the header word and the body.
        for piece in [&frame[..3], &frame[3..6], &frame[6..5000], &frame[5000..70_000], &frame[70_000..]] {
            conn.write_raw(piece).expect("writing a piece");
            std::thread::sleep(Duration::from_millis(5));
        }
        conn.read_reply().expect("an answer")
    };
    let wrong = send_in_pieces(&mut conn, crc32(&body) ^ 1);
    assert_eq!(wrong.remark(), Some("crc32 not match"));
    assert_topic_not_exist(&mut conn, "BigTopic00000");
    let right = send_in_pieces(&mut conn, crc32(&body));
    assert_eq!(right.code(), SUCCESS, "{:?}", right.remark());
    assert_eq!(route_code(&mut conn, "BigTopic01999"), SUCCESS);
}

#[test]
fn crc_mismatch_is_refused_and_changes_nothing() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)]);
    let wrong_crc = crc32(&body) ^ 1;
    let reply = conn.call(&b.register_header().ext("bodyCrc32", wrong_crc).body(body));
    assert_eq!(reply.header_without_opaque(), java_register_header(1, json!({}), Some("crc32 not match")));
    assert_topic_not_exist(&mut conn, "T1");
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
}

#[test]
fn missing_required_header_field_is_refused_and_changes_nothing() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let body = json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)]);
    let crc = crc32(&body);
    let full = [
        ("brokerName", "broker-a"),
        ("brokerAddr", "127.0.0.1:10911"),
        ("clusterName", "c1"),
        ("haServerAddr", "127.0.0.1:10912"),
        ("brokerId", "0"),
    ];
    for missing in ["brokerName", "brokerAddr", "clusterName", "haServerAddr", "brokerId"] {
        let mut request = Request::new(REGISTER_BROKER).ext("bodyCrc32", crc).ext("enableActingMaster", "false");
        for (k, v) in full.iter().filter(|(k, _)| *k != missing) {
            request = request.ext(k, v);
        }
        let reply = conn.call(&request.body(body.clone()));
        assert_eq!(reply.code(), 1, "without {missing}: {}", reply.header);
        let remark = reply.remark().unwrap_or_default();
        assert!(remark.contains(missing), "remark {remark:?} does not name {missing}");
    }
    // An empty value in a binary header counts as missing (framing.md §2.2).
    let mut request = Request::new(REGISTER_BROKER).ext("bodyCrc32", crc).binary();
    for (k, v) in full {
        request = request.ext(k, if k == "clusterName" { "" } else { v });
    }
    let reply = conn.call(&request.body(body.clone()));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("clusterName"), "{}", reply.header);
    // 105 without topic.
    let reply = conn.call(&Request::new(GET_ROUTEINFO_BY_TOPIC));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("topic"), "{}", reply.header);
    assert_topic_not_exist(&mut conn, "T1");
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);

    // 104 without brokerAddr leaves the registered broker alone.
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(body));
    let request =
        Request::new(UNREGISTER_BROKER).ext("brokerName", "broker-a").ext("clusterName", "c1").ext("brokerId", 0);
    let reply = conn.call(&request);
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("brokerAddr"), "{}", reply.header);
    assert_eq!(route_code(&mut conn, "T1"), 0);
}

// ---------------------------------------------------------------------------------------
// QUERY_DATA_VERSION, BROKER_HEARTBEAT, UNREGISTER_BROKER, REGISTER_TOPIC_IN_NAMESRV
// ---------------------------------------------------------------------------------------

#[test]
fn query_data_version_answers() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    let stored = r#"{"counter":1,"stateVersion":0,"timestamp":1700000000001}"#;

    let check = |conn: &mut Client, request: Request, changed: &str, body: &str| {
        let reply = conn.call(&request);
        let expected = json!({"code":0,"extFields":{"changed":changed},"flag":1,"language":"JAVA",
            "serializeTypeCurrentRPC":"JSON","version":479});
        assert_eq!(reply.header_without_opaque(), expected);
        assert_eq!(reply.body_text(), body);
    };
    check(&mut conn, b.query_data_version(&data_version(1)), "false", stored);
    check(&mut conn, b.query_data_version(&data_version(7)), "true", stored);
    let ghost = Broker::new("c1", "ghost", 0, 19911);
    check(&mut conn, ghost.query_data_version(&data_version(1)), "true", "");
    // Same address in another cluster is another broker (5.x live key).
    let other_cluster = Broker::new("c2", "broker-a", 0, 10911);
    check(&mut conn, other_cluster.query_data_version(&data_version(1)), "true", "");
}

#[test]
fn broker_heartbeat_two_way_and_oneway() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));

    let reply = conn.call(&b.heartbeat());
    assert_eq!(reply.header_without_opaque(), java_success_header());
    assert!(reply.body.is_empty());

    // A oneway heartbeat gets no answer: the first answer read is the next request's.
    let oneway = conn.send(&b.heartbeat().oneway().opaque(1000));
    let next = conn.send(&cluster_info_request().opaque(1001));
    let reply = conn.read_reply().expect("an answer to the cluster info request");
    assert_eq!((oneway, reply.opaque()), (1000, next), "{}", reply.header);
    // Unknown brokers are ignored, and still get SUCCESS.
    let ghost = Broker::new("c1", "ghost", 0, 19911);
    assert_eq!(conn.call(&ghost.heartbeat()).code(), 0);
}

#[test]
fn unregister_broker_removes_routes() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let mut client = server.client();
    let a0 = Broker::new("c1", "broker-a", 0, 10911);
    let a1 = Broker::new("c1", "broker-a", 1, 10921);
    let b0 = Broker::new("c1", "broker-b", 0, 11911);
    assert_registered(&mut conn, &a0.register(json_body(1, &[topic("TA", 4, 6), topic("TS", 4, 6)])));
    conn.call(&a1.register(json_body(1, &[topic("TA", 4, 6), topic("TS", 4, 6)])));
    assert_registered(&mut conn, &b0.register(json_body(1, &[topic("TB", 2, 6), topic("TS", 2, 6)])));

    // Unregistering the master leaves the group (and its topics) with the slave.
    let reply = conn.call(&a0.unregister());
    assert_eq!(reply.header_without_opaque(), java_success_header());
    let only_slave = route_json(
        &[broker_data_json("c1", "broker-a", &[(1, "127.0.0.1:10921")], true)],
        &[queue_data_json("broker-a", 4, 6)],
    );
    assert!(poll_until(POLL_DEADLINE, || route_body(&mut client, route_request("TA")) == only_slave));

    // The last address of the group: its topics go, shared topics keep the other group.
    assert_eq!(conn.call(&a1.unregister()).code(), 0);
    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, "TA") == 17));
    assert_topic_not_exist(&mut client, "TA");
    let shared = route_json(
        &[broker_data_json("c1", "broker-b", &[(0, "127.0.0.1:11911")], true)],
        &[queue_data_json("broker-b", 2, 6)],
    );
    assert_eq!(route_body(&mut client, route_request("TS")), shared);
    let info = cluster_info(&mut client);
    assert!(!info.contains("broker-a"), "{info}");
    // Unknown brokers: a no-op, still SUCCESS.
    assert_eq!(conn.call(&Broker::new("c9", "ghost", 0, 19911).unregister()).code(), 0);
}

#[test]
fn register_topic_in_namesrv_then_lookup() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));

    let body = format!(
        r#"{{"brokerDatas":[],"filterServerTable":{{}},"queueDatas":[{}]}}"#,
        queue_data_json("broker-a", 7, 6)
    );
    let reply = conn.call(&Request::new(REGISTER_TOPIC_IN_NAMESRV).ext("topic", "TNew").body(body));
    // Java omits extFields on this answer (golden seq 16).
    assert_eq!(reply.header_without_opaque(), java_success_header());
    let expected = route_json(
        &[broker_data_json("c1", "broker-a", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data_json("broker-a", 7, 6)],
    );
    assert_eq!(route_body(&mut conn, route_request("TNew")), expected);

    // An unregistered broker name: SUCCESS, nothing created (behaviour.md §2.1).
    let body = format!(
        r#"{{"brokerDatas":[],"filterServerTable":{{}},"queueDatas":[{}]}}"#,
        queue_data_json("broker-z", 7, 6)
    );
    let reply = conn.call(&Request::new(REGISTER_TOPIC_IN_NAMESRV).ext("topic", "TNew2").body(body));
    assert_eq!(reply.code(), 0);
    assert_topic_not_exist(&mut conn, "TNew2");
}

#[test]
fn unknown_code_is_not_supported() {
    let server = common::server(&[]);
    let mut conn = server.client();
    for code in [9999, 215, 17] {
        let reply = conn.call(&Request::new(code));
        assert_eq!(reply.header_without_opaque(), java_error_header(3, &format!(" request type {code} not supported")));
        assert!(reply.body.is_empty());
    }
}

#[test]
fn cluster_info_is_always_the_legacy_form() {
    let server = common::server(&[]);
    let mut conn = server.client();
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
    let topics = [topic("T1", 4, 6), topic("T2", 4, 6)];
    assert_registered(&mut conn, &Broker::new("c1", "broker-a", 0, 10911).register(json_body(1, &topics)));
    conn.call(&Broker::new("c1", "broker-a", 1, 10921).register(json_body(1, &topics)));
    let a = broker_data_json("c1", "broker-a", &[(0, "127.0.0.1:10911"), (1, "127.0.0.1:10921")], false);
    assert_eq!(
        cluster_info(&mut conn),
        format!(r#"{{"brokerAddrTable":{{"broker-a":{a}}},"clusterAddrTable":{{"c1":["broker-a"]}}}}"#)
    );
    // Whatever the request version.
    let reply = conn.call(&cluster_info_request().version(300));
    assert!(reply.body_text().contains(r#"{0:"127.0.0.1:10911",1:"127.0.0.1:10921"}"#), "{}", reply.body_text());

    // Two clusters: map order is arbitrary in Java, so look for the parts.
    assert_registered(&mut conn, &Broker::new("c2", "broker-b", 0, 11911).register(json_body(1, &topics)));
    let info = cluster_info(&mut conn);
    let b = broker_data_json("c2", "broker-b", &[(0, "127.0.0.1:11911")], false);
    for part in [
        format!(r#""broker-a":{a}"#),
        format!(r#""broker-b":{b}"#),
        r#""c1":["broker-a"]"#.into(),
        r#""c2":["broker-b"]"#.into(),
    ] {
        assert!(info.contains(&part), "{info} lacks {part}");
    }
    assert!(info.starts_with(r#"{"brokerAddrTable":{"#) && info.contains(r#"},"clusterAddrTable":{"#), "{info}");
}

// ---------------------------------------------------------------------------------------
// Connection close and expiry
// ---------------------------------------------------------------------------------------

/// Closes `client` after a partial frame, so the server logs the close (a clean close is
/// only a debug line), and waits for that line.
fn close_noisily(server: &Server, mut client: Client) {
    let port = client.local_port();
    let partial = &Request::new(GET_BROKER_CLUSTER_INFO).encode(1)[..10];
    client.write_raw(partial).expect("writing a partial frame");
    drop(client);
    server.expect_log(&format!("closing 127.0.0.1:{port}: peer closed in the middle of a frame"));
}

#[test]
fn closing_a_broker_connection_unregisters_it() {
    let server = common::server(&[]);
    let mut broker_conn = server.client();
    let mut client = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(route_code(&mut client, "T1"), 0);
    drop(broker_conn);
    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, "T1") == 17), "route survived the close");
    assert_topic_not_exist(&mut client, "T2");
    assert_eq!(cluster_info(&mut client), EMPTY_CLUSTER_INFO);
}

#[test]
fn closing_other_connections_removes_nothing() {
    let server = common::server(&[]);
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)]);
    let mut first_conn = server.client();
    assert_registered(&mut first_conn, &b.register(body.clone()));
    let mut probe = server.client();

    // A client connection (lookups, a refused registration) closes: nothing changes.
    let mut client = server.client();
    assert_eq!(route_code(&mut client, "T1"), 0);
    let refused = Broker::new("c1", "broker-x", 0, 12911);
    assert_eq!(client.call(&refused.register(json_body(1, &[topic("TX", 1, 6)]))).code(), 1);
    close_noisily(&server, client);
    // A round trip through the writer (queued after any close event) before looking.
    assert_eq!(probe.call(&b.query_data_version(&data_version(1))).code(), 0);
    assert_eq!(route_code(&mut probe, "T1"), 0);

    // The broker re-registers on a second connection: closing the first one no longer
    // concerns it (the live entry keeps the latest connection, behaviour.md §2 step 11).
    let mut second_conn = server.client();
    assert_registered(&mut second_conn, &b.register(body));
    close_noisily(&server, first_conn);
    assert_eq!(probe.call(&b.query_data_version(&data_version(1))).code(), 0);
    assert_eq!(route_code(&mut probe, "T1"), 0);

    drop(second_conn);
    assert!(poll_until(POLL_DEADLINE, || route_code(&mut probe, "T1") == 17), "route survived the close");
}

#[test]
fn silent_broker_expires_after_the_default_timeout() {
    let server = common::server(&["scan_not_active_broker_interval_ms=200", "broker_timeout_default_ms=500"]);
    let mut broker_conn = server.client();
    let mut client = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, "T1") == 17), "broker never expired");
    assert_eq!(cluster_info(&mut client), EMPTY_CLUSTER_INFO);
    server.expect_log("broker expired");
    // Java closes the expired broker's connection too (behaviour.md §4).
    assert_eq!(broker_conn.read_until_closed(), Closed::Yes);
}

#[test]
fn heartbeats_keep_a_broker_alive_until_they_stop() {
    // Default timeout stays 120 s: only the per-broker heartbeatTimeoutMillis can expire.
    let server = common::server(&["scan_not_active_broker_interval_ms=200"]);
    let mut broker_conn = server.client();
    let mut other_conn = server.client();
    let mut client = server.client();
    let short = Broker::new("c1", "broker-short", 0, 10911);
    let long = Broker::new("c1", "broker-long", 0, 11911);
    let request = short
        .register(json_body(1, &[topic("TShort", 4, 6), topic("TShort2", 4, 6)]))
        .ext("heartbeatTimeoutMillis", 3000);
    assert_registered(&mut broker_conn, &request);
    assert_registered(&mut other_conn, &long.register(json_body(1, &[topic("TLong", 4, 6), topic("TLong2", 4, 6)])));

    // Refresh every 200 ms for about 1.5 s, by every refreshing request; the 3 s timeout
    // leaves a wide margin.
    let keep_alive_end = Instant::now() + Duration::from_millis(1500);
    let mut round = 0;
    while Instant::now() < keep_alive_end {
        match round % 3 {
            0 => assert_eq!(broker_conn.call(&short.heartbeat()).code(), 0),
            1 => {
                broker_conn.send(&short.heartbeat().oneway());
            }
            _ => assert_eq!(broker_conn.call(&short.query_data_version(&data_version(1))).code(), 0),
        }
        assert_eq!(route_code(&mut client, "TShort"), 0, "expired while heartbeating (round {round})");
        round += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, "TShort") == 17), "broker never expired");
    // The broker without heartbeatTimeoutMillis has 120 s and is still there.
    assert_eq!(route_code(&mut client, "TLong"), 0);
}

// ---------------------------------------------------------------------------------------
// Golden replays
// ---------------------------------------------------------------------------------------

/// End offset (exclusive) of the JSON value starting at `start`.
fn json_value_end(text: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = start;
    while i < text.len() {
        let c = text[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        return i; // the end of the enclosing container
                    }
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    text.len()
}

/// The raw text of the value of the first `"key":` in `text`.
fn json_value_of<'a>(text: &'a str, key: &str) -> &'a str {
    let needle = format!("\"{key}\":");
    let at = text.find(&needle).unwrap_or_else(|| panic!("{key} not in {text}")) + needle.len();
    &text[at..json_value_end(text.as_bytes(), at)]
}

/// The raw texts of the elements of a JSON array given as raw text.
fn json_array_elements(array: &str) -> Vec<&str> {
    assert!(array.starts_with('[') && array.ends_with(']'), "not an array: {array}");
    let bytes = array.as_bytes();
    let mut out = Vec::new();
    let mut i = 1;
    while i < array.len() - 1 {
        let end = json_value_end(bytes, i);
        out.push(&array[i..end]);
        i = end + 1;
    }
    out
}

struct GoldenExchange {
    seq: u64,
    request: Vec<u8>,
    request_header: Value,
    response: Option<(Value, Vec<u8>)>,
}

fn golden_exchanges(file: &str) -> Vec<GoldenExchange> {
    golden_lines(file)
        .into_iter()
        .map(|line| {
            let request = hex_decode(line["request_hex"].as_str().expect("request_hex"));
            let (request_type, request_header, _) = split_frame(&request);
            let response = line["response_hex"].as_str().map(|h| {
                let (t, header, body) = split_frame(&hex_decode(h));
                (header_json(t, &header), body)
            });
            GoldenExchange {
                seq: line["seq"].as_u64().expect("seq"),
                request_header: header_json(request_type, &request_header),
                request,
                response,
            }
        })
        .collect()
}

fn request_code(exchange: &GoldenExchange) -> i32 {
    exchange.request_header["code"].as_i64().expect("code") as i32
}

/// Writes the golden request frame unchanged; reads the answer unless it is oneway.
fn replay(conn: &mut Client, exchange: &GoldenExchange) -> Option<meridian_testkit::Reply> {
    conn.write_raw(&exchange.request).expect("writing a golden frame");
    let flag = exchange.request_header["flag"].as_i64().unwrap_or(0) as i32;
    if flag & FLAG_ONEWAY != 0 {
        return None;
    }
    let reply = conn.read_reply().unwrap_or_else(|e| panic!("seq {}: no answer: {e}", exchange.seq));
    assert_eq!(reply.header["opaque"], exchange.request_header["opaque"], "seq {}: opaque", exchange.seq);
    Some(reply)
}

#[test]
fn golden_java_replay() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let exchanges = golden_exchanges(JAVA_GOLDEN);
    let broker_name = exchanges[1].request_header["extFields"]["brokerName"].as_str().expect("seq 2 brokerName");
    let tag = broker_name.strip_suffix("-bA").expect("golden broker names end in -bA");
    let cluster = format!("{tag}-c1");
    let selected = exchanges.iter().filter(|e| (1..=17).contains(&e.seq) || (35..=41).contains(&e.seq));
    let mut replayed = 0;
    for exchange in selected {
        let code = request_code(exchange);
        let java_code = exchange.response.as_ref().map(|(h, _)| h["code"].as_i64().expect("code"));
        if !SERVED_CODES.contains(&code) && java_code.is_some_and(|c| c != 3) {
            continue; // not served by Meridian yet (901)
        }
        replayed += 1;
        let reply = replay(&mut conn, exchange);
        let Some((java_header, java_body)) = &exchange.response else {
            assert!(reply.is_none());
            continue;
        };
        let reply = reply.expect("a two-way request gets an answer");
        let seq = exchange.seq;
        assert_eq!(reply.header_without_opaque(), without_opaque(java_header), "seq {seq}: header");
        let java_text = String::from_utf8(java_body.clone()).expect("golden bodies are UTF-8");
        let expected = match seq {
            // Routes of a topic shared with bB, whose registration is not in the file:
            // Java's bA entries, and nothing else.
            5..=7 => {
                let pick = |key: &str| -> String {
                    let elements: Vec<&str> = json_array_elements(json_value_of(&java_text, key))
                        .into_iter()
                        .filter(|e| e.contains(&format!("\"brokerName\":\"{broker_name}\"")))
                        .collect();
                    assert_eq!(elements.len(), 1, "seq {seq}: {key} of {broker_name} in {java_text}");
                    elements[0].to_string()
                };
                route_json(&[pick("brokerDatas")], &[pick("queueDatas")])
            }
            // Cluster info with brokers registered elsewhere: Java's bA entry, and c1 = [bA].
            13 | 41 => {
                let broker_table = json_value_of(&java_text, "brokerAddrTable");
                let entry = json_value_of(broker_table, broker_name);
                format!(
                    r#"{{"brokerAddrTable":{{"{broker_name}":{entry}}},"clusterAddrTable":{{"{cluster}":["{broker_name}"]}}}}"#
                )
            }
            _ => java_text,
        };
        assert_eq!(reply.body_text(), expected, "seq {seq}: body");
    }
    assert_eq!(replayed, 22, "exchanges replayed (1–17 and 35–41 minus the two 901s)");
}

#[test]
fn golden_rocketmq_rust_broker_frames_are_accepted() {
    let server = common::server(&[]);
    let mut client = server.client();
    let exchanges = golden_exchanges(RUST_BROKER_GOLDEN);
    let java_answers = golden_exchanges(RUST_BROKER_ON_JAVA_GOLDEN);
    assert_eq!(exchanges.len(), 12);
    // One connection per broker run, as captured.
    for (run, topic_name) in [(1..=6, "GoldenTopicPlain"), (7..=12, "GoldenTopicZip")] {
        let mut conn = server.client();
        for exchange in exchanges.iter().filter(|e| run.contains(&e.seq)) {
            let seq = exchange.seq;
            let reply = replay(&mut conn, exchange).expect("the broker frames are two-way");
            let java = &java_answers[seq as usize - 1];
            let (java_header, _) = java.response.as_ref().expect("Java answered every frame");
            let expected = if java_header["code"] == 0 {
                without_opaque(java_header)
            } else {
                // Java 5.3.3 cannot inflate raw deflate; Meridian must (golden/README.md).
                java_register_header(0, json!({}), None)
            };
            assert_eq!(reply.header_without_opaque(), expected, "seq {seq}: header");
            assert!(reply.body.is_empty(), "seq {seq}: body {}", reply.body_text());
            match request_code(exchange) {
                REGISTER_TOPIC_IN_NAMESRV if seq == 2 || seq == 8 => {
                    assert_eq!(route_code(&mut client, topic_name), 0, "seq {seq}: {topic_name} after 217");
                }
                UNREGISTER_BROKER => {
                    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, topic_name) == 17), "seq {seq}");
                }
                _ => {}
            }
        }
    }
    assert_eq!(cluster_info(&mut client), EMPTY_CLUSTER_INFO);
}

// ---------------------------------------------------------------------------------------
// Limits and bad input
// ---------------------------------------------------------------------------------------

/// A 105 request frame of exactly `frame_bytes` bytes (padded with a body Java ignores).
fn route_frame_of_size(frame_bytes: usize) -> Vec<u8> {
    let empty = route_request("TPad").encode(1);
    assert!(frame_bytes >= empty.len());
    route_request("TPad").body(vec![b'x'; frame_bytes - empty.len()]).encode(1)
}

/// A 105 request whose JSON header is exactly `header_bytes` long.
fn route_frame_with_header_size(header_bytes: usize) -> Vec<u8> {
    let (_, header, _) = split_frame(&route_request("TPad").ext("pad", "").encode(1));
    assert!(header_bytes >= header.len());
    let frame = route_request("TPad").ext("pad", "p".repeat(header_bytes - header.len())).encode(1);
    assert_eq!(split_frame(&frame).1.len(), header_bytes);
    frame
}

/// Sends `bytes` on a fresh connection and asserts the server closes it without a word,
/// logging a line about this connection that contains `log_needle`.
fn assert_closed_by(server: &Server, bytes: &[u8], log_needle: &str) {
    let mut conn = server.client();
    let peer = format!("127.0.0.1:{}", conn.local_port());
    // The server may close before everything is written; that is fine.
    let _ = conn.write_raw(bytes);
    assert_eq!(conn.read_until_closed(), Closed::Yes, "after {log_needle:?}");
    server.expect_log_line(&[&format!("closing {peer}:"), log_needle]);
    // Others are still served.
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

/// Hostile input, one connection each: every frame gets an error answer or a closed
/// connection with a log line naming why; none crashes the server or changes stored routes.
#[test]
fn hostile_frames_get_an_error_or_a_close_and_change_nothing() {
    let server = common::server(&["body_decompressed_bytes_max=1048576"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 8, 6)])));
    let route_before = route_body(&mut conn, route_request("T1"));
    let closes = |bytes: &[u8], log_needle: &str| {
        let mut c = server.client();
        let peer = format!("closing 127.0.0.1:{}:", c.local_port());
        let _ = c.write_raw(bytes);
        assert_eq!(c.read_until_closed(), Closed::Yes, "after {log_needle:?}");
        server.expect_log_line(&[&peer, log_needle]);
    };
    let (_, header, _) = split_frame(&route_request("T1").encode(1));

    // Frame level.
    closes(&[0x80, 0, 0, 0, 0, 0, 0, 0], "negative frame length");
    closes(&[0, 0, 0, 2, 0, 0], "shorter than the 4-byte header word");
    let mut beyond = meridian_testkit::frame(0, &header, b"");
    beyond[5..8].copy_from_slice(&[0, 0x10, 0]); // header length 4096 in a short frame
    closes(&beyond, "exceeds");
    closes(&meridian_testkit::frame(1, &[0xFF; 40], b""), "undecodable header");
    closes(&meridian_testkit::frame(0, b"{\"code\":", b""), "undecodable header");

    // Registration bodies: an error answer, nothing applied.
    let refused = |request: Request, remark_part: &str| {
        let mut c = server.client();
        let reply = c.call(&request);
        assert_eq!(reply.code(), 1, "{remark_part}: {}", reply.header);
        let remark = reply.remark().unwrap_or_default().to_string();
        assert!(remark.contains(remark_part), "{remark_part}: remark {remark:?}");
    };
    let evil = Broker::new("c1", "broker-evil", 0, 12911);
    // 100k-deep nesting where an attribute value belongs (the scanner stops at depth 64, serde
    // refuses the type without descending).
    let nested = format!(
        r#"{{"topicConfigSerializeWrapper":{{"topicConfigTable":{{"a":{{"topicName":"a","attributes":{{"k":{}{}}}}}}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    refused(evil.register_header().body(nested.into_bytes()), "RegisterBrokerBody");
    refused(evil.register_header().body(b"\x00\x01 not json".to_vec()), "RegisterBrokerBody");
    let mut zstd_bomb = zstd::stream::Encoder::new(Vec::new(), 19).expect("zstd encoder");
    for _ in 0..8 {
        zstd_bomb.write_all(&vec![0u8; 1 << 20]).expect("into a Vec");
    }
    let zstd_bomb = zstd_bomb.finish().expect("into a Vec");
    refused(evil.register_header().ext("bodyEncoding", "zstd").body(zstd_bomb), "body_decompressed_bytes_max");
    let mut truncated = Vec::new();
    body::encode_register_body_compressed(
        &mut truncated,
        &register_body(1, &[topic("TX", 4, 6), topic("TY", 4, 6)]),
        479,
        true,
    );
    truncated.truncate(truncated.len() / 2);
    refused(evil.register_header().ext("compressed", "true").body(truncated), "");

    // A oneway flood: no answers, and the connection still answers a two-way request.
    let mut flood = Vec::new();
    for i in 0..10_000 {
        flood.extend(
            Request::new(BROKER_HEARTBEAT).ext("clusterName", "c9").ext("brokerAddr", "x:1").oneway().encode(i),
        );
    }
    let mut c = server.client();
    c.write_raw(&flood).expect("writing the flood");
    assert_eq!(route_body(&mut c, route_request("T1")), route_before);

    // Nothing changed; nothing crashed.
    assert_eq!(route_body(&mut conn, route_request("T1")), route_before);
    assert_topic_not_exist(&mut conn, "TX");
    assert!(!cluster_info(&mut conn).contains("broker-evil"));
    assert!(!server.log_text().contains("panicked"), "a panic was logged");
}

#[test]
fn frame_over_frame_bytes_max_closes_the_connection() {
    let server = common::server(&["frame_bytes_max=65536", "header_bytes_max=1024"]);
    // At the limit: served (an unknown topic).
    let mut conn = server.client();
    conn.write_raw(&route_frame_of_size(65536)).expect("write");
    assert_eq!(conn.read_reply().expect("an answer at the limit").code(), 17);
    // One byte over: closed, before the rest of the frame is even sent.
    let frame = route_frame_of_size(65537);
    assert_closed_by(&server, &frame[..8], "frame_bytes_max 65536");
    assert_closed_by(&server, &frame, "frame_bytes_max 65536");
    // A length prefix far past the limit (an HTTP request read as a frame).
    assert_closed_by(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "frame_bytes_max");
}

#[test]
fn header_over_header_bytes_max_closes_the_connection() {
    let server = common::server(&["frame_bytes_max=65536", "header_bytes_max=1024"]);
    let mut conn = server.client();
    conn.write_raw(&route_frame_with_header_size(1024)).expect("write");
    assert_eq!(conn.read_reply().expect("an answer at the limit").code(), 17);
    assert_closed_by(&server, &route_frame_with_header_size(1025), "header_bytes_max 1024");
}

/// A zlib stream of `mib` MiB of zeros, built from one compressed MiB repeated (each
/// piece ends in a sync flush and refers only to itself), so it costs milliseconds.
fn zlib_zeros(mib: usize) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 1 << 20]).expect("writing into a Vec");
    encoder.flush().expect("writing into a Vec");
    let piece = encoder.get_ref().clone();
    let mut out = vec![0x78, 0xDA];
    for _ in 0..mib {
        out.extend_from_slice(&piece);
    }
    out.extend_from_slice(&[0x03, 0x00]); // final empty fixed-Huffman block
    let total_bytes = (mib as u64) << 20;
    let adler = (((total_bytes % 65521) as u32) << 16) | 1; // Adler-32 of zeros
    out.extend_from_slice(&adler.to_be_bytes());
    out
}

#[test]
fn deflate_bomb_is_refused_at_body_decompressed_bytes_max() {
    let server = common::server(&["body_decompressed_bytes_max=1048576"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-bomb", 0, 10911);
    let bomb = zlib_zeros(50);
    assert!(bomb.len() < 100_000, "bomb of {} bytes", bomb.len());
    let crc = crc32(&bomb);
    // With the flag, and without it (the zlib sniffing path for 5.x brokers).
    for compressed in ["true", "false"] {
        let request = b.register_header().ext("compressed", compressed).ext("bodyCrc32", crc).body(bomb.clone());
        let reply = conn.call(&request);
        assert_eq!(reply.code(), 1, "compressed={compressed}: {}", reply.header);
        let remark = reply.remark().unwrap_or_default();
        assert!(remark.contains("body_decompressed_bytes_max"), "compressed={compressed}: remark {remark:?}");
    }
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
    // A legitimate compressed registration still works on the same connection.
    let mut body = Vec::new();
    body::encode_register_body_compressed(
        &mut body,
        &register_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)]),
        479,
        true,
    );
    let crc = crc32(&body);
    assert_registered(&mut conn, &b.register_header().ext("compressed", "true").ext("bodyCrc32", crc).body(body));
    assert_eq!(route_code(&mut conn, "T1"), 0);
}

#[test]
fn connections_per_shard_max_closes_the_next_connection() {
    let server = Server::start_with(common::options().shards(1).sets(&["connections_per_shard_max=2"]));
    let mut first = server.client();
    let mut second = server.client();
    assert_eq!(cluster_info(&mut first), EMPTY_CLUSTER_INFO);
    assert_eq!(cluster_info(&mut second), EMPTY_CLUSTER_INFO);
    let mut third = server.client();
    let third_peer = format!("closing 127.0.0.1:{}:", third.local_port());
    assert_eq!(third.read_until_closed(), Closed::Yes);
    server.expect_log_line(&[&third_peer, "connections_per_shard_max 2"]);
    // The first two are unaffected; a freed slot is reusable.
    assert_eq!(cluster_info(&mut first), EMPTY_CLUSTER_INFO);
    drop(first);
    assert!(
        poll_until(POLL_DEADLINE, || server.client().try_call(&cluster_info_request()).is_ok_and(|r| r.code() == 0)),
        "no connection accepted after one closed"
    );
    assert_eq!(cluster_info(&mut second), EMPTY_CLUSTER_INFO);
}

#[test]
fn registration_inflight_bytes_per_shard_max_makes_large_frames_wait() {
    // One shard whose in-flight budget is exactly one largest frame.
    let sets = ["frame_bytes_max=1048576", "registration_inflight_bytes_per_shard_max=1048576"];
    let server = Server::start_with(common::options().shards(1).sets(&sets));
    // A holds the whole budget as soon as its length prefix is read.
    let mut holder = server.client();
    let big = route_frame_of_size(1_048_576);
    holder.write_raw(&big[..64]).expect("write");
    // B's ~90 KB registration must wait for A's frame; lookups need no budget.
    let mut waiter = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let padding: Vec<TopicConfig> =
        (0..250).map(|i| topic(&format!("TWait-{i:04}-{}", "x".repeat(60)), 4, 6)).collect();
    let request = b.register(json_body(1, &padding));
    // Above the 64 KiB from which frames take budget, small enough to sit in socket buffers.
    assert!((70_000..120_000).contains(&request.body.len()), "registration of {} bytes", request.body.len());
    waiter.send(&request.clone().opaque(42));
    let mut client = server.client();
    assert_eq!(cluster_info(&mut client), EMPTY_CLUSTER_INFO);
    // Nothing may come back while A holds the budget. A correct server never answers
    // here, so the wait only bounds the test; it cannot make it flaky.
    waiter.set_read_timeout(Duration::from_millis(300));
    let pending = waiter.read_reply().map(|r| r.header.to_string());
    assert!(pending.is_err(), "answered while the budget was held: {pending:?}");
    waiter.set_read_timeout(meridian_testkit::IO_TIMEOUT);
    // A completes its frame and is answered; then B goes through.
    holder.write_raw(&big[64..]).expect("write");
    assert_eq!(holder.read_reply().expect("an answer to the held frame").code(), 17);
    let reply = waiter.read_reply().expect("the waiting registration is answered");
    assert_eq!((reply.opaque(), reply.code()), (42, 0), "{}", reply.header);
    assert_eq!(route_code(&mut client, &format!("TWait-0000-{}", "x".repeat(60))), 0);
}

#[test]
fn idle_connection_is_closed_and_its_broker_unregistered() {
    let server = common::server(&["connection_idle_timeout_ms=300"]);
    let mut broker_conn = server.client();
    let peer = format!("closing 127.0.0.1:{}:", broker_conn.local_port());
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(broker_conn.read_until_closed(), Closed::Yes);
    server.expect_log_line(&[&peer, "connection_idle_timeout_ms 300"]);
    // Fresh connections: an idle one would be closed too.
    assert!(
        poll_until(POLL_DEADLINE, || route_code(&mut server.client(), "T1") == 17),
        "broker survived its idle close"
    );
}

/// A client that sends lookups and never reads the answers: once the socket buffers are
/// full the server's write waits, reading stops (so requests stay in the kernel, not in
/// Meridian), and after reply_write_timeout_ms the connection is closed. Memory stays flat.
#[test]
fn a_client_that_never_reads_is_closed_with_bounded_memory() {
    let server = common::server(&["reply_write_timeout_ms=300"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let topics: Vec<TopicConfig> = (0..4).map(|i| topic(&format!("T{i}"), 16, 6)).collect();
    assert_registered(&mut conn, &b.register(json_body(1, &topics)));
    let rss_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("server status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line").to_string();
        line.split_whitespace().nth(1).expect("a number").parse::<u64>().expect("kB")
    };
    let before = rss_kib();
    let mut silent = server.client();
    let peer = format!("closing 127.0.0.1:{}:", silent.local_port());
    // 40k lookups (about 20 MB of answers, more than loopback socket buffers hold); the
    // write may block once the server stops reading, so it runs on its own thread and may
    // fail.
    let burst: Vec<u8> = (0..40_000).flat_map(|i| route_request("T1").encode(i)).collect();
    let writer = std::thread::spawn(move || {
        let _ = silent.write_raw(&burst);
        silent
    });
    server.expect_log_line(&[&peer, "reply_write_timeout_ms 300"]);
    let grew_kib = rss_kib().saturating_sub(before);
    assert!(grew_kib < 16 * 1024, "RSS grew by {grew_kib} KiB for one connection that never reads");
    drop(writer.join().expect("writer thread"));
    // Everyone else is still served.
    assert_eq!(route_code(&mut server.client(), "T1"), SUCCESS);
}

/// SIGTERM: new connections are refused at once, a registration being handled is still
/// answered, and the process exits 0 once drained.
#[test]
fn sigterm_answers_the_requests_in_flight_then_exits_zero() {
    let options = common::options().sets(&["shutdown_drain_ms=30000"]).env("RUST_LOG", "meridian=debug");
    let mut server = Server::start_with(options);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let topics: Vec<TopicConfig> = (0..30_000).map(|i| topic(&format!("DrainTopic{i:05}"), 4, 6)).collect();
    conn.send(&b.register(json_body(1, &topics)));
    // Logged once the frame is read and counted in flight; decoding and applying follow.
    server.wait_for_log("request code=103", POLL_DEADLINE).expect("the registration reached the server");
    // SAFETY: plain kill(2) on the child process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    server.wait_for_log("stopping: no new connections", POLL_DEADLINE).expect("the stop is logged");
    assert!(std::net::TcpStream::connect(server.addr()).is_err(), "a connection was accepted while stopping");
    let reply = conn.read_reply().expect("the registration in flight is answered");
    assert_eq!(reply.code(), SUCCESS, "{:?}", reply.remark());
    let status = server.wait_exit(POLL_DEADLINE).expect("exits once drained");
    assert_eq!(status.code(), Some(0));
    server.expect_log("drained: every request being handled was answered");
}

/// enableShutdownGracefully: after SIGTERM, clients newer than 5.3.1 get GO_AWAY (1500)
/// instead of an answer, older ones are still served, and the window ends as soon as every
/// client has closed its connection (well before the 60 s configured here).
#[test]
fn graceful_shutdown_tells_new_clients_to_go_away_and_serves_old_ones() {
    let sets = ["enableShutdownGracefully=true", "shutdownWaitTimeSeconds=60"];
    let mut server = Server::start_with(common::options().sets(&sets).env("RUST_LOG", "meridian=debug"));
    let mut new_client = server.client();
    let mut old_client = server.client();
    // Both answered once, so both are accepted (a connection still in the listen queue
    // when the server stops is reset).
    assert_eq!(route_code(&mut new_client, "T1"), TOPIC_NOT_EXIST);
    assert_eq!(route_code(&mut old_client, "T1"), TOPIC_NOT_EXIST);
    // SAFETY: plain kill(2) on the child process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    server.wait_for_log("answering GO_AWAY", POLL_DEADLINE).expect("the window opens");
    let reply = new_client.call(&route_request("T1").version(479));
    assert_eq!((reply.code(), reply.remark()), (1500, Some("please go away")), "{}", reply.header);
    // A oneway request gets no answer, GO_AWAY or other: the next answer is the next call's.
    new_client.send(&cluster_info_request().version(479).oneway());
    let reply = new_client.call(&cluster_info_request().version(479).opaque(77));
    assert_eq!((reply.opaque(), reply.code()), (77, 1500));
    // 5.3.1 (475) and older do not know GO_AWAY: served as usual.
    assert_eq!(old_client.call(&route_request("T1").version(475)).code(), TOPIC_NOT_EXIST);
    assert_eq!(old_client.call(&cluster_info_request().version(475)).code(), SUCCESS);
    drop(new_client);
    drop(old_client);
    let status = server.wait_exit(POLL_DEADLINE).expect("exits once every client left");
    assert_eq!(status.code(), Some(0));
    server.expect_log("every client closed its connection");
}

/// Connections are file descriptors: the soft limit is raised towards what the connection
/// limits allow, up to the hard limit, and a limit that stays too low is reported.
#[test]
fn the_open_files_limit_is_raised_and_a_low_one_reported() {
    let mut ours = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid out struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut ours) }, 0);
    // A hard limit below what 16384 connections per shard need (every machine allows
    // lowering it), and a soft one below that.
    let hard = ours.rlim_max.min(4096);
    let soft = hard / 4;
    let server = Server::start_with(ServerOptions { nofile: Some((soft, hard)), ..common::options() });
    server.expect_log(&format!("open files limit raised from {soft} to {hard}"));
    server.expect_log_line(&[&format!("open files limit {hard} < connections_per_shard_max"), "raise `ulimit -n`"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line").to_string();
    assert_eq!(line.split_whitespace().nth(3), Some(hard.to_string().as_str()), "{line}");
    // Room enough for the configured connections (at most 2 shards here): no warning.
    let per_shard = (hard - 256) / 4;
    let options = ServerOptions { nofile: Some((soft, hard)), ..common::options() }
        .sets(&[&format!("connections_per_shard_max={per_shard}")]);
    let server = Server::start_with(options);
    server.expect_log("open files limit raised from");
    assert!(!server.log_text().contains("< connections_per_shard_max"), "{}", server.log_text());
}

#[test]
fn topics_max_refuses_a_registration_that_would_exceed_it() {
    let server = common::server(&["topics_max=3"]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    let five: Vec<TopicConfig> = (1..=5).map(|i| topic(&format!("T{i}"), 4, 6)).collect();
    let reply = conn.call(&a.register(json_body(1, &five)));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("topics_max"), "{}", reply.header);
    assert_topic_not_exist(&mut conn, "T1");
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);

    assert_registered(&mut conn, &a.register(json_body(2, &five[..3])));
    // Existing topics do not count again; one new one is too many.
    let b = Broker::new("c1", "broker-b", 0, 11911);
    let reply = conn.call(&b.register(json_body(1, &[topic("T1", 4, 6), topic("T4", 4, 6)])));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("topics_max"), "{}", reply.header);
    assert_topic_not_exist(&mut conn, "T4");
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
}

#[test]
fn brokers_max_refuses_a_new_broker_address() {
    let server = common::server(&["brokers_max=1"]);
    let mut conn = server.client();
    let topics = [topic("T1", 4, 6), topic("T2", 4, 6)];
    let a = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &a.register(json_body(1, &topics)));
    let reply = conn.call(&Broker::new("c1", "broker-b", 0, 11911).register(json_body(1, &topics)));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("brokers_max"), "{}", reply.header);
    assert!(!cluster_info(&mut conn).contains("broker-b"));
    // The registered broker may re-register.
    assert_registered(&mut conn, &a.register(json_body(2, &topics)));
}

#[test]
fn truncated_frame_then_eof_is_logged_and_others_are_served() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let port = conn.local_port();
    let frame = route_request("T1").encode(5);
    conn.write_raw(&frame[..frame.len() - 3]).expect("write");
    conn.shutdown_write();
    assert_eq!(conn.read_until_closed(), Closed::Yes);
    server.expect_log(&format!("closing 127.0.0.1:{port}: peer closed in the middle of a frame"));
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

#[test]
fn unknown_serialize_type_closes_the_connection() {
    let server = common::server(&[]);
    let (_, header, body) = split_frame(&route_request("T1").encode(1));
    assert_closed_by(&server, &meridian_testkit::frame(5, &header, &body), "unknown serialize type 5");
}

#[test]
fn invalid_json_header_closes_the_connection() {
    let server = common::server(&[]);
    assert_closed_by(&server, &meridian_testkit::frame(SERIALIZE_JSON, b"{\"code\":105,\"extFi", b""), "undecodable");
    assert_closed_by(&server, &meridian_testkit::frame(SERIALIZE_JSON, b"not json at all", b""), "undecodable");
}

// ---------------------------------------------------------------------------------------
// Process: single instance, memlock
// ---------------------------------------------------------------------------------------

#[test]
fn second_server_on_the_same_port_refuses_to_start() {
    let mut server = common::server(&[]);
    let options = ServerOptions { listen: format!("127.0.0.1:{}", server.port()), ..common::options() };
    let exited = Server::run_expecting_exit(options);
    assert!(!exited.status.success(), "exit {:?}", exited.status);
    assert!(exited.log.contains("already"), "log:\n{}", exited.log);
    assert!(server.is_running());
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

#[test]
fn second_server_on_the_same_data_dir_refuses_to_start() {
    let mut server = common::server(&[]);
    let options = ServerOptions { data_dir: Some(server.data_dir().to_path_buf()), ..common::options() };
    let exited = Server::run_expecting_exit(options);
    assert!(!exited.status.success(), "exit {:?}", exited.status);
    assert!(exited.log.contains(&server.data_dir().display().to_string()), "log:\n{}", exited.log);
    assert!(server.is_running());
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

/// Options that run the server as `nobody` (when the tests run as root, where the memlock
/// limit would not bind) under a memlock limit, from a copy of the binary and a data dir that
/// `nobody` can reach wherever the checkout is. Keep the returned dir alive for the run.
fn options_as_nobody(label: &str, memlock_bytes: u64) -> (meridian_testkit::TempDir, ServerOptions) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let home = meridian_testkit::TempDir::new(label);
    let data = home.path().join("data");
    let mut binary = PathBuf::from(common::MERIDIAN_BIN);
    if root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod home");
        std::fs::create_dir(&data).expect("create data dir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).expect("chmod data dir");
        let copy = home.path().join("meridian");
        std::fs::copy(common::MERIDIAN_BIN, &copy).expect("copy the binary");
        binary = copy;
    }
    let options = ServerOptions {
        memlock_bytes: Some(memlock_bytes),
        run_as: root.then_some((65534, 65534)),
        binary,
        ..common::options()
    }
    .data_dir(&data);
    (home, options)
}

/// The limit binds only a process without CAP_IPC_LOCK: as root the tests drop to `nobody`.
/// With transparent huge pages on, each shard's registered io_uring buffer used to be
/// charged as whole 2 MiB pages per ring, and the second shard's registration failed.
#[test]
fn starts_as_a_normal_user_under_an_8_mib_memlock_limit_with_registered_buffers() {
    let (_home, options) = options_as_nobody("memlock-user", 8 * 1024 * 1024);
    let server = Server::start_with(options);
    let mut conn = server.client();
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
    let log = server.log_text();
    assert!(!log.contains("registering buffers"), "glommio could not register its buffers:\n{log}");
}

/// Below glommio's 512 KiB minimum no shard can build its rings; serving anyway would
/// accept connections nobody answers, so the server must refuse to start and say why.
#[test]
fn refuses_to_start_when_locked_memory_is_too_small_for_the_shards() {
    let (_home, options) = options_as_nobody("memlock-low", 256 * 1024);
    let exited = Server::run_expecting_exit(options);
    assert!(!exited.status.success(), "exit {:?}", exited.status);
    assert!(exited.log.contains("shards started"), "log:\n{}", exited.log);
    assert!(exited.log.contains("ulimit -l"), "log:\n{}", exited.log);
}

/// Shards are pinned within the process's affinity mask (taskset, cpusets), not to
/// absolute CPU numbers.
#[test]
fn shards_stay_on_the_cpus_the_process_may_use() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = cpus - 1;
    let server = Server::start_with(ServerOptions { cpu: Some(cpu), ..common::options() }.shards(1));
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("list threads");
    let mut shards = 0;
    for task in tasks {
        let dir = task.expect("thread entry").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("meridian-shard") {
            continue;
        }
        shards += 1;
        let status = std::fs::read_to_string(dir.join("status")).expect("thread status");
        let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim);
        assert_eq!(allowed, Some(cpu.to_string().as_str()), "thread {comm:?} of a process limited to CPU {cpu}");
    }
    assert!(shards > 0, "no shard thread found");
}

#[test]
fn starts_and_answers_under_an_8_mib_memlock_limit() {
    let server = Server::start_with(ServerOptions { memlock_bytes: Some(8 * 1024 * 1024), ..common::options() });
    let mut conn = server.client();
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(route_code(&mut server.client(), "T1"), 0);
}

/// Raises this test process's open-files limit so it can hold `needed` sockets (the server
/// inherits it and raises its own from there). As root the hard limit may be raised too.
fn ensure_open_files(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    if limit.rlim_cur >= needed {
        return;
    }
    let wanted = libc::rlimit { rlim_cur: needed, rlim_max: limit.rlim_max.max(needed) };
    // SAFETY: as above.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0;
    assert!(
        raised,
        "this test needs {needed} open files; the limit is {} (hard {}) and could not be raised: {}",
        limit.rlim_cur,
        limit.rlim_max,
        std::io::Error::last_os_error()
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line").to_string();
    line.split_whitespace().nth(1).expect("a number").parse::<u64>().expect("kB")
}

/// 10,000 connections open at once (over the two shards), each asking twice: every one is
/// answered, none is closed, and the server holds them all as open sockets.
#[test]
fn ten_thousand_concurrent_connections_are_all_served() {
    const CONNECTIONS: usize = 10_000;
    ensure_open_files(CONNECTIONS as u64 + 1024);
    let server = common::server(&[]);
    let b = Broker::new("c1", "broker-a", 0, 10911);
    // Held open: a closed broker connection unregisters the broker.
    let mut broker_conn = server.client();
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 8, 6), topic("T2", 8, 6)])));
    let rss_before = rss_kib(server.pid());
    let mut conns: Vec<Client> = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut conn = server.client();
        conn.send(&route_request("T1"));
        conns.push(conn);
    }
    for round in 0..2 {
        for (i, conn) in conns.iter_mut().enumerate() {
            let reply = conn.read_reply().unwrap_or_else(|e| panic!("round {round}: connection {i} unanswered: {e}"));
            assert_eq!(reply.code(), SUCCESS, "round {round}: connection {i}: {:?}", reply.remark());
            if round == 0 {
                conn.send(&route_request("T1"));
            }
        }
    }
    // Every connection is still open on the server side (plus listeners, rings, files).
    let fds = open_fds(server.pid());
    assert!(fds >= CONNECTIONS, "server holds {fds} fds for {CONNECTIONS} connections");
    let grew_kib = rss_kib(server.pid()).saturating_sub(rss_before);
    eprintln!("{CONNECTIONS} connections: server fds {fds}, RSS +{grew_kib} KiB");
    // A mostly idle connection must not hold a large read buffer (it held 64 KiB once).
    assert!(grew_kib < 32 * CONNECTIONS as u64, "RSS grew by {grew_kib} KiB for {CONNECTIONS} connections");
    assert!(!server.log_text().contains("closing"), "{}", server.log_text());
    drop(conns);
    assert_eq!(route_code(&mut server.client(), "T1"), SUCCESS);
}

/// 1,000 clients connect at the same moment and each sends one lookup: all are answered.
#[test]
fn a_burst_of_a_thousand_connections_is_answered_completely() {
    const CONNECTIONS: usize = 1_000;
    ensure_open_files(CONNECTIONS as u64 + 1024);
    let server = common::server(&[]);
    let b = Broker::new("c1", "broker-a", 0, 10911);
    // Held open: a closed broker connection unregisters the broker.
    let mut broker_conn = server.client();
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 8, 6), topic("T2", 8, 6)])));
    let addr = server.addr();
    let start = std::sync::Arc::new(std::sync::Barrier::new(CONNECTIONS));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let start = start.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    start.wait();
                    let mut conn = Client::connect(addr);
                    conn.call(&route_request("T1")).code()
                })
                .expect("spawn a client thread")
        })
        .collect();
    let codes: Vec<i32> = clients.into_iter().map(|c| c.join().expect("client thread")).collect();
    assert_eq!(codes.iter().filter(|&&c| c == SUCCESS).count(), CONNECTIONS, "{codes:?}");
    assert!(!server.log_text().contains("closing"), "{}", server.log_text());
}
