//! Metrics counters: counters and histograms each written by exactly one thread (a shard,
//! or the route writer) with a plain load + store on atomics — no read-modify-write, no
//! lock, no shared cache line between writers. `http` sums them over shards on a scrape.
//! Must not: take a lock or allocate on the request path; know about HTTP or route state.

use meridian_protocol::body::DecodeStages;
use meridian_protocol::codes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Request codes with their own series (everything a NameServer serves, the protocol crate's
/// one table of names); others share "other".
pub(super) const REQUEST_CODES: [(i32, &str); 26] = codes::REQUEST_NAMES;
pub(super) const REQUEST_SLOTS: usize = REQUEST_CODES.len() + 1;

/// Response codes a NameServer answers with; others share "other".
pub(super) const RESPONSE_CODES: [i32; 8] = [
    codes::SUCCESS,
    codes::SYSTEM_ERROR,
    codes::SYSTEM_BUSY,
    codes::REQUEST_CODE_NOT_SUPPORTED,
    codes::NO_PERMISSION,
    codes::TOPIC_NOT_EXIST,
    codes::QUERY_NOT_FOUND,
    codes::GO_AWAY,
];
/// `reason` labels of `meridian_requests_refused_total` (access control's refusal reasons).
pub const REFUSAL_REASONS: [&str; 4] = ["address", "unsigned", "unknown_account", "signature"];
pub(super) const RESPONSE_SLOTS: usize = RESPONSE_CODES.len() + 1;

/// Histogram bucket upper bounds, in nanoseconds: 1 µs to 10 s.
pub(super) const BUCKET_BOUNDS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

fn request_slot(code: i32) -> usize {
    REQUEST_CODES.iter().position(|(c, _)| *c == code).unwrap_or(REQUEST_CODES.len())
}

fn response_slot(code: i32) -> usize {
    RESPONSE_CODES.iter().position(|c| *c == code).unwrap_or(RESPONSE_CODES.len())
}

/// Adds for a counter with one writer: a load and a store (no locked instruction). Readers
/// on other threads see a recent value, which is all a scrape needs.
#[inline]
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// A fixed-bucket latency histogram with one writer.
pub struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    pub(super) counts: [AtomicU64; BUCKET_BOUNDS_NS.len() + 1],
    pub(super) sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_ns: AtomicU64::new(0) }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&self, elapsed: Duration) {
        let ns = elapsed.as_nanos().min(u64::MAX as u128) as u64;
        add(&self.counts[BUCKET_BOUNDS_NS.partition_point(|&b| b < ns)], 1);
        add(&self.sum_ns, ns);
    }

    /// Adds this histogram's counts into `into` (a scrape's merge).
    pub(super) fn merge_into(&self, into: &mut Merged) {
        for (total, c) in into.counts.iter_mut().zip(&self.counts) {
            *total += c.load(Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Relaxed);
    }
}

#[derive(Default, Clone)]
pub(super) struct Merged {
    pub(super) counts: [u64; BUCKET_BOUNDS_NS.len() + 1],
    pub(super) sum_ns: u64,
}

impl Merged {
    pub(super) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(super) fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BUCKET_BOUNDS_NS
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain([f64::MAX])
            .zip(self.counts.iter().copied())
            .collect();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum_ns as f64 / 1e9,
            self.count(),
            &buckets,
            None,
        )
    }
}

/// Why a connection ended.
#[derive(Clone, Copy)]
pub enum CloseCause {
    PeerClosed = 0,
    IdleTimeout = 1,
    WriteFailed = 2,
    ProtocolError = 3,
}
/// `peer_closed` includes resets and the server's own close of an expired broker's socket.
pub(super) const CLOSE_CAUSES: [&str; 4] = ["peer_closed", "idle_timeout", "write_failed", "protocol_error"];

