//! Metrics: counters and histograms each written by exactly one thread (a shard, or the
//! route writer) with a plain load + store on atomics — no read-modify-write, no lock, no
//! shared cache line between writers — and summed over shards when Prometheus scrapes.
//! The HTTP endpoint (`/metrics`, `/healthz`, `/readyz`, `/routediff`) runs on its own thread with a
//! small tokio runtime (axum), off the RocketMQ port; prometheus-client renders the text.
//! Must not: take a lock or allocate on the request path.

use crate::route::writer::SnapshotCell;
use meridian_protocol::codes;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request codes with their own series (everything a NameServer serves); others share "other".
const REQUEST_CODES: [(i32, &str); 26] = [
    (codes::PUT_KV_CONFIG, "PUT_KV_CONFIG"),
    (codes::GET_KV_CONFIG, "GET_KV_CONFIG"),
    (codes::DELETE_KV_CONFIG, "DELETE_KV_CONFIG"),
    (codes::REGISTER_BROKER, "REGISTER_BROKER"),
    (codes::UNREGISTER_BROKER, "UNREGISTER_BROKER"),
    (codes::GET_ROUTEINFO_BY_TOPIC, "GET_ROUTEINFO_BY_TOPIC"),
    (codes::GET_BROKER_CLUSTER_INFO, "GET_BROKER_CLUSTER_INFO"),
    (codes::WIPE_WRITE_PERM_OF_BROKER, "WIPE_WRITE_PERM_OF_BROKER"),
    (codes::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, "GET_ALL_TOPIC_LIST_FROM_NAMESERVER"),
    (codes::DELETE_TOPIC_IN_NAMESRV, "DELETE_TOPIC_IN_NAMESRV"),
    (codes::REGISTER_TOPIC_IN_NAMESRV, "REGISTER_TOPIC_IN_NAMESRV"),
    (codes::GET_KVLIST_BY_NAMESPACE, "GET_KVLIST_BY_NAMESPACE"),
    (codes::GET_TOPICS_BY_CLUSTER, "GET_TOPICS_BY_CLUSTER"),
    (codes::GET_SYSTEM_TOPIC_LIST_FROM_NS, "GET_SYSTEM_TOPIC_LIST_FROM_NS"),
    (codes::GET_UNIT_TOPIC_LIST, "GET_UNIT_TOPIC_LIST"),
    (codes::GET_HAS_UNIT_SUB_TOPIC_LIST, "GET_HAS_UNIT_SUB_TOPIC_LIST"),
    (codes::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST, "GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST"),
    (codes::UPDATE_NAMESRV_CONFIG, "UPDATE_NAMESRV_CONFIG"),
    (codes::GET_NAMESRV_CONFIG, "GET_NAMESRV_CONFIG"),
    (codes::QUERY_DATA_VERSION, "QUERY_DATA_VERSION"),
    (codes::ADD_WRITE_PERM_OF_BROKER, "ADD_WRITE_PERM_OF_BROKER"),
    (codes::GET_BROKER_MEMBER_GROUP, "GET_BROKER_MEMBER_GROUP"),
    (codes::BROKER_HEARTBEAT, "BROKER_HEARTBEAT"),
    (codes::NOTIFY_MIN_BROKER_ID_CHANGE, "NOTIFY_MIN_BROKER_ID_CHANGE"),
    (codes::MERIDIAN_WATCH_ROUTES, "MERIDIAN_WATCH_ROUTES"),
    (codes::MERIDIAN_BROKER_LIVE_TABLE, "MERIDIAN_BROKER_LIVE_TABLE"),
];
const REQUEST_SLOTS: usize = REQUEST_CODES.len() + 1;

/// Response codes a NameServer answers with; others share "other".
const RESPONSE_CODES: [i32; 8] = [
    codes::SUCCESS,
    codes::SYSTEM_ERROR,
    codes::SYSTEM_BUSY,
    codes::REQUEST_CODE_NOT_SUPPORTED,
    codes::NO_PERMISSION,
    codes::TOPIC_NOT_EXIST,
    codes::QUERY_NOT_FOUND,
    codes::GO_AWAY,
];
const RESPONSE_SLOTS: usize = RESPONSE_CODES.len() + 1;

