//! Immutable `RouteSnapshot`s: what every reader shard answers lookups from.
//!
//! A snapshot is the table's state as of one generation, shared rather than copied: the
//! topic index (`table::index`, `Arc`-shared shards of `Arc`-shared topic entries), the
//! broker groups, filter servers and static-topic mappings (each one `Arc`, copied by the
//! writer only when it changes one), the answer switches, and the cluster-info answer. So
//! there is one copy of the route state, and publishing costs O(shards) plus what changed.
//! A route is assembled from those pieces when first asked for, and its encoded answer is
//! kept with the topic's entry until the route changes. Never mutated after publication
//! except those once-only answer cells.

use super::table::{
    BrokerAddrKey, BrokerQueues, FilterServers, Groups, Mappings, RouteTable, TopicEntry, TopicIndex, MASTER_ID,
    PERM_WRITE,
};
use bytes::Bytes;
use meridian_protocol::body::{self, BrokerData, JsonFlavour, QueueData, TopicQueueMappingInfo, TopicRouteView};
use std::collections::BTreeMap;
use std::sync::Arc;
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

/// Switches that shape route answers, owned by the writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteBuildOptions {
    /// `orderMessageEnable`: ORDER_TOPIC_CONFIG values, by topic, go into `orderTopicConf`.
    pub order_topic_conf: Option<BTreeMap<String, String>>,
    /// `supportActingMaster`: rewrite a masterless acting-master group's smallest id as 0.
    pub support_acting_master: bool,
}

/// What routes are assembled from besides the topic's own queue data: the broker groups,
/// filter servers, static-topic mappings and answer switches. Borrowed from the table (by
/// the writer) or from a snapshot (by readers).
#[derive(Clone, Copy)]
pub struct RouteSources<'a> {
    pub groups: &'a Groups,
    pub filter_servers: &'a FilterServers,
    pub mappings: &'a Mappings,
    pub options: &'a RouteBuildOptions,
}

impl<'a> RouteSources<'a> {
    pub fn of_table(table: &'a RouteTable, options: &'a RouteBuildOptions) -> RouteSources<'a> {
        RouteSources {
            groups: table.groups_shared(),
            filter_servers: table.filter_servers_shared(),
            mappings: table.mappings_shared(),
            options,
        }
    }
}

/// One topic's route in a snapshot. Assembled on demand; its answer in each JSON flavour is
/// encoded by the first lookup that needs it and kept with the topic's entry, which later
/// snapshots share until the route changes. So a registration that changes 100k topics
/// costs the writer no route building or encoding, and memory holds answers only for
/// topics clients ask for.
pub struct Route<'s> {
    topic: &'s str,
    entry: &'s TopicEntry,
    sources: RouteSources<'s>,
}

impl<'s> Route<'s> {
    /// Generation of the snapshot that last changed this route: it changes exactly when the
    /// route may have, which is what route watchers compare.
    pub fn version(&self) -> u64 {
        self.entry.version()
    }

    pub fn model(&self) -> RouteModel {
        assemble(self.topic, self.entry.queues(), self.sources).expect("a published topic has a broker group")
    }

    /// The answer body in `flavour`, encoded once per route.
    pub fn encoded(&self, flavour: JsonFlavour) -> &'s Bytes {
        self.encoded_as(flavour, |out| Bytes::from(out.into_boxed_slice()))
    }

    /// `encoded`, sharing the bytes with any identical answer `answers` holds.
    pub fn encoded_shared(&self, flavour: JsonFlavour, answers: &AnswerInterner) -> &'s Bytes {
        self.encoded_as(flavour, |out| answers.intern(out))
    }

    /// The answer cell of `flavour`, filled by `keep` with the encoding if empty.
    fn encoded_as(&self, flavour: JsonFlavour, keep: impl FnOnce(Vec<u8>) -> Bytes) -> &'s Bytes {
        let cell = self.entry.answer_cell(flavour == JsonFlavour::Standard);
        cell.get_or_init(|| {
            let mut out = Vec::with_capacity(256);
            self.model().encode(&mut out, flavour);
            Box::new(keep(out))
        })
    }
}

/// Distinct answers an `AnswerInterner` holds at most (about 4 MiB of table on top of the
/// answers themselves, which the route entries hold anyway).
pub const ANSWERS_INTERNED_MAX: usize = 65_536;
/// Answers one sweep looks at. Each look is a likely cache miss (the answer's reference
/// count). Where most answers are distinct and held (10M entries: 1.67M topics on 2-10 of
/// 1,000 brokers), a sweep frees nothing and comes every 16k lookups: with 65,536 held
/// answers spread over the heap, a whole-table sweep stalled an insert 2.3 ms, a slice of
/// 4,096 at most 0.3 ms (more sweeps, about twice the total time).
const SWEEP_SLICE_ANSWERS: usize = 4_096;
/// Refused inserts between two sweeps of a full table: 4 looks per refused insert, as a
/// whole-table sweep per quarter of the table refused had.
const REFUSALS_PER_SWEEP: usize = 1_024;

