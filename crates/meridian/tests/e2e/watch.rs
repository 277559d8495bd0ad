//! The route watch extension end to end (code 43701, src/watch.rs): immediate answers for
//! stale versions, held answers released by registrations, closes and unregisters, empty
//! answers after the hold, limits, the client API, and a stock-like server's "not supported".

use crate::common;
use crate::common::builders::*;
use meridian_client::watch::{RouteWatcher, WatchError};
use meridian_protocol::codes::{MERIDIAN_WATCH_ROUTES, SUCCESS, SYSTEM_BUSY, SYSTEM_ERROR};
use meridian_testkit::{frame, read_request_opaque, Client, Request, Server, POLL_DEADLINE, SERIALIZE_JSON};
use serde_json::{json, Value};
use std::time::Duration;

fn register(name: &str, port: u16, topics: &[(&str, i32)], counter: i64) -> Request {
    let topics: Vec<_> = topics.iter().map(|(t, q)| topic(t, *q, 6)).collect();
    register_request("c1", name, 0, &format!("127.0.0.1:{port}"), &format!("127.0.0.1:{}", port + 1), counter, &topics)
}

fn watch_request(versions: Value, hold_ms: u64) -> Request {
    Request::new(MERIDIAN_WATCH_ROUTES).ext("holdMs", hold_ms).body(versions.to_string())
}

/// The answer body of a successful watch.
fn watch(conn: &mut Client, versions: Value, hold_ms: u64) -> Value {
    let reply = conn.call(&watch_request(versions, hold_ms));
    assert_eq!(reply.code(), SUCCESS, "{:?}", reply.remark());
    serde_json::from_str(&reply.body_text()).expect("the watch answer is JSON")
}

fn lookup_json(conn: &mut Client, topic: &str) -> Value {
    let reply = conn.call(&route_request(topic));
    assert_eq!(reply.code(), SUCCESS, "{:?}", reply.remark());
    serde_json::from_str(&reply.body_text()).expect("route JSON")
}

#[test]
fn stale_versions_are_answered_at_once_with_the_lookup_route() {
    let server = common::server(&[]);
    let mut broker = server.client();
    call_ok(&mut broker, &register("broker-a", 10911, &[("T1", 8), ("T2", 4)], 1));
    let mut conn = server.client();
    let answer = watch(&mut conn, json!({"T1": 0, "T2": 0, "Absent": 0}), 60_000);
    let changed = answer["changed"].as_object().expect("changed");
    assert_eq!(changed.keys().collect::<Vec<_>>(), ["T1", "T2"], "{answer}");
    assert_eq!(changed["T1"]["route"], lookup_json(&mut conn, "T1"));
    let v1 = changed["T1"]["version"].as_u64().unwrap();
    assert!(v1 > 0 && v1 <= answer["generation"].as_u64().unwrap(), "{answer}");
    // Holding the current versions and asking for no hold: nothing changed.
    let versions = json!({"T1": v1, "T2": changed["T2"]["version"], "Absent": 0});
    let answer = watch(&mut conn, versions.clone(), 0);
    assert_eq!(answer["changed"], json!({}), "{answer}");
    // A version that is not the current one (say, from another NameServer) is stale too.
    let answer = watch(&mut conn, json!({"T1": v1 + 1000}), 0);
    assert_eq!(answer["changed"]["T1"]["version"].as_u64(), Some(v1));
}

