//! End-to-end tests of the broker and client codes: the real `meridian` binary on an
//! ephemeral port, driven over TCP with RocketMQ remoting frames, answers compared with
//! Java's exact shapes (testdata/golden/*.jsonl). Every test starts its own server and ends
//! by itself.

mod golden;
mod limits;
mod process;
mod registration;
mod requests;

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

/// Java's FAQ suffix on TOPIC_NOT_EXIST (105).
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

/// TopicRouteData as Java writes it, from already encoded parts.
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
