//! End-to-end tests of `meridian admin <verb>`: every verb runs as the built binary against
//! real `meridian` servers on loopback, and the tests check the printed values (tables and
//! `--json` documents), the exit codes (1 for an error answer, 2 for usage, 3 for no usable
//! answer), `NAMESRV_ADDR`, and that write verbs reach every NameServer given. State is
//! checked through a separate raw-protocol client, not through the CLI under test. Fake
//! NameServers (a thread on a loopback listener) give malformed and missing answers.
//! Every test ends by itself: the CLI is bounded by `--timeout`, and a runaway CLI is
//! killed at `ADMIN_DEADLINE`.

use crate::common;
use crate::common::builders::{call_ok, register_request, route_request, topic};
use crate::common::cli::{admin, admin_with_env, dead_addr};
use meridian_protocol::body::TopicConfig;
use meridian_protocol::codes::{GET_KV_CONFIG, GET_NAMESRV_CONFIG};
use meridian_testkit::{frame, read_request_opaque, Client, Request, Server, SERIALIZE_JSON};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};

fn addr_of(server: &Server) -> String {
    server.addr().to_string()
}

/// The whitespace-separated cells of each stdout line after the header.
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout.lines().skip(1).map(|l| l.split_whitespace().map(str::to_string).collect()).collect()
}

// ---------------------------------------------------------------------------------------
// Brokers and raw-protocol checks
// ---------------------------------------------------------------------------------------

/// A broker as a registration names it.
struct Broker {
    cluster: &'static str,
    name: &'static str,
    id: i64,
    addr: String,
}

impl Broker {
    fn new(cluster: &'static str, name: &'static str, id: i64, addr: &str) -> Broker {
        Broker { cluster, name, id, addr: addr.to_string() }
    }

    /// Registers over `conn`; the broker stays registered while `conn` stays open.
    #[track_caller]
    fn register(&self, conn: &mut Client, topics: &[TopicConfig]) {
        // A first registration with exactly one topic is refused (Java's rule against an
        // incremental registration coming first): announce the broker with an empty table
        // first.
        if topics.len() == 1 {
            self.register_version(conn, 1, &[]);
        }
        self.register_version(conn, 2, topics);
    }

    #[track_caller]
    fn register_version(&self, conn: &mut Client, counter: i64, topics: &[TopicConfig]) {
        call_ok(conn, &register_request(self.cluster, self.name, self.id, &self.addr, "", counter, topics));
    }
}

/// c1 = {broker-a (ids 0 and 1), broker-b}, c2 = {broker-c}. TShared is on a and b, TCross
/// on a and c; `%RETRY%group1` is a consumer group's retry topic on a.
fn register_two_clusters(conn: &mut Client) {
    let a_topics = [topic("TA", 4, 6), topic("TShared", 4, 6), topic("TCross", 4, 6), topic("%RETRY%group1", 1, 6)];
    Broker::new("c1", "broker-a", 0, "127.0.0.1:10911").register(conn, &a_topics);
    Broker::new("c1", "broker-a", 1, "127.0.0.1:10921").register(conn, &a_topics);
    Broker::new("c1", "broker-b", 0, "127.0.0.1:11911").register(conn, &[topic("TB", 4, 6), topic("TShared", 8, 6)]);
    Broker::new("c2", "broker-c", 0, "127.0.0.1:12911").register(conn, &[topic("TC", 4, 6), topic("TCross", 2, 6)]);
}

/// The KV value as the NameServer holds it, read with a raw request (None on a miss).
fn kv_value(server: &Server, namespace: &str, key: &str) -> Option<String> {
    let reply = server.client().call(&Request::new(GET_KV_CONFIG).ext("namespace", namespace).ext("key", key));
    match reply.code() {
        0 => Some(reply.ext_field("value").expect("SUCCESS carries value")),
        22 => None,
        other => panic!("GET_KV_CONFIG answered {other}: {}", reply.header),
    }
}

