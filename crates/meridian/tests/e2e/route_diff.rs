//! Cross-NameServer consistency end to end: `meridian admin routeDiff` run as the built
//! binary against real `meridian` servers on loopback with a staged partition (broker X
//! registered with both servers, broker Y with server A only, topic TQ registered by X with
//! 4 queues on A and 8 on B), and the peer watch (`peerNamesrvAddrs`) reporting the same
//! differences through `/metrics` and `/routediff`. Every wait is a poll with a deadline;
//! a runaway CLI is killed at `ADMIN_DEADLINE`.

use crate::common;
use crate::common::builders::{call_ok, register_request, topic};
use crate::common::cli::{admin, dead_addr};
use meridian_protocol::body::TopicConfig;
use meridian_testkit::{poll_until, Client, Server, POLL_DEADLINE};
use serde_json::{json, Value};

/// Registers a broker over `conn`; it stays registered while `conn` stays open.
#[track_caller]
fn register(conn: &mut Client, name: &str, addr: &str, topics: &[TopicConfig]) {
    // A first registration with exactly one topic is refused (Java's rule in
    // RouteInfoManager.registerBroker): announce the broker with an empty table first.
    let versions: &[(i64, &[TopicConfig])] = if topics.len() == 1 { &[(1, &[]), (2, topics)] } else { &[(2, topics)] };
    for (counter, topics) in versions {
        call_ok(conn, &register_request("c1", name, 0, addr, "", *counter, topics));
    }
}

const X_ADDR: &str = "127.0.0.1:10911";
const Y_ADDR: &str = "127.0.0.1:10921";

/// The staged partition: X on both (TX alike, TQ 4 queues on `a`, 8 on `b`), Y on `a` only.
/// Returns the broker connections, which must stay open.
fn stage_partition(a: &Server, b: &Server) -> Vec<Client> {
    let mut x_a = a.client();
    register(&mut x_a, "broker-x", X_ADDR, &[topic("TX", 4, 6), topic("TQ", 4, 6)]);
    let mut x_b = b.client();
    register(&mut x_b, "broker-x", X_ADDR, &[topic("TX", 4, 6), topic("TQ", 8, 6)]);
    let mut y_a = a.client();
    register(&mut y_a, "broker-y", Y_ADDR, &[topic("TY", 4, 6)]);
    vec![x_a, x_b, y_a]
}

/// The three staged differences, as `--json` and `/routediff` give them.
#[track_caller]
fn assert_staged_differences(report: &Value, a: &str, b: &str) {
    assert_eq!(report["namesrvs"], json!([a, b]), "{report:#}");
    assert_eq!(report["differenceCount"], 3, "{report:#}");
    assert_eq!(
        report["brokers"],
        json!([{"cluster": "c1", "brokerName": "broker-y", "brokerId": 0, "addr": Y_ADDR,
                "presentOn": [a], "missingOn": [b]}]),
        "{report:#}"
    );
    assert_eq!(report["topics"], json!([{"topic": "TY", "presentOn": [a], "missingOn": [b]}]), "{report:#}");
    let queue = |n: i32| json!({"readQueueNums": n, "writeQueueNums": n, "perm": 6, "topicSysFlag": 0});
    assert_eq!(
        report["queueData"],
        json!([{"topic": "TQ", "brokerName": "broker-x",
                "values": [{"namesrvs": [a], "value": queue(4)}, {"namesrvs": [b], "value": queue(8)}]}]),
        "{report:#}"
    );
    assert_eq!(report["brokerAddrs"], json!([]), "{report:#}");
    // X registered the same data version on both (counter 2), however its topics differ.
    assert_eq!(report["dataVersions"], json!([]), "{report:#}");
    assert_eq!(
        report["byBrokerName"],
        json!([{"brokerName": "broker-x", "missingOn": [], "topics": 1, "differs": ["readQueueNums", "writeQueueNums"]},
               {"brokerName": "broker-y", "missingOn": [b], "topics": 1, "differs": ["cluster info", "route absent"]}]),
        "{report:#}"
    );
    assert_eq!((report["brokersCompared"].as_u64(), report["topicsCompared"].as_u64()), (Some(2), Some(3)));
    assert_eq!(report["routesCompared"], true);
}

