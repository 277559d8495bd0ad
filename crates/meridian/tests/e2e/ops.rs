//! Operability end to end: log configuration (`logLevel`, `logFormat`, RUST_LOG), one log
//! line per broker lifecycle event, the rate limit on warnings about misbehaving peers, the
//! example config in deploy/, exit codes and `--version`. Loopback only; every wait is a
//! poll with a deadline, and no assertion is about time.

use crate::common;
use crate::common::builders::*;
use meridian_protocol::codes::{
    BROKER_HEARTBEAT, GET_ROUTEINFO_BY_TOPIC, QUERY_DATA_VERSION, REGISTER_BROKER, SUCCESS, SYSTEM_ERROR,
    UNREGISTER_BROKER,
};
use meridian_server::logging::PEER_WARNINGS_PER_WINDOW_MAX;
use meridian_testkit::{
    poll_until, Client, Closed, Request, Server, ServerOptions, TempDir, POLL_DEADLINE, START_DEADLINE,
};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const BIN: &str = common::MERIDIAN_BIN;
/// A frame whose length prefix is negative: the server closes the connection.
const NEGATIVE_LENGTH_FRAME: [u8; 8] = [0x80, 0, 0, 0, 0, 0, 0, 0];

/// A 5.x broker on 127.0.0.1:`port` in cluster c1.
struct Broker {
    name: String,
    addr: String,
}

impl Broker {
    fn new(name: &str, port: u16) -> Broker {
        Broker { name: name.to_string(), addr: format!("127.0.0.1:{port}") }
    }

    fn identity(&self, request: Request) -> Request {
        request.ext("brokerName", &self.name).ext("brokerAddr", &self.addr).ext("clusterName", "c1").ext("brokerId", 0)
    }

    /// REGISTER_BROKER with `topics` and one of the broker's own (a broker id's first
    /// registration may not carry a single topic: Java takes that for an incremental one).
    fn register(&self, counter: i64, topics: &[&str]) -> Request {
        let own = format!("{}-own", self.name);
        let topics: Vec<_> = topics.iter().copied().chain([own.as_str()]).map(|t| topic(t, 4, 6)).collect();
        let body = json_body(counter, &topics);
        self.identity(Request::new(REGISTER_BROKER))
            .ext("haServerAddr", "127.0.0.1:1")
            .ext("compressed", "false")
            .ext("enableActingMaster", "false")
            .ext("bodyCrc32", crc32(&body))
            .body(body)
    }

    fn unregister(&self) -> Request {
        self.identity(Request::new(UNREGISTER_BROKER))
    }

    fn heartbeat(&self) -> Request {
        Request::new(BROKER_HEARTBEAT)
            .ext("clusterName", "c1")
            .ext("brokerAddr", &self.addr)
            .ext("brokerName", &self.name)
            .oneway()
    }

    fn query_data_version(&self, counter: i64) -> Request {
        let mut body = Vec::new();
        meridian_protocol::body::encode_data_version(&mut body, &data_version(counter));
        self.identity(Request::new(QUERY_DATA_VERSION)).body(body)
    }
}

fn assert_success(client: &mut Client, request: &Request) {
    let reply = client.call(request);
    assert_eq!(reply.code(), SUCCESS, "code {}: {}", request.code, reply.header);
}

/// Lines of `log` that contain every one of `needles`.
fn count_lines(log: &str, needles: &[&str]) -> usize {
    log.lines().filter(|line| needles.iter().all(|n| line.contains(n))).count()
}

/// Info and warning lines of `log` that contain `needle` (debug lines, shown when
/// MERIDIAN_TEST_RUST_LOG asks for them, do not count).
fn count_shown(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle) && (l.contains(" INFO ") || l.contains(" WARN "))).count()
}

