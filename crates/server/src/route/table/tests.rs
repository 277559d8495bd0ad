//! The route table's rules, one registration or removal at a time (the model and property
//! tests in `route::model_tests` check them against a reference model).

use super::*;
use meridian_protocol::body::TopicConfig;

const CLUSTER: &str = "c1";
const A0: &str = "10.0.0.1:10911";
const A1: &str = "10.0.0.2:10911";
const A2: &str = "10.0.0.3:10911";
const B0: &str = "10.0.1.1:10911";
const LIMITS: TableLimits = TableLimits { topics_max: 1_000, brokers_max: 100, broker_timeout_default_ms: 120_000 };

fn table() -> RouteTable {
    RouteTable::new(LIMITS)
}

fn dv(counter: i64) -> DataVersion {
    DataVersion { counter, state_version: 0, timestamp: 1_700_000_000_000 + counter }
}

fn topic(name: &str, queue_nums: i32, perm: i32) -> TopicConfig {
    let mut t = TopicConfig::new(name);
    t.read_queue_nums = queue_nums;
    t.write_queue_nums = queue_nums;
    t.perm = perm;
    t
}

/// A 5.x broker (enableActingMaster=false) registering `topics` with `data_version`.
fn reg(name: &str, id: i64, addr: &str, data_version: DataVersion, topics: &[TopicConfig]) -> RegisterBroker {
    RegisterBroker {
        cluster_name: CLUSTER.to_string(),
        broker_addr: addr.to_string(),
        broker_name: name.into(),
        broker_id: id,
        ha_server_addr: format!("ha-{addr}"),
        heartbeat_timeout_ms: None,
        enable_acting_master: Some(false),
        zone_name: None,
        body: RegisterBrokerBody {
            data_version,
            topic_configs: topics.to_vec().into(),
            filter_server_list: Some(Vec::new()),
            topic_queue_mapping_infos: Vec::new(),
        },
        topics_unchanged: false,
        body_fingerprint: 0,
        prints_token: None,
        delta: None,
    }
}

fn two_topics() -> [TopicConfig; 2] {
    [topic("T1", 4, 6), topic("T2", 4, 6)]
}

fn accepted() -> RegisterOutcome {
    RegisterOutcome::Accepted { master_addr: None, ha_server_addr: None }
}

fn unregister(name: &str, id: i64, addr: &str) -> Unregister {
    Unregister {
        cluster_name: CLUSTER.to_string(),
        broker_addr: addr.to_string(),
        broker_name: name.into(),
        broker_id: id,
    }
}

/// The topic's queue data as (brokerName, queue nums, perm), or `None` for no topic.
fn check(table: &RouteTable, topic: &str, expected: Option<&[(&str, i32, i32)]>) {
    let actual: Option<Vec<(String, i32, i32)>> = table.topic_queue_datas(topic).map(|per_broker| {
        per_broker
            .values()
            .map(|qd| {
                assert_eq!(qd.read_queue_nums, qd.write_queue_nums, "{topic}: test topics have r == w");
                (qd.broker_name.to_string(), qd.read_queue_nums, qd.perm)
            })
            .collect()
    });
    let expected = expected.map(|e| e.iter().map(|(n, q, p)| (n.to_string(), *q, *p)).collect::<Vec<_>>());
    assert_eq!(actual, expected, "queue data of {topic}");
}

fn addrs(table: &RouteTable, name: &str) -> Vec<(i64, String)> {
    table
        .broker_data(name)
        .map(|bd| bd.broker_addrs.iter().map(|(id, a)| (*id, a.clone())).collect())
        .unwrap_or_default()
}

/// Negative space: the broker group is in no table, and neither are its addresses.
fn assert_gone(table: &RouteTable, name: &str, gone_addrs: &[&str]) {
    assert!(table.broker_data(name).is_none(), "{name} still in brokers()");
    assert!(!table.brokers().contains_key(name), "{name} still in brokers()");
    for (cluster, names) in table.clusters() {
        assert!(!names.contains(name), "{name} still in cluster {cluster}");
        assert!(!names.is_empty(), "cluster {cluster} kept with no broker");
    }
    for addr in gone_addrs {
        assert!(table.live_info(CLUSTER, addr).is_none(), "{addr} still live");
        assert!(table.filter_servers(CLUSTER, addr).is_none(), "{addr} still has filter servers");
    }
    for (topic, _) in table.topic_queue.iter() {
        let per_broker = table.topic_queue_datas(topic).expect("listed topic");
        assert!(!per_broker.contains_key(name), "{topic} still has queue data of {name}");
    }
    assert!(!table.broker_topics.contains_key(name), "reverse index still lists {name}");
}

