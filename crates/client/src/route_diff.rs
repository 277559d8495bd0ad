//! Cross-NameServer consistency check (issue 9, item 2). RocketMQ NameServers never talk to
//! each other: every broker registers with every one, so normally they all hold the same
//! routes; a broker that cannot reach one NameServer makes that one's clients see other
//! routes, and nobody notices. This module compares what several NameServers serve.
//!
//! - [`fetch`]: reads each NameServer with stock requests (106 cluster info, 206 topic
//!   list, 105 route per topic, pipelined on one connection per NameServer) plus Meridian's
//!   MERIDIAN_BROKER_LIVE_TABLE (43702) for data versions, which a stock NameServer refuses
//!   (its data versions are then not compared). Never QUERY_DATA_VERSION (322): Java's
//!   refreshes the broker's heartbeat timestamp, so a monitor would keep dead brokers alive.
//! - [`compare`] (here): pure, on [`NamesrvView`]s; finds brokers listed by some NameServers
//!   only, topics routed by some only, and, for topics routed everywhere, per broker name,
//!   differing queue data (read/write queue counts, perm, topicSysFlag) and broker addresses;
//!   differing data versions of a broker address; and rolls it all up per broker name.
//! - [`peer`]: the server side: a background thread comparing this server with its peers
//!   (`peerNamesrvAddrs`), read by the metrics endpoint.
//!
//! Users: `meridian admin routeDiff` (meridian-admin) and the peer watch (server). Must not:
//! touch the route table or snapshots (it sees the server as any client does), or send a
//! request with side effects.

pub mod fetch;
pub mod render;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::conn::BrokerEntry;

/// A broker name's queue data in a topic's route. Not `body::QueueData`: a route here is
/// keyed by broker name, so the name is not repeated, and the value is `Copy` and
/// serialized into the JSON report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// brokerId → address of one broker name, as a route lists them.
pub type BrokerAddrs = BTreeMap<i64, String>;

/// The parts of a topic's route (105) that are compared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicRoute {
    /// By broker name.
    pub queue_datas: BTreeMap<String, QueueData>,
    /// By broker name.
    pub broker_addrs: BTreeMap<String, BrokerAddrs>,
}

/// A broker's topic config data version, as it registered it. Not `body::DataVersion`: this
/// one is read from MERIDIAN_BROKER_LIVE_TABLE and written into routeDiff's JSON report, whose
/// key order (stateVersion, timestamp, counter) is part of that output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    pub state_version: i64,
    pub timestamp: i64,
    pub counter: i64,
}

/// (cluster, broker address): how a NameServer's live table keys a broker.
pub type LiveKey = (String, String);

/// What one NameServer serves.
#[derive(Debug, Clone, Default)]
pub struct NamesrvView {
    /// Every broker address of its cluster info.
    pub brokers: BTreeSet<BrokerEntry>,
    /// Data version of each live broker address; `None` when the NameServer does not serve
    /// MERIDIAN_BROKER_LIVE_TABLE (a stock NameServer).
    pub data_versions: Option<BTreeMap<LiveKey, DataVersion>>,
    /// Topics it has: a route lookup answered SUCCESS (with the route), or, when routes were
    /// not read (too many topics), listed by 206 (`None`).
    pub topics: BTreeMap<String, Option<TopicRoute>>,
}

/// A broker address some NameServers list and others do not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerPresence {
    #[serde(flatten)]
    pub broker: BrokerEntry,
    pub present_on: Vec<String>,
    pub missing_on: Vec<String>,
}

/// A topic some NameServers have a route for and others do not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicPresence {
    pub topic: String,
    pub present_on: Vec<String>,
    pub missing_on: Vec<String>,
}

/// NameServers that hold the same value (`None`: the broker name is absent from their route).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueGroup<T> {
    pub namesrvs: Vec<String>,
    pub value: Option<T>,
}

