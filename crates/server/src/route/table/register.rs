//! REGISTER_BROKER applied to the table, in the steps of Java's
//! RouteInfoManager.registerBroker: refusals first (nothing changes), then the cluster
//! and broker group, the topics the group's writer reports, liveness, filter servers and
//! the min-broker-id notification. Must not: do I/O or read the clock.

use super::*;

impl RouteTable {
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
