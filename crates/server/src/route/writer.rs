//! The single writer: drains `RouteUpdate`s in batches, applies them to the one
//! `RouteTable` and the KV config, runs the expiry scan, and publishes the next
//! `RouteSnapshot`.
//!
//! Runs on its own OS thread so that applying a 100k-topic registration or re-encoding many
//! routes never occupies a shard's executor while it has lookups to answer. It writes to no
//! socket: answers go back over the one-shot channel carried by each update, and only
//! *after* the snapshot containing the change is published, so a peer that got its answer
//! sees its change on any shard. KV and config writes are durable before they are answered.

use super::snapshot::{RouteBuildOptions, SnapshotCell};
use super::table::{
    MinIdNotification, RegisterBroker, RegisterOutcome, RouteTable, TableLimits, TableOptions, UnitList, Unregister,
};
use super::{events, warm, ConnId};
use crate::config::Config;
use crate::logging::{Admit, WarnLimiter};
use crate::metrics::counters::{RemovalCause, WriterMetrics};
use crate::persist::{self, KvTable};
use meridian_protocol::answer::Answer;
use meridian_protocol::body::{self, DataVersion, QueueData};
use meridian_protocol::codes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Updates applied before one publication; bounds reply latency under a storm.
pub const BATCH_LEN_MAX: usize = 1024;
/// The KV namespace the NameServer itself interprets (behaviour.md §9).
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

/// One-shot reply channel.
pub type Reply<T> = flume::Sender<T>;

/// Admin and KV requests: rare, answered by the writer from the table it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    PutKv {
        namespace: String,
        key: String,
        value: String,
    },
    GetKv {
        namespace: String,
        key: String,
    },
    DeleteKv {
        namespace: String,
        key: String,
    },
    GetKvList {
        namespace: String,
    },
    AllTopics,
    TopicsByCluster {
        cluster: String,
    },
    SystemTopics,
    UnitTopics(UnitList),
    DeleteTopic {
        topic: String,
        cluster: Option<String>,
    },
    WritePerm {
        broker_name: String,
        wipe: bool,
    },
    MemberGroup {
        cluster: String,
        broker_name: String,
    },
    GetConfig,
    UpdateConfig {
        body: Vec<u8>,
    },
    /// MERIDIAN_BROKER_LIVE_TABLE: read only, refreshes nothing.
    BrokerLiveTable,
}

pub enum RouteUpdate {
    /// Answered `None` when the request's unread topics cannot stand for "as before"
    /// (`RegisterOutcome::NeedFullBody`): the shard then sends the decoded body.
    RegisterBroker {
        req: Box<RegisterBroker>,
        conn: ConnId,
        reply: Reply<Option<Answer>>,
    },
    UnregisterBroker {
        req: Unregister,
        reply: Reply<()>,
    },
    QueryDataVersion {
        cluster: String,
        addr: String,
        data_version: DataVersion,
        reply: Reply<(bool, Option<DataVersion>)>,
    },
    BrokerHeartbeat {
        cluster: String,
        addr: String,
    },
    RegisterTopic {
        topic: String,
        queue_datas: Vec<QueueData>,
        reply: Reply<Answer>,
    },
    /// A connection that had registered a broker closed.
    ConnectionClosed {
        conn: ConnId,
    },
    Admin {
        request: AdminRequest,
        reply: Reply<Answer>,
    },
    /// Graceful stop with `warm_restart` on: save the routes for the next start, after
    /// everything queued before it; answered once written, or at `deadline`.
    SaveWarmRestart {
        deadline: Instant,
        reply: Reply<Result<(), String>>,
    },
}

/// What the writer is started with besides its channels.
pub struct WriterSetup {
    pub config: Config,
    pub kv: KvTable,
    pub published: SnapshotCell,
    pub updates: flume::Receiver<RouteUpdate>,
    /// Per-shard channels to close a connection whose broker expired (Java closes it too).
    pub closers: Vec<flume::Sender<ConnId>>,
    /// NOTIFY_MIN_BROKER_ID_CHANGE messages for the notifier thread.
    pub notifications: flume::Sender<MinIdNotification>,
    pub metrics: Arc<WriterMetrics>,
    /// One per shard, capacity 1: "a new snapshot is out" (wakes route watches).
    pub published_signals: Vec<flume::Sender<()>>,
    pub started_at: Instant,
}