/// Identical route answers share one allocation. A route answer does not name its topic,
/// so topics served by the same brokers with the same queue settings (most topics of a
/// cluster) answer the same bytes: one copy instead of one per topic (about 400 B each,
/// 115 of the 347 B per entry the bench's memory scenario measured with 500k topics).
/// One per shard (no lock); an answer nobody else holds any more is dropped by a sweep
/// when the table fills (a slice of it at a time, round the table), and a full table only
/// stops sharing, never answering.
#[derive(Default)]
pub struct AnswerInterner {
    table: std::cell::RefCell<InternTable>,
}

#[derive(Default)]
struct InternTable {
    by_hash: hashbrown::HashMap<u64, Bytes, foldhash::fast::FixedState>,
    /// Inserts refused since the last sweep.
    refused: usize,
    /// Where the next sweep's slice starts, in the table's iteration order.
    cursor: usize,
}

impl InternTable {
    /// Drops the answers nobody else holds among the next `SWEEP_SLICE_ANSWERS`.
    fn sweep_slice(&mut self) {
        let start = if self.cursor >= self.by_hash.len() { 0 } else { self.cursor };
        let slice = start..start + SWEEP_SLICE_ANSWERS;
        let mut position = 0;
        let dropped = self
            .by_hash
            .extract_if(|_, held| {
                position += 1;
                slice.contains(&(position - 1)) && held.is_unique()
            })
            .count();
        // Removing leaves the other entries in place: the ones after the slice move up by
        // the number dropped in the iteration order.
        self.cursor = slice.end - dropped;
    }
}

impl AnswerInterner {
    /// The answer with these bytes: a held copy, or these bytes (exact size), held from now.
    pub fn intern(&self, encoded: Vec<u8>) -> Bytes {
        use std::hash::BuildHasher;
        let hash = foldhash::fast::FixedState::default().hash_one(&encoded[..]);
        let mut table = self.table.borrow_mut();
        if let Some(held) = table.by_hash.get(&hash) {
            if held[..] == encoded[..] {
                return held.clone();
            }
            // A different answer with the same hash keeps its place; this one is not shared.
            return Bytes::from(encoded.into_boxed_slice());
        }
        let bytes = Bytes::from(encoded.into_boxed_slice());
        if table.by_hash.len() >= ANSWERS_INTERNED_MAX {
            table.refused += 1;
            if table.refused < REFUSALS_PER_SWEEP {
                return bytes;
            }
            table.refused = 0;
            table.sweep_slice();
            if table.by_hash.len() >= ANSWERS_INTERNED_MAX {
                return bytes;
            }
        }
        table.by_hash.insert(hash, bytes.clone());
        bytes
    }

    /// Answers held now.
    pub fn len(&self) -> usize {
        self.table.borrow().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct RouteSnapshot {
    /// Strictly increasing per publication.
    pub generation: u64,
    /// The table's topic index as of this generation (shards shared, see `table::index`).
    pub topics: TopicIndex,
    groups: Arc<Groups>,
    filter_servers: Arc<FilterServers>,
    mappings: Arc<Mappings>,
    options: Arc<RouteBuildOptions>,
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
            topics: TopicIndex::default(),
            groups: Arc::default(),
            filter_servers: Arc::default(),
            mappings: Arc::default(),
            options: Arc::default(),
            cluster_info: Bytes::from(cluster_info),
            not_ready_until: None,
        }
    }

    fn sources(&self) -> RouteSources<'_> {
        RouteSources {
            groups: &self.groups,
            filter_servers: &self.filter_servers,
            mappings: &self.mappings,
            options: &self.options,
        }
    }

    /// `None` = TOPIC_NOT_EXIST. A topic whose queue data names no registered group has no
    /// route either (Java's pickupTopicRouteData answers null then).
    pub fn route<'s>(&'s self, topic: &'s str) -> Option<Route<'s>> {
        let entry = self.topics.get(topic)?;
        let sources = self.sources();
        // An encoded answer proves the route exists: the check is made until one is cached.
        let answered = entry.answer_cell(true).get().is_some() || entry.answer_cell(false).get().is_some();
        (answered || entry.queues().keys().any(|name| sources.groups.contains_key(name))).then_some(Route {
            topic,
            entry,
            sources,
        })
    }

    /// Next generation: the table's current state, shared, not copied (O(shards), plus the
    /// cluster answer if the cluster view changed).
    pub fn next(
        &self,
        table: &mut RouteTable,
        options: &Arc<RouteBuildOptions>,
        not_ready_until: Option<Instant>,
    ) -> RouteSnapshot {
        let generation = table.pending_generation();
        assert!(generation > self.generation, "generation {generation} after {}", self.generation);
        let changes = table.take_changes();
        RouteSnapshot {
            generation,
            topics: table.topic_index().clone(),
            groups: table.groups_shared().clone(),
            filter_servers: table.filter_servers_shared().clone(),
            mappings: table.mappings_shared().clone(),
            options: options.clone(),
            cluster_info: if changes.cluster { build_cluster_info(table) } else { self.cluster_info.clone() },
            not_ready_until,
        }
    }

    /// Whether a reader could tell `self` from `other`.
    pub fn same_content(&self, other: &RouteSnapshot) -> bool {
        self.topics.ptr_eq(&other.topics)
            && Arc::ptr_eq(&self.groups, &other.groups)
            && Arc::ptr_eq(&self.filter_servers, &other.filter_servers)
            && Arc::ptr_eq(&self.mappings, &other.mappings)
            && Arc::ptr_eq(&self.options, &other.options)
            && self.cluster_info == other.cluster_info
            && self.not_ready_until == other.not_ready_until
    }
}

