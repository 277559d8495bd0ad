//! Lookups, QUERY_DATA_VERSION, heartbeats, unregistration, REGISTER_TOPIC_IN_NAMESRV, and
//! what closing a connection or going silent does to a broker.

use super::*;

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

    // An unregistered broker name: SUCCESS, nothing created.
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
    // concerns it (the live entry keeps the latest connection).
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
    let server = common::server(&["scanNotActiveBrokerIntervalMs=200", "brokerTimeoutDefaultMs=500"]);
    let mut broker_conn = server.client();
    let mut client = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert!(poll_until(POLL_DEADLINE, || route_code(&mut client, "T1") == 17), "broker never expired");
    assert_eq!(cluster_info(&mut client), EMPTY_CLUSTER_INFO);
    server.expect_log("broker expired");
    // Java closes the expired broker's connection too.
    assert_eq!(broker_conn.read_until_closed(), Closed::Yes);
}

#[test]
fn heartbeats_keep_a_broker_alive_until_they_stop() {
    // Default timeout stays 120 s: only the per-broker heartbeatTimeoutMillis can expire.
    let server = common::server(&["scanNotActiveBrokerIntervalMs=200"]);
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
