//! Split registration end to end: a broker sends its topics as a Java 5.3.3 broker with
//! `enableSplitRegistration` does (full chunks of `splitRegistrationSize` topics, then the
//! remainder, every chunk one REGISTER_BROKER frame with the next data-version counter),
//! and the server logs one lifecycle line per round, only when something changed, while
//! serving every topic. Loopback only; every wait is a poll with a deadline.

use crate::common;
use crate::common::builders::*;
use meridian_protocol::body::TopicConfig;
use meridian_protocol::codes::SUCCESS;
use meridian_testkit::{poll_until, Client, Server, POLL_DEADLINE};

/// Topics per chunk and chunks per round: 3 full chunks and a remainder of 20.
const CHUNK: usize = 50;
const TOPICS: usize = 3 * CHUNK + 20;
const BROKER: &str = "broker-split";

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The broker's topic table: `TOPICS` topics, `changed` with 8 queues instead of 4.
fn topic_table(changed: Option<usize>) -> Vec<TopicConfig> {
    (0..TOPICS).map(|i| topic(&format!("split-{i:03}"), if Some(i) == changed { 8 } else { 4 }, 6)).collect()
}

/// One registration round as Java sends it: a frame per `CHUNK` topics and one for the rest
/// (sent even when empty), each answered before the next; `counter` is the data-version
/// counter, one higher for every chunk. Returns the next counter.
fn split_round(conn: &mut Client, name: &str, port: u16, topics: &[TopicConfig], mut counter: i64) -> i64 {
    let full = topics.len() / CHUNK;
    let chunks = topics.chunks(CHUNK).take(full).chain([&topics[full * CHUNK..]]);
    for chunk in chunks {
        call_ok(conn, &register_request("c1", name, 0, &addr(port), &addr(port + 1), counter, chunk));
        counter += 1;
    }
    counter
}

/// Info and warning lines of `log` with `needle` (debug lines do not count).
fn shown<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle) && (l.contains(" INFO ") || l.contains(" WARN "))).collect()
}

/// Registers a broker nobody else uses (one frame, closed by `registrationRoundQuietMs`)
/// and waits for its line: every line the writer wrote before it is in the captured log then.
fn writer_sentinel(server: &Server, name: &str, port: u16) {
    let mut conn = server.client();
    let topics = [topic(&format!("{name}-1"), 4, 6), topic(&format!("{name}-2"), 4, 6)];
    call_ok(&mut conn, &register_request("c1", name, 0, &addr(port), &addr(port + 1), 1, &topics));
    server.expect_log_line(&["broker registered", &format!("broker={name} "), "chunks=1 ", "round_end=quiet"]);
}

