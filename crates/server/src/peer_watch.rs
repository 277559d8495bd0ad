//! The peer watch: one OS thread (`meridian-peer-watch`, never a shard) that every
//! `peerCheckIntervalMs` reads this server (over loopback when it listens on a wildcard
//! address) and each of `peerNamesrvAddrs` with `meridian_client::route_diff::fetch`,
//! compares this server with each peer (`meridian_client::route_diff::compare`), logs when
//! a peer's count of differences changes,
//! and leaves the last [`PeerReport`] in a [`PeerReportCell`]. The metrics endpoint reads
//! that cell at scrape (`meridian_peer_route_differences{peer}`,
//! `meridian_peer_check_timestamp_seconds`, `/routediff`), never the request path.
//!
//! The first check runs one interval after the start, when brokers have had time to
//! re-register (they do every 30 s). A peer that resolves to this server (same port, a
//! local address) is left out, so every NameServer can be given the same NAMESRV_ADDR list.
//! Must not: block a shard, or send anything but the stock read requests of `fetch`.

use crate::config::Config;
use crate::error::StartError;
use meridian_client::route_diff::fetch::{fetch_all, FetchOptions, MAX_TOPICS_DEFAULT};
use meridian_client::route_diff::{compare, NamesrvView};
use meridian_client::TIMEOUT_MS_DEFAULT;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The last completed check; `None` until the first one.
pub type PeerReportCell = Arc<Mutex<Option<Arc<PeerReport>>>>;

/// One completed check, ready to serve: the gauges' values and the `/routediff` document.
#[derive(Debug)]
pub struct PeerReport {
    /// When the check ended, seconds since the Unix epoch.
    pub checked_at_unix_s: f64,
    /// (peer, differences), -1 when the peer (or this server) could not be read.
    pub peers: Vec<(String, i64)>,
    /// The `/routediff` JSON document.
    pub json: String,
}

/// A cell for the metrics endpoint when the watch is configured, else `None`.
pub fn cell_if_enabled(config: &Config) -> Option<PeerReportCell> {
    (!config.peer_namesrv_addrs.is_empty()).then(PeerReportCell::default)
}

/// Where this server is reached from inside: a wildcard listen address becomes loopback.
pub fn self_connect_addr(local: SocketAddr) -> SocketAddr {
    match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port()),
        _ => local,
    }
}

