//! Smaller requests on the table: data-version queries and heartbeats, REGISTER_TOPIC,
//! topic deletion and write-permission changes, and the topic lists. Must not: do I/O or
//! build answers.

use super::*;
use crate::error::TopicTableFull;

impl RouteTable {
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

    /// REGISTER_TOPIC_IN_NAMESRV (RouteInfoManager.registerTopic): applies queue data in order and stops
    /// at the first broker name that is not registered, as Java does.
    pub fn register_topic(&mut self, topic: &str, queue_datas: Vec<QueueData>) -> Result<(), TopicTableFull> {
        if !self.topic_queue.contains_key(topic) && self.topic_queue.len() >= self.limits.topics_max {
            return Err(TopicTableFull { topics: self.topic_queue.len(), topics_max: self.limits.topics_max });
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
    pub(super) fn remove_queue_data(&mut self, topic: &str, broker_name: &str) -> bool {
        if !self.drop_queue_data(topic, broker_name) {
            return false;
        }
        if let Some(topics) = self.broker_topics.get_mut(broker_name) {
            topics.remove(topic);
            if topics.is_empty() {
                self.broker_topics.remove(broker_name);
            }
        }
        self.mark_topics_not_intact(broker_name);
        true
    }

    /// Removes `broker_name`'s queue data from `topic` (dropping a topic left with none);
    /// false if it had none. The reverse index is the caller's.
    pub(super) fn drop_queue_data(&mut self, topic: &str, broker_name: &str) -> bool {
        let Some(entry) = self.topic_queue.get(topic) else { return false };
        let queues = entry.queues();
        if !queues.contains_key(broker_name) {
            return false;
        }
        if queues.len() == 1 {
            // Its last queue data: the topic goes, without a new entry first.
            self.topic_queue.remove(topic);
        } else {
            let opened = self.topic_queue.get_mut(topic, self.stamp).expect("found above");
            opened.entry.queues_mut().remove(broker_name);
        }
        self.changes.topics = true;
        true
    }

    /// Sets the permission of `broker_name`'s queue data of `topic`, which must exist.
    pub(super) fn set_perm(&mut self, topic: &str, broker_name: &str, perm: i32) {
        let opened = self.topic_queue.get_mut(topic, self.stamp).expect("caller found the topic");
        opened.entry.queues_mut().get_mut(broker_name).expect("caller found the queue data").perm = perm;
        self.changes.topics = true;
        if let Some(topics) = self.broker_topics.get_mut(broker_name) {
            topics.in_sync = false;
        }
    }

    /// Step 10a: topics this broker no longer reports lose its queue data; returns how many.
    pub(super) fn remove_topics_missing_from(
        &mut self,
        broker_name: &str,
        reported: &meridian_protocol::body::TopicConfigs,
    ) -> usize {
        let Some(current) = self.broker_topics.get(broker_name) else { return 0 };
        let reported: HashSet<&str> = reported.iter().map(|t| t.topic_name).collect();
        let gone: FastSet<TopicName> = current.names().filter(|t| !reported.contains(&***t)).cloned().collect();
        if gone.is_empty() {
            return 0;
        }
        for topic in &gone {
            self.drop_queue_data(topic, broker_name);
        }
        // One pass over the list, which keeps its order for the next registration's walk.
        if let Some(topics) = self.broker_topics.get_mut(broker_name) {
            topics.list.retain(|l| !gone.contains(&l.name));
            topics.delta_base = None;
            if topics.is_empty() {
                self.broker_topics.remove(broker_name);
            }
        }
        self.mark_topics_not_intact(broker_name);
        gone.len()
    }

    /// DELETE_TOPIC_IN_NAMESRV (RouteInfoManager.deleteTopic): with a cluster, only that cluster's
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
                let names: Vec<String> = self
                    .topic_queue
                    .get(topic)
                    .map(|e| e.queues().keys().map(str::to_string).collect())
                    .unwrap_or_default();
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
            self.broker_topics.get(broker_name).map(|t| t.names().cloned().collect()).unwrap_or_default();
        let mut count = 0;
        for topic in topics {
            let Some(old) = self.queue_data_of(&topic, broker_name) else { continue };
            count += 1;
            let perm = if wipe { old.perm & !PERM_WRITE } else { PERM_READ | PERM_WRITE };
            if old.perm != perm {
                self.set_perm(&topic, broker_name, perm);
            }
        }
        count
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER: every topic with queue data.
    pub fn all_topics(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.topic_queue.iter().map(|(t, _)| &**t).collect();
        v.sort_unstable();
        v
    }

    /// GET_TOPICS_BY_CLUSTER: topics with queue data on any broker name of the cluster.
    pub fn topics_by_cluster(&self, cluster: &str) -> Vec<&str> {
        let mut set: BTreeSet<&str> = BTreeSet::new();
        for name in self.cluster_addr.get(cluster).into_iter().flatten() {
            for topic in self.broker_topics.get(name).into_iter().flat_map(GroupTopics::names) {
                if self.queue_data_of(topic, name).is_some() {
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
            .filter(|(_, entry)| {
                let Some(qd) = entry.queues().values().next() else { return false };
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
}