/// One (topic, broker name) whose value differs, with each distinct value and who has it,
/// in the order the NameServers were given.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueDiff<T> {
    pub topic: String,
    pub broker_name: String,
    pub values: Vec<ValueGroup<T>>,
}

/// One broker address whose data version differs between NameServers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataVersionDiff {
    pub cluster: String,
    pub addr: String,
    pub values: Vec<ValueGroup<DataVersion>>,
}

/// Every difference that concerns one broker name, rolled up: what an operator acts on.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerNameRollup {
    pub broker_name: String,
    /// NameServers whose cluster info lacks some address of this broker name that others list.
    pub missing_on: Vec<String>,
    /// Topics whose route differs for this broker name (queue data, addresses, or the topic
    /// itself routed by some NameServers only).
    pub topics: usize,
    /// What differs: `cluster info`, `route absent`, `readQueueNums`, `writeQueueNums`,
    /// `perm`, `topicSysFlag`, `addresses`, `dataVersion`.
    pub differs: Vec<String>,
}

/// A NameServer that could not be read, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unreadable {
    pub namesrv: String,
    pub error: String,
}

/// The result of a comparison; its JSON form is routeDiff's `--json` document and part of
/// `/routediff`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffReport {
    /// The NameServers compared (those that could be read), in the order given.
    pub namesrvs: Vec<String>,
    pub unreadable: Vec<Unreadable>,
    /// Distinct broker addresses and topics seen over all NameServers compared.
    pub brokers_compared: usize,
    pub topics_compared: usize,
    /// False when routes were not read (too many topics): only presence was compared.
    pub routes_compared: bool,
    /// brokers + topics + queueData + brokerAddrs + dataVersions entries.
    pub difference_count: usize,
    pub brokers: Vec<BrokerPresence>,
    pub topics: Vec<TopicPresence>,
    pub queue_data: Vec<ValueDiff<QueueData>>,
    pub broker_addrs: Vec<ValueDiff<BrokerAddrs>>,
    pub data_versions: Vec<DataVersionDiff>,
    /// The differences above, per broker name (not counted again in `difference_count`).
    pub by_broker_name: Vec<BrokerNameRollup>,
    /// Remarks that are not differences (e.g. a topic asked for that no NameServer has).
    pub notes: Vec<String>,
}

/// Groups `namesrvs` by the value each has, keeping the order of first appearance.
fn group<T: PartialEq + Clone>(values: &[(&str, Option<T>)]) -> Vec<ValueGroup<T>> {
    let mut groups: Vec<ValueGroup<T>> = Vec::new();
    for (namesrv, value) in values {
        match groups.iter_mut().find(|g| g.value == *value) {
            Some(g) => g.namesrvs.push(namesrv.to_string()),
            None => groups.push(ValueGroup { namesrvs: vec![namesrv.to_string()], value: value.clone() }),
        }
    }
    groups
}

/// Splits `names` into (have, lack) by `has`.
fn split_presence(names: &[&str], has: impl Fn(usize) -> bool) -> (Vec<String>, Vec<String>) {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if has(i) {
            present.push(name.to_string());
        } else {
            missing.push(name.to_string());
        }
    }
    (present, missing)
}

