//! Decompression bombs against the registration memory budget: zlib and zstd bodies of ~1 MB
//! that inflate to 1 GiB, sent at once on several connections of a 2-shard server while a
//! legitimate 100k-topic registration (about 21 MB of JSON) proceeds on another. The
//! server's peak RSS growth must stay under the budget plus a stated margin, every bomb is
//! answered 1 naming the key that stopped it, the connection stays usable, and the good
//! registration is answered 0 and routable.

use crate::common;
use crate::common::builders::{crc32, register_request, route_code, topic, zlib_zeros};
use meridian_protocol::codes::{GET_BROKER_CLUSTER_INFO, REGISTER_BROKER, SUCCESS, SYSTEM_ERROR};
use meridian_testkit::topics::topic_names;
use meridian_testkit::{Client, Request, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// The budget the server runs with here (frameBytesMax is lowered to fit it: a budget
/// must hold two of the largest frame).
const BUDGET_BYTES: u64 = 128 * MIB;
/// What the server may hold beyond the budget: the good registration's route table and
/// the snapshots published from it (about 60 MiB, measured without bombs; they are not
/// in flight, so not charged), the frames and read buffers, and freed chunks the
/// allocator keeps for a moment before returning them. Measured growth in all: 150 to
/// 225 MiB. Without the budget this test grew by over 2 GiB (one bomb could inflate to
/// bodyDecompressedBytesMax, 512 MiB, on each shard at once).
const MARGIN_BYTES: u64 = 192 * MIB;
/// Connections sending bombs, and bombs each sends one after the other.
const BOMB_CONNECTIONS: usize = 6;
const BOMBS_PER_CONNECTION: usize = 1;
/// Each bomb inflates to this much (zeros).
const BOMB_INFLATED_MIB: usize = 1024;
const GOOD_TOPICS: usize = 100_000;
/// Bounds every wait for an answer: a registration may wait 5 s for budget, then decode
/// (unoptimised in tests) on a machine busy with other tests. Not a timing assertion.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The same zeros as Meridian's opt-in zstd encoding: one small frame of a MiB of zeros,
/// repeated (a body may hold several frames in a row).
fn zstd_zeros(mib: usize) -> Vec<u8> {
    let frame = zstd::encode_all(vec![0u8; 1 << 20].as_slice(), 3).expect("zstd into a Vec");
    frame.repeat(mib)
}

/// Every third connection sends zstd, the others zlib (RocketMQ's compressed form).
fn bomb_request(index: usize, zlib_bomb: &[u8], zstd_bomb: &[u8]) -> Request {
    let (encoding, bomb) = if index % 3 == 2 { ("zstd", zstd_bomb) } else { ("zlib", zlib_bomb) };
    let request = Request::new(REGISTER_BROKER)
        .ext("brokerName", format!("broker-bomb-{index}"))
        .ext("brokerAddr", format!("127.0.0.1:{}", 20_000 + index))
        .ext("clusterName", "c-bomb")
        .ext("brokerId", 0)
        .ext("haServerAddr", format!("127.0.0.1:{}", 21_000 + index))
        .ext("compressed", encoding == "zlib")
        .ext("enableActingMaster", "false")
        .ext("bodyCrc32", crc32(bomb));
    match encoding {
        "zstd" => request.ext("bodyEncoding", "zstd"),
        _ => request,
    }
    .body(bomb.to_vec())
}

/// A field of /proc/<pid>/status in bytes (VmRSS, VmHWM).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server's /proc status");
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in status"));
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB");
    kib * 1024
}

/// Samples the server's RSS until stopped; returns the highest sample.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            peak.fetch_max(status_bytes(pid, "VmRSS:"), Ordering::AcqRel);
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn good_registration() -> Request {
    let topics: Vec<_> = topic_names(GOOD_TOPICS).iter().map(|name| topic(name, 8, 6)).collect();
    register_request("c-good", "broker-good", 0, "127.0.0.1:10911", "127.0.0.1:10912", 1, &topics)
}