#[test]
fn route_diff_names_exactly_the_staged_differences_and_exits_by_outcome() {
    let b = common::server(&[]);
    let a = common::server(&[]);
    let (a_addr, b_addr) = (a.addr().to_string(), b.addr().to_string());
    let _brokers = stage_partition(&a, &b);
    let both = format!("{a_addr};{b_addr}");

    let run = admin(&["routeDiff", "-n", &both, "--json"]).expect_code(4);
    let report = run.json();
    assert_staged_differences(&report, &a_addr, &b_addr);
    assert_eq!((report["agree"].clone(), report["unreadable"].clone()), (json!(false), json!([])));
    assert_eq!(run.stderr, "", "{run:?}");

    let human = admin(&["routeDiff", "-n", &both]).expect_code(4).stdout;
    assert!(
        human.starts_with(&format!(
            "3 differences (1 broker, 1 topic, 1 queue data): 2 NameServers ({a_addr}, {b_addr}), \
             2 broker addresses, 3 topics\n"
        )),
        "{human}"
    );
    let rows: Vec<Vec<&str>> = human.lines().map(|l| l.split_whitespace().collect()).collect();
    let row = |cells: &[&str]| assert!(rows.iter().any(|r| r == cells), "no row {cells:?} in:\n{human}");
    row(&["c1", "broker-y", "0", Y_ADDR, &a_addr, &b_addr]);
    row(&["TY", &a_addr, &b_addr]);
    row(&["TQ", "broker-x", &a_addr, "4", "4", "6(R|W)", "0"]);
    row(&["broker-y", &b_addr, "1", "cluster", "info,route", "absent"]);
    row(&["broker-x", "-", "1", "readQueueNums,writeQueueNums"]);
    row(&[&b_addr, "8", "8", "6(R|W)", "0"]);
    for title in [
        "By broker name (the tables below in short) (2):",
        "Brokers in the cluster info of some NameServers only (1):",
        "Topics with a route on some NameServers only (1):",
        "Queue data that differs (1):",
    ] {
        assert!(human.contains(title), "{title} missing:\n{human}");
    }
    assert!(!human.contains("Broker addresses that differ"), "{human}");

    // Only the topics asked for: TX is alike on both; the cluster info is still compared.
    // A topic nobody has is no difference, but it is noted.
    let some = admin(&["routeDiff", "-n", &both, "--topics", "TX,Nope", "--json"]).expect_code(4).json();
    assert_eq!((some["differenceCount"].as_u64(), some["topicsCompared"].as_u64()), (Some(1), Some(1)), "{some:#}");
    assert_eq!(some["brokers"][0]["brokerName"], "broker-y", "{some:#}");
    assert_eq!((some["topics"].clone(), some["queueData"].clone()), (json!([]), json!([])), "{some:#}");
    assert_eq!(some["notes"], json!(["topic Nope has a route on no NameServer"]));

    // An unreachable third NameServer: exit 3, named in the report; the others still compared.
    let dead = dead_addr();
    let three = format!("{both};{dead}");
    let run = admin(&["routeDiff", "-n", &three, "--json"]).expect_code(3);
    let report = run.json();
    assert_eq!(report["unreadable"][0]["namesrv"], dead.as_str(), "{report:#}");
    assert!(report["unreadable"][0]["error"].as_str().unwrap().starts_with("cannot connect"), "{report:#}");
    assert_staged_differences(&report, &a_addr, &b_addr);
    assert!(run.stderr.contains(&format!("NameServer {dead}: cannot connect")), "{run:?}");
    let human = admin(&["routeDiff", "-n", &three]).expect_code(3).stdout;
    assert!(human.starts_with(&format!("CANNOT READ {dead}: cannot connect")), "{human}");

    // Usage: one NameServer, or more topics than --max-topics.
    let one = admin(&["routeDiff", "-n", &a_addr]).expect_code(2);
    assert!(one.stderr.contains("at least two"), "{one:?}");
    let bounded = admin(&["routeDiff", "-n", &both, "--max-topics", "2"]).expect_code(2);
    assert!(bounded.stderr.contains("3 topics (over all NameServers) exceed --max-topics 2"), "{bounded:?}");
    assert_eq!(bounded.stdout, "");
}

