//! The metrics HTTP endpoint (`/metrics`, `/healthz`, `/readyz`, `/routediff`): runs on its
//! own thread with a small tokio runtime (axum), off the RocketMQ port; prometheus-client
//! renders the text, summing the per-shard `counters` when Prometheus scrapes.
//! Must not: be reached from the request path, or write to any counter.

use super::counters::{
    BrokerRounds, Histogram, Merged, ShardMetrics, WriterMetrics, CLOSE_CAUSES, REFUSAL_REASONS, REMOVAL_CAUSES,
    REQUEST_CODES, REQUEST_SLOTS, RESPONSE_CODES, RESPONSE_SLOTS,
};
use crate::error::StartError;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// A per-broker series: name, help, type, and its value of a broker's rounds.
type BrokerSeries = (&'static str, &'static str, MetricType, fn(&BrokerRounds) -> u64);

/// What a scrape reads of the published route snapshot.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotStats {
    pub generation: u64,
    /// Topics with a route.
    pub topics: usize,
    /// needWaitForService: lookups are refused until then.
    pub not_ready_until: Option<Instant>,
}

/// Reads `SnapshotStats` from wherever snapshots are published (lock-free).
pub type SnapshotProbe = Box<dyn Fn() -> SnapshotStats + Send + Sync>;

/// Everything a scrape reads.
pub struct Metrics {
    pub shards: Vec<Arc<ShardMetrics>>,
    pub writer: Arc<WriterMetrics>,
    pub connections_open: Vec<Arc<AtomicUsize>>,
    pub in_flight: Arc<AtomicUsize>,
    pub stopping: Arc<AtomicBool>,
    /// Reads the published route snapshot (the metrics know nothing of routes).
    pub published: SnapshotProbe,
    pub started: Instant,
    /// The peer watch's last report (`peerNamesrvAddrs`); `None` when the watch is off.
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
        self.encode_requests(&mut enc)?;
        self.encode_connections(&mut enc)?;
        self.encode_registrations(&mut enc)?;
        self.encode_writer(&mut enc)?;
        self.encode_process(&mut enc)
    }
}

impl Metrics {
    /// Requests by request code and response code, and their latency.
    fn encode_requests(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
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
        Ok(())
    }

    /// Connections, route watches and requests in flight.
    fn encode_connections(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shards = &self.shards;
        // Connections.
        let open: usize = self.connections_open.iter().map(|n| n.load(Relaxed)).sum();
        gauge(enc, "meridian_connections_open", "Open client and broker connections.", open as i64)?;
        counter(
            enc,
            "meridian_connections_accepted",
            "Connections accepted.",
            sum_shards(shards, |s| &s.connections_accepted),
        )?;
        counter(
            enc,
            "meridian_connections_refused",
            "Connections closed at accept because connectionsPerShardMax was reached.",
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
        {
            let mut family = enc.encode_descriptor(
                "meridian_requests_refused",
                "Requests refused by access control (answered NO_PERMISSION), by reason.",
                None,
                MetricType::Counter,
            )?;
            for (i, reason) in REFUSAL_REASONS.iter().enumerate() {
                let n: u64 = shards.iter().map(|s| s.requests_refused[i].load(Relaxed)).sum();
                ConstCounter::new(n).encode(family.encode_family(&[("reason", *reason)])?)?;
            }
        }
        let watches: u64 = shards.iter().map(|s| s.watches_held.load(Relaxed)).sum();
        gauge(
            enc,
            "meridian_watches_held",
            "Route watches (request code 43701) held, waiting for a change (also counted in meridian_requests_in_flight).",
            watches as i64,
        )?;
        gauge(
            enc,
            "meridian_requests_in_flight",
            "Requests being handled or answered.",
            self.in_flight.load(Relaxed) as i64,
        )?;
        Ok(())
    }

    /// Per live broker address: closed registration rounds and their chunks (split mode
    /// shows as chunks > rounds), labelled by cluster, broker name and address.
    fn encode_broker_rounds(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rounds = self.writer.broker_rounds();
        let series: [BrokerSeries; 3] = [
            (
                "meridian_broker_registration_rounds",
                "Registration rounds of a live broker address since it registered.",
                MetricType::Counter,
                |r| r.rounds,
            ),
            (
                "meridian_broker_registration_chunks",
                "REGISTER_BROKER frames in those rounds (one per round unless split).",
                MetricType::Counter,
                |r| r.chunks,
            ),
            (
                "meridian_broker_registration_last_round_chunks",
                "Frames in the broker address's last registration round.",
                MetricType::Gauge,
                |r| r.last_round_chunks,
            ),
        ];
        for (name, help, kind, value) in series {
            let mut family = enc.encode_descriptor(name, help, None, kind)?;
            for ((cluster, addr), r) in &rounds {
                let labels = [("cluster", cluster.as_str()), ("broker", r.broker.as_str()), ("addr", addr.as_str())];
                let encoder = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter => ConstCounter::new(value(r)).encode(encoder)?,
                    _ => ConstGauge::new(value(r) as i64).encode(encoder)?,
                }
            }
        }
        Ok(())
    }

