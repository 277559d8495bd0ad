//! Registration forms (5.x JSON, zlib, raw deflate, 4.x, bare wrapper, binary header) and
//! the registrations the server refuses.

use super::*;

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

/// A large re-send is read against the broker's previous body on the same connection:
/// only the members whose bytes changed are decoded. What lookups answer is what reading
/// it in full gives; and when the table's list of the broker's topics changed otherwise
/// (an admin delete), the delta is refused and the body read in full.
#[test]
fn large_re_sends_are_read_as_deltas_and_stay_exact() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let mut client = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let mut topics: Vec<TopicConfig> = (0..6000).map(|i| topic(&format!("order_topic_{i:05}"), 8, 6)).collect();
    let first = json_body(1, &topics);
    assert_registered(&mut conn, &b.register(first.clone()));
    // A broker re-sends the same bytes until a topic changes: read unread, and the next
    // change is still read as a delta against the first body.
    assert_registered(&mut conn, &b.register(first));
    // A 1% change, one topic gone and one added, at a new data version.
    for t in topics.iter_mut().step_by(100) {
        t.perm = 4;
    }
    topics.remove(3000);
    topics.insert(10, topic("new_topic", 2, 6));
    let second = json_body(2, &topics);
    assert!(second.len() >= 1 << 20, "{} bytes: below the size whose members are fingerprinted", second.len());
    assert_registered(&mut conn, &b.register(second));
    let bd = broker_data_json("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    let route = |client: &mut Client, t: &str| route_body(client, route_request(t));
    for (t, queues, perm) in [
        ("order_topic_00000", 8, 4),
        ("order_topic_00001", 8, 6),
        ("order_topic_05900", 8, 4),
        ("new_topic", 2, 6),
        // Java keeps a topic a registration no longer lists (deleteTopicWithBrokerRegistration off).
        ("order_topic_03000", 8, 6),
    ] {
        assert_eq!(route(&mut client, t), route_json(&[&bd], &[queue_data_json("broker-a", queues, perm)]), "{t}");
    }
    let metric = |name: &str| {
        let (status, text) = server.http_get("/metrics");
        assert_eq!(status, 200);
        let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
    };
    assert_eq!(metric("meridian_registrations_delta_total"), 1.0);
    assert_eq!(metric("meridian_registrations_unread_total"), 1.0);

    // An admin delete changes the broker's list: the next delta is refused, the body read
    // in full, and the deleted topic comes back (as Java re-adds it).
    let delete = Request::new(216).ext("topic", "order_topic_00002");
    assert_eq!(conn.call(&delete).code(), SUCCESS);
    topics[0].perm = 2;
    assert_registered(&mut conn, &b.register(json_body(3, &topics)));
    assert_eq!(metric("meridian_registrations_delta_refused_total"), 1.0);
    for (t, perm) in [("order_topic_00002", 6), ("order_topic_00000", 2)] {
        assert_eq!(route(&mut client, t), route_json(&[&bd], &[queue_data_json("broker-a", 8, perm)]), "{t}");
    }
    // The full read is a base again: the next re-send is a delta.
    topics[0].perm = 6;
    assert_registered(&mut conn, &b.register(json_body(4, &topics)));
    assert_eq!(metric("meridian_registrations_delta_total"), 2.0);
    assert_eq!(route(&mut client, "order_topic_00000"), route_json(&[&bd], &[queue_data_json("broker-a", 8, 6)]));
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
    assert_eq!(&compressed[..2], &[0x78, 0xDA], "Java brokers send a zlib stream");
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
    // A 4.9.x broker: no enableActingMaster, no attributes, no static-topic keys.
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
    // The stock NameServer answers in JSON whatever the request used.
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
    // An empty value in a binary header counts as missing.
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