/// One key of the NameServer's config, read with a raw request.
fn config_value(server: &Server, key: &str) -> Option<String> {
    let reply = server.client().call(&Request::new(GET_NAMESRV_CONFIG));
    assert_eq!(reply.code(), 0, "{}", reply.header);
    reply.body_text().lines().find_map(|l| l.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
}

/// The route answer (code, body) read with a raw request.
fn route(server: &Server, topic: &str) -> (i32, Value) {
    let reply = server.client().call(&route_request(topic));
    let body =
        if reply.body.is_empty() { Value::Null } else { serde_json::from_slice(&reply.body).expect("route JSON") };
    (reply.code(), body)
}

/// perm of `broker`'s queue data in `topic`'s route.
fn perm_of(server: &Server, topic: &str, broker: &str) -> i64 {
    let (code, body) = route(server, topic);
    assert_eq!(code, 0, "route of {topic}");
    let queues = body["queueDatas"].as_array().expect("queueDatas");
    queues.iter().find(|q| q["brokerName"] == broker).expect("broker in route")["perm"].as_i64().expect("perm")
}

// ---------------------------------------------------------------------------------------
// Fake NameServers
// ---------------------------------------------------------------------------------------

/// What a fake NameServer does with each request it reads.
#[derive(Clone, Copy)]
enum Fake {
    /// Answers a frame whose length prefix is past any sane answer size.
    HugeLength,
    /// Answers SUCCESS whose body is not JSON.
    GarbageBody,
    /// Reads the request and never answers.
    Silent,
}

/// Serves `behaviour` on a loopback port, one connection after another, until the test
/// process ends (each connection ends when the CLI closes it).
fn fake_namesrv(behaviour: Fake) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let addr = listener.local_addr().expect("local_addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(opaque) = read_request_opaque(&mut stream) else { continue };
            match behaviour {
                Fake::HugeLength => {
                    let _ = stream.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
                }
                Fake::GarbageBody => {
                    let header = format!(
                        r#"{{"code":0,"flag":1,"language":"JAVA","opaque":{opaque},"serializeTypeCurrentRPC":"JSON","version":479}}"#
                    );
                    let _ = stream.write_all(&frame(SERIALIZE_JSON, header.as_bytes(), b"{not json"));
                }
                Fake::Silent => {}
            }
            // Hold the connection until the CLI closes it.
            let mut sink = [0u8; 256];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------
// Read verbs
// ---------------------------------------------------------------------------------------

#[test]
fn cluster_list_prints_every_broker_address_by_cluster() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    // Nothing registered: the header alone.
    let run = admin(&["clusterList", "-n", &n]).expect_code(0);
    assert_eq!(run.stdout, "#Cluster Name  #Broker Name  #BID  #Addr\n");
    assert_eq!(admin(&["clusterList", "-n", &n, "--json"]).expect_code(0).json(), json!({"namesrv": n, "brokers": []}));

    let mut conn = server.client();
    register_two_clusters(&mut conn);
    let run = admin(&["clusterList", "-n", &n]).expect_code(0);
    assert_eq!(
        run.stdout,
        "#Cluster Name  #Broker Name  #BID  #Addr\n\
         c1             broker-a      0     127.0.0.1:10911\n\
         c1             broker-a      1     127.0.0.1:10921\n\
         c1             broker-b      0     127.0.0.1:11911\n\
         c2             broker-c      0     127.0.0.1:12911\n"
    );
    assert_eq!(run.stderr, "");
    let broker = |cluster: &str, name: &str, id: i64, addr: &str| json!({"cluster": cluster, "brokerName": name, "brokerId": id, "addr": addr});
    // Options may also come before the verb.
    let run = admin(&["--json", "-n", &n, "clusterList"]).expect_code(0);
    assert_eq!(
        run.json(),
        json!({"namesrv": n, "brokers": [
            broker("c1", "broker-a", 0, "127.0.0.1:10911"),
            broker("c1", "broker-a", 1, "127.0.0.1:10921"),
            broker("c1", "broker-b", 0, "127.0.0.1:11911"),
            broker("c2", "broker-c", 0, "127.0.0.1:12911"),
        ]})
    );
    // One cluster only.
    let run = admin(&["clusterList", "-n", &n, "-c", "c2"]).expect_code(0);
    assert_eq!(rows(&run.stdout), vec![vec!["c2", "broker-c", "0", "127.0.0.1:12911"]]);
    let run = admin(&["clusterList", "-n", &n, "--clusterName", "nope"]).expect_code(0);
    assert_eq!(run.stdout, "#Cluster Name  #Broker Name  #BID  #Addr\n");
    assert!(run.stderr.contains("lists no broker in cluster \"nope\""), "{run:?}");
}

#[test]
fn topic_route_prints_brokers_and_queues_and_the_route_as_json() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    let mut conn = server.client();
    register_two_clusters(&mut conn);

    let run = admin(&["topicRoute", "-n", &n, "-t", "TShared"]).expect_code(0);
    assert_eq!(
        run.stdout,
        "#Broker Name  #Cluster Name  #BID  #Role   #Addr\n\
         broker-a      c1             0     MASTER  127.0.0.1:10911\n\
         broker-a      c1             1     SLAVE   127.0.0.1:10921\n\
         broker-b      c1             0     MASTER  127.0.0.1:11911\n\
         \n\
         #Broker Name  #Read Queues  #Write Queues  #Perm           #Topic Sys Flag\n\
         broker-a      4             4              6 (READ|WRITE)  0\n\
         broker-b      8             8              6 (READ|WRITE)  0\n"
    );

    // --json: the route document itself, as the NameServer sent it.
    let document = admin(&["topicRoute", "-n", &n, "--topic", "TShared", "--json"]).expect_code(0).json();
    assert_eq!(document, route(&server, "TShared").1);
    let brokers = document["brokerDatas"].as_array().expect("brokerDatas");
    let a = brokers.iter().find(|b| b["brokerName"] == "broker-a").expect("broker-a");
    assert_eq!(a["brokerAddrs"], json!({"0": "127.0.0.1:10911", "1": "127.0.0.1:10921"}));
    assert_eq!(a["cluster"], "c1");
    let queues = document["queueDatas"].as_array().expect("queueDatas");
    let b = queues.iter().find(|q| q["brokerName"] == "broker-b").expect("broker-b");
    assert_eq!(
        b,
        &json!({"brokerName": "broker-b", "perm": 6, "readQueueNums": 8, "topicSysFlag": 0, "writeQueueNums": 8})
    );

    // An unknown topic: the NameServer's TOPIC_NOT_EXIST, code and remark on stderr.
    let run = admin(&["topicRoute", "-n", &n, "-t", "TNope"]).expect_code(1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains(&format!("NameServer {n} answered code 17 (TOPIC_NOT_EXIST)")), "{run:?}");
    assert!(run.stderr.contains("No topic route info in name server for the topic: TNope"), "{run:?}");
    assert_eq!(admin(&["topicRoute", "-n", &n, "-t", "TNope", "--json"]).expect_code(1).stdout, "");
}

