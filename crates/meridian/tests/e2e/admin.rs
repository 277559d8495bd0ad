//! End-to-end tests of the KV, topic-list, admin and config codes, and of the NameServer
//! switches that shape answers (orderTopicConf, zones, acting master, not-ready window,
//! split registration, 905 notifications), against the real `meridian` binary over TCP.
//! Expected answers are Java 5.3.3's exact shapes (testdata/golden/java-5.3.3-examples.jsonl
//! and the protocol notes quoted in comments). Every test starts its own server and ends by
//! itself.

use crate::common;
use crate::common::builders::*;

use meridian_protocol::body::TopicConfig;
use meridian_protocol::codes::{
    ADD_WRITE_PERM_OF_BROKER, DELETE_KV_CONFIG, DELETE_TOPIC_IN_NAMESRV, GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    GET_BROKER_CLUSTER_INFO, GET_BROKER_MEMBER_GROUP, GET_HAS_UNIT_SUB_TOPIC_LIST, GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST,
    GET_KVLIST_BY_NAMESPACE, GET_KV_CONFIG, GET_NAMESRV_CONFIG, GET_SYSTEM_TOPIC_LIST_FROM_NS, GET_TOPICS_BY_CLUSTER,
    GET_UNIT_TOPIC_LIST, PUT_KV_CONFIG, REGISTER_BROKER, REGISTER_TOPIC_IN_NAMESRV, UNREGISTER_BROKER,
    UPDATE_NAMESRV_CONFIG, WIPE_WRITE_PERM_OF_BROKER,
};
use meridian_testkit::{
    golden_lines, header_json, hex_decode, poll_until, split_frame, without_opaque, Client, Reply, Request, Server,
    TempDir, POLL_DEADLINE,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

const JAVA_GOLDEN: &str = "java-5.3.3-examples.jsonl";
/// Java's FAQ suffix on TOPIC_NOT_EXIST (requests.md §2, 105).
const FAQ_SUFFIX: &str = "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";
/// The KV namespace the NameServer interprets (behaviour.md §9).
const ORDER_NS: &str = "ORDER_TOPIC_CONFIG";
/// Java's remark for a black-listed UPDATE_NAMESRV_CONFIG key (golden seq 33).
const BLACK_LIST_REMARK: &str = "Can not update config in black list.";
/// Java's remark on GET_BROKER_MEMBER_GROUP answers (golden seq 14, 15).
const MEMBER_GROUP_REMARK: &str = "not set any response code";

// ---------------------------------------------------------------------------------------
// Helpers: brokers, bodies, expected answers
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Broker {
    cluster: String,
    name: String,
    id: i64,
    addr: String,
    ha_addr: String,
    /// `enableActingMaster` header; 5.x brokers always send it.
    acting_master: bool,
    /// `__ZONE_NAME` header on REGISTER_BROKER.
    zone: Option<String>,
}

impl Broker {
    /// A 5.x broker on 127.0.0.1:`port`, its HA listener on the next port.
    fn new(cluster: &str, name: &str, id: i64, port: u16) -> Broker {
        Broker::at(cluster, name, id, &format!("127.0.0.1:{port}"), &format!("127.0.0.1:{}", port + 1))
    }

    fn at(cluster: &str, name: &str, id: i64, addr: &str, ha_addr: &str) -> Broker {
        Broker {
            cluster: cluster.to_string(),
            name: name.to_string(),
            id,
            addr: addr.to_string(),
            ha_addr: ha_addr.to_string(),
            acting_master: false,
            zone: None,
        }
    }

    fn acting_master(mut self) -> Broker {
        self.acting_master = true;
        self
    }

    fn zone(mut self, zone: &str) -> Broker {
        self.zone = Some(zone.to_string());
        self
    }

    fn identity(&self, request: Request) -> Request {
        request
            .ext("brokerName", &self.name)
            .ext("brokerAddr", &self.addr)
            .ext("clusterName", &self.cluster)
            .ext("brokerId", self.id)
    }

    /// REGISTER_BROKER with a 5.x JSON body and its CRC.
    fn register(&self, body: Vec<u8>) -> Request {
        let mut request = self
            .identity(Request::new(REGISTER_BROKER))
            .ext("haServerAddr", &self.ha_addr)
            .ext("compressed", "false")
            .ext("enableActingMaster", self.acting_master)
            .ext("bodyCrc32", crc32(&body));
        if let Some(zone) = &self.zone {
            request = request.ext("__ZONE_NAME", zone);
        }
        request.body(body)
    }

    fn unregister(&self) -> Request {
        self.identity(Request::new(UNREGISTER_BROKER))
    }
}

fn topic_with_flag(name: &str, topic_sys_flag: i32) -> TopicConfig {
    let mut t = topic(name, 4, 6);
    t.topic_sys_flag = topic_sys_flag;
    t
}

fn put_kv(namespace: &str, key: &str, value: &str) -> Request {
    Request::new(PUT_KV_CONFIG).ext("namespace", namespace).ext("key", key).ext("value", value)
}

fn get_kv(namespace: &str, key: &str) -> Request {
    Request::new(GET_KV_CONFIG).ext("namespace", namespace).ext("key", key)
}

fn delete_kv(namespace: &str, key: &str) -> Request {
    Request::new(DELETE_KV_CONFIG).ext("namespace", namespace).ext("key", key)
}

fn kv_list(namespace: &str) -> Request {
    Request::new(GET_KVLIST_BY_NAMESPACE).ext("namespace", namespace)
}

fn update_config(body: &str) -> Request {
    Request::new(UPDATE_NAMESRV_CONFIG).body(body.as_bytes().to_vec())
}

/// Java's answer header (opaque left out): SUCCESS, or an error with its remark, with or
/// without `extFields` (Java writes `{}` when the handler created a typed response header).
fn java_header(code: i32, ext: Option<Value>, remark: Option<&str>) -> Value {
    let mut h = json!({"code":code,"flag":1,"language":"JAVA","serializeTypeCurrentRPC":"JSON","version":479});
    if let Some(ext) = ext {
        h["extFields"] = ext;
    }
    if let Some(remark) = remark {
        h["remark"] = Value::String(remark.to_string());
    }
    h
}

fn ok_header() -> Value {
    java_header(0, None, None)
}

/// Asserts the whole answer: header (without opaque) and body bytes.
#[track_caller]
fn assert_answer(reply: &Reply, header: Value, body: &str) {
    assert_eq!(reply.header_without_opaque(), header, "header; body {:?}", reply.body_text());
    assert_eq!(reply.body_text(), body, "body of {}", reply.header);
}

/// Asserts a REGISTER_BROKER SUCCESS with `extFields:{}` and returns the body.
#[track_caller]
fn register_ok(conn: &mut Client, request: &Request) -> String {
    let reply = conn.call(request);
    assert_eq!(reply.header_without_opaque(), java_header(0, Some(json!({})), None), "{request:?}");
    reply.body_text()
}

/// Registers and asserts Java's plain answer: SUCCESS, `extFields:{}`, no body.
#[track_caller]
fn assert_registered(conn: &mut Client, request: &Request) {
    let body = register_ok(conn, request);
    assert_eq!(body, "", "register answer body");
}

/// The route answer body, asserting Java's SUCCESS header.
#[track_caller]
fn route_body(conn: &mut Client, request: Request) -> String {
    let reply = conn.call(&request);
    assert_eq!(reply.header_without_opaque(), ok_header(), "route lookup {request:?}");
    reply.body_text()
}

#[track_caller]
fn assert_topic_not_exist(conn: &mut Client, topic: &str) {
    let reply = conn.call(&route_request(topic));
    let remark = format!("No topic route info in name server for the topic: {topic}{FAQ_SUFFIX}");
    assert_answer(&reply, java_header(17, None, Some(&remark)), "");
}

/// BrokerData as Java writes it (bodies.md §6): alphabetical keys, zoneName only when set.
fn broker_data(cluster: &str, name: &str, addrs: &[(i64, &str)], standard: bool) -> String {
    broker_data_full(cluster, name, addrs, standard, false, None)
}

fn broker_data_full(
    cluster: &str,
    name: &str,
    addrs: &[(i64, &str)],
    standard: bool,
    acting_master: bool,
    zone: Option<&str>,
) -> String {
    let zone = zone.map(|z| format!(",\"zoneName\":\"{z}\"")).unwrap_or_default();
    format!(
        "{{\"brokerAddrs\":{},\"brokerName\":\"{name}\",\"cluster\":\"{cluster}\",\"enableActingMaster\":{acting_master}{zone}}}",
        addrs_json(addrs, standard)
    )
}

fn queue_data(name: &str, queue_nums: i32, perm: i32) -> String {
    queue_data_full(name, queue_nums, perm, 0)
}

fn queue_data_full(name: &str, queue_nums: i32, perm: i32, topic_sys_flag: i32) -> String {
    format!(
        "{{\"brokerName\":\"{name}\",\"perm\":{perm},\"readQueueNums\":{queue_nums},\"topicSysFlag\":{topic_sys_flag},\"writeQueueNums\":{queue_nums}}}"
    )
}

/// TopicRouteData (bodies.md §6) from encoded parts; `orderTopicConf` sits between
/// `filterServerTable` and `queueDatas` in Java's alphabetical order.
fn route_json(
    broker_datas: &[impl AsRef<str>],
    queue_datas: &[impl AsRef<str>],
    order_topic_conf: Option<&str>,
) -> String {
    fn join(parts: &[impl AsRef<str>]) -> String {
        parts.iter().map(AsRef::as_ref).collect::<Vec<&str>>().join(",")
    }
    let order = order_topic_conf.map(|c| format!("\"orderTopicConf\":\"{c}\",")).unwrap_or_default();
    format!(
        "{{\"brokerDatas\":[{}],\"filterServerTable\":{{}},{order}\"queueDatas\":[{}]}}",
        join(broker_datas),
        join(queue_datas)
    )
}

/// A TopicList answer (bodies.md §8): asserts Java's SUCCESS header, the key set, and no
/// duplicates; returns the topics (a set: Java answers in HashMap order) and `brokerAddr`.
#[track_caller]
fn topic_list(conn: &mut Client, request: Request) -> (BTreeSet<String>, Option<String>) {
    let reply = conn.call(&request);
    assert_eq!(reply.header_without_opaque(), ok_header(), "{request:?}");
    let value: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("TopicList is not JSON ({e}): {}", reply.body_text()));
    let object = value.as_object().unwrap_or_else(|| panic!("not an object: {value}"));
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert!(keys == ["topicList"] || keys == ["brokerAddr", "topicList"], "keys {keys:?}: {value}");
    let list: Vec<String> = object["topicList"]
        .as_array()
        .unwrap_or_else(|| panic!("topicList is not an array: {value}"))
        .iter()
        .map(|t| t.as_str().unwrap_or_else(|| panic!("topic is not a string: {t}")).to_string())
        .collect();
    let set: BTreeSet<String> = list.iter().cloned().collect();
    assert_eq!(set.len(), list.len(), "duplicates in {list:?}");
    (set, object.get("brokerAddr").map(|a| a.as_str().expect("brokerAddr is a string").to_string()))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// GET_NAMESRV_CONFIG body, asserting Java's SUCCESS header.
fn namesrv_config(conn: &mut Client) -> String {
    let reply = conn.call(&Request::new(GET_NAMESRV_CONFIG));
    assert_eq!(reply.header_without_opaque(), ok_header());
    reply.body_text()
}

fn config_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

// ---------------------------------------------------------------------------------------
// Golden replay: the Java answers of codes 100/101/102/219/318/901
// ---------------------------------------------------------------------------------------

#[test]
fn golden_java_kv_member_group_and_config_answers_replay_exactly() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let lines = golden_lines(JAVA_GOLDEN);
    // 2, 3: bA master and slave (needed by 901); 14, 15: 901; 18–27: KV; 33, 34: 318.
    let selected: Vec<u64> = [2, 3, 14, 15].into_iter().chain(18..=27).chain([33, 34]).collect();
    for seq in selected {
        let line = &lines[seq as usize - 1];
        assert_eq!(line["seq"].as_u64(), Some(seq));
        let request = hex_decode(line["request_hex"].as_str().expect("request_hex"));
        let (request_type, request_header, _) = split_frame(&request);
        let request_header = header_json(request_type, &request_header);
        let (java_type, java_header_bytes, java_body) =
            split_frame(&hex_decode(line["response_hex"].as_str().expect("two-way exchanges")));
        let java_header = header_json(java_type, &java_header_bytes);

        conn.write_raw(&request).expect("writing a golden frame");
        let reply = conn.read_reply().unwrap_or_else(|e| panic!("seq {seq}: no answer: {e}"));
        assert_eq!(reply.header["opaque"], request_header["opaque"], "seq {seq}: opaque");
        assert_eq!(reply.header_without_opaque(), without_opaque(&java_header), "seq {seq}: header");
        assert_eq!(reply.body_text(), String::from_utf8_lossy(&java_body), "seq {seq}: body");
    }
}