/// One shard's metrics; written only by that shard's thread.
pub struct ShardMetrics {
    /// requests[request slot][response slot].
    pub(super) requests: [[AtomicU64; RESPONSE_SLOTS]; REQUEST_SLOTS],
    /// Time from a frame being parsed to its answer being ready, per request code.
    pub(super) latency: [Histogram; REQUEST_SLOTS],
    pub(super) connections_accepted: AtomicU64,
    pub(super) connections_refused: AtomicU64,
    pub(super) connections_closed: [AtomicU64; CLOSE_CAUSES.len()],
    pub(super) registration_body_bytes: AtomicU64,
    pub(super) registrations_unread: AtomicU64,
    /// Registrations applied as a delta against the broker's previous body, and deltas the
    /// table refused (the body was then decoded in full).
    pub(super) registrations_delta: AtomicU64,
    pub(super) registrations_delta_refused: AtomicU64,
    pub(super) registration_decode: Histogram,
    /// A registration's stages on the shard (see `bench/README.md`, "where registration
    /// time goes"): the frame's arrival (large frames only), decompression (compressed
    /// bodies only) and decoding of the plain bytes.
    pub(super) registration_receive: Histogram,
    pub(super) registration_inflate: Histogram,
    pub(super) registration_scan: Histogram,
    /// Route watches (43701) held now: a gauge written by the shard only.
    pub(super) watches_held: AtomicU64,
    /// Requests refused by access control, by `REFUSAL_REASONS`.
    pub(super) requests_refused: [AtomicU64; REFUSAL_REASONS.len()],
}

