//! REGISTER_BROKER applied to the table, in the order of Java's
//! RouteInfoManager.registerBroker. The step numbers in comments below are these:
//!
//! - 1: the cluster lists the broker name;
//! - 2–3: the broker group exists (created on first registration) and takes the request's
//!   acting-master flag and zone;
//! - 4: whether the group's smallest broker id changes (for step 14);
//! - 5: the same address under another id (a slave promoted to master) is dropped;
//! - 6: an address change for an id loses against a newer controller epoch (state version);
//! - 7: a one-topic (incremental) registration may not be an id's first;
//! - 8: the id takes the address;
//! - 9: master (id 0), or "prime slave": the smallest id of a 5.x group without its master;
//! - 10: the group's topic writer (master or prime slave) writes its topics' queue data
//!   (and may first delete topics it no longer reports, `deleteTopicWithBrokerRegistration`);
//! - 11: the address's liveness entry; 12: its filter servers;
//! - 13: a slave is answered its master's address and HA address;
//! - 14: a min-broker-id change is notified to the group (`notifyMinBrokerIdChanged`).
//!
//! Everything that can refuse is checked before anything changes, so a refused
//! registration leaves the table as it was. Must not: do I/O or read the clock.

use super::group_topics::{pack, DeltaBase, Listed, Walk, FIELDS_UNKNOWN};
use super::*;
use meridian_protocol::body::TopicConfigRef;

/// A body with fewer topics than 1/this of the group's list is written topic by topic,
/// leaving the list as it is: rebuilding it costs O(list) (1.4 ms at 100k topics) where
/// the probes cost O(body). Smaller in unit tests, so the model test's few topics take
/// both paths.
const INCREMENTAL_SHARE_MAX: usize = if cfg!(test) { 2 } else { 16 };

/// A new group's body with at least this many topics is written in index order
/// (`write_new_list`); smaller ones in body order, where the probes stay in cache. Small in
/// unit tests, so the model test's few topics take both paths.
const PUT_MANY_TOPICS_MIN: usize = if cfg!(test) { 3 } else { 1024 };

/// What the broker-group update (steps 1–9) decided for the rest of a registration.
pub(super) struct GroupUpdate {
    is_master: bool,
    is_prime_slave: bool,
    enable_acting_master: bool,
    /// The address is new in its group (or was loaded by a warm restart): every topic is written.
    register_first: bool,
    min_id_changed: bool,
}

impl GroupUpdate {
    /// Step 10: only a master, or a 5.x slave standing in for an absent master, writes topics.
    fn writes_topics(&self) -> bool {
        self.is_master || self.is_prime_slave
    }
}

impl RouteTable {
    /// REGISTER_BROKER. `NeedFullBody` only for a request sent without its topics
    /// (`topics_unchanged`) that cannot stand for "as before".
    pub fn register_broker(&mut self, mut req: RegisterBroker, conn: ConnId, now_ms: u64) -> RegisterOutcome {
        let key = BrokerAddrKey { cluster: req.cluster_name.clone(), addr: req.broker_addr.clone() };
        self.last_topic_counts = TopicCounts::default();
        if req.topics_unchanged && !self.unchanged_topics_apply(&req, &key) {
            return RegisterOutcome::NeedFullBody;
        }
        if req.delta.is_some() && !self.delta_applies(&req) {
            return RegisterOutcome::NeedFullBody;
        }
        // Only these can be new: a delta's other members are the group's already.
        let configs = req.delta.as_ref().map_or(&req.body.topic_configs, |d| &d.topics.changed);
        // New topics are counted (a probe per topic) only if they could pass topicsMax.
        let new_topics = if self.topic_queue.len() + configs.len() > self.limits.topics_max {
            configs.iter().filter(|t| !self.topic_queue.contains_key(t.topic_name)).count()
        } else {
            0
        };
        if let Some(outcome) = self.refusal(&req, &key, new_topics) {
            return outcome;
        }
        let group = self.update_group(&req, &key);
        if group.writes_topics() {
            self.write_topics(&req, &key, &group);
        }
        self.record_live(&mut req, key, conn, now_ms, group.writes_topics());
        if group.min_id_changed && self.options.notify_min_broker_id_changed {
            self.notify_min_id_change(&req);
        }
        self.slave_answer(&req, group.is_master)
    }