// ---------------------------------------------------------------------------------------
// 100 / 101 / 102 / 219: KV config
// ---------------------------------------------------------------------------------------

#[test]
fn kv_put_get_delete_and_list() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let miss = |ns: &str, key: &str| format!("No config item, Namespace: {ns} Key: {key}");

    // Empty table: 101 misses carry `extFields:{}` (golden seq 21), 219 misses do not (23).
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(22, Some(json!({})), Some(&miss("ns", "k1"))), "");
    assert_answer(&conn.call(&kv_list("ns")), java_header(22, None, Some("No config item, Namespace: ns")), "");

    assert_answer(&conn.call(&put_kv("ns", "k1", "v1")), ok_header(), "");
    assert_answer(&conn.call(&put_kv("ns", "k2", "broker-a:4;broker-b:4")), ok_header(), "");
    assert_answer(&conn.call(&put_kv("other", "k1", "x")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(0, Some(json!({"value":"v1"})), None), "");
    assert_answer(&conn.call(&get_kv("other", "k1")), java_header(0, Some(json!({"value":"x"})), None), "");
    assert_answer(&conn.call(&kv_list("ns")), ok_header(), r#"{"table":{"k1":"v1","k2":"broker-a:4;broker-b:4"}}"#);
    assert_answer(&conn.call(&kv_list("other")), ok_header(), r#"{"table":{"k1":"x"}}"#);

    // Overwrite.
    assert_answer(&conn.call(&put_kv("ns", "k1", "v1b")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(0, Some(json!({"value":"v1b"})), None), "");
    // Values are strings on the wire, whatever they hold.
    assert_answer(&conn.call(&put_kv("ns", "k3", "{\"a\":\"b\\\\c\"} é")), ok_header(), "");
    assert_answer(
        &conn.call(&get_kv("ns", "k3")),
        java_header(0, Some(json!({"value":"{\"a\":\"b\\\\c\"} é"})), None),
        "",
    );
    assert_answer(&conn.call(&delete_kv("ns", "k3")), ok_header(), "");

    // Delete: SUCCESS always, also for a missing key or namespace (golden seq 24, 26).
    assert_answer(&conn.call(&delete_kv("ns", "k1")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(22, Some(json!({})), Some(&miss("ns", "k1"))), "");
    assert_answer(&conn.call(&delete_kv("ns", "k1")), ok_header(), "");
    assert_answer(&conn.call(&delete_kv("nowhere", "k1")), ok_header(), "");
    assert_answer(
        &conn.call(&kv_list("nowhere")),
        java_header(22, None, Some("No config item, Namespace: nowhere")),
        "",
    );
    assert_answer(&conn.call(&kv_list("ns")), ok_header(), r#"{"table":{"k2":"broker-a:4;broker-b:4"}}"#);
    // Another connection (another shard) sees the same table.
    let mut other = server.client();
    assert_answer(
        &other.call(&get_kv("ns", "k2")),
        java_header(0, Some(json!({"value":"broker-a:4;broker-b:4"})), None),
        "",
    );
}

#[test]
fn kv_requests_without_required_fields_are_refused() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // Java checks namespace and key of 100 itself, with this remark (golden seq 27).
    let no_key = Request::new(PUT_KV_CONFIG).ext("namespace", "ns").ext("value", "x");
    assert_answer(&conn.call(&no_key), java_header(1, None, Some("namespace or key is null")), "");
    let no_namespace = Request::new(PUT_KV_CONFIG).ext("key", "k").ext("value", "x");
    assert_answer(&conn.call(&no_namespace), java_header(1, None, Some("namespace or key is null")), "");
    // The other required fields: SYSTEM_ERROR naming the field (requests.md §0).
    let cases = [
        (Request::new(PUT_KV_CONFIG).ext("namespace", "ns").ext("key", "k"), "value"),
        (Request::new(GET_KV_CONFIG).ext("namespace", "ns"), "key"),
        (Request::new(GET_KV_CONFIG).ext("key", "k"), "namespace"),
        (Request::new(DELETE_KV_CONFIG).ext("namespace", "ns"), "key"),
        (Request::new(GET_KVLIST_BY_NAMESPACE), "namespace"),
    ];
    for (request, field) in cases {
        let reply = conn.call(&request);
        assert_eq!(reply.code(), 1, "{request:?}: {}", reply.header);
        let remark = reply.remark().unwrap_or_default();
        assert!(remark.contains(field), "{request:?}: remark {remark:?} does not name {field}");
    }
    // Nothing was stored.
    assert_eq!(conn.call(&kv_list("ns")).code(), 22);
}

#[test]
fn kv_namespace_emptied_by_delete_still_answers_an_empty_table() {
    // Java's KVConfigManager.deleteKVConfig removes the key but keeps the namespace map, so
    // GET_KVLIST_BY_NAMESPACE then answers SUCCESS with an empty table, not QUERY_NOT_FOUND.
    let server = common::server(&[]);
    let mut conn = server.client();
    assert_answer(&conn.call(&put_kv("ns", "k1", "v1")), ok_header(), "");
    assert_answer(&conn.call(&delete_kv("ns", "k1")), ok_header(), "");
    assert_answer(&conn.call(&kv_list("ns")), ok_header(), r#"{"table":{}}"#);
    // So an emptied ORDER_TOPIC_CONFIG namespace still goes to brokers, as an empty table.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    assert_answer(&conn.call(&delete_kv(ORDER_NS, "TOrd")), ok_header(), "");
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = register_ok(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(body, r#"{"table":{}}"#);
}

#[test]
fn kv_survives_a_restart_on_the_same_data_dir() {
    let dir = TempDir::new("kv-restart");
    {
        let server = Server::start_with(common::options().data_dir(dir.path()));
        let mut conn = server.client();
        assert_answer(&conn.call(&put_kv("ns", "k1", "v1")), ok_header(), "");
        assert_answer(&conn.call(&put_kv("ns", "k2", "v2")), ok_header(), "");
        assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
        assert_answer(&conn.call(&delete_kv("ns", "k2")), ok_header(), "");
        // Dropping the server kills it (SIGKILL): only what was acknowledged is on disk.
    }
    // Java's file format (bodies.md §13).
    let file = std::fs::read_to_string(dir.path().join("kvConfig.json")).expect("the KV file exists");
    let parsed: Value = serde_json::from_str(&file).unwrap_or_else(|e| panic!("KV file is not JSON ({e}): {file}"));
    assert_eq!(parsed, json!({"configTable":{"ORDER_TOPIC_CONFIG":{"TOrd":"broker-a:4"},"ns":{"k1":"v1"}}}));

    let server = Server::start_with(common::options().data_dir(dir.path()));
    let mut conn = server.client();
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(0, Some(json!({"value":"v1"})), None), "");
    let miss = "No config item, Namespace: ns Key: k2";
    assert_answer(&conn.call(&get_kv("ns", "k2")), java_header(22, Some(json!({})), Some(miss)), "");
    assert_answer(&conn.call(&kv_list(ORDER_NS)), ok_header(), r#"{"table":{"TOrd":"broker-a:4"}}"#);
    // The loaded order config reaches brokers too.
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = register_ok(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(body, r#"{"table":{"TOrd":"broker-a:4"}}"#);
}

/// One crash-safety round (behaviour.md §9, src/persist.rs): k1 acknowledged, then a server
/// that aborts at `step` of the write of k2, then a normal start on the same directory.
fn kv_write_crash_round(step: u32) {
    let dir = TempDir::new(&format!("kv-crash-{step}"));
    {
        let server = Server::start_with(common::options().data_dir(dir.path()));
        assert_answer(&server.client().call(&put_kv("ns", "k1", "v1")), ok_header(), "");
    }
    {
        let options = common::options()
            .data_dir(dir.path())
            .env("MERIDIAN_TEST_CRASH_AT_WRITE_STEP", &step.to_string())
            .without_core_dump();
        let mut server = Server::start_with(options);
        let mut conn = server.client();
        let answer = conn.try_call(&put_kv("ns", "k2", "v2"));
        assert!(answer.is_err(), "step {step}: the aborting server answered: {:?}", answer.map(|r| r.header));
        let status = server.wait_exit(POLL_DEADLINE).unwrap_or_else(|| panic!("step {step}: the server did not abort"));
        assert!(!status.success(), "step {step}: exit {status:?}");
        server.expect_log("aborting on purpose");
    }
    // Whatever the step, the file is whole: the server loads it and starts.
    let file = std::fs::read_to_string(dir.path().join("kvConfig.json")).expect("the KV file exists");
    let parsed: Value =
        serde_json::from_str(&file).unwrap_or_else(|e| panic!("step {step}: torn KV file ({e}): {file}"));
    let server = Server::start_with(common::options().data_dir(dir.path()));
    let mut conn = server.client();
    // The acknowledged write survives.
    let k1 = conn.call(&get_kv("ns", "k1"));
    assert_eq!(k1.ext_field("value").as_deref(), Some("v1"), "step {step}: {}", k1.header);
    assert_answer(&k1, java_header(0, Some(json!({"value":"v1"})), None), "");
    let k2 = conn.call(&get_kv("ns", "k2"));
    if step == 3 {
        // The rename happened before the abort: the new content is the file.
        assert_answer(&k2, java_header(0, Some(json!({"value":"v2"})), None), "");
        assert_eq!(parsed, json!({"configTable":{"ns":{"k1":"v1","k2":"v2"}}}), "step {step}");
    } else if k2.code() == 0 {
        assert_eq!(k2.ext_field("value").as_deref(), Some("v2"), "step {step}: {}", k2.header);
    } else {
        let miss = "No config item, Namespace: ns Key: k2";
        assert_answer(&k2, java_header(22, Some(json!({})), Some(miss)), "");
        assert_eq!(parsed, json!({"configTable":{"ns":{"k1":"v1"}}}), "step {step}");
    }
    // And the server keeps working on that directory.
    assert_answer(&conn.call(&put_kv("ns", "k3", "v3")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k3")), java_header(0, Some(json!({"value":"v3"})), None), "");
}

/// SIGKILL at arbitrary moments of a stream of KV writes: after every restart on the same
/// directory each acknowledged write is there, and the restart is clean (the data-dir lock
/// and the port guard died with the killed process).
#[test]
fn sigkill_during_kv_writes_loses_no_acknowledged_write() {
    const ROUNDS: usize = 5;
    let dir = TempDir::new("kv-sigkill");
    let mut acked: Vec<String> = Vec::new();
    let check_all = |conn: &mut Client, acked: &[String], when: &str| {
        for key in acked {
            let reply = conn.call(&get_kv("ns", key));
            assert_eq!(reply.ext_field("value").as_deref(), Some(key.as_str()), "{when}: acknowledged {key} lost");
        }
    };
    for round in 0..ROUNDS {
        let mut server = Server::start_with(common::options().data_dir(dir.path()).without_core_dump());
        check_all(&mut server.client(), &acked, &format!("restart {round}"));
        let addr = server.addr();
        let (acks_tx, acks_rx) = std::sync::mpsc::channel::<String>();
        let writer = std::thread::spawn(move || {
            let mut conn = Client::connect(addr);
            for i in 0.. {
                let key = format!("k{round}-{i}");
                match conn.try_call(&put_kv("ns", &key, &key)) {
                    Ok(reply) if reply.code() == 0 => {
                        if acks_tx.send(key).is_err() {
                            return;
                        }
                    }
                    _ => return, // killed
                }
            }
        });
        // A different number of acknowledged writes before each kill.
        for _ in 0..(3 + round * 5) {
            acked.push(acks_rx.recv_timeout(POLL_DEADLINE).expect("a KV write acknowledged"));
        }
        // SAFETY: plain kill(2) on the child process this test started.
        assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGKILL) }, 0);
        writer.join().expect("writer thread");
        // Answers read before the kill are acknowledged writes too.
        acked.extend(acks_rx.try_iter());
        server.wait_exit(POLL_DEADLINE).expect("the killed server is gone");
    }
    let server = Server::start_with(common::options().data_dir(dir.path()));
    check_all(&mut server.client(), &acked, "after the last kill");
    assert!(acked.len() >= ROUNDS * 3, "{} writes acknowledged", acked.len());
}

#[test]
fn kv_write_interrupted_at_step_1_loses_no_acknowledged_write() {
    kv_write_crash_round(1);
}

#[test]
fn kv_write_interrupted_at_step_2_loses_no_acknowledged_write() {
    kv_write_crash_round(2);
}

#[test]
fn kv_write_interrupted_at_step_3_keeps_the_renamed_file() {
    kv_write_crash_round(3);
}

// ---------------------------------------------------------------------------------------
// REGISTER_BROKER answers and orderTopicConf (KV namespace ORDER_TOPIC_CONFIG)
// ---------------------------------------------------------------------------------------

#[test]
fn register_answer_carries_the_order_topic_config_namespace() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let topics = [topic("TOrd", 4, 6), topic("T2", 4, 6)];
    // No namespace yet: no body.
    assert_registered(&mut conn, &b.register(json_body(1, &topics)));
    // Another namespace does not count.
    assert_answer(&conn.call(&put_kv("ns", "TOrd", "x")), ok_header(), "");
    assert_registered(&mut conn, &b.register(json_body(1, &topics)));

    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    assert_eq!(register_ok(&mut conn, &b.register(json_body(1, &topics))), r#"{"table":{"TOrd":"broker-a:4"}}"#);
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd2", "broker-a:2;broker-b:2")), ok_header(), "");
    // A slave gets it too, besides its master's addresses.
    let slave = Broker::new("c1", "broker-a", 1, 10921);
    let reply = conn.call(&slave.register(json_body(1, &topics)));
    let ext = json!({"haServerAddr":"127.0.0.1:10912","masterAddr":"127.0.0.1:10911"});
    assert_answer(
        &reply,
        java_header(0, Some(ext), None),
        r#"{"table":{"TOrd":"broker-a:4","TOrd2":"broker-a:2;broker-b:2"}}"#,
    );
    // orderMessageEnable is false by default: routes carry no orderTopicConf.
    let expected = route_json(
        &[broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911"), (1, "127.0.0.1:10921")], true)],
        &[queue_data("broker-a", 4, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TOrd")), expected);
}

#[test]
fn register_answer_has_no_body_when_return_order_topic_config_to_broker_is_false() {
    let server = common::server(&["returnOrderTopicConfigToBroker=false"]);
    let mut conn = server.client();
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
}

#[test]
fn order_message_enable_at_start_fills_order_topic_conf() {
    let server = common::server(&["orderMessageEnable=true"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("TPlain", 4, 6)])));
    let bd = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    let qd = queue_data("broker-a", 4, 6);
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[&bd], &[&qd], None));

    // A KV entry written after the route was built changes the route.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    let with_conf = route_json(&[&bd], &[&qd], Some("broker-a:4"));
    assert_eq!(route_body(&mut conn, route_request("TOrd")), with_conf);
    // Legacy flavour too.
    let legacy_bd = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], false);
    let legacy = route_json(&[legacy_bd], &[&qd], Some("broker-a:4"));
    assert_eq!(route_body(&mut conn, route_request("TOrd").version(400)), legacy);
    // Only that topic.
    assert_eq!(route_body(&mut conn, route_request("TPlain")), route_json(&[&bd], &[&qd], None));
    // Updated and deleted entries follow.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:2")), ok_header(), "");
    let updated = route_json(&[&bd], &[&qd], Some("broker-a:2"));
    assert_eq!(route_body(&mut conn, route_request("TOrd")), updated);
    assert_answer(&conn.call(&delete_kv(ORDER_NS, "TOrd")), ok_header(), "");
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[bd], &[qd], None));
}

// ---------------------------------------------------------------------------------------
// 319 / 318: namesrv config
// ---------------------------------------------------------------------------------------

#[test]
fn get_namesrv_config_lists_every_java_key_sorted() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let config = namesrv_config(&mut conn);
    assert!(config.ends_with('\n'), "{config}");
    let keys: Vec<&str> =
        config.lines().map(|l| l.split_once('=').unwrap_or_else(|| panic!("not key=value: {l:?}")).0).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "not sorted by key, or duplicated: {keys:?}");
    for line in [
        "orderMessageEnable=false",
        "returnOrderTopicConfigToBroker=true",
        "enableAllTopicList=true",
        "enableTopicList=true",
        "notifyMinBrokerIdChanged=false",
        "needWaitForService=false",
        "waitSecondsForService=45",
        "deleteTopicWithBrokerRegistration=false",
        "supportActingMaster=false",
        "configBlackList=configBlackList;configStorePath;kvConfigPath",
    ] {
        assert!(config.lines().any(|l| l == line), "no line {line:?} in\n{config}");
    }
    let data_dir = server.data_dir().display().to_string();
    assert_eq!(config_value(&config, "kvConfigPath"), Some(format!("{data_dir}/kvConfig.json")));
    assert_eq!(config_value(&config, "configStorePath"), Some(format!("{data_dir}/namesrv.properties")));

    // Every key Java 5.3.3 lists (golden seq 32), with Java's default value. Left out: the
    // values that depend on the installation (paths, address, port, rocketmqHome), and
    // scanNotActiveBrokerInterval, whose default Meridian sets to 10 s on purpose.
    let golden = &golden_lines(JAVA_GOLDEN)[31];
    assert_eq!(golden["step"], "319 GET_NAMESRV_CONFIG");
    let (_, _, java_body) = split_frame(&hex_decode(golden["response_hex"].as_str().expect("answered")));
    let java_body = String::from_utf8(java_body).expect("UTF-8");
    let installation = ["bindAddress", "configStorePath", "kvConfigPath", "listenPort", "rocketmqHome"];
    for line in java_body.lines() {
        let (key, _) = line.split_once('=').expect("key=value");
        if key == "scanNotActiveBrokerInterval" {
            assert!(config_value(&config, key).is_some(), "no {key} in\n{config}");
        } else if installation.contains(&key) {
            if key != "rocketmqHome" {
                assert!(config_value(&config, key).is_some(), "no {key} in\n{config}");
            }
        } else {
            assert!(config.lines().any(|l| l == line), "Java's line {line:?} missing from\n{config}");
        }
    }
}

#[test]
fn update_namesrv_config_refuses_black_listed_keys() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let before = namesrv_config(&mut conn);
    // Golden seq 33, and the other default black-listed keys; rocketmqHome always.
    for body in [
        "kvConfigPath=probe-must-not-apply/kvConfig.json\n",
        "configStorePath=/tmp/elsewhere.properties\n",
        "configBlackList=\n",
        "rocketmqHome=/tmp/home\n",
        // One black-listed key spoils the whole update.
        "orderMessageEnable=true\nkvConfigPath=/tmp/x.json\n",
    ] {
        assert_answer(&conn.call(&update_config(body)), java_header(16, None, Some(BLACK_LIST_REMARK)), "");
    }
    assert_eq!(namesrv_config(&mut conn), before, "a refused update changed the config");
    assert!(!server.data_dir().join("namesrv.properties").exists(), "a refused update wrote the config store");

    // No body: SUCCESS, nothing changes (golden seq 34).
    assert_answer(&conn.call(&Request::new(UPDATE_NAMESRV_CONFIG)), ok_header(), "");
    assert_eq!(namesrv_config(&mut conn), before);
}

#[test]
fn update_namesrv_config_honours_a_configured_black_list() {
    let server = common::server(&["configBlackList=orderMessageEnable;configBlackList"]);
    let mut conn = server.client();
    let refused = conn.call(&update_config("orderMessageEnable=true\n"));
    assert_answer(&refused, java_header(16, None, Some(BLACK_LIST_REMARK)), "");
    // rocketmqHome is refused whatever the list says.
    assert_answer(&conn.call(&update_config("rocketmqHome=/x\n")), java_header(16, None, Some(BLACK_LIST_REMARK)), "");
    assert_eq!(config_value(&namesrv_config(&mut conn), "orderMessageEnable").as_deref(), Some("false"));
    assert_answer(&conn.call(&update_config("enableAllTopicList=false\n")), ok_header(), "");
    let config = namesrv_config(&mut conn);
    assert_eq!(config_value(&config, "enableAllTopicList").as_deref(), Some("false"));
    assert_eq!(config_value(&config, "orderMessageEnable").as_deref(), Some("false"));
}

#[test]
fn update_namesrv_config_applies_persists_and_takes_effect() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // An order topic with its KV entry: no orderTopicConf while orderMessageEnable=false.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = register_ok(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(body, r#"{"table":{"TOrd":"broker-a:4"}}"#);
    let bd = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    let qd = queue_data("broker-a", 4, 6);
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[&bd], &[&qd], None));

    // Unknown keys are ignored (Java applies only keys it knows).
    assert_answer(&conn.call(&update_config("orderMessageEnable=true\nnoSuchKey=1\n")), ok_header(), "");
    let config = namesrv_config(&mut conn);
    assert_eq!(config_value(&config, "orderMessageEnable").as_deref(), Some("true"));
    assert_eq!(config_value(&config, "noSuchKey"), None);
    // The config store (data dir namesrv.properties by default) holds the full list.
    let store = std::fs::read_to_string(server.data_dir().join("namesrv.properties")).expect("config store written");
    assert!(store.lines().any(|l| l == "orderMessageEnable=true"), "config store:\n{store}");
    assert!(store.lines().any(|l| l == "returnOrderTopicConfigToBroker=true"), "config store:\n{store}");
    // In effect, on every shard.
    let with_conf = route_json(&[&bd], &[&qd], Some("broker-a:4"));
    assert_eq!(route_body(&mut conn, route_request("TOrd")), with_conf);
    assert_eq!(route_body(&mut server.client(), route_request("TOrd")), with_conf);
    assert_eq!(route_body(&mut conn, route_request("T2")), route_json(&[&bd], &[&qd], None));

    // And back.
    assert_answer(&conn.call(&update_config("orderMessageEnable=false")), ok_header(), "");
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[bd], &[qd], None));
    let store = std::fs::read_to_string(server.data_dir().join("namesrv.properties")).expect("config store written");
    assert!(store.lines().any(|l| l == "orderMessageEnable=false"), "config store:\n{store}");
}

