//! Route watch: a Meridian extension (request code `MERIDIAN_WATCH_ROUTES`, 43701) by which a
//! client names topics with the route versions it holds and is answered as soon as any of
//! them differs — at once if one already does, else when a published snapshot changes one
//! (registration, removal by close or expiry, admin change), else empty after the hold.
//! Stock brokers and clients never send it; stock NameServers refuse it (Java 3, rocketmq-rust
//! 16), which `RouteWatcher` reports as `WatchError::Unsupported` so a client can fall back to
//! polling (`examples/watch_routes.rs` shows both).
//!
//! Wire form. Request: ext `holdMs` (optional; default and cap `watch_hold_ms_max`; 0 =
//! answer now), body a JSON object `{"TopicA": 7, "TopicB": 0}` (0 = "I hold no route").
//! Answer: SUCCESS, body `{"generation":G,"changed":{"TopicA":{"version":9,"route":{…}},
//! "TopicB":{"version":0,"route":null}}}` — `route` is exactly what GET_ROUTEINFO_BY_TOPIC
//! returns to a 5.x client (standard JSON), `null` when the topic has no route. A route's version is the snapshot generation that built it.
//!
//! Server side: served from the shard's snapshot, no locks; a held watch waits on the
//! shard's "snapshot published" event. A held watch occupies its connection (answers are
//! in order), so clients watch on a connection of their own.

use crate::protocol::answer::Answer;
use crate::protocol::body::JsonFlavour;
use crate::protocol::codes;
use crate::protocol::header::{self, Header};
use crate::route::snapshot::RouteSnapshot;
use crate::shard::ShardState;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Holds a count of held watches on the shard; released on drop (also when the
/// connection ends while the watch is held).
struct Held<'s>(&'s ShardState);

impl Held<'_> {
    fn start(shard: &ShardState) -> Held<'_> {
        shard.watches_held.set(shard.watches_held.get() + 1);
        shard.metrics.watches_held(shard.watches_held.get());
        Held(shard)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.watches_held.set(self.0.watches_held.get() - 1);
        self.0.metrics.watches_held(self.0.watches_held.get());
    }
}

pub async fn watch_routes(shard: &ShardState, header: &Header, body: &[u8]) -> Answer {
    let config = &shard.config;
    let watched: BTreeMap<String, u64> = match serde_json::from_slice(body) {
        Ok(w) => w,
        Err(e) => {
            return Answer::error(codes::SYSTEM_ERROR, format!("watch body must be {{\"topic\": version, ...}}: {e}"))
        }
    };
    if watched.len() > config.watch_topics_per_request_max {
        return Answer::error(
            codes::SYSTEM_ERROR,
            format!(
                "{} topics in one watch > watch_topics_per_request_max {}",
                watched.len(),
                config.watch_topics_per_request_max
            ),
        );
    }
    let hold_ms = match header.ext("holdMs").map(|v| v.trim().parse::<u64>()) {
        None => config.watch_hold_ms_max,
        Some(Ok(ms)) => ms.min(config.watch_hold_ms_max),
        Some(Err(_)) => return Answer::error(codes::SYSTEM_ERROR, "holdMs must be a number of milliseconds"),
    };
    // Watchers are new clients: always the standard JSON form, so the answer is valid JSON.
    let flavour = JsonFlavour::Standard;

    if shard.watches_held.get() >= config.watches_per_shard_max {
        return Answer::error(
            codes::SYSTEM_BUSY,
            format!("watches_per_shard_max {} watches already held; poll instead", config.watches_per_shard_max),
        );
    }
    let _held = Held::start(shard);
    let deadline = Instant::now() + Duration::from_millis(hold_ms);
    loop {
        // Listening before looking: a publish in between still wakes us.
        let published = shard.snapshot_published.listen();
        let answer = shard.with_snapshot(|s| changes(s, &watched, flavour));
        let now = Instant::now();
        let stopping = shard.stopping.load(std::sync::atomic::Ordering::Acquire);
        match answer {
            Ok(Some(body)) => return Answer::ok(body),
            Err(not_ready) => return not_ready,
            Ok(None) if now >= deadline || stopping => {
                return Answer::ok(shard.with_snapshot(|s| empty_answer(s.generation)))
            }
            Ok(None) => {}
        }
        // A held watch costs nothing until a publish, the stop (the shard notifies the same
        // event when it stops accepting) or its deadline.
        let wait = deadline.saturating_duration_since(now);
        futures_lite::future::or(published, glommio::timer::sleep(wait)).await;
    }
}

fn empty_answer(generation: u64) -> Bytes {
    Bytes::from(format!("{{\"generation\":{generation},\"changed\":{{}}}}"))
}

