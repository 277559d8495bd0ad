//! The metrics endpoint end to end: known traffic over the RocketMQ port, then the values a
//! Prometheus scrape reads (not just the names), and `/healthz` / `/readyz`.

use crate::common;
use crate::common::builders::*;
use meridian_protocol::body;
use meridian_protocol::codes::{REGISTER_BROKER, SUCCESS, TOPIC_NOT_EXIST, UNREGISTER_BROKER};
use meridian_testkit::{poll_until, Client, Request, Server, POLL_DEADLINE};

/// The value of the sample whose name and labels are exactly `series` (as the text format
/// writes them, e.g. `meridian_topics` or `x_total{cause="timeout"}`); `None` if absent.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap_or_else(|e| panic!("{series}: {v:?}: {e}")))
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

fn scrape(server: &Server) -> String {
    let (status, body) = server.http_get("/metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn requests(code: i32, name: &str, response: &str) -> String {
    format!("meridian_requests_total{{code=\"{code}\",request=\"{name}\",response_code=\"{response}\"}}")
}

fn register(cluster: &str, name: &str, port: u16, topics: &[&str]) -> Request {
    let body = json_body(1, &topics.iter().map(|t| topic(t, 4, 6)).collect::<Vec<_>>());
    Request::new(REGISTER_BROKER)
        .ext("brokerName", name)
        .ext("brokerAddr", format!("127.0.0.1:{port}"))
        .ext("clusterName", cluster)
        .ext("brokerId", 0)
        .ext("haServerAddr", format!("127.0.0.1:{}", port + 1))
        .ext("compressed", "false")
        .ext("bodyCrc32", crc32(&body))
        .body(body)
}

fn unregister(cluster: &str, name: &str, port: u16) -> Request {
    Request::new(UNREGISTER_BROKER)
        .ext("brokerName", name)
        .ext("brokerAddr", format!("127.0.0.1:{port}"))
        .ext("clusterName", cluster)
        .ext("brokerId", 0)
}

fn registered(conn: &mut Client, request: &Request) {
    let reply = conn.call(request);
    assert_eq!(reply.code(), SUCCESS, "{:?}", reply.remark());
}

#[test]
fn metrics_count_known_traffic_by_code_with_table_sizes_and_removals() {
    let server = common::server(&["scanNotActiveBrokerIntervalMs=100"]);
    let before = scrape(&server);
    let generation_before = value(&before, "meridian_snapshot_generation");
    assert_eq!(value(&before, "meridian_topics"), 0.0);

    // Broker A: registered, then the same bytes again (recognised, not decoded again).
    let mut a = server.client();
    let reg_a = register("c1", "broker-a", 10911, &["T1", "T2", "T3"]);
    registered(&mut a, &reg_a);
    registered(&mut a, &reg_a);
    // Broker B on another cluster, removed by closing its connection.
    let mut b = server.client();
    registered(&mut b, &register("c2", "broker-b", 10921, &["T1", "B1"]));
    drop(b);
    // Broker C unregistered by request; broker D expires (its own 300 ms timeout).
    let mut c = server.client();
    registered(&mut c, &register("c1", "broker-c", 10931, &["C1", "C2"]));
    assert_eq!(c.call(&unregister("c1", "broker-c", 10931)).code(), SUCCESS);
    let mut d = server.client();
    registered(&mut d, &register("c1", "broker-d", 10941, &["D1", "D2"]).ext("heartbeatTimeoutMillis", 300));
    // Lookups: 5 found, 3 not found; one unknown request code.
    let mut client = server.client();
    for _ in 0..5 {
        assert_eq!(route_code(&mut client, "T1"), SUCCESS);
    }
    for _ in 0..3 {
        assert_eq!(route_code(&mut client, "NoSuchTopic"), TOPIC_NOT_EXIST);
    }
    assert_eq!(client.call(&Request::new(9999)).code(), 3);

    // Wait until B's close and D's expiry are applied, and D's socket (closed by the shard
    // after the writer counted the expiry) is gone, then read everything at once. The
    // writer counts a removal before it publishes the table without it, so the table
    // gauges are waited for too (on a loaded host a scrape fell between the two).
    let settled = poll_until(POLL_DEADLINE, || {
        let text = scrape(&server);
        sample(&text, "meridian_broker_removals_total{cause=\"timeout\"}") == Some(1.0)
            && sample(&text, "meridian_broker_removals_total{cause=\"connection_closed\"}") == Some(1.0)
            && sample(&text, "meridian_connections_closed_total{cause=\"peer_closed\"}") == Some(2.0)
            && sample(&text, "meridian_broker_names") == Some(1.0)
            && sample(&text, "meridian_snapshot_topics") == Some(3.0)
    });
    assert!(settled, "removals never counted:\n{}", scrape(&server));
    let text = scrape(&server);

    assert_eq!(value(&text, &requests(103, "REGISTER_BROKER", "0")), 5.0);
    assert_eq!(value(&text, &requests(104, "UNREGISTER_BROKER", "0")), 1.0);
    assert_eq!(value(&text, &requests(105, "GET_ROUTEINFO_BY_TOPIC", "0")), 5.0);
    assert_eq!(value(&text, &requests(105, "GET_ROUTEINFO_BY_TOPIC", "17")), 3.0);
    assert_eq!(value(&text, "meridian_requests_total{code=\"other\",request=\"OTHER\",response_code=\"3\"}"), 1.0);
    // The latency histogram of lookups holds all 8, cumulative up to +Inf.
    let lookups = "code=\"105\",request=\"GET_ROUTEINFO_BY_TOPIC\"";
    assert_eq!(value(&text, &format!("meridian_request_duration_seconds_count{{{lookups}}}")), 8.0);
    assert_eq!(value(&text, &format!("meridian_request_duration_seconds_bucket{{le=\"+Inf\",{lookups}}}")), 8.0);
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("meridian_request_duration_seconds_bucket{") && l.contains(lookups))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.len() > 10 && buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(value(&text, &format!("meridian_request_duration_seconds_sum{{{lookups}}}")) > 0.0);

    // Registrations: 4 bodies decoded, one re-send recognised unread.
    assert_eq!(value(&text, "meridian_registrations_unread_total"), 1.0);
    assert_eq!(value(&text, "meridian_registration_decode_seconds_count"), 4.0);
    assert_eq!(value(&text, "meridian_registration_apply_seconds_count"), 5.0);
    // Five chunks; the rounds of B, C and D closed with their removal (A's when it goes quiet).
    assert_eq!(value(&text, "meridian_registration_chunks_total"), 5.0);
    let rounds = value(&text, "meridian_registration_rounds_total");
    assert!(rounds == 3.0 || rounds == 4.0, "{rounds}");
    let decoded_bytes: usize = [
        register("c1", "broker-a", 10911, &["T1", "T2", "T3"]),
        register("c2", "broker-b", 10921, &["T1", "B1"]),
        register("c1", "broker-c", 10931, &["C1", "C2"]),
        register("c1", "broker-d", 10941, &["D1", "D2"]),
    ]
    .iter()
    .map(|r| r.body.len())
    .sum();
    assert_eq!(value(&text, "meridian_registration_body_bytes_total"), decoded_bytes as f64);

    // Removals by cause, and the table that is left: only broker A in c1.
    assert_eq!(value(&text, "meridian_broker_removals_total{cause=\"unregister\"}"), 1.0);
    assert_eq!(value(&text, "meridian_clusters"), 1.0);
    assert_eq!(value(&text, "meridian_broker_names"), 1.0);
    assert_eq!(value(&text, "meridian_brokers_live"), 1.0);
    assert_eq!(value(&text, "meridian_topics"), 3.0);
    assert_eq!(value(&text, "meridian_topic_broker_entries"), 3.0);
    assert_eq!(value(&text, "meridian_snapshot_topics"), 3.0);
    assert!(value(&text, "meridian_snapshot_generation") > generation_before);

    // Connections: a, c, d, client open (b closed, d closed by the expiry).
    assert_eq!(value(&text, "meridian_connections_accepted_total"), 5.0);
    assert_eq!(value(&text, "meridian_connections_open"), 3.0);
    assert_eq!(value(&text, "meridian_connections_closed_total{cause=\"peer_closed\"}"), 2.0);
    assert_eq!(value(&text, "meridian_shards"), 2.0);
    assert_eq!(value(&text, "meridian_ready"), 1.0);
    assert!(value(&text, "process_resident_memory_bytes") > 1e6);
    assert!(value(&text, "process_open_fds") >= 5.0);
    drop((a, c, d));
}