#[test]
fn a_held_watch_is_answered_by_a_change_and_after_the_hold_by_nothing() {
    let server = Server::start_with(common::options().env("RUST_LOG", "meridian=debug"));
    let mut broker = server.client();
    call_ok(&mut broker, &register("broker-a", 10911, &[("T1", 8), ("T2", 4)], 1));
    let mut watcher =
        RouteWatcher::connect(&server.addr().to_string(), ["T1", "T2"], Duration::from_secs(5)).expect("connect");
    let first = watcher.next_changes(Duration::from_secs(30)).expect("first answer");
    assert_eq!(first.len(), 2);
    // Nothing changes: a short hold ends with no changes.
    assert!(watcher.next_changes(Duration::from_millis(200)).expect("empty answer").is_empty());
    let t2_version = watcher.versions()["T2"];
    // Held (60 s), released by a registration that changes T1's queue count only.
    let held = std::thread::spawn(move || {
        let changes = watcher.next_changes(Duration::from_secs(60));
        (watcher, changes)
    });
    // The third watch request (the first two were answered).
    let third = || server.log_text().matches("request code=43701").count() >= 3;
    assert!(meridian_testkit::poll_until(POLL_DEADLINE, third), "the watch never reached the server");
    let held_gauge = || {
        let (status, text) = server.http_get("/metrics");
        assert_eq!(status, 200, "{text}");
        text.lines().find_map(|l| l.strip_prefix("meridian_watches_held ")).map(|v| v.trim().to_string())
    };
    assert!(meridian_testkit::poll_until(POLL_DEADLINE, || held_gauge().as_deref() == Some("1")), "{:?}", held_gauge());
    call_ok(&mut broker, &register("broker-a", 10911, &[("T1", 16), ("T2", 4)], 2));
    let (mut watcher, changes) = held.join().expect("watcher thread");
    assert_eq!(held_gauge().as_deref(), Some("0"));
    let changes = changes.expect("a held watch is answered");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].topic, "T1");
    let route = changes[0].route.as_ref().expect("T1 has a route");
    assert_eq!(route["queueDatas"][0]["readQueueNums"], 16, "{route}");
    assert_eq!(watcher.versions()["T2"], t2_version);
    assert_eq!(route, &lookup_json(&mut server.client(), "T1"));

    // The broker's connection closes: both topics lose their only broker → route null.
    drop(broker);
    let changes = watcher.next_changes(Duration::from_secs(60)).expect("answered on removal");
    let gone: Vec<(&str, bool)> = changes.iter().map(|c| (c.topic.as_str(), c.route.is_none())).collect();
    assert_eq!(gone, [("T1", true), ("T2", true)]);
    assert_eq!(watcher.versions().values().copied().collect::<Vec<_>>(), [0, 0]);
}

/// A broker that stops heartbeating while its connection stays open is removed by the
/// expiry scan; a held watch is answered with the route gone.
#[test]
fn a_held_watch_is_answered_when_the_broker_expires() {
    let server = common::server(&["scanNotActiveBrokerIntervalMs=100"]);
    let mut broker = server.client();
    // heartbeatTimeoutMillis: the broker's own expiry (5.x brokers may send it).
    let request = register("broker-a", 10911, &[("T1", 8)], 1).ext("heartbeatTimeoutMillis", 1000);
    call_ok(&mut broker, &register("broker-a", 10911, &[], 1));
    call_ok(&mut broker, &request);
    let mut watcher =
        RouteWatcher::connect(&server.addr().to_string(), ["T1"], Duration::from_secs(5)).expect("connect");
    let first = watcher.next_changes(Duration::from_secs(30)).expect("first answer");
    assert!(first[0].route.is_some(), "{first:?}");
    // Held for up to 60 s; the expiry (1 s after the registration) answers it much sooner.
    let changes = watcher.next_changes(Duration::from_secs(60)).expect("answered on expiry");
    let gone: Vec<(&str, bool)> = changes.iter().map(|c| (c.topic.as_str(), c.route.is_none())).collect();
    assert_eq!(gone, [("T1", true)]);
    server.expect_log_line(&["broker-a", "expired"]);
    drop(broker);
}