/// The answer body if any watched topic's version differs from the client's; `Err` when the
/// NameServer is not serving routes yet (needWaitForService), as lookups answer.
fn changes(
    snapshot: &RouteSnapshot,
    watched: &BTreeMap<String, u64>,
    flavour: JsonFlavour,
) -> Result<Option<Bytes>, Answer> {
    if snapshot.not_ready_until.is_some_and(|until| Instant::now() < until) {
        return Err(Answer::error(codes::SYSTEM_ERROR, "name server not ready"));
    }
    let mut out: Option<Vec<u8>> = None;
    for (topic, held) in watched {
        let route = snapshot.route(topic);
        let version = route.map_or(0, |r| r.version);
        if version == *held {
            continue;
        }
        let out = out.get_or_insert_with(|| {
            let mut o = Vec::with_capacity(1024);
            o.extend_from_slice(format!("{{\"generation\":{},\"changed\":{{", snapshot.generation).as_bytes());
            o
        });
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        header::write_json_str(out, topic);
        out.extend_from_slice(format!(":{{\"version\":{version},\"route\":").as_bytes());
        match route {
            Some(r) => out.extend_from_slice(r.encoded(flavour)),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    Ok(out.map(|mut o| {
        o.extend_from_slice(b"}}");
        Bytes::from(o)
    }))
}

// ---------------------------------------------------------------------------------------
// Client API
// ---------------------------------------------------------------------------------------

/// One topic whose route changed: its new version and route document (`None`: the topic has
/// no route any more, i.e. lookups answer TOPIC_NOT_EXIST).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteChange {
    pub topic: String,
    pub version: u64,
    pub route: Option<serde_json::Value>,
}

#[derive(Debug)]
pub enum WatchError {
    Io(std::io::Error),
    /// The NameServer does not serve the watch request (a stock RocketMQ NameServer: Java
    /// answers 3 REQUEST_CODE_NOT_SUPPORTED, rocketmq-rust 16 NO_PERMISSION for any code it
    /// does not know): poll instead.
    Unsupported {
        code: i32,
        remark: Option<String>,
    },
    /// The NameServer refused the watch (e.g. SYSTEM_BUSY at watches_per_shard_max).
    Refused {
        code: i32,
        remark: Option<String>,
    },
    Malformed(String),
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchError::Io(e) => write!(f, "watch connection: {e}"),
            WatchError::Unsupported { code, remark } => write!(
                f,
                "the NameServer does not support route watch (code {code} {}); poll instead",
                remark.as_deref().unwrap_or("")
            ),
            WatchError::Refused { code, remark } => {
                write!(f, "watch refused: code {code} {}", remark.as_deref().unwrap_or(""))
            }
            WatchError::Malformed(why) => write!(f, "malformed watch answer: {why}"),
        }
    }
}

impl std::error::Error for WatchError {}

/// Largest watch answer accepted (many topics' routes).
const WATCH_ANSWER_BYTES_MAX: u32 = 256 * 1024 * 1024;

/// A blocking route-watch client on a connection of its own:
///
/// ```no_run
/// # use meridian::watch::RouteWatcher;
/// # use std::time::Duration;
/// let mut watcher = RouteWatcher::connect("127.0.0.1:9876", ["TopicA", "TopicB"], Duration::from_secs(3))?;
/// loop {
///     for change in watcher.next_changes(Duration::from_secs(30))? {
///         println!("{} is now version {}: {:?}", change.topic, change.version, change.route);
///     }
/// }
/// # Ok::<(), meridian::watch::WatchError>(())
/// ```
/// The first call answers at once with every topic's current route (the watcher starts
/// holding version 0 for each).
pub struct RouteWatcher {
    conn: crate::admin_client::Conn,
    versions: BTreeMap<String, u64>,
}

impl From<crate::admin_client::ClientError> for WatchError {
    fn from(e: crate::admin_client::ClientError) -> WatchError {
        match e {
            crate::admin_client::ClientError::Io(text) => WatchError::Io(std::io::Error::other(text)),
            crate::admin_client::ClientError::Malformed(text) => WatchError::Malformed(text),
        }
    }
}

impl RouteWatcher {
    /// Connects within `io_timeout`, which also bounds sending each watch and, beyond its
    /// hold, waiting for the answer.
    pub fn connect<S: Into<String>>(
        addr: &str,
        topics: impl IntoIterator<Item = S>,
        io_timeout: Duration,
    ) -> Result<RouteWatcher, WatchError> {
        let conn = crate::admin_client::Conn::open(addr, io_timeout)?.with_answer_bytes_max(WATCH_ANSWER_BYTES_MAX);
        Ok(RouteWatcher { conn, versions: topics.into_iter().map(|t| (t.into(), 0)).collect() })
    }

    /// The versions held now, by topic.
    pub fn versions(&self) -> &BTreeMap<String, u64> {
        &self.versions
    }

    /// Waits up to `hold` (capped by the server's watch_hold_ms_max) for routes that differ
    /// from the versions held; returns them (empty when the hold passed without a change)
    /// and holds their new versions from then on.
    pub fn next_changes(&mut self, hold: Duration) -> Result<Vec<RouteChange>, WatchError> {
        let body = serde_json::to_vec(&self.versions).map_err(|e| WatchError::Malformed(e.to_string()))?;
        let hold_ms = hold.as_millis().to_string();
        // The answer may take the whole hold.
        let deadline = Instant::now() + hold + self.conn.timeout();
        let answer = self.conn.call_by(codes::MERIDIAN_WATCH_ROUTES, &[("holdMs", &hold_ms)], &body, deadline)?;
        match answer.header.code {
            codes::SUCCESS => self.apply(&answer.body),
            // Meridian answers neither to a watch: these are a stock NameServer's refusal
            // of a code it does not know.
            code @ (codes::REQUEST_CODE_NOT_SUPPORTED | codes::NO_PERMISSION) => {
                Err(WatchError::Unsupported { code, remark: answer.header.remark })
            }
            code => Err(WatchError::Refused { code, remark: answer.header.remark }),
        }
    }

    fn apply(&mut self, body: &[u8]) -> Result<Vec<RouteChange>, WatchError> {
        #[derive(serde::Deserialize)]
        struct Changed {
            version: u64,
            route: Option<serde_json::Value>,
        }
        #[derive(serde::Deserialize)]
        struct WatchAnswer {
            changed: BTreeMap<String, Changed>,
        }
        let answer: WatchAnswer = serde_json::from_slice(body).map_err(|e| WatchError::Malformed(e.to_string()))?;
        let mut out = Vec::with_capacity(answer.changed.len());
        for (topic, c) in answer.changed {
            if let Some(held) = self.versions.get_mut(&topic) {
                *held = c.version;
            }
            out.push(RouteChange { topic, version: c.version, route: c.route });
        }
        Ok(out)
    }
}
