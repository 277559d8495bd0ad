//! Immutable `RouteSnapshot`s: what every reader shard answers lookups from.
//!
//! A snapshot holds, per topic, the route model (pointers to shared broker data, queue data)
//! and its answer in each JSON flavour, encoded on first use and then kept with the route,
//! which later snapshots share until the topic changes; plus the cluster-info answer and
//! the few switches a lookup needs. It is built by the writer from the previous snapshot plus the
//! table's recorded changes: the topic map is a persistent (structurally shared) map, so a
//! publish costs what changed, not the table size. Never mutated after publication.

use super::table::{RouteTable, TopicName, MASTER_ID, PERM_WRITE};
use bytes::Bytes;
use meridian_protocol::body::{self, BrokerData, JsonFlavour, QueueData, TopicQueueMappingInfo, TopicRouteView};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Topics brokers use to sync acting-master membership; Java never rewrites their routes.
const SYNC_BROKER_MEMBER_GROUP_PREFIX: &str = "rmq_sys_SYNC_BROKER_MEMBER_";

/// Shared publication point: readers `load` (lock-free), the writer `store`s (latest wins).
pub type SnapshotCell = Arc<arc_swap::ArcSwap<RouteSnapshot>>;

/// What a route answer contains, kept so that zone-filtered answers can be cut from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteModel {
    /// Shared with the table (and every route of the group) unless rewritten for this topic.
    pub broker_datas: Vec<Arc<BrokerData>>,
    pub queue_datas: Vec<QueueData>,
    pub filter_server_table: Vec<(String, Vec<String>)>,
    pub order_topic_conf: Option<String>,
    pub topic_queue_mapping_by_broker: Vec<(String, TopicQueueMappingInfo)>,
}

impl RouteModel {
    pub fn encode(&self, out: &mut Vec<u8>, flavour: JsonFlavour) {
        let brokers: Vec<&BrokerData> = self.broker_datas.iter().map(|b| &**b).collect();
        let queues: Vec<&QueueData> = self.queue_datas.iter().collect();
        let filters: Vec<(&str, &[String])> =
            self.filter_server_table.iter().map(|(a, l)| (a.as_str(), l.as_slice())).collect();
        let mapping: Vec<(&str, &TopicQueueMappingInfo)> =
            self.topic_queue_mapping_by_broker.iter().map(|(b, m)| (b.as_str(), m)).collect();
        let view = TopicRouteView {
            broker_datas: &brokers,
            queue_datas: &queues,
            filter_server_table: &filters,
            order_topic_conf: self.order_topic_conf.as_deref(),
            topic_queue_mapping_by_broker: &mapping,
        };
        body::encode_topic_route(out, &view, flavour);
    }

    /// Zone filtering (Java's ZoneRouteRPCHook): keep broker groups in the caller's zone
    /// (case-insensitive) or without a master; drop the others with their queue data and
    /// their addresses' filter servers. Java re-encodes the result in the legacy flavour.
    pub fn zone_filtered(&self, zone: &str) -> RouteModel {
        let mut out = self.clone();
        let mut dropped_names = Vec::new();
        let mut dropped_addrs = Vec::new();
        out.broker_datas.retain(|bd| {
            let keep = bd.zone_name.as_deref().is_some_and(|z| z.eq_ignore_ascii_case(zone))
                || !bd.broker_addrs.contains_key(&MASTER_ID);
            if !keep {
                dropped_names.push(bd.broker_name.clone());
                dropped_addrs.extend(bd.broker_addrs.values().cloned());
            }
            keep
        });
        out.queue_datas.retain(|qd| !dropped_names.iter().any(|n: &String| **n == *qd.broker_name));
        out.filter_server_table.retain(|(addr, _)| !dropped_addrs.contains(addr));
        out
    }
}

/// One topic's answer.
///
/// The encoded forms are filled on first lookup (by whichever shard asks first) rather than
/// by the writer: a registration that changes 100k topics then costs the writer no encoding,
/// and memory holds encoded answers only for topics clients ask for.
#[derive(Debug)]
pub struct TopicRoute {
    pub model: RouteModel,
    /// Generation of the snapshot that built this route: it changes exactly when the route
    /// is rebuilt, which is what route watchers compare (0 until published).
    pub version: u64,
    /// For request version ≥ 401 or `acceptStandardJsonOnly=true`.
    standard: OnceLock<Bytes>,
    /// fastjson default form, for older clients.
    legacy: OnceLock<Bytes>,
}

