//! Warm restart end to end (`warmRestart`, src/route/warm.rs): routes saved at a graceful
//! stop are served at once by the next start, provisionally until each broker registers
//! again or its heartbeat timeout passes; off by default; a corrupt, truncated, old file
//! starts cold; crashes during periodic saves never leave a file that fails to load.

use crate::common;
use crate::common::builders::*;
use meridian_protocol::codes::{GET_BROKER_CLUSTER_INFO, SUCCESS, TOPIC_NOT_EXIST, WIPE_WRITE_PERM_OF_BROKER};
use meridian_testkit::{poll_until, Client, Request, Server, ServerOptions, TempDir, POLL_DEADLINE};
use std::path::{Path, PathBuf};

const WARM: &str = "warmRestart=true";
const TOPICS_A: [&str; 3] = ["TA1", "TA2", "Shared"];
const TOPICS_B: [&str; 2] = ["TB1", "Shared"];
/// Looked up before and after every restart.
const ALL_TOPICS: [&str; 4] = ["TA1", "TA2", "TB1", "Shared"];

/// A 5.x master's REGISTER_BROKER (port = its address; HA on the next port).
fn register(name: &str, port: u16, counter: i64, topics: &[&str]) -> Request {
    let topics: Vec<_> = topics.iter().map(|t| topic(t, 4, 6)).collect();
    register_request("c1", name, 0, &format!("127.0.0.1:{port}"), &format!("127.0.0.1:{}", port + 1), counter, &topics)
}

/// (code, body) of a route lookup.
fn route(client: &mut Client, topic: &str) -> (i32, String) {
    let reply = client.call(&route_request(topic));
    (reply.code(), reply.body_text())
}

fn cluster_info(client: &mut Client) -> String {
    let reply = client.call(&Request::new(GET_BROKER_CLUSTER_INFO));
    assert_eq!(reply.code(), SUCCESS);
    reply.body_text()
}