#[test]
fn topic_list_plain_and_with_clusters() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    let mut conn = server.client();
    register_two_clusters(&mut conn);

    let run = admin(&["topicList", "-n", &n]).expect_code(0);
    assert_eq!(run.stdout, "%RETRY%group1\nTA\nTB\nTC\nTCross\nTShared\n");
    let all = json!(["%RETRY%group1", "TA", "TB", "TC", "TCross", "TShared"]);
    assert_eq!(admin(&["topicList", "-n", &n, "--json"]).expect_code(0).json(), json!({"namesrv": n, "topics": all}));

    // -c: every cluster a topic is on; like mqadmin, no %RETRY%/%DLQ% topics.
    let run = admin(&["topicList", "-n", &n, "-c"]).expect_code(0);
    assert_eq!(
        run.stdout,
        "#Cluster Name  #Topic\n\
         c1             TA\n\
         c1             TB\n\
         c1             TCross\n\
         c1             TShared\n\
         c2             TC\n\
         c2             TCross\n"
    );
    let run = admin(&["topicList", "-n", &n, "--clusterModel", "--json"]).expect_code(0);
    assert_eq!(
        run.json(),
        json!({"namesrv": n, "topics": [
            {"topic": "TA", "clusters": ["c1"]},
            {"topic": "TB", "clusters": ["c1"]},
            {"topic": "TC", "clusters": ["c2"]},
            {"topic": "TCross", "clusters": ["c1", "c2"]},
            {"topic": "TShared", "clusters": ["c1"]},
        ]})
    );

    // A NameServer that refuses the list answers 1 ("disable"): exit 1.
    let closed = common::server(&["enableAllTopicList=false"]);
    let run = admin(&["topicList", "-n", &addr_of(&closed)]).expect_code(1);
    assert!(run.stderr.contains("answered code 1 (SYSTEM_ERROR): disable"), "{run:?}");
}

