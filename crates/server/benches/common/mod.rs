//! Shared fixtures of the micro-benchmarks: registration bodies, route tables, and the sizes
//! to run. Topic names are meridian-testkit's realistic ones (random words plus hex, about
//! 35 bytes, from a fixed seed), so benches, loadgen and tests measure the same bytes.
//! Must not: generate names of its own.

// Each bench binary compiles this module on its own and uses a different subset of it.
#![allow(dead_code)]

use meridian_protocol::body::{DataVersion, RegisterBrokerBody, TopicConfig};
use meridian_server::config::Config;
use meridian_server::route::table::{RegisterBroker, RegisterOutcome, RouteTable, TableLimits};
use meridian_server::route::ConnId;

/// Topic counts of the size-dependent benchmarks under `cargo bench`.
pub const TOPIC_COUNTS_BENCH: [usize; 3] = [1_000, 10_000, 100_000];
/// Under `cargo test` (criterion's test mode runs every benchmark once, unoptimised) only
/// the smallest size runs, so `make test` stays fast; it still executes every code path.
pub const TOPIC_COUNTS_TEST: [usize; 1] = [1_000];
/// From this many topics on, a benchmark takes criterion's minimum of 10 samples.
pub const TOPIC_COUNT_LARGE_MIN: usize = 100_000;

/// Request version a 5.x broker or client stamps (V5_3_3 in Java's MQVersion).
pub const VERSION_5X: i32 = 479;

/// Whether this run measures (`cargo bench`) rather than smoke-tests (`cargo test`):
/// the same rule criterion applies to its own `--bench` / `--test` flags.
pub fn bench_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

pub fn topic_counts() -> &'static [usize] {
    if bench_mode() {
        &TOPIC_COUNTS_BENCH
    } else {
        &TOPIC_COUNTS_TEST
    }
}

/// `1k`, `10k`, `100k`: benchmark ids read better than raw counts.
pub fn count_label(count: usize) -> String {
    if count % 1_000 == 0 {
        format!("{}k", count / 1_000)
    } else {
        count.to_string()
    }
}

pub fn config() -> Config {
    Config::default()
}

pub use meridian_testkit::topics::topic_names;

/// One topic as a 5.x broker registers it: queue counts from {4, 8, 16}, perm RW.
pub fn topic_config(name: &str, queue_nums: i32) -> TopicConfig {
    let mut topic = TopicConfig::new(name);
    topic.read_queue_nums = queue_nums;
    topic.write_queue_nums = queue_nums;
    topic.perm = 6;
    topic
}

/// A full registration body for `names`; `counter` is the DataVersion counter.
pub fn register_body(names: &[String], counter: i64) -> RegisterBrokerBody {
    const QUEUE_NUMS: [i32; 3] = [4, 8, 16];
    RegisterBrokerBody {
        data_version: DataVersion { counter, state_version: 0, timestamp: 1_700_000_000_000 + counter },
        topic_configs: names.iter().enumerate().map(|(i, n)| topic_config(n, QUEUE_NUMS[i % 3])).collect(),
        filter_server_list: Some(Vec::new()),
        topic_queue_mapping_infos: Vec::new(),
    }
}

/// A master (`broker_id` 0) of cluster `DefaultCluster` at `127.0.0.<index + 1>:10911`.
pub fn register_request(index: u8, body: RegisterBrokerBody) -> RegisterBroker {
    RegisterBroker {
        cluster_name: "DefaultCluster".to_string(),
        broker_addr: format!("127.0.0.{}:10911", index + 1),
        broker_name: format!("broker-{index}"),
        broker_id: 0,
        ha_server_addr: format!("127.0.0.{}:10912", index + 1),
        heartbeat_timeout_ms: None,
        enable_acting_master: Some(false),
        zone_name: None,
        body,
        topics_unchanged: false,
        body_fingerprint: 0,
        prints_token: None,
        delta: None,
    }
}

pub fn table(config: &Config) -> RouteTable {
    RouteTable::new(TableLimits {
        topics_max: config.topics_max,
        brokers_max: config.brokers_max,
        broker_timeout_default_ms: config.broker_timeout_default_ms,
    })
}

/// Applies a registration that must be accepted.
pub fn register(table: &mut RouteTable, req: RegisterBroker) {
    let broker = req.broker_name.clone();
    let outcome = table.register_broker(req, ConnId::new(0, 1), 1_000);
    assert!(matches!(outcome, RegisterOutcome::Accepted { .. }), "{broker}: {outcome:?}");
}