/// Compares the views of NameServers (name, view), in the order given. Fewer than two views
/// compare nothing (no differences).
pub fn compare(views: &[(&str, &NamesrvView)]) -> DiffReport {
    let names: Vec<&str> = views.iter().map(|(n, _)| *n).collect();
    let mut report = DiffReport {
        namesrvs: names.iter().map(|n| n.to_string()).collect(),
        routes_compared: views.iter().all(|(_, v)| v.topics.values().all(Option::is_some)),
        ..DiffReport::default()
    };
    let all_brokers: BTreeSet<&BrokerEntry> = views.iter().flat_map(|(_, v)| &v.brokers).collect();
    let all_topics: BTreeSet<&String> = views.iter().flat_map(|(_, v)| v.topics.keys()).collect();
    report.brokers_compared = all_brokers.len();
    report.topics_compared = all_topics.len();
    if views.len() < 2 {
        return report;
    }
    for broker in all_brokers {
        let (present_on, missing_on) = split_presence(&names, |i| views[i].1.brokers.contains(broker));
        if !missing_on.is_empty() {
            report.brokers.push(BrokerPresence { broker: broker.clone(), present_on, missing_on });
        }
    }
    for topic in all_topics {
        let (present_on, missing_on) = split_presence(&names, |i| views[i].1.topics.contains_key(topic));
        if !missing_on.is_empty() {
            report.topics.push(TopicPresence { topic: topic.clone(), present_on, missing_on });
            continue;
        }
        // Present everywhere: compare the routes, if every NameServer's was read.
        let routes: Option<Vec<&TopicRoute>> = views.iter().map(|(_, v)| v.topics[topic].as_ref()).collect();
        let Some(routes) = routes else { continue };
        let broker_names: BTreeSet<&String> =
            routes.iter().flat_map(|r| r.queue_datas.keys().chain(r.broker_addrs.keys())).collect();
        for broker_name in broker_names {
            let queues: Vec<(&str, Option<QueueData>)> =
                names.iter().zip(&routes).map(|(n, r)| (*n, r.queue_datas.get(broker_name).copied())).collect();
            let groups = group(&queues);
            if groups.len() > 1 {
                report.queue_data.push(ValueDiff {
                    topic: topic.clone(),
                    broker_name: broker_name.clone(),
                    values: groups,
                });
            }
            let addrs: Vec<(&str, Option<BrokerAddrs>)> =
                names.iter().zip(&routes).map(|(n, r)| (*n, r.broker_addrs.get(broker_name).cloned())).collect();
            let groups = group(&addrs);
            if groups.len() > 1 {
                report.broker_addrs.push(ValueDiff {
                    topic: topic.clone(),
                    broker_name: broker_name.clone(),
                    values: groups,
                });
            }
        }
    }
    compare_data_versions(views, &mut report);
    report.difference_count = report.brokers.len()
        + report.topics.len()
        + report.queue_data.len()
        + report.broker_addrs.len()
        + report.data_versions.len();
    report.by_broker_name = roll_up(views, &report);
    report
}

/// Data versions of the broker addresses listed by at least two NameServers that serve them;
/// NameServers that do not are named in a note.
fn compare_data_versions(views: &[(&str, &NamesrvView)], report: &mut DiffReport) {
    let serving: Vec<(&str, &BTreeMap<LiveKey, DataVersion>)> =
        views.iter().filter_map(|(n, v)| v.data_versions.as_ref().map(|d| (*n, d))).collect();
    let stock: Vec<&str> = views.iter().filter(|(_, v)| v.data_versions.is_none()).map(|(n, _)| *n).collect();
    if !stock.is_empty() {
        report.notes.push(format!(
            "data versions not compared on {} (no MERIDIAN_BROKER_LIVE_TABLE: a stock NameServer)",
            stock.join(",")
        ));
    }
    if serving.len() < 2 {
        return;
    }
    let keys: BTreeSet<&LiveKey> = serving.iter().flat_map(|(_, d)| d.keys()).collect();
    for key in keys {
        // Only where the address is live: an address missing somewhere is a presence difference.
        let values: Vec<(&str, Option<DataVersion>)> =
            serving.iter().filter_map(|(n, d)| d.get(key).map(|v| (*n, Some(*v)))).collect();
        if values.len() < 2 {
            continue;
        }
        let groups = group(&values);
        if groups.len() > 1 {
            report.data_versions.push(DataVersionDiff { cluster: key.0.clone(), addr: key.1.clone(), values: groups });
        }
    }
}