pub struct Writer {
    table: RouteTable,
    config: Config,
    kv: KvTable,
    published: SnapshotCell,
    updates: flume::Receiver<RouteUpdate>,
    closers: Vec<flume::Sender<ConnId>>,
    notifications: flume::Sender<MinIdNotification>,
    metrics: Arc<WriterMetrics>,
    published_signals: Vec<flume::Sender<()>>,
    started_at: Instant,
    build: RouteBuildOptions,
    /// Warnings about peers (refused registrations): bounded per window.
    peer_warnings: WarnLimiter,
    /// Periodic and final route saves for a warm restart (`warm_restart` on).
    warm: Option<warm::WarmRestart>,
}

enum Pending {
    Answer(Reply<Answer>, Answer),
    Register(Reply<Option<Answer>>, Option<Answer>),
    Unit(Reply<()>),
    Version(Reply<(bool, Option<DataVersion>)>, (bool, Option<DataVersion>)),
    WarmSave(Reply<Result<(), String>>, Instant),
}

fn table_limits(config: &Config) -> TableLimits {
    TableLimits {
        topics_max: config.topics_max,
        brokers_max: config.brokers_max,
        broker_timeout_default_ms: config.broker_timeout_default_ms,
    }
}

impl Writer {
    pub fn new(setup: WriterSetup) -> Writer {
        let mut w = Writer {
            table: RouteTable::new(table_limits(&setup.config)),
            config: setup.config,
            kv: setup.kv,
            published: setup.published,
            updates: setup.updates,
            closers: setup.closers,
            notifications: setup.notifications,
            metrics: setup.metrics,
            published_signals: setup.published_signals,
            started_at: setup.started_at,
            build: RouteBuildOptions::default(),
            peer_warnings: WarnLimiter::new("route writer"),
            warm: None,
        };
        w.apply_switches();
        // A warm restart loads the saved routes before the first snapshot is published.
        let now_ms = w.now_ms();
        w.warm = warm::WarmRestart::start(&w.config, &mut w.table, now_ms);
        w.record_table_sizes();
        // The first snapshot already carries the switches (e.g. needWaitForService).
        let not_ready_until = w.not_ready_until();
        let first = w.published.load().next(&mut w.table, &w.build, not_ready_until);
        w.published.store(Arc::new(first));
        w
    }

    fn now_ms(&self) -> u64 {
        self.started_at.elapsed().as_millis() as u64
    }

    fn not_ready_until(&self) -> Option<Instant> {
        let n = &self.config.namesrv;
        n.need_wait_for_service.then(|| self.started_at + Duration::from_secs(n.wait_seconds_for_service))
    }

    /// Pushes the NamesrvConfig switches into the table rules and the route build options.
    fn apply_switches(&mut self) {
        let n = &self.config.namesrv;
        self.table.set_options(TableOptions {
            delete_topic_with_broker_registration: n.delete_topic_with_broker_registration,
            notify_min_broker_id_changed: n.notify_min_broker_id_changed,
        });
        let build = RouteBuildOptions {
            order_topic_conf: n.order_message_enable.then(|| self.order_topic_conf()),
            support_acting_master: n.support_acting_master,
        };
        if build.support_acting_master != self.build.support_acting_master
            || build.order_topic_conf.is_some() != self.build.order_topic_conf.is_some()
        {
            self.table.mark_all_topics_changed();
        }
        self.build = build;
    }