/// Route assembly from the table as it is now (the writer's view; tests compare snapshots
/// with it). `None` = TOPIC_NOT_EXIST.
pub fn build_topic_route(table: &RouteTable, topic: &str, options: &RouteBuildOptions) -> Option<RouteModel> {
    assemble(topic, table.topic_queue_datas(topic)?, RouteSources::of_table(table, options))
}

/// Route assembly (Java's RouteInfoManager.pickupTopicRouteData); `None` = TOPIC_NOT_EXIST.
fn assemble(topic: &str, per_broker: &BrokerQueues, sources: RouteSources<'_>) -> Option<RouteModel> {
    let queue_datas: Vec<QueueData> = per_broker.values().cloned().collect();
    let mut broker_datas: Vec<Arc<BrokerData>> = Vec::with_capacity(per_broker.len());
    broker_datas.extend(per_broker.keys().filter_map(|name| sources.groups.get(name)).cloned());
    if broker_datas.is_empty() {
        return None;
    }
    let mut filter_server_table = Vec::new();
    if !sources.filter_servers.is_empty() {
        for bd in &broker_datas {
            for addr in bd.broker_addrs.values() {
                let key = BrokerAddrKey { cluster: bd.cluster.clone(), addr: addr.clone() };
                if let Some(list) = sources.filter_servers.get(&key) {
                    filter_server_table.push((addr.clone(), list.clone()));
                }
            }
        }
    }
    let options = sources.options;
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
    Some(RouteModel {
        broker_datas,
        queue_datas,
        filter_server_table,
        order_topic_conf: options.order_topic_conf.as_ref().and_then(|m| m.get(topic).cloned()),
        topic_queue_mapping_by_broker: sources
            .mappings
            .get(topic)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_answers_share_one_allocation() {
        let answers = AnswerInterner::default();
        let a = answers.intern(b"{\"queueDatas\":[1]}".to_vec());
        let b = answers.intern(b"{\"queueDatas\":[1]}".to_vec());
        let c = answers.intern(b"{\"queueDatas\":[2]}".to_vec());
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes are one copy");
        assert_ne!(a.as_ptr(), c.as_ptr());
        assert_eq!((&a[..], &c[..]), (&b"{\"queueDatas\":[1]}"[..], &b"{\"queueDatas\":[2]}"[..]));
        assert_eq!(answers.len(), 2);
    }

    #[test]
    fn a_full_table_drops_answers_nobody_holds_a_slice_at_a_time_and_keeps_answering() {
        let answers = AnswerInterner::default();
        let mut held: Vec<Bytes> =
            (0..ANSWERS_INTERNED_MAX).map(|i| answers.intern(format!("{i}").into_bytes())).collect();
        assert_eq!(answers.len(), ANSWERS_INTERNED_MAX);
        // Full and every answer held: new ones are answered, not shared, and sweeps free nothing.
        for i in 0..REFUSALS_PER_SWEEP * 3 {
            assert_eq!(answers.intern(format!("fresh {i}").into_bytes()), format!("fresh {i}").as_bytes());
        }
        assert_eq!(answers.len(), ANSWERS_INTERNED_MAX);
        // Let go of every other answer: each sweep drops at most a slice of them.
        let kept: Vec<Bytes> = held.drain(..).step_by(2).collect();
        let before = answers.len();
        for i in 0..REFUSALS_PER_SWEEP {
            answers.intern(format!("new {i}").into_bytes());
        }
        let first_sweep = before - answers.len();
        assert!(first_sweep > 0 && first_sweep <= SWEEP_SLICE_ANSWERS, "one slice swept: {first_sweep}");
        // Round the table, the unheld ones go and sharing resumes; the held ones stay shared.
        let rounds = ANSWERS_INTERNED_MAX / SWEEP_SLICE_ANSWERS * 4;
        for i in 0..rounds * REFUSALS_PER_SWEEP {
            drop(answers.intern(format!("more {i}").into_bytes()));
        }
        assert!(answers.len() <= ANSWERS_INTERNED_MAX);
        // Unheld answers keep being swept, so a new one is shared within a sweep's refusals.
        let shared = (0..=REFUSALS_PER_SWEEP).any(|_| {
            let again = answers.intern(b"again".to_vec());
            again.as_ptr() == answers.intern(b"again".to_vec()).as_ptr()
        });
        assert!(shared, "a new answer is shared again once a sweep made room");
        for (i, answer) in kept.iter().enumerate() {
            assert_eq!(answers.intern(format!("{}", i * 2).into_bytes()).as_ptr(), answer.as_ptr());
        }
    }
}