impl TopicRoute {
    pub fn new(model: RouteModel) -> TopicRoute {
        TopicRoute { model, version: 0, standard: OnceLock::new(), legacy: OnceLock::new() }
    }

    /// The answer body in `flavour`, encoded once per route.
    pub fn encoded(&self, flavour: JsonFlavour) -> &Bytes {
        let cell = match flavour {
            JsonFlavour::Standard => &self.standard,
            JsonFlavour::Legacy => &self.legacy,
        };
        cell.get_or_init(|| {
            let mut out = Vec::with_capacity(256);
            self.model.encode(&mut out, flavour);
            Bytes::from(out)
        })
    }
}

/// Shards of a `TopicMap`. More shards: less copied per changed topic, more `Arc`s per
/// publish (one refcount bump each).
const TOPIC_MAP_SHARDS: usize = 256;

type TopicShard = std::collections::HashMap<TopicName, Arc<TopicRoute>, foldhash::fast::RandomState>;

/// The topic map of a snapshot: `TOPIC_MAP_SHARDS` hash maps, each shared (`Arc`) with the
/// previous snapshot until a publish changes one of its topics, which copies that shard
/// only. A persistent HAMT (im) was used before: it cost 336 bytes per topic in sparse
/// fixed-size nodes, against about 30 here, and a lookup chased four nodes instead of one.
/// The price: a changed topic copies its shard (table size / 256 entries), so publication
/// cost grows with the table, slowly (about 60 µs per changed shard at 1M topics).
#[derive(Debug, Clone)]
pub struct TopicMap {
    hasher: foldhash::fast::RandomState,
    shards: Vec<Arc<TopicShard>>,
    len: usize,
}

impl Default for TopicMap {
    fn default() -> TopicMap {
        let hasher = foldhash::fast::RandomState::default();
        let shard = Arc::new(TopicShard::with_hasher(hasher.clone()));
        TopicMap { hasher, shards: vec![shard; TOPIC_MAP_SHARDS], len: 0 }
    }
}

impl TopicMap {
    fn shard_of(&self, topic: &str) -> usize {
        use std::hash::BuildHasher;
        // High bits pick the shard; the shard's own table uses the same hash's low bits.
        (self.hasher.hash_one(topic) >> 56) as usize % TOPIC_MAP_SHARDS
    }

    pub fn get(&self, topic: &str) -> Option<&Arc<TopicRoute>> {
        self.shards[self.shard_of(topic)].get(topic)
    }

