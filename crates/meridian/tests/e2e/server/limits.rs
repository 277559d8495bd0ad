//! Limits and bad input: hostile frames, size limits, connection limits, idle and slow
//! clients, shutdown.

use super::*;

// ---------------------------------------------------------------------------------------
// Limits and bad input
// ---------------------------------------------------------------------------------------

/// A 105 request frame of exactly `frame_bytes` bytes (padded with a body Java ignores).
fn route_frame_of_size(frame_bytes: usize) -> Vec<u8> {
    let empty = route_request("TPad").encode(1);
    assert!(frame_bytes >= empty.len());
    route_request("TPad").body(vec![b'x'; frame_bytes - empty.len()]).encode(1)
}

/// A 105 request whose JSON header is exactly `header_bytes` long.
fn route_frame_with_header_size(header_bytes: usize) -> Vec<u8> {
    let (_, header, _) = split_frame(&route_request("TPad").ext("pad", "").encode(1));
    assert!(header_bytes >= header.len());
    let frame = route_request("TPad").ext("pad", "p".repeat(header_bytes - header.len())).encode(1);
    assert_eq!(split_frame(&frame).1.len(), header_bytes);
    frame
}

/// Sends `bytes` on a fresh connection and asserts the server closes it without a word,
/// logging a line about this connection that contains `log_needle`.
fn assert_closed_by(server: &Server, bytes: &[u8], log_needle: &str) {
    let mut conn = server.client();
    let peer = format!("127.0.0.1:{}", conn.local_port());
    // The server may close before everything is written; that is fine.
    let _ = conn.write_raw(bytes);
    assert_eq!(conn.read_until_closed(), Closed::Yes, "after {log_needle:?}");
    server.expect_log_line(&[&format!("closing {peer}:"), log_needle]);
    // Others are still served.
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

/// Hostile input, one connection each: every frame gets an error answer or a closed
/// connection with a log line naming why; none crashes the server or changes stored routes.
#[test]
fn hostile_frames_get_an_error_or_a_close_and_change_nothing() {
    let server = common::server(&["bodyDecompressedBytesMax=1048576"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 8, 6)])));
    let route_before = route_body(&mut conn, route_request("T1"));
    let closes = |bytes: &[u8], log_needle: &str| {
        let mut c = server.client();
        let peer = format!("closing 127.0.0.1:{}:", c.local_port());
        let _ = c.write_raw(bytes);
        assert_eq!(c.read_until_closed(), Closed::Yes, "after {log_needle:?}");
        server.expect_log_line(&[&peer, log_needle]);
    };
    let (_, header, _) = split_frame(&route_request("T1").encode(1));

    // Frame level.
    closes(&[0x80, 0, 0, 0, 0, 0, 0, 0], "negative frame length");
    closes(&[0, 0, 0, 2, 0, 0], "shorter than the 4-byte header word");
    let mut beyond = meridian_testkit::frame(0, &header, b"");
    beyond[5..8].copy_from_slice(&[0, 0x10, 0]); // header length 4096 in a short frame
    closes(&beyond, "exceeds");
    closes(&meridian_testkit::frame(1, &[0xFF; 40], b""), "undecodable header");
    closes(&meridian_testkit::frame(0, b"{\"code\":", b""), "undecodable header");

    // Registration bodies: an error answer, nothing applied.
    let refused = |request: Request, remark_part: &str| {
        let mut c = server.client();
        let reply = c.call(&request);
        assert_eq!(reply.code(), 1, "{remark_part}: {}", reply.header);
        let remark = reply.remark().unwrap_or_default().to_string();
        assert!(remark.contains(remark_part), "{remark_part}: remark {remark:?}");
    };
    let evil = Broker::new("c1", "broker-evil", 0, 12911);
    // 100k-deep nesting where an attribute value belongs (the scanner stops at depth 64, serde
    // refuses the type without descending).
    let nested = format!(
        r#"{{"topicConfigSerializeWrapper":{{"topicConfigTable":{{"a":{{"topicName":"a","attributes":{{"k":{}{}}}}}}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    refused(evil.register_header().body(nested.into_bytes()), "RegisterBrokerBody");
    refused(evil.register_header().body(b"\x00\x01 not json".to_vec()), "RegisterBrokerBody");
    let mut zstd_bomb = zstd::stream::Encoder::new(Vec::new(), 19).expect("zstd encoder");
    for _ in 0..8 {
        zstd_bomb.write_all(&vec![0u8; 1 << 20]).expect("into a Vec");
    }
    let zstd_bomb = zstd_bomb.finish().expect("into a Vec");
    refused(evil.register_header().ext("bodyEncoding", "zstd").body(zstd_bomb), "bodyDecompressedBytesMax");
    let mut truncated = Vec::new();
    body::encode_register_body_compressed(
        &mut truncated,
        &register_body(1, &[topic("TX", 4, 6), topic("TY", 4, 6)]),
        479,
        true,
    );
    truncated.truncate(truncated.len() / 2);
    refused(evil.register_header().ext("compressed", "true").body(truncated), "");

    // A oneway flood: no answers, and the connection still answers a two-way request.
    let mut flood = Vec::new();
    for i in 0..10_000 {
        flood.extend(
            Request::new(BROKER_HEARTBEAT).ext("clusterName", "c9").ext("brokerAddr", "x:1").oneway().encode(i),
        );
    }
    let mut c = server.client();
    c.write_raw(&flood).expect("writing the flood");
    assert_eq!(route_body(&mut c, route_request("T1")), route_before);

    // Nothing changed; nothing crashed.
    assert_eq!(route_body(&mut conn, route_request("T1")), route_before);
    assert_topic_not_exist(&mut conn, "TX");
    assert!(!cluster_info(&mut conn).contains("broker-evil"));
    assert!(!server.log_text().contains("panicked"), "a panic was logged");
}