#[test]
fn config_file_sets_switches_and_is_the_config_store() {
    let dir = TempDir::new("config-file");
    let file = dir.path().join("namesrv.conf");
    std::fs::write(&file, "enableAllTopicList=false\nproductEnvName=test-env\n").expect("writing the config file");
    let server = Server::start_with(common::options().arg("-c").arg(file.display().to_string()));
    let mut conn = server.client();
    assert_answer(
        &conn.call(&Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER)),
        java_header(1, None, Some("disable")),
        "",
    );
    let config = namesrv_config(&mut conn);
    assert_eq!(config_value(&config, "productEnvName").as_deref(), Some("test-env"));
    assert_eq!(config_value(&config, "configStorePath"), Some(file.display().to_string()));

    assert_answer(&conn.call(&update_config("enableAllTopicList=true\n")), ok_header(), "");
    assert_eq!(topic_list(&mut conn, Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).0, set(&[]));
    let store = std::fs::read_to_string(&file).expect("the config file");
    assert!(store.lines().any(|l| l == "enableAllTopicList=true"), "config file:\n{store}");
    assert!(store.lines().any(|l| l == "productEnvName=test-env"), "config file:\n{store}");
    assert!(!server.data_dir().join("namesrv.properties").exists());
}

// ---------------------------------------------------------------------------------------
// 206 / 224 / 304 / 311 / 312 / 313: topic lists
// ---------------------------------------------------------------------------------------

