//! Registration rules behind switches, split registration, and the outbound
//! NOTIFY_MIN_BROKER_ID_CHANGE.

use super::*;

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
    meridian_testkit::read_frame(stream, 64 * 1024).expect("a whole frame from the NameServer")
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
