//! The mutable truth: topics, brokers, clusters, liveness and filter servers, with the
//! registration / unregistration / expiry rules of Java's `RouteInfoManager`.
//!
//! Pure: every function that needs time takes `now_ms`; nothing here does I/O. Only the
//! writer owns a `RouteTable` (`&mut self` everywhere). Each change records which topics
//! (and whether the cluster view) changed, so a snapshot costs what changed, not the table.
//! Registration step numbers refer to the list in `register`.

use super::ConnId;
use group_topics::GroupTopics;
use meridian_protocol::body::{BrokerData, DataVersion, QueueData, RegisterBrokerBody, TopicQueueMappingInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

mod delta;
mod group_topics;
mod image;
mod index;
mod queries;
mod register;
mod unregister;
pub use image::{Restored, SavedLive, TableImage};
pub use index::{TopicEntry, TopicIndex, INDEX_SHARDS};

/// Hash maps keyed by peer-supplied names: foldhash (seeded per process) instead of SipHash,
/// which was the largest single cost of applying a 60k-topic registration.
/// hashbrown rather than std's wrapper for `entry_ref`: one hash of a topic name finds its
/// entry or the place to insert it, allocating the shared name only then.
pub type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<T> = hashbrown::HashSet<T, foldhash::fast::RandomState>;

/// A topic name, allocated once and shared by the table, the change set and every snapshot.
pub type TopicName = Arc<str>;

/// One topic's QueueData per broker name, sorted by name. A topic usually lives on 1–3
/// broker groups: up to two are held inline in the topic's entry (no allocation, and no
/// pointer to chase when a re-send compares them), more spill to the heap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerQueues(smallvec::SmallVec<[QueueData; 2]>);

impl BrokerQueues {
    fn position(&self, broker_name: &str) -> Result<usize, usize> {
        // A registration's queue data share the table's one name per group (`group_name`):
        // the same pointer settles the search without comparing bytes.
        // Only for the usual few groups: a topic on every broker stays a binary search.
        let same = |q: &QueueData| std::ptr::eq(q.broker_name.as_ptr(), broker_name.as_ptr());
        if self.0.len() <= 16 {
            if let Some(i) = self.0.iter().position(|q| same(q) && q.broker_name.len() == broker_name.len()) {
                return Ok(i);
            }
        }
        self.0.binary_search_by(|q| (*q.broker_name).cmp(broker_name))
    }

    pub fn get(&self, broker_name: &str) -> Option<&QueueData> {
        self.position(broker_name).ok().map(|i| &self.0[i])
    }

    pub fn get_mut(&mut self, broker_name: &str) -> Option<&mut QueueData> {
        self.position(broker_name).ok().map(|i| &mut self.0[i])
    }

    pub fn contains_key(&self, broker_name: &str) -> bool {
        self.position(broker_name).is_ok()
    }

    /// Inserts or replaces the entry of `qd.broker_name`; returns the replaced one.
    pub fn insert(&mut self, qd: QueueData) -> Option<QueueData> {
        match self.position(&qd.broker_name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i], qd)),
            Err(i) => {
                self.0.insert(i, qd);
                None
            }
        }
    }

    pub fn remove(&mut self, broker_name: &str) -> Option<QueueData> {
        self.position(broker_name).ok().map(|i| self.0.remove(i))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|q| &*q.broker_name)
    }

    /// In broker-name order.
    pub fn values(&self) -> std::slice::Iter<'_, QueueData> {
        self.0.iter()
    }
}

// One definition of each, in the wire crate (Java's PermName and MixAll.MASTER_ID).
pub use meridian_protocol::body::MASTER_ID;
pub use meridian_protocol::perm::{READ as PERM_READ, WRITE as PERM_WRITE};

/// Live-table key: 5.x keys liveness by (clusterName, brokerAddr).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerAddrKey {
    pub cluster: String,
    pub addr: String,
}

#[derive(Debug, Clone)]
pub struct LiveInfo {
    pub last_update_ms: u64,
    pub timeout_ms: u64,
    pub data_version: DataVersion,
    /// The connection the broker last registered on; its close unregisters the broker.
    pub conn: ConnId,
    pub ha_server_addr: String,
    /// The broker's queue data is what its last full registration left: no queue data of
    /// its group was removed since by anything else (see `RegisterBroker::topics_unchanged`).
    pub topics_intact: bool,
    /// `RegisterBroker::body_fingerprint` of the last registration applied in full.
    pub body_fingerprint: u64,
    /// Loaded from the warm-restart file and not heard from since (no connection, served
    /// like a live broker until it registers, heartbeats or expires; see `image`).
    pub provisional: bool,
}

