//! End-to-end: every subcommand of the built `meridian-loadgen`, for about a second, against
//! the real `meridian` binary (and the built-in echo server), on loopback. Each test starts
//! its own server on an ephemeral port with its own data directory.
//!
//! Asserted: the process exits 0, the `--json` document parses, successful requests were
//! made and no unexpected error was counted. No timing is asserted. Servers are spawned with
//! meridian-testkit; every child is killed by PID on drop and every wait has a deadline, so a
//! test ends by itself.

use meridian_testkit::{Server, ServerOptions, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long loadgen may take to print its next progress line.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(30);
/// How long one loadgen run may take, setup and teardown included.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

fn loadgen_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meridian-loadgen"))
}

/// `target/<profile>/meridian`, next to loadgen. `cargo test --workspace` builds it (its
/// own tests need it); when only this package is tested it is built here, once.
fn meridian_bin() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let loadgen = loadgen_bin();
    let dir = loadgen.parent().expect("the binary lives in a directory");
    let meridian = dir.join("meridian");
    BUILD.call_once(|| {
        if meridian.exists() {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target_dir = dir.parent().expect("target/<profile>");
        let mut build = Command::new(cargo);
        build.current_dir(&root).args(["build", "-p", "meridian", "--bin", "meridian", "--target-dir"]).arg(target_dir);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build for the meridian binary");
        assert!(status.success(), "building meridian failed");
    });
    assert!(meridian.exists(), "{} not found", meridian.display());
    meridian
}

/// The real `meridian` on 127.0.0.1:0, one shard, metrics off (tests run side by side).
fn meridian_options() -> ServerOptions {
    ServerOptions::new(meridian_bin()).shards(1).sets(&["metricsListen=off"]).env("RUST_LOG", "warn,meridian=info")
}

fn meridian() -> Server {
    Server::start_with(meridian_options())
}

/// loadgen's own echo server, which answers every lookup with a canned route.
fn echo() -> Server {
    let dir = TempDir::new("echo");
    let mut command = Command::new(loadgen_bin());
    command.args(["echo-server", "--listen", "127.0.0.1:0", "--duration", "120s"]);
    Server::start_command(command, "echo-server listening on ", dir.path().to_path_buf(), Some(dir))
}