/// What differs between the queue data values of a group.
fn queue_fields(values: &[ValueGroup<QueueData>]) -> Vec<&'static str> {
    let present: Vec<&QueueData> = values.iter().filter_map(|g| g.value.as_ref()).collect();
    let mut fields = Vec::new();
    if present.len() < values.len() {
        fields.push("route absent");
    }
    type Field = fn(&QueueData) -> i32;
    let fields_of: [(&str, Field); 4] = [
        ("readQueueNums", |q| q.read_queue_nums),
        ("writeQueueNums", |q| q.write_queue_nums),
        ("perm", |q| q.perm),
        ("topicSysFlag", |q| q.topic_sys_flag),
    ];
    for (name, get) in fields_of {
        if present.windows(2).any(|w| get(w[0]) != get(w[1])) {
            fields.push(name);
        }
    }
    fields
}

/// The report's differences per broker name, in broker-name order.
fn roll_up(views: &[(&str, &NamesrvView)], report: &DiffReport) -> Vec<BrokerNameRollup> {
    #[derive(Default)]
    struct Acc {
        missing_on: BTreeSet<String>,
        topics: BTreeSet<String>,
        differs: BTreeSet<&'static str>,
    }
    let mut by_name: BTreeMap<String, Acc> = BTreeMap::new();
    for b in &report.brokers {
        let acc = by_name.entry(b.broker.broker_name.clone()).or_default();
        acc.missing_on.extend(b.missing_on.iter().cloned());
        acc.differs.insert("cluster info");
    }
    for t in &report.topics {
        // Attributed to the broker names the NameServers that have it route it to.
        for (_, view) in views.iter().filter(|(n, _)| t.present_on.iter().any(|p| p == n)) {
            if let Some(Some(route)) = view.topics.get(&t.topic) {
                for name in route.queue_datas.keys() {
                    let acc = by_name.entry(name.clone()).or_default();
                    acc.topics.insert(t.topic.clone());
                    acc.differs.insert("route absent");
                }
            }
        }
    }
    for d in &report.queue_data {
        let acc = by_name.entry(d.broker_name.clone()).or_default();
        acc.topics.insert(d.topic.clone());
        acc.differs.extend(queue_fields(&d.values));
    }
    for d in &report.broker_addrs {
        let acc = by_name.entry(d.broker_name.clone()).or_default();
        acc.topics.insert(d.topic.clone());
        acc.differs.insert(if d.values.iter().any(|g| g.value.is_none()) { "route absent" } else { "addresses" });
    }
    for d in &report.data_versions {
        let names: BTreeSet<&str> = views
            .iter()
            .flat_map(|(_, v)| &v.brokers)
            .filter(|b| b.cluster == d.cluster && b.addr == d.addr)
            .map(|b| b.broker_name.as_str())
            .collect();
        let name = names.into_iter().next().map_or_else(|| format!("({})", d.addr), str::to_string);
        by_name.entry(name).or_default().differs.insert("dataVersion");
    }
    let order = [
        "cluster info",
        "route absent",
        "readQueueNums",
        "writeQueueNums",
        "perm",
        "topicSysFlag",
        "addresses",
        "dataVersion",
    ];
    by_name
        .into_iter()
        .map(|(broker_name, acc)| BrokerNameRollup {
            broker_name,
            missing_on: views.iter().map(|(n, _)| n.to_string()).filter(|n| acc.missing_on.contains(n)).collect(),
            topics: acc.topics.len(),
            differs: order.iter().filter(|f| acc.differs.contains(*f)).map(|f| f.to_string()).collect(),
        })
        .collect()
}