#[test]
fn kv_config_update_get_and_delete() {
    let server = common::server(&[]);
    let n = addr_of(&server);

    let run = admin(&["updateKvConfig", "-n", &n, "-s", "ns1", "-k", "k1", "-v", "value one; two"]).expect_code(0);
    assert_eq!(run.stdout, format!("#NameServer{}  #Result\n{n}  OK\n", " ".repeat(n.len() - "#NameServer".len())));
    assert_eq!(kv_value(&server, "ns1", "k1").as_deref(), Some("value one; two"));

    let run = admin(&["getKvConfig", "-n", &n, "-s", "ns1", "-k", "k1"]).expect_code(0);
    assert_eq!(run.stdout, "#Namespace  #Key  #Value\nns1         k1    value one; two\n");
    let run = admin(&["getKvConfig", "-n", &n, "--namespace", "ns1", "--key", "k1", "--json"]).expect_code(0);
    assert_eq!(run.json(), json!({"namesrv": n, "namespace": "ns1", "key": "k1", "value": "value one; two"}));

    // An empty value is a value.
    admin(&["updateKvConfig", "-n", &n, "-s", "ns1", "-k", "empty", "-v", ""]).expect_code(0);
    assert_eq!(kv_value(&server, "ns1", "empty").as_deref(), Some(""));

    let run = admin(&["deleteKvConfig", "-n", &n, "-s", "ns1", "-k", "k1", "--json"]).expect_code(0);
    assert_eq!(run.json(), json!({"results": [{"namesrv": n, "ok": true}]}));
    assert_eq!(kv_value(&server, "ns1", "k1"), None);

    // A miss is the NameServer's QUERY_NOT_FOUND: exit 1 with code and remark.
    let run = admin(&["getKvConfig", "-n", &n, "-s", "ns1", "-k", "k1"]).expect_code(1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("answered code 22 (QUERY_NOT_FOUND): No config item, Namespace: ns1 Key: k1"),
        "{run:?}"
    );
}

#[test]
fn namesrv_config_get_and_update() {
    let server = common::server(&[]);
    let n = addr_of(&server);

    let run = admin(&["getNamesrvConfig", "-n", &n]).expect_code(0);
    let table = rows(&run.stdout);
    let value_of = |key: &str| table.iter().find(|r| r[0] == key).map(|r| r[1..].join(" "));
    assert_eq!(value_of("orderMessageEnable").as_deref(), Some("false"));
    assert_eq!(value_of("enableTopicList").as_deref(), Some("true"));
    assert_eq!(value_of("waitSecondsForService").as_deref(), Some("45"));
    let keys: Vec<&String> = table.iter().map(|r| &r[0]).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys not sorted: {keys:?}");
    let config = admin(&["getNamesrvConfig", "-n", &n, "--json"]).expect_code(0).json();
    assert_eq!(config["namesrv"], n);
    assert_eq!(config["config"]["orderMessageEnable"], "false");
    let kv_path = format!("{}/kvConfig.json", server.data_dir().display());
    assert_eq!(config["config"]["kvConfigPath"], kv_path.as_str());

    admin(&["updateNamesrvConfig", "-n", &n, "-k", "orderMessageEnable", "-v", "true"]).expect_code(0);
    assert_eq!(config_value(&server, "orderMessageEnable").as_deref(), Some("true"));
    let config = admin(&["getNamesrvConfig", "-n", &n, "--json"]).expect_code(0).json();
    assert_eq!(config["config"]["orderMessageEnable"], "true");

    // A black-listed key: NO_PERMISSION, per address in the table and the JSON; nothing changes.
    let run =
        admin(&["updateNamesrvConfig", "-n", &n, "-k", "kvConfigPath", "-v", "/tmp/elsewhere.json"]).expect_code(1);
    assert_eq!(rows(&run.stdout), vec![vec![n.clone(), "ERROR".into(), "16".into(), "(NO_PERMISSION)".into()]]);
    assert!(run.stderr.contains("answered code 16 (NO_PERMISSION): Can not update config in black list."), "{run:?}");
    let run = admin(&["updateNamesrvConfig", "-n", &n, "-k", "kvConfigPath", "-v", "/x", "--json"]).expect_code(1);
    assert_eq!(
        run.json(),
        json!({"results": [{"namesrv": n, "ok": false, "code": 16, "remark": "Can not update config in black list."}]})
    );
    assert_eq!(config_value(&server, "kvConfigPath"), Some(kv_path));
}