/// REGISTER_BROKER after header and body decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBroker {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    pub heartbeat_timeout_ms: Option<u64>,
    /// `None` = header absent = a 4.x ("old version") broker.
    pub enable_acting_master: Option<bool>,
    pub zone_name: Option<String>,
    pub body: RegisterBrokerBody,
    /// The body was read only up to its data version, which equals the one last registered
    /// on this connection: `body.topic_configs` is empty and stands for "as before". Java
    /// would change no topic for such a re-send (registration step 10), provided the
    /// broker's queue data is intact; otherwise the table answers `NeedFullBody`.
    pub topics_unchanged: bool,
    /// Identifies the body's bytes (length and CRC; 0 = unknown). An unread re-send stands
    /// for "as before" only if it is the body last applied in full for this address.
    pub body_fingerprint: u64,
    /// A hash of this body's topic-table member fingerprints, when the receiving shard kept
    /// them: the next body from this broker may be sent as a delta against this one.
    pub prints_token: Option<u64>,
    /// The topics as a delta against the body whose `prints_token` was `base`
    /// (`body.topic_configs` is then empty). Applied only to a list built from exactly that
    /// body (`GroupTopics::delta_base`); otherwise the table answers `NeedFullBody`.
    pub delta: Option<Delta>,
}

/// `RegisterBroker::delta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub base: u64,
    pub topics: meridian_protocol::body::TopicsDelta,
}

impl RegisterBroker {
    /// The topics the body lists (a delta stands for its members).
    pub fn topic_count(&self) -> usize {
        self.delta.as_ref().map_or(self.body.topic_configs.len(), |d| d.topics.members)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// SUCCESS; the addresses are set only for a slave whose master is registered and alive.
    Accepted { master_addr: Option<String>, ha_server_addr: Option<String> },
    /// SYSTEM_ERROR with this remark; nothing was changed.
    Refused(String),
    /// A `topics_unchanged` registration that cannot be applied as such (new data version,
    /// first registration, queue data removed meanwhile): send the decoded body. Nothing
    /// was changed.
    NeedFullBody,
}

/// What the last accepted registration did to its broker group's queue data: topics
/// that gained it, lost it (`deleteTopicWithBrokerRegistration`) or had it changed.
/// Counts only; all zero for a registration that writes no topics (a slave).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

/// One broker address to remove (UNREGISTER_BROKER, expiry, connection close).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unregister {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
}

/// A broker address the expiry scan removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub broker: Unregister,
    /// The connection it last registered on (the writer has it closed).
    pub conn: ConnId,
    /// How long it had been silent when the scan ran, and the timeout that was exceeded.
    pub silent_ms: u64,
    pub timeout_ms: u64,
}

/// Limits the table enforces on peers.
#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    pub topics_max: usize,
    pub brokers_max: usize,
    pub broker_timeout_default_ms: u64,
}

/// Switches of Java's NamesrvConfig that change table rules; the writer keeps them current.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableOptions {
    /// `deleteTopicWithBrokerRegistration`: a registration from the topic writer first
    /// removes the group's topics its body no longer lists (registration step 10).
    pub delete_topic_with_broker_registration: bool,
    /// Record NOTIFY_MIN_BROKER_ID_CHANGE notifications (`notifyMinBrokerIdChanged`).
    pub notify_min_broker_id_changed: bool,
}

/// What changed since the last `take_changes`: whether any topic's route did (each changed
/// topic's entry carries the generation being built, see `index`), and the cluster view.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub topics: bool,
    pub cluster: bool,
}

/// Broker groups by name. Behind an `Arc` that snapshots share; copied on a group change.
pub type Groups = BTreeMap<String, Arc<BrokerData>>;
/// Filter servers by broker address (`Arc`-shared with snapshots like `Groups`).
pub type FilterServers = HashMap<BrokerAddrKey, Vec<String>>;
/// topic -> brokerName -> static-topic mapping (`Arc`-shared with snapshots like `Groups`).
pub type Mappings = HashMap<String, BTreeMap<String, TopicQueueMappingInfo>>;

/// A NOTIFY_MIN_BROKER_ID_CHANGE (905) to send, one-way, to each target address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinIdNotification {
    pub targets: Vec<String>,
    pub min_broker_id: i64,
    pub min_broker_addr: String,
    /// Unregister path: the address that went away.
    pub offline_broker_addr: Option<String>,
    /// Register path: the registering broker's HA address.
    pub ha_broker_addr: Option<String>,
}

/// Which unit flag a unit topic list selects (codes 311, 312, 313).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitList {
    /// 311: topicSysFlag bit 0 (UNIT).
    Unit,
    /// 312: bit 1 (UNIT_SUB).
    HasUnitSub,
    /// 313: bit 1 set and bit 0 clear.
    HasUnitSubNotUnit,
}

