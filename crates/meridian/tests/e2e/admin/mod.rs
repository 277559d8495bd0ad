//! End-to-end tests of the KV, topic-list, admin and config codes, and of the NameServer
//! switches that shape answers (orderTopicConf, zones, acting master, not-ready window,
//! split registration, 905 notifications), against the real `meridian` binary over TCP.
//! Expected answers are Java 5.3.3's exact shapes (testdata/golden/java-5.3.3-examples.jsonl).
//! Every test starts its own server and ends by itself.

mod brokers;
mod config;
mod kv;
mod registration;
mod topics;

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
use std::net::TcpListener;
use std::time::Duration;

const JAVA_GOLDEN: &str = "java-5.3.3-examples.jsonl";
/// Java's FAQ suffix on TOPIC_NOT_EXIST (105).
const FAQ_SUFFIX: &str = "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";
/// The KV namespace the NameServer interprets.
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

/// BrokerData as Java writes it: alphabetical keys, zoneName only when set.
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

/// TopicRouteData from encoded parts; `orderTopicConf` sits between
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

/// A TopicList answer: asserts Java's SUCCESS header, the key set, and no
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
