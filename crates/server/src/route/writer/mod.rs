//! The single writer: drains `RouteUpdate`s in batches, applies them to the one
//! `RouteTable` and the KV config, runs the expiry scan, and publishes the next
//! `RouteSnapshot`.
//!
//! Runs on its own OS thread so that applying a 100k-topic registration or re-encoding many
//! routes never occupies a shard's executor while it has lookups to answer. It writes to no
//! socket: answers go back over the one-shot channel carried by each update, and only
//! *after* the snapshot containing the change is published, so a peer that got its answer
//! sees its change on any shard. KV and config writes are durable before they are answered.

use super::kv::{KvStore, NAMESPACE_ORDER_TOPIC_CONFIG};
use super::rounds::{Round, RoundEnd, Rounds};
use super::snapshot::{RouteBuildOptions, RouteSnapshot, SnapshotCell};
use super::table::{
    MinIdNotification, RegisterBroker, RegisterOutcome, RouteTable, TableLimits, TableOptions, UnitList, Unregister,
};
use super::{events, warm, ConnId};
use crate::config::Config;
use crate::error::{ConfigError, PersistError, TopicTableFull, WarmSaveError};
use crate::logging::{Admit, WarnLimiter};
use crate::metrics::counters::{RemovalCause, WriterMetrics};
use crate::persist::KvTable;
use meridian_protocol::body::{DataVersion, QueueData};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod admin;

/// Updates applied before one publication; bounds reply latency under a storm.
pub const BATCH_LEN_MAX: usize = 1024;
/// How soon the writer looks again at replaced snapshots shards may still hold.
const RETIRED_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// One-shot reply channel.
pub type Reply<T> = flume::Sender<T>;

/// Admin and KV requests: rare, answered by the writer with data from the table, the KV
/// config and the config it owns (`AdminResult`); the shard builds the answer.
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
        broker_name: String,
    },
    GetConfig,
    /// UPDATE_NAMESRV_CONFIG's properties, sorted by key.
    UpdateConfig {
        properties: Vec<(String, String)>,
    },
    /// MERIDIAN_BROKER_LIVE_TABLE: read only, refreshes nothing.
    BrokerLiveTable,
}

/// What the writer did with an admin or KV request.
#[derive(Debug)]
pub enum AdminResult {
    /// A write applied (and on disk, for KV and config).
    Done,
    /// A KV or config write that could not be made durable, so was not applied.
    NotPersisted(PersistError),
    KvValue(Option<String>),
    /// A namespace's entries in key order; `None` if the namespace does not exist.
    KvList(Option<Vec<(String, String)>>),
    /// A topic list, sorted; `broker_addr` only for the system topics (Java's brokerAddr).
    Topics {
        topics: Vec<String>,
        broker_addr: Option<String>,
    },
    /// The list is switched off (`enableAllTopicList`, `enableTopicList`).
    ListingDisabled,
    /// Topics whose write permission was wiped or added.
    WritePermChanged(usize),
    /// The broker group's addresses by brokerId (empty if the group is unknown).
    MemberGroup(BTreeMap<i64, String>),
    /// The effective config, as `-p` prints it.
    Config(Vec<(String, String)>),
    /// UPDATE_NAMESRV_CONFIG named a key of `configBlackList`; nothing was applied.
    ConfigBlackListed,
    /// UPDATE_NAMESRV_CONFIG had an invalid value; nothing was applied.
    ConfigInvalid(ConfigError),
    /// UPDATE_NAMESRV_CONFIG named a known key not in `remoteConfigUpdateKeys`; nothing was applied.
    ConfigKeyNotRemote(String),
    /// PUT_KV_CONFIG would pass a KV bound; the text names the key. Nothing was written.
    KvLimit(String),
    /// MERIDIAN_BROKER_LIVE_TABLE rows, sorted by cluster then address.
    BrokerLiveTable(Vec<LiveBroker>),
}