fn metric(server: &Server, series: &str) -> Option<f64> {
    let (status, body) = server.http_get("/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().expect("a number"))
}

fn provisional(server: &Server) -> Option<f64> {
    metric(server, "meridian_brokers_provisional")
}

fn on(dir: &Path, sets: &[&str]) -> ServerOptions {
    common::options().data_dir(dir).sets(sets)
}

/// SIGTERM, then a normal exit.
fn stop(mut server: Server) -> String {
    // SAFETY: plain kill(2) on the child process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = server.wait_exit(POLL_DEADLINE).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.log_text());
    server.log_text()
}

fn warm_file(dir: &Path) -> PathBuf {
    dir.join("routes.warm")
}

/// What the first run served.
struct Before {
    routes: Vec<(i32, String)>,
    cluster_info: String,
}

fn lookups(server: &Server) -> Before {
    let mut client = server.client();
    Before {
        routes: ALL_TOPICS.iter().map(|t| route(&mut client, t)).collect(),
        cluster_info: cluster_info(&mut client),
    }
}

/// A first run with warm restart on: broker-a (default timeout) and broker-b (its own
/// 10-minute timeout, write permission wiped by an admin), then SIGTERM, which saves them.
fn saved_dir() -> (TempDir, Before) {
    let dir = TempDir::new("warm");
    let server = Server::start_with(on(dir.path(), &[WARM]));
    // The brokers' connections stay open until the server exits (a close would unregister).
    let mut a = server.client();
    call_ok(&mut a, &register("broker-a", 10911, 1, &TOPICS_A));
    let mut b = server.client();
    call_ok(&mut b, &register("broker-b", 10921, 1, &TOPICS_B).ext("heartbeatTimeoutMillis", 600_000));
    let wiped = b.call(&Request::new(WIPE_WRITE_PERM_OF_BROKER).ext("brokerName", "broker-b"));
    assert_eq!(wiped.ext_field("wipeTopicCount").as_deref(), Some("2"), "{}", wiped.header);
    let before = lookups(&server);
    assert!(before.routes.iter().all(|(code, _)| *code == SUCCESS), "{:?}", before.routes);
    assert!(before.routes[2].1.contains("\"perm\":4"), "TB1 wiped: {}", before.routes[2].1);
    let log = stop(server);
    assert!(log.contains("warm restart: routes saved to"), "{log}");
    drop((a, b));
    assert!(warm_file(dir.path()).exists());
    (dir, before)
}

#[test]
fn a_warm_restart_answers_the_saved_routes_at_once() {
    let (dir, before) = saved_dir();
    let server = Server::start_with(on(dir.path(), &[WARM]));
    // The first lookups, before any broker is back: the same answers, byte for byte.
    let after = lookups(&server);
    assert_eq!(after.routes, before.routes);
    assert_eq!(after.cluster_info, before.cluster_info);
    assert!(after.cluster_info.contains("broker-a") && after.cluster_info.contains("broker-b"));
    assert_eq!(provisional(&server), Some(2.0));
    assert_eq!(metric(&server, "meridian_brokers_live"), Some(2.0));
    let line = server.expect_log("warm restart: loaded");
    assert!(line.contains("brokers 2,") && line.contains("topics 4,") && line.contains("s ago"), "{line}");
}

#[test]
fn a_broker_that_registers_again_replaces_its_provisional_routes() {
    let (dir, before) = saved_dir();
    let server = Server::start_with(on(dir.path(), &[WARM]));
    assert_eq!(provisional(&server), Some(2.0));
    let mut a = server.client();
    call_ok(&mut a, &register("broker-a", 10911, 2, &["TA1", "TA2", "Shared", "TA3"]));
    assert!(poll_until(POLL_DEADLINE, || provisional(&server) == Some(1.0)), "{:?}", provisional(&server));
    let mut client = server.client();
    assert_eq!(route(&mut client, "TA3").0, SUCCESS);
    // broker-b is still served as saved, its wiped write permission included.
    assert_eq!(route(&mut client, "TB1"), before.routes[2]);
    // broker-a is tied to its connection now: closing it removes broker-a (only).
    drop(a);
    assert!(poll_until(POLL_DEADLINE, || route(&mut client, "TA3").0 == TOPIC_NOT_EXIST));
    assert_eq!(route(&mut client, "TA1").0, TOPIC_NOT_EXIST);
    assert_eq!(route(&mut client, "TB1"), before.routes[2]);
    assert_eq!(provisional(&server), Some(1.0));
}

#[test]
fn a_provisional_broker_that_never_returns_expires() {
    let (dir, before) = saved_dir();
    let sets = [WARM, "brokerTimeoutDefaultMs=500", "scanNotActiveBrokerIntervalMs=100"];
    let server = Server::start_with(on(dir.path(), &sets));
    let mut client = server.client();
    // broker-a sent no timeout of its own: this server's 500 ms applies.
    assert!(
        poll_until(POLL_DEADLINE, || route(&mut client, "TA1").0 == TOPIC_NOT_EXIST),
        "broker-a never expired:\n{}",
        server.log_text()
    );
    let line = server.expect_log_line(&["broker expired", "broker-a"]);
    assert!(line.contains("provisional") && !line.contains("conn="), "{line}");
    assert_eq!(route(&mut client, "TA2").0, TOPIC_NOT_EXIST);
    // broker-b keeps its own 10-minute timeout.
    assert_eq!(route(&mut client, "TB1"), before.routes[2]);
    assert!(!cluster_info(&mut client).contains("broker-a"));
    assert!(poll_until(POLL_DEADLINE, || provisional(&server) == Some(1.0)));
}

#[test]
fn warm_restart_off_loads_nothing_even_if_a_file_exists() {
    let (dir, _) = saved_dir();
    let server = Server::start_with(on(dir.path(), &[]));
    let mut client = server.client();
    for topic in ALL_TOPICS {
        assert_eq!(route(&mut client, topic).0, TOPIC_NOT_EXIST, "{topic}");
    }
    assert_eq!(cluster_info(&mut client), r#"{"brokerAddrTable":{},"clusterAddrTable":{}}"#);
    assert_eq!(provisional(&server), Some(0.0));
    let log = stop(server);
    assert!(!log.contains("warm restart"), "{log}");
    assert!(warm_file(dir.path()).exists(), "the file is left alone");
}

#[test]
fn a_corrupt_truncated_or_old_file_starts_cold_with_one_warning() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 3] = [
        ("CRC mismatch", |path| {
            let mut bytes = std::fs::read(path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            std::fs::write(path, bytes).unwrap();
        }),
        ("truncated", |path| {
            let bytes = std::fs::read(path).unwrap();
            std::fs::write(path, &bytes[..bytes.len() - 7]).unwrap();
        }),
        ("older than warmRestartMaxAgeMs 300000", |path| {
            // Saved an hour ago: the payload's first field, with the CRC made right.
            let mut bytes = std::fs::read(path).unwrap();
            let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
            let ms = hour_ago.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
            bytes[24..32].copy_from_slice(&ms.to_le_bytes());
            let crc = crc32fast::hash(&bytes[24..]);
            bytes[20..24].copy_from_slice(&crc.to_le_bytes());
            std::fs::write(path, bytes).unwrap();
        }),
    ];
    for (why, damage) in cases {
        let (dir, _) = saved_dir();
        damage(&warm_file(dir.path()));
        let server = Server::start_with(on(dir.path(), &[WARM]));
        let line = server.expect_log("warm restart: ignoring");
        assert!(line.contains("WARN") && line.contains(why) && line.contains("starting cold"), "{why}: {line}");
        let mut client = server.client();
        assert_eq!(route(&mut client, "TA1").0, TOPIC_NOT_EXIST, "{why}");
        assert_eq!(provisional(&server), Some(0.0));
        // It serves as usual, and its next save replaces the bad file.
        let mut a = server.client();
        call_ok(&mut a, &register("broker-a", 10911, 1, &TOPICS_A));
        assert_eq!(route(&mut client, "TA1").0, SUCCESS, "{why}");
        let log = stop(server);
        assert_eq!(log.matches("warm restart: ignoring").count(), 1, "{log}");
        let again = Server::start_with(on(dir.path(), &[WARM]));
        again.expect_log_line(&["warm restart: loaded", "brokers 1,"]);
        assert_eq!(route(&mut again.client(), "TA1").0, SUCCESS, "{why}");
    }
}

/// The loaded-line's broker count after a start on `dir`, asserting the file loaded.
fn loads(dir: &Path) -> String {
    let server = Server::start_with(on(dir, &[WARM]));
    let log = server.log_text();
    assert!(!log.contains("warm restart: ignoring"), "{log}");
    let line = server.expect_log("warm restart: loaded");
    assert_eq!(route(&mut server.client(), "TA1").0, SUCCESS, "{line}");
    line
}

#[test]
fn crashes_during_periodic_saves_never_leave_a_file_that_fails_to_load() {
    // An abort between each step of the crash-safe write (temp written, synced, renamed):
    // the next start loads the old or the new file, never a torn one.
    for step in 1..=3 {
        let (dir, _) = saved_dir();
        let crashing = on(dir.path(), &[WARM, "warmRestartSaveIntervalMs=50"])
            .env(meridian_server::persist::CRASH_STEP_ENV, &step.to_string())
            .without_core_dump();
        let exited = Server::run_expecting_exit(crashing);
        assert_ne!(exited.status.code(), Some(0), "step {step}: {}", exited.log);
        assert!(exited.log.contains("aborting on purpose"), "step {step}: {}", exited.log);
        loads(dir.path());
    }

    // kill -9 while periodic saves (every 10 ms) keep up with a changing table.
    let (dir, _) = saved_dir();
    for round in 0..5 {
        let sets = [WARM, "warmRestartSaveIntervalMs=10"];
        let server =
            Server::start_with(on(dir.path(), &sets).env("RUST_LOG", "info,meridian_server::route::warm=debug"));
        let mut a = server.client();
        let many: Vec<String> = (0..3_000).map(|i| format!("Round{round}Topic{i:04}")).collect();
        for counter in 2..6 {
            let mut topics: Vec<&str> = many.iter().map(String::as_str).take(1_000 * (counter as usize - 1)).collect();
            topics.extend(TOPICS_A);
            call_ok(&mut a, &register("broker-a", 10911, counter, &topics));
        }
        assert!(poll_until(POLL_DEADLINE, || server.log_text().matches("warm restart: routes saved").count() >= 2));
        call_ok(&mut a, &register("broker-a", 10911, 6, &TOPICS_A));
        drop(server); // SIGKILL
        loads(dir.path());
    }
}