/// TopicSysFlag bits (Java's TopicSysFlag: FLAG_UNIT 0x1, FLAG_UNIT_SUB 0x2).
const FLAG_UNIT: i32 = 1;
const FLAG_UNIT_SUB: i32 = 2;

pub struct RouteTable {
    limits: TableLimits,
    /// topic -> brokerName -> QueueData, shared with snapshots (see `index`).
    topic_queue: TopicIndex,
    /// brokerName -> BrokerData; each group an `Arc` replaced on change, the map itself
    /// shared with snapshots and copied only when a group changes.
    broker_addr: Arc<Groups>,
    /// clusterName -> brokerNames.
    cluster_addr: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<BrokerAddrKey, LiveInfo>,
    filter_servers: Arc<FilterServers>,
    mapping: Arc<Mappings>,
    /// brokerName -> topics that have its QueueData: reverse index of `topic_queue`, so a
    /// broker change touches only its own topics, in its last body's order (`group_topics`).
    broker_topics: FastMap<String, GroupTopics>,
    /// brokerName -> the one shared name its queue data carry (see `BrokerQueues::position`);
    /// kept while the group exists.
    group_names: FastMap<String, Arc<str>>,
    changes: Changes,
    /// The generation the next snapshot will have: entries changed now carry it.
    stamp: u64,
    options: TableOptions,
    notifications: Vec<MinIdNotification>,
    /// What the last `register_broker` did to queue data (`last_topic_counts`).
    last_topic_counts: TopicCounts,
}

/// What `put_queue_data` did to a topic's entry for the queue data's broker name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Put {
    Same,
    Added,
    Changed,
}

impl RouteTable {
    pub fn new(limits: TableLimits) -> RouteTable {
        RouteTable {
            limits,
            topic_queue: TopicIndex::default(),
            broker_addr: Arc::default(),
            cluster_addr: BTreeMap::new(),
            live: HashMap::new(),
            filter_servers: Arc::default(),
            mapping: Arc::default(),
            broker_topics: FastMap::default(),
            group_names: FastMap::default(),
            changes: Changes::default(),
            stamp: 1,
            options: TableOptions::default(),
            notifications: Vec::new(),
            last_topic_counts: TopicCounts::default(),
        }
    }

    /// Queue data added, removed and changed by the last `register_broker` (zero if it
    /// was refused or changed no topic).
    pub fn last_topic_counts(&self) -> TopicCounts {
        self.last_topic_counts
    }

    pub fn set_options(&mut self, options: TableOptions) {
        self.options = options;
    }

    /// NOTIFY_MIN_BROKER_ID_CHANGE messages recorded since the last call.
    pub fn take_notifications(&mut self) -> Vec<MinIdNotification> {
        std::mem::take(&mut self.notifications)
    }

    /// Marks a topic's route as changed for reasons outside the table (e.g. its
    /// orderTopicConf in the KV config).
    pub fn mark_topic_changed(&mut self, topic: &str) {
        self.touch(topic);
    }

    /// Marks every route as changed (a switch that shapes every answer was flipped).
    pub fn mark_all_topics_changed(&mut self) {
        let names: Vec<TopicName> = self.topic_queue.iter().map(|(n, _)| n.clone()).collect();
        for name in names {
            self.touch(&name);
        }
    }

    /// What changed since the last call; the generation being built is then published as
    /// `generation()` and later changes carry the next one.
    pub fn take_changes(&mut self) -> Changes {
        self.stamp += 1;
        std::mem::take(&mut self.changes)
    }

    /// The generation of the next snapshot: what `take_changes` will hand over.
    pub fn pending_generation(&self) -> u64 {
        self.stamp
    }

    /// Topics whose route changed since the last `take_changes` (O(table); tests and checks).
    pub fn changed_topics(&self) -> FastSet<TopicName> {
        self.topic_queue.changed_in(self.stamp).into_iter().cloned().collect()
    }

    /// The shared pieces a snapshot holds.
    pub fn topic_index(&self) -> &TopicIndex {
        &self.topic_queue
    }

    pub fn groups_shared(&self) -> &Arc<Groups> {
        &self.broker_addr
    }

    pub fn filter_servers_shared(&self) -> &Arc<FilterServers> {
        &self.filter_servers
    }

    pub fn mappings_shared(&self) -> &Arc<Mappings> {
        &self.mapping
    }

    /// Marks `topic`'s route as changed (its entry is replaced; absent topics: nothing).
    fn touch(&mut self, topic: &str) {
        if self.topic_queue.get_mut(topic, self.stamp).is_some() {
            self.changes.topics = true;
        }
    }