/// Registers a broker nobody else uses on a fresh connection and waits for its line: every
/// lifecycle line the writer wrote before is in the captured log then (one thread, one pipe).
fn writer_sentinel(server: &Server, name: &str, port: u16) -> Client {
    let mut conn = server.client();
    assert_success(&mut conn, &Broker::new(name, port).register(1, &["TS"]));
    server.expect_log_line(&["broker registered", &format!("broker={name} ")]);
    conn
}

#[test]
fn each_broker_lifecycle_event_is_one_info_line() {
    // A registration's line comes when its round closes: after this long without another.
    let server = common::server(&["registrationRoundQuietMs=200"]);
    let a = Broker::new("broker-a", 10911);
    let mut conn_a = server.client();
    assert_success(&mut conn_a, &a.register(1, &["T1"]));
    let line = server.expect_log_line(&["broker registered", "broker=broker-a "]);
    for field in ["INFO", "cluster=c1", "id=0", "addr=127.0.0.1:10911", "cause=new_address", "topics=2"] {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }
    // Periodic re-sends (the second one is applied unread), heartbeats and version queries
    // change nothing: debug only.
    assert_success(&mut conn_a, &a.register(1, &["T1"]));
    assert_success(&mut conn_a, &a.register(1, &["T1"]));
    conn_a.send(&a.heartbeat());
    assert_success(&mut conn_a, &a.query_data_version(1));
    // A new topic is one line (with the re-sends before it, if they made one round).
    assert_success(&mut conn_a, &a.register(2, &["T1", "T2"]));
    let line = server.expect_log_line(&["broker re-registered: its topics changed", "broker=broker-a "]);
    assert!(line.contains("data_version=2") && line.contains("data_version_before=1"), "{line}");
    assert!(line.contains("cause=topics_changed") && line.contains("topics_added=1"), "{line}");
    // Unregistered by request: one line; a second request finds nothing to remove.
    assert_success(&mut conn_a, &a.unregister());
    let line = server.expect_log_line(&["broker unregistered by its request", "broker=broker-a "]);
    assert!(line.contains("cause=unregister_request") && line.contains("addr=127.0.0.1:10911"), "{line}");
    assert_success(&mut conn_a, &a.unregister());
    // Back after removal: registered again (the same bytes as before, so the connection's
    // unread re-send is refused by the table and the body is read).
    assert_success(&mut conn_a, &a.register(2, &["T1", "T2"]));
    assert!(
        poll_until(POLL_DEADLINE, || count_shown(&server.log_text(), "broker registered") == 2),
        "no second registration line:\n{}",
        server.log_text()
    );

    // Removed because the connection it registered on closed.
    drop(conn_a);
    let line = server.expect_log_line(&["broker removed: the connection it registered on closed", "broker=broker-a "]);
    assert!(line.contains("cause=connection_closed") && line.contains("cluster=c1"), "{line}");
    // A connection whose broker was unregistered before it closed removes nothing.
    let b = Broker::new("broker-b", 11911);
    let mut conn_b = server.client();
    assert_success(&mut conn_b, &b.register(1, &["T3"]));
    assert_success(&mut conn_b, &b.unregister());
    drop(conn_b);

    let _sentinel = writer_sentinel(&server, "broker-z", 19911);
    let log = server.log_text();
    assert_eq!(
        count_shown(&log, "broker=broker-a "),
        5,
        "registered, topics changed, unregistered, registered, removed on close:\n{log}"
    );
    assert_eq!(count_shown(&log, "broker=broker-b "), 2, "registered, unregistered:\n{log}");
    assert_eq!(count_shown(&log, "unchanged"), 0, "unchanged re-registrations are debug lines:\n{log}");
}