#[test]
fn frame_over_frame_bytes_max_closes_the_connection() {
    let server = common::server(&["frameBytesMax=65536", "headerBytesMax=1024"]);
    // At the limit: served (an unknown topic).
    let mut conn = server.client();
    conn.write_raw(&route_frame_of_size(65536)).expect("write");
    assert_eq!(conn.read_reply().expect("an answer at the limit").code(), 17);
    // One byte over: closed, before the rest of the frame is even sent.
    let frame = route_frame_of_size(65537);
    assert_closed_by(&server, &frame[..8], "frameBytesMax 65536");
    assert_closed_by(&server, &frame, "frameBytesMax 65536");
    // A length prefix far past the limit (an HTTP request read as a frame).
    assert_closed_by(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "frameBytesMax");
}

#[test]
fn header_over_header_bytes_max_closes_the_connection() {
    let server = common::server(&["frameBytesMax=65536", "headerBytesMax=1024"]);
    let mut conn = server.client();
    conn.write_raw(&route_frame_with_header_size(1024)).expect("write");
    assert_eq!(conn.read_reply().expect("an answer at the limit").code(), 17);
    assert_closed_by(&server, &route_frame_with_header_size(1025), "headerBytesMax 1024");
}

#[test]
fn deflate_bomb_is_refused_at_body_decompressed_bytes_max() {
    let server = common::server(&["bodyDecompressedBytesMax=1048576"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-bomb", 0, 10911);
    let bomb = zlib_zeros(50);
    assert!(bomb.len() < 100_000, "bomb of {} bytes", bomb.len());
    let crc = crc32(&bomb);
    // With the flag, and without it (the zlib sniffing path for 5.x brokers).
    for compressed in ["true", "false"] {
        let request = b.register_header().ext("compressed", compressed).ext("bodyCrc32", crc).body(bomb.clone());
        let reply = conn.call(&request);
        assert_eq!(reply.code(), 1, "compressed={compressed}: {}", reply.header);
        let remark = reply.remark().unwrap_or_default();
        assert!(remark.contains("bodyDecompressedBytesMax"), "compressed={compressed}: remark {remark:?}");
    }
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
    // A legitimate compressed registration still works on the same connection.
    let mut body = Vec::new();
    body::encode_register_body_compressed(
        &mut body,
        &register_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)]),
        479,
        true,
    );
    let crc = crc32(&body);
    assert_registered(&mut conn, &b.register_header().ext("compressed", "true").ext("bodyCrc32", crc).body(body));
    assert_eq!(route_code(&mut conn, "T1"), 0);
}

