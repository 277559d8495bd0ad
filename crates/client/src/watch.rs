//! The route-watch client (Meridian extension 43701, served by meridian-server's
//! `request::watch`): names topics with the route versions it holds and blocks until one
//! differs. A stock NameServer refuses the code (Java 3, rocketmq-rust 16), reported as
//! [`WatchError::Unsupported`] so a caller can fall back to polling.

use meridian_protocol::codes;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
    /// The NameServer refused the watch (e.g. SYSTEM_BUSY at watchesPerShardMax).
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
/// # use meridian_client::watch::RouteWatcher;
/// # use std::time::Duration;
/// let mut watcher = RouteWatcher::connect("127.0.0.1:9876", ["TopicA", "TopicB"], Duration::from_secs(3))?;
/// loop {
///     for change in watcher.next_changes(Duration::from_secs(30))? {
///         println!("{} is now version {}: {:?}", change.topic, change.version, change.route);
///     }
/// }
/// # Ok::<(), meridian_client::watch::WatchError>(())
/// ```
/// The first call answers at once with every topic's current route (the watcher starts
/// holding version 0 for each).
pub struct RouteWatcher {
    conn: crate::conn::Conn,
    versions: BTreeMap<String, u64>,
}

impl From<crate::conn::ClientError> for WatchError {
    fn from(e: crate::conn::ClientError) -> WatchError {
        match e {
            crate::conn::ClientError::Io(text) => WatchError::Io(std::io::Error::other(text)),
            crate::conn::ClientError::Malformed(text) => WatchError::Malformed(text),
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
        let conn = crate::conn::Conn::open(addr, io_timeout)?.with_answer_bytes_max(WATCH_ANSWER_BYTES_MAX);
        Ok(RouteWatcher { conn, versions: topics.into_iter().map(|t| (t.into(), 0)).collect() })
    }

    /// The versions held now, by topic.
    pub fn versions(&self) -> &BTreeMap<String, u64> {
        &self.versions
    }

    /// Waits up to `hold` (capped by the server's watchHoldMsMax) for routes that differ
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