    /// Steps 6, 7 and Meridian's limits: the outcome of a registration that must not change
    /// anything, if it is one.
    fn refusal(&mut self, req: &RegisterBroker, key: &BrokerAddrKey, new_topics: usize) -> Option<RegisterOutcome> {
        let dv = req.body.data_version;
        // Step 6.
        if let Some(old_addr) =
            self.broker_addr.get(&req.broker_name).and_then(|bd| bd.broker_addrs.get(&req.broker_id))
        {
            if *old_addr != req.broker_addr {
                let old_key = BrokerAddrKey { cluster: req.cluster_name.clone(), addr: old_addr.clone() };
                if self.live.get(&old_key).is_some_and(|l| l.data_version.state_version > dv.state_version) {
                    // Java removes the *registering* address's live entry and answers SUCCESS.
                    self.live.remove(key);
                    return Some(RegisterOutcome::Accepted { master_addr: None, ha_server_addr: None });
                }
            }
        }
        // Step 7.
        let id_known =
            self.broker_addr.get(&req.broker_name).is_some_and(|bd| bd.broker_addrs.contains_key(&req.broker_id));
        if !id_known && req.topic_count() == 1 {
            return Some(RegisterOutcome::Refused("register broker failed".to_string()));
        }
        if !self.live.contains_key(key) && self.live.len() >= self.limits.brokers_max {
            return Some(RegisterOutcome::Refused(format!(
                "broker table full: {} broker addresses >= brokersMax {}",
                self.live.len(),
                self.limits.brokers_max
            )));
        }
        if self.topic_queue.len() + new_topics > self.limits.topics_max {
            return Some(RegisterOutcome::Refused(format!(
                "topic table full: {} topics + {} new > topicsMax {}",
                self.topic_queue.len(),
                new_topics,
                self.limits.topics_max
            )));
        }
        None
    }

    /// Steps 1–9: the cluster and the broker group.
    fn update_group(&mut self, req: &RegisterBroker, key: &BrokerAddrKey) -> GroupUpdate {
        // A broker loaded by a warm restart: its registration replaces what was loaded.
        let was_provisional = self.live.get(key).is_some_and(|l| l.provisional);
        // Step 1.
        if self.cluster_addr.entry(req.cluster_name.clone()).or_default().insert(req.broker_name.clone()) {
            self.changes.cluster = true;
        }
        // Steps 2–3.
        let old_version_broker = req.enable_acting_master.is_none();
        let mut register_first = false;
        let stored = self.broker_addr.get(&req.broker_name);
        register_first |= stored.is_none();
        // Changed on a copy: routes share the stored `Arc`, which is replaced only on a change.
        let mut bd = match stored {
            Some(stored) => BrokerData::clone(stored),
            None => BrokerData {
                cluster: req.cluster_name.clone(),
                broker_name: req.broker_name.clone(),
                broker_addrs: BTreeMap::new(),
                enable_acting_master: false,
                zone_name: None,
            },
        };
        // Step 4 (before any change to the group).
        let min_id_changed = bd.broker_addrs.keys().next().is_some_and(|min| req.broker_id < *min);
        bd.enable_acting_master = !old_version_broker && req.enable_acting_master == Some(true);
        bd.zone_name = req.zone_name.clone();
        // Step 5.
        bd.broker_addrs.retain(|id, addr| !(*addr == req.broker_addr && *id != req.broker_id));
        // Step 8.
        let old_addr = bd.broker_addrs.insert(req.broker_id, req.broker_addr.clone());
        register_first |= old_addr.is_none() || was_provisional;
        // Step 9.
        let is_master = req.broker_id == MASTER_ID;
        let min_id = *bd.broker_addrs.keys().next().expect("just inserted an address");
        let is_prime_slave = !old_version_broker && !is_master && req.broker_id == min_id;
        let broker_changed = stored.is_none_or(|stored| bd != **stored);
        let enable_acting_master = bd.enable_acting_master;
        if broker_changed {
            self.groups_mut().insert(req.broker_name.clone(), Arc::new(bd));
            self.changes.cluster = true;
            self.mark_broker_topics(&req.broker_name);
        }
        GroupUpdate { is_master, is_prime_slave, enable_acting_master, register_first, min_id_changed }
    }