#[test]
fn an_expired_broker_is_one_line_saying_how_long_it_was_silent() {
    let server = common::server(&["scanNotActiveBrokerIntervalMs=100", "brokerTimeoutDefaultMs=300"]);
    let mut conn = server.client();
    assert_success(&mut conn, &Broker::new("broker-x", 10911).register(1, &["T1"]));
    let line = server.expect_log_line(&["broker expired", "broker=broker-x "]);
    for field in ["WARN", "cluster=c1", "id=0", "addr=127.0.0.1:10911", "cause=heartbeat_timeout", "timeout_ms=300"] {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }
    let silent_ms: u64 = line
        .split("silent_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no silent_ms in {line:?}"));
    assert!(silent_ms > 300, "silent {silent_ms} ms, timeout 300 ms: {line}");
    assert!(line.contains(&format!("silent for {silent_ms} ms (timeout 300 ms)")), "{line}");
    // The server closes the expired broker's connection; that close removes nothing more.
    assert_eq!(conn.read_until_closed(), Closed::Yes);
    let _sentinel = writer_sentinel(&server, "broker-y", 11911);
    let log = server.log_text();
    assert_eq!(count_shown(&log, "broker=broker-x "), 2, "registered, expired:\n{log}");
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let server = common::server(&["logFormat=json"]);
    let mut conn = server.client();
    assert_success(&mut conn, &Broker::new("broker-j", 10911).register(1, &["T1"]));
    // A peer breaking the protocol: a warning.
    let mut bad = server.client();
    let bad_peer = format!("closing 127.0.0.1:{}:", bad.local_port());
    let _ = bad.write_raw(&NEGATIVE_LENGTH_FRAME);
    assert_eq!(bad.read_until_closed(), Closed::Yes);
    server.expect_log(&bad_peer);
    server.expect_log("broker-j");

    let log = server.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\nlog:\n{log}")))
        .collect();
    for line in &lines {
        assert!(line["timestamp"].is_string() && line["level"].is_string() && line["target"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let message = |v: &Value| v["fields"]["message"].as_str().unwrap_or_default().to_string();
    assert!(lines.iter().any(|l| message(l).starts_with("meridian listening on ")), "{log}");
    let registered = lines
        .iter()
        .find(|l| message(l).starts_with("broker registered"))
        .unwrap_or_else(|| panic!("no registration line:\n{log}"));
    assert_eq!(registered["level"], "INFO");
    assert_eq!(registered["target"], "meridian_server::route::events");
    let fields = &registered["fields"];
    assert_eq!(
        (&fields["cluster"], &fields["broker"], &fields["id"], &fields["addr"], &fields["cause"]),
        (
            &Value::from("c1"),
            &Value::from("broker-j"),
            &Value::from(0),
            &Value::from("127.0.0.1:10911"),
            &Value::from("new_address")
        ),
        "{registered}"
    );
    let closed = lines.iter().find(|l| message(l).starts_with(&bad_peer)).expect("found above");
    assert_eq!(closed["level"], "WARN", "{closed}");
    assert!(message(closed).contains("negative frame length"), "{closed}");
}

#[test]
fn rust_log_overrides_log_level() {
    // The harness sets RUST_LOG=info: the info line the harness waits for still shows.
    let server = common::server(&["logLevel=warn"]);
    assert!(server.log_text().contains("meridian listening on"));
}

/// A `meridian` whose stderr is collected by a thread, for runs the harness cannot wait
/// for (it waits for the info line `meridian listening on`).
struct QuietServer {
    child: std::process::Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    _data: TempDir,
}

impl QuietServer {
    fn start(port: u16, sets: &[&str]) -> QuietServer {
        let data = TempDir::new("ops-quiet");
        let mut command = Command::new(BIN);
        command.arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--data-dir").arg(data.path());
        // No metrics endpoint: the default port would clash with servers of other tests.
        command.args(["--shards", "1", "--set", "metricsListen=off"]);
        for set in sets {
            command.arg("--set").arg(set);
        }
        // An empty RUST_LOG counts as unset: `logLevel` decides.
        command.env("RUST_LOG", "").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawning meridian");
        let mut stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("log lock").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        QuietServer { child, log, reader: Some(reader), _data: data }
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// SIGTERM, then the exit status and the whole log.
    fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: kill(2) on our own child's PID, which has not been waited for yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let mut status = None;
        poll_until(POLL_DEADLINE, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM; log:\n{}", self.log()));
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status.code(), self.log())
    }
}

impl Drop for QuietServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    listener.local_addr().expect("local_addr").port()
}

#[test]
fn log_level_warn_hides_info_lines_and_sigterm_exits_zero() {
    let port = free_port();
    let server = QuietServer::start(port, &["logLevel=warn"]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // No listening line to wait for: wait until the server answers.
    let answered = poll_until(START_DEADLINE, || {
        std::net::TcpStream::connect(addr).is_ok_and(|s| {
            drop(s);
            let mut client = Client::connect(addr);
            client.try_call(&route_request("T1")).is_ok()
        })
    });
    assert!(answered, "meridian never answered; log:\n{}", server.log());
    // An info event (a registration) and a warning (a protocol error).
    let mut conn = Client::connect(addr);
    assert_success(&mut conn, &Broker::new("broker-q", 10911).register(1, &["T1"]));
    let mut bad = Client::connect(addr);
    let bad_peer = format!("closing 127.0.0.1:{}: negative frame length", bad.local_port());
    let _ = bad.write_raw(&NEGATIVE_LENGTH_FRAME);
    assert_eq!(bad.read_until_closed(), Closed::Yes);
    assert!(poll_until(POLL_DEADLINE, || server.log().contains(&bad_peer)), "no warning; log:\n{}", server.log());
    drop(conn);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "SIGTERM is a normal stop; log:\n{log}");
    assert_eq!(count_lines(&log, &[&bad_peer, "WARN"]), 1, "{log}");
    assert!(!log.contains(" INFO "), "info lines with logLevel=warn:\n{log}");
    assert!(!log.contains("meridian listening on") && !log.contains("broker registered"), "{log}");
}

#[test]
fn a_flood_of_bad_peers_is_cut_and_counted() {
    const BAD_CONNECTIONS: usize = 40;
    const BAD_REQUESTS: usize = 60;
    const TOTAL: usize = BAD_CONNECTIONS + BAD_REQUESTS;
    // One shard: one limiter sees every warning.
    let server = Server::start_with(common::options().shards(1));
    let mut first_peer = None;
    for _ in 0..BAD_CONNECTIONS {
        let mut c = server.client();
        first_peer.get_or_insert_with(|| format!("closing 127.0.0.1:{}: negative frame length", c.local_port()));
        let _ = c.write_raw(&NEGATIVE_LENGTH_FRAME);
        assert_eq!(c.read_until_closed(), Closed::Yes);
    }
    // A lookup without its topic, in a loop on one connection: SYSTEM_ERROR each time.
    let mut c = server.client();
    for _ in 0..BAD_REQUESTS {
        assert_eq!(c.call(&Request::new(GET_ROUTEINFO_BY_TOPIC)).code(), SYSTEM_ERROR);
    }
    // The first lines of the burst show as usual.
    server.expect_log(&first_peer.expect("at least one connection"));
    // Every warning is either written or counted in a summary line once its window ends.
    let tally = |log: &str| {
        let written = count_lines(log, &["closing 127.0.0.1:", "negative frame length"])
            + count_lines(log, &["bad request: missing required header field: topic"]);
        let counted: usize =
            log.lines().filter_map(|l| l.split("suppressed ").nth(1)?.split(' ').next()?.parse::<usize>().ok()).sum();
        (written, counted)
    };
    let complete = poll_until(POLL_DEADLINE, || {
        let (written, counted) = tally(&server.log_text());
        written + counted == TOTAL
    });
    let log = server.log_text();
    assert!(complete, "written + suppressed != {TOTAL}: {:?}\n{log}", tally(&log));
    let (written, counted) = tally(&log);
    assert!(written >= PEER_WARNINGS_PER_WINDOW_MAX as usize, "{written} written\n{log}");
    assert!(counted > 0, "nothing suppressed\n{log}");
    let summary = server.expect_log("similar warnings about misbehaving peers on shard 0 in the last");
    assert!(summary.contains("WARN"), "{summary}");
    // The server still serves.
    assert_eq!(route_code(&mut server.client(), "T1"), 17);
}

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

#[test]
fn the_example_config_loads_cleanly_and_covers_meridian_keys() {
    let path = deploy_dir().join("meridian.properties");
    let out = Command::new(BIN).arg("-c").arg(&path).arg("-p").env_remove("RUST_LOG").output().expect("running -p");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains("unknown key") && !stderr.contains("WARN"), "stderr:\n{stderr}");
    for line in ["dataDir=/var/lib/meridian", "logLevel=info", "logFormat=text", "listenPort=9876"] {
        assert!(stdout.lines().any(|l| l == line), "{line} missing from -p:\n{stdout}");
    }
    // Every Meridian key `-p` prints is in the example, set or commented out.
    let example = std::fs::read_to_string(&path).expect("reading the example");
    for key in stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).filter(|k| k.contains('_')) {
        let mentioned = example.lines().any(|l| l.trim_start_matches('#').starts_with(&format!("{key}=")));
        assert!(mentioned, "{key} is not in deploy/meridian.properties");
    }
}