#[test]
fn master_registration_fills_every_table() {
    let mut t = table();
    let mut r = reg("broker-a", 0, A0, dv(1), &two_topics());
    r.body.filter_server_list = Some(vec!["10.0.0.9:1".into()]);
    assert_eq!(t.register_broker(r.clone(), ConnId(7), 1_000), accepted());

    assert_eq!(addrs(&t, "broker-a"), vec![(0, A0.to_string())]);
    assert_eq!(t.clusters().get(CLUSTER).map(|s| s.iter().cloned().collect::<Vec<_>>()), Some(vec!["broker-a".into()]));
    let live = t.live_info(CLUSTER, A0).expect("live entry");
    assert_eq!((live.last_update_ms, live.timeout_ms, live.conn), (1_000, 120_000, ConnId(7)));
    assert_eq!((live.data_version, live.ha_server_addr.as_str()), (dv(1), "ha-10.0.0.1:10911"));
    assert_eq!(t.filter_servers(CLUSTER, A0), Some(&vec!["10.0.0.9:1".to_string()]));
    check(&t, "T1", Some(&[("broker-a", 4, 6)]));
    check(&t, "T2", Some(&[("broker-a", 4, 6)]));
    assert_eq!((t.topic_count(), t.live_count()), (2, 1));
    assert_eq!(t.changed_topics(), FastSet::from_iter([TopicName::from("T1"), TopicName::from("T2")]));
    let changes = t.take_changes();
    assert!(changes.cluster && changes.topics);

    // The same registration again changes nothing a reader can see.
    assert_eq!(t.register_broker(r, ConnId(7), 2_000), accepted());
    assert!(t.changed_topics().is_empty());
    let changes = t.take_changes();
    assert!(!changes.cluster && !changes.topics, "{changes:?}");
    assert_eq!(t.live_info(CLUSTER, A0).map(|l| l.last_update_ms), Some(2_000));
}

#[test]
fn slave_gets_master_addresses_and_leaves_topics_alone() {
    let mut t = table();
    // A slave before its master: no addresses to report.
    assert_eq!(t.register_broker(reg("broker-b", 1, A1, dv(1), &[]), ConnId(1), 0), accepted());
    assert_eq!(t.register_broker(reg("broker-a", 0, A0, dv(1), &two_topics()), ConnId(2), 0), accepted());
    let slave = reg("broker-a", 1, A1, dv(2), &[topic("T1", 8, 6), topic("T9", 8, 6)]);
    assert_eq!(
        t.register_broker(slave, ConnId(3), 0),
        RegisterOutcome::Accepted { master_addr: Some(A0.into()), ha_server_addr: Some(format!("ha-{A0}")) }
    );
    assert_eq!(addrs(&t, "broker-a"), vec![(0, A0.to_string()), (1, A1.to_string())]);
    check(&t, "T1", Some(&[("broker-a", 4, 6)]));
    check(&t, "T9", None);
}

#[test]
fn old_version_slave_without_master_never_writes_topics() {
    let mut t = table();
    let mut slave = reg("broker-a", 1, A1, dv(1), &two_topics());
    slave.enable_acting_master = None;
    assert_eq!(t.register_broker(slave, ConnId(1), 0), accepted());
    assert_eq!(addrs(&t, "broker-a"), vec![(1, A1.to_string())]);
    check(&t, "T1", None);
    assert_eq!(t.topic_count(), 0);
}

