//! Watching topics' routes with Meridian's route watch (request code 43701) instead of
//! polling: prints one line per route change, as soon as the NameServer publishes it.
//!
//! `cargo run --release --example watch_routes -- 127.0.0.1:9876 TopicA TopicB [--seconds N]`
//!
//! Runs until Ctrl-C, or for N seconds. Exit 3 when the NameServer does not serve the watch
//! (a stock RocketMQ NameServer): a client then polls GET_ROUTEINFO_BY_TOPIC every 30 s, as
//! stock clients do.

use meridian_client::watch::{RouteWatcher, WatchError};
use std::time::{Duration, Instant};

/// Longest hold asked for; the server caps it at its `watchHoldMsMax`.
const HOLD: Duration = Duration::from_secs(30);
/// Socket timeouts beyond the hold (an answer later than hold + this is a dead server).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// `broker-a(r4/w4 perm 6), broker-b(…)` from a route JSON, or `no route`.
fn describe(route: Option<&serde_json::Value>) -> String {
    let Some(route) = route else { return "no route (TOPIC_NOT_EXIST)".to_string() };
    let queues = route["queueDatas"].as_array().cloned().unwrap_or_default();
    let parts: Vec<String> = queues
        .iter()
        .map(|q| {
            format!(
                "{}(r{}/w{} perm {})",
                q["brokerName"].as_str().unwrap_or("?"),
                q["readQueueNums"],
                q["writeQueueNums"],
                q["perm"]
            )
        })
        .collect();
    parts.join(", ")
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut until: Option<Instant> = None;
    if let Some(i) = args.iter().position(|a| a == "--seconds") {
        let seconds: u64 = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            eprintln!("--seconds needs a number");
            std::process::exit(2)
        });
        until = Some(Instant::now() + Duration::from_secs(seconds));
        args.drain(i..i + 2);
    }
    if args.len() < 2 {
        eprintln!("usage: watch_routes NAMESRV_ADDR TOPIC [TOPIC...] [--seconds N]");
        std::process::exit(2);
    }
    let addr = args.remove(0);
    let mut watcher = match RouteWatcher::connect(&addr, args, IO_TIMEOUT + HOLD) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{addr}: {e}");
            std::process::exit(1)
        }
    };
    while until.is_none_or(|t| Instant::now() < t) {
        let hold = until.map_or(HOLD, |t| t.saturating_duration_since(Instant::now()).min(HOLD));
        match watcher.next_changes(hold) {
            // The first answer brings every topic's current route (versions start at 0).
            Ok(changes) => {
                for change in changes {
                    println!("{} version {}: {}", change.topic, change.version, describe(change.route.as_ref()));
                }
            }
            Err(e @ WatchError::Unsupported { .. }) => {
                eprintln!("{addr}: {e}");
                std::process::exit(3)
            }
            Err(e) => {
                // A real client reconnects (to another NameServer of the list) and watches again.
                eprintln!("{addr}: {e}");
                std::process::exit(1)
            }
        }
    }
}