#[test]
fn the_systemd_unit_runs_the_documented_command() {
    let unit = std::fs::read_to_string(deploy_dir().join("meridian.service")).expect("reading the unit");
    for line in [
        "Type=simple",
        "ExecStart=/usr/local/bin/meridian -c /etc/meridian/meridian.properties",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "KillSignal=SIGTERM",
        "LimitNOFILE=65536",
        "LimitMEMLOCK=64M",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing from meridian.service");
    }
    // The stop timeout outlasts the drain and the GO_AWAY window of the example config.
    let stop_s: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec=Ns");
    let example = std::fs::read_to_string(deploy_dir().join("meridian.properties")).expect("reading the example");
    let value = |key: &str| -> u64 {
        example
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} not set in the example"))
    };
    assert!(stop_s * 1000 > value("shutdownDrainMs") + value("shutdownGoAwayWindowMs"), "TimeoutStopSec={stop_s}s");
}

#[test]
fn invalid_configuration_or_usage_exits_2() {
    let cases: Vec<(ServerOptions, &str)> = vec![
        (common::options().sets(&["logFormat=xml"]), "logFormat"),
        (common::options().sets(&["logLevel=meridian=loud"]), "logLevel"),
        (common::options().sets(&["no_such_key=1"]), "unknown config key no_such_key"),
        (
            common::options().sets(&["frame_bytes_max=1048576"]),
            "config key frame_bytes_max was renamed: write frameBytesMax",
        ),
        (common::options().env("RUST_LOG", "meridian=loud"), "RUST_LOG"),
        (common::options().arg("-c").arg("/nonexistent/meridian.properties"), "cannot read config"),
        (common::options().arg("--no-such-flag"), "--no-such-flag"),
    ];
    for (options, needle) in cases {
        let exited = Server::run_expecting_exit(options);
        assert_eq!(exited.status.code(), Some(2), "{needle}: {:?}\n{}", exited.status, exited.log);
        assert!(exited.log.contains(needle), "{needle} not named:\n{}", exited.log);
    }
}

#[test]
fn a_locked_data_dir_exits_1() {
    let running = common::server(&[]);
    let exited = Server::run_expecting_exit(common::options().data_dir(running.data_dir()));
    assert_eq!(exited.status.code(), Some(1), "{:?}\n{}", exited.status, exited.log);
    assert!(exited.log.contains("cannot start"), "{}", exited.log);
}

#[test]
fn version_prints_name_and_version() {
    let out = Command::new(BIN).arg("--version").output().expect("running --version");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("meridian {}\n", env!("CARGO_PKG_VERSION")));
}