    /// Step 10: the topic writer's queue data (and static-topic mappings).
    fn write_topics(&mut self, req: &RegisterBroker, key: &BrokerAddrKey, group: &GroupUpdate) {
        if req.topics_unchanged {
            // Unread: the very bytes whose topics the group's queue data already holds
            // (`unchanged_topics_apply`). Nothing to write, and the list stays a delta base:
            // a broker re-sends unchanged bodies between changes, and the next change must
            // still be read as a delta.
            return;
        }
        let dv = req.body.data_version;
        let dv_changed = self.live.get(key).is_none_or(|l| l.data_version != dv);
        let write_all = group.register_first || dv_changed;
        if let Some(delta) = &req.delta {
            // It removes what the body no longer lists itself (see `write_delta`).
            self.write_delta(req, delta, group, write_all);
            return;
        }
        if self.options.delete_topic_with_broker_registration && req.body.topic_queue_mapping_infos.is_empty() {
            self.last_topic_counts.removed = self.remove_topics_missing_from(&req.broker_name, &req.body.topic_configs);
        }
        let listed = self.broker_topics.get(&req.broker_name).map_or(0, GroupTopics::len);
        if req.body.topic_configs.len() * INCREMENTAL_SHARE_MAX < listed {
            self.write_few_topics(req, group, write_all);
        } else {
            self.write_all_topics(req, group, write_all);
        }
        if dv_changed || group.register_first {
            for (topic, info) in &req.body.topic_queue_mapping_infos {
                if self.mapping.get(topic).and_then(|m| m.get(&info.bname)) != Some(info) {
                    let per_broker = Arc::make_mut(&mut self.mapping).entry(topic.clone()).or_default();
                    per_broker.insert(info.bname.clone(), info.clone());
                    self.touch(topic);
                }
            }
        }
    }

    /// The queue data a topic config gives this group (step 10's acting-master rewrite).
    pub(super) fn queue_data(tc: TopicConfigRef<'_>, broker_name: &Arc<str>, group: &GroupUpdate) -> QueueData {
        let mut perm = tc.perm;
        if group.is_prime_slave && group.enable_acting_master {
            perm &= !PERM_WRITE;
        }
        QueueData {
            broker_name: broker_name.clone(),
            read_queue_nums: tc.read_queue_nums,
            write_queue_nums: tc.write_queue_nums,
            perm,
            topic_sys_flag: tc.topic_sys_flag,
        }
    }

    /// A body far smaller than the group's list (a broker's one-topic registration when it
    /// creates a topic): each topic is probed, the list is left in place, not rebuilt.
    fn write_few_topics(&mut self, req: &RegisterBroker, group: &GroupUpdate, write_all: bool) {
        let broker_name = self.group_name(&req.broker_name);
        if let Some(topics) = self.broker_topics.get_mut(&req.broker_name) {
            topics.delta_base = None; // the list no longer follows one body
        }
        for tc in &req.body.topic_configs {
            if write_all || self.queue_data_of(tc.topic_name, &req.broker_name).is_none() {
                let put = self.put_queue_data(tc.topic_name, Self::queue_data(tc, &broker_name, group));
                self.count(put);
            }
        }
    }

    /// A full body: walked beside the group's list, which is rebuilt in this body's order
    /// (see `group_topics`).
    fn write_all_topics(&mut self, req: &RegisterBroker, group: &GroupUpdate, write_all: bool) {
        let broker_name = self.group_name(&req.broker_name);
        let prev = self.broker_topics.remove(&req.broker_name).unwrap_or_default();
        if prev.list.is_empty() && write_all && req.body.topic_configs.len() >= PUT_MANY_TOPICS_MIN {
            self.write_new_list(req, group, &broker_name);
            return;
        }
        let mut walk = Walk::new(&prev.list);
        let mut next: Vec<Listed> = Vec::with_capacity(req.body.topic_configs.len().max(prev.len()));
        // Topics the group had that this body lists out of step: their new fields.
        let mut moved: FastMap<TopicName, u64> = FastMap::default();
        for tc in &req.body.topic_configs {
            let qd = Self::queue_data(tc, &broker_name, group);
            let fields = pack(&qd);
            if let Some(old) = walk.find(tc.topic_name) {
                // In step: the group has the topic; written only if its fields differ.
                // Its recorded fields are true unless this body already wrote it out of step.
                let trusted = prev.in_sync && (moved.is_empty() || !moved.contains_key(&*old.name));
                let same = trusted && old.fields == fields && fields != FIELDS_UNKNOWN;
                if !write_all || same {
                    let fields = if trusted { old.fields } else { FIELDS_UNKNOWN };
                    next.push(Listed { name: old.name.clone(), fields });
                } else {
                    let (put, _) = self.put_entry(tc.topic_name, qd);
                    self.count(put);
                    if !trusted && !moved.is_empty() {
                        moved.remove(&*old.name); // this write is the last so far
                    }
                    next.push(Listed { name: old.name.clone(), fields });
                }
                continue;
            }
            // Out of step: the index decides.
            if !write_all && self.queue_data_of(tc.topic_name, &req.broker_name).is_some() {
                continue; // a leftover below keeps it
            }
            let (put, name) = self.put_entry(tc.topic_name, qd);
            self.count(put);
            match put {
                Put::Added => next.push(Listed { name, fields }),
                Put::Same | Put::Changed => {
                    moved.insert(name, fields);
                }
            }
        }
        self.settle_list(req, write_all, next, moved, walk.leftovers(), prev.in_sync);
    }

