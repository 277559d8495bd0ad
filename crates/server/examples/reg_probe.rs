//! Where a big registration's time goes, without sockets: decode (the shard's scanner,
//! which splits a big topic table over two threads), apply (the writer's table update,
//! which ends by freeing the decoded body: that part is also shown alone as "drop"),
//! publish (the snapshot). Minimum over runs; publish and drop in this thread's CPU time,
//! which other processes on a shared machine disturb far less than wall time; decode and
//! apply in wall time, since both may use a second thread whose work would not show in
//! this one's.
//!
//! `cargo run --release -p meridian-server --example reg_probe [TOPICS] [RUNS]`
//! (defaults 100000 and 5): a first registration of TOPICS realistic names into an empty
//! table, then re-sends with a new data version and 1% of the topics changed.

use meridian_protocol::body::{self, BodyEncoding, DataVersion, RegisterBrokerBody, TopicConfig};
use meridian_server::route::snapshot::{RouteBuildOptions, RouteSnapshot};
use meridian_server::route::table::{RegisterBroker, RouteTable, TableLimits};
use meridian_server::route::ConnId;
use std::sync::Arc;
use std::time::Duration;

// The server's allocator (crates/meridian), so frees and allocations cost what they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WORDS: [&str; 8] = ["trade", "refund", "notify", "order", "payment", "user", "stock", "audit"];

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = thread_cpu();
    let out = f();
    (out, thread_cpu() - start)
}

fn name(t: usize) -> String {
    format!("prod_{}_{}_{:06x}_{t:06}", WORDS[t % 8], WORDS[(t / 8) % 8], t.wrapping_mul(2654435761) & 0xffffff)
}

fn body_json(topics: usize, counter: i64, changed_every: usize) -> Vec<u8> {
    let configs = (0..topics)
        .map(|t| {
            let mut c = TopicConfig::new(name(t));
            c.read_queue_nums = 8;
            c.write_queue_nums = 8;
            c.perm = if changed_every > 0 && t % changed_every == 0 { 4 } else { 6 };
            c
        })
        .collect();
    let body = RegisterBrokerBody {
        data_version: DataVersion { counter, state_version: 0, timestamp: counter },
        topic_configs: configs,
        filter_server_list: Some(Vec::new()),
        topic_queue_mapping_infos: Vec::new(),
    };
    let mut out = Vec::new();
    body::encode_register_body_json(&mut out, &body);
    out
}

fn request(body: RegisterBrokerBody) -> RegisterBroker {
    RegisterBroker {
        cluster_name: "DefaultCluster".into(),
        broker_addr: "10.0.0.1:10911".into(),
        broker_name: "broker-a".into(),
        broker_id: 0,
        ha_server_addr: "10.0.0.1:10912".into(),
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

#[derive(Default, Clone, Copy)]
struct Stages {
    decode: Duration,
    apply: Duration,
    publish: Duration,
    drop: Duration,
}

impl Stages {
    fn min(self, o: Stages) -> Stages {
        Stages {
            decode: self.decode.min(o.decode),
            apply: self.apply.min(o.apply),
            publish: self.publish.min(o.publish),
            drop: self.drop.min(o.drop),
        }
    }

    fn show(&self, label: &str, bytes: usize) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let total = self.decode + self.apply + self.publish;
        println!(
            "{label:<22} {:>6.1} MB  decode (wall) {:>7.2} ms  apply (wall) {:>7.2} ms  publish {:>6.2} ms  (drop {:>6.2} ms)  = {:>7.2} ms",
            bytes as f64 / 1e6,
            ms(self.decode),
            ms(self.apply),
            ms(self.publish),
            ms(self.drop),
            ms(total)
        );
    }
}

fn register(
    table: &mut RouteTable,
    snapshot: &mut RouteSnapshot,
    json: &[u8],
    options: &Arc<RouteBuildOptions>,
) -> Stages {
    // Wall time: a big table is scanned by two threads, so this thread's CPU time is half.
    let started = std::time::Instant::now();
    let decoded = body::decode_register_body(json, 479, BodyEncoding::Json, usize::MAX).unwrap();
    let decode = started.elapsed();
    let mut req = Some(request(decoded));
    // Wall time too: a big first registration's index writes use two threads.
    let started = std::time::Instant::now();
    table.register_broker(req.take().unwrap(), ConnId(1), 0);
    let apply = started.elapsed();
    let (next, publish) = timed(|| snapshot.next(table, options, None));
    *snapshot = next;
    // What freeing the decoded body costs (inside `apply` above, where the table drops it).
    let again = body::decode_register_body(json, 479, BodyEncoding::Json, usize::MAX).unwrap();
    let (_, drop) = timed(|| std::mem::drop(again));
    Stages { decode, apply, publish, drop }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let topics: usize = args.next().map(|a| a.parse().expect("TOPICS")).unwrap_or(100_000);
    let runs: usize = args.next().map(|a| a.parse().expect("RUNS")).unwrap_or(5);
    let options = Arc::new(RouteBuildOptions::default());
    let limits = TableLimits { topics_max: 100_000_000, brokers_max: 10_000, broker_timeout_default_ms: 120_000 };
    let first = body_json(topics, 1, 0);
    let resends: Vec<Vec<u8>> = (0..2).map(|i| body_json(topics, 2 + i, 100 + i as usize)).collect();
    let mut best_first =
        Stages { decode: Duration::MAX, apply: Duration::MAX, publish: Duration::MAX, drop: Duration::MAX };
    let mut best_resend = best_first;
    for _ in 0..runs {
        let mut table = RouteTable::new(limits);
        let mut snapshot = RouteSnapshot::empty();
        best_first = best_first.min(register(&mut table, &mut snapshot, &first, &options));
        for json in &resends {
            best_resend = best_resend.min(register(&mut table, &mut snapshot, json, &options));
        }
    }
    best_first.show(&format!("first {topics}"), first.len());
    best_resend.show("re-send, 1% changed", resends[0].len());
}
