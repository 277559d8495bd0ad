//! The writer's admin and KV requests: reads and changes of the table, the KV config and
//! the NameServer config it owns, returned as `AdminResult` data (Java's RouteInfoManager
//! and KVConfigManager side; `request::admin` builds the answers, as Java's
//! DefaultRequestProcessor does). Must not: build answers or name wire fields.

use super::{AdminRequest, AdminResult, LiveBroker, Writer};
use crate::config::Config;
use crate::error::{PersistError, PersistTarget};
use crate::persist;
use crate::route::kv::{KvLimits, KvPutError, NAMESPACE_ORDER_TOPIC_CONFIG};
use std::collections::HashMap;
use std::sync::Arc;

fn owned(topics: Vec<&str>) -> Vec<String> {
    topics.into_iter().map(str::to_string).collect()
}

impl Writer {
    pub(super) fn admin(&mut self, request: AdminRequest) -> AdminResult {
        let n = &self.config.namesrv;
        match request {
            AdminRequest::PutKv { namespace, key, value } => {
                let path = self.config.kv_config_path();
                let limits = KvLimits {
                    entries_max: self.config.kv_entries_max,
                    value_bytes_max: self.config.kv_value_bytes_max,
                    bytes_max: self.config.kv_bytes_max,
                };
                match self.kv.put(&path, limits, namespace.clone(), key.clone(), value) {
                    Ok(()) => {
                        self.kv_changed(&namespace, &key);
                        AdminResult::Done
                    }
                    Err(KvPutError::Limit(why)) => AdminResult::KvLimit(why),
                    Err(KvPutError::NotPersisted(e)) => AdminResult::NotPersisted(e),
                }
            }
            AdminRequest::DeleteKv { namespace, key } => {
                let path = self.config.kv_config_path();
                match self.kv.delete(&path, namespace.clone(), key.clone()) {
                    Ok(()) => {
                        self.kv_changed(&namespace, &key);
                        AdminResult::Done
                    }
                    Err(e) => AdminResult::NotPersisted(e),
                }
            }
            AdminRequest::GetKv { namespace, key } => AdminResult::KvValue(self.kv.get(&namespace, &key).cloned()),
            AdminRequest::GetKvList { namespace } => AdminResult::KvList(
                self.kv.namespace(&namespace).map(|ns| ns.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            ),
            AdminRequest::AllTopics if !n.enable_all_topic_list => AdminResult::ListingDisabled,
            AdminRequest::AllTopics => {
                AdminResult::Topics { topics: owned(self.table.all_topics()), broker_addr: None }
            }
            AdminRequest::TopicsByCluster { .. } | AdminRequest::UnitTopics(_) if !n.enable_topic_list => {
                AdminResult::ListingDisabled
            }
            AdminRequest::TopicsByCluster { cluster } => {
                AdminResult::Topics { topics: owned(self.table.topics_by_cluster(&cluster)), broker_addr: None }
            }
            AdminRequest::UnitTopics(which) => {
                AdminResult::Topics { topics: owned(self.table.unit_topics(which)), broker_addr: None }
            }
            AdminRequest::SystemTopics => {
                let (topics, addr) = self.table.system_topics();
                AdminResult::Topics { topics: owned(topics), broker_addr: addr.map(str::to_string) }
            }
            AdminRequest::DeleteTopic { topic, cluster } => {
                self.table.delete_topic(&topic, cluster.as_deref().filter(|c| !c.is_empty()));
                AdminResult::Done
            }
            AdminRequest::WritePerm { broker_name, wipe } => {
                AdminResult::WritePermChanged(self.table.operate_write_perm(&broker_name, wipe))
            }
            AdminRequest::MemberGroup { broker_name } => AdminResult::MemberGroup(
                self.table.broker_data(&broker_name).map(|bd| bd.broker_addrs.clone()).unwrap_or_default(),
            ),
            AdminRequest::BrokerLiveTable => AdminResult::BrokerLiveTable(self.broker_live_table()),
            AdminRequest::GetConfig => AdminResult::Config(self.config.properties()),
            AdminRequest::UpdateConfig { properties } => self.update_config(properties),
        }
    }

    fn kv_changed(&mut self, namespace: &str, key: &str) {
        if namespace == NAMESPACE_ORDER_TOPIC_CONFIG && self.build.order_topic_conf.is_some() {
            Arc::make_mut(&mut self.build).order_topic_conf = Some(self.order_topic_conf());
            self.table.mark_topic_changed(key);
        }
    }

    /// UPDATE_NAMESRV_CONFIG (Java's Configuration.update): every key or none; the config
    /// store is rewritten before the change is acknowledged.
    fn update_config(&mut self, properties: Vec<(String, String)>) -> AdminResult {
        if properties.iter().any(|(k, _)| self.config.namesrv.is_black_listed(k)) {
            return AdminResult::ConfigBlackListed;
        }
        // Known keys outside `remoteConfigUpdateKeys` spoil the whole update; unknown ones
        // are ignored below, as Java ignores them.
        let refused = properties.iter().find(|(k, _)| !self.config.is_remotely_writable(k) && Config::is_known_key(k));
        if let Some((key, _)) = refused {
            return AdminResult::ConfigKeyNotRemote(key.clone());
        }
        let mut next = self.config.clone();
        for (k, v) in &properties {
            match next.set(k, v) {
                Ok(()) => {}
                // Java applies only keys it knows and ignores the rest.
                Err(e) if e.is_unknown_key() => {}
                Err(e) => return AdminResult::ConfigInvalid(e),
            }
        }
        let mut text = String::new();
        for (k, v) in next.properties() {
            text.push_str(&format!("{k}={v}\n"));
        }
        let path = next.config_store_path();
        if let Err(cause) = persist::write_atomic(&path, text.as_bytes()) {
            tracing::error!("cannot write config store {}: {cause}; the update was not applied", path.display());
            return AdminResult::NotPersisted(PersistError { target: PersistTarget::ConfigStore, path, cause });
        }
        tracing::info!(
            "UPDATE_NAMESRV_CONFIG applied {:?}; NameServer switches take effect now, listener/limit keys at the next start",
            properties.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
        );
        // Only the NameServer switches change behaviour at run time; the rest of `next`
        // (listen address, limits) is shown by GET_NAMESRV_CONFIG and is what the next
        // start reads.
        self.config = next;
        self.apply_switches();
        AdminResult::Done
    }

    /// Every live broker address, sorted by cluster then address.
    fn broker_live_table(&self) -> Vec<LiveBroker> {
        let now_ms = self.now_ms();
        let mut names: HashMap<(&str, &str), (&str, i64)> = HashMap::new();
        for bd in self.table.brokers().values() {
            for (id, addr) in &bd.broker_addrs {
                names.insert((&*bd.cluster, addr.as_str()), (&*bd.broker_name, *id));
            }
        }
        let mut entries: Vec<_> = self.table.live_entries().iter().collect();
        entries.sort_by(|(a, _), (b, _)| (&a.cluster, &a.addr).cmp(&(&b.cluster, &b.addr)));
        entries
            .into_iter()
            .map(|(key, live)| {
                let (name, id) = names.get(&(key.cluster.as_str(), key.addr.as_str())).copied().unzip();
                LiveBroker {
                    cluster: key.cluster.clone(),
                    broker_name: name.map(str::to_string),
                    broker_id: id,
                    addr: key.addr.clone(),
                    data_version: live.data_version,
                    silent_ms: now_ms.saturating_sub(live.last_update_ms),
                    timeout_ms: live.timeout_ms,
                    provisional: live.provisional,
                }
            })
            .collect()
    }
}