#[test]
fn connections_per_shard_max_closes_the_next_connection() {
    let server = Server::start_with(common::options().shards(1).sets(&["connectionsPerShardMax=2"]));
    let mut first = server.client();
    let mut second = server.client();
    assert_eq!(cluster_info(&mut first), EMPTY_CLUSTER_INFO);
    assert_eq!(cluster_info(&mut second), EMPTY_CLUSTER_INFO);
    let mut third = server.client();
    let third_peer = format!("closing 127.0.0.1:{}:", third.local_port());
    assert_eq!(third.read_until_closed(), Closed::Yes);
    server.expect_log_line(&[&third_peer, "connectionsPerShardMax 2"]);
    // The first two are unaffected; a freed slot is reusable.
    assert_eq!(cluster_info(&mut first), EMPTY_CLUSTER_INFO);
    drop(first);
    assert!(
        poll_until(POLL_DEADLINE, || server.client().try_call(&cluster_info_request()).is_ok_and(|r| r.code() == 0)),
        "no connection accepted after one closed"
    );
    assert_eq!(cluster_info(&mut second), EMPTY_CLUSTER_INFO);
}

#[test]
fn registration_inflight_bytes_per_shard_max_makes_large_frames_wait() {
    // One shard whose in-flight budget is exactly one largest frame.
    let sets = ["frameBytesMax=1048576", "registrationInflightBytesPerShardMax=1048576"];
    let server = Server::start_with(common::options().shards(1).sets(&sets));
    // A holds the whole budget as soon as its length prefix is read.
    let mut holder = server.client();
    let big = route_frame_of_size(1_048_576);
    holder.write_raw(&big[..64]).expect("write");
    // B's ~90 KB registration must wait for A's frame; lookups need no budget.
    let mut waiter = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let padding: Vec<TopicConfig> =
        (0..250).map(|i| topic(&format!("TWait-{i:04}-{}", "x".repeat(60)), 4, 6)).collect();
    let request = b.register(json_body(1, &padding));
    // Above the 64 KiB from which frames take budget, small enough to sit in socket buffers.
    assert!((70_000..120_000).contains(&request.body.len()), "registration of {} bytes", request.body.len());
    waiter.send(&request.clone().opaque(42));
    let mut client = server.client();
    assert_eq!(cluster_info(&mut client), EMPTY_CLUSTER_INFO);
    // Nothing may come back while A holds the budget. A correct server never answers
    // here, so the wait only bounds the test; it cannot make it flaky.
    waiter.set_read_timeout(Duration::from_millis(300));
    let pending = waiter.read_reply().map(|r| r.header.to_string());
    assert!(pending.is_err(), "answered while the budget was held: {pending:?}");
    waiter.set_read_timeout(meridian_testkit::IO_TIMEOUT);
    // A completes its frame and is answered; then B goes through.
    holder.write_raw(&big[64..]).expect("write");
    assert_eq!(holder.read_reply().expect("an answer to the held frame").code(), 17);
    let reply = waiter.read_reply().expect("the waiting registration is answered");
    assert_eq!((reply.opaque(), reply.code()), (42, 0), "{}", reply.header);
    assert_eq!(route_code(&mut client, &format!("TWait-0000-{}", "x".repeat(60))), 0);
}

#[test]
fn idle_connection_is_closed_and_its_broker_unregistered() {
    let server = common::server(&["connectionIdleTimeoutMs=300"]);
    let mut broker_conn = server.client();
    let peer = format!("closing 127.0.0.1:{}:", broker_conn.local_port());
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(broker_conn.read_until_closed(), Closed::Yes);
    server.expect_log_line(&[&peer, "connectionIdleTimeoutMs 300"]);
    // Fresh connections: an idle one would be closed too.
    assert!(
        poll_until(POLL_DEADLINE, || route_code(&mut server.client(), "T1") == 17),
        "broker survived its idle close"
    );
}