#[test]
fn prime_slave_writes_topics_and_clears_write_perm_when_acting_master() {
    let mut t = table();
    let mut slave = reg("broker-a", 1, A1, dv(1), &[topic("T1", 4, 6), topic("T7", 4, 7)]);
    slave.enable_acting_master = Some(true);
    assert_eq!(t.register_broker(slave, ConnId(1), 0), accepted());
    assert!(t.broker_data("broker-a").expect("registered").enable_acting_master);
    check(&t, "T1", Some(&[("broker-a", 4, 4)]));
    check(&t, "T7", Some(&[("broker-a", 4, 5)]));
    // Id 2 is not the smallest id, so not the prime slave: its topics are ignored.
    let mut second = reg("broker-a", 2, A2, dv(1), &[topic("T2", 4, 6), topic("T3", 4, 6)]);
    second.enable_acting_master = Some(true);
    t.register_broker(second, ConnId(2), 0);
    check(&t, "T2", None);

    // Without acting master the prime slave writes the perm as sent.
    let mut t = table();
    assert_eq!(t.register_broker(reg("broker-a", 1, A1, dv(1), &two_topics()), ConnId(1), 0), accepted());
    assert!(!t.broker_data("broker-a").expect("registered").enable_acting_master);
    check(&t, "T1", Some(&[("broker-a", 4, 6)]));
}

#[test]
fn queue_data_changes_only_with_the_data_version() {
    let mut t = table();
    t.register_broker(reg("broker-a", 0, A0, dv(1), &[topic("T1", 4, 6), topic("T2", 4, 6)]), ConnId(1), 0);
    // Same version: existing queue data stays.
    t.register_broker(reg("broker-a", 0, A0, dv(1), &[topic("T1", 8, 4), topic("T2", 4, 6)]), ConnId(1), 1);
    check(&t, "T1", Some(&[("broker-a", 4, 6)]));
    // New version: replaced.
    t.register_broker(reg("broker-a", 0, A0, dv(2), &[topic("T1", 8, 4), topic("T2", 4, 6)]), ConnId(1), 2);
    check(&t, "T1", Some(&[("broker-a", 8, 4)]));
    // Topics absent from a registration are never removed by it.
    t.register_broker(reg("broker-a", 0, A0, dv(3), &[topic("T1", 8, 4), topic("T3", 1, 6)]), ConnId(1), 3);
    check(&t, "T2", Some(&[("broker-a", 4, 6)]));
}

#[test]
fn split_registration_chunks_only_add_missing_topics() {
    let mut t = table();
    let chunk = |topics: &[TopicConfig]| reg("broker-a", 0, A0, dv(5), topics);
    assert_eq!(t.register_broker(chunk(&[topic("A", 4, 6), topic("B", 4, 6)]), ConnId(1), 0), accepted());
    assert_eq!(t.register_broker(chunk(&[topic("C", 4, 6), topic("A", 16, 6)]), ConnId(1), 0), accepted());
    assert_eq!(t.register_broker(chunk(&[topic("D", 2, 6)]), ConnId(1), 0), accepted());
    assert_eq!(t.register_broker(chunk(&[]), ConnId(1), 0), accepted());
    check(&t, "A", Some(&[("broker-a", 4, 6)]));
    check(&t, "B", Some(&[("broker-a", 4, 6)]));
    check(&t, "C", Some(&[("broker-a", 4, 6)]));
    check(&t, "D", Some(&[("broker-a", 2, 6)]));
    assert_eq!(t.topic_count(), 4);
}

#[test]
fn stale_state_version_is_rejected_silently() {
    let mut t = table();
    let epoch = |counter, state_version| DataVersion { state_version, ..dv(counter) };
    t.register_broker(reg("broker-a", 0, A0, epoch(1, 5), &two_topics()), ConnId(1), 0);
    // Id 0 moves to another address with an older controller epoch: SUCCESS, no change.
    let stale = reg("broker-a", 0, A1, epoch(2, 3), &[topic("T1", 8, 6), topic("T5", 8, 6)]);
    assert_eq!(t.register_broker(stale, ConnId(2), 10), accepted());
    assert_eq!(addrs(&t, "broker-a"), vec![(0, A0.to_string())]);
    assert!(t.live_info(CLUSTER, A1).is_none());
    assert!(t.live_info(CLUSTER, A0).is_some());
    check(&t, "T1", Some(&[("broker-a", 4, 6)]));
    check(&t, "T5", None);
    // A newer epoch wins.
    let newer = reg("broker-a", 0, A1, epoch(3, 6), &[topic("T1", 8, 6), topic("T5", 8, 6)]);
    assert_eq!(t.register_broker(newer, ConnId(2), 20), accepted());
    assert_eq!(addrs(&t, "broker-a"), vec![(0, A1.to_string())]);
    check(&t, "T1", Some(&[("broker-a", 8, 6)]));
}