impl DiffReport {
    /// Whether every NameServer was read and they all agree.
    pub fn agree(&self) -> bool {
        self.unreadable.is_empty() && self.difference_count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::render::HUMAN_ROWS_PER_KIND_MAX;
    use super::*;

    fn broker(cluster: &str, name: &str, id: i64, addr: &str) -> BrokerEntry {
        BrokerEntry { cluster: cluster.into(), broker_name: name.into(), broker_id: id, addr: addr.into() }
    }

    fn queue(n: i32, perm: i32) -> QueueData {
        QueueData { read_queue_nums: n, write_queue_nums: n, perm, topic_sys_flag: 0 }
    }

    /// A route with each (broker name, queue count, master address).
    fn route(parts: &[(&str, i32, &str)]) -> Option<TopicRoute> {
        let mut r = TopicRoute::default();
        for (name, n, addr) in parts {
            r.queue_datas.insert(name.to_string(), queue(*n, 6));
            r.broker_addrs.insert(name.to_string(), BTreeMap::from([(0, addr.to_string())]));
        }
        Some(r)
    }

    fn view(brokers: &[BrokerEntry], topics: &[(&str, Option<TopicRoute>)]) -> NamesrvView {
        NamesrvView {
            brokers: brokers.iter().cloned().collect(),
            data_versions: None,
            topics: topics.iter().map(|(t, r)| (t.to_string(), r.clone())).collect(),
        }
    }

    #[test]
    fn identical_views_agree() {
        let x = broker("c1", "bx", 0, "10.0.0.1:10911");
        let v = view(std::slice::from_ref(&x), &[("T", route(&[("bx", 4, "10.0.0.1:10911")]))]);
        let report = compare(&[("a:1", &v), ("b:1", &v.clone()), ("c:1", &v.clone())]);
        assert_eq!(report.difference_count, 0);
        assert!(report.agree());
        assert_eq!((report.brokers_compared, report.topics_compared, report.routes_compared), (1, 1, true));
        assert!(report
            .render_human()
            .starts_with("no differences: 3 NameServers (a:1, b:1, c:1), 1 broker address, 1 topic\n"));
    }

    #[test]
    fn a_partition_names_exactly_the_missing_broker_topic_and_queue_data() {
        let x = broker("c1", "bx", 0, "10.0.0.1:10911");
        let y = broker("c1", "by", 0, "10.0.0.2:10911");
        let a = view(
            &[x.clone(), y.clone()],
            &[
                ("TX", route(&[("bx", 4, "10.0.0.1:10911")])),
                ("TY", route(&[("by", 4, "10.0.0.2:10911")])),
                ("TQ", route(&[("bx", 4, "10.0.0.1:10911")])),
            ],
        );
        let b = view(
            std::slice::from_ref(&x),
            &[("TX", route(&[("bx", 4, "10.0.0.1:10911")])), ("TQ", route(&[("bx", 8, "10.0.0.1:10911")]))],
        );
        let report = compare(&[("a:1", &a), ("b:1", &b)]);
        assert_eq!(report.difference_count, 3, "{report:#?}");
        assert_eq!(report.brokers.len(), 1);
        assert_eq!(report.brokers[0].broker, y);
        assert_eq!(
            (report.brokers[0].present_on.clone(), report.brokers[0].missing_on.clone()),
            (vec!["a:1".to_string()], vec!["b:1".to_string()])
        );
        assert_eq!(report.topics.len(), 1);
        assert_eq!(report.topics[0].topic, "TY");
        assert_eq!(report.topics[0].missing_on, vec!["b:1".to_string()]);
        assert_eq!(report.queue_data.len(), 1);
        let d = &report.queue_data[0];
        assert_eq!((d.topic.as_str(), d.broker_name.as_str()), ("TQ", "bx"));
        assert_eq!(d.values.len(), 2);
        assert_eq!((d.values[0].namesrvs.clone(), d.values[0].value), (vec!["a:1".to_string()], Some(queue(4, 6))));
        assert_eq!((d.values[1].namesrvs.clone(), d.values[1].value), (vec!["b:1".to_string()], Some(queue(8, 6))));
        assert!(report.broker_addrs.is_empty());
        assert_eq!(report.summary(), "3 differences (1 broker, 1 topic, 1 queue data)");
        let human = report.render_human();
        assert!(human.contains("c1        by            0     10.0.0.2:10911  a:1         b:1"), "{human}");
        assert!(human.contains("TQ      bx            a:1           4      4       6(R|W)  0"), "{human}");
        assert!(human.contains("                      b:1           8      8       6(R|W)  0"), "{human}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["brokers"][0]["brokerName"], "by");
        assert_eq!(json["brokers"][0]["missingOn"], serde_json::json!(["b:1"]));
        assert_eq!(json["queueData"][0]["values"][1]["value"]["readQueueNums"], 8);
        assert_eq!(json["differenceCount"], 3);
    }

    #[test]
    fn the_rollup_names_each_broker_once_with_what_differs() {
        // The staged partition of interop/partition.sh: bx everywhere but its write permission
        // wiped on b; by registered with a only (its own topic TY exists on a only).
        let x = broker("c1", "bx", 0, "10.0.0.1:10911");
        let y = broker("c1", "by", 0, "10.0.0.2:10911");
        let both = route(&[("bx", 4, "10.0.0.1:10911"), ("by", 4, "10.0.0.2:10911")]);
        let mut wiped = route(&[("bx", 4, "10.0.0.1:10911")]).unwrap();
        wiped.queue_datas.get_mut("bx").unwrap().perm = 4;
        let a = view(&[x.clone(), y], &[("T", both.clone()), ("TY", route(&[("by", 4, "10.0.0.2:10911")]))]);
        let b = view(std::slice::from_ref(&x), &[("T", Some(wiped))]);
        let c = view(std::slice::from_ref(&x), &[("T", route(&[("bx", 4, "10.0.0.1:10911")]))]);
        let report = compare(&[("a:1", &a), ("b:1", &b), ("c:1", &c)]);
        let rollup: Vec<(&str, Vec<String>, usize, Vec<String>)> = report
            .by_broker_name
            .iter()
            .map(|r| (r.broker_name.as_str(), r.missing_on.clone(), r.topics, r.differs.clone()))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rollup,
            vec![("bx", vec![], 1, s(&["perm"])), ("by", s(&["b:1", "c:1"]), 2, s(&["cluster info", "route absent"])),],
            "{report:#?}"
        );
        let human = report.render_human();
        assert!(human.contains("By broker name (the tables below in short) (2):"), "{human}");
        assert!(
            human.contains("by            b:1,c:1                    2        cluster info,route absent"),
            "{human}"
        );
    }

    #[test]
    fn data_versions_are_compared_where_served_and_stock_namesrvs_are_noted() {
        let x = broker("c1", "bx", 0, "10.0.0.1:10911");
        let dv = |counter| DataVersion { state_version: 0, timestamp: 1_700_000_000_000, counter };
        let key = ("c1".to_string(), "10.0.0.1:10911".to_string());
        let mut a = view(std::slice::from_ref(&x), &[]);
        a.data_versions = Some(BTreeMap::from([(key.clone(), dv(7))]));
        let mut b = a.clone();
        b.data_versions = Some(BTreeMap::from([(key.clone(), dv(6))]));
        let stock = view(std::slice::from_ref(&x), &[]);
        let report = compare(&[("a:1", &a), ("b:1", &b), ("s:1", &stock)]);
        assert_eq!(report.difference_count, 1, "{report:#?}");
        let d = &report.data_versions[0];
        assert_eq!((d.cluster.as_str(), d.addr.as_str(), d.values.len()), ("c1", "10.0.0.1:10911", 2));
        assert_eq!((d.values[1].namesrvs.clone(), d.values[1].value), (vec!["b:1".to_string()], Some(dv(6))));
        assert_eq!(report.notes.len(), 1);
        assert!(report.notes[0].starts_with("data versions not compared on s:1"), "{:?}", report.notes);
        assert_eq!(report.by_broker_name[0].differs, vec!["dataVersion".to_string()]);
        assert_eq!(report.summary(), "1 difference (1 data version)");
        // The same version everywhere, or served by one NameServer only: nothing to report.
        let report = compare(&[("a:1", &a), ("a2:1", &a.clone()), ("s:1", &stock)]);
        assert!(report.data_versions.is_empty());
        let report = compare(&[("a:1", &a), ("s:1", &stock)]);
        assert_eq!(report.difference_count, 0);
    }

    #[test]
    fn per_broker_name_differences_group_namesrvs_by_value() {
        // Three NameServers: a and c agree, b lacks broker by in the route and lists another
        // slave address for bx.
        let full = route(&[("bx", 4, "10.0.0.1:10911"), ("by", 4, "10.0.0.2:10911")]);
        let mut partial = route(&[("bx", 4, "10.0.0.1:10911")]).unwrap();
        partial.broker_addrs.get_mut("bx").unwrap().insert(1, "10.0.0.9:10911".into());
        let a = view(&[], &[("T", full.clone())]);
        let b = view(&[], &[("T", Some(partial))]);
        let c = view(&[], &[("T", full)]);
        let report = compare(&[("a:1", &a), ("b:1", &b), ("c:1", &c)]);
        assert_eq!(report.difference_count, 3, "{report:#?}");
        // queue data of by: a,c have it, b does not.
        let q = &report.queue_data[0];
        assert_eq!(q.broker_name, "by");
        assert_eq!(q.values[0].namesrvs, vec!["a:1".to_string(), "c:1".to_string()]);
        assert_eq!((q.values[1].namesrvs.clone(), q.values[1].value), (vec!["b:1".to_string()], None));
        // addresses: bx differs (slave on b), by absent on b.
        let names: Vec<&str> = report.broker_addrs.iter().map(|d| d.broker_name.as_str()).collect();
        assert_eq!(names, ["bx", "by"]);
        assert_eq!(report.broker_addrs[0].values[1].value.as_ref().unwrap().len(), 2);
        let human = report.render_human();
        assert!(human.contains("b:1           0=10.0.0.1:10911,1=10.0.0.9:10911"), "{human}");
        assert!(human.contains("(absent)"), "{human}");
    }

    #[test]
    fn without_routes_only_presence_is_compared() {
        let a = view(&[], &[("T", None), ("U", None)]);
        let b = view(&[], &[("T", None)]);
        let report = compare(&[("a:1", &a), ("b:1", &b)]);
        assert!(!report.routes_compared);
        assert_eq!(report.difference_count, 1);
        assert_eq!(report.topics[0].topic, "U");
        assert!(report.render_human().contains("(presence only: routes not read)"));
    }

    #[test]
    fn one_view_or_an_unreadable_namesrv_is_not_agreement() {
        let v = view(&[broker("c", "b", 0, "h:1")], &[]);
        let mut report = compare(&[("a:1", &v)]);
        assert_eq!(report.difference_count, 0);
        report.unreadable.push(Unreadable { namesrv: "z:1".into(), error: "cannot connect".into() });
        assert!(!report.agree());
        let human = report.render_human();
        assert!(human.starts_with("CANNOT READ z:1: cannot connect\nnothing compared: 1 of 2"), "{human}");
    }

    #[test]
    fn long_sections_are_cut_in_the_human_report_only() {
        let topics: Vec<(String, Option<TopicRoute>)> =
            (0..HUMAN_ROWS_PER_KIND_MAX + 5).map(|i| (format!("T{i:04}"), None)).collect();
        let a = NamesrvView { topics: topics.into_iter().collect(), ..NamesrvView::default() };
        let b = NamesrvView::default();
        let report = compare(&[("a:1", &a), ("b:1", &b)]);
        assert_eq!(report.topics.len(), HUMAN_ROWS_PER_KIND_MAX + 5);
        let human = report.render_human();
        assert!(human.contains("... and 5 more (--json lists every one)"), "{human}");
        assert!(human.contains("T0099") && !human.contains("T0100"));
    }
}