#[test]
fn watch_limits_and_bad_requests_get_error_answers() {
    let options = common::options()
        .shards(1)
        .sets(&["watchesPerShardMax=1", "watchTopicsPerRequestMax=2", "watchHoldMsMax=30000"])
        .env("RUST_LOG", "meridian=debug");
    let server = Server::start_with(options);
    let mut first = server.client();
    first.send(&watch_request(json!({"T1": 0}), 30_000));
    server.wait_for_log("request code=43701", POLL_DEADLINE).expect("the watch reached the server");
    // The one slot is held: the next watch is refused, lookups are unaffected.
    let mut second = server.client();
    let reply = second.call(&watch_request(json!({"T1": 0}), 30_000));
    assert_eq!(reply.code(), SYSTEM_BUSY, "{:?}", reply.remark());
    assert!(reply.remark().unwrap_or_default().contains("watchesPerShardMax 1"));
    assert_eq!(route_code(&mut second, "T1"), 17);
    let reply = second.call(&watch_request(json!({"A": 0, "B": 0, "C": 0}), 0));
    assert_eq!(reply.code(), SYSTEM_ERROR);
    assert!(reply.remark().unwrap_or_default().contains("watchTopicsPerRequestMax 2"), "{:?}", reply.remark());
    let reply = second.call(&Request::new(MERIDIAN_WATCH_ROUTES).body("[1,2]"));
    assert_eq!(reply.code(), SYSTEM_ERROR);
    let reply = second.call(&watch_request(json!({"T1": 0}), 0).ext("holdMs", "soon"));
    assert_eq!(reply.code(), SYSTEM_ERROR);
    // A registration releases the held watch, and the slot is free again.
    let mut broker = server.client();
    call_ok(&mut broker, &register("broker-a", 10911, &[("T1", 8), ("T2", 4)], 1));
    let reply = first.read_reply().expect("the held watch is answered");
    assert_eq!(reply.code(), SUCCESS);
    assert!(reply.body_text().contains("\"T1\""), "{}", reply.body_text());
    assert_eq!(second.call(&watch_request(json!({"T1": 0}), 0)).code(), SUCCESS);
}

#[test]
fn sigterm_releases_held_watches() {
    let options = common::options().sets(&["shutdownDrainMs=30000"]).env("RUST_LOG", "meridian=debug");
    let mut server = Server::start_with(options);
    let mut conn = server.client();
    conn.send(&watch_request(json!({"T1": 0}), 60_000));
    server.wait_for_log("request code=43701", POLL_DEADLINE).expect("the watch reached the server");
    // SAFETY: plain kill(2) on the child process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    let reply = conn.read_reply().expect("the held watch is answered when stopping");
    assert_eq!((reply.code(), reply.body_text().contains("\"changed\":{}")), (SUCCESS, true), "{}", reply.body_text());
    assert_eq!(server.wait_exit(POLL_DEADLINE).and_then(|s| s.code()), Some(0));
}

/// A one-shot fake NameServer: reads one request and writes `answer(its opaque)` back.
fn fake_server(answer: impl FnOnce(i64) -> Vec<u8> + Send + 'static) -> (String, std::thread::JoinHandle<()>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap().to_string();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let opaque = read_request_opaque(&mut s).expect("a request");
        s.write_all(&answer(opaque)).unwrap();
    });
    (addr, fake)
}

/// A stock NameServer answers an unknown code with 3 (Java) or 16 (rocketmq-rust, "Authentication
/// credentials are invalid"); the client API says "poll instead" for both.
#[test]
fn a_server_without_the_extension_is_reported_as_unsupported() {
    for (code, remark) in [(3, " request type 43701 not supported"), (16, "Authentication credentials are invalid")] {
        let (addr, fake) = fake_server(move |opaque| {
            let answer = json!({"code": code, "flag": 1, "opaque": opaque, "language": "JAVA",
                "version": 479, "remark": remark})
            .to_string();
            frame(SERIALIZE_JSON, answer.as_bytes(), b"")
        });
        let mut watcher = RouteWatcher::connect(&addr, ["T1"], Duration::from_secs(5)).expect("connect");
        let result = watcher.next_changes(Duration::from_secs(1));
        match &result {
            Err(WatchError::Unsupported { code: c, remark: r }) => {
                assert_eq!((*c, r.as_deref()), (code, Some(remark)));
            }
            other => panic!("code {code}: {other:?}"),
        }
        assert!(result.unwrap_err().to_string().contains("poll instead"));
        fake.join().unwrap();
    }
}

/// An answer frame whose header length runs past the frame is a malformed answer, not a
/// panic (the watch client once sliced it unchecked).
#[test]
fn a_malformed_answer_frame_is_an_error() {
    let (addr, fake) = fake_server(|_| {
        let mut frame = 8u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&1000u32.to_be_bytes()); // header length 1000 in an 8-byte frame
        frame.extend_from_slice(b"{}{}");
        frame
    });
    let mut watcher = RouteWatcher::connect(&addr, ["T1"], Duration::from_secs(5)).expect("connect");
    let result = watcher.next_changes(Duration::from_secs(1));
    assert!(matches!(&result, Err(WatchError::Malformed(why)) if why.starts_with("malformed answer")), "{result:?}");
    fake.join().unwrap();
}