/// Whether `ip` is an address of this host (binding to it works only then).
fn is_local_ip(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Whether `peer` (host:port) is this server: its port, on an address of this host. The
/// port guard (server.rs) keeps a second server off this port, so nothing else can be there.
fn is_this_server(peer: &str, local: SocketAddr) -> bool {
    let Ok(resolved) = peer.to_socket_addrs() else { return false };
    resolved.into_iter().any(|a| a.port() == local.port() && is_local_ip(a.ip()))
}

/// Starts the watch thread (call once the server is listening).
pub fn spawn(
    config: &Config,
    local: SocketAddr,
    cell: PeerReportCell,
    stopping: Arc<AtomicBool>,
) -> Result<(), StartError> {
    let mut peers = Vec::new();
    for peer in &config.peer_namesrv_addrs {
        if is_this_server(peer, local) {
            tracing::info!("peer watch: {peer} is this server; not compared");
        } else {
            peers.push(peer.clone());
        }
    }
    let watch = Watch {
        self_addr: self_connect_addr(local).to_string(),
        peers,
        interval: Duration::from_millis(config.peer_check_interval_ms),
        timeout: Duration::from_millis(TIMEOUT_MS_DEFAULT),
        cell,
        stopping,
    };
    tracing::info!(
        "peer watch: comparing routes with {} every {} ms (GET /routediff on the metrics port)",
        if watch.peers.is_empty() { "no peer".to_string() } else { watch.peers.join(", ") },
        config.peer_check_interval_ms
    );
    std::thread::Builder::new()
        .name("meridian-peer-watch".into())
        .spawn(move || watch.run())
        .map(|_| ())
        .map_err(|e| StartError::internal(format!("cannot start the peer watch thread: {e}"), e))
}

struct Watch {
    self_addr: String,
    peers: Vec<String>,
    interval: Duration,
    timeout: Duration,
    cell: PeerReportCell,
    stopping: Arc<AtomicBool>,
}

impl Watch {
    fn run(self) {
        let mut last: HashMap<String, i64> = HashMap::new();
        loop {
            std::thread::sleep(self.interval);
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            let (report, summaries) = self.check();
            for ((peer, n), summary) in report.peers.iter().zip(&summaries) {
                if last.insert(peer.clone(), *n) == Some(*n) {
                    continue;
                }
                match n {
                    0 => tracing::info!("peer watch: routes agree with {peer}"),
                    -1 => tracing::warn!("peer watch: cannot compare with {peer}: {summary}"),
                    _ => tracing::warn!(
                        "peer watch: routes differ from {peer}: {summary}; GET /routediff on the metrics port lists them"
                    ),
                }
            }
            *self.cell.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(report));
        }
    }

    /// One check: the report, and per peer a one-line summary for the log.
    fn check(&self) -> (PeerReport, Vec<String>) {
        let started = Instant::now();
        let mut entries: Vec<Value> = Vec::new();
        let mut peers = Vec::new();
        let mut summaries = Vec::new();
        if !self.peers.is_empty() {
            let mut addrs = vec![self.self_addr.clone()];
            addrs.extend(self.peers.iter().cloned());
            let options = FetchOptions {
                timeout: self.timeout,
                topics: None,
                max_topics: MAX_TOPICS_DEFAULT,
                presence_only_above_max: true,
                // Reads only, which stay open when a server requires signatures.
                credentials: None,
            };
            let fetched = fetch_all(&addrs, &options).unwrap_or_default();
            let view = |addr: &str| -> Result<&NamesrvView, String> {
                if let Some((_, v)) = fetched.views.iter().find(|(a, _)| a == addr) {
                    return Ok(v);
                }
                Err(fetched
                    .unreadable
                    .iter()
                    .find(|u| u.namesrv == addr)
                    .map_or_else(|| "not read".to_string(), |u| u.error.clone()))
            };
            let own = view(&self.self_addr);
            for peer in &self.peers {
                let outcome = match (&own, view(peer)) {
                    (Err(e), _) => Err(format!("this server ({}) could not be read: {e}", self.self_addr)),
                    (_, Err(e)) => Err(e),
                    (Ok(own), Ok(other)) => Ok(compare(&[(self.self_addr.as_str(), own), (peer.as_str(), other)])),
                };
                match outcome {
                    Ok(report) => {
                        peers.push((peer.clone(), report.difference_count as i64));
                        summaries.push(report.summary());
                        entries.push(json!({"peer": peer, "differences": report.difference_count, "report": report}));
                    }
                    Err(error) => {
                        peers.push((peer.clone(), -1));
                        entries.push(json!({"peer": peer, "differences": -1, "error": error}));
                        summaries.push(error);
                    }
                }
            }
        }
        let checked_at_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let document = json!({
            "self": self.self_addr,
            "checkedAtSeconds": checked_at_unix_s,
            "durationMs": started.elapsed().as_millis() as u64,
            "intervalMs": self.interval.as_millis() as u64,
            "peers": entries,
        });
        let mut json = serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_string());
        json.push('\n');
        (PeerReport { checked_at_unix_s, peers, json }, summaries)
    }
}