#[test]
fn promoted_slave_replaces_its_old_id() {
    let mut t = table();
    t.register_broker(reg("broker-a", 0, A0, dv(1), &two_topics()), ConnId(1), 0);
    t.register_broker(reg("broker-a", 1, A1, dv(1), &two_topics()), ConnId(2), 0);
    // The slave's address comes back as id 0 (step 5 drops id 1 for that address).
    t.register_broker(reg("broker-a", 0, A1, dv(2), &two_topics()), ConnId(2), 0);
    assert_eq!(addrs(&t, "broker-a"), vec![(0, A1.to_string())]);
}

#[test]
fn one_topic_first_registration_is_refused_without_changes() {
    let mut t = table();
    let refused = RegisterOutcome::Refused("register broker failed".into());
    assert_eq!(t.register_broker(reg("broker-a", 0, A0, dv(1), &[topic("T1", 4, 6)]), ConnId(1), 0), refused);
    assert!(t.brokers().is_empty() && t.clusters().is_empty());
    assert_eq!((t.topic_count(), t.live_count()), (0, 0));
    let changes = t.take_changes();
    assert!(!changes.cluster && !changes.topics);

    // A full registration first; then one-topic registrations of that id are fine.
    assert_eq!(t.register_broker(reg("broker-a", 0, A0, dv(2), &two_topics()), ConnId(1), 0), accepted());
    assert_eq!(t.register_broker(reg("broker-a", 0, A0, dv(3), &[topic("T3", 2, 6)]), ConnId(1), 0), accepted());
    check(&t, "T3", Some(&[("broker-a", 2, 6)]));
    // The rule is per broker id: a new slave id may not start with one topic either.
    assert_eq!(t.register_broker(reg("broker-a", 1, A1, dv(3), &[topic("T3", 2, 6)]), ConnId(2), 0), refused);
    assert_eq!(addrs(&t, "broker-a"), vec![(0, A0.to_string())]);
    assert!(t.live_info(CLUSTER, A1).is_none());
    // An empty table is not "one topic".
    assert_eq!(t.register_broker(reg("broker-b", 0, B0, dv(1), &[]), ConnId(3), 0), accepted());
}

#[test]
fn unregister_removes_the_broker_from_every_table() {
    let mut t = table();
    t.register_broker(reg("broker-a", 0, A0, dv(1), &[topic("TA", 4, 6), topic("TS", 4, 6)]), ConnId(1), 0);
    t.register_broker(reg("broker-a", 1, A1, dv(1), &[topic("TA", 4, 6), topic("TS", 4, 6)]), ConnId(2), 0);
    t.register_broker(reg("broker-b", 0, B0, dv(1), &[topic("TB", 2, 6), topic("TS", 2, 6)]), ConnId(3), 0);
    t.take_changes();

    // The group keeps its slave, and its topics.
    t.unregister(&[unregister("broker-a", 0, A0)]);
    assert_eq!(addrs(&t, "broker-a"), vec![(1, A1.to_string())]);
    assert!(t.live_info(CLUSTER, A0).is_none());
    check(&t, "TA", Some(&[("broker-a", 4, 6)]));
    assert!(t.take_changes().cluster);

    // Matching is by address: a wrong id still removes the address.
    t.unregister(&[unregister("broker-a", 7, A1)]);
    assert_gone(&t, "broker-a", &[A0, A1]);
    check(&t, "TA", None);
    check(&t, "TS", Some(&[("broker-b", 2, 6)]));
    assert_eq!(t.clusters().get(CLUSTER).map(|s| s.len()), Some(1));
    // TA went (checked above); TS lost broker-a's queue data.
    let changed = t.changed_topics();
    assert!(changed.contains("TS"), "{changed:?}");
    let changes = t.take_changes();
    assert!(changes.cluster && changes.topics);

    t.unregister(&[unregister("broker-b", 0, B0)]);
    assert_gone(&t, "broker-b", &[B0]);
    assert!(t.brokers().is_empty() && t.clusters().is_empty(), "the empty cluster goes too");
    assert_eq!((t.topic_count(), t.live_count()), (0, 0));

    // Unknown brokers: a no-op.
    t.take_changes();
    t.unregister(&[unregister("ghost", 0, "10.9.9.9:1")]);
    let changes = t.take_changes();
    assert!(!changes.cluster && !changes.topics);
}

