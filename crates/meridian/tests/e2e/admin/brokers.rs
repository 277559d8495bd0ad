//! Write permission (205/327), GET_BROKER_MEMBER_GROUP, and the switches that shape lookups:
//! needWaitForService, zones, acting master.

use super::*;

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

    // Add: perm = READ|WRITE exactly, other bits dropped.
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
    // legacy flavour whatever the version.
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

    // The master goes: the group loses its write perm and the
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