/// A client that sends lookups and never reads the answers: once the socket buffers are
/// full the server's write waits, reading stops (so requests stay in the kernel, not in
/// Meridian), and after replyWriteTimeoutMs the connection is closed. Memory stays flat.
#[test]
fn a_client_that_never_reads_is_closed_with_bounded_memory() {
    let server = common::server(&["replyWriteTimeoutMs=300"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let topics: Vec<TopicConfig> = (0..4).map(|i| topic(&format!("T{i}"), 16, 6)).collect();
    assert_registered(&mut conn, &b.register(json_body(1, &topics)));
    let rss_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("server status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line").to_string();
        line.split_whitespace().nth(1).expect("a number").parse::<u64>().expect("kB")
    };
    let before = rss_kib();
    let mut silent = server.client();
    let peer = format!("closing 127.0.0.1:{}:", silent.local_port());
    // 40k lookups (about 20 MB of answers, more than loopback socket buffers hold); the
    // write may block once the server stops reading, so it runs on its own thread and may
    // fail.
    let burst: Vec<u8> = (0..40_000).flat_map(|i| route_request("T1").encode(i)).collect();
    let writer = std::thread::spawn(move || {
        let _ = silent.write_raw(&burst);
        silent
    });
    server.expect_log_line(&[&peer, "replyWriteTimeoutMs 300"]);
    let grew_kib = rss_kib().saturating_sub(before);
    assert!(grew_kib < 16 * 1024, "RSS grew by {grew_kib} KiB for one connection that never reads");
    drop(writer.join().expect("writer thread"));
    // Everyone else is still served.
    assert_eq!(route_code(&mut server.client(), "T1"), SUCCESS);
}

/// SIGTERM: new connections are refused at once, a registration being handled is still
/// answered, and the process exits 0 once drained.
#[test]
fn sigterm_answers_the_requests_in_flight_then_exits_zero() {
    let options = common::options().sets(&["shutdownDrainMs=30000"]).env("RUST_LOG", "meridian=debug");
    let mut server = Server::start_with(options);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let topics: Vec<TopicConfig> = (0..30_000).map(|i| topic(&format!("DrainTopic{i:05}"), 4, 6)).collect();
    conn.send(&b.register(json_body(1, &topics)));
    // Logged once the frame is read and counted in flight; decoding and applying follow.
    server.wait_for_log("request code=103", POLL_DEADLINE).expect("the registration reached the server");
    // SAFETY: plain kill(2) on the child process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    server.wait_for_log("stopping: no new connections", POLL_DEADLINE).expect("the stop is logged");
    assert!(std::net::TcpStream::connect(server.addr()).is_err(), "a connection was accepted while stopping");
    let reply = conn.read_reply().expect("the registration in flight is answered");
    assert_eq!(reply.code(), SUCCESS, "{:?}", reply.remark());
    let status = server.wait_exit(POLL_DEADLINE).expect("exits once drained");
    assert_eq!(status.code(), Some(0));
    server.expect_log("drained: every request being handled was answered");
}

/// enableShutdownGracefully: after SIGTERM, clients newer than 5.3.1 get GO_AWAY (1500)
/// instead of an answer, older ones are still served, and the window ends as soon as every
/// client has closed its connection (well before the 60 s configured here).
#[test]
fn graceful_shutdown_tells_new_clients_to_go_away_and_serves_old_ones() {
    let sets = ["enableShutdownGracefully=true", "shutdownWaitTimeSeconds=60"];
    let mut server = Server::start_with(common::options().sets(&sets).env("RUST_LOG", "meridian=debug"));
    let mut new_client = server.client();
    let mut old_client = server.client();
    // Both answered once, so both are accepted (a connection still in the listen queue
    // when the server stops is reset).
    assert_eq!(route_code(&mut new_client, "T1"), TOPIC_NOT_EXIST);
    assert_eq!(route_code(&mut old_client, "T1"), TOPIC_NOT_EXIST);
    // SAFETY: plain kill(2) on the child process this test started.
    assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGTERM) }, 0);
    server.wait_for_log("answering GO_AWAY", POLL_DEADLINE).expect("the window opens");
    let reply = new_client.call(&route_request("T1").version(479));
    assert_eq!((reply.code(), reply.remark()), (1500, Some("please go away")), "{}", reply.header);
    // A oneway request gets no answer, GO_AWAY or other: the next answer is the next call's.
    new_client.send(&cluster_info_request().version(479).oneway());
    let reply = new_client.call(&cluster_info_request().version(479).opaque(77));
    assert_eq!((reply.opaque(), reply.code()), (77, 1500));
    // 5.3.1 (475) and older do not know GO_AWAY: served as usual.
    assert_eq!(old_client.call(&route_request("T1").version(475)).code(), TOPIC_NOT_EXIST);
    assert_eq!(old_client.call(&cluster_info_request().version(475)).code(), SUCCESS);
    drop(new_client);
    drop(old_client);
    let status = server.wait_exit(POLL_DEADLINE).expect("exits once every client left");
    assert_eq!(status.code(), Some(0));
    server.expect_log("every client closed its connection");
}

