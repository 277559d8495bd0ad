//! Topic lists (206/224/304/311/312/313), DELETE_TOPIC_IN_NAMESRV and
//! REGISTER_TOPIC_IN_NAMESRV.

use super::*;

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
    // back: it has no queue data for that broker any more.
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

    // Stops at the first unknown broker: entries before it stay applied.
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