    /// A full body of a group that lists no topics yet (its first registration): every
    /// topic is written, through `TopicIndex::put_many` (one probe per topic, in index
    /// order), and the list is built in body order as `write_all_topics` would build it.
    fn write_new_list(&mut self, req: &RegisterBroker, group: &GroupUpdate, broker_name: &Arc<str>) {
        let configs = &req.body.topic_configs;
        // New names in body order, each shared by the list and (if the topic is new) its slot;
        // each with its queue data, which `put_many` carries (in index order, reading the
        // body's rows again would miss the cache per topic).
        let mut next: Vec<Listed> = Vec::with_capacity(configs.len());
        let mut names = Vec::with_capacity(configs.len());
        for tc in configs {
            let name = TopicName::from(tc.topic_name);
            let qd = Self::queue_data(tc, broker_name, group);
            next.push(Listed { name: name.clone(), fields: pack(&qd) });
            names.push((name, qd));
        }
        // Topics the index had: the slot's name (the list shares that allocation, not a
        // second one), and what the write did.
        let present = self.topic_queue.put_many(names.into_iter(), self.stamp, |_, qd: QueueData, slot| {
            let name = (!slot.created).then(|| slot.name.clone());
            let put = if name.is_some() && slot.current().queues().get(&qd.broker_name) == Some(&qd) {
                Put::Same
            } else if slot.open().queues_mut().insert(qd).is_some() {
                Put::Changed
            } else {
                Put::Added
            };
            name.map(|name| (put, name))
        });
        // Topics this group already had (a name listed twice): (body position, what happened).
        let mut had: Vec<(usize, Put)> = Vec::new();
        for (i, (put, name)) in present {
            next[i].name = name;
            if put != Put::Added {
                had.push((i, put));
            }
        }
        self.last_topic_counts.added += configs.len() - had.len();
        self.changes.topics |= had.len() < configs.len();
        let mut moved: FastMap<TopicName, u64> = FastMap::default();
        if !had.is_empty() {
            had.sort_unstable_by_key(|&(i, _)| i);
            let mut had = had.into_iter().peekable();
            let mut i = 0;
            next.retain(|l| {
                let this = i;
                i += 1;
                match had.next_if(|&(at, _)| at == this) {
                    None => true,
                    Some((_, put)) => {
                        self.changes.topics |= put == Put::Changed;
                        self.count(put);
                        moved.insert(l.name.clone(), l.fields);
                        false
                    }
                }
            });
        }
        self.settle_list(req, true, next, moved, std::iter::empty(), true);
    }