#[test]
fn route_diff_of_identical_namesrvs_exits_0_and_a_newer_data_version_on_one_is_named() {
    let c = common::server(&[]);
    let d = common::server(&[]);
    let mut x_c = c.client();
    register(&mut x_c, "broker-x", X_ADDR, &[topic("TX", 4, 6), topic("TQ", 8, 6)]);
    let mut x_d = d.client();
    register(&mut x_d, "broker-x", X_ADDR, &[topic("TX", 4, 6), topic("TQ", 8, 6)]);
    let both = format!("{};{}", c.addr(), d.addr());
    let run = admin(&["routeDiff", "-n", &both]).expect_code(0);
    assert_eq!(
        run.stdout,
        format!("no differences: 2 NameServers ({}, {}), 1 broker address, 2 topics\n", c.addr(), d.addr())
    );
    let report = admin(&["routeDiff", "-n", &both, "--json"]).expect_code(0).json();
    assert_eq!((report["agree"].clone(), report["differenceCount"].clone()), (json!(true), json!(0)));
    assert_eq!(report["notes"], json!([]), "both are Meridian: data versions were compared");

    // X registers data version 5 with d only (its registration to c was lost): the routes are
    // still alike, the data versions are not.
    let topics = [topic("TX", 4, 6), topic("TQ", 8, 6)];
    call_ok(&mut x_d, &register_request("c1", "broker-x", 0, X_ADDR, "", 5, &topics));
    let report = admin(&["routeDiff", "-n", &both, "--json"]).expect_code(4).json();
    assert_eq!(report["differenceCount"], 1, "{report:#}");
    let version =
        |counter: i64| json!({"stateVersion": 0, "timestamp": 1_700_000_000_000i64 + counter, "counter": counter});
    assert_eq!(
        report["dataVersions"],
        json!([{"cluster": "c1", "addr": X_ADDR, "values": [
            {"namesrvs": [c.addr().to_string()], "value": version(2)},
            {"namesrvs": [d.addr().to_string()], "value": version(5)}]}]),
        "{report:#}"
    );
    assert_eq!(report["byBrokerName"][0]["differs"], json!(["dataVersion"]), "{report:#}");
    let human = admin(&["routeDiff", "-n", &both]).expect_code(4).stdout;
    assert!(human.starts_with("1 difference (1 data version)"), "{human}");
    assert!(human.contains("Data versions that differ (1):"), "{human}");
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap_or_else(|e| panic!("{series}: {v:?}: {e}")))
}