#[test]
fn broker_status_lists_registered_brokers_and_probes_them() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    // One broker address where something listens, one where nothing does.
    let listening = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let up = listening.local_addr().expect("local_addr").to_string();
    let down = dead_addr();
    let mut conn = server.client();
    Broker::new("c1", "broker-up", 0, &up).register(&mut conn, &[topic("T1", 4, 6)]);
    Broker::new("c1", "broker-down", 0, &down).register(&mut conn, &[topic("T2", 4, 6)]);
    Broker::new("c1", "broker-down", 1, "127.0.0.1:10921").register(&mut conn, &[topic("T2", 4, 6)]);

    let run = admin(&["brokerStatus", "-n", &n]).expect_code(0);
    let mut expected = vec![
        vec!["c1".to_string(), "broker-down".into(), "0".into(), "MASTER".into(), down.clone(), "registered".into()],
        vec![
            "c1".into(),
            "broker-down".into(),
            "1".into(),
            "SLAVE".into(),
            "127.0.0.1:10921".into(),
            "registered".into(),
        ],
        vec!["c1".into(), "broker-up".into(), "0".into(), "MASTER".into(), up.clone(), "registered".into()],
    ];
    assert_eq!(rows(&run.stdout), expected);
    assert!(run.stdout.starts_with("#Cluster Name  #Broker Name  #BID  #Role   #Addr"), "{run:?}");

    // --probe: a TCP connect to each.
    let run = admin(&["brokerStatus", "-n", &n, "--probe", "--json"]).expect_code(0);
    let document = run.json();
    assert_eq!(document["namesrv"], n);
    let brokers = document["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 3);
    let by_addr = |addr: &str| brokers.iter().find(|b| b["addr"] == addr).expect("listed").clone();
    let up_entry = by_addr(&up);
    assert_eq!(up_entry["reachable"], true);
    assert_eq!(up_entry["registered"], true);
    assert_eq!(up_entry["role"], "MASTER");
    assert_eq!(up_entry["brokerName"], "broker-up");
    assert_eq!(by_addr(&down)["reachable"], false);
    assert!(by_addr(&down)["probeError"].as_str().is_some_and(|e| !e.is_empty()), "{document}");

    let run = admin(&["brokerStatus", "-n", &n, "-b", &up, "--probe"]).expect_code(0);
    expected[2].push("reachable".into());
    assert_eq!(rows(&run.stdout), vec![expected[2].clone()]);
    let run = admin(&["brokerStatus", "-n", &n, "-c", "c1", "-b", &down, "--probe"]).expect_code(0);
    assert_eq!(rows(&run.stdout)[0][..6], expected[0][..]);
    assert_eq!(rows(&run.stdout)[0][6], "unreachable");

    // An address the NameServer does not list: exit 1, and the row says so.
    let run = admin(&["brokerStatus", "-n", &n, "-b", "127.0.0.1:1"]).expect_code(1);
    assert_eq!(rows(&run.stdout), vec![vec!["-", "-", "-", "-", "127.0.0.1:1", "NOT", "REGISTERED"]]);
    assert!(run.stderr.contains(&format!("NameServer {n} does not list broker 127.0.0.1:1")), "{run:?}");
    let run = admin(&["brokerStatus", "-n", &n, "--brokerAddr", "127.0.0.1:1", "--json"]).expect_code(1);
    assert_eq!(run.json(), json!({"namesrv": n, "brokers": [{"addr": "127.0.0.1:1", "registered": false}]}));
    // A broker whose connection closed is gone at once (Meridian unregisters it).
    drop(conn);
    assert!(meridian_testkit::poll_until(meridian_testkit::POLL_DEADLINE, || admin(&[
        "brokerStatus",
        "-n",
        &n,
        "-b",
        &up
    ])
    .code
        == 1));
}

// ---------------------------------------------------------------------------------------
// Write verbs
// ---------------------------------------------------------------------------------------