#[test]
fn losing_the_master_of_an_acting_master_group_clears_write_perm() {
    for acting in [true, false] {
        let mut t = table();
        let mut master = reg("broker-a", 0, A0, dv(1), &[topic("T1", 4, 6), topic("T7", 4, 7)]);
        master.enable_acting_master = Some(acting);
        let mut slave = reg("broker-a", 1, A1, dv(1), &[topic("T1", 4, 6), topic("T7", 4, 7)]);
        slave.enable_acting_master = Some(acting);
        t.register_broker(master, ConnId(1), 0);
        t.register_broker(slave, ConnId(2), 0);
        check(&t, "T1", Some(&[("broker-a", 4, 6)]));
        t.unregister(&[unregister("broker-a", 0, A0)]);
        let (p6, p7) = if acting { (4, 5) } else { (6, 7) };
        check(&t, "T1", Some(&[("broker-a", 4, p6)]));
        check(&t, "T7", Some(&[("broker-a", 4, p7)]));
    }
}

fn expired(broker: Unregister, conn: u64, silent_ms: u64, timeout_ms: u64) -> Expired {
    Expired { broker, conn: ConnId(conn), silent_ms, timeout_ms }
}

#[test]
fn expiry_uses_each_broker_timeout() {
    let mut t = table();
    let mut short = reg("broker-a", 0, A0, dv(1), &two_topics());
    short.heartbeat_timeout_ms = Some(1_000);
    t.register_broker(short, ConnId(1), 0);
    t.register_broker(reg("broker-b", 0, B0, dv(1), &[topic("TB", 4, 6), topic("T2", 2, 6)]), ConnId(2), 0);

    // Expired only strictly after last update + timeout.
    assert!(t.scan_expired(1_000).is_empty());
    assert_eq!(t.scan_expired(1_001), vec![expired(unregister("broker-a", 0, A0), 1, 1_001, 1_000)]);
    assert_gone(&t, "broker-a", &[A0]);
    check(&t, "T1", None);
    check(&t, "T2", Some(&[("broker-b", 2, 6)]));
    // The default timeout for a broker that sent none.
    assert!(t.scan_expired(120_000).is_empty());
    assert_eq!(t.scan_expired(120_001), vec![expired(unregister("broker-b", 0, B0), 2, 120_001, 120_000)]);
    assert_gone(&t, "broker-b", &[B0]);
    assert_eq!((t.topic_count(), t.live_count()), (0, 0));
    assert!(t.brokers().is_empty() && t.clusters().is_empty());
}

#[test]
fn heartbeat_and_query_data_version_refresh_liveness() {
    let mut t = table();
    let mut a = reg("broker-a", 0, A0, dv(1), &two_topics());
    a.heartbeat_timeout_ms = Some(1_000);
    let mut b = reg("broker-b", 0, B0, dv(1), &[topic("TB", 4, 6), topic("TB2", 4, 6)]);
    b.heartbeat_timeout_ms = Some(1_000);
    t.register_broker(a, ConnId(1), 0);
    t.register_broker(b, ConnId(2), 0);
    t.heartbeat(CLUSTER, A0, 800);
    assert_eq!(t.query_data_version(CLUSTER, B0, &dv(1), 900), (false, Some(dv(1))));
    assert!(t.scan_expired(1_500).is_empty());
    assert_eq!(t.live_info(CLUSTER, A0).map(|l| l.last_update_ms), Some(800));
    assert_eq!(t.scan_expired(1_801), vec![expired(unregister("broker-a", 0, A0), 1, 1_001, 1_000)]);
    assert_eq!(t.scan_expired(1_901), vec![expired(unregister("broker-b", 0, B0), 2, 1_001, 1_000)]);

    // Unknown brokers are ignored, nothing is created.
    t.heartbeat(CLUSTER, A0, 2_000);
    t.heartbeat("other", B0, 2_000);
    assert_eq!(t.live_count(), 0);
}