    fn order_topic_conf(&self) -> std::collections::BTreeMap<String, String> {
        self.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG).cloned().unwrap_or_default()
    }

    /// Runs until every sender is gone.
    pub fn run(mut self) {
        let scan_interval = self.config.scan_interval();
        let mut next_scan = Instant::now() + scan_interval;
        let mut batch = Vec::with_capacity(BATCH_LEN_MAX);
        loop {
            // Wake for the scan, or to report warnings the limiter suppressed.
            let wake = self.peer_warnings.flush_due().map_or(next_scan, |due| due.min(next_scan));
            let wake = self.warm.as_ref().map_or(wake, |warm| wake.min(warm.next_due()));
            let timeout = wake.saturating_duration_since(Instant::now());
            match self.updates.recv_timeout(timeout) {
                Ok(first) => {
                    batch.push(first);
                    while batch.len() < BATCH_LEN_MAX {
                        match self.updates.try_recv() {
                            Ok(u) => batch.push(u),
                            Err(_) => break,
                        }
                    }
                    self.apply_batch(&mut batch);
                }
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => return,
            }
            self.peer_warnings.flush(Instant::now());
            if Instant::now() >= next_scan {
                self.scan();
                next_scan = Instant::now() + scan_interval;
            }
            let (generation, now_ms) = (self.published.load().generation, self.now_ms());
            if let Some(warm) = &mut self.warm {
                warm.tick(&self.table, generation, now_ms);
            }
        }
    }

    fn apply_batch(&mut self, batch: &mut Vec<RouteUpdate>) {
        let started = Instant::now();
        let now_ms = self.now_ms();
        let mut pending = Vec::with_capacity(batch.len());
        let mut unregisters = Vec::new();
        for update in batch.drain(..) {
            // Unregisters queue up so a batch of them is applied at once (as Java's
            // BatchUnregistrationService does); anything else sees them applied first.
            if !matches!(update, RouteUpdate::UnregisterBroker { .. }) {
                self.flush_unregisters(&mut unregisters);
            }
            match update {
                RouteUpdate::RegisterBroker { req, conn, reply } => {
                    let answer = self.register_broker(*req, conn, now_ms);
                    pending.push(Pending::Register(reply, answer));
                }
                RouteUpdate::UnregisterBroker { req, reply } => {
                    unregisters.push(req);
                    pending.push(Pending::Unit(reply));
                }
                RouteUpdate::QueryDataVersion { cluster, addr, data_version, reply } => {
                    let answer = self.table.query_data_version(&cluster, &addr, &data_version, now_ms);
                    pending.push(Pending::Version(reply, answer));
                }
                RouteUpdate::BrokerHeartbeat { cluster, addr } => self.table.heartbeat(&cluster, &addr, now_ms),
                RouteUpdate::RegisterTopic { topic, queue_datas, reply } => {
                    let answer = match self.table.register_topic(&topic, queue_datas) {
                        Ok(()) => Answer::ok(Vec::new()),
                        Err(remark) => {
                            if self.peer_warnings.admit(Instant::now()) == Admit::Log {
                                tracing::warn!("REGISTER_TOPIC_IN_NAMESRV {topic} refused: {remark}");
                            }
                            Answer::error(codes::SYSTEM_ERROR, remark)
                        }
                    };
                    pending.push(Pending::Answer(reply, answer));
                }
                RouteUpdate::ConnectionClosed { conn } => {
                    let removed = self.table.connection_closed(conn);
                    let n = removed.len();
                    self.metrics.brokers_removed(RemovalCause::ConnectionClosed, n);
                    for u in &removed {
                        events::connection_closed(u, conn);
                    }
                }
                RouteUpdate::Admin { request, reply } => {
                    let answer = self.admin(request);
                    pending.push(Pending::Answer(reply, answer));
                }
                RouteUpdate::SaveWarmRestart { deadline, reply } => pending.push(Pending::WarmSave(reply, deadline)),
            }
        }
        self.flush_unregisters(&mut unregisters);
        let applied_at = Instant::now();
        self.publish();
        self.metrics.batch(pending.len(), applied_at - started, applied_at.elapsed());
        self.record_table_sizes();
        tracing::debug!(
            updates = pending.len(),
            apply_us = (applied_at - started).as_micros() as u64,
            publish_us = applied_at.elapsed().as_micros() as u64,
            "batch applied and published"
        );
        self.send_notifications();
        // A requester that went away dropped its receiver; nothing to do about that.
        for p in pending {
            let _ = match p {
                Pending::Answer(r, v) => r.send(v).map_err(|_| ()),
                Pending::Register(r, v) => r.send(v).map_err(|_| ()),
                Pending::Unit(r) => r.send(()).map_err(|_| ()),
                Pending::Version(r, v) => r.send(v).map_err(|_| ()),
                Pending::WarmSave(r, deadline) => r.send(self.save_warm(deadline)).map_err(|_| ()),
            };
        }
    }

    fn register_broker(&mut self, req: RegisterBroker, conn: ConnId, now_ms: u64) -> Option<Answer> {
        let started = Instant::now();
        let who = events::Registration::of(&req);
        let before = who.live_version(&self.table);
        let outcome = self.table.register_broker(req, conn, now_ms);
        if !matches!(outcome, RegisterOutcome::NeedFullBody) {
            self.metrics.registration_applied(started.elapsed(), matches!(outcome, RegisterOutcome::Refused(_)));
        }
        match outcome {
            RegisterOutcome::Accepted { master_addr, ha_server_addr } => {
                who.accepted(conn, before, who.live_version(&self.table));
                let mut ext = Vec::new();
                if let (Some(m), Some(ha)) = (master_addr, ha_server_addr) {
                    ext.push(("haServerAddr", ha));
                    ext.push(("masterAddr", m));
                }
                // Step 15: brokers mark the listed topics as ordered.
                let mut out = Vec::new();
                if self.config.namesrv.return_order_topic_config_to_broker {
                    if let Some(table) = self.kv.get(NAMESPACE_ORDER_TOPIC_CONFIG) {
                        let entries: Vec<(&str, &str)> = table.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                        body::encode_kv_table(&mut out, &entries);
                    }
                }
                Some(Answer::ok_with_ext(ext, out))
            }
            RegisterOutcome::Refused(remark) => {
                if self.peer_warnings.admit(Instant::now()) == Admit::Log {
                    who.refused(conn, &remark);
                }
                Some(Answer::error_with_empty_ext(codes::SYSTEM_ERROR, remark))
            }
            RegisterOutcome::NeedFullBody => None,
        }
    }

    fn flush_unregisters(&mut self, unregisters: &mut Vec<Unregister>) {
        if !unregisters.is_empty() {
            let live_before = self.table.live_count();
            let mut logged = std::collections::HashSet::new();
            for u in unregisters.iter() {
                let known = self.table.live_info(&u.cluster_name, &u.broker_addr).is_some()
                    && logged.insert((&u.cluster_name, &u.broker_addr));
                events::unregistered(u, known);
            }
            self.table.unregister(unregisters);
            let removed = live_before.saturating_sub(self.table.live_count());
            self.metrics.brokers_removed(RemovalCause::Unregister, removed);
            unregisters.clear();
        }
    }

    /// The final save of a warm restart (a no-op when it is off).
    fn save_warm(&mut self, deadline: Instant) -> Result<(), String> {
        let now_ms = self.now_ms();
        match &mut self.warm {
            Some(warm) => warm.final_save(&self.table, now_ms, deadline),
            None => Ok(()),
        }
    }

    /// Table sizes for the metrics gauges (the (topic, broker) count walks broker names).
    fn record_table_sizes(&self) {
        self.metrics.brokers_provisional(self.warm.as_ref().map_or(0, |warm| warm.provisional(&self.table)));
        let t = &self.table;
        self.metrics.table_sizes(
            t.clusters().len(),
            t.brokers().len(),
            t.live_count(),
            t.topic_count(),
            t.topic_broker_entries(),
        );
    }

    fn scan(&mut self) {
        let expired = self.table.scan_expired(self.now_ms());
        self.metrics.brokers_removed(RemovalCause::Timeout, expired.len());
        for e in &expired {
            events::expired(e);
            if let Some(closer) = self.closers.get(e.conn.shard()) {
                let _ = closer.try_send(e.conn);
            }
        }
        if !expired.is_empty() {
            self.publish();
            self.record_table_sizes();
            self.send_notifications();
        }
    }

    fn send_notifications(&mut self) {
        for n in self.table.take_notifications() {
            if self.notifications.try_send(n).is_err() {
                tracing::warn!("NOTIFY_MIN_BROKER_ID_CHANGE dropped: the notifier queue is full or stopped");
            }
        }
    }

    fn publish(&mut self) {
        let current = self.published.load();
        let not_ready_until = self.not_ready_until();
        let next = current.next(&mut self.table, &self.build, not_ready_until);
        if next.same_content(&current) {
            return; // nothing a reader can see changed
        }
        self.published.store(Arc::new(next));
        for signal in &self.published_signals {
            // Full: a signal is already pending, which covers this snapshot too.
            let _ = signal.try_send(());
        }
    }

    // ---------- admin and KV ----------

    fn admin(&mut self, request: AdminRequest) -> Answer {
        let n = &self.config.namesrv;
        match request {
            AdminRequest::PutKv { namespace, key, value } => {
                let namespace_existed = self.kv.contains_key(&namespace);
                let previous = self.kv.entry(namespace.clone()).or_default().insert(key.clone(), value);
                match self.persist_kv() {
                    Ok(()) => {
                        self.kv_changed(&namespace, &key);
                        Answer::ok(Vec::new())
                    }
                    Err(answer) => {
                        let ns = self.kv.get_mut(&namespace).expect("just inserted");
                        match previous {
                            Some(v) => {
                                ns.insert(key, v);
                            }
                            None => {
                                ns.remove(&key);
                                if !namespace_existed {
                                    self.kv.remove(&namespace);
                                }
                            }
                        }
                        answer
                    }
                }
            }
            AdminRequest::DeleteKv { namespace, key } => {
                // Java (KVConfigManager.deleteKVConfig) keeps a namespace once emptied: 219
                // then answers an empty table, and the file keeps `"ns":{}`.
                let removed = self.kv.get_mut(&namespace).and_then(|ns| ns.remove(&key));
                // Java rewrites the file even when nothing was removed.
                match self.persist_kv() {
                    Ok(()) => {
                        self.kv_changed(&namespace, &key);
                        Answer::ok(Vec::new())
                    }
                    Err(answer) => {
                        if let Some(v) = removed {
                            self.kv.entry(namespace).or_default().insert(key, v);
                        }
                        answer
                    }
                }
            }
            AdminRequest::GetKv { namespace, key } => match self.kv.get(&namespace).and_then(|ns| ns.get(&key)) {
                Some(v) => Answer::ok_with_ext(vec![("value", v.clone())], Vec::new()),
                None => Answer::error_with_empty_ext(
                    codes::QUERY_NOT_FOUND,
                    format!("No config item, Namespace: {namespace} Key: {key}"),
                ),
            },
            AdminRequest::GetKvList { namespace } => match self.kv.get(&namespace) {
                Some(ns) => {
                    let entries: Vec<(&str, &str)> = ns.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let mut out = Vec::new();
                    body::encode_kv_table(&mut out, &entries);
                    Answer::ok(out)
                }
                None => Answer::error(codes::QUERY_NOT_FOUND, format!("No config item, Namespace: {namespace}")),
            },
            AdminRequest::AllTopics => {
                if !n.enable_all_topic_list {
                    return Answer::error(codes::SYSTEM_ERROR, "disable");
                }
                topic_list(self.table.all_topics(), None)
            }
            AdminRequest::TopicsByCluster { cluster } => {
                if !n.enable_topic_list {
                    return Answer::error(codes::SYSTEM_ERROR, "disable");
                }
                topic_list(self.table.topics_by_cluster(&cluster), None)
            }
            AdminRequest::SystemTopics => {
                let (topics, addr) = self.table.system_topics();
                topic_list(topics, addr)
            }
            AdminRequest::UnitTopics(which) => {
                if !n.enable_topic_list {
                    return Answer::error(codes::SYSTEM_ERROR, "disable");
                }
                topic_list(self.table.unit_topics(which), None)
            }
            AdminRequest::DeleteTopic { topic, cluster } => {
                self.table.delete_topic(&topic, cluster.as_deref().filter(|c| !c.is_empty()));
                Answer::ok(Vec::new())
            }
            AdminRequest::WritePerm { broker_name, wipe } => {
                let count = self.table.operate_write_perm(&broker_name, wipe);
                let key = if wipe { "wipeTopicCount" } else { "addTopicCount" };
                Answer::ok_with_ext(vec![(key, count.to_string())], Vec::new())
            }
            AdminRequest::MemberGroup { cluster, broker_name } => {
                let empty = std::collections::BTreeMap::new();
                let addrs = self.table.broker_data(&broker_name).map(|bd| &bd.broker_addrs).unwrap_or(&empty);
                let mut out = Vec::new();
                body::encode_broker_member_group(&mut out, &cluster, &broker_name, addrs);
                // Java answers SUCCESS but leaves the default remark of its response object.
                Answer {
                    code: codes::SUCCESS,
                    remark: Some("not set any response code".into()),
                    ext_fields: None,
                    body: out.into(),
                }
            }
            AdminRequest::BrokerLiveTable => Answer::ok(self.broker_live_table()),
            AdminRequest::GetConfig => {
                let mut out = String::new();
                for (k, v) in self.config.properties() {
                    out.push_str(&k);
                    out.push('=');
                    out.push_str(&v);
                    out.push('\n');
                }
                Answer::ok(out.into_bytes())
            }
            AdminRequest::UpdateConfig { body } => self.update_config(&body),
        }
    }

    fn persist_kv(&self) -> Result<(), Answer> {
        let path = self.config.kv_config_path();
        persist::write_atomic(&path, &persist::encode_kv_file(&self.kv)).map_err(|e| {
            tracing::error!("cannot persist KV config to {}: {e}; the change was not applied", path.display());
            Answer::error(codes::SYSTEM_ERROR, format!("cannot persist KV config to {}: {e}", path.display()))
        })
    }

    fn kv_changed(&mut self, namespace: &str, key: &str) {
        if namespace == NAMESPACE_ORDER_TOPIC_CONFIG && self.build.order_topic_conf.is_some() {
            self.build.order_topic_conf = Some(self.order_topic_conf());
            self.table.mark_topic_changed(key);
        }
    }

    /// UPDATE_NAMESRV_CONFIG (requests.md 318).
    fn update_config(&mut self, body: &[u8]) -> Answer {
        if body.is_empty() {
            return Answer::ok(Vec::new());
        }
        let Ok(props) = java_properties::read(body) else {
            return Answer::error(codes::SYSTEM_ERROR, "string2Properties error");
        };
        if props.keys().any(|k| self.config.namesrv.is_black_listed(k)) {
            return Answer::error(codes::NO_PERMISSION, "Can not update config in black list.");
        }
        let mut next = self.config.clone();
        let mut keys: Vec<_> = props.into_iter().collect();
        keys.sort();
        for (k, v) in &keys {
            match next.set(k, v) {
                Ok(()) => {}
                // Java applies only keys it knows and ignores the rest.
                Err(e) if e.0.starts_with("unknown config key") => {}
                Err(e) => return Answer::error(codes::SYSTEM_ERROR, e.0),
            }
        }
        let mut text = String::new();
        for (k, v) in next.properties() {
            text.push_str(&format!("{k}={v}\n"));
        }
        let path = next.config_store_path();
        if let Err(e) = persist::write_atomic(&path, text.as_bytes()) {
            tracing::error!("cannot write config store {}: {e}; the update was not applied", path.display());
            return Answer::error(codes::SYSTEM_ERROR, format!("cannot write config store {}: {e}", path.display()));
        }
        tracing::info!(
            "UPDATE_NAMESRV_CONFIG applied {:?}; NameServer switches take effect now, listener/limit keys at the next start",
            keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
        );
        // Only the NameServer switches change behaviour at run time; the rest of `next`
        // (listen address, limits) is shown by 319 and is what the next start reads.
        self.config = next;
        self.apply_switches();
        Answer::ok(Vec::new())
    }
}