#[test]
fn wipe_and_add_write_perm_print_the_topic_counts() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    let mut conn = server.client();
    Broker::new("c1", "broker-a", 0, "127.0.0.1:10911")
        .register(&mut conn, &[topic("T1", 4, 6), topic("T2", 4, 6), topic("T3", 4, 6)]);
    Broker::new("c1", "broker-b", 0, "127.0.0.1:11911").register(&mut conn, &[topic("T1", 2, 6)]);

    let run = admin(&["wipeWritePerm", "-n", &n, "-b", "broker-a"]).expect_code(0);
    assert_eq!(rows(&run.stdout), vec![vec![n.as_str(), "OK", "3"]]);
    assert!(run.stdout.starts_with("#NameServer"), "{run:?}");
    assert!(run.stdout.lines().next().is_some_and(|h| h.ends_with("#Result  #Wiped Topics")), "{run:?}");
    assert_eq!(perm_of(&server, "T1", "broker-a"), 4);
    assert_eq!(perm_of(&server, "T1", "broker-b"), 6);
    assert_eq!(perm_of(&server, "T3", "broker-a"), 4);

    let run = admin(&["addWritePerm", "-n", &n, "--brokerName", "broker-a", "--json"]).expect_code(0);
    assert_eq!(run.json(), json!({"results": [{"namesrv": n, "ok": true, "addTopicCount": 3}]}));
    assert_eq!(perm_of(&server, "T1", "broker-a"), 6);
    assert_eq!(perm_of(&server, "T2", "broker-a"), 6);

    // An unknown broker name: the NameServer counts 0 topics.
    let run = admin(&["wipeWritePerm", "-n", &n, "-b", "ghost", "--json"]).expect_code(0);
    assert_eq!(run.json(), json!({"results": [{"namesrv": n, "ok": true, "wipeTopicCount": 0}]}));
}

#[test]
fn delete_topic_removes_routes_per_cluster_and_globally() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    let mut conn = server.client();
    register_two_clusters(&mut conn);

    let run = admin(&["deleteTopic", "-n", &n, "-t", "TCross", "-c", "c2"]).expect_code(0);
    assert_eq!(rows(&run.stdout), vec![vec![n.as_str(), "OK"]]);
    let (code, body) = route(&server, "TCross");
    assert_eq!(code, 0);
    let names: Vec<&Value> =
        body["queueDatas"].as_array().expect("queueDatas").iter().map(|q| &q["brokerName"]).collect();
    assert_eq!(names, vec!["broker-a"]);

    let run = admin(&["deleteTopic", "-n", &n, "--topic", "TCross", "--json"]).expect_code(0);
    assert_eq!(run.json(), json!({"results": [{"namesrv": n, "ok": true}]}));
    assert_eq!(route(&server, "TCross").0, 17);
    assert_eq!(route(&server, "TShared").0, 0, "another topic went too");

    // The help says the brokers keep the topic.
    let help = admin(&["deleteTopic", "--help"]).expect_code(0);
    assert!(help.stdout.contains("does NOT delete the topic on the brokers"), "{help:?}");
}

