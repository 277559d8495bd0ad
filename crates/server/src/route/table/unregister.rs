//! Removing brokers: UNREGISTER_BROKER batches (as Java's BatchUnregistrationService
//! applies them), closed connections and the expiry scan. Must not: do I/O or read the
//! clock (the scan takes `now_ms`).

use super::*;

impl RouteTable {
    /// Removes a batch of broker addresses (RouteInfoManager.unRegisterBroker). Unknown brokers are a no-op.
    pub fn unregister(&mut self, batch: &[Unregister]) {
        let mut removed: Vec<String> = Vec::new();
        let mut reduced: Vec<String> = Vec::new();
        for r in batch {
            let key = BrokerAddrKey { cluster: r.cluster_name.clone(), addr: r.broker_addr.clone() };
            self.live.remove(&key);
            if self.filter_servers.contains_key(&key) {
                Arc::make_mut(&mut self.filter_servers).remove(&key);
                self.mark_broker_topics(&r.broker_name);
            }
            // Changed on a copy: snapshots share the stored group until it is replaced.
            let Some(stored) = self.broker_addr.get(&r.broker_name) else { continue };
            let mut bd = BrokerData::clone(stored);
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
                // A group that goes loses its queue data below, which replaces those entries.
                if !now_empty {
                    self.mark_broker_topics(&r.broker_name);
                }
            }
            if now_empty {
                self.groups_mut().remove(&r.broker_name);
                self.group_names.remove(&r.broker_name);
                if let Some(names) = self.cluster_addr.get_mut(&r.cluster_name) {
                    names.remove(&r.broker_name);
                    if names.is_empty() {
                        self.cluster_addr.remove(&r.cluster_name);
                    }
                }
                self.changes.cluster = true;
                removed.push(r.broker_name.clone());
            } else {
                if shrunk {
                    self.groups_mut().insert(r.broker_name.clone(), Arc::new(bd));
                }
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
            for topic in topics.names() {
                self.drop_queue_data(topic, &name);
            }
        }
        // Step 5: an acting-master group that lost its master stops taking writes.
        for name in reduced {
            let Some(bd) = self.broker_addr.get(&name) else { continue };
            if !bd.enable_acting_master || bd.broker_addrs.contains_key(&MASTER_ID) {
                continue;
            }
            let topics: Vec<TopicName> =
                self.broker_topics.get(&name).map(|t| t.names().cloned().collect()).unwrap_or_default();
            for topic in topics {
                let perm = self.queue_data_of(&topic, &name).map(|q| q.perm);
                if let Some(perm) = perm.filter(|p| p & PERM_WRITE != 0) {
                    self.set_perm(&topic, &name, perm & !PERM_WRITE);
                }
            }
        }
        self.debug_check_index();
    }

    /// Turns live keys into unregister requests, looking up brokerName/brokerId by scanning
    /// the cluster's broker groups for the address, as Java does (not found: nothing).
    pub(super) fn unregister_requests_for(&self, keys: &[BrokerAddrKey]) -> Vec<Unregister> {
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

    /// Expiry scan (RouteInfoManager.scanNotActiveBroker): brokers silent past their timeout are unregistered.
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
}