/// Connections are file descriptors: the soft limit is raised towards what the connection
/// limits allow, up to the hard limit, and a limit that stays too low is reported.
#[test]
fn the_open_files_limit_is_raised_and_a_low_one_reported() {
    let mut ours = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid out struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut ours) }, 0);
    // A hard limit below what 16384 connections per shard need (every machine allows
    // lowering it), and a soft one below that.
    let hard = ours.rlim_max.min(4096);
    let soft = hard / 4;
    let server = Server::start_with(ServerOptions { nofile: Some((soft, hard)), ..common::options() });
    server.expect_log(&format!("open files limit raised from {soft} to {hard}"));
    server.expect_log_line(&[&format!("open files limit {hard} < connectionsPerShardMax"), "raise `ulimit -n`"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("open files line").to_string();
    assert_eq!(line.split_whitespace().nth(3), Some(hard.to_string().as_str()), "{line}");
    // Room enough for the configured connections (at most 2 shards here): no warning.
    let per_shard = (hard - 256) / 4;
    let options = ServerOptions { nofile: Some((soft, hard)), ..common::options() }
        .sets(&[&format!("connectionsPerShardMax={per_shard}")]);
    let server = Server::start_with(options);
    server.expect_log("open files limit raised from");
    assert!(!server.log_text().contains("< connectionsPerShardMax"), "{}", server.log_text());
}

#[test]
fn topics_max_refuses_a_registration_that_would_exceed_it() {
    let server = common::server(&["topicsMax=3"]);
    let mut conn = server.client();
    let a = Broker::new("c1", "broker-a", 0, 10911);
    let five: Vec<TopicConfig> = (1..=5).map(|i| topic(&format!("T{i}"), 4, 6)).collect();
    let reply = conn.call(&a.register(json_body(1, &five)));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("topicsMax"), "{}", reply.header);
    assert_topic_not_exist(&mut conn, "T1");
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);

    assert_registered(&mut conn, &a.register(json_body(2, &five[..3])));
    // Existing topics do not count again; one new one is too many.
    let b = Broker::new("c1", "broker-b", 0, 11911);
    let reply = conn.call(&b.register(json_body(1, &[topic("T1", 4, 6), topic("T4", 4, 6)])));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("topicsMax"), "{}", reply.header);
    assert_topic_not_exist(&mut conn, "T4");
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
}

#[test]
fn brokers_max_refuses_a_new_broker_address() {
    let server = common::server(&["brokersMax=1"]);
    let mut conn = server.client();
    let topics = [topic("T1", 4, 6), topic("T2", 4, 6)];
    let a = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &a.register(json_body(1, &topics)));
    let reply = conn.call(&Broker::new("c1", "broker-b", 0, 11911).register(json_body(1, &topics)));
    assert_eq!(reply.code(), 1, "{}", reply.header);
    assert!(reply.remark().unwrap_or_default().contains("brokersMax"), "{}", reply.header);
    assert!(!cluster_info(&mut conn).contains("broker-b"));
    // The registered broker may re-register.
    assert_registered(&mut conn, &a.register(json_body(2, &topics)));
}

#[test]
fn truncated_frame_then_eof_is_logged_and_others_are_served() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let port = conn.local_port();
    let frame = route_request("T1").encode(5);
    conn.write_raw(&frame[..frame.len() - 3]).expect("write");
    conn.shutdown_write();
    assert_eq!(conn.read_until_closed(), Closed::Yes);
    server.expect_log(&format!("closing 127.0.0.1:{port}: peer closed in the middle of a frame"));
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

#[test]
fn unknown_serialize_type_closes_the_connection() {
    let server = common::server(&[]);
    let (_, header, body) = split_frame(&route_request("T1").encode(1));
    assert_closed_by(&server, &meridian_testkit::frame(5, &header, &body), "unknown serialize type 5");
}

#[test]
fn invalid_json_header_closes_the_connection() {
    let server = common::server(&[]);
    assert_closed_by(&server, &meridian_testkit::frame(SERIALIZE_JSON, b"{\"code\":105,\"extFi", b""), "undecodable");
    assert_closed_by(&server, &meridian_testkit::frame(SERIALIZE_JSON, b"not json at all", b""), "undecodable");
}