#[test]
fn write_verbs_change_every_nameserver_given() {
    let first = common::server(&[]);
    let second = common::server(&[]);
    let both = format!("{};{}", first.addr(), second.addr());
    let mut conns = [first.client(), second.client()];
    for conn in &mut conns {
        let topics = [topic("T1", 4, 6), topic("T2", 4, 6)];
        Broker::new("c1", "broker-a", 0, "127.0.0.1:10911").register(conn, &topics);
        Broker::new("c2", "broker-c", 0, "127.0.0.1:12911").register(conn, &[topic("T2", 4, 6)]);
    }

    let run = admin(&["updateKvConfig", "-n", &both, "-s", "ns", "-k", "k", "-v", "v"]).expect_code(0);
    assert_eq!(rows(&run.stdout), vec![vec![addr_of(&first), "OK".into()], vec![addr_of(&second), "OK".into()]]);
    for server in [&first, &second] {
        assert_eq!(kv_value(server, "ns", "k").as_deref(), Some("v"));
    }
    admin(&["deleteKvConfig", "-n", &both, "-s", "ns", "-k", "k"]).expect_code(0);
    for server in [&first, &second] {
        assert_eq!(kv_value(server, "ns", "k"), None);
    }

    let run = admin(&["wipeWritePerm", "-n", &both, "-b", "broker-a", "--json"]).expect_code(0);
    assert_eq!(
        run.json(),
        json!({"results": [
            {"namesrv": addr_of(&first), "ok": true, "wipeTopicCount": 2},
            {"namesrv": addr_of(&second), "ok": true, "wipeTopicCount": 2},
        ]})
    );
    for server in [&first, &second] {
        assert_eq!(perm_of(server, "T2", "broker-a"), 4);
    }
    admin(&["addWritePerm", "-n", &both, "-b", "broker-a"]).expect_code(0);
    for server in [&first, &second] {
        assert_eq!(perm_of(server, "T2", "broker-a"), 6);
    }

    admin(&["deleteTopic", "-n", &both, "-t", "T2", "-c", "c2"]).expect_code(0);
    admin(&["deleteTopic", "-n", &both, "-t", "T1"]).expect_code(0);
    for server in [&first, &second] {
        assert_eq!(route(server, "T1").0, 17);
        let queues = route(server, "T2").1["queueDatas"].clone();
        assert_eq!(queues.as_array().map(Vec::len), Some(1), "{queues}");
    }

    admin(&["updateNamesrvConfig", "-n", &both, "-k", "enableTopicList", "-v", "false"]).expect_code(0);
    for server in [&first, &second] {
        assert_eq!(config_value(server, "enableTopicList").as_deref(), Some("false"));
    }

    // One address unreachable: the others are still written, the run exits 3 and says which.
    let dead = dead_addr();
    let list = format!("{};{dead}", first.addr());
    let run = admin(&["updateKvConfig", "-n", &list, "-s", "ns", "-k", "k2", "-v", "v2", "--json"]).expect_code(3);
    assert_eq!(kv_value(&first, "ns", "k2").as_deref(), Some("v2"));
    let results = run.json()["results"].clone();
    assert_eq!(results[0], json!({"namesrv": addr_of(&first), "ok": true}));
    assert_eq!(results[1]["namesrv"], dead.as_str());
    assert_eq!(results[1]["ok"], false);
    assert!(results[1]["error"].as_str().is_some_and(|e| e.contains("cannot connect")), "{results}");
    assert!(run.stderr.contains(&format!("NameServer {dead}: cannot connect")), "{run:?}");
    let run = admin(&["updateKvConfig", "-n", &list, "-s", "ns", "-k", "k2", "-v", "v3"]).expect_code(3);
    assert_eq!(rows(&run.stdout), vec![vec![addr_of(&first), "OK".into()], vec![dead, "UNUSABLE".into()]]);
}

// ---------------------------------------------------------------------------------------
// Addresses, failures, usage
// ---------------------------------------------------------------------------------------

#[test]
fn read_verbs_ask_the_first_address_that_answers() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    let mut conn = server.client();
    Broker::new("c1", "broker-a", 0, "127.0.0.1:10911").register(&mut conn, &[topic("T1", 4, 6)]);
    let dead = dead_addr();

    let run = admin(&["clusterList", "-n", &format!("{dead};{n}"), "--json"]).expect_code(0);
    assert_eq!(run.json()["namesrv"], n.as_str());
    assert_eq!(run.json()["brokers"][0]["brokerName"], "broker-a");
    assert!(run.stderr.contains(&format!("NameServer {dead}: cannot connect")), "{run:?}");
    assert!(run.stderr.contains(&format!("asked {n} instead")), "{run:?}");

    // Only unreachable addresses: exit 3, nothing on stdout.
    let run = admin(&["clusterList", "-n", &dead]).expect_code(3);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains(&format!("NameServer {dead}: cannot connect")), "{run:?}");
    let other_dead = dead_addr();
    let run = admin(&["topicRoute", "-t", "T1", "-n", &format!("{dead};{other_dead}")]).expect_code(3);
    assert!(run.stderr.contains("no NameServer gave a usable answer"), "{run:?}");

    // An error answer is an answer: the next address is not asked.
    let run = admin(&["topicRoute", "-t", "TNope", "-n", &format!("{n};{dead}")]).expect_code(1);
    assert!(!run.stderr.contains(&dead), "{run:?}");
}

#[test]
fn namesrv_addr_comes_from_the_environment_unless_n_is_given() {
    let server = common::server(&[]);
    let n = addr_of(&server);
    let mut conn = server.client();
    Broker::new("c1", "broker-a", 0, "127.0.0.1:10911").register(&mut conn, &[topic("T1", 4, 6)]);

    let run = admin_with_env(&["topicList", "--json"], &[("NAMESRV_ADDR", &n)]).expect_code(0);
    assert_eq!(run.json(), json!({"namesrv": n, "topics": ["T1"]}));
    // Java's list form, with an unreachable first entry.
    let list = format!("{};{n}", dead_addr());
    let run = admin_with_env(&["topicList"], &[("NAMESRV_ADDR", &list)]).expect_code(0);
    assert_eq!(run.stdout, "T1\n");
    // -n wins over the environment.
    let run = admin_with_env(&["topicList", "-n", &n], &[("NAMESRV_ADDR", &dead_addr())]).expect_code(0);
    assert_eq!(run.stdout, "T1\n");
    let run = admin_with_env(&["topicList", "-n", &dead_addr()], &[("NAMESRV_ADDR", &n)]).expect_code(3);
    assert_eq!(run.stdout, "");
    // Writes through the environment too.
    admin_with_env(&["updateKvConfig", "-s", "ns", "-k", "k", "-v", "from-env"], &[("NAMESRV_ADDR", &n)])
        .expect_code(0);
    assert_eq!(kv_value(&server, "ns", "k").as_deref(), Some("from-env"));
}