#[test]
fn query_data_version_compares_field_by_field() {
    let mut t = table();
    t.register_broker(reg("broker-a", 0, A0, dv(3), &two_topics()), ConnId(1), 0);
    assert_eq!(t.query_data_version(CLUSTER, A0, &dv(3), 1), (false, Some(dv(3))));
    assert_eq!(t.query_data_version(CLUSTER, A0, &dv(4), 1), (true, Some(dv(3))));
    let other_timestamp = DataVersion { timestamp: 1, ..dv(3) };
    assert_eq!(t.query_data_version(CLUSTER, A0, &other_timestamp, 1), (true, Some(dv(3))));
    let other_state = DataVersion { state_version: 1, ..dv(3) };
    assert_eq!(t.query_data_version(CLUSTER, A0, &other_state, 1), (true, Some(dv(3))));
    // Unknown (cluster, address): changed, nothing stored, nothing created.
    assert_eq!(t.query_data_version(CLUSTER, B0, &dv(3), 1), (true, None));
    assert_eq!(t.query_data_version("c2", A0, &dv(3), 1), (true, None));
    assert_eq!(t.live_count(), 1);
    // It never stores the queried version.
    assert_eq!(t.live_info(CLUSTER, A0).map(|l| l.data_version), Some(dv(3)));
}

#[test]
fn register_topic_stops_at_the_first_unknown_broker() {
    let qd = |name: &str, queue_nums: i32| QueueData {
        broker_name: name.into(),
        read_queue_nums: queue_nums,
        write_queue_nums: queue_nums,
        perm: 6,
        topic_sys_flag: 0,
    };
    let mut t = table();
    t.register_broker(reg("broker-a", 0, A0, dv(1), &two_topics()), ConnId(1), 0);
    t.register_broker(reg("broker-b", 0, B0, dv(1), &two_topics()), ConnId(2), 0);

    assert_eq!(t.register_topic("TN", vec![qd("broker-a", 7), qd("ghost", 7), qd("broker-b", 7)]), Ok(()));
    check(&t, "TN", Some(&[("broker-a", 7, 6)]));
    // An unknown first broker: the topic is not created at all.
    assert_eq!(t.register_topic("TM", vec![qd("ghost", 7), qd("broker-a", 7)]), Ok(()));
    check(&t, "TM", None);
    // An existing topic: entries before the unknown one stay applied.
    assert_eq!(t.register_topic("T1", vec![qd("broker-b", 9), qd("ghost", 9), qd("broker-a", 9)]), Ok(()));
    check(&t, "T1", Some(&[("broker-a", 4, 6), ("broker-b", 9, 6)]));
    // Unregistering broker-b takes its registered-topic entries with it.
    t.unregister(&[unregister("broker-b", 0, B0)]);
    assert_gone(&t, "broker-b", &[B0]);
    check(&t, "T1", Some(&[("broker-a", 4, 6)]));
}

#[test]
fn limits_refuse_without_changes() {
    let mut t = RouteTable::new(TableLimits { topics_max: 2, brokers_max: 1, ..LIMITS });
    let three = [topic("T1", 4, 6), topic("T2", 4, 6), topic("T3", 4, 6)];
    match t.register_broker(reg("broker-a", 0, A0, dv(1), &three), ConnId(1), 0) {
        RegisterOutcome::Refused(remark) => assert!(remark.contains("topicsMax 2"), "{remark}"),
        other => panic!("{other:?}"),
    }
    assert!(t.brokers().is_empty() && t.clusters().is_empty());
    assert_eq!((t.topic_count(), t.live_count()), (0, 0));

    assert_eq!(t.register_broker(reg("broker-a", 0, A0, dv(1), &three[..2]), ConnId(1), 0), accepted());
    match t.register_broker(reg("broker-b", 0, B0, dv(1), &three[..2]), ConnId(2), 0) {
        RegisterOutcome::Refused(remark) => assert!(remark.contains("brokersMax 1"), "{remark}"),
        other => panic!("{other:?}"),
    }
    assert_gone(&t, "broker-b", &[B0]);
    // Re-registering a known address is not a new broker.
    assert_eq!(t.register_broker(reg("broker-a", 0, A0, dv(2), &three[..2]), ConnId(1), 0), accepted());

    let qd = QueueData {
        broker_name: "broker-a".into(),
        read_queue_nums: 1,
        write_queue_nums: 1,
        perm: 6,
        topic_sys_flag: 0,
    };
    let err = t.register_topic("T9", vec![qd.clone()]).expect_err("table full");
    assert!(err.to_string().contains("topicsMax 2"), "{err}");
    check(&t, "T9", None);
    assert_eq!(t.register_topic("T1", vec![qd]), Ok(()));
}

