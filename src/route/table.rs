//! The mutable truth: topics, brokers, clusters, liveness and filter servers, with the
//! registration / unregistration / expiry rules of Java's `RouteInfoManager`.
//!
//! Pure: every function that needs time takes `now_ms`; nothing here does I/O. Only the
//! writer owns a `RouteTable` (`&mut self` everywhere). Each change records which topics
//! (and whether the cluster view) changed, so a snapshot costs what changed, not the table.
//! Reference: ../shared/protocol/behaviour.md §2–§5 (step numbers below refer to it).

use super::ConnId;
use crate::protocol::body::{BrokerData, DataVersion, QueueData, RegisterBrokerBody, TopicQueueMappingInfo};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// PermName.PERM_WRITE.
pub const PERM_WRITE: i32 = 2;
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
}

/// REGISTER_BROKER after header and body decoding.
#[derive(Debug, Clone)]
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// SUCCESS; the addresses are set only for a slave whose master is registered and alive.
    Accepted { master_addr: Option<String>, ha_server_addr: Option<String> },
    /// SYSTEM_ERROR with this remark; nothing was changed.
    Refused(String),
}

/// One broker address to remove (UNREGISTER_BROKER, expiry, connection close).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unregister {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
}

/// Limits the table enforces on peers.
#[derive(Debug, Clone, Copy)]
pub struct TableLimits {
    pub topics_max: usize,
    pub brokers_max: usize,
    pub broker_timeout_default_ms: u64,
}

/// What changed since the last `take_changes`.
#[derive(Debug, Default)]
pub struct Changes {
    pub topics: HashSet<String>,
    pub cluster: bool,
}

pub struct RouteTable {
    limits: TableLimits,
    /// topic -> brokerName -> QueueData.
    topic_queue: HashMap<String, BTreeMap<String, QueueData>>,
    /// brokerName -> BrokerData.
    broker_addr: BTreeMap<String, BrokerData>,
    /// clusterName -> brokerNames.
    cluster_addr: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<BrokerAddrKey, LiveInfo>,
    filter_servers: HashMap<BrokerAddrKey, Vec<String>>,
    /// topic -> brokerName -> static-topic mapping.
    mapping: HashMap<String, BTreeMap<String, TopicQueueMappingInfo>>,
    /// brokerName -> topics that have its QueueData: reverse index of `topic_queue`, so a
    /// broker change touches only its own topics.
    broker_topics: HashMap<String, HashSet<String>>,
    changes: Changes,
}