#[test]
fn malformed_and_missing_answers_exit_3() {
    let huge = fake_namesrv(Fake::HugeLength).to_string();
    let run = admin(&["clusterList", "-n", &huge]).expect_code(3);
    assert!(run.stderr.contains(&format!("NameServer {huge}: malformed answer")), "{run:?}");
    assert_eq!(run.stdout, "");

    let garbage = fake_namesrv(Fake::GarbageBody).to_string();
    let run = admin(&["clusterList", "-n", &garbage]).expect_code(3);
    assert!(run.stderr.contains("malformed answer: Failed to decode ClusterInfo"), "{run:?}");
    let run = admin(&["topicRoute", "-t", "T", "-n", &garbage, "--json"]).expect_code(3);
    assert!(run.stderr.contains("Failed to decode TopicRouteData"), "{run:?}");
    assert_eq!(run.stdout, "");

    let silent = fake_namesrv(Fake::Silent).to_string();
    let run = admin(&["getNamesrvConfig", "-n", &silent, "--timeout", "300"]).expect_code(3);
    assert!(run.stderr.contains(&format!("NameServer {silent}: no answer within 300 ms")), "{run:?}");
    // A write to a silent NameServer is reported like any other unusable address.
    let run = admin(&["deleteKvConfig", "-s", "a", "-k", "b", "-n", &silent, "--timeout", "300"]).expect_code(3);
    assert_eq!(rows(&run.stdout), vec![vec![silent, "UNUSABLE".to_string()]]);
}

#[test]
fn usage_errors_exit_2_and_the_server_command_line_is_unchanged() {
    for args in [
        &["topicRoute", "-n", "127.0.0.1:9"][..],
        &["getKvConfig", "-s", "ns"],
        &["updateKvConfig", "-s", "ns", "-k", "k"],
        &["wipeWritePerm"],
        &["topicRoute", "-t", ""],
        &["clusterList", "--timeout", "0"],
        &["clusterList", "-n", "no-port"],
        &["clusterList", "-n", ";"],
        &["noSuchVerb"],
        &[],
    ] {
        let run = admin(args).expect_code(2);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    let run = admin_with_env(&["clusterList"], &[("NAMESRV_ADDR", "not an address")]).expect_code(2);
    assert!(run.stderr.contains("not host:port"), "{run:?}");

    // The server's own flags do not mix with the admin command.
    let mixed = Command::new(common::MERIDIAN_BIN)
        .args(["--listen", "127.0.0.1:0", "admin", "clusterList"])
        .stdin(Stdio::null())
        .output()
        .expect("running meridian");
    assert_eq!(mixed.status.code(), Some(2), "{mixed:?}");
    // Without a subcommand, meridian is the server as before: -p prints the config and exits 0.
    let printed = Command::new(common::MERIDIAN_BIN).arg("-p").stdin(Stdio::null()).output().expect("running meridian");
    assert_eq!(printed.status.code(), Some(0), "{printed:?}");
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(text.lines().any(|l| l.starts_with("enableTopicList=")), "{text}");
    // And admin --help lists every verb with the exit codes.
    let help = admin(&["--help"]).expect_code(0);
    for verb in [
        "clusterList",
        "topicRoute",
        "topicList",
        "getKvConfig",
        "updateKvConfig",
        "deleteKvConfig",
        "wipeWritePerm",
        "addWritePerm",
        "deleteTopic",
        "getNamesrvConfig",
        "updateNamesrvConfig",
        "brokerStatus",
    ] {
        assert!(help.stdout.contains(verb), "{verb} missing from {help:?}");
    }
    assert!(help.stdout.contains("Exit codes: 0 ok; 1 a NameServer answered an error"), "{help:?}");
}