/// c1 = {broker-a, broker-b}, c2 = {broker-c}; TShared on a and b, TCross on a and c.
fn register_two_clusters(conn: &mut Client) {
    let a = Broker::new("c1", "broker-a", 0, 10911);
    let a1 = Broker::new("c1", "broker-a", 1, 10921);
    let b = Broker::new("c1", "broker-b", 0, 11911);
    let c = Broker::new("c2", "broker-c", 0, 12911);
    let a_topics = [topic("TA", 4, 6), topic("TShared", 4, 6), topic("TCross", 4, 6)];
    assert_registered(conn, &a.register(json_body(1, &a_topics)));
    let reply = conn.call(&a1.register(json_body(1, &a_topics)));
    assert_eq!(reply.code(), 0, "{}", reply.header);
    assert_registered(conn, &b.register(json_body(1, &[topic("TB", 4, 6), topic("TShared", 8, 6)])));
    assert_registered(conn, &c.register(json_body(1, &[topic("TC", 4, 6), topic("TCross", 2, 6)])));
}

#[test]
fn all_topic_list() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let request = || Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER);
    assert_answer(&conn.call(&request()), ok_header(), r#"{"topicList":[]}"#);
    register_two_clusters(&mut conn);
    assert_eq!(topic_list(&mut conn, request()), (set(&["TA", "TB", "TC", "TCross", "TShared"]), None));
    // A topic registered by 217 counts too.
    let body =
        format!(r#"{{"brokerDatas":[],"filterServerTable":{{}},"queueDatas":[{}]}}"#, queue_data("broker-b", 2, 6));
    let reply = conn.call(&Request::new(REGISTER_TOPIC_IN_NAMESRV).ext("topic", "TNew").body(body));
    assert_answer(&reply, ok_header(), "");
    assert_eq!(topic_list(&mut conn, request()), (set(&["TA", "TB", "TC", "TCross", "TNew", "TShared"]), None));
}

#[test]
fn all_topic_list_disabled() {
    let server = common::server(&["enableAllTopicList=false"]);
    let mut conn = server.client();
    register_two_clusters(&mut conn);
    let reply = conn.call(&Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER));
    assert_answer(&reply, java_header(1, None, Some("disable")), "");
    // Only 206 is gated by this flag.
    assert_eq!(
        topic_list(&mut conn, Request::new(GET_TOPICS_BY_CLUSTER).ext("cluster", "c2")).0,
        set(&["TC", "TCross"])
    );
}