/// Runs loadgen to completion (killed past RUN_DEADLINE) and returns its output and JSON.
fn run_loadgen(server: &Server, args: &[&str]) -> (Output, Value) {
    let dir = TempDir::new("run");
    let json = dir.path().join("result.json");
    let hdr = dir.path().join("result.hdr");
    let mut command = Command::new(loadgen_bin());
    command
        .args(args)
        .args(["-n", &server.addr().to_string(), "--json"])
        .arg(&json)
        .arg("--hdr")
        .arg(&hdr)
        .args(["--pid", &server.pid().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("spawning meridian-loadgen");
    let output = wait_with_deadline(child, RUN_DEADLINE);
    let text = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() == Some(0),
        "loadgen {args:?} exited {:?}\nstdout:\n{text}\nstderr:\n{errors}",
        output.status
    );
    let document: Value = serde_json::from_slice(&std::fs::read(&json).expect("the --json file exists"))
        .expect("the --json file is JSON");
    assert!(std::fs::metadata(&hdr).expect("the --hdr file exists").len() > 0, "the HDR log is not empty");
    assert_eq!(document["errors_unexpected"], 0, "unexpected errors:\n{text}");
    (output, document)
}

fn wait_with_deadline(mut child: Child, deadline: Duration) -> Output {
    let end = Instant::now() + deadline;
    loop {
        match child.try_wait().expect("waiting for loadgen") {
            Some(_) => return child.wait_with_output().expect("collecting loadgen's output"),
            None if Instant::now() >= end => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("collecting loadgen's output");
                panic!(
                    "loadgen still running after {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn ok_lookups(document: &Value) -> u64 {
    document["lookups_ok_total"].as_u64().expect("lookups_ok_total is a number")
}

fn event_count(document: &Value, name: &str) -> u64 {
    document["events_us"][name]["count"].as_u64().unwrap_or(0)
}

/// Starts loadgen with `args` plus `--json json`, streaming its stderr lines (progress) to the
/// receiver; the caller waits for it with `wait_with_deadline`.
fn spawn_loadgen(args: &[&str], json: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(loadgen_bin())
        .args(args)
        .arg("--json")
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning meridian-loadgen");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The next progress line of the load phase.
fn load_line(rx: &mpsc::Receiver<String>) -> String {
    loop {
        let line = rx.recv_timeout(PROGRESS_DEADLINE).expect("a progress line of the load phase");
        if line.contains("] load") {
            return line;
        }
    }
}

/// Small, fast settings shared by the load scenarios.
const SMALL: &[&str] = &["--topics", "200", "--brokers", "2", "--connections", "4", "-q"];

#[test]
fn lookup_closed_loop_with_heartbeats_and_a_request_count() {
    let server = meridian();
    let mut args = vec!["lookup"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&[
        "--requests",
        "3000",
        "--duration",
        "20s",
        "--popularity",
        "zipf",
        "--unknown-fraction",
        "0.1",
        "--heartbeat",
        "query-data-version",
        "--heartbeat-interval",
        "100ms",
        "--register-period",
        "300ms",
        "--change-fraction",
        "0.05",
    ]);
    let (output, document) = run_loadgen(&server, &args);
    let lookup = &document["lookups"][0];
    assert_eq!(lookup["answered"], 3000, "--requests bounds the run");
    assert!(lookup["not_found_expected"].as_u64().unwrap() > 0, "unknown topics were asked");
    assert!(ok_lookups(&document) > 0);
    assert!(event_count(&document, "register.setup") == 2);
    assert!(event_count(&document, "unregister") == 2);
    assert_eq!(document["config"]["load"]["popularity"], "zipf:0.99");
    assert!(String::from_utf8_lossy(&output.stdout).contains("lookup"), "the table is printed");
}

#[test]
fn lookup_open_loop_legacy_client_binary_header_4x_deflate_brokers() {
    let server = meridian();
    let mut args = vec!["lookup"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&[
        "--duration",
        "1s",
        "--rate",
        "2000",
        "--client-version",
        "317",
        "--header",
        "rocketmq",
        "--broker-version",
        "4",
        "--encoding",
        "deflate",
        "--slaves",
        "1",
        "--width",
        "2",
        "--topic-names",
        "realistic",
    ]);
    let (_, document) = run_loadgen(&server, &args);
    assert!(ok_lookups(&document) > 0);
    assert!(document["lookups"][0]["send_lag_us"]["count"].as_u64().unwrap() > 0, "open loop records send lag");
    assert_eq!(event_count(&document, "register.setup"), 4, "2 masters + 2 slaves");
}

#[test]
fn register_first_resend_and_unregister_become_visible() {
    let server = meridian();
    let args = [
        "register",
        "--duration",
        "20s",
        "--topics",
        "3000",
        "--brokers",
        "2",
        "--slaves",
        "1",
        "--repeat",
        "3",
        "--unchanged-resends",
        "1",
        "--change-fraction",
        "0.01",
        "--encoding",
        "zstd",
        "-q",
    ];
    let (_, document) = run_loadgen(&server, &args);
    assert_eq!(event_count(&document, "register.first"), 2);
    assert_eq!(event_count(&document, "visible.first"), 2);
    assert_eq!(event_count(&document, "register.resend-unchanged"), 2, "the first re-send of each changes nothing");
    assert_eq!(event_count(&document, "register.resend-changed"), 4);
    assert_eq!(event_count(&document, "visible.resend"), 4, "only changed re-sends have something to see");
    assert_eq!(event_count(&document, "visible.unregister"), 2);
    assert_eq!(document["lookups"].as_array().map(Vec::len), Some(0), "register makes no client load");
}

/// Asks `addr` for the route of each `(topic, broker)` on one connection, as a client would;
/// returns the topics whose answer is not a route listing that broker.
fn unroutable(addr: &str, expected: &[(String, String)]) -> Vec<String> {
    use meridian_protocol::{codes, frame::SerializeType, header::Header, header::HeaderOut};
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting to meridian");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("a read timeout");
    let mut missing = Vec::new();
    for (opaque, (topic, broker)) in expected.iter().enumerate() {
        let mut request = Vec::new();
        let fields = [("topic", topic.as_str())];
        HeaderOut::request(codes::GET_ROUTEINFO_BY_TOPIC, 0, 479, opaque as i32, Some(&fields[..])).encode_frame(
            SerializeType::Json,
            &[],
            &mut request,
        );
        stream.write_all(&request).expect("sending a lookup");
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).expect("an answer");
        let mut frame = vec![0u8; u32::from_be_bytes(length) as usize];
        stream.read_exact(&mut frame).expect("the whole answer");
        let header_len = (u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) & 0x00ff_ffff) as usize;
        let header = Header::decode(SerializeType::Json, &frame[4..4 + header_len]).expect("an answer header");
        assert_eq!(header.opaque, opaque as i32);
        let route: Value = serde_json::from_slice(&frame[4 + header_len..]).unwrap_or(Value::Null);
        let listed = route["brokerDatas"].as_array().is_some_and(|b| b.iter().any(|d| d["brokerName"] == **broker));
        if header.code != codes::SUCCESS || !listed {
            missing.push(topic.clone());
        }
    }
    missing
}

/// Brokers registering in chunks, as Java brokers with `enableSplitRegistration=true` do:
/// 120 topics per broker in chunks of 40 is 3 full chunks and one empty last chunk per round.
/// While the rounds go on (some with changed topics), every topic routes to its broker.
#[test]
fn split_registration_keeps_every_topic_routable() {
    let server = meridian();
    let addr = server.addr().to_string();
    let dir = TempDir::new("split");
    let json = dir.path().join("result.json");
    let args = ["lookup", "-n", &addr, "--topics", "240", "--brokers", "2", "--connections", "2"];
    let more = ["--duration", "3s", "--register-period", "300ms", "--change-fraction", "0.05"];
    let split = ["--split-registration-size", "40", "--progress-interval", "200ms"];
    let (child, rx) = spawn_loadgen(&[&args[..], &more[..], &split[..]].concat(), &json);
    // The load phase starts once every broker's first round is answered.
    let mut lines = vec![load_line(&rx)];
    let expected: Vec<(String, String)> =
        (0..240).map(|t| (format!("TopicTest{t:06}"), format!("lg-broker-{}", t % 2))).collect();
    assert_eq!(unroutable(&addr, &expected), Vec::<String>::new(), "after the first rounds");
    // Again while periodic rounds are being sent.
    lines.push(load_line(&rx));
    assert_eq!(unroutable(&addr, &expected), Vec::<String>::new(), "during periodic rounds");
    let output = wait_with_deadline(child, RUN_DEADLINE);
    lines.extend(rx.try_iter());
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{text}\nstderr:\n{}", lines.join("\n"));
    let document: Value = serde_json::from_slice(&std::fs::read(&json).expect("the --json file exists")).unwrap();
    assert_eq!(document["errors_unexpected"], 0, "{text}");
    let count = |name: &str| document["counts"][name].as_u64().unwrap_or(0);
    let (rounds, chunks) = (count("split registration rounds"), count("split registration chunks"));
    assert!(rounds > 2, "the first rounds and periodic ones: {rounds}");
    assert_eq!(chunks, 4 * rounds, "every round is 4 chunks");
    assert_eq!(event_count(&document, "register-chunk"), chunks, "one answer per chunk (one target)");
    assert_eq!(event_count(&document, "register.setup"), 2, "one first round per broker");
    assert!(lines.iter().any(|l| l.contains(" chunks)")), "progress shows the chunks:\n{}", lines.join("\n"));
}

#[test]
fn storm_reports_quiet_and_storm_phases() {
    let server = meridian();
    let mut args = vec!["storm"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&["--duration", "3s", "--storm-period", "50ms", "--rate", "4000", "--inflight", "64"]);
    let (output, document) = run_loadgen(&server, &args);
    let lookups = document["lookups"].as_array().expect("lookups");
    assert_eq!(lookups.len(), 2);
    assert_eq!(lookups[0]["phase"], "quiet");
    assert_eq!(lookups[1]["phase"], "storm");
    assert!(ok_lookups(&document) > 0);
    assert!(event_count(&document, "register.storm") > 0, "brokers re-registered during the storm");
    assert!(document["results"]["p99_ratio_storm_vs_quiet"].is_number());
    assert!(String::from_utf8_lossy(&output.stdout).contains("storm: lookup p99"));
}

#[test]
fn scale_loads_from_empty_then_times_lookups_quiet_and_during_periods() {
    let server = meridian();
    let args = ["scale", "-b", "5", "-t", "50", "--period", "1s", "--duration", "3s", "--rate", "1000", "-c", "4"];
    let (output, document) = run_loadgen(&server, &args);
    let lookups = document["lookups"].as_array().expect("lookups");
    assert_eq!(lookups.len(), 2);
    assert_eq!(lookups[0]["phase"], "quiet");
    assert_eq!(lookups[1]["phase"], "periods");
    assert!(ok_lookups(&document) > 0);
    let scale = &document["results"]["scale"];
    assert_eq!(scale["entries"], 250, "5 brokers × 50 topics");
    assert!(scale["topic_universe"].as_u64().is_some_and(|u| (50..=125).contains(&u)), "{scale}");
    assert!(scale["load_answered_s"].is_number() && scale["load_visible_s"].is_number(), "{scale}");
    assert_eq!(event_count(&document, "register.load"), 5, "every broker registered from empty once");
    assert!(event_count(&document, "register.period") >= 5, "every broker re-registered in the period");
    assert!(scale["server_cores_periods"].is_number(), "CPU of --pid per phase: {scale}");
    assert!(scale["server_rss_end_kib"].as_u64().is_some_and(|k| k > 0), "{scale}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("load from empty: all answered"));
}

#[test]
fn scale_fails_clearly_when_brokers_cannot_register() {
    // Nothing listens on the port: no broker can register, so the run says why and exits 1.
    let dir = TempDir::new("scale-refused");
    let json = dir.path().join("result.json");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("its address").to_string();
    drop(listener);
    let child = Command::new(loadgen_bin())
        .args(["scale", "-n", &addr, "-b", "3", "-t", "10", "-d", "2s", "--rate", "100", "-q", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning meridian-loadgen");
    let output = wait_with_deadline(child, RUN_DEADLINE);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{errors}");
    assert!(errors.contains("scale failed: registering lg-broker-"), "stderr:\n{errors}");
}

#[test]
fn churn_brokers_join_and_leave_visibly() {
    let server = meridian();
    let mut args = vec!["churn"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&["--duration", "2s", "--churn-interval", "200ms", "--heartbeat", "broker-heartbeat"]);
    let (_, document) = run_loadgen(&server, &args);
    assert!(ok_lookups(&document) > 0);
    assert!(event_count(&document, "visible.churn-join") > 0);
    assert!(event_count(&document, "visible.churn-leave") > 0);
}

#[test]
fn churn_by_closing_connections() {
    let server = meridian();
    let mut args = vec!["churn"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&[
        "--duration",
        "1s",
        "--churn-interval",
        "150ms",
        "--leave",
        "close",
        "--churn-brokers",
        "1",
    ]);
    let (_, document) = run_loadgen(&server, &args);
    assert!(event_count(&document, "visible.churn-join") > 0);
    assert!(event_count(&document, "visible.churn-leave") > 0, "a closed connection unregisters the broker");
}

#[test]
fn churn_watchers_and_pollers_time_every_event() {
    let server = meridian();
    let mut args = vec!["churn"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&[
        "--duration",
        "2s",
        "--churn-interval",
        "200ms",
        "--watchers",
        "3",
        "--pollers",
        "2",
        "--poll-interval",
        "100ms",
    ]);
    let (output, document) = run_loadgen(&server, &args);
    let counts = &document["counts"];
    let count = |name: &str| counts[name].as_u64().unwrap_or_else(|| panic!("count {name:?} missing: {counts}"));
    let (joins, leaves) = (count("propagation events (join)"), count("propagation events (leave)"));
    assert!(joins > 0 && leaves > 0, "churn events were timed");
    assert!(event_count(&document, "propagation.watch-join") > 0, "watchers saw joins");
    assert!(event_count(&document, "propagation.watch-leave") > 0, "watchers saw leaves");
    assert!(count("watch answers") > 0);
    assert!(count("poll lookups") > 0);
    // Every event is either seen or counted missed, by every observer (no timing asserted).
    for (kind, observers) in [("watch", 3), ("poll", 2)] {
        for (change, events) in [("join", joins), ("leave", leaves)] {
            let name = format!("propagation.{kind}-{change}");
            assert!(document["events_us"][&name].is_object(), "{name} is reported even if empty");
            let seen = event_count(&document, &name);
            let missed = count(&format!("{name} missed"));
            assert_eq!(seen + missed, events * observers, "{name}: seen {seen} + missed {missed}");
            assert_eq!(document["results"]["propagation"][&name]["seen"], seen);
        }
    }
    assert!(String::from_utf8_lossy(&output.stdout).contains("propagation to clients"), "the summary is printed");
}

#[test]
fn connections_hold_idle_connections_while_looking_up() {
    let server = meridian();
    let mut args = vec!["connections"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(&["--duration", "1s", "--idle-connections", "200", "--threads", "2"]);
    let (_, document) = run_loadgen(&server, &args);
    assert!(ok_lookups(&document) > 0);
    assert_eq!(document["counts"]["idle connections open"], 200);
    assert_eq!(document["counts"]["idle connections alive at the end"], 200);
}

#[test]
fn echo_server_answers_every_lookup() {
    let server = echo();
    let args = ["lookup", "--brokers", "0", "--duration", "1s", "--connections", "4", "--inflight", "16", "-q"];
    let (_, document) = run_loadgen(&server, &args);
    assert!(ok_lookups(&document) > 0);
}

#[test]
fn echo_server_answers_registrations_as_the_floor() {
    let server = echo();
    // Large enough to arrive in many reads; the echo server checks each body's CRC32.
    let args = ["register", "--topics", "3000", "--brokers", "1", "--repeat", "1", "--answers-only", "-q"];
    let (_, document) = run_loadgen(&server, &args);
    assert_eq!(event_count(&document, "register.first"), 1);
    assert_eq!(event_count(&document, "register.resend-unchanged"), 1);
    assert_eq!(event_count(&document, "visible.first"), 0, "--answers-only probes nothing");
    assert_eq!(document["errors_unexpected"], 0);
}

#[test]
fn remote_targets_are_refused_without_allow_remote() {
    let output = Command::new(loadgen_bin())
        .args(["lookup", "-n", "10.255.255.1:9876", "--duration", "1s"])
        .output()
        .expect("running meridian-loadgen");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}

#[test]
fn ctrl_c_stops_cleanly_and_still_reports() {
    let server = meridian();
    let dir = TempDir::new("sigint");
    let json = dir.path().join("result.json");
    let addr = server.addr().to_string();
    let args = ["lookup", "-n", &addr, "--duration", "60s", "--topics", "200", "--connections", "2"];
    let (child, rx) = spawn_loadgen(&[&args[..], &["--progress-interval", "200ms"]].concat(), &json);
    // Wait until the load runs (a progress line of the load phase), then interrupt.
    load_line(&rx);
    // SAFETY: kill(2) with the PID of our own child and a plain signal number.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let output = wait_with_deadline(child, RUN_DEADLINE);
    assert_eq!(output.status.code(), Some(130), "interrupted runs exit 130");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("INTERRUPTED"), "{text}");
    let document: Value = serde_json::from_slice(&std::fs::read(&json).expect("the --json file exists")).unwrap();
    assert_eq!(document["interrupted"], true);
    assert!(ok_lookups(&document) > 0);
    assert_eq!(document["errors_unexpected"], 0, "{text}");
}

/// A server that goes away mid-run: client connections are opened again once it is back
/// (`--reconnect-delay`), and lookups go on against the new server; what the outage cost is
/// counted as errors (the run exits 3 for them).
#[test]
fn lookup_connections_reopen_after_a_server_restart() {
    let mut server = meridian();
    let addr = server.addr().to_string();
    let dir = TempDir::new("restart");
    let json = dir.path().join("result.json");
    let args = ["lookup", "-n", &addr, "--duration", "8s", "--topics", "200", "--brokers", "2", "--connections", "4"];
    let more = ["--register-period", "1s", "--reconnect-delay", "200ms", "--progress-interval", "200ms"];
    let (child, rx) = spawn_loadgen(&[&args[..], &more[..]].concat(), &json);
    load_line(&rx);
    // The server dies (SIGKILL: connections reset) and a new one takes its address.
    server.kill();
    let _again = Server::start_with(ServerOptions { listen: addr.clone(), ..meridian_options() });
    // Lookups are answered again (first TOPIC_NOT_EXIST, then routes once the brokers re-register).
    let answered = (0..100).map(|_| load_line(&rx)).any(|l| l.contains("lookups ") && !l.contains("lookups 0/s"));
    let output = wait_with_deadline(child, RUN_DEADLINE);
    assert!(answered, "no lookups answered after the restart");
    assert_eq!(output.status.code(), Some(3), "the outage's errors make the exit code 3");
    let document: Value = serde_json::from_slice(&std::fs::read(&json).expect("the --json file exists")).unwrap();
    assert_eq!(document["counts"]["client connections reopened"], 4, "{document:#}");
    assert!(ok_lookups(&document) > 0);
}