#[test]
fn registration_stages_are_timed_per_registration() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // A body larger than the 64 KiB read buffer: its arrival is timed (receive), then scanned.
    let names: Vec<String> = (0..3_000).map(|i| format!("stage_topic_{i:05}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let big = register("c1", "broker-big", 10951, &names);
    assert!(big.body.len() > 64 * 1024, "{} bytes", big.body.len());
    registered(&mut conn, &big);
    // A small compressed body: inflated, then scanned; too small for a receive time.
    let mut compressed = Vec::new();
    body::encode_register_body_compressed(
        &mut compressed,
        &register_body(1, &[topic("Z1", 4, 6), topic("Z2", 4, 6)]),
        479,
        true,
    );
    let small = Request::new(REGISTER_BROKER)
        .ext("brokerName", "broker-z")
        .ext("brokerAddr", "127.0.0.1:10961")
        .ext("clusterName", "c1")
        .ext("brokerId", 0)
        .ext("haServerAddr", "127.0.0.1:10962")
        .ext("compressed", "true")
        .ext("bodyCrc32", crc32(&compressed))
        .body(compressed);
    registered(&mut conn, &small);

    let text = scrape(&server);
    for (stage, count) in [("receive", 1.0), ("inflate", 1.0), ("scan", 2.0), ("apply", 2.0), ("publish", 2.0)] {
        let name = format!("meridian_registration_{stage}_seconds");
        assert_eq!(value(&text, &format!("{name}_count")), count, "{name}");
        assert!(value(&text, &format!("{name}_sum")) > 0.0, "{name}");
        assert_eq!(value(&text, &format!("{name}_bucket{{le=\"+Inf\"}}")), count, "{name}");
    }
    // Decode is still inflate and scan together.
    assert_eq!(value(&text, "meridian_registration_decode_seconds_count"), 2.0);
}

#[test]
fn health_and_readiness_follow_need_wait_for_service_and_shutdown() {
    let server = common::server(&[]);
    assert_eq!(server.http_get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(server.http_get("/readyz"), (200, "ready\n".to_string()));
    assert_eq!(server.http_get("/nope").0, 404);

    // needWaitForService: not ready (and routes refused) until the wait is over.
    let waiting = common::server(&["needWaitForService=true", "waitSecondsForService=600"]);
    let (status, body) = waiting.http_get("/readyz");
    assert_eq!(status, 503);
    assert!(body.starts_with("not ready: needWaitForService"), "{body}");
    assert_eq!(sample(&scrape(&waiting), "meridian_ready"), Some(0.0));
    assert_eq!(waiting.http_get("/healthz").0, 200);

    // Stopping (held open by a GO_AWAY window while a client is connected): not ready.
    let options = common::options().sets(&["enableShutdownGracefully=true", "shutdownWaitTimeSeconds=600"]);
    let mut stopping = Server::start_with(options);
    let mut conn = stopping.client();
    assert_eq!(route_code(&mut conn, "T1"), TOPIC_NOT_EXIST);
    // SAFETY: plain kill(2) on the child process this test started.
    assert_eq!(unsafe { libc::kill(stopping.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    stopping.wait_for_log("answering GO_AWAY", POLL_DEADLINE).expect("the window opens");
    assert_eq!(stopping.http_get("/readyz"), (503, "not ready: stopping\n".to_string()));
    assert_eq!(stopping.http_get("/healthz").0, 200);
    drop(conn);
    assert_eq!(stopping.wait_exit(POLL_DEADLINE).and_then(|s| s.code()), Some(0));
}

#[test]
fn metrics_can_be_switched_off_and_a_taken_port_fails_the_start() {
    let server = common::server(&["metricsListen=off"]);
    assert_eq!(route_code(&mut server.client(), "T1"), TOPIC_NOT_EXIST);
    assert!(!server.log_text().contains("metrics on"), "{}", server.log_text());

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().unwrap().port();
    let exited = Server::run_expecting_exit(common::options().sets(&[&format!("metricsListen=127.0.0.1:{port}")]));
    assert_eq!(exited.status.code(), Some(1), "{}", exited.log);
    assert!(exited.log.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}")), "{}", exited.log);
}

/// The dashboard and alert rules in tuning/ only name metrics a scrape really has.
#[test]
fn dashboard_and_alerts_name_only_metrics_that_exist() {
    // A peer watch (of an address nothing listens on) so its series exist too.
    let dead = crate::common::cli::dead_addr();
    let peers = format!("peerNamesrvAddrs={dead}");
    let server = common::server(&[&peers, "peerCheckIntervalMs=100"]);
    let mut text = scrape(&server);
    let checked = meridian_testkit::poll_until(meridian_testkit::POLL_DEADLINE, || {
        text = scrape(&server);
        text.contains("meridian_peer_route_differences{")
    });
    assert!(checked, "the peer watch never reported:\n{text}");
    let declared: std::collections::BTreeSet<&str> =
        text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.split(' ').next()).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tuning");
    let dashboard = std::fs::read_to_string(root.join("grafana-meridian.json")).expect("dashboard");
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let alerts = std::fs::read_to_string(root.join("prometheus-alerts.yml")).expect("alert rules");
    for (file, content) in [("grafana-meridian.json", &dashboard), ("prometheus-alerts.yml", &alerts)] {
        let mut names = 0;
        for (start, _) in content.match_indices(['m', 'p']) {
            let rest = &content[start..];
            if !(rest.starts_with("meridian_") || rest.starts_with("process_")) {
                continue;
            }
            if start > 0 && content.as_bytes()[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let base = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| declared.contains(b))
                .unwrap_or(&name);
            assert!(declared.contains(base), "{file} names {name}, which the scrape does not have");
            names += 1;
        }
        assert!(names > 10, "{file}: only {names} metric names found");
    }
}