#[test]
fn topics_by_cluster() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let request = |cluster: &str| Request::new(GET_TOPICS_BY_CLUSTER).ext("cluster", cluster);
    register_two_clusters(&mut conn);
    // TShared is on two brokers of c1: listed once.
    assert_eq!(topic_list(&mut conn, request("c1")), (set(&["TA", "TB", "TCross", "TShared"]), None));
    assert_eq!(topic_list(&mut conn, request("c2")), (set(&["TC", "TCross"]), None));
    // Unknown cluster: SUCCESS with an empty list (golden seq 30).
    assert_answer(&conn.call(&request("nocluster")), ok_header(), r#"{"topicList":[]}"#);
    // Missing header field: SYSTEM_ERROR naming it.
    let reply = conn.call(&Request::new(GET_TOPICS_BY_CLUSTER));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("cluster"), "{}", reply.header);
    // A per-cluster delete takes the topic out of that cluster's list only.
    let delete = Request::new(DELETE_TOPIC_IN_NAMESRV).ext("topic", "TCross").ext("clusterName", "c2");
    assert_answer(&conn.call(&delete), ok_header(), "");
    assert_eq!(topic_list(&mut conn, request("c2")).0, set(&["TC"]));
    assert_eq!(topic_list(&mut conn, request("c1")).0, set(&["TA", "TB", "TCross", "TShared"]));
}

#[test]
fn topic_lists_disabled_by_enable_topic_list() {
    let server = common::server(&["enableTopicList=false"]);
    let mut conn = server.client();
    register_two_clusters(&mut conn);
    for request in [
        Request::new(GET_TOPICS_BY_CLUSTER).ext("cluster", "c1"),
        Request::new(GET_UNIT_TOPIC_LIST),
        Request::new(GET_HAS_UNIT_SUB_TOPIC_LIST),
        Request::new(GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST),
    ] {
        assert_answer(&conn.call(&request), java_header(1, None, Some("disable")), "");
    }
    // Not gated by it: 206 and 304.
    assert_eq!(topic_list(&mut conn, Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).0.len(), 5);
    assert_eq!(topic_list(&mut conn, Request::new(GET_SYSTEM_TOPIC_LIST_FROM_NS)).0.len(), 5);
}

#[test]
fn system_topic_list() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // Empty: no broker address to give, so no brokerAddr key.
    assert_answer(&conn.call(&Request::new(GET_SYSTEM_TOPIC_LIST_FROM_NS)), ok_header(), r#"{"topicList":[]}"#);
    register_two_clusters(&mut conn);
    let (topics, addr) = topic_list(&mut conn, Request::new(GET_SYSTEM_TOPIC_LIST_FROM_NS));
    assert_eq!(topics, set(&["c1", "c2", "broker-a", "broker-b", "broker-c"]));
    let addrs = ["127.0.0.1:10911", "127.0.0.1:10921", "127.0.0.1:11911", "127.0.0.1:12911"];
    let addr = addr.expect("a brokerAddr once brokers are registered");
    assert!(addrs.contains(&addr.as_str()), "brokerAddr {addr} is not a registered broker's");
}