/// One live broker address, as MERIDIAN_BROKER_LIVE_TABLE shows it.
#[derive(Debug)]
pub struct LiveBroker {
    pub cluster: String,
    /// `None` if the address is in no broker group (cannot happen while the table is consistent).
    pub broker_name: Option<String>,
    pub broker_id: Option<i64>,
    pub addr: String,
    pub data_version: DataVersion,
    pub silent_ms: u64,
    pub timeout_ms: u64,
    pub provisional: bool,
}

/// What a registration the table applied or refused comes to.
#[derive(Debug)]
pub enum RegisterResult {
    /// Applied. `master_addr` and `ha_server_addr` are set for a slave whose master is known;
    /// `order_topic_config` is set when `returnOrderTopicConfigToBroker` is on and the
    /// ORDER_TOPIC_CONFIG namespace exists (brokers mark those topics ordered).
    Accepted {
        master_addr: Option<String>,
        ha_server_addr: Option<String>,
        order_topic_config: Option<Vec<(String, String)>>,
    },
    /// Refused without any change (a limit, invalid data); the remark for the broker.
    Refused(String),
}

/// The writer's reply to a registration.
#[derive(Debug)]
pub enum RegisterReply {
    Applied(RegisterResult),
    /// A registration sent without its topics (`topics_unchanged`, a re-send recognised by
    /// its bytes) cannot stand for "as before" (`RegisterOutcome::NeedFullBody`): the shard
    /// sends the decoded body instead. Never the reply to a registration with its topics.
    NeedFullBody,
}

pub enum RouteUpdate {
    RegisterBroker {
        req: Box<RegisterBroker>,
        conn: ConnId,
        reply: Reply<RegisterReply>,
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
        reply: Reply<Result<(), TopicTableFull>>,
    },
    /// A connection that had registered a broker closed.
    ConnectionClosed {
        conn: ConnId,
    },
    Admin {
        request: AdminRequest,
        reply: Reply<AdminResult>,
    },
    /// Graceful stop with `warmRestart` on: save the routes for the next start, after
    /// everything queued before it; answered once written, or at `deadline`.
    SaveWarmRestart {
        deadline: Instant,
        reply: Reply<Result<(), WarmSaveError>>,
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
    kv: KvStore,
    published: SnapshotCell,
    updates: flume::Receiver<RouteUpdate>,
    closers: Vec<flume::Sender<ConnId>>,
    notifications: flume::Sender<MinIdNotification>,
    metrics: Arc<WriterMetrics>,
    published_signals: Vec<flume::Sender<()>>,
    started_at: Instant,
    build: Arc<RouteBuildOptions>,
    /// Warnings about peers (refused registrations): bounded per window.
    peer_warnings: WarnLimiter,
    /// Periodic and final route saves for a warm restart (`warmRestart` on).
    warm: Option<warm::WarmRestart>,
    /// Open registration rounds, one line each when they close.
    rounds: Rounds,
    /// Replaced snapshots a shard may still hold; freed by `drop_retired` (at most one
    /// per shard plus the last few publications).
    retired: Vec<Arc<RouteSnapshot>>,
}

enum Pending {
    Admin(Reply<AdminResult>, AdminResult),
    Topic(Reply<Result<(), TopicTableFull>>, Result<(), TopicTableFull>),
    Register(Reply<RegisterReply>, RegisterReply),
    Unit(Reply<()>),
    Version(Reply<(bool, Option<DataVersion>)>, (bool, Option<DataVersion>)),
    WarmSave(Reply<Result<(), WarmSaveError>>, Instant),
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
            kv: KvStore::new(setup.kv),
            published: setup.published,
            updates: setup.updates,
            closers: setup.closers,
            notifications: setup.notifications,
            metrics: setup.metrics,
            published_signals: setup.published_signals,
            started_at: setup.started_at,
            build: Arc::default(),
            peer_warnings: WarnLimiter::new("route writer"),
            warm: None,
            rounds: Rounds::default(),
            retired: Vec::new(),
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
        self.build = Arc::new(build);
    }