/// Sends `BOMBS_PER_CONNECTION` bombs on one connection; each must be answered 1 naming
/// the key that stopped it, and the connection must still answer a lookup afterwards.
fn bomb_connection(server_addr: std::net::SocketAddr, index: usize, bombs: Arc<(Vec<u8>, Vec<u8>)>) -> Vec<String> {
    let mut conn = Client::connect(server_addr);
    conn.set_read_timeout(ANSWER_TIMEOUT);
    let mut remarks = Vec::new();
    for round in 0..BOMBS_PER_CONNECTION {
        let reply = conn.call(&bomb_request(index, &bombs.0, &bombs.1));
        let remark = reply.remark().unwrap_or_default().to_string();
        assert_eq!(reply.code(), SYSTEM_ERROR, "bomb {index}.{round}: {}", reply.header);
        assert!(
            remark.contains("registrationMemoryBytesMax") || remark.contains("bodyDecompressedBytesMax"),
            "bomb {index}.{round}: remark {remark:?}"
        );
        remarks.push(remark);
    }
    assert_eq!(conn.call(&Request::new(GET_BROKER_CLUSTER_INFO)).code(), SUCCESS, "connection {index} still usable");
    remarks
}

#[test]
fn concurrent_bombs_stay_within_the_budget_while_a_big_registration_succeeds() {
    let budget = format!("registrationMemoryBytesMax={BUDGET_BYTES}");
    let frame_max = format!("frameBytesMax={}", BUDGET_BYTES / 2);
    let good = good_registration();
    assert!(good.body.len() > 20_000_000, "the good registration is {} bytes", good.body.len());
    let bombs = Arc::new((zlib_zeros(BOMB_INFLATED_MIB), zstd_zeros(BOMB_INFLATED_MIB)));
    for bomb in [&bombs.0, &bombs.1] {
        assert!(bomb.len() < 2 * MIB as usize, "a bomb is {} bytes", bomb.len());
    }
    let server = Server::start_with(common::options().shards(2).sets(&[&budget, &frame_max]));
    let pid = server.pid();

    let rss_before = status_bytes(pid, "VmRSS:");
    let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(rss_before)));
    let sampler = sample_rss(pid, stop.clone(), peak.clone());
    let addr = server.addr();
    let bombers: Vec<_> = (0..BOMB_CONNECTIONS)
        .map(|index| {
            let bombs = bombs.clone();
            std::thread::spawn(move || bomb_connection(addr, index, bombs))
        })
        .collect();
    let mut good_conn = server.client();
    good_conn.set_read_timeout(ANSWER_TIMEOUT);
    let reply = good_conn.call(&good);
    let remarks: Vec<String> = bombers.into_iter().flat_map(|b| b.join().expect("a bomb connection failed")).collect();
    stop.store(true, Ordering::Release);
    sampler.join().expect("the RSS sampler");

    assert_eq!(reply.code(), SUCCESS, "the 100k-topic registration: {}", reply.header);
    let names = topic_names(GOOD_TOPICS);
    for name in [&names[0], &names[GOOD_TOPICS / 2], &names[GOOD_TOPICS - 1]] {
        assert_eq!(route_code(&mut good_conn, name), SUCCESS, "{name} is routable");
    }
    assert_eq!(remarks.len(), BOMB_CONNECTIONS * BOMBS_PER_CONNECTION);
    let cluster = good_conn.call(&Request::new(GET_BROKER_CLUSTER_INFO));
    let cluster = String::from_utf8_lossy(&cluster.body);
    assert!(
        cluster.contains("broker-good") && !cluster.contains("broker-bomb"),
        "refused bombs changed nothing: {cluster}"
    );

    let peak_bytes = peak.load(Ordering::Acquire).max(status_bytes(pid, "VmHWM:"));
    let growth_bytes = peak_bytes.saturating_sub(rss_before);
    let by_key = |key: &str| remarks.iter().filter(|r| r.contains(key)).count();
    eprintln!(
        "bombs: RSS before {} MiB, peak {} MiB, growth {} MiB (budget {} MiB + margin {} MiB); \
         refused at registrationMemoryBytesMax {}, at bodyDecompressedBytesMax {}",
        rss_before / MIB,
        peak_bytes / MIB,
        growth_bytes / MIB,
        BUDGET_BYTES / MIB,
        MARGIN_BYTES / MIB,
        by_key("registrationMemoryBytesMax"),
        by_key("bodyDecompressedBytesMax"),
    );
    assert!(
        growth_bytes <= BUDGET_BYTES + MARGIN_BYTES,
        "peak RSS grew by {} MiB, more than the {} MiB budget plus {} MiB",
        growth_bytes / MIB,
        BUDGET_BYTES / MIB,
        MARGIN_BYTES / MIB
    );
}