#[test]
fn unit_topic_lists_follow_topic_sys_flag() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let topics = [
        topic_with_flag("TPlain", 0),
        topic_with_flag("TUnit", 1),
        topic_with_flag("TUnitSub", 2),
        topic_with_flag("TBoth", 3),
    ];
    assert_registered(&mut conn, &b.register(json_body(1, &topics)));
    // The flag is echoed in the route.
    let expected = route_json(
        &[broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data_full("broker-a", 4, 6, 3)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TBoth")), expected);

    assert_eq!(topic_list(&mut conn, Request::new(GET_UNIT_TOPIC_LIST)), (set(&["TUnit", "TBoth"]), None));
    assert_eq!(topic_list(&mut conn, Request::new(GET_HAS_UNIT_SUB_TOPIC_LIST)), (set(&["TUnitSub", "TBoth"]), None));
    assert_eq!(topic_list(&mut conn, Request::new(GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST)), (set(&["TUnitSub"]), None));

    // A topic registered by 217 with a unit flag is listed as well.
    let body = format!(
        r#"{{"brokerDatas":[],"filterServerTable":{{}},"queueDatas":[{}]}}"#,
        queue_data_full("broker-a", 2, 6, 1)
    );
    assert_answer(
        &conn.call(&Request::new(REGISTER_TOPIC_IN_NAMESRV).ext("topic", "TUnit217").body(body)),
        ok_header(),
        "",
    );
    assert_eq!(topic_list(&mut conn, Request::new(GET_UNIT_TOPIC_LIST)).0, set(&["TUnit", "TBoth", "TUnit217"]));
}

// ---------------------------------------------------------------------------------------
// 216: DELETE_TOPIC_IN_NAMESRV
// ---------------------------------------------------------------------------------------

#[test]
fn delete_topic_globally_and_per_cluster() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    let c = Broker::new("c2", "broker-c", 0, 12911);
    let a_topics = [topic("TDel", 4, 6), topic("TDelC", 4, 6), topic("TKeep", 4, 6)];
    let c_topics = [topic("TDel", 2, 6), topic("TDelC", 2, 6)];
    assert_registered(&mut conn, &a.register(json_body(1, &a_topics)));
    assert_registered(&mut conn, &c.register(json_body(1, &c_topics)));
    let delete = |topic: &str| Request::new(DELETE_TOPIC_IN_NAMESRV).ext("topic", topic);

    // Global: the whole topic goes, from both clusters; SUCCESS without extFields.
    assert_answer(&conn.call(&delete("TDel")), ok_header(), "");
    assert_topic_not_exist(&mut conn, "TDel");
    assert_topic_not_exist(&mut server.client(), "TDel");

    // Per cluster: only c1's brokers lose it.
    assert_answer(&conn.call(&delete("TDelC").ext("clusterName", "c1")), ok_header(), "");
    let only_c = route_json(
        &[broker_data("c2", "broker-c", &[(0, "127.0.0.1:12911")], true)],
        &[queue_data("broker-c", 2, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TDelC")), only_c);
    // An unknown cluster: a no-op, still SUCCESS.
    assert_answer(&conn.call(&delete("TDelC").ext("clusterName", "c9")), ok_header(), "");
    assert_eq!(route_body(&mut conn, route_request("TDelC")), only_c);
    // The last cluster holding it: the topic goes.
    assert_answer(&conn.call(&delete("TDelC").ext("clusterName", "c2")), ok_header(), "");
    assert_topic_not_exist(&mut conn, "TDelC");
    // Unknown topics: SUCCESS.
    assert_answer(&conn.call(&delete("TNoSuch")), ok_header(), "");
    // Others are untouched.
    assert_eq!(route_code(&mut conn, "TKeep"), 0);
    let all = topic_list(&mut conn, Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).0;
    assert_eq!(all, set(&["TKeep"]));

    // The broker's next registration, even with the same data version, brings the topic
    // back: it has no queue data for that broker any more (behaviour.md §2 step 10b).
    assert_registered(&mut conn, &a.register(json_body(1, &a_topics)));
    let back = route_json(
        &[broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data("broker-a", 4, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TDel")), back);

    // Missing topic field: SYSTEM_ERROR naming it.
    let reply = conn.call(&Request::new(DELETE_TOPIC_IN_NAMESRV));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("topic"), "{}", reply.header);
}

// ---------------------------------------------------------------------------------------
// 217: REGISTER_TOPIC_IN_NAMESRV
// ---------------------------------------------------------------------------------------

#[test]
fn register_topic_in_namesrv_applies_queue_datas_until_an_unknown_broker() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    let b = Broker::new("c1", "broker-b", 0, 11911);
    assert_registered(&mut conn, &a.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    let register = |topic: &str, queue_datas: &[String]| {
        let body = format!(r#"{{"brokerDatas":[],"filterServerTable":{{}},"queueDatas":[{}]}}"#, queue_datas.join(","));
        Request::new(REGISTER_TOPIC_IN_NAMESRV).ext("topic", topic).body(body)
    };

    // Two brokers; the answer omits extFields (golden seq 16).
    let reply = conn.call(&register("TNew", &[queue_data("broker-a", 7, 6), queue_data("broker-b", 3, 4)]));
    assert_answer(&reply, ok_header(), "");
    let expected = route_json(
        &[
            broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true),
            broker_data("c1", "broker-b", &[(0, "127.0.0.1:11911")], true),
        ],
        &[queue_data("broker-a", 7, 6), queue_data("broker-b", 3, 4)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TNew")), expected);

    // Stops at the first unknown broker: entries before it stay applied (behaviour.md §2.1).
    let reply = conn.call(&register(
        "TPart",
        &[queue_data("broker-b", 5, 6), queue_data("ghost", 5, 6), queue_data("broker-a", 5, 6)],
    ));
    assert_answer(&reply, ok_header(), "");
    let expected = route_json(
        &[broker_data("c1", "broker-b", &[(0, "127.0.0.1:11911")], true)],
        &[queue_data("broker-b", 5, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TPart")), expected);
    // Unknown first broker: nothing is created, still SUCCESS.
    assert_answer(&conn.call(&register("TGhost", &[queue_data("ghost", 5, 6)])), ok_header(), "");
    assert_topic_not_exist(&mut conn, "TGhost");
    // Missing topic field: SYSTEM_ERROR naming it.
    let reply = conn.call(&Request::new(REGISTER_TOPIC_IN_NAMESRV).body(r#"{"queueDatas":[]}"#));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("topic"), "{}", reply.header);
}

// ---------------------------------------------------------------------------------------
// 205 / 327: write permission
// ---------------------------------------------------------------------------------------

#[test]
fn wipe_and_add_write_perm_of_broker() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    let b = Broker::new("c1", "broker-b", 0, 11911);
    let a_topics = [topic("T1", 4, 6), topic("T7", 4, 7), topic("TRead", 4, 4)];
    assert_registered(&mut conn, &a.register(json_body(1, &a_topics)));
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 2, 6), topic("TB", 2, 6)])));
    let wipe = |name: &str| Request::new(WIPE_WRITE_PERM_OF_BROKER).ext("brokerName", name);
    let add = |name: &str| Request::new(ADD_WRITE_PERM_OF_BROKER).ext("brokerName", name);
    let bd_a = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    let bd_b = broker_data("c1", "broker-b", &[(0, "127.0.0.1:11911")], true);
    let t1 = |perm_a: i32| {
        route_json(
            &[bd_a.clone(), bd_b.clone()],
            &[queue_data("broker-a", 4, perm_a), queue_data("broker-b", 2, 6)],
            None,
        )
    };
    let single = |topic_perm: i32, queue_nums: i32| {
        route_json(&[&bd_a], &[queue_data("broker-a", queue_nums, topic_perm)], None)
    };

    // Every topic of the broker is counted, also one that had no write bit.
    assert_answer(&conn.call(&wipe("broker-a")), java_header(0, Some(json!({"wipeTopicCount":"3"})), None), "");
    assert_eq!(route_body(&mut conn, route_request("T1")), t1(4));
    assert_eq!(route_body(&mut conn, route_request("T7")), single(5, 4));
    assert_eq!(route_body(&mut conn, route_request("TRead")), single(4, 4));
    // Unknown broker: 0 topics.
    assert_answer(&conn.call(&wipe("ghost")), java_header(0, Some(json!({"wipeTopicCount":"0"})), None), "");
    assert_answer(&conn.call(&add("ghost")), java_header(0, Some(json!({"addTopicCount":"0"})), None), "");

    // A re-registration with the same data version does not restore the perm.
    assert_registered(&mut conn, &a.register(json_body(1, &a_topics)));
    assert_eq!(route_body(&mut conn, route_request("T1")), t1(4));

    // Add: perm = READ|WRITE exactly, other bits dropped (behaviour.md §8).
    assert_answer(&conn.call(&add("broker-a")), java_header(0, Some(json!({"addTopicCount":"3"})), None), "");
    assert_eq!(route_body(&mut conn, route_request("T1")), t1(6));
    assert_eq!(route_body(&mut conn, route_request("T7")), single(6, 4));
    assert_eq!(route_body(&mut conn, route_request("TRead")), single(6, 4));

    // A registration with a new data version rewrites the queue data from the broker's view.
    assert_answer(&conn.call(&wipe("broker-a")), java_header(0, Some(json!({"wipeTopicCount":"3"})), None), "");
    assert_registered(&mut conn, &a.register(json_body(2, &a_topics)));
    assert_eq!(route_body(&mut conn, route_request("T1")), t1(6));
    assert_eq!(route_body(&mut conn, route_request("T7")), single(7, 4));
    assert_eq!(route_body(&mut conn, route_request("TRead")), single(4, 4));

    // Missing brokerName: SYSTEM_ERROR naming it.
    for request in [Request::new(WIPE_WRITE_PERM_OF_BROKER), Request::new(ADD_WRITE_PERM_OF_BROKER)] {
        let reply = conn.call(&request);
        assert_eq!(reply.code(), 1, "{}", reply.header);
        assert!(reply.remark().unwrap_or_default().contains("brokerName"), "{}", reply.header);
    }
}

// ---------------------------------------------------------------------------------------
// 901: GET_BROKER_MEMBER_GROUP
// ---------------------------------------------------------------------------------------

#[test]
fn broker_member_group_known_and_unknown() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let topics = [topic("T1", 4, 6), topic("T2", 4, 6)];
    assert_registered(&mut conn, &Broker::new("c1", "broker-a", 0, 10911).register(json_body(1, &topics)));
    let reply = conn.call(&Broker::new("c1", "broker-a", 2, 10931).register(json_body(1, &topics)));
    assert_eq!(reply.code(), 0, "{}", reply.header);
    let request = |cluster: &str, name: &str| {
        Request::new(GET_BROKER_MEMBER_GROUP).ext("clusterName", cluster).ext("brokerName", name)
    };
    // Java answers with its default remark and no extFields (golden seq 14, 15).
    let header = java_header(0, None, Some(MEMBER_GROUP_REMARK));
    assert_answer(
        &conn.call(&request("c1", "broker-a")),
        header.clone(),
        r#"{"brokerMemberGroup":{"brokerAddrs":{0:"127.0.0.1:10911",2:"127.0.0.1:10931"},"brokerName":"broker-a","cluster":"c1"}}"#,
    );
    // clusterName is only echoed.
    assert_answer(
        &conn.call(&request("elsewhere", "broker-a")),
        header.clone(),
        r#"{"brokerMemberGroup":{"brokerAddrs":{0:"127.0.0.1:10911",2:"127.0.0.1:10931"},"brokerName":"broker-a","cluster":"elsewhere"}}"#,
    );
    assert_answer(
        &conn.call(&request("c1", "ghost")),
        header,
        r#"{"brokerMemberGroup":{"brokerAddrs":{},"brokerName":"ghost","cluster":"c1"}}"#,
    );
    let reply = conn.call(&Request::new(GET_BROKER_MEMBER_GROUP).ext("clusterName", "c1"));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("brokerName"), "{}", reply.header);
}

// ---------------------------------------------------------------------------------------
// 105 switches: needWaitForService, zones, acting master
// ---------------------------------------------------------------------------------------

#[test]
fn need_wait_for_service_answers_not_ready_within_the_window() {
    let server = common::server(&["needWaitForService=true", "waitSecondsForService=30"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    // Registrations and other codes are served.
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(conn.call(&Request::new(GET_BROKER_CLUSTER_INFO)).code(), 0);
    for topic in ["T1", "TUnknown"] {
        let reply = conn.call(&route_request(topic));
        assert_answer(&reply, java_header(1, None, Some("name server not ready")), "");
    }
    let reply = server.client().call(&route_request("T1").version(400));
    assert_answer(&reply, java_header(1, None, Some("name server not ready")), "");
}

#[test]
fn need_wait_for_service_with_zero_seconds_answers_normally() {
    let server = common::server(&["needWaitForService=true", "waitSecondsForService=0"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    let expected = route_json(
        &[broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data("broker-a", 4, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("T1")), expected);
    assert_topic_not_exist(&mut conn, "TUnknown");
}

#[test]
fn zone_mode_keeps_the_callers_zone_and_masterless_groups() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let topics = [topic("TZone", 4, 6), topic("TOther", 4, 6)];
    let z1 = Broker::new("c1", "broker-z1", 0, 10911).zone("z1");
    let z1_upper = Broker::new("c1", "broker-z1u", 0, 11911).zone("Z1");
    let z2 = Broker::new("c1", "broker-z2", 0, 12911).zone("z2");
    let z2_slave_only = Broker::new("c1", "broker-z2s", 1, 13921).zone("z2");
    let no_zone = Broker::new("c1", "broker-nz", 0, 14911);
    for b in [&z1, &z1_upper, &z2, &z2_slave_only, &no_zone] {
        assert_registered(&mut conn, &b.register(json_body(1, &topics)));
    }
    let bd = |b: &Broker, standard: bool| {
        broker_data_full(&b.cluster, &b.name, &[(b.id, &b.addr)], standard, false, b.zone.as_deref())
    };
    let qd = |b: &Broker| queue_data(&b.name, 4, 6);
    // Meridian orders groups by name: nz, z1, z1u, z2, z2s.
    let all = [&no_zone, &z1, &z1_upper, &z2, &z2_slave_only];
    let unfiltered = route_json(&all.map(|b| bd(b, true)), &all.map(qd), None);
    assert_eq!(route_body(&mut conn, route_request("TZone")), unfiltered);

    // Zone z1: groups in z1 (case-insensitive) and the one without a master, in the
    // legacy flavour whatever the version (behaviour.md §7 step 9).
    let kept = [&z1, &z1_upper, &z2_slave_only];
    let filtered = route_json(&kept.map(|b| bd(b, false)), &kept.map(qd), None);
    let zoned = || route_request("TZone").ext("__ZONE_MODE", "true").ext("__ZONE_NAME", "z1");
    assert_eq!(route_body(&mut conn, zoned()), filtered);
    assert_eq!(route_body(&mut conn, zoned().version(400)), filtered);
    assert_eq!(route_body(&mut conn, zoned().binary()), filtered);
    // Zone z2.
    let kept = [&z2, &z2_slave_only];
    let filtered_z2 = route_json(&kept.map(|b| bd(b, false)), &kept.map(qd), None);
    let reply = conn.call(&route_request("TZone").ext("__ZONE_MODE", "TRUE").ext("__ZONE_NAME", "z2"));
    assert_answer(&reply, ok_header(), &filtered_z2);

    // No filtering without both fields, with mode false, or with a blank zone.
    for request in [
        route_request("TZone").ext("__ZONE_NAME", "z1"),
        route_request("TZone").ext("__ZONE_MODE", "true"),
        route_request("TZone").ext("__ZONE_MODE", "false").ext("__ZONE_NAME", "z1"),
        route_request("TZone").ext("__ZONE_MODE", "true").ext("__ZONE_NAME", " "),
    ] {
        assert_eq!(route_body(&mut conn, request.clone()), unfiltered, "{request:?}");
    }
    // A zone matching nothing keeps only the masterless group.
    let only = route_json(&[bd(&z2_slave_only, false)], &[qd(&z2_slave_only)], None);
    assert_eq!(route_body(&mut conn, route_request("TZone").ext("__ZONE_MODE", "true").ext("__ZONE_NAME", "z9")), only);
    // Unknown topics are still TOPIC_NOT_EXIST.
    let reply = conn.call(&route_request("TNoSuch").ext("__ZONE_MODE", "true").ext("__ZONE_NAME", "z1"));
    assert_eq!(reply.code(), 17, "{}", reply.header);
}

#[test]
fn support_acting_master_answers_the_prime_slave_as_master() {
    let server = common::server(&["supportActingMaster=true"]);
    let mut conn = server.client();
    let sync_topic = "rmq_sys_SYNC_BROKER_MEMBER_broker-am";
    let topics = [topic("TAM", 4, 6), topic(sync_topic, 1, 6)];
    let master = Broker::new("c1", "broker-am", 0, 10911).acting_master();
    let slave = Broker::new("c1", "broker-am", 1, 10921).acting_master();
    assert_registered(&mut conn, &master.register(json_body(1, &topics)));
    let reply = conn.call(&slave.register(json_body(1, &topics)));
    assert_eq!(reply.code(), 0, "{}", reply.header);
    let both = [(0, "127.0.0.1:10911"), (1, "127.0.0.1:10921")];
    let group = |addrs: &[(i64, &str)]| broker_data_full("c1", "broker-am", addrs, true, true, None);
    let expected = route_json(&[group(&both)], &[queue_data("broker-am", 4, 6)], None);
    assert_eq!(route_body(&mut conn, route_request("TAM")), expected);

    // The master goes: the group loses its write perm (behaviour.md §5 step 5) and the
    // slave is answered under id 0 (§7 step 6).
    assert_answer(&conn.call(&master.unregister()), ok_header(), "");
    let acting = route_json(&[group(&[(0, "127.0.0.1:10921")])], &[queue_data("broker-am", 4, 4)], None);
    assert!(
        poll_until(POLL_DEADLINE, || route_body(&mut conn, route_request("TAM")) == acting),
        "route after the master left: {}",
        route_body(&mut conn, route_request("TAM"))
    );
    // Except for the member-sync topics.
    let sync = route_json(&[group(&[(1, "127.0.0.1:10921")])], &[queue_data("broker-am", 1, 4)], None);
    assert_eq!(route_body(&mut conn, route_request(sync_topic)), sync);
    // Legacy flavour too.
    let legacy = route_json(
        &[broker_data_full("c1", "broker-am", &[(0, "127.0.0.1:10921")], false, true, None)],
        &[queue_data("broker-am", 4, 4)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TAM").version(400)), legacy);

    // A group whose only member is a prime slave from the start: registered without the
    // write bit (§2 step 10b), answered under id 0.
    let lone = Broker::new("c1", "broker-ps", 1, 11921).acting_master();
    assert_registered(&mut conn, &lone.register(json_body(1, &[topic("TPS", 2, 6), topic("TPS2", 2, 6)])));
    let expected = route_json(
        &[broker_data_full("c1", "broker-ps", &[(0, "127.0.0.1:11921")], true, true, None)],
        &[queue_data("broker-ps", 2, 4)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TPS")), expected);
    // The cluster view is not rewritten.
    let info = conn.call(&Request::new(GET_BROKER_CLUSTER_INFO)).body_text();
    assert!(info.contains(r#""brokerAddrs":{1:"127.0.0.1:11921"}"#), "{info}");
}

#[test]
fn without_support_acting_master_the_slave_keeps_its_id() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let lone = Broker::new("c1", "broker-ps", 1, 11921).acting_master();
    assert_registered(&mut conn, &lone.register(json_body(1, &[topic("TPS", 2, 6), topic("TPS2", 2, 6)])));
    let expected = route_json(
        &[broker_data_full("c1", "broker-ps", &[(1, "127.0.0.1:11921")], true, true, None)],
        &[queue_data("broker-ps", 2, 4)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TPS")), expected);
    // A slave without enableActingMaster keeps the write bit it reports.
    let plain = Broker::new("c1", "broker-pl", 1, 12921);
    assert_registered(&mut conn, &plain.register(json_body(1, &[topic("TPL", 2, 6), topic("TPL2", 2, 6)])));
    let expected = route_json(
        &[broker_data("c1", "broker-pl", &[(1, "127.0.0.1:12921")], true)],
        &[queue_data("broker-pl", 2, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TPL")), expected);
}

// ---------------------------------------------------------------------------------------
// Registration rules behind switches and split registration
// ---------------------------------------------------------------------------------------

#[test]
fn delete_topic_with_broker_registration_drops_unreported_topics() {
    let server = common::server(&["deleteTopicWithBrokerRegistration=true"]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    let b = Broker::new("c1", "broker-b", 0, 11911);
    assert_registered(&mut conn, &a.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6), topic("T3", 4, 6)])));
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T3", 2, 6), topic("TB", 2, 6)])));
    assert_registered(&mut conn, &a.register(json_body(2, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    // T3 loses broker-a's queue data only; broker-b still serves it.
    let t3 = route_json(
        &[broker_data("c1", "broker-b", &[(0, "127.0.0.1:11911")], true)],
        &[queue_data("broker-b", 2, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("T3")), t3);
    // A topic reported by nobody any more goes away.
    assert_registered(&mut conn, &a.register(json_body(3, &[topic("T1", 4, 6), topic("TX", 4, 6)])));
    assert_topic_not_exist(&mut conn, "T2");
    assert_eq!(route_code(&mut conn, "T1"), 0);
    assert_eq!(route_code(&mut conn, "TX"), 0);
}

#[test]
fn without_delete_topic_with_broker_registration_topics_stay() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &a.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6), topic("T3", 4, 6)])));
    assert_registered(&mut conn, &a.register(json_body(2, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    let expected = route_json(
        &[broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true)],
        &[queue_data("broker-a", 4, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("T3")), expected);
}

#[test]
fn split_registration_chunks_with_the_same_data_version_all_apply() {
    // Broker enableSplitRegistration sends chunks carrying the same DataVersion; every
    // chunk's topics must be added (apache/rocketmq issue #10425).
    let server = common::server(&[]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &a.register(json_body(5, &[topic("S1", 4, 6), topic("S2", 4, 6)])));
    assert_registered(&mut conn, &a.register(json_body(5, &[topic("S3", 2, 6), topic("S1", 16, 6)])));
    assert_registered(&mut conn, &a.register(json_body(5, &[topic("S4", 1, 6)])));
    assert_registered(&mut conn, &a.register(json_body(5, &[])));
    let bd = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    // S1's later chunk does not update it (same version); the others are all there.
    for (name, queue_nums) in [("S1", 4), ("S2", 4), ("S3", 2), ("S4", 1)] {
        let expected = route_json(&[&bd], &[queue_data("broker-a", queue_nums, 6)], None);
        assert_eq!(route_body(&mut conn, route_request(name)), expected, "{name}");
    }
    let all = topic_list(&mut conn, Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).0;
    assert_eq!(all, set(&["S1", "S2", "S3", "S4"]));
    // The next full registration with a new version updates S1.
    let full = [topic("S1", 16, 6), topic("S2", 4, 6), topic("S3", 2, 6), topic("S4", 1, 6)];
    assert_registered(&mut conn, &a.register(json_body(6, &full)));
    let expected = route_json(&[bd], &[queue_data("broker-a", 16, 6)], None);
    assert_eq!(route_body(&mut conn, route_request("S1")), expected);
}

// ---------------------------------------------------------------------------------------
// 905: NOTIFY_MIN_BROKER_ID_CHANGE, outbound
// ---------------------------------------------------------------------------------------

/// A fake broker: a plain listener on 127.0.0.1 whose address a registration announces.
fn fake_broker() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a fake broker");
    listener.set_nonblocking(true).expect("set_nonblocking");
    listener
}

/// Waits up to `deadline` for the NameServer to connect; `None` if it never does.
fn accept_within(listener: &TcpListener, deadline: Duration) -> Option<std::net::TcpStream> {
    let mut accepted = None;
    poll_until(deadline, || match listener.accept() {
        Ok((stream, _)) => {
            accepted = Some(stream);
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept on the fake broker: {e}"),
    });
    accepted
}

/// Reads one whole frame from `stream`.
fn read_frame(stream: &mut std::net::TcpStream) -> Vec<u8> {
    stream.set_nonblocking(false).expect("set_nonblocking");
    stream.set_read_timeout(Some(meridian_testkit::IO_TIMEOUT)).expect("set_read_timeout");
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).expect("a frame from the NameServer");
    let total_len = u32::from_be_bytes(prefix) as usize;
    assert!((4..=64 * 1024).contains(&total_len), "frame length {total_len}");
    let mut rest = vec![0u8; total_len];
    stream.read_exact(&mut rest).expect("the whole frame");
    let mut frame = prefix.to_vec();
    frame.extend_from_slice(&rest);
    frame
}

#[test]
fn master_registration_notifies_the_other_members_of_the_new_min_broker_id() {
    let server = common::server(&["notifyMinBrokerIdChanged=true"]);
    let mut conn = server.client();
    let fake = fake_broker();
    let slave_addr = fake.local_addr().expect("local_addr").to_string();
    let topics = [topic("T1", 4, 6), topic("T2", 4, 6)];
    let slave = Broker::at("c1", "broker-a", 1, &slave_addr, "127.0.0.1:10922");
    let master = Broker::new("c1", "broker-a", 0, 10911);
    // The slave alone: the group had no member, so the minimum did not "change".
    assert_registered(&mut conn, &slave.register(json_body(1, &topics)));
    // The master lowers the minimum id: 905 goes, one-way, to every other member.
    assert_registered(&mut conn, &master.register(json_body(1, &topics)));
    let mut stream = accept_within(&fake, POLL_DEADLINE).expect("the NameServer never connected to the slave");
    let frame = read_frame(&mut stream);
    let (serialize_type, header, notification_body) = split_frame(&frame);
    let header = header_json(serialize_type, &header);
    let expected = json!({
        "code": 905,
        "extFields": {"haBrokerAddr": "127.0.0.1:10912", "minBrokerAddr": "127.0.0.1:10911", "minBrokerId": "0"},
        "flag": 2,
        "language": "JAVA",
        "serializeTypeCurrentRPC": "JSON",
        "version": 479,
    });
    assert_eq!(without_opaque(&header), expected, "{header}");
    assert!(notification_body.is_empty(), "905 carries no body");
}

#[test]
fn no_notification_without_notify_min_broker_id_changed() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let fake = fake_broker();
    let slave_addr = fake.local_addr().expect("local_addr").to_string();
    let topics = [topic("T1", 4, 6), topic("T2", 4, 6)];
    assert_registered(
        &mut conn,
        &Broker::at("c1", "broker-a", 1, &slave_addr, "127.0.0.1:10922").register(json_body(1, &topics)),
    );
    assert_registered(&mut conn, &Broker::new("c1", "broker-a", 0, 10911).register(json_body(1, &topics)));
    // A correct server never connects; the wait only bounds the test.
    assert!(accept_within(&fake, Duration::from_millis(300)).is_none(), "the NameServer connected to the slave");
}