/// Histogram bucket upper bounds, in nanoseconds: 1 µs to 10 s.
const BUCKET_BOUNDS_NS: [u64; 22] = [
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
    counts: [AtomicU64; BUCKET_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
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
    fn merge_into(&self, into: &mut Merged) {
        for (total, c) in into.counts.iter_mut().zip(&self.counts) {
            *total += c.load(Relaxed);
        }
        into.sum_ns += self.sum_ns.load(Relaxed);
    }
}

#[derive(Default, Clone)]
struct Merged {
    counts: [u64; BUCKET_BOUNDS_NS.len() + 1],
    sum_ns: u64,
}

impl Merged {
    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn encode(&self, mut encoder: prometheus_client::encoding::MetricEncoder) -> Result<(), std::fmt::Error> {
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
const CLOSE_CAUSES: [&str; 4] = ["peer_closed", "idle_timeout", "write_failed", "protocol_error"];

/// One shard's metrics; written only by that shard's thread.
pub struct ShardMetrics {
    /// requests[request slot][response slot].
    requests: [[AtomicU64; RESPONSE_SLOTS]; REQUEST_SLOTS],
    /// Time from a frame being parsed to its answer being ready, per request code.
    latency: [Histogram; REQUEST_SLOTS],
    connections_accepted: AtomicU64,
    connections_refused: AtomicU64,
    connections_closed: [AtomicU64; CLOSE_CAUSES.len()],
    registration_body_bytes: AtomicU64,
    registrations_unread: AtomicU64,
    registration_decode: Histogram,
    /// Route watches (43701) held now: a gauge written by the shard only.
    watches_held: AtomicU64,
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
            registration_decode: Histogram::default(),
            watches_held: AtomicU64::new(0),
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

    /// A registration body read in full and decoded.
    pub fn registration_decoded(&self, body_bytes: usize, elapsed: Duration) {
        add(&self.registration_body_bytes, body_bytes as u64);
        self.registration_decode.record(elapsed);
    }

    /// A re-sent registration recognised by its bytes and not decoded again.
    pub fn registration_unread(&self) {
        add(&self.registrations_unread, 1);
    }
}

/// Why a broker left the table.
#[derive(Clone, Copy)]
pub enum RemovalCause {
    ConnectionClosed = 0,
    Timeout = 1,
    Unregister = 2,
}
const REMOVAL_CAUSES: [&str; 3] = ["connection_closed", "timeout", "unregister"];

/// The route writer's metrics; written only by the writer thread.
#[derive(Default)]
pub struct WriterMetrics {
    batches: AtomicU64,
    updates: AtomicU64,
    batch_apply: Histogram,
    publish: Histogram,
    registration_apply: Histogram,
    registrations_refused: AtomicU64,
    brokers_removed: [AtomicU64; REMOVAL_CAUSES.len()],
    clusters: AtomicU64,
    broker_names: AtomicU64,
    broker_addrs: AtomicU64,
    topics: AtomicU64,
    topic_broker_entries: AtomicU64,
    brokers_provisional: AtomicU64,
}

impl WriterMetrics {
    pub fn batch(&self, updates: usize, apply: Duration, publish: Duration) {
        add(&self.batches, 1);
        add(&self.updates, updates as u64);
        self.batch_apply.record(apply);
        self.publish.record(publish);
    }

    pub fn registration_applied(&self, elapsed: Duration, refused: bool) {
        self.registration_apply.record(elapsed);
        if refused {
            add(&self.registrations_refused, 1);
        }
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

/// Everything a scrape reads.
pub struct Metrics {
    pub shards: Vec<Arc<ShardMetrics>>,
    pub writer: Arc<WriterMetrics>,
    pub connections_open: Vec<Arc<AtomicUsize>>,
    pub in_flight: Arc<AtomicUsize>,
    pub stopping: Arc<AtomicBool>,
    pub published: SnapshotCell,
    pub started: Instant,
    /// The peer watch's last report (`peer_namesrv_addrs`); `None` when the watch is off.
    pub peer_report: Option<crate::peer_watch::PeerReportCell>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("shards", &self.shards.len()).finish()
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

fn gauge_f64(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One unlabelled histogram: the sum of `parts`.
fn histogram<'h>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    parts: impl IntoIterator<Item = &'h Histogram>,
) -> Result<(), std::fmt::Error> {
    let mut merged = Merged::default();
    for h in parts {
        h.merge_into(&mut merged);
    }
    merged.encode(enc.encode_descriptor(name, help, None, MetricType::Histogram)?)
}

fn sum_shards(shards: &[Arc<ShardMetrics>], read: impl Fn(&ShardMetrics) -> &AtomicU64) -> u64 {
    shards.iter().map(|s| read(s).load(Relaxed)).sum()
}

fn request_label(slot: usize) -> (String, &'static str) {
    match REQUEST_CODES.get(slot) {
        Some((code, name)) => (code.to_string(), name),
        None => ("other".into(), "OTHER"),
    }
}

impl prometheus_client::collector::Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shards = &self.shards;
        // Requests by request code and response code.
        {
            let mut family = enc.encode_descriptor(
                "meridian_requests",
                "Requests answered (or handled, if oneway), by request code and response code.",
                None,
                MetricType::Counter,
            )?;
            for req in 0..REQUEST_SLOTS {
                let (code, name) = request_label(req);
                for resp in 0..RESPONSE_SLOTS {
                    let n: u64 = shards.iter().map(|s| s.requests[req][resp].load(Relaxed)).sum();
                    if n == 0 {
                        continue;
                    }
                    let response = RESPONSE_CODES.get(resp).map_or_else(|| "other".to_string(), |c| c.to_string());
                    let labels = [("code", code.as_str()), ("request", name), ("response_code", response.as_str())];
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut family = enc.encode_descriptor(
                "meridian_request_duration_seconds",
                "Time from a request frame being parsed to its answer being ready, by request code (all shards).",
                None,
                MetricType::Histogram,
            )?;
            for req in 0..REQUEST_SLOTS {
                let mut merged = Merged::default();
                for s in shards {
                    s.latency[req].merge_into(&mut merged);
                }
                if merged.count() == 0 {
                    continue;
                }
                let (code, name) = request_label(req);
                let labels = [("code", code.as_str()), ("request", name)];
                merged.encode(family.encode_family(&labels)?)?;
            }
        }
        // Connections.
        let open: usize = self.connections_open.iter().map(|n| n.load(Relaxed)).sum();
        gauge(&mut enc, "meridian_connections_open", "Open client and broker connections.", open as i64)?;
        counter(
            &mut enc,
            "meridian_connections_accepted",
            "Connections accepted.",
            sum_shards(shards, |s| &s.connections_accepted),
        )?;
        counter(
            &mut enc,
            "meridian_connections_refused",
            "Connections closed at accept because connections_per_shard_max was reached.",
            sum_shards(shards, |s| &s.connections_refused),
        )?;
        {
            let mut family = enc.encode_descriptor(
                "meridian_connections_closed",
                "Connections ended, by cause.",
                None,
                MetricType::Counter,
            )?;
            for (i, cause) in CLOSE_CAUSES.iter().enumerate() {
                let n: u64 = shards.iter().map(|s| s.connections_closed[i].load(Relaxed)).sum();
                ConstCounter::new(n).encode(family.encode_family(&[("cause", *cause)])?)?;
            }
        }
        let watches: u64 = shards.iter().map(|s| s.watches_held.load(Relaxed)).sum();
        gauge(
            &mut enc,
            "meridian_watches_held",
            "Route watches (request code 43701) held, waiting for a change (also counted in meridian_requests_in_flight).",
            watches as i64,
        )?;
        gauge(
            &mut enc,
            "meridian_requests_in_flight",
            "Requests being handled or answered.",
            self.in_flight.load(Relaxed) as i64,
        )?;
        // Registrations.
        counter(
            &mut enc,
            "meridian_registration_body_bytes",
            "REGISTER_BROKER body bytes read and decoded (compressed size as received).",
            sum_shards(shards, |s| &s.registration_body_bytes),
        )?;
        counter(
            &mut enc,
            "meridian_registrations_unread",
            "REGISTER_BROKER re-sends recognised by their bytes and applied without decoding.",
            sum_shards(shards, |s| &s.registrations_unread),
        )?;
        histogram(
            &mut enc,
            "meridian_registration_decode_seconds",
            "Time to decompress and parse a REGISTER_BROKER body.",
            shards.iter().map(|s| &s.registration_decode),
        )?;
        let w = &self.writer;
        histogram(
            &mut enc,
            "meridian_registration_apply_seconds",
            "Time for the route writer to apply one REGISTER_BROKER to the table.",
            [&w.registration_apply],
        )?;
        counter(
            &mut enc,
            "meridian_registrations_refused",
            "REGISTER_BROKER refused by the table (limits, invalid data).",
            w.registrations_refused.load(Relaxed),
        )?;
        {
            let mut family = enc.encode_descriptor(
                "meridian_broker_removals",
                "Broker addresses removed from the table, by cause.",
                None,
                MetricType::Counter,
            )?;
            for (i, cause) in REMOVAL_CAUSES.iter().enumerate() {
                let n = w.brokers_removed[i].load(Relaxed);
                ConstCounter::new(n).encode(family.encode_family(&[("cause", *cause)])?)?;
            }
        }
        // Writer and snapshots.
        counter(
            &mut enc,
            "meridian_writer_batches",
            "Update batches applied by the route writer.",
            w.batches.load(Relaxed),
        )?;
        counter(&mut enc, "meridian_writer_updates", "Updates applied by the route writer.", w.updates.load(Relaxed))?;
        for (name, help, h) in [
            ("meridian_writer_batch_apply_seconds", "Time to apply one batch of updates to the table.", &w.batch_apply),
            (
                "meridian_snapshot_publish_seconds",
                "Time to build and publish a route snapshot after a batch.",
                &w.publish,
            ),
        ] {
            histogram(&mut enc, name, help, [h])?;
        }
        let snapshot = self.published.load();
        gauge(
            &mut enc,
            "meridian_snapshot_generation",
            "Generation of the route snapshot readers use (increases with every visible change).",
            snapshot.generation as i64,
        )?;
        gauge(
            &mut enc,
            "meridian_snapshot_topics",
            "Topics with a route in the current snapshot.",
            snapshot.topics.len() as i64,
        )?;
        drop(snapshot);
        gauge(&mut enc, "meridian_clusters", "Clusters in the route table.", w.clusters.load(Relaxed) as i64)?;
        gauge(
            &mut enc,
            "meridian_broker_names",
            "Broker groups (names) in the route table.",
            w.broker_names.load(Relaxed) as i64,
        )?;
        gauge(
            &mut enc,
            "meridian_brokers_live",
            "Live broker addresses (masters and slaves).",
            w.broker_addrs.load(Relaxed) as i64,
        )?;
        gauge(
            &mut enc,
            "meridian_brokers_provisional",
            "Live broker addresses loaded by a warm restart that have not registered or heartbeated since.",
            w.brokers_provisional.load(Relaxed) as i64,
        )?;
        gauge(&mut enc, "meridian_topics", "Topics in the route table.", w.topics.load(Relaxed) as i64)?;
        gauge(
            &mut enc,
            "meridian_topic_broker_entries",
            "(topic, broker name) queue-data entries in the route table.",
            w.topic_broker_entries.load(Relaxed) as i64,
        )?;
        // Process.
        let process = ProcessStats::read();
        gauge(&mut enc, "process_resident_memory_bytes", "Resident memory size in bytes.", process.rss_bytes as i64)?;
        gauge(&mut enc, "process_virtual_memory_bytes", "Virtual memory size in bytes.", process.vsize_bytes as i64)?;
        gauge(&mut enc, "process_open_fds", "Open file descriptors.", process.open_fds as i64)?;
        let cpu = ConstCounter::new(process.cpu_seconds);
        cpu.encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        gauge_f64(
            &mut enc,
            "meridian_uptime_seconds",
            "Seconds since the server started.",
            self.started.elapsed().as_secs_f64(),
        )?;
        gauge(&mut enc, "meridian_shards", "Shards (executors) serving connections.", shards.len() as i64)?;
        gauge(
            &mut enc,
            "meridian_ready",
            "1 when /readyz answers 200 (serving routes, not stopping), else 0.",
            i64::from(not_ready_reason(self).is_none()),
        )?;
        if let Some(cell) = &self.peer_report {
            crate::peer_watch::encode_metrics(cell, &mut enc)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct ProcessStats {
    rss_bytes: u64,
    vsize_bytes: u64,
    open_fds: u64,
    cpu_seconds: f64,
}

impl ProcessStats {
    /// From /proc/self; zeros where unavailable.
    fn read() -> ProcessStats {
        let mut out = ProcessStats::default();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        // SAFETY: as above.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let mut it = statm.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
            out.vsize_bytes = it.next().unwrap_or(0) * page;
            out.rss_bytes = it.next().unwrap_or(0) * page;
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                let stime = fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                out.cpu_seconds = (utime + stime) as f64 / ticks;
            }
        }
        out.open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
        out
    }
}

/// Largest body the endpoint accepts (it takes no bodies; a request is refused beyond this).
const HTTP_REQUEST_BODY_BYTES_MAX: usize = 4096;

/// Renders the Prometheus text exposition.
pub fn render(metrics: &Arc<Metrics>) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(MetricsRef(metrics.clone())));
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The registry owns its collectors; this hands it a shared reference.
#[derive(Debug)]
struct MetricsRef(Arc<Metrics>);

impl prometheus_client::collector::Collector for MetricsRef {
    fn encode(&self, enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        prometheus_client::collector::Collector::encode(&*self.0, enc)
    }
}

/// Why the server is not ready, if it is not.
pub fn not_ready_reason(metrics: &Metrics) -> Option<String> {
    if metrics.stopping.load(Relaxed) {
        return Some("stopping".into());
    }
    let until = metrics.published.load().not_ready_until;
    match until {
        Some(t) if Instant::now() < t => Some(format!(
            "needWaitForService: serving routes in {} s",
            t.saturating_duration_since(Instant::now()).as_secs() + 1
        )),
        _ => None,
    }
}

/// Binds `addr` now (so a taken port fails the start) and serves `/metrics`, `/healthz` and
/// `/readyz` on a thread of its own. Returns the bound address.
pub fn spawn_http(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr, String> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("metrics listener: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("metrics listener: {e}"))?;
    std::thread::Builder::new()
        .name("meridian-metrics".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_io().build() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("metrics endpoint not started: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("metrics endpoint not started: {e}");
                        return;
                    }
                };
                let app = router(metrics);
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("metrics endpoint stopped: {e}");
                }
            });
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    Ok(local)
}

fn router(metrics: Arc<Metrics>) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    let for_metrics = metrics.clone();
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = for_metrics.clone();
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], render(&m)) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/routediff", {
            let cell = metrics.peer_report.clone();
            get(move || {
                let (status, body) = crate::peer_watch::http_routediff(cell.as_ref());
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                async move { (status, [(header::CONTENT_TYPE, "application/json")], body) }
            })
        })
        .route(
            "/readyz",
            get(move || {
                let m = metrics.clone();
                async move {
                    match not_ready_reason(&m) {
                        None => (StatusCode::OK, "ready\n".to_string()),
                        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                    }
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(HTTP_REQUEST_BODY_BYTES_MAX))
}