impl RouteTable {
    pub fn new(limits: TableLimits) -> RouteTable {
        RouteTable {
            limits,
            topic_queue: HashMap::new(),
            broker_addr: BTreeMap::new(),
            cluster_addr: BTreeMap::new(),
            live: HashMap::new(),
            filter_servers: HashMap::new(),
            mapping: HashMap::new(),
            broker_topics: HashMap::new(),
            changes: Changes::default(),
        }
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

    pub fn topic_queue_datas(&self, topic: &str) -> Option<&BTreeMap<String, QueueData>> {
        self.topic_queue.get(topic)
    }

    pub fn broker_data(&self, broker_name: &str) -> Option<&BrokerData> {
        self.broker_addr.get(broker_name)
    }

    pub fn brokers(&self) -> &BTreeMap<String, BrokerData> {
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

    fn put_queue_data(&mut self, topic: &str, qd: QueueData) {
        let entry = self.topic_queue.entry(topic.to_string()).or_default();
        if entry.get(&qd.broker_name) == Some(&qd) {
            return;
        }
        self.broker_topics.entry(qd.broker_name.clone()).or_default().insert(topic.to_string());
        entry.insert(qd.broker_name.clone(), qd);
        self.changes.topics.insert(topic.to_string());
    }

    /// REGISTER_BROKER (behaviour.md §2). Validates everything that can refuse before it
    /// changes anything, so a refused registration leaves the table as it was.
    pub fn register_broker(&mut self, req: RegisterBroker, conn: ConnId, now_ms: u64) -> RegisterOutcome {
        let key = BrokerAddrKey { cluster: req.cluster_name.clone(), addr: req.broker_addr.clone() };
        let dv = req.body.data_version;
        let id_known =
            self.broker_addr.get(&req.broker_name).is_some_and(|bd| bd.broker_addrs.contains_key(&req.broker_id));

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
            req.body.topic_configs.iter().filter(|t| !self.topic_queue.contains_key(&t.topic_name)).count();
        if self.topic_queue.len() + new_topics > self.limits.topics_max {
            return RegisterOutcome::Refused(format!(
                "topic table full: {} topics + {} new > topics_max {}",
                self.topic_queue.len(),
                new_topics,
                self.limits.topics_max
            ));
        }

        // Step 1.
        if self.cluster_addr.entry(req.cluster_name.clone()).or_default().insert(req.broker_name.clone()) {
            self.changes.cluster = true;
        }
        // Steps 2–3.
        let old_version_broker = req.enable_acting_master.is_none();
        let mut register_first = false;
        let bd = self.broker_addr.entry(req.broker_name.clone()).or_insert_with(|| {
            register_first = true;
            BrokerData {
                cluster: req.cluster_name.clone(),
                broker_name: req.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
                enable_acting_master: false,
                zone_name: None,
            }
        });
        let before = bd.clone();
        bd.enable_acting_master = !old_version_broker && req.enable_acting_master == Some(true);
        bd.zone_name = req.zone_name.clone();
        // Step 5: the same address under another id (a slave promoted to master) goes.
        bd.broker_addrs.retain(|id, addr| !(*addr == req.broker_addr && *id != req.broker_id));
        // Step 8.
        let old_addr = bd.broker_addrs.insert(req.broker_id, req.broker_addr.clone());
        register_first |= old_addr.is_none();
        // Step 9.
        let is_master = req.broker_id == MASTER_ID;
        let min_id = *bd.broker_addrs.keys().next().expect("just inserted an address");
        let is_prime_slave = !old_version_broker && !is_master && req.broker_id == min_id;
        let broker_changed = *bd != before;
        let enable_acting_master = bd.enable_acting_master;
        if broker_changed {
            self.changes.cluster = true;
            self.mark_broker_topics(&req.broker_name);
        }

        // Step 10: only a master, or a 5.x slave standing in for an absent master, writes topics.
        if is_master || is_prime_slave {
            let dv_changed = self.live.get(&key).is_none_or(|l| l.data_version != dv);
            for tc in &req.body.topic_configs {
                let has_queue = self.topic_queue.get(&tc.topic_name).is_some_and(|m| m.contains_key(&req.broker_name));
                if register_first || dv_changed || !has_queue {
                    let mut perm = tc.perm;
                    if is_prime_slave && enable_acting_master {
                        perm &= !PERM_WRITE;
                    }
                    let qd = QueueData {
                        broker_name: req.broker_name.clone(),
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
                        self.changes.topics.insert(topic.clone());
                    }
                }
            }
        }

        // Step 11.
        self.live.insert(
            key.clone(),
            LiveInfo {
                last_update_ms: now_ms,
                timeout_ms: req.heartbeat_timeout_ms.unwrap_or(self.limits.broker_timeout_default_ms),
                data_version: dv,
                conn,
                ha_server_addr: req.ha_server_addr.clone(),
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
            let Some(bd) = self.broker_addr.get_mut(&r.broker_name) else { continue };
            // Java matches by address, not by the requested id.
            let before = bd.broker_addrs.len();
            bd.broker_addrs.retain(|_, addr| *addr != r.broker_addr);
            let now_empty = bd.broker_addrs.is_empty();
            if bd.broker_addrs.len() != before {
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
            let topics: Vec<String> =
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
    pub fn connection_closed(&mut self, conn: ConnId) -> usize {
        let keys: Vec<BrokerAddrKey> =
            self.live.iter().filter(|(_, l)| l.conn == conn).map(|(k, _)| k.clone()).collect();
        let batch = self.unregister_requests_for(&keys);
        self.unregister(&batch);
        batch.len()
    }

    /// Expiry scan (behaviour.md §4): brokers silent past their timeout are unregistered.
    /// Returns the connections they were registered on, which the caller closes.
    pub fn scan_expired(&mut self, now_ms: u64) -> Vec<(Unregister, ConnId)> {
        let expired: Vec<(BrokerAddrKey, ConnId)> = self
            .live
            .iter()
            .filter(|(_, l)| l.last_update_ms.saturating_add(l.timeout_ms) < now_ms)
            .map(|(k, l)| (k.clone(), l.conn))
            .collect();
        let keys: Vec<BrokerAddrKey> = expired.iter().map(|(k, _)| k.clone()).collect();
        let batch = self.unregister_requests_for(&keys);
        // An expired entry whose group no longer lists it is still dropped from liveness.
        for (key, _) in &expired {
            self.live.remove(key);
        }
        self.unregister(&batch);
        batch
            .into_iter()
            .filter_map(|u| {
                let conn = expired.iter().find(|(k, _)| k.cluster == u.cluster_name && k.addr == u.broker_addr)?.1;
                Some((u, conn))
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
            if !self.broker_addr.contains_key(&qd.broker_name) {
                break;
            }
            self.put_queue_data(topic, qd);
        }
        Ok(())
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