#[test]
fn connection_close_unregisters_only_brokers_tied_to_it() {
    let mut t = table();
    t.register_broker(reg("broker-a", 0, A0, dv(1), &two_topics()), ConnId(1), 0);
    t.register_broker(reg("broker-b", 0, B0, dv(1), &[topic("TB", 4, 6), topic("T2", 4, 6)]), ConnId(2), 0);
    assert_eq!(t.connection_closed(ConnId(3)).len(), 0);
    assert_eq!(t.live_count(), 2);

    assert_eq!(t.connection_closed(ConnId(1)).len(), 1);
    assert_gone(&t, "broker-a", &[A0]);
    check(&t, "T2", Some(&[("broker-b", 4, 6)]));

    // Re-registering moves the tie to the new connection.
    t.register_broker(reg("broker-b", 0, B0, dv(1), &[topic("TB", 4, 6), topic("T2", 4, 6)]), ConnId(4), 0);
    assert_eq!(t.connection_closed(ConnId(2)).len(), 0);
    assert!(t.broker_data("broker-b").is_some());
    assert_eq!(t.connection_closed(ConnId(4)).len(), 1);
    assert_gone(&t, "broker-b", &[B0]);
    assert_eq!((t.topic_count(), t.live_count()), (0, 0));
}

#[test]
fn a_registration_reports_how_many_topics_it_added_removed_and_changed() {
    let mut t = table();
    let counts = |added, removed, changed| TopicCounts { added, removed, changed };
    t.register_broker(reg("broker-a", 0, A0, dv(1), &two_topics()), ConnId(1), 0);
    assert_eq!(t.last_topic_counts(), counts(2, 0, 0));
    // Same topics, new data version: everything rewritten, nothing different.
    t.register_broker(reg("broker-a", 0, A0, dv(2), &two_topics()), ConnId(1), 0);
    assert_eq!(t.last_topic_counts(), counts(0, 0, 0));
    // T1 changed, T3 new; T2 missing from the body stays (split registration relies on that).
    t.register_broker(reg("broker-a", 0, A0, dv(3), &[topic("T1", 8, 6), topic("T3", 4, 6)]), ConnId(1), 0);
    assert_eq!(t.last_topic_counts(), counts(1, 0, 1));
    // Another group taking an existing topic adds it to *its* queue data.
    t.register_broker(reg("broker-b", 0, B0, dv(1), &[topic("T1", 8, 6), topic("TB", 4, 6)]), ConnId(2), 0);
    assert_eq!(t.last_topic_counts(), counts(2, 0, 0));
    // A slave writes no queue data.
    t.register_broker(reg("broker-a", 1, A1, dv(1), &[topic("T9", 4, 6), topic("T8", 4, 6)]), ConnId(3), 0);
    assert_eq!(t.last_topic_counts(), counts(0, 0, 0));
    // deleteTopicWithBrokerRegistration: topics the body no longer lists are removed.
    t.set_options(TableOptions { delete_topic_with_broker_registration: true, ..TableOptions::default() });
    t.register_broker(reg("broker-a", 0, A0, dv(4), &[topic("T1", 8, 6)]), ConnId(1), 0);
    assert_eq!(t.last_topic_counts(), counts(0, 2, 0));
    // A refused registration reports nothing.
    t.register_broker(reg("broker-c", 0, A2, dv(1), &[topic("T1", 8, 6)]), ConnId(4), 0);
    assert_eq!(t.last_topic_counts(), counts(0, 0, 0));
}
