//! Immutable `RouteSnapshot`s: what every reader shard answers lookups from.
//!
//! A snapshot holds, per topic, the route answer already encoded in both JSON flavours, and
//! the cluster-info answer. It is built by the writer from the previous snapshot plus the
//! table's recorded changes: the topic map is a persistent (structurally shared) map, so a
//! publish costs what changed, not the table size. Never mutated after publication.

use super::table::RouteTable;
use crate::protocol::body::{self, BrokerData, JsonFlavour, QueueData, TopicRouteView};
use bytes::Bytes;
use std::sync::Arc;

/// Both encodings of one topic's TopicRouteData.
#[derive(Debug)]
pub struct TopicRoute {
    /// For request version ≥ 401 or `acceptStandardJsonOnly=true`.
    pub standard: Bytes,
    /// fastjson default form, for older clients.
    pub legacy: Bytes,
}

#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    /// Strictly increasing per publication.
    pub generation: u64,
    pub topics: im::HashMap<Arc<str>, Arc<TopicRoute>>,
    /// GET_BROKER_CLUSTER_INFO body (always the legacy flavour, as Java answers).
    pub cluster_info: Bytes,
}

impl RouteSnapshot {
    pub fn empty() -> RouteSnapshot {
        let mut cluster_info = Vec::new();
        body::encode_cluster_info(&mut cluster_info, &[], &[]);
        RouteSnapshot { generation: 0, topics: im::HashMap::new(), cluster_info: Bytes::from(cluster_info) }
    }

    pub fn route(&self, topic: &str) -> Option<&Arc<TopicRoute>> {
        self.topics.get(topic)
    }

    /// Next generation: the previous snapshot with the table's recorded changes applied.
    pub fn next(&self, table: &mut RouteTable) -> RouteSnapshot {
        let changes = table.take_changes();
        let mut next = self.clone();
        next.generation = self.generation + 1;
        for topic in changes.topics {
            match build_topic_route(table, &topic) {
                Some(route) => {
                    next.topics.insert(Arc::from(topic.as_str()), Arc::new(route));
                }
                None => {
                    next.topics.remove(topic.as_str());
                }
            }
        }
        if changes.cluster {
            next.cluster_info = build_cluster_info(table);
        }
        assert!(next.generation > self.generation, "generation {} after {}", next.generation, self.generation);
        next
    }
}

/// Route assembly (behaviour.md §7 steps 1–5); `None` = TOPIC_NOT_EXIST.
pub fn build_topic_route(table: &RouteTable, topic: &str) -> Option<TopicRoute> {
    let per_broker = table.topic_queue_datas(topic)?;
    let queue_datas: Vec<&QueueData> = per_broker.values().collect();
    let broker_datas: Vec<&BrokerData> = per_broker.keys().filter_map(|name| table.broker_data(name)).collect();
    if broker_datas.is_empty() {
        return None;
    }
    let mut filter_entries: Vec<(&str, &[String])> = Vec::new();
    if table.has_filter_servers() {
        for bd in &broker_datas {
            for addr in bd.broker_addrs.values() {
                if let Some(list) = table.filter_servers(&bd.cluster, addr) {
                    filter_entries.push((addr.as_str(), list.as_slice()));
                }
            }
        }
    }
    let mapping: Vec<(&str, &body::TopicQueueMappingInfo)> =
        table.topic_mapping(topic).map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect()).unwrap_or_default();
    let view = TopicRouteView {
        broker_datas: &broker_datas,
        queue_datas: &queue_datas,
        filter_server_table: &filter_entries,
        order_topic_conf: None,
        topic_queue_mapping_by_broker: &mapping,
    };
    let mut standard = Vec::with_capacity(256);
    body::encode_topic_route(&mut standard, &view, JsonFlavour::Standard);
    let mut legacy = Vec::with_capacity(standard.len());
    body::encode_topic_route(&mut legacy, &view, JsonFlavour::Legacy);
    Some(TopicRoute { standard: Bytes::from(standard), legacy: Bytes::from(legacy) })
}

fn build_cluster_info(table: &RouteTable) -> Bytes {
    let brokers: Vec<&BrokerData> = table.brokers().values().collect();
    let names: Vec<(&str, Vec<&str>)> =
        table.clusters().iter().map(|(c, set)| (c.as_str(), set.iter().map(|s| s.as_str()).collect())).collect();
    let clusters: Vec<(&str, &[&str])> = names.iter().map(|(c, v)| (*c, v.as_slice())).collect();
    let mut out = Vec::new();
    body::encode_cluster_info(&mut out, &brokers, &clusters);
    Bytes::from(out)
}