    fn order_topic_conf(&self) -> BTreeMap<String, String> {
        self.kv.namespace(NAMESPACE_ORDER_TOPIC_CONFIG).cloned().unwrap_or_default()
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
            let wake = self.next_round_deadline().map_or(wake, |due| wake.min(due));
            let wake = if self.retired.is_empty() { wake } else { wake.min(Instant::now() + RETIRED_CHECK_INTERVAL) };
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
            self.close_quiet_rounds();
            if Instant::now() >= next_scan {
                self.scan();
                next_scan = Instant::now() + scan_interval;
            }
            self.drop_retired();
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
                    let result = self.table.register_topic(&topic, queue_datas);
                    if let Err(remark) = &result {
                        if self.peer_warnings.admit(Instant::now()) == Admit::Log {
                            tracing::warn!("REGISTER_TOPIC_IN_NAMESRV {topic} refused: {remark}");
                        }
                    }
                    pending.push(Pending::Topic(reply, result));
                }
                RouteUpdate::ConnectionClosed { conn } => {
                    let removed = self.table.connection_closed(conn);
                    let n = removed.len();
                    self.metrics.brokers_removed(RemovalCause::ConnectionClosed, n);
                    for u in &removed {
                        self.close_round_of(&u.cluster_name, &u.broker_addr);
                        events::connection_closed(u, conn);
                    }
                }
                RouteUpdate::Admin { request, reply } => {
                    let result = self.admin(request);
                    pending.push(Pending::Admin(reply, result));
                }
                RouteUpdate::SaveWarmRestart { deadline, reply } => pending.push(Pending::WarmSave(reply, deadline)),
            }
        }
        self.flush_unregisters(&mut unregisters);
        let applied_at = Instant::now();
        self.publish();
        let registrations = pending.iter().filter(|p| matches!(p, Pending::Register(..))).count();
        self.metrics.batch(pending.len(), registrations, applied_at - started, applied_at.elapsed());
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
                Pending::Admin(r, v) => r.send(v).map_err(|_| ()),
                Pending::Topic(r, v) => r.send(v).map_err(|_| ()),
                Pending::Register(r, v) => r.send(v).map_err(|_| ()),
                Pending::Unit(r) => r.send(()).map_err(|_| ()),
                Pending::Version(r, v) => r.send(v).map_err(|_| ()),
                Pending::WarmSave(r, deadline) => r.send(self.save_warm(deadline)).map_err(|_| ()),
            };
        }
    }

    fn register_broker(&mut self, req: RegisterBroker, conn: ConnId, now_ms: u64) -> RegisterReply {
        let started = Instant::now();
        let who = events::Registration::of(&req);
        let before = who.live_version(&self.table);
        let outcome = self.table.register_broker(req, conn, now_ms);
        if !matches!(outcome, RegisterOutcome::NeedFullBody) {
            self.metrics.registration_applied(started.elapsed(), matches!(outcome, RegisterOutcome::Refused(_)));
        }
        match outcome {
            RegisterOutcome::Accepted { master_addr, ha_server_addr } => {
                self.registration_accepted(who, conn, before, now_ms);
                let order_topic_config = if self.config.namesrv.return_order_topic_config_to_broker {
                    self.kv
                        .namespace(NAMESPACE_ORDER_TOPIC_CONFIG)
                        .map(|table| table.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                } else {
                    None
                };
                RegisterReply::Applied(RegisterResult::Accepted { master_addr, ha_server_addr, order_topic_config })
            }
            RegisterOutcome::Refused(remark) => {
                if self.peer_warnings.admit(Instant::now()) == Admit::Log {
                    who.refused(conn, &remark);
                }
                RegisterReply::Applied(RegisterResult::Refused(remark))
            }
            RegisterOutcome::NeedFullBody => RegisterReply::NeedFullBody,
        }
    }

    /// An accepted registration: a chunk of the address's round, or its removal (step 6).
    fn registration_accepted(
        &mut self,
        who: events::Registration,
        conn: ConnId,
        before: Option<DataVersion>,
        now_ms: u64,
    ) {
        match (before, who.live_version(&self.table)) {
            (_, Some(_)) => {
                self.metrics.registration_chunk();
                let chunk = who.chunk(conn, before, self.table.last_topic_counts());
                if let Some((round, end)) = self.rounds.chunk(chunk, now_ms) {
                    self.round_closed(&round, end);
                }
            }
            (Some(_), None) => {
                let (cluster, addr) = who.key();
                self.close_round_of(cluster, addr);
                who.removed_by_newer_state(conn);
            }
            (None, None) => who.ignored(conn),
        }
    }

    fn round_closed(&self, round: &Round, end: RoundEnd) {
        self.metrics.registration_round(&round.cluster, &round.addr, &round.broker, round.chunks);
        events::round_closed(round, end);
    }

    /// The address is being removed: its open round closes first, with its own line.
    fn close_round_of(&mut self, cluster: &str, addr: &str) {
        if let Some(round) = self.rounds.remove(cluster, addr) {
            self.round_closed(&round, RoundEnd::Removed);
        }
        self.metrics.broker_address_removed(cluster, addr);
    }

    /// Closes the rounds whose brokers have sent nothing for `registrationRoundQuietMs`.
    fn close_quiet_rounds(&mut self) {
        let now_ms = self.now_ms();
        for round in self.rounds.close_quiet(now_ms, self.config.registration_round_quiet_ms) {
            self.round_closed(&round, RoundEnd::Quiet);
        }
    }

    /// When the earliest open registration round closes if its broker stays quiet.
    fn next_round_deadline(&self) -> Option<Instant> {
        let due_ms = self.rounds.next_deadline_ms(self.config.registration_round_quiet_ms)?;
        Some(self.started_at + Duration::from_millis(due_ms))
    }

    fn flush_unregisters(&mut self, unregisters: &mut Vec<Unregister>) {
        if !unregisters.is_empty() {
            let live_before = self.table.live_count();
            let mut logged = std::collections::HashSet::new();
            for u in unregisters.iter() {
                let known = self.table.live_info(&u.cluster_name, &u.broker_addr).is_some()
                    && logged.insert((&u.cluster_name, &u.broker_addr));
                if known {
                    self.close_round_of(&u.cluster_name, &u.broker_addr);
                }
                events::unregistered(u, known);
            }
            self.table.unregister(unregisters);
            let removed = live_before.saturating_sub(self.table.live_count());
            self.metrics.brokers_removed(RemovalCause::Unregister, removed);
            unregisters.clear();
        }
    }

    /// The final save of a warm restart (a no-op when it is off).
    fn save_warm(&mut self, deadline: Instant) -> Result<(), WarmSaveError> {
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
            self.close_round_of(&e.broker.cluster_name, &e.broker.broker_addr);
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

    /// Frees replaced snapshots that no shard holds any more. Whoever drops the last
    /// reference to a snapshot frees what only it holds (after a 1M-topic broker leaves,
    /// a million entries, ~150 ms): here that is the writer, after its replies, never a
    /// shard between two lookups.
    fn drop_retired(&mut self) {
        self.retired.retain(|snapshot| Arc::strong_count(snapshot) > 1);
    }

    fn publish(&mut self) {
        let current = self.published.load_full();
        let not_ready_until = self.not_ready_until();
        let next = current.next(&mut self.table, &self.build, not_ready_until);
        if next.same_content(&current) {
            return; // nothing a reader can see changed
        }
        self.published.store(Arc::new(next));
        self.retired.push(current);
        for signal in &self.published_signals {
            // Full: a signal is already pending, which covers this snapshot too.
            let _ = signal.try_send(());
        }
    }
}
