//! The route table as plain data, for the warm-restart file (`route::warm`): read access to
//! every map a restart needs, and `restore_provisional`, which loads a saved image into an
//! empty table with every broker address provisional.
//!
//! A child module of `table` so it can fill the private maps (and the reverse index) the
//! way registrations do, without widening the table's API to everything else.

use super::{BrokerAddrKey, BrokerQueues, LiveInfo, RouteTable, TopicName};
use crate::error::WarmFileError;
use crate::route::ConnId;
use meridian_protocol::body::{BrokerData, DataVersion, QueueData, TopicQueueMappingInfo};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One live broker address as saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedLive {
    pub key: BrokerAddrKey,
    pub timeout_ms: u64,
    /// The broker sent no `heartbeatTimeoutMillis` (`timeout_ms` was the saving server's
    /// `brokerTimeoutDefaultMs`): the loading server's default applies instead.
    pub timeout_default: bool,
    pub data_version: DataVersion,
    pub ha_server_addr: String,
    /// It was still provisional when saved (loaded by an earlier warm restart and not heard
    /// from since): its timeout keeps counting down from where it was instead of restarting.
    pub provisional: bool,
    /// How long it had been silent when saved.
    pub silent_ms: u64,
}

/// Everything that decides routes, cluster info and the registration rules, as owned data
/// (decoded from the warm-restart file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableImage {
    /// clusterName -> brokerNames.
    pub clusters: Vec<(String, Vec<String>)>,
    pub brokers: Vec<BrokerData>,
    pub live: Vec<SavedLive>,
    pub filter_servers: Vec<(BrokerAddrKey, Vec<String>)>,
    /// topic -> its queue data, one per broker name (wiped write perms included).
    pub topics: Vec<(String, Vec<QueueData>)>,
    /// topic -> brokerName -> static-topic mapping.
    pub mappings: Vec<(String, Vec<(String, TopicQueueMappingInfo)>)>,
}

/// What `restore_provisional` loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub brokers: usize,
    pub broker_names: usize,
    pub clusters: usize,
    pub topics: usize,
}

impl RouteTable {
    /// Live entries (broker addresses) with their liveness data.
    pub fn live_entries(&self) -> &HashMap<BrokerAddrKey, LiveInfo> {
        &self.live
    }

    /// Filter servers by broker address.
    pub fn filter_server_entries(&self) -> &HashMap<BrokerAddrKey, Vec<String>> {
        &self.filter_servers
    }

    /// topic -> brokerName -> QueueData (`topic_count` of them).
    pub fn topic_entries(&self) -> impl Iterator<Item = (&TopicName, &BrokerQueues)> {
        self.topic_queue.iter().map(|(name, entry)| (name, entry.queues()))
    }

    /// topic -> brokerName -> static-topic mapping.
    pub fn mapping_entries(&self) -> &HashMap<String, BTreeMap<String, TopicQueueMappingInfo>> {
        &self.mapping
    }

    /// Broker addresses loaded by a warm restart and not heard from since.
    pub fn provisional_count(&self) -> usize {
        self.live.values().filter(|l| l.provisional).count()
    }