fn metric(server: &Server, series: &str) -> Option<f64> {
    let (status, text) = server.http_get("/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[track_caller]
fn assert_fields(line: &str, fields: &[&str]) {
    for field in fields {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }
}

#[test]
fn a_split_registration_is_one_line_per_round_and_only_when_topics_changed() {
    let server = common::server(&["registrationRoundQuietMs=300"]);
    let mut conn = server.client();
    let needle = format!("broker={BROKER} ");

    // Round 1: new broker, 4 chunks (counters 1..=4).
    let counter = split_round(&mut conn, BROKER, 10911, &topic_table(None), 1);
    let line = server.expect_log_line(&["broker registered", &needle]);
    assert_fields(
        &line,
        &[
            "INFO",
            "cause=new_address",
            "chunks=4 ",
            &format!("topics={TOPICS} "),
            &format!("topics_added={TOPICS} "),
            "topics_removed=0 ",
            "topics_changed=0 ",
            "data_version=4 ",
            "data_version_first=1 ",
            "round_end=remainder",
        ],
    );
    // Round 2: the same topics; every chunk has a new data version, nothing else changes.
    let counter = split_round(&mut conn, BROKER, 10911, &topic_table(None), counter);
    writer_sentinel(&server, "broker-sentinel-1", 12911);
    let log = server.log_text();
    assert_eq!(shown(&log, &needle).len(), 1, "an unchanged round is not shown:\n{log}");

    // Round 3: one topic's queues changed (in the second chunk).
    let counter = split_round(&mut conn, BROKER, 10911, &topic_table(Some(CHUNK + 7)), counter);
    let line = server.expect_log_line(&["broker re-registered: its topics changed", &needle]);
    assert_fields(
        &line,
        &[
            "INFO",
            "cause=topics_changed",
            "chunks=4 ",
            "topics_added=0 ",
            "topics_removed=0 ",
            "topics_changed=1 ",
            "data_version=12 ",
            "data_version_first=9 ",
            "data_version_before=8 ",
            "round_end=remainder",
        ],
    );
    assert_eq!(counter, 13);
    writer_sentinel(&server, "broker-sentinel-2", 13911);
    let log = server.log_text();
    let lines = shown(&log, &needle);
    assert_eq!(lines.len(), 2, "registered, topics changed:\n{log}");
    assert!(lines[0].contains("broker registered") && lines[1].contains("its topics changed"), "{log}");
    assert!(shown(&log, "data version").is_empty(), "no per-chunk line at info:\n{log}");

    // Every topic is served, the changed one with its new queues.
    let mut client = server.client();
    for t in topic_table(None) {
        assert_eq!(route_code(&mut client, &t.topic_name), SUCCESS, "{}", t.topic_name);
    }
    let route = client.call(&route_request(&format!("split-{:03}", CHUNK + 7)));
    let body = String::from_utf8_lossy(&route.body);
    assert!(body.contains("\"readQueueNums\":8"), "{body}");

    // Rounds and chunks are counted apart: 3 rounds of 4 chunks, and the two sentinels.
    assert_eq!(metric(&server, "meridian_registration_chunks_total"), Some(14.0));
    assert_eq!(metric(&server, "meridian_registration_rounds_total"), Some(5.0));
    // And per broker address: split mode shows as 4 chunks per round.
    let labels = format!("{{cluster=\"c1\",broker=\"{BROKER}\",addr=\"{}\"}}", addr(10911));
    assert_eq!(metric(&server, &format!("meridian_broker_registration_rounds_total{labels}")), Some(3.0));
    assert_eq!(metric(&server, &format!("meridian_broker_registration_chunks_total{labels}")), Some(12.0));
    assert_eq!(metric(&server, &format!("meridian_broker_registration_last_round_chunks{labels}")), Some(4.0));
    // The sentinels closed their connections, so they leave the table and their series with it.
    let gone = || !server.http_get("/metrics").1.contains("broker=\"broker-sentinel-");
    assert!(poll_until(POLL_DEADLINE, gone), "{}", server.http_get("/metrics").1);
}

#[test]
fn a_round_cut_short_by_removal_is_logged_before_the_removal() {
    let server = common::server(&["registrationRoundQuietMs=60000"]);
    let mut conn = server.client();
    // Two full chunks, then the connection closes before the remainder.
    let topics = topic_table(None);
    for (i, chunk) in topics.chunks(CHUNK).take(2).enumerate() {
        call_ok(&mut conn, &register_request("c1", BROKER, 0, &addr(10911), &addr(10912), 1 + i as i64, chunk));
    }
    drop(conn);
    server.expect_log_line(&["broker removed: the connection it registered on closed", BROKER]);
    let log = server.log_text();
    let lines = shown(&log, &format!("broker={BROKER} "));
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("broker registered"), "{log}");
    assert_fields(lines[0], &["chunks=2 ", &format!("topics_added={} ", 2 * CHUNK), "round_end=removed"]);
    assert!(
        poll_until(POLL_DEADLINE, || metric(&server, "meridian_registration_rounds_total") == Some(1.0)),
        "the cut-short round is counted"
    );
    // The removed address's per-broker series go with it.
    let gone = || !server.http_get("/metrics").1.contains(&format!("broker=\"{BROKER}\""));
    assert!(poll_until(POLL_DEADLINE, gone), "{}", server.http_get("/metrics").1);
}