    /// Registrations: bytes, decode and apply times, refusals, broker removals.
    fn encode_registrations(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shards = &self.shards;
        let w = &self.writer;
        // Registrations.
        counter(
            enc,
            "meridian_registration_body_bytes",
            "REGISTER_BROKER body bytes read and decoded (compressed size as received).",
            sum_shards(shards, |s| &s.registration_body_bytes),
        )?;
        counter(
            enc,
            "meridian_registrations_unread",
            "REGISTER_BROKER re-sends recognised by their bytes and applied without decoding.",
            sum_shards(shards, |s| &s.registrations_unread),
        )?;
        counter(
            enc,
            "meridian_registrations_delta",
            "REGISTER_BROKER bodies read against the broker's previous body and applied as a delta.",
            sum_shards(shards, |s| &s.registrations_delta),
        )?;
        counter(
            enc,
            "meridian_registrations_delta_refused",
            "Deltas the route table could not apply (the body was then decoded in full).",
            sum_shards(shards, |s| &s.registrations_delta_refused),
        )?;
        histogram(
            enc,
            "meridian_registration_decode_seconds",
            "Time to decompress and parse a REGISTER_BROKER body.",
            shards.iter().map(|s| &s.registration_decode),
        )?;
        for (name, help, parts) in [
            (
                "meridian_registration_receive_seconds",
                "Time from the first byte to the last of a REGISTER_BROKER frame larger than the read buffer.",
                shards.iter().map(|s| &s.registration_receive).collect::<Vec<_>>(),
            ),
            (
                "meridian_registration_inflate_seconds",
                "Time to decompress a compressed REGISTER_BROKER body.",
                shards.iter().map(|s| &s.registration_inflate).collect(),
            ),
            (
                "meridian_registration_scan_seconds",
                "Time to decode a REGISTER_BROKER body's plain bytes (after any decompression).",
                shards.iter().map(|s| &s.registration_scan).collect(),
            ),
        ] {
            histogram(enc, name, help, parts)?;
        }
        histogram(
            enc,
            "meridian_registration_apply_seconds",
            "Time for the route writer to apply one REGISTER_BROKER to the table.",
            [&w.registration_apply],
        )?;
        histogram(
            enc,
            "meridian_registration_publish_seconds",
            "Time to build and publish the route snapshot after a batch holding a REGISTER_BROKER.",
            [&w.registration_publish],
        )?;
        counter(
            enc,
            "meridian_registrations_refused",
            "REGISTER_BROKER refused by the table (limits, invalid data).",
            w.registrations_refused.load(Relaxed),
        )?;
        counter(
            enc,
            "meridian_registration_chunks",
            "REGISTER_BROKER applied to a live broker address: one per frame, many per round in split registration.",
            w.registration_chunks.load(Relaxed),
        )?;
        counter(
            enc,
            "meridian_registration_rounds",
            "Broker registration rounds closed: one frame, or the chunks of a split registration.",
            w.registration_rounds.load(Relaxed),
        )?;
        self.encode_broker_rounds(enc)?;
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
        Ok(())
    }