impl Writer {
    /// MERIDIAN_BROKER_LIVE_TABLE body: `{"brokers":[{cluster, brokerName, brokerId, addr,
    /// dataVersion, silentMs, timeoutMs, provisional}]}`, sorted by cluster then address.
    fn broker_live_table(&self) -> Vec<u8> {
        let now_ms = self.now_ms();
        let mut names: std::collections::HashMap<(&str, &str), (&str, i64)> = std::collections::HashMap::new();
        for bd in self.table.brokers().values() {
            for (id, addr) in &bd.broker_addrs {
                names.insert((&*bd.cluster, addr.as_str()), (&*bd.broker_name, *id));
            }
        }
        let mut entries: Vec<_> = self.table.live_entries().iter().collect();
        entries.sort_by(|(a, _), (b, _)| (&a.cluster, &a.addr).cmp(&(&b.cluster, &b.addr)));
        let brokers: Vec<serde_json::Value> = entries
            .into_iter()
            .map(|(key, live)| {
                let (name, id) = names.get(&(key.cluster.as_str(), key.addr.as_str())).copied().unzip();
                serde_json::json!({
                    "cluster": key.cluster,
                    "brokerName": name,
                    "brokerId": id,
                    "addr": key.addr,
                    "dataVersion": {
                        "counter": live.data_version.counter,
                        "stateVersion": live.data_version.state_version,
                        "timestamp": live.data_version.timestamp,
                    },
                    "silentMs": now_ms.saturating_sub(live.last_update_ms),
                    "timeoutMs": live.timeout_ms,
                    "provisional": live.provisional,
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "brokers": brokers })).expect("JSON of plain values")
    }
}

fn topic_list(topics: Vec<&str>, broker_addr: Option<&str>) -> Answer {
    let mut out = Vec::new();
    body::encode_topic_list(&mut out, topics, broker_addr);
    Answer::ok(out)
}