#[test]
fn the_peer_watch_reports_the_staged_differences_in_metrics_and_routediff() {
    let b = common::server(&[]);
    let dead = dead_addr();
    let peers = format!("peerNamesrvAddrs={};{dead}", b.addr());
    let a = common::server(&[&peers, "peerCheckIntervalMs=200"]);
    let (a_addr, b_addr) = (a.addr().to_string(), b.addr().to_string());
    let _brokers = stage_partition(&a, &b);

    let b_series = format!("meridian_peer_route_differences{{peer=\"{b_addr}\"}}");
    let dead_series = format!("meridian_peer_route_differences{{peer=\"{dead}\"}}");
    // A check that ran while the brokers were registering may also count 3 (X, TX and TQ
    // missing on B), so the poll waits for the staged count and the staged content.
    let mut text = String::new();
    let staged = poll_until(POLL_DEADLINE, || {
        let (status, body) = a.http_get("/metrics");
        assert_eq!(status, 200, "{body}");
        text = body;
        let (status, body) = a.http_get("/routediff");
        let names_y = status == 200
            && serde_json::from_str::<Value>(&body).expect("/routediff is JSON")["peers"][0]["report"]["brokers"][0]
                ["brokerName"]
                == "broker-y";
        sample(&text, &b_series) == Some(3.0) && names_y
    });
    assert!(staged, "{b_series} never reached 3 naming broker-y:\n{text}\nlog:\n{}", a.log_text());
    assert_eq!(sample(&text, &dead_series), Some(-1.0), "{text}");
    assert!(sample(&text, "meridian_peer_check_timestamp_seconds").is_some_and(|t| t > 1.6e9), "{text}");

    let (status, body) = a.http_get("/routediff");
    assert_eq!(status, 200, "{body}");
    let document: Value = serde_json::from_str(&body).expect("/routediff is JSON");
    assert_eq!(document["self"], a_addr.as_str(), "{document:#}");
    let peer_b = &document["peers"][0];
    assert_eq!((peer_b["peer"].as_str(), peer_b["differences"].as_i64()), (Some(b_addr.as_str()), Some(3)));
    assert_staged_differences(&peer_b["report"], &a_addr, &b_addr);
    assert_eq!(peer_b["report"]["brokers"][0]["brokerName"], "broker-y");
    let peer_dead = &document["peers"][1];
    assert_eq!((peer_dead["peer"].as_str(), peer_dead["differences"].as_i64()), (Some(dead.as_str()), Some(-1)));
    assert!(peer_dead["error"].as_str().unwrap().starts_with("cannot connect"), "{document:#}");
    a.expect_log_line(&["peer watch: routes differ from", &b_addr, "3 differences"]);

    // A server without the watch: no peer series, and /routediff says it is off.
    assert!(!b.http_get("/metrics").1.contains("meridian_peer_"));
    assert_eq!(b.http_get("/routediff").0, 404);
}

/// MERIDIAN_BROKER_LIVE_TABLE (43702): every live broker with its data version, and reading it
/// refreshes nothing (silentMs keeps growing while only the table is read).
#[test]
fn the_broker_live_table_lists_data_versions_and_refreshes_nothing() {
    use meridian_protocol::codes::MERIDIAN_BROKER_LIVE_TABLE;
    let server = common::server(&[]);
    let mut broker = server.client();
    register(&mut broker, "broker-x", X_ADDR, &[topic("TX", 4, 6), topic("TQ", 8, 6)]);
    let mut reader = server.client();
    let mut read = || {
        let reply = reader.call(&meridian_testkit::Request::new(MERIDIAN_BROKER_LIVE_TABLE));
        assert_eq!(reply.code(), 0, "{}", reply.header);
        serde_json::from_str::<Value>(&reply.body_text()).expect("the live table is JSON")
    };
    let table = read();
    let entry = &table["brokers"][0];
    assert_eq!(table["brokers"].as_array().map(Vec::len), Some(1), "{table:#}");
    assert_eq!(
        (&entry["cluster"], &entry["brokerName"], &entry["brokerId"], &entry["addr"]),
        (&json!("c1"), &json!("broker-x"), &json!(0), &json!(X_ADDR)),
        "{table:#}"
    );
    assert_eq!(entry["dataVersion"]["counter"], 2, "{table:#}");
    assert_eq!((&entry["timeoutMs"], &entry["provisional"]), (&json!(120_000), &json!(false)), "{table:#}");
    let first_silent = entry["silentMs"].as_u64().expect("silentMs");
    let grew = poll_until(POLL_DEADLINE, || read()["brokers"][0]["silentMs"].as_u64() > Some(first_silent + 50));
    assert!(grew, "silentMs did not grow past {first_silent} + 50 while only the table was read");
}