    /// Loads `image` into this empty table. Every broker address becomes provisional: no
    /// connection (`ConnId::NONE`, so no connection close removes it), last heard of at
    /// `now_ms` so the normal expiry applies (this server's `brokerTimeoutDefaultMs` for a
    /// broker that sent no timeout of its own) — except addresses that were provisional when
    /// saved, whose timeout keeps counting down — and its next registration is applied as a
    /// first one. Refused, with nothing changed, if the table is not empty or the image
    /// exceeds `topicsMax` / `brokersMax`.
    pub fn restore_provisional(&mut self, image: TableImage, now_ms: u64) -> Result<Restored, WarmFileError> {
        if !(self.live.is_empty() && self.topic_queue.is_empty() && self.broker_addr.is_empty()) {
            return Err(WarmFileError::TableNotEmpty);
        }
        if image.topics.len() > self.limits.topics_max {
            let (count, max) = (image.topics.len(), self.limits.topics_max);
            return Err(WarmFileError::OverLimit { count, what: "topics", key: "topicsMax", max });
        }
        if image.live.len() > self.limits.brokers_max {
            let (count, max) = (image.live.len(), self.limits.brokers_max);
            return Err(WarmFileError::OverLimit { count, what: "broker addresses", key: "brokersMax", max });
        }
        let restored = Restored {
            brokers: image.live.len(),
            broker_names: image.brokers.len(),
            clusters: image.clusters.len(),
            topics: image.topics.len(),
        };
        for (cluster, names) in image.clusters {
            if !names.is_empty() {
                self.cluster_addr.entry(cluster).or_default().extend(names);
            }
        }
        for bd in image.brokers {
            self.groups_mut().insert(bd.broker_name.clone(), Arc::new(bd));
        }
        for saved in image.live {
            let timeout_ms =
                if saved.timeout_default { self.limits.broker_timeout_default_ms } else { saved.timeout_ms };
            let timeout_ms =
                if saved.provisional { timeout_ms.saturating_sub(saved.silent_ms).max(1) } else { timeout_ms };
            self.live.insert(
                saved.key,
                LiveInfo {
                    last_update_ms: now_ms,
                    timeout_ms,
                    data_version: saved.data_version,
                    conn: ConnId::NONE,
                    ha_server_addr: saved.ha_server_addr,
                    topics_intact: false,
                    body_fingerprint: 0,
                    provisional: true,
                },
            );
        }
        let filter_servers = image.filter_servers.into_iter().filter(|(_, list)| !list.is_empty());
        Arc::make_mut(&mut self.filter_servers).extend(filter_servers);
        self.topic_queue.reserve_for(image.topics.iter().map(|(t, _)| t.as_str()));
        for (topic, queues) in image.topics {
            for qd in queues {
                self.put_queue_data(&topic, qd);
            }
        }
        for (topic, per_broker) in image.mappings {
            Arc::make_mut(&mut self.mapping).entry(topic.clone()).or_default().extend(per_broker);
            self.touch(&topic);
        }
        self.changes.cluster = true;
        self.debug_check_index();
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::table::{RegisterBroker, TableLimits};
    use meridian_protocol::body::RegisterBrokerBody;

    const LIMITS: TableLimits = TableLimits { topics_max: 100, brokers_max: 10, broker_timeout_default_ms: 120_000 };

    fn qd(name: &str, perm: i32) -> QueueData {
        QueueData { broker_name: Arc::from(name), read_queue_nums: 4, write_queue_nums: 4, perm, topic_sys_flag: 0 }
    }

    fn image() -> TableImage {
        let key = BrokerAddrKey { cluster: "c1".into(), addr: "10.0.0.1:10911".into() };
        TableImage {
            clusters: vec![("c1".into(), vec!["broker-a".into()])],
            brokers: vec![BrokerData {
                cluster: "c1".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([(0, key.addr.clone())]),
                enable_acting_master: false,
                zone_name: None,
            }],
            live: vec![SavedLive {
                key,
                timeout_ms: 1_000,
                timeout_default: false,
                data_version: DataVersion { counter: 3, state_version: 0, timestamp: 7 },
                ha_server_addr: "10.0.0.1:10912".into(),
                provisional: false,
                silent_ms: 400,
            }],
            filter_servers: Vec::new(),
            topics: vec![("T1".into(), vec![qd("broker-a", 4)]), ("T2".into(), vec![qd("broker-a", 6)])],
            mappings: Vec::new(),
        }
    }

    #[test]
    fn restored_brokers_are_provisional_until_they_register_and_expire_normally() {
        let mut t = RouteTable::new(LIMITS);
        let restored = t.restore_provisional(image(), 5_000).unwrap();
        assert_eq!(restored, Restored { brokers: 1, broker_names: 1, clusters: 1, topics: 2 });
        assert_eq!(t.provisional_count(), 1);
        let live = t.live_info("c1", "10.0.0.1:10911").unwrap();
        assert_eq!((live.last_update_ms, live.timeout_ms, live.conn), (5_000, 1_000, ConnId::NONE));
        assert_eq!(t.changed_topics().len(), 2);
        let changes = t.take_changes();
        assert!(changes.cluster && changes.topics);
        // No connection ties it: a close of any connection leaves it.
        assert!(t.connection_closed(ConnId(1)).is_empty());
        // A heartbeat confirms it; the normal expiry applies from there.
        t.heartbeat("c1", "10.0.0.1:10911", 5_500);
        assert_eq!(t.provisional_count(), 0);
        assert!(t.scan_expired(6_500).is_empty());
        assert_eq!(t.scan_expired(6_501).len(), 1);
        assert_eq!((t.topic_count(), t.live_count()), (0, 0));
        assert!(t.brokers().is_empty() && t.clusters().is_empty());

        // Still provisional when saved: the timeout keeps counting (1000 - 400 left).
        let mut still = image();
        still.live[0].provisional = true;
        let mut t = RouteTable::new(LIMITS);
        t.restore_provisional(still, 0).unwrap();
        assert!(t.scan_expired(600).is_empty());
        assert_eq!(t.scan_expired(601).len(), 1);

        // No timeout of its own: this server's default applies.
        let mut default = image();
        default.live[0].timeout_default = true;
        let mut t = RouteTable::new(LIMITS);
        t.restore_provisional(default, 0).unwrap();
        assert_eq!(t.live_info("c1", "10.0.0.1:10911").unwrap().timeout_ms, 120_000);
    }

    #[test]
    fn a_registration_replaces_the_provisional_queue_data() {
        let mut t = RouteTable::new(LIMITS);
        t.restore_provisional(image(), 0).unwrap();
        // The same data version: applied as a first registration (T1's wiped write perm is
        // rewritten from the broker's truth), topics it no longer lists stay as Java keeps them.
        let mut t1 = meridian_protocol::body::TopicConfig::new("T1");
        t1.read_queue_nums = 8;
        t1.write_queue_nums = 8;
        let mut t3 = meridian_protocol::body::TopicConfig::new("T3");
        t3.read_queue_nums = 2;
        t3.write_queue_nums = 2;
        let req = RegisterBroker {
            cluster_name: "c1".into(),
            broker_addr: "10.0.0.1:10911".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            ha_server_addr: "10.0.0.1:10912".into(),
            heartbeat_timeout_ms: None,
            enable_acting_master: Some(false),
            zone_name: None,
            body: RegisterBrokerBody {
                data_version: DataVersion { counter: 3, state_version: 0, timestamp: 7 },
                topic_configs: vec![t1, t3].into(),
                filter_server_list: Some(Vec::new()),
                topic_queue_mapping_infos: Vec::new(),
            },
            topics_unchanged: false,
            body_fingerprint: 0,
            prints_token: None,
            delta: None,
        };
        t.register_broker(req, ConnId(9), 10);
        assert_eq!(t.provisional_count(), 0);
        let live = t.live_info("c1", "10.0.0.1:10911").unwrap();
        assert_eq!((live.conn, live.timeout_ms), (ConnId(9), 120_000));
        let t1 = t.topic_queue_datas("T1").unwrap().get("broker-a").unwrap();
        assert_eq!((t1.read_queue_nums, t1.perm), (8, 6));
        assert!(t.topic_queue_datas("T2").is_some());
        assert!(t.topic_queue_datas("T3").is_some());
        // Now tied to its connection.
        assert_eq!(t.connection_closed(ConnId(9)).len(), 1);
        assert_eq!(t.topic_count(), 0);
    }

    #[test]
    fn limits_and_a_non_empty_table_refuse_the_image() {
        let mut t = RouteTable::new(TableLimits { topics_max: 1, ..LIMITS });
        assert!(t.restore_provisional(image(), 0).unwrap_err().to_string().contains("topicsMax 1"));
        assert_eq!((t.topic_count(), t.live_count()), (0, 0));
        let mut t = RouteTable::new(TableLimits { brokers_max: 0, ..LIMITS });
        assert!(t.restore_provisional(image(), 0).unwrap_err().to_string().contains("brokersMax 0"));
        let mut t = RouteTable::new(LIMITS);
        t.restore_provisional(image(), 0).unwrap();
        assert!(t.restore_provisional(image(), 0).unwrap_err().to_string().contains("not empty"));
    }
}
