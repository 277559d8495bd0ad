//! The one `Config`: embedded defaults, every limit with its unit, and start-up validation
//! of how the limits relate. Call sites get `&Config` or copied fields, never a global.
//!
//! Sources of values, later wins: embedded defaults, `-c FILE` (properties: `key=value`),
//! `--set key=value`, then the dedicated CLI flags (`--listen`, `--data-dir`, `--shards`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    /// Address every shard binds with SO_REUSEPORT. Java's NameServer listens on 0.0.0.0:9876.
    pub listen: SocketAddr,
    /// Where state lives (KV file, lock file). Java's default is `$HOME/namesrv`.
    pub data_dir: PathBuf,
    /// Executors, one per core by default, each pinned to its own CPU.
    pub shards: usize,
    /// Largest frame accepted (length prefix included), before any decompression. Java's
    /// decoder stops at 16 MiB; a broker with 100k topics sends ~21 MB, so ours is larger.
    pub frame_bytes_max: u32,
    /// Largest header accepted. Real headers are a few hundred bytes.
    pub header_bytes_max: u32,
    /// Largest registration body after zlib/deflate/zstd inflation; bombs stop here.
    pub body_decompressed_bytes_max: u64,
    /// Frame bytes a shard may hold in registrations being read, decoded or applied.
    pub registration_inflight_bytes_per_shard_max: u64,
    /// Open connections per shard; the next one is closed at accept with a log line.
    pub connections_per_shard_max: usize,
    /// Route updates waiting for the writer; senders wait when it is full.
    pub update_queue_len_max: usize,
    /// Most topics the route table holds; a registration that would exceed it is refused.
    pub topics_max: usize,
    /// Most broker addresses (live entries) the route table holds.
    pub brokers_max: usize,
    /// Expiry of a broker that sent no `heartbeatTimeoutMillis` (Java: 120 s constant).
    pub broker_timeout_default_ms: u64,
    /// How often the writer looks for silent brokers (the issue fixes 10 s; Java 5.x uses 5 s).
    pub scan_not_active_broker_interval_ms: u64,
    /// A connection with no complete request for this long is closed (Java:
    /// serverChannelMaxIdleTimeSeconds = 120 s). Closing a broker's connection unregisters it.
    pub connection_idle_timeout_ms: u64,
    /// A reply the peer does not read within this time closes the connection, so a slow
    /// reader never holds more than one unsent reply.
    pub reply_write_timeout_ms: u64,
    /// How often glommio lets other task queues run; bounds how long a long task delays lookups.
    pub preempt_timer_us: u64,
    /// io_uring registered buffer per shard (locked memory); glommio's default is 10 MiB,
    /// which would not fit an 8 MiB memlock limit.
    pub io_memory_bytes_per_shard: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:9876".parse().expect("literal address"),
            data_dir: default_data_dir(),
            shards: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            frame_bytes_max: (256 * MIB) as u32,
            header_bytes_max: 256 * 1024,
            body_decompressed_bytes_max: 512 * MIB,
            registration_inflight_bytes_per_shard_max: 512 * MIB,
            connections_per_shard_max: 16_384,
            update_queue_len_max: 4_096,
            topics_max: 5_000_000,
            brokers_max: 100_000,
            broker_timeout_default_ms: 120_000,
            scan_not_active_broker_interval_ms: 10_000,
            connection_idle_timeout_ms: 120_000,
            reply_write_timeout_ms: 30_000,
            preempt_timer_us: 500,
            io_memory_bytes_per_shard: 256 * 1024,
        }
    }
}

fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join("namesrv"),
        None => PathBuf::from("namesrv"),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e| ConfigError(format!("invalid value {value:?} for {key}: {e}")))
}