impl Default for ShardMetrics {
    fn default() -> ShardMetrics {
        ShardMetrics {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency: std::array::from_fn(|_| Histogram::default()),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_closed: std::array::from_fn(|_| AtomicU64::new(0)),
            registration_body_bytes: AtomicU64::new(0),
            registrations_unread: AtomicU64::new(0),
            registrations_delta: AtomicU64::new(0),
            registrations_delta_refused: AtomicU64::new(0),
            registration_decode: Histogram::default(),
            registration_receive: Histogram::default(),
            registration_inflate: Histogram::default(),
            registration_scan: Histogram::default(),
            watches_held: AtomicU64::new(0),
            requests_refused: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ShardMetrics {
    #[inline]
    pub fn request(&self, code: i32, response_code: i32, elapsed: Duration) {
        let slot = request_slot(code);
        add(&self.requests[slot][response_slot(response_code)], 1);
        self.latency[slot].record(elapsed);
    }

    /// A request refused by access control; `reason` is one of `REFUSAL_REASONS`.
    pub fn request_refused(&self, reason: &str) {
        let slot = REFUSAL_REASONS.iter().position(|r| *r == reason).unwrap_or(REFUSAL_REASONS.len() - 1);
        add(&self.requests_refused[slot], 1);
    }

    pub fn accepted(&self) {
        add(&self.connections_accepted, 1);
    }

    pub fn watches_held(&self, n: usize) {
        self.watches_held.store(n as u64, Relaxed);
    }

    pub fn refused(&self) {
        add(&self.connections_refused, 1);
    }

    pub fn closed(&self, cause: CloseCause) {
        add(&self.connections_closed[cause as usize], 1);
    }

    /// A registration body read in full and decoded in `elapsed`, `stages` of it.
    pub fn registration_decoded(&self, body_bytes: usize, elapsed: Duration, stages: DecodeStages) {
        add(&self.registration_body_bytes, body_bytes as u64);
        self.registration_decode.record(elapsed);
        if let Some(inflate) = stages.inflate {
            self.registration_inflate.record(inflate);
        }
        self.registration_scan.record(stages.scan);
    }

    /// A REGISTER_BROKER frame too large for the read buffer arrived, from its first byte
    /// to its last in `elapsed`.
    pub fn registration_received(&self, elapsed: Duration) {
        self.registration_receive.record(elapsed);
    }

    /// A re-sent registration recognised by its bytes and not decoded again.
    pub fn registration_unread(&self) {
        add(&self.registrations_unread, 1);
    }

    /// A registration sent to the writer as a delta: `applied`, or refused (read in full).
    pub fn registration_delta(&self, applied: bool) {
        add(if applied { &self.registrations_delta } else { &self.registrations_delta_refused }, 1);
    }
}

/// Why a broker left the table.
#[derive(Clone, Copy)]
pub enum RemovalCause {
    ConnectionClosed = 0,
    Timeout = 1,
    Unregister = 2,
}
pub(super) const REMOVAL_CAUSES: [&str; 3] = ["connection_closed", "timeout", "unregister"];

/// The route writer's metrics; written only by the writer thread.
#[derive(Default)]
pub struct WriterMetrics {
    pub(super) batches: AtomicU64,
    pub(super) updates: AtomicU64,
    pub(super) batch_apply: Histogram,
    pub(super) publish: Histogram,
    /// Publishes after a batch that held at least one registration.
    pub(super) registration_publish: Histogram,
    pub(super) registration_apply: Histogram,
    pub(super) registrations_refused: AtomicU64,
    pub(super) registration_chunks: AtomicU64,
    pub(super) registration_rounds: AtomicU64,
    pub(super) brokers_removed: [AtomicU64; REMOVAL_CAUSES.len()],
    pub(super) clusters: AtomicU64,
    pub(super) broker_names: AtomicU64,
    pub(super) broker_addrs: AtomicU64,
    pub(super) topics: AtomicU64,
    pub(super) topic_broker_entries: AtomicU64,
    pub(super) brokers_provisional: AtomicU64,
    /// Per live broker address, (cluster, addr): its closed rounds. A mutex, since the
    /// writer changes the set: only the writer (at a round's close or the address's removal,
    /// not per request) and a scrape take it. At most one entry per live address.
    pub(super) broker_rounds: Mutex<BTreeMap<(String, String), BrokerRounds>>,
}

/// One broker address's registration rounds since it registered (a split-mode broker shows
/// many chunks per round).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerRounds {
    /// Broker name of the last round.
    pub broker: String,
    pub rounds: u64,
    pub chunks: u64,
    pub last_round_chunks: u64,
}

impl WriterMetrics {
    /// A batch of `updates`, `registrations` of them REGISTER_BROKER, applied and published.
    pub fn batch(&self, updates: usize, registrations: usize, apply: Duration, publish: Duration) {
        add(&self.batches, 1);
        add(&self.updates, updates as u64);
        self.batch_apply.record(apply);
        self.publish.record(publish);
        if registrations > 0 {
            self.registration_publish.record(publish);
        }
    }

    pub fn registration_applied(&self, elapsed: Duration, refused: bool) {
        self.registration_apply.record(elapsed);
        if refused {
            add(&self.registrations_refused, 1);
        }
    }

    /// A registration applied to a live address: one chunk of its round (a one-frame
    /// registration is a round of one chunk; split registration sends many).
    pub fn registration_chunk(&self) {
        add(&self.registration_chunks, 1);
    }

    /// A broker's registration round of `chunks` chunks closed (see `route::rounds`).
    pub fn registration_round(&self, cluster: &str, addr: &str, broker: &str, chunks: u64) {
        add(&self.registration_rounds, 1);
        let mut by_addr = self.broker_rounds.lock().unwrap_or_else(|e| e.into_inner());
        let entry = by_addr.entry((cluster.to_string(), addr.to_string())).or_default();
        if entry.broker != broker {
            entry.broker = broker.to_string();
        }
        entry.rounds += 1;
        entry.chunks += chunks;
        entry.last_round_chunks = chunks;
    }

    /// The address left the table: its per-broker series go with it.
    pub fn broker_address_removed(&self, cluster: &str, addr: &str) {
        let mut by_addr = self.broker_rounds.lock().unwrap_or_else(|e| e.into_inner());
        by_addr.remove(&(cluster.to_string(), addr.to_string()));
    }

    /// ((cluster, addr), rounds) of every broker address with a closed round.
    pub fn broker_rounds(&self) -> Vec<((String, String), BrokerRounds)> {
        let by_addr = self.broker_rounds.lock().unwrap_or_else(|e| e.into_inner());
        by_addr.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn brokers_removed(&self, cause: RemovalCause, n: usize) {
        add(&self.brokers_removed[cause as usize], n as u64);
    }

    /// Table sizes after a change: clusters, broker names, live broker addresses, topics,
    /// and (topic, broker name) pairs.
    pub fn table_sizes(&self, clusters: usize, broker_names: usize, broker_addrs: usize, topics: usize, pairs: usize) {
        self.clusters.store(clusters as u64, Relaxed);
        self.broker_names.store(broker_names as u64, Relaxed);
        self.broker_addrs.store(broker_addrs as u64, Relaxed);
        self.topics.store(topics as u64, Relaxed);
        self.topic_broker_entries.store(pairs as u64, Relaxed);
    }

    /// Broker addresses loaded by a warm restart and not heard from since.
    pub fn brokers_provisional(&self, n: usize) {
        self.brokers_provisional.store(n as u64, Relaxed);
    }
}