fn last_report(cell: &PeerReportCell) -> Option<Arc<PeerReport>> {
    cell.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The peer gauges, from the last report (nothing before the first check).
pub fn encode_metrics(cell: &PeerReportCell, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Some(report) = last_report(cell) else { return Ok(()) };
    {
        let mut family = enc.encode_descriptor(
            "meridian_peer_route_differences",
            "Differences between this server's routes and the peer's at the last peer check (brokers, topics, \
             queue data, broker addresses); -1 when the peer (or this server) could not be read.",
            None,
            MetricType::Gauge,
        )?;
        for (peer, n) in &report.peers {
            ConstGauge::new(*n).encode(family.encode_family(&[("peer", peer.as_str())])?)?;
        }
    }
    let g = ConstGauge::new(report.checked_at_unix_s);
    g.encode(enc.encode_descriptor(
        "meridian_peer_check_timestamp_seconds",
        "When the last peer check ended, seconds since the Unix epoch.",
        None,
        g.metric_type(),
    )?)
}

/// `/routediff`: (status, JSON body). 404 when the watch is off, 503 before the first check.
pub fn http_routediff(cell: Option<&PeerReportCell>) -> (u16, String) {
    let Some(cell) = cell else {
        return (404, "{\"error\": \"peer watch is off (peerNamesrvAddrs is empty)\"}\n".to_string());
    };
    match last_report(cell) {
        Some(report) => (200, report.json.clone()),
        None => (503, "{\"error\": \"no peer check has completed yet\"}\n".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_keys_are_parsed_listed_and_validated() {
        let mut c = Config::default();
        assert!(c.peer_namesrv_addrs.is_empty() && cell_if_enabled(&c).is_none());
        assert_eq!(c.peer_check_interval_ms, 30_000);
        c.set("peerNamesrvAddrs", " 10.0.0.2:9876; 10.0.0.3:9876 ;").unwrap();
        assert_eq!(c.peer_namesrv_addrs, ["10.0.0.2:9876", "10.0.0.3:9876"]);
        assert!(cell_if_enabled(&c).is_some());
        let props = c.properties();
        assert!(props.contains(&("peerNamesrvAddrs".into(), "10.0.0.2:9876;10.0.0.3:9876".into())), "{props:?}");
        assert!(props.contains(&("peerCheckIntervalMs".into(), "30000".into())));
        assert!(c.set("peerNamesrvAddrs", "nohost").unwrap_err().to_string().contains("peerNamesrvAddrs"));
        c.set("peerNamesrvAddrs", "").unwrap();
        assert!(c.peer_namesrv_addrs.is_empty());
        c.set("peerCheckIntervalMs", "0").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("peerCheckIntervalMs"));
    }

    #[test]
    fn wildcard_listen_addresses_are_reached_over_loopback() {
        assert_eq!(self_connect_addr("0.0.0.0:9876".parse().unwrap()), "127.0.0.1:9876".parse().unwrap());
        assert_eq!(self_connect_addr("[::]:9876".parse().unwrap()), "[::1]:9876".parse().unwrap());
        assert_eq!(self_connect_addr("10.1.2.3:9876".parse().unwrap()), "10.1.2.3:9876".parse().unwrap());
    }

    #[test]
    fn a_peer_on_this_port_and_host_is_this_server() {
        let local: SocketAddr = "0.0.0.0:19876".parse().unwrap();
        assert!(is_this_server("127.0.0.1:19876", local));
        assert!(is_this_server("localhost:19876", local));
        assert!(!is_this_server("127.0.0.1:19877", local));
        // TEST-NET-1: never an address of this host.
        assert!(!is_this_server("192.0.2.1:19876", local));
        assert!(!is_this_server("no-such-host.invalid:19876", local));
    }

    #[test]
    fn the_endpoint_says_off_pending_or_serves_the_last_report() {
        assert_eq!(http_routediff(None).0, 404);
        let cell = PeerReportCell::default();
        assert_eq!(http_routediff(Some(&cell)).0, 503);
        let report = PeerReport { checked_at_unix_s: 1.5, peers: vec![("b:1".into(), 3)], json: "{}\n".into() };
        *cell.lock().unwrap() = Some(Arc::new(report));
        assert_eq!(http_routediff(Some(&cell)), (200, "{}\n".to_string()));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(TestCollector(cell)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("meridian_peer_route_differences{peer=\"b:1\"} 3\n"), "{text}");
        assert!(text.contains("meridian_peer_check_timestamp_seconds 1.5\n"), "{text}");
    }

    #[derive(Debug)]
    struct TestCollector(PeerReportCell);

    impl prometheus_client::collector::Collector for TestCollector {
        fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_metrics(&self.0, &mut enc)
        }
    }
}