    pub fn insert(&mut self, topic: TopicName, route: Arc<TopicRoute>) {
        let i = self.shard_of(&topic);
        // Copies the shard only if an older snapshot still shares it.
        if Arc::make_mut(&mut self.shards[i]).insert(topic, route).is_none() {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, topic: &str) {
        let i = self.shard_of(topic);
        if !self.shards[i].contains_key(topic) {
            return;
        }
        if Arc::make_mut(&mut self.shards[i]).remove(topic).is_some() {
            self.len -= 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Grows each shard once for the topics about to be inserted (a 100k-topic registration
    /// would otherwise rehash every shard several times).
    pub fn reserve_for<'t>(&mut self, topics: impl Iterator<Item = &'t str>) {
        let mut per_shard = [0usize; TOPIC_MAP_SHARDS];
        for topic in topics {
            per_shard[self.shard_of(topic)] += 1;
        }
        for (shard, &n) in self.shards.iter_mut().zip(&per_shard) {
            // Small batches: not worth copying a shared shard early (insert does it anyway).
            if n >= 64 {
                Arc::make_mut(shard).reserve(n);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether both hold the very same shards (so no reader could tell them apart).
    pub fn ptr_eq(&self, other: &TopicMap) -> bool {
        self.shards.iter().zip(&other.shards).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Switches that shape route answers, owned by the writer.
#[derive(Debug, Clone, Default)]
pub struct RouteBuildOptions {
    /// `orderMessageEnable`: ORDER_TOPIC_CONFIG values, by topic, go into `orderTopicConf`.
    pub order_topic_conf: Option<BTreeMap<String, String>>,
    /// `supportActingMaster`: rewrite a masterless acting-master group's smallest id as 0.
    pub support_acting_master: bool,
}

#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    /// Strictly increasing per publication.
    pub generation: u64,
    pub topics: TopicMap,
    /// GET_BROKER_CLUSTER_INFO body (always the legacy flavour, as Java answers).
    pub cluster_info: Bytes,
    /// `needWaitForService`: route lookups answer "name server not ready" until then.
    pub not_ready_until: Option<Instant>,
}

impl RouteSnapshot {
    pub fn empty() -> RouteSnapshot {
        let mut cluster_info = Vec::new();
        body::encode_cluster_info(&mut cluster_info, &[], &[]);
        RouteSnapshot {
            generation: 0,
            topics: TopicMap::default(),
            cluster_info: Bytes::from(cluster_info),
            not_ready_until: None,
        }
    }

    pub fn route(&self, topic: &str) -> Option<&Arc<TopicRoute>> {
        self.topics.get(topic)
    }

    /// Next generation: the previous snapshot with the table's recorded changes applied.
    pub fn next(
        &self,
        table: &mut RouteTable,
        options: &RouteBuildOptions,
        not_ready_until: Option<Instant>,
    ) -> RouteSnapshot {
        let changes = table.take_changes();
        let mut next = self.clone();
        next.generation = self.generation + 1;
        next.not_ready_until = not_ready_until;
        next.topics.reserve_for(changes.topics.iter().map(|t| &**t));
        for topic in changes.topics {
            match build_topic_route(table, &topic, options) {
                Some(mut route) => {
                    route.version = next.generation;
                    next.topics.insert(topic, Arc::new(route));
                }
                None => {
                    next.topics.remove(&topic);
                }
            }
        }
        if changes.cluster {
            next.cluster_info = build_cluster_info(table);
        }
        assert!(next.generation > self.generation, "generation {} after {}", next.generation, self.generation);
        next
    }

    /// Whether a reader could tell `self` from `other`.
    pub fn same_content(&self, other: &RouteSnapshot) -> bool {
        self.topics.ptr_eq(&other.topics)
            && self.cluster_info == other.cluster_info
            && self.not_ready_until == other.not_ready_until
    }
}

/// Route assembly (Java's RouteInfoManager.pickupTopicRouteData); `None` = TOPIC_NOT_EXIST.
pub fn build_topic_route(table: &RouteTable, topic: &str, options: &RouteBuildOptions) -> Option<TopicRoute> {
    let per_broker = table.topic_queue_datas(topic)?;
    let queue_datas: Vec<QueueData> = per_broker.values().cloned().collect();
    let mut broker_datas: Vec<Arc<BrokerData>> = Vec::with_capacity(per_broker.len());
    broker_datas.extend(per_broker.keys().filter_map(|name| table.broker_data(name)).cloned());
    if broker_datas.is_empty() {
        return None;
    }
    let mut filter_server_table = Vec::new();
    if table.has_filter_servers() {
        for bd in &broker_datas {
            for addr in bd.broker_addrs.values() {
                if let Some(list) = table.filter_servers(&bd.cluster, addr) {
                    filter_server_table.push((addr.clone(), list.clone()));
                }
            }
        }
    }
    if options.support_acting_master && !topic.starts_with(SYNC_BROKER_MEMBER_GROUP_PREFIX) {
        for bd in &mut broker_datas {
            if bd.broker_addrs.is_empty() || bd.broker_addrs.contains_key(&MASTER_ID) || !bd.enable_acting_master {
                continue;
            }
            let writable =
                queue_datas.iter().find(|q| *q.broker_name == *bd.broker_name).map(|q| q.perm & PERM_WRITE != 0);
            if writable == Some(false) {
                // This topic's answer differs from the group's: it gets its own copy.
                let bd = Arc::make_mut(bd);
                let min_id = *bd.broker_addrs.keys().next().expect("checked non-empty");
                let addr = bd.broker_addrs.remove(&min_id).expect("key just read");
                bd.broker_addrs.insert(MASTER_ID, addr);
            }
        }
    }
    let model = RouteModel {
        broker_datas,
        queue_datas,
        filter_server_table,
        order_topic_conf: options.order_topic_conf.as_ref().and_then(|m| m.get(topic).cloned()),
        topic_queue_mapping_by_broker: table
            .topic_mapping(topic)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    };
    Some(TopicRoute::new(model))
}

fn build_cluster_info(table: &RouteTable) -> Bytes {
    let brokers: Vec<&BrokerData> = table.brokers().values().map(|b| &**b).collect();
    let names: Vec<(&str, Vec<&str>)> =
        table.clusters().iter().map(|(c, set)| (c.as_str(), set.iter().map(|s| s.as_str()).collect())).collect();
    let clusters: Vec<(&str, &[&str])> = names.iter().map(|(c, v)| (*c, v.as_slice())).collect();
    let mut out = Vec::new();
    body::encode_cluster_info(&mut out, &brokers, &clusters);
    Bytes::from(out)
}