    /// The end of a full body's rebuild of its group's list `next` (in body order; `moved`:
    /// topics it wrote out of step, with their last fields): `leftovers` (the last list's
    /// topics this body did not list; their fields are true if that list was `in_sync`)
    /// stay the group's, and the list becomes a delta base if it is exactly this master's body.
    fn settle_list<'l>(
        &mut self,
        req: &RegisterBroker,
        write_all: bool,
        mut next: Vec<Listed>,
        mut moved: FastMap<TopicName, u64>,
        leftovers: impl Iterator<Item = &'l Listed>,
        in_sync: bool,
    ) {
        // In body order, one entry per topic, every field the body's: a base for deltas.
        let body_order = moved.is_empty() && next.len() == req.body.topic_configs.len();
        let delta_base = (body_order && write_all && req.broker_id == MASTER_ID)
            .then_some(req.prints_token)
            .flatten()
            .map(|token| DeltaBase { token, listed: next.len() });
        if !moved.is_empty() {
            // A name the body listed twice: the last write holds.
            for l in &mut next {
                if let Some(fields) = moved.remove(&l.name) {
                    l.fields = fields;
                }
            }
        }
        // Topics of the last list this body did not list in step: still the group's.
        for old in leftovers {
            let fields = match moved.remove(&old.name) {
                Some(fields) => fields,
                None if in_sync => old.fields,
                None => FIELDS_UNKNOWN,
            };
            next.push(Listed { name: old.name.clone(), fields });
        }
        debug_assert!(moved.is_empty(), "moved topics the group did not have");
        if !next.is_empty() {
            self.broker_topics.insert(req.broker_name.clone(), GroupTopics { list: next, in_sync: true, delta_base });
        }
    }

    pub(super) fn count(&mut self, put: Put) {
        match put {
            Put::Same => {}
            Put::Added => self.last_topic_counts.added += 1,
            Put::Changed => self.last_topic_counts.changed += 1,
        }
    }

    /// Steps 11–12: liveness and filter servers. A full body from the topic writer leaves
    /// its queue data intact; an unread one was admitted only if nothing changed that.
    fn record_live(
        &mut self,
        req: &mut RegisterBroker,
        key: BrokerAddrKey,
        conn: ConnId,
        now_ms: u64,
        writes_topics: bool,
    ) {
        let (topics_intact, body_fingerprint) = if req.topics_unchanged {
            self.live.get(&key).map_or((false, 0), |l| (l.topics_intact, l.body_fingerprint))
        } else {
            (writes_topics, req.body_fingerprint)
        };
        self.live.insert(
            key.clone(),
            LiveInfo {
                last_update_ms: now_ms,
                timeout_ms: req.heartbeat_timeout_ms.unwrap_or(self.limits.broker_timeout_default_ms),
                data_version: req.body.data_version,
                conn,
                ha_server_addr: req.ha_server_addr.clone(),
                topics_intact,
                body_fingerprint,
                provisional: false,
            },
        );
        if let Some(list) = req.body.filter_server_list.take() {
            let changed = if list.is_empty() {
                self.filter_servers.contains_key(&key) && Arc::make_mut(&mut self.filter_servers).remove(&key).is_some()
            } else {
                self.filter_servers.get(&key) != Some(&list)
                    && Arc::make_mut(&mut self.filter_servers).insert(key, list.clone()).as_ref() != Some(&list)
            };
            if changed {
                self.mark_broker_topics(&req.broker_name);
            }
        }
    }

    /// Step 14: tells the group (all but the new smallest id, or the only one) who leads.
    fn notify_min_id_change(&mut self, req: &RegisterBroker) {
        let Some(bd) = self.broker_addr.get(&req.broker_name) else { return };
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

    /// Step 13: a slave whose master is live is answered the master's addresses.
    fn slave_answer(&self, req: &RegisterBroker, is_master: bool) -> RegisterOutcome {
        if !is_master {
            let master = self.broker_addr.get(&req.broker_name).and_then(|bd| bd.broker_addrs.get(&MASTER_ID));
            if let Some(master_addr) = master {
                let master_key = BrokerAddrKey { cluster: req.cluster_name.clone(), addr: master_addr.clone() };
                if let Some(master_live) = self.live.get(&master_key) {
                    return RegisterOutcome::Accepted {
                        master_addr: Some(master_addr.clone()),
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
    pub(super) fn unchanged_topics_apply(&self, req: &RegisterBroker, key: &BrokerAddrKey) -> bool {
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
    pub(super) fn mark_topics_not_intact(&mut self, broker_name: &str) {
        let Some(bd) = self.broker_addr.get(broker_name) else { return };
        for addr in bd.broker_addrs.values() {
            if let Some(live) = self.live.get_mut(&BrokerAddrKey { cluster: bd.cluster.clone(), addr: addr.clone() }) {
                live.topics_intact = false;
            }
        }
    }
}
