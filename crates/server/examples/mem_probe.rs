//! Live heap bytes per topic-on-broker entry of the route table and of one snapshot, with a
//! counting allocator: N realistic topics, each on 2 of 20 broker groups (bench/'s memory
//! layout), then the standard-JSON answers of every topic encoded.
//!
//! `cargo run --release -p meridian-server --example mem_probe [TOPICS]` (default 100000).

use meridian_protocol::body::{DataVersion, JsonFlavour, RegisterBrokerBody, TopicConfig};
use meridian_server::route::snapshot::RouteSnapshot;
use meridian_server::route::table::{RegisterBroker, RouteTable, TableLimits};
use meridian_server::route::ConnId;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

const BROKERS: usize = 20;

struct Counting;
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn topic_name(t: usize) -> String {
    format!("prod_trade_refund_notify_7f3a2c_{t:06}")
}

fn main() {
    let topics: usize = std::env::args().nth(1).map(|a| a.parse().expect("TOPICS is a number")).unwrap_or(100_000);
    let limits = TableLimits { topics_max: 10_000_000, brokers_max: 1000, broker_timeout_default_ms: 120_000 };
    let mut table = RouteTable::new(limits);
    let base = live();
    for b in 0..BROKERS {
        let mut body = RegisterBrokerBody {
            data_version: DataVersion { counter: 1, ..Default::default() },
            filter_server_list: Some(Vec::new()),
            ..Default::default()
        };
        body.topic_configs = (0..topics)
            .filter(|t| t % BROKERS == b || (t + 1) % BROKERS == b)
            .map(|t| TopicConfig::new(topic_name(t)))
            .collect();
        let request = RegisterBroker {
            cluster_name: "DefaultCluster".into(),
            broker_addr: format!("10.0.0.{b}:10911"),
            broker_name: format!("broker-{b:02}"),
            broker_id: 0,
            ha_server_addr: format!("10.0.0.{b}:10912"),
            heartbeat_timeout_ms: None,
            enable_acting_master: Some(false),
            zone_name: None,
            body,
            topics_unchanged: false,
            body_fingerprint: 0,
            prints_token: None,
            delta: None,
        };
        table.register_broker(request, ConnId(b as u64), 0);
    }
    let entries = (topics * 2) as isize;
    let table_bytes = live() - base;
    let snapshot = RouteSnapshot::empty().next(&mut table, &Default::default(), None);
    let snapshot_bytes = live() - base - table_bytes;
    println!(
        "{entries} topic-on-broker entries: table {} B/entry, snapshot {} B/entry, together {} B/entry",
        table_bytes / entries,
        snapshot_bytes / entries,
        (table_bytes + snapshot_bytes) / entries
    );
    let before = live();
    for t in 0..topics {
        if let Some(route) = snapshot.route(&topic_name(t)) {
            route.encoded(JsonFlavour::Standard);
        }
    }
    println!("standard answers encoded for every topic: {} B/entry more", (live() - before) / entries);
}