impl Config {
    /// Sets one key. Unknown keys are an error here; the properties loader turns them into
    /// warnings so Java keys in a shared file do not stop the server.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "listen" => self.listen = parse(key, value)?,
            "data_dir" => self.data_dir = PathBuf::from(value.trim()),
            "shards" => self.shards = parse(key, value)?,
            "frame_bytes_max" => self.frame_bytes_max = parse(key, value)?,
            "header_bytes_max" => self.header_bytes_max = parse(key, value)?,
            "body_decompressed_bytes_max" => self.body_decompressed_bytes_max = parse(key, value)?,
            "registration_inflight_bytes_per_shard_max" => {
                self.registration_inflight_bytes_per_shard_max = parse(key, value)?
            }
            "connections_per_shard_max" => self.connections_per_shard_max = parse(key, value)?,
            "update_queue_len_max" => self.update_queue_len_max = parse(key, value)?,
            "topics_max" => self.topics_max = parse(key, value)?,
            "brokers_max" => self.brokers_max = parse(key, value)?,
            "broker_timeout_default_ms" => self.broker_timeout_default_ms = parse(key, value)?,
            "scan_not_active_broker_interval_ms" => self.scan_not_active_broker_interval_ms = parse(key, value)?,
            "connection_idle_timeout_ms" => self.connection_idle_timeout_ms = parse(key, value)?,
            "reply_write_timeout_ms" => self.reply_write_timeout_ms = parse(key, value)?,
            "preempt_timer_us" => self.preempt_timer_us = parse(key, value)?,
            "io_memory_bytes_per_shard" => self.io_memory_bytes_per_shard = parse(key, value)?,
            _ => return Err(ConfigError(format!("unknown config key {key}"))),
        }
        Ok(())
    }

    /// Loads a properties file; returns the keys it did not know (the caller warns).
    pub fn load_properties(&mut self, text: &str) -> Result<Vec<String>, ConfigError> {
        let map = java_properties::read(text.as_bytes()).map_err(|e| ConfigError(format!("config file: {e}")))?;
        let mut keys: Vec<_> = map.into_iter().collect();
        keys.sort();
        let mut unknown = Vec::new();
        for (k, v) in keys {
            match self.set(&k, &v) {
                Err(ConfigError(msg)) if msg.starts_with("unknown config key") => unknown.push(k),
                other => other?,
            }
        }
        Ok(unknown)
    }

    /// Refuses configurations whose limits contradict each other, naming the keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.shards == 0 {
            return fail("shards must be at least 1".into());
        }
        if self.frame_bytes_max < 1024 || self.frame_bytes_max > i32::MAX as u32 {
            return fail(format!("frame_bytes_max {} must be within 1024..=2147483647", self.frame_bytes_max));
        }
        if self.header_bytes_max >= self.frame_bytes_max {
            return fail(format!(
                "header_bytes_max {} must be < frame_bytes_max {}",
                self.header_bytes_max, self.frame_bytes_max
            ));
        }
        if self.registration_inflight_bytes_per_shard_max < self.frame_bytes_max as u64 {
            return fail(format!(
                "registration_inflight_bytes_per_shard_max {} must be >= frame_bytes_max {} (one largest registration must fit)",
                self.registration_inflight_bytes_per_shard_max, self.frame_bytes_max
            ));
        }
        for (key, v) in [
            ("connections_per_shard_max", self.connections_per_shard_max as u64),
            ("update_queue_len_max", self.update_queue_len_max as u64),
            ("topics_max", self.topics_max as u64),
            ("brokers_max", self.brokers_max as u64),
            ("broker_timeout_default_ms", self.broker_timeout_default_ms),
            ("scan_not_active_broker_interval_ms", self.scan_not_active_broker_interval_ms),
            ("connection_idle_timeout_ms", self.connection_idle_timeout_ms),
            ("reply_write_timeout_ms", self.reply_write_timeout_ms),
            ("preempt_timer_us", self.preempt_timer_us),
            ("body_decompressed_bytes_max", self.body_decompressed_bytes_max),
        ] {
            if v == 0 {
                return fail(format!("{key} must be > 0"));
            }
        }
        Ok(())
    }

    pub fn scan_interval(&self) -> Duration {
        Duration::from_millis(self.scan_not_active_broker_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn properties_set_known_keys_and_report_unknown_ones() {
        let mut c = Config::default();
        let unknown = c.load_properties("frame_bytes_max=2048\nlistenPort=9877\n# comment\nshards = 3\n").unwrap();
        assert_eq!(c.frame_bytes_max, 2048);
        assert_eq!(c.shards, 3);
        assert_eq!(unknown, vec!["listenPort".to_string()]);
        assert!(c.load_properties("shards=many").is_err());
    }

    #[test]
    fn contradictory_limits_are_refused_naming_keys() {
        let c = Config { registration_inflight_bytes_per_shard_max: 1024, ..Config::default() };
        let e = c.validate().unwrap_err();
        assert!(e.0.contains("registration_inflight_bytes_per_shard_max"), "{e}");
        let mut c = Config::default();
        c.header_bytes_max = c.frame_bytes_max;
        assert!(c.validate().unwrap_err().0.contains("header_bytes_max"));
        let c = Config { shards: 0, ..Config::default() };
        assert!(c.validate().is_err());
    }
}