    pub fn topic_count(&self) -> usize {
        self.topic_queue.len()
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// (topic, broker name) pairs with queue data.
    pub fn topic_broker_entries(&self) -> usize {
        self.broker_topics.values().map(|topics| topics.len()).sum()
    }

    pub fn topic_queue_datas(&self, topic: &str) -> Option<&BrokerQueues> {
        self.topic_queue.get(topic).map(|e| e.queues())
    }

    pub fn broker_data(&self, broker_name: &str) -> Option<&Arc<BrokerData>> {
        self.broker_addr.get(broker_name)
    }

    pub fn brokers(&self) -> &BTreeMap<String, Arc<BrokerData>> {
        &self.broker_addr
    }

    pub fn clusters(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.cluster_addr
    }

    pub fn has_filter_servers(&self) -> bool {
        !self.filter_servers.is_empty()
    }

    pub fn filter_servers(&self, cluster: &str, addr: &str) -> Option<&Vec<String>> {
        self.filter_servers.get(&BrokerAddrKey { cluster: cluster.to_string(), addr: addr.to_string() })
    }

    pub fn topic_mapping(&self, topic: &str) -> Option<&BTreeMap<String, TopicQueueMappingInfo>> {
        self.mapping.get(topic)
    }

    pub fn live_info(&self, cluster: &str, addr: &str) -> Option<&LiveInfo> {
        self.live.get(&BrokerAddrKey { cluster: cluster.to_string(), addr: addr.to_string() })
    }

    fn mark_broker_topics(&mut self, broker_name: &str) {
        let Some(topics) = self.broker_topics.get(broker_name) else { return };
        for topic in topics.names() {
            self.topic_queue.touch(topic, self.stamp);
        }
        self.changes.topics |= !topics.is_empty();
    }

    /// `broker_name`'s queue data of `topic`, if the group has any.
    fn queue_data_of(&self, topic: &str, broker_name: &str) -> Option<&QueueData> {
        self.topic_queue.get(topic).and_then(|e| e.queues().get(broker_name))
    }

    /// The name `broker_name`'s queue data share, made on the group's first use.
    fn group_name(&mut self, broker_name: &str) -> Arc<str> {
        if let Some(name) = self.group_names.get(broker_name) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(broker_name);
        self.group_names.insert(broker_name.to_string(), name.clone());
        name
    }

    /// The group map for a change (copied if a snapshot shares it).
    fn groups_mut(&mut self) -> &mut Groups {
        Arc::make_mut(&mut self.broker_addr)
    }

    /// Writes `qd` into `topic`'s entry, the reverse index aside: what it did, and the
    /// slot's name. Looks before writing: an unchanged topic must not copy its shard or entry.
    fn put_entry(&mut self, topic: &str, qd: QueueData) -> (Put, TopicName) {
        if let Some((name, entry)) = self.topic_queue.get_key_value(topic) {
            if entry.queues().get(&qd.broker_name) == Some(&qd) {
                return (Put::Same, name.clone());
            }
        }
        let (opened, _) = self.topic_queue.get_or_insert_mut(topic, || TopicName::from(topic), self.stamp);
        self.changes.topics = true;
        let name = opened.name.clone();
        let put = if opened.entry.queues_mut().insert(qd).is_some() { Put::Changed } else { Put::Added };
        (put, name)
    }

    /// `put_entry` outside a registration's rebuild of its group's list: the list learns
    /// the topic, and a changed queue data makes its recorded fields untrustworthy.
    fn put_queue_data(&mut self, topic: &str, qd: QueueData) -> Put {
        let broker_name = qd.broker_name.clone();
        let (put, name) = self.put_entry(topic, qd);
        match put {
            Put::Same => {}
            Put::Changed => {
                if let Some(topics) = self.broker_topics.get_mut(&*broker_name) {
                    topics.in_sync = false;
                }
            }
            Put::Added => self.broker_topics.entry_ref(&*broker_name).or_default().push(name),
        }
        put
    }

    /// Asserts that the reverse index matches `topic_queue` and its recorded fields are
    /// true (debug builds only: O(table)).
    fn debug_check_index(&self) {
        if cfg!(debug_assertions) {
            let mut listed: FastSet<(&str, &str)> = FastSet::default();
            for (broker, topics) in &self.broker_topics {
                for l in &topics.list {
                    assert!(listed.insert((broker, &*l.name)), "{broker} lists {} twice", l.name);
                    let qd = self.queue_data_of(&l.name, broker);
                    let qd = qd.unwrap_or_else(|| panic!("{broker} lists {} without its queue data", l.name));
                    if topics.in_sync && l.fields != group_topics::FIELDS_UNKNOWN {
                        assert_eq!(l.fields, group_topics::pack(qd), "{broker}: stale fields of {}", l.name);
                    }
                }
            }
            for (topic, entry) in self.topic_queue.iter() {
                let per_broker = entry.queues();
                assert!(!per_broker.is_empty(), "topic {topic} kept with no queue data");
                for name in per_broker.keys() {
                    assert!(listed.contains(&(name, &**topic)), "index misses {name} -> {topic}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