    /// The writer, the published snapshot and the table sizes.
    fn encode_writer(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let w = &self.writer;
        // Writer and snapshots.
        counter(
            enc,
            "meridian_writer_batches",
            "Update batches applied by the route writer.",
            w.batches.load(Relaxed),
        )?;
        counter(enc, "meridian_writer_updates", "Updates applied by the route writer.", w.updates.load(Relaxed))?;
        for (name, help, h) in [
            ("meridian_writer_batch_apply_seconds", "Time to apply one batch of updates to the table.", &w.batch_apply),
            (
                "meridian_snapshot_publish_seconds",
                "Time to build and publish a route snapshot after a batch.",
                &w.publish,
            ),
        ] {
            histogram(enc, name, help, [h])?;
        }
        let snapshot = (self.published)();
        gauge(
            enc,
            "meridian_snapshot_generation",
            "Generation of the route snapshot readers use (increases with every visible change).",
            snapshot.generation as i64,
        )?;
        gauge(enc, "meridian_snapshot_topics", "Topics with a route in the current snapshot.", snapshot.topics as i64)?;
        gauge(enc, "meridian_clusters", "Clusters in the route table.", w.clusters.load(Relaxed) as i64)?;
        gauge(
            enc,
            "meridian_broker_names",
            "Broker groups (names) in the route table.",
            w.broker_names.load(Relaxed) as i64,
        )?;
        gauge(
            enc,
            "meridian_brokers_live",
            "Live broker addresses (masters and slaves).",
            w.broker_addrs.load(Relaxed) as i64,
        )?;
        gauge(
            enc,
            "meridian_brokers_provisional",
            "Live broker addresses loaded by a warm restart that have not registered or heartbeated since.",
            w.brokers_provisional.load(Relaxed) as i64,
        )?;
        gauge(enc, "meridian_topics", "Topics in the route table.", w.topics.load(Relaxed) as i64)?;
        gauge(
            enc,
            "meridian_topic_broker_entries",
            "(topic, broker name) queue-data entries in the route table.",
            w.topic_broker_entries.load(Relaxed) as i64,
        )?;
        Ok(())
    }

    /// The process, readiness and the peer watch.
    fn encode_process(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shards = &self.shards;
        // Process.
        let process = ProcessStats::read();
        gauge(enc, "process_resident_memory_bytes", "Resident memory size in bytes.", process.rss_bytes as i64)?;
        gauge(enc, "process_virtual_memory_bytes", "Virtual memory size in bytes.", process.vsize_bytes as i64)?;
        gauge(enc, "process_open_fds", "Open file descriptors.", process.open_fds as i64)?;
        let cpu = ConstCounter::new(process.cpu_seconds);
        cpu.encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds.",
            None,
            cpu.metric_type(),
        )?)?;
        gauge_f64(
            enc,
            "meridian_uptime_seconds",
            "Seconds since the server started.",
            self.started.elapsed().as_secs_f64(),
        )?;
        gauge(enc, "meridian_shards", "Shards (executors) serving connections.", shards.len() as i64)?;
        gauge(
            enc,
            "meridian_ready",
            "1 when /readyz answers 200 (serving routes, not stopping), else 0.",
            i64::from(not_ready_reason(self).is_none()),
        )?;
        if let Some(cell) = &self.peer_report {
            crate::peer_watch::encode_metrics(cell, enc)?;
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
        let (page, ticks) = crate::sys::page_bytes_and_clock_ticks();
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
    let until = (metrics.published)().not_ready_until;
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
pub fn spawn_http(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr, StartError> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| StartError::internal(format!("cannot listen for metrics on {addr}: {e}"), e))?;
    listener.set_nonblocking(true).map_err(|e| StartError::internal(format!("metrics listener: {e}"), e))?;
    let local = listener.local_addr().map_err(|e| StartError::internal(format!("metrics listener: {e}"), e))?;
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
        .map_err(|e| StartError::internal(format!("cannot start the metrics thread: {e}"), e))?;
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
