//! The single writer: drains `RouteUpdate`s in batches, applies them to the one
//! `RouteTable`, runs the expiry scan, and publishes the next `RouteSnapshot`.
//!
//! Runs on its own OS thread so that applying a 100k-topic registration or re-encoding many
//! routes never occupies a shard's executor while it has lookups to answer. It answers no
//! client itself: replies go back over the one-shot channel carried by each update, and
//! only *after* the snapshot containing the change is published, so a peer that got its
//! answer sees its change on any shard.

use super::snapshot::RouteSnapshot;
use super::table::{RegisterBroker, RegisterOutcome, RouteTable, TableLimits, Unregister};
use super::ConnId;
use crate::protocol::body::{DataVersion, QueueData};
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Updates applied before one publication; bounds reply latency under a storm.
pub const BATCH_LEN_MAX: usize = 1024;

/// One-shot reply channel.
pub type Reply<T> = flume::Sender<T>;

pub enum RouteUpdate {
    RegisterBroker {
        req: Box<RegisterBroker>,
        conn: ConnId,
        reply: Reply<RegisterOutcome>,
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
        reply: Reply<Result<(), String>>,
    },
    /// A connection that had registered a broker closed.
    ConnectionClosed {
        conn: ConnId,
    },
}

/// Shared publication point: readers `load` (lock-free), the writer `store`s (latest wins).
pub type SnapshotCell = Arc<ArcSwap<RouteSnapshot>>;

pub struct Writer {
    table: RouteTable,
    published: SnapshotCell,
    updates: flume::Receiver<RouteUpdate>,
    /// Per-shard channels to close a connection whose broker expired (Java closes it too).
    closers: Vec<flume::Sender<ConnId>>,
    scan_interval: Duration,
    clock_start: Instant,
}

enum Pending {
    Register(Reply<RegisterOutcome>, RegisterOutcome),
    Unit(Reply<()>),
    Version(Reply<(bool, Option<DataVersion>)>, (bool, Option<DataVersion>)),
    Topic(Reply<Result<(), String>>, Result<(), String>),
}

impl Writer {
    pub fn new(
        limits: TableLimits,
        published: SnapshotCell,
        updates: flume::Receiver<RouteUpdate>,
        closers: Vec<flume::Sender<ConnId>>,
        scan_interval: Duration,
    ) -> Writer {
        Writer {
            table: RouteTable::new(limits),
            published,
            updates,
            closers,
            scan_interval,
            clock_start: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock_start.elapsed().as_millis() as u64
    }

    /// Runs until every sender is gone.
    pub fn run(mut self) {
        let mut next_scan = Instant::now() + self.scan_interval;
        let mut batch = Vec::with_capacity(BATCH_LEN_MAX);
        loop {
            let timeout = next_scan.saturating_duration_since(Instant::now());
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
            if Instant::now() >= next_scan {
                self.scan();
                next_scan = Instant::now() + self.scan_interval;
            }
        }
    }

    fn apply_batch(&mut self, batch: &mut Vec<RouteUpdate>) {
        let now_ms = self.now_ms();
        let mut pending = Vec::with_capacity(batch.len());
        let mut unregisters = Vec::new();
        for update in batch.drain(..) {
            match update {
                RouteUpdate::RegisterBroker { req, conn, reply } => {
                    // Pending unregisters go first so a quick restart's re-register wins.
                    self.flush_unregisters(&mut unregisters);
                    let outcome = self.table.register_broker(*req, conn, now_ms);
                    pending.push(Pending::Register(reply, outcome));
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
                    self.flush_unregisters(&mut unregisters);
                    let result = self.table.register_topic(&topic, queue_datas);
                    pending.push(Pending::Topic(reply, result));
                }
                RouteUpdate::ConnectionClosed { conn } => {
                    self.flush_unregisters(&mut unregisters);
                    let n = self.table.connection_closed(conn);
                    if n > 0 {
                        tracing::info!(conn = conn.0, brokers = n, "connection closed: unregistered its brokers");
                    }
                }
            }
        }
        self.flush_unregisters(&mut unregisters);
        self.publish();
        // A requester that went away dropped its receiver; nothing to do about that.
        for p in pending {
            let _ = match p {
                Pending::Register(r, v) => r.send(v).map_err(|_| ()),
                Pending::Unit(r) => r.send(()).map_err(|_| ()),
                Pending::Version(r, v) => r.send(v).map_err(|_| ()),
                Pending::Topic(r, v) => r.send(v).map_err(|_| ()),
            };
        }
    }

    fn flush_unregisters(&mut self, unregisters: &mut Vec<Unregister>) {
        if !unregisters.is_empty() {
            self.table.unregister(unregisters);
            unregisters.clear();
        }
    }

    fn scan(&mut self) {
        let expired = self.table.scan_expired(self.now_ms());
        for (u, conn) in &expired {
            tracing::warn!(
                cluster = %u.cluster_name, broker = %u.broker_name, addr = %u.broker_addr,
                "broker expired: no heartbeat within its timeout; unregistered and its connection closed"
            );
            if let Some(closer) = self.closers.get(conn.shard()) {
                let _ = closer.try_send(*conn);
            }
        }
        if !expired.is_empty() {
            self.publish();
        }
    }

    fn publish(&mut self) {
        let current = self.published.load();
        let next = current.next(&mut self.table);
        if next.topics.ptr_eq(&current.topics) && next.cluster_info == current.cluster_info {
            return; // nothing a reader can see changed
        }
        self.published.store(Arc::new(next));
    }
}
