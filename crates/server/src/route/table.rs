//! The mutable truth: topics, brokers, clusters, liveness and filter servers, with the
//! registration / unregistration / expiry rules of Java's `RouteInfoManager`.
//!
//! Pure: every function that needs time takes `now_ms`; nothing here does I/O. Only the
//! writer owns a `RouteTable` (`&mut self` everywhere). Each change records which topics
//! (and whether the cluster view) changed, so a snapshot costs what changed, not the table.
//! Reference: ../shared/protocol/behaviour.md §2–§5 (step numbers below refer to it).

use super::ConnId;
use meridian_protocol::body::{BrokerData, DataVersion, QueueData, RegisterBrokerBody, TopicQueueMappingInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

mod image;
pub use image::{Restored, SavedLive, TableImage};

/// Hash maps keyed by peer-supplied names: foldhash (seeded per process) instead of SipHash,
/// which was the largest single cost of applying a 60k-topic registration.
/// hashbrown rather than std's wrapper for `entry_ref`: one hash of a topic name finds its
/// entry or the place to insert it, allocating the shared name only then.
pub type FastMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<T> = hashbrown::HashSet<T, foldhash::fast::RandomState>;

/// A topic name, allocated once and shared by the table, the change set and every snapshot.
pub type TopicName = Arc<str>;

/// One topic's QueueData per broker name, sorted by name. A topic usually lives on 1–3
/// broker groups, so a sorted Vec is a fraction of a BTreeMap's size (whose smallest node
/// holds 11 entries) and as fast to search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerQueues(Vec<QueueData>);

impl BrokerQueues {
    fn position(&self, broker_name: &str) -> Result<usize, usize> {
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
                // Exact growth: most topics live on one or two groups, and Vec's first
                // allocation would otherwise hold four.
                self.0.reserve_exact(1);
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

/// PermName.PERM_WRITE.
pub const PERM_WRITE: i32 = 2;
/// PermName.PERM_READ.
pub const PERM_READ: i32 = 4;
/// brokerId of a master.
pub const MASTER_ID: i64 = 0;

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
    /// would change no topic for such a re-send (behaviour.md §2 step 10), provided the
    /// broker's queue data is intact; otherwise the table answers `NeedFullBody`.
    pub topics_unchanged: bool,
    /// Identifies the body's bytes (length and CRC; 0 = unknown). An unread re-send stands
    /// for "as before" only if it is the body last applied in full for this address.
    pub body_fingerprint: u64,
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
    /// behaviour.md §2 step 10a.
    pub delete_topic_with_broker_registration: bool,
    /// Record NOTIFY_MIN_BROKER_ID_CHANGE notifications (behaviour.md §6).
    pub notify_min_broker_id_changed: bool,
}

/// What changed since the last `take_changes`.
#[derive(Debug, Default)]
pub struct Changes {
    pub topics: FastSet<TopicName>,
    pub cluster: bool,
}

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

/// TopicSysFlag bits (bodies.md §1).
const FLAG_UNIT: i32 = 1;
const FLAG_UNIT_SUB: i32 = 2;

pub struct RouteTable {
    limits: TableLimits,
    /// topic -> brokerName -> QueueData.
    topic_queue: FastMap<TopicName, BrokerQueues>,
    /// brokerName -> BrokerData, shared with every route of the group's topics (an `Arc`
    /// copied on write), so a route holds a pointer, not a copy.
    broker_addr: BTreeMap<String, Arc<BrokerData>>,
    /// clusterName -> brokerNames.
    cluster_addr: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<BrokerAddrKey, LiveInfo>,
    filter_servers: HashMap<BrokerAddrKey, Vec<String>>,
    /// topic -> brokerName -> static-topic mapping.
    mapping: HashMap<String, BTreeMap<String, TopicQueueMappingInfo>>,
    /// brokerName -> topics that have its QueueData: reverse index of `topic_queue`, so a
    /// broker change touches only its own topics.
    broker_topics: FastMap<String, FastSet<TopicName>>,
    changes: Changes,
    options: TableOptions,
    notifications: Vec<MinIdNotification>,
}

impl RouteTable {
    pub fn new(limits: TableLimits) -> RouteTable {
        RouteTable {
            limits,
            topic_queue: FastMap::default(),
            broker_addr: BTreeMap::new(),
            cluster_addr: BTreeMap::new(),
            live: HashMap::new(),
            filter_servers: HashMap::new(),
            mapping: HashMap::new(),
            broker_topics: FastMap::default(),
            changes: Changes::default(),
            options: TableOptions::default(),
            notifications: Vec::new(),
        }
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
        if let Some((name, _)) = self.topic_queue.get_key_value(topic) {
            self.changes.topics.insert(name.clone());
        }
    }

    /// Marks every route as changed (a switch that shapes every answer was flipped).
    pub fn mark_all_topics_changed(&mut self) {
        self.changes.topics.extend(self.topic_queue.keys().cloned());
    }

    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
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
        self.topic_queue.get(topic)
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
        if let Some(topics) = self.broker_topics.get(broker_name) {
            self.changes.topics.extend(topics.iter().cloned());
        }
    }

    /// The table's shared name of `topic`, allocating it only for a new topic.
    fn topic_name(&self, topic: &str) -> TopicName {
        match self.topic_queue.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => Arc::from(topic),
        }
    }

    fn put_queue_data(&mut self, topic: &str, qd: QueueData) {
        let broker_name = qd.broker_name.clone();
        let name = match self.topic_queue.entry_ref(topic) {
            hashbrown::hash_map::EntryRef::Occupied(mut entry) => {
                if entry.get().get(&qd.broker_name) == Some(&qd) {
                    return;
                }
                entry.get_mut().insert(qd);
                entry.key().clone()
            }
            hashbrown::hash_map::EntryRef::Vacant(entry) => {
                let mut queues = BrokerQueues::default();
                queues.insert(qd);
                let name = TopicName::from(topic);
                entry.insert_entry_with_key(name.clone(), queues);
                name
            }
        };
        match self.broker_topics.get_mut(&*broker_name) {
            Some(topics) => {
                topics.insert(name.clone());
            }
            None => {
                let mut topics = FastSet::default();
                topics.insert(name.clone());
                self.broker_topics.insert(broker_name.to_string(), topics);
            }
        }
        self.changes.topics.insert(name);
    }

    /// REGISTER_BROKER (behaviour.md §2). Validates everything that can refuse before it
    /// changes anything, so a refused registration leaves the table as it was.
    pub fn register_broker(&mut self, req: RegisterBroker, conn: ConnId, now_ms: u64) -> RegisterOutcome {
        let key = BrokerAddrKey { cluster: req.cluster_name.clone(), addr: req.broker_addr.clone() };
        let dv = req.body.data_version;
        if req.topics_unchanged && !self.unchanged_topics_apply(&req, &key) {
            return RegisterOutcome::NeedFullBody;
        }
        let id_known =
            self.broker_addr.get(&req.broker_name).is_some_and(|bd| bd.broker_addrs.contains_key(&req.broker_id));
        // A broker loaded by a warm restart: its registration replaces what was loaded.
        let was_provisional = self.live.get(&key).is_some_and(|l| l.provisional);

        // Step 6: an address change for this id loses against a newer controller epoch.
        if let Some(bd) = self.broker_addr.get(&req.broker_name) {
            if let Some(old_addr) = bd.broker_addrs.get(&req.broker_id) {
                if *old_addr != req.broker_addr {
                    let old_key = BrokerAddrKey { cluster: req.cluster_name.clone(), addr: old_addr.clone() };
                    if let Some(old_live) = self.live.get(&old_key) {
                        if old_live.data_version.state_version > dv.state_version {
                            // Java removes the *registering* address's live entry and answers SUCCESS.
                            self.live.remove(&key);
                            return RegisterOutcome::Accepted { master_addr: None, ha_server_addr: None };
                        }
                    }
                }
            }
        }
        // Step 7: a one-topic (incremental) registration may not be a broker id's first.
        if !id_known && req.body.topic_configs.len() == 1 {
            return RegisterOutcome::Refused("register broker failed".to_string());
        }
        // Meridian's limits, checked before any change.
        if !self.live.contains_key(&key) && self.live.len() >= self.limits.brokers_max {
            return RegisterOutcome::Refused(format!(
                "broker table full: {} broker addresses >= brokers_max {}",
                self.live.len(),
                self.limits.brokers_max
            ));
        }
        let new_topics =
            req.body.topic_configs.iter().filter(|t| !self.topic_queue.contains_key(t.topic_name.as_str())).count();
        if self.topic_queue.len() + new_topics > self.limits.topics_max {
            return RegisterOutcome::Refused(format!(
                "topic table full: {} topics + {} new > topics_max {}",
                self.topic_queue.len(),
                new_topics,
                self.limits.topics_max
            ));
        }

        // Grow the maps once for a big registration instead of rehashing 100k entries
        // several times over.
        self.topic_queue.reserve(new_topics);
        self.changes.topics.reserve(req.body.topic_configs.len());
        if let Some(topics) = self.broker_topics.get_mut(&req.broker_name) {
            topics.reserve(req.body.topic_configs.len().saturating_sub(topics.len()));
        }

        // Step 1.
        if self.cluster_addr.entry(req.cluster_name.clone()).or_default().insert(req.broker_name.clone()) {
            self.changes.cluster = true;
        }
        // Steps 2–3.
        let old_version_broker = req.enable_acting_master.is_none();
        let mut register_first = false;
        let stored = self.broker_addr.entry(req.broker_name.clone()).or_insert_with(|| {
            register_first = true;
            Arc::new(BrokerData {
                cluster: req.cluster_name.clone(),
                broker_name: req.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
                enable_acting_master: false,
                zone_name: None,
            })
        });
        // Changed on a copy: routes share the stored `Arc`, which is replaced only on a change.
        let mut bd = BrokerData::clone(stored);
        // Step 4 (before any change to the group).
        let min_id_changed = bd.broker_addrs.keys().next().is_some_and(|min| req.broker_id < *min);
        bd.enable_acting_master = !old_version_broker && req.enable_acting_master == Some(true);
        bd.zone_name = req.zone_name.clone();
        // Step 5: the same address under another id (a slave promoted to master) goes.
        bd.broker_addrs.retain(|id, addr| !(*addr == req.broker_addr && *id != req.broker_id));
        // Step 8.
        let old_addr = bd.broker_addrs.insert(req.broker_id, req.broker_addr.clone());
        register_first |= old_addr.is_none() || was_provisional;
        // Step 9.
        let is_master = req.broker_id == MASTER_ID;
        let min_id = *bd.broker_addrs.keys().next().expect("just inserted an address");
        let is_prime_slave = !old_version_broker && !is_master && req.broker_id == min_id;
        let broker_changed = bd != **stored;
        let enable_acting_master = bd.enable_acting_master;
        if broker_changed {
            *stored = Arc::new(bd);
        }
        if broker_changed {
            self.changes.cluster = true;
            self.mark_broker_topics(&req.broker_name);
        }

        // Step 10: only a master, or a 5.x slave standing in for an absent master, writes topics.
        if is_master || is_prime_slave {
            if self.options.delete_topic_with_broker_registration && req.body.topic_queue_mapping_infos.is_empty() {
                self.remove_topics_missing_from(&req.broker_name, &req.body.topic_configs);
            }
            let dv_changed = self.live.get(&key).is_none_or(|l| l.data_version != dv);
            let broker_name: Arc<str> = Arc::from(req.broker_name.as_str());
            for tc in &req.body.topic_configs {
                let has_queue =
                    || self.topic_queue.get(tc.topic_name.as_str()).is_some_and(|m| m.contains_key(&req.broker_name));
                if register_first || dv_changed || !has_queue() {
                    let mut perm = tc.perm;
                    if is_prime_slave && enable_acting_master {
                        perm &= !PERM_WRITE;
                    }
                    let qd = QueueData {
                        broker_name: broker_name.clone(),
                        read_queue_nums: tc.read_queue_nums,
                        write_queue_nums: tc.write_queue_nums,
                        perm,
                        topic_sys_flag: tc.topic_sys_flag,
                    };
                    self.put_queue_data(&tc.topic_name, qd);
                }
            }
            if dv_changed || register_first {
                for (topic, info) in &req.body.topic_queue_mapping_infos {
                    let per_broker = self.mapping.entry(topic.clone()).or_default();
                    if per_broker.get(&info.bname) != Some(info) {
                        per_broker.insert(info.bname.clone(), info.clone());
                        let name = self.topic_name(topic);
                        self.changes.topics.insert(name);
                    }
                }
            }
        }

        // Step 11. A full body from the topic writer leaves its queue data intact; an unread
        // one was admitted only if nothing changed that.
        let (topics_intact, body_fingerprint) = if req.topics_unchanged {
            self.live.get(&key).map_or((false, 0), |l| (l.topics_intact, l.body_fingerprint))
        } else {
            (is_master || is_prime_slave, req.body_fingerprint)
        };
        self.live.insert(
            key.clone(),
            LiveInfo {
                last_update_ms: now_ms,
                timeout_ms: req.heartbeat_timeout_ms.unwrap_or(self.limits.broker_timeout_default_ms),
                data_version: dv,
                conn,
                ha_server_addr: req.ha_server_addr.clone(),
                topics_intact,
                body_fingerprint,
                provisional: false,
            },
        );
        // Step 12.
        if let Some(list) = req.body.filter_server_list {
            let changed = if list.is_empty() {
                self.filter_servers.remove(&key).is_some()
            } else {
                self.filter_servers.insert(key, list.clone()).as_ref() != Some(&list)
            };
            if changed {
                self.mark_broker_topics(&req.broker_name);
            }
        }
        // Step 14.
        if min_id_changed && self.options.notify_min_broker_id_changed {
            if let Some(bd) = self.broker_addr.get(&req.broker_name) {
                let (min_id, min_addr) = bd.broker_addrs.iter().next().expect("the group has the new broker");
                let targets: Vec<String> = if bd.broker_addrs.len() == 1 {
                    bd.broker_addrs.values().cloned().collect()
                } else {
                    bd.broker_addrs.iter().filter(|(id, _)| *id != min_id).map(|(_, a)| a.clone()).collect()
                };
                self.notifications.push(MinIdNotification {
                    targets,
                    min_broker_id: *min_id,
                    min_broker_addr: min_addr.clone(),
                    offline_broker_addr: None,
                    ha_broker_addr: Some(req.ha_server_addr.clone()),
                });
            }
        }
        // Step 13.
        if !is_master {
            let master = self.broker_addr.get(&req.broker_name).and_then(|bd| bd.broker_addrs.get(&MASTER_ID)).cloned();
            if let Some(master_addr) = master {
                let master_key = BrokerAddrKey { cluster: req.cluster_name.clone(), addr: master_addr.clone() };
                if let Some(master_live) = self.live.get(&master_key) {
                    return RegisterOutcome::Accepted {
                        master_addr: Some(master_addr),
                        ha_server_addr: Some(master_live.ha_server_addr.clone()),
                    };
                }
            }
        }
        RegisterOutcome::Accepted { master_addr: None, ha_server_addr: None }
    }

    /// Whether a registration whose topics were not read leaves the table as the full body
    /// would: same address under the same id, same data version, and — if it is the group's
    /// topic writer (master or prime slave) — queue data as its last full registration left it.
    fn unchanged_topics_apply(&self, req: &RegisterBroker, key: &BrokerAddrKey) -> bool {
        if self.options.delete_topic_with_broker_registration {
            return false; // every registration may delete topics (step 10a)
        }
        let Some(live) = self.live.get(key) else { return false };
        let Some(bd) = self.broker_addr.get(&req.broker_name) else { return false };
        if live.data_version != req.body.data_version || bd.broker_addrs.get(&req.broker_id) != Some(&req.broker_addr) {
            return false;
        }
        let min_id = bd.broker_addrs.keys().next().copied();
        let writes_topics =
            req.broker_id == MASTER_ID || (req.enable_acting_master.is_some() && Some(req.broker_id) == min_id);
        // Another full body in between (a split-registration chunk, a re-registration after
        // the group was removed) may have left fewer of this body's topics: read it.
        !writes_topics
            || (live.topics_intact && req.body_fingerprint != 0 && live.body_fingerprint == req.body_fingerprint)
    }

    /// Queue data of `broker_name` went away other than by its own registration: its
    /// brokers' next re-sends must be read in full.
    fn mark_topics_not_intact(&mut self, broker_name: &str) {
        let Some(bd) = self.broker_addr.get(broker_name) else { return };
        for addr in bd.broker_addrs.values() {
            if let Some(live) = self.live.get_mut(&BrokerAddrKey { cluster: bd.cluster.clone(), addr: addr.clone() }) {
                live.topics_intact = false;
            }
        }
    }

    /// Removes a batch of broker addresses (behaviour.md §5). Unknown brokers are a no-op.
    pub fn unregister(&mut self, batch: &[Unregister]) {
        let mut removed: Vec<String> = Vec::new();
        let mut reduced: Vec<String> = Vec::new();
        for r in batch {
            let key = BrokerAddrKey { cluster: r.cluster_name.clone(), addr: r.broker_addr.clone() };
            self.live.remove(&key);
            if self.filter_servers.remove(&key).is_some() {
                self.mark_broker_topics(&r.broker_name);
            }
            let Some(bd) = self.broker_addr.get_mut(&r.broker_name).map(Arc::make_mut) else { continue };
            let min_id_changed = bd.broker_addrs.keys().next().is_some_and(|min| r.broker_id == *min);
            // Java matches by address, not by the requested id.
            let before = bd.broker_addrs.len();
            bd.broker_addrs.retain(|_, addr| *addr != r.broker_addr);
            let now_empty = bd.broker_addrs.is_empty();
            let shrunk = bd.broker_addrs.len() != before;
            let notification =
                (min_id_changed && !now_empty && bd.enable_acting_master && self.options.notify_min_broker_id_changed)
                    .then(|| {
                        let (min_id, min_addr) = bd.broker_addrs.iter().next().expect("the group is not empty");
                        MinIdNotification {
                            targets: bd.broker_addrs.values().cloned().collect(),
                            min_broker_id: *min_id,
                            min_broker_addr: min_addr.clone(),
                            offline_broker_addr: Some(r.broker_addr.clone()),
                            ha_broker_addr: None,
                        }
                    });
            if shrunk {
                self.changes.cluster = true;
                self.mark_broker_topics(&r.broker_name);
            }
            if now_empty {
                self.broker_addr.remove(&r.broker_name);
                if let Some(names) = self.cluster_addr.get_mut(&r.cluster_name) {
                    names.remove(&r.broker_name);
                    if names.is_empty() {
                        self.cluster_addr.remove(&r.cluster_name);
                    }
                }
                self.changes.cluster = true;
                removed.push(r.broker_name.clone());
            } else {
                self.notifications.extend(notification);
                reduced.push(r.broker_name.clone());
            }
        }
        // Step 4: topics lose the queue data of vanished broker groups.
        for name in removed {
            if self.broker_addr.contains_key(&name) {
                continue; // re-registered later in this batch? cannot happen, but stay exact.
            }
            let Some(topics) = self.broker_topics.remove(&name) else { continue };
            for topic in topics {
                if let Some(per_broker) = self.topic_queue.get_mut(&topic) {
                    per_broker.remove(&name);
                    if per_broker.is_empty() {
                        self.topic_queue.remove(&topic);
                    }
                }
                self.changes.topics.insert(topic);
            }
        }
        // Step 5: an acting-master group that lost its master stops taking writes.
        for name in reduced {
            let Some(bd) = self.broker_addr.get(&name) else { continue };
            if !bd.enable_acting_master || bd.broker_addrs.contains_key(&MASTER_ID) {
                continue;
            }
            let topics: Vec<TopicName> =
                self.broker_topics.get(&name).map(|t| t.iter().cloned().collect()).unwrap_or_default();
            for topic in topics {
                if let Some(qd) = self.topic_queue.get_mut(&topic).and_then(|m| m.get_mut(&name)) {
                    if qd.perm & PERM_WRITE != 0 {
                        qd.perm &= !PERM_WRITE;
                        self.changes.topics.insert(topic);
                    }
                }
            }
        }
        self.debug_check_index();
    }

    /// Turns live keys into unregister requests, looking up brokerName/brokerId by scanning
    /// the cluster's broker groups for the address, as Java does (not found: nothing).
    fn unregister_requests_for(&self, keys: &[BrokerAddrKey]) -> Vec<Unregister> {
        let mut out = Vec::new();
        for key in keys {
            let Some(names) = self.cluster_addr.get(&key.cluster) else { continue };
            let found = names.iter().find_map(|name| {
                let bd = self.broker_addr.get(name)?;
                let (id, _) = bd.broker_addrs.iter().find(|(_, a)| **a == key.addr)?;
                Some((name.clone(), *id))
            });
            if let Some((broker_name, broker_id)) = found {
                out.push(Unregister {
                    cluster_name: key.cluster.clone(),
                    broker_addr: key.addr.clone(),
                    broker_name,
                    broker_id,
                });
            }
        }
        out
    }

    /// A connection closed: every broker whose live entry is tied to it is unregistered.
    /// (Java removes only the first one it finds; a connection carries one broker in
    /// practice, and removing all is what a load generator multiplexing brokers expects.)
    /// Returns the brokers removed.
    pub fn connection_closed(&mut self, conn: ConnId) -> Vec<Unregister> {
        let keys: Vec<BrokerAddrKey> =
            self.live.iter().filter(|(_, l)| l.conn == conn).map(|(k, _)| k.clone()).collect();
        let batch = self.unregister_requests_for(&keys);
        self.unregister(&batch);
        batch
    }

    /// Expiry scan (behaviour.md §4): brokers silent past their timeout are unregistered.
    /// Returns them with the connections they were registered on, which the caller closes.
    pub fn scan_expired(&mut self, now_ms: u64) -> Vec<Expired> {
        let expired: Vec<(BrokerAddrKey, ConnId, u64, u64)> = self
            .live
            .iter()
            .filter(|(_, l)| l.last_update_ms.saturating_add(l.timeout_ms) < now_ms)
            .map(|(k, l)| (k.clone(), l.conn, now_ms - l.last_update_ms, l.timeout_ms))
            .collect();
        let keys: Vec<BrokerAddrKey> = expired.iter().map(|(k, ..)| k.clone()).collect();
        let batch = self.unregister_requests_for(&keys);
        // An expired entry whose group no longer lists it is still dropped from liveness.
        for (key, ..) in &expired {
            self.live.remove(key);
        }
        self.unregister(&batch);
        batch
            .into_iter()
            .filter_map(|u| {
                let (_, conn, silent_ms, timeout_ms) =
                    *expired.iter().find(|(k, ..)| k.cluster == u.cluster_name && k.addr == u.broker_addr)?;
                Some(Expired { broker: u, conn, silent_ms, timeout_ms })
            })
            .collect()
    }

    /// QUERY_DATA_VERSION: (changed, stored version) and a liveness refresh.
    pub fn query_data_version(
        &mut self,
        cluster: &str,
        addr: &str,
        dv: &DataVersion,
        now_ms: u64,
    ) -> (bool, Option<DataVersion>) {
        let key = BrokerAddrKey { cluster: cluster.to_string(), addr: addr.to_string() };
        match self.live.get_mut(&key) {
            Some(live) => {
                let changed = live.data_version != *dv;
                live.last_update_ms = now_ms;
                live.provisional = false;
                (changed, Some(live.data_version))
            }
            None => (true, None),
        }
    }

    /// BROKER_HEARTBEAT: refreshes a known broker; unknown ones are ignored.
    pub fn heartbeat(&mut self, cluster: &str, addr: &str, now_ms: u64) {
        let key = BrokerAddrKey { cluster: cluster.to_string(), addr: addr.to_string() };
        if let Some(live) = self.live.get_mut(&key) {
            live.last_update_ms = now_ms;
            live.provisional = false;
        }
    }

    /// REGISTER_TOPIC_IN_NAMESRV (behaviour.md §2.1): applies queue data in order and stops
    /// at the first broker name that is not registered, as Java does.
    pub fn register_topic(&mut self, topic: &str, queue_datas: Vec<QueueData>) -> Result<(), String> {
        if !self.topic_queue.contains_key(topic) && self.topic_queue.len() >= self.limits.topics_max {
            return Err(format!(
                "topic table full: {} topics >= topics_max {}",
                self.topic_queue.len(),
                self.limits.topics_max
            ));
        }
        for qd in queue_datas {
            if !self.broker_addr.contains_key(&*qd.broker_name) {
                break;
            }
            self.put_queue_data(topic, qd);
        }
        Ok(())
    }

    /// Removes one broker name's queue data from a topic, dropping the topic if it empties.
    fn remove_queue_data(&mut self, topic: &str, broker_name: &str) -> bool {
        let name = self.topic_name(topic);
        let Some(per_broker) = self.topic_queue.get_mut(topic) else { return false };
        if per_broker.remove(broker_name).is_none() {
            return false;
        }
        if per_broker.is_empty() {
            self.topic_queue.remove(topic);
        }
        if let Some(topics) = self.broker_topics.get_mut(broker_name) {
            topics.remove(topic);
        }
        self.changes.topics.insert(name);
        self.mark_topics_not_intact(broker_name);
        true
    }

    /// Step 10a: topics this broker no longer reports lose its queue data.
    fn remove_topics_missing_from(&mut self, broker_name: &str, reported: &[meridian_protocol::body::TopicConfig]) {
        let Some(current) = self.broker_topics.get(broker_name) else { return };
        let reported: HashSet<&str> = reported.iter().map(|t| t.topic_name.as_str()).collect();
        let gone: Vec<TopicName> = current.iter().filter(|t| !reported.contains(&***t)).cloned().collect();
        for topic in gone {
            self.remove_queue_data(&topic, broker_name);
        }
    }

    /// DELETE_TOPIC_IN_NAMESRV (behaviour.md §8): with a cluster, only that cluster's
    /// brokers lose the topic; without, the topic goes (static mappings stay, as in Java).
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster {
            Some(cluster) => {
                let names: Vec<String> =
                    self.cluster_addr.get(cluster).map(|n| n.iter().cloned().collect()).unwrap_or_default();
                for name in names {
                    self.remove_queue_data(topic, &name);
                }
            }
            None => {
                let names: Vec<String> =
                    self.topic_queue.get(topic).map(|m| m.keys().map(str::to_string).collect()).unwrap_or_default();
                for name in names {
                    self.remove_queue_data(topic, &name);
                }
            }
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe = true`: perm &= ~WRITE) and ADD_WRITE_PERM_OF_BROKER
    /// (perm = READ|WRITE exactly). Returns how many topics carry the broker, as Java counts.
    pub fn operate_write_perm(&mut self, broker_name: &str, wipe: bool) -> usize {
        let topics: Vec<TopicName> =
            self.broker_topics.get(broker_name).map(|t| t.iter().cloned().collect()).unwrap_or_default();
        let mut count = 0;
        for topic in topics {
            let Some(qd) = self.topic_queue.get_mut(&topic).and_then(|m| m.get_mut(broker_name)) else { continue };
            count += 1;
            let perm = if wipe { qd.perm & !PERM_WRITE } else { PERM_READ | PERM_WRITE };
            if qd.perm != perm {
                qd.perm = perm;
                self.changes.topics.insert(topic);
            }
        }
        count
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER: every topic with queue data.
    pub fn all_topics(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.topic_queue.keys().map(|t| &**t).collect();
        v.sort_unstable();
        v
    }

    /// GET_TOPICS_BY_CLUSTER: topics with queue data on any broker name of the cluster.
    pub fn topics_by_cluster(&self, cluster: &str) -> Vec<&str> {
        let mut set: BTreeSet<&str> = BTreeSet::new();
        for name in self.cluster_addr.get(cluster).into_iter().flatten() {
            for topic in self.broker_topics.get(name).into_iter().flatten() {
                if self.topic_queue.get(topic).is_some_and(|m| m.contains_key(name)) {
                    set.insert(&**topic);
                }
            }
        }
        set.into_iter().collect()
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster and broker names (brokers create topics named
    /// after them), plus the first address of the first broker group that has one.
    pub fn system_topics(&self) -> (Vec<&str>, Option<&str>) {
        let mut set: BTreeSet<&str> = BTreeSet::new();
        for (cluster, names) in &self.cluster_addr {
            set.insert(cluster);
            set.extend(names.iter().map(String::as_str));
        }
        let addr = self.broker_addr.values().find_map(|bd| bd.broker_addrs.values().next()).map(String::as_str);
        (set.into_iter().collect(), addr)
    }

    /// Codes 311–313: topics whose first QueueData's topicSysFlag matches.
    pub fn unit_topics(&self, which: UnitList) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .topic_queue
            .iter()
            .filter(|(_, per_broker)| {
                let Some(qd) = per_broker.values().next() else { return false };
                let flag = qd.topic_sys_flag;
                match which {
                    UnitList::Unit => flag & FLAG_UNIT != 0,
                    UnitList::HasUnitSub => flag & FLAG_UNIT_SUB != 0,
                    UnitList::HasUnitSubNotUnit => flag & FLAG_UNIT_SUB != 0 && flag & FLAG_UNIT == 0,
                }
            })
            .map(|(t, _)| &**t)
            .collect();
        v.sort_unstable();
        v
    }

    /// Asserts that the reverse index matches `topic_queue` (debug builds only: O(table)).
    fn debug_check_index(&self) {
        if cfg!(debug_assertions) {
            for (topic, per_broker) in &self.topic_queue {
                assert!(!per_broker.is_empty(), "topic {topic} kept with no queue data");
                for name in per_broker.keys() {
                    assert!(
                        self.broker_topics.get(name).is_some_and(|t| t.contains(topic)),
                        "index misses {name} -> {topic}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
                topic_configs: topics.to_vec(),
                filter_server_list: Some(Vec::new()),
                topic_queue_mapping_infos: Vec::new(),
            },
            topics_unchanged: false,
            body_fingerprint: 0,
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
        for topic in table.topic_queue.keys() {
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
        assert_eq!(
            t.clusters().get(CLUSTER).map(|s| s.iter().cloned().collect::<Vec<_>>()),
            Some(vec!["broker-a".into()])
        );
        let live = t.live_info(CLUSTER, A0).expect("live entry");
        assert_eq!((live.last_update_ms, live.timeout_ms, live.conn), (1_000, 120_000, ConnId(7)));
        assert_eq!((live.data_version, live.ha_server_addr.as_str()), (dv(1), "ha-10.0.0.1:10911"));
        assert_eq!(t.filter_servers(CLUSTER, A0), Some(&vec!["10.0.0.9:1".to_string()]));
        check(&t, "T1", Some(&[("broker-a", 4, 6)]));
        check(&t, "T2", Some(&[("broker-a", 4, 6)]));
        assert_eq!((t.topic_count(), t.live_count()), (2, 1));
        let changes = t.take_changes();
        assert!(changes.cluster);
        assert_eq!(changes.topics, FastSet::from_iter([TopicName::from("T1"), TopicName::from("T2")]));

        // The same registration again changes nothing a reader can see.
        assert_eq!(t.register_broker(r, ConnId(7), 2_000), accepted());
        let changes = t.take_changes();
        assert!(!changes.cluster && changes.topics.is_empty(), "{changes:?}");
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
        assert!(!changes.cluster && changes.topics.is_empty());

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
        let changes = t.take_changes();
        assert!(changes.cluster && changes.topics.contains("TA") && changes.topics.contains("TS"), "{changes:?}");

        t.unregister(&[unregister("broker-b", 0, B0)]);
        assert_gone(&t, "broker-b", &[B0]);
        assert!(t.brokers().is_empty() && t.clusters().is_empty(), "the empty cluster goes too");
        assert_eq!((t.topic_count(), t.live_count()), (0, 0));

        // Unknown brokers: a no-op.
        t.take_changes();
        t.unregister(&[unregister("ghost", 0, "10.9.9.9:1")]);
        let changes = t.take_changes();
        assert!(!changes.cluster && changes.topics.is_empty());
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
            RegisterOutcome::Refused(remark) => assert!(remark.contains("topics_max 2"), "{remark}"),
            other => panic!("{other:?}"),
        }
        assert!(t.brokers().is_empty() && t.clusters().is_empty());
        assert_eq!((t.topic_count(), t.live_count()), (0, 0));

        assert_eq!(t.register_broker(reg("broker-a", 0, A0, dv(1), &three[..2]), ConnId(1), 0), accepted());
        match t.register_broker(reg("broker-b", 0, B0, dv(1), &three[..2]), ConnId(2), 0) {
            RegisterOutcome::Refused(remark) => assert!(remark.contains("brokers_max 1"), "{remark}"),
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
        assert!(err.contains("topics_max 2"), "{err}");
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
}
