//! The one `Config`: embedded defaults, every limit with its unit, and start-up validation
//! of how the limits relate. Call sites get `&Config` or copied fields, never a global.
//!
//! Sources of values, later wins: embedded defaults, `-c FILE` (properties: `key=value`),
//! `--set key=value`, then the dedicated CLI flags (`--listen`, `--data-dir`, `--shards`).
//! Keys are Meridian's own (snake_case, unit last) or Java's NamesrvConfig/NettyServerConfig
//! names (camelCase): Java keys with a Meridian meaning set that field (`listenPort`,
//! `scanNotActiveBrokerInterval`, ...), the NameServer switches live in `NamesrvConfig`, and
//! Netty/JVM tuning keys are validated, kept and echoed by GET_NAMESRV_CONFIG, without effect.

use crate::auth::{self, AuthConfig};
use crate::error::ConfigError;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
/// Default metrics port (loopback): next to the RocketMQ 9876, clear of the broker's 109xx.
pub const METRICS_PORT_DEFAULT: u16 = 9880;

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
    /// Memory the registrations being decoded or applied hold, on all shards together
    /// (wire bytes, inflated bytes, decoded bodies); a registration that cannot fit waits a
    /// few seconds for room, then is refused naming this key.
    pub registration_memory_bytes_max: u64,
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
    /// A broker's registration round (one frame, or the chunks of a split registration)
    /// ends after this long without a chunk from it, if its remainder chunk did not end it.
    pub registration_round_quiet_ms: u64,
    /// A connection with no complete request for this long is closed (Java:
    /// serverChannelMaxIdleTimeSeconds = 120 s). Closing a broker's connection unregisters it.
    pub connection_idle_timeout_ms: u64,
    /// A reply the peer does not read within this time closes the connection, so a slow
    /// reader never holds more than one unsent reply.
    pub reply_write_timeout_ms: u64,
    /// On SIGTERM/SIGINT: time given to requests already being handled to be answered
    /// (new connections are refused at once); 0 exits at once.
    pub shutdown_drain_ms: u64,
    /// On SIGTERM/SIGINT, before the drain: for `shutdownGoAwayWindowMs` (or until every
    /// connection has closed) answer requests from clients newer than 5.3.1 with GO_AWAY so
    /// they move to another NameServer; older clients are still served. Java's
    /// `enableShutdownGracefully` / `shutdownWaitTimeSeconds`.
    pub shutdown_go_away: bool,
    pub shutdown_go_away_window_ms: u64,
    /// Warm restart (src/route/warm.rs, off by default): save the route table to
    /// `warmRestartPath` (default `<dataDir>/routes.warm`) every
    /// `warmRestartSaveIntervalMs` when it changed and at a graceful stop, and at start
    /// serve a file younger than `warmRestartMaxAgeMs` provisionally until brokers
    /// re-register (or their heartbeat timeout passes).
    pub warm_restart: bool,
    pub warm_restart_save_interval_ms: u64,
    pub warm_restart_max_age_ms: u64,
    pub warm_restart_path: Option<PathBuf>,
    /// Route watch extension (src/watch.rs): the longest a watch is held without a change,
    /// watches held at once per shard, and topics one watch may name.
    pub watch_hold_ms_max: u64,
    pub watches_per_shard_max: usize,
    pub watch_topics_per_request_max: usize,
    /// Peer watch (src/route_diff/peer.rs): other NameServers (NAMESRV_ADDR form) whose
    /// routes a background thread compares with this server's every
    /// `peerCheckIntervalMs`; empty = off. This server's own address may be listed.
    pub peer_namesrv_addrs: Vec<String>,
    pub peer_check_interval_ms: u64,
    /// How often glommio lets other task queues run. Long work never runs on the executor
    /// (large decodes go to the blocking thread, small ones one at a time), so this is a
    /// backstop; small values make glommio 0.9's lost-wake-up park frequent under CPU
    /// contention (see `server::spawn_waker`), so the default is glommio's own 100 ms.
    pub preempt_timer_us: u64,
    /// Whether the heap may use transparent huge pages (after the shards registered their
    /// io_uring buffers, which always happens with THP off). Off by default: mimalloc asks
    /// for huge pages on its arenas, and with the common `defrag=madvise` a fault there may
    /// compact memory synchronously. At 10M entries that stalled lookups for 2.5-10 ms
    /// (quiet lookup p99 2.1-2.5 ms, 0.6-1.0 ms with THP off) and made a fresh 1M-topic
    /// registration 2.1 s instead of 0.9 s on a host that had run for hours.
    pub transparent_huge_pages: bool,
    /// How often the waker thread pokes shards that have connections: the bound on how long
    /// glommio 0.9's lost-wake-up park can hold a request (see `server::spawn_waker`).
    pub executor_poke_interval_us: u64,
    /// io_uring registered buffer per shard (locked memory); glommio's default is 10 MiB,
    /// which would not fit an 8 MiB memlock limit.
    pub io_memory_bytes_per_shard: usize,
    /// Pending connections per listener (Java key `serverSocketBacklog`).
    pub listen_backlog_len: u32,
    /// HTTP endpoint for `/metrics` (Prometheus), `/healthz` and `/readyz`; `None` (`off`)
    /// serves none. Loopback by default: metrics are not for the world to read.
    pub metrics_listen: Option<SocketAddr>,
    /// Log filter: a tracing `EnvFilter` directive string (`info`, `info,meridian_server::route=debug`).
    /// `RUST_LOG`, when set and not empty, overrides it. Read at start only.
    pub log_level: String,
    /// Log line format: `text` (human-readable) or `json` (one JSON object per line).
    pub log_format: LogFormat,
    /// The Java NameServer's own switches and paths.
    pub namesrv: NamesrvConfig,
    /// Security (README "Security"): the keys UPDATE_NAMESRV_CONFIG may change
    /// (`remoteConfigUpdateKeys`), the KV config's bounds, and opt-in access control.
    pub remote_config_update_keys: Vec<String>,
    pub kv_entries_max: usize,
    pub kv_value_bytes_max: usize,
    pub kv_bytes_max: u64,
    pub auth: AuthConfig,
}

/// `remoteConfigUpdateKeys`' default: the runtime switches Java 5.3.3's NamesrvConfig has as
/// plain booleans and ints (no path, address, listener or limit).
pub const REMOTE_CONFIG_UPDATE_KEYS_DEFAULT: &str = "clusterTest;deleteTopicWithBrokerRegistration;\
enableAllTopicList;enableTopicList;needWaitForService;notifyMinBrokerIdChanged;orderMessageEnable;\
returnOrderTopicConfigToBroker;supportActingMaster;waitSecondsForService";

/// Keys UPDATE_NAMESRV_CONFIG never changes, whatever `remoteConfigUpdateKeys` says (listing
/// one there is a start error): the list itself, paths, addresses and access control.
const REMOTE_UPDATE_NEVER: &[&str] = &[
    "remoteConfigUpdateKeys",
    "configBlackList",
    "configStorePath",
    "kvConfigPath",
    "rocketmqHome",
    "dataDir",
    "warmRestartPath",
    "listen",
    "bindAddress",
    "listenPort",
    "metricsListen",
    "peerNamesrvAddrs",
];

/// Java's `NamesrvConfig` switches (Java's NamesrvConfig), the part UPDATE_NAMESRV_CONFIG may
/// change at run time, plus the Netty/JVM keys Meridian keeps only to echo them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesrvConfig {
    /// `rocketmqHome`: Java requires it; Meridian only reports it.
    pub rocketmq_home: String,
    /// `kvConfigPath`; `None` = `<dataDir>/kvConfig.json` (Java: `~/namesrv/kvConfig.json`).
    pub kv_config_path: Option<PathBuf>,
    /// `configStorePath`: the file UPDATE_NAMESRV_CONFIG rewrites; `None` =
    /// `<dataDir>/namesrv.properties`, or the `-c` file when one was given.
    pub config_store_path: Option<PathBuf>,
    /// `configBlackList`: `;`-separated keys UPDATE_NAMESRV_CONFIG must refuse.
    pub config_black_list: String,
    pub order_message_enable: bool,
    pub return_order_topic_config_to_broker: bool,
    pub enable_all_topic_list: bool,
    pub enable_topic_list: bool,
    pub notify_min_broker_id_changed: bool,
    pub need_wait_for_service: bool,
    pub wait_seconds_for_service: u64,
    pub delete_topic_with_broker_registration: bool,
    pub support_acting_master: bool,
    /// Netty/JVM keys (thread pools, buffers, ...) that have no meaning here: validated by
    /// type, kept, and echoed, so admin tools see the same key set as from Java.
    pub echo: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JavaKind {
    Bool,
    Int,
    Text,
}

/// Java keys kept only for GET_NAMESRV_CONFIG, with Java's types and defaults.
const JAVA_ECHO_KEYS: &[(&str, JavaKind, &str)] = &[
    ("clientRequestThreadPoolNums", JavaKind::Int, "8"),
    ("clientRequestThreadPoolQueueCapacity", JavaKind::Int, "50000"),
    ("clusterTest", JavaKind::Bool, "false"),
    ("defaultThreadPoolNums", JavaKind::Int, "16"),
    ("defaultThreadPoolQueueCapacity", JavaKind::Int, "10000"),
    ("enableControllerInNamesrv", JavaKind::Bool, "false"),
    ("productEnvName", JavaKind::Text, "center"),
    ("serverAsyncSemaphoreValue", JavaKind::Int, "64"),
    ("serverCallbackExecutorThreads", JavaKind::Int, "0"),
    ("serverNettyWorkerGroupEnable", JavaKind::Bool, "true"),
    ("serverOnewaySemaphoreValue", JavaKind::Int, "256"),
    ("serverPooledByteBufAllocatorEnable", JavaKind::Bool, "true"),
    ("serverSelectorThreads", JavaKind::Int, "3"),
    ("serverSocketRcvBufSize", JavaKind::Int, "0"),
    ("serverSocketSndBufSize", JavaKind::Int, "0"),
    ("serverWorkerThreads", JavaKind::Int, "8"),
    ("unRegisterBrokerQueueCapacity", JavaKind::Int, "3000"),
    ("useEpollNativeSelector", JavaKind::Bool, "false"),
    ("writeBufferHighWaterMark", JavaKind::Int, "0"),
    ("writeBufferLowWaterMark", JavaKind::Int, "0"),
];

/// Keys UPDATE_NAMESRV_CONFIG always refuses, whatever `configBlackList` says (Java adds
/// `rocketmqHome` to the configured list).
pub const CONFIG_BLACK_LIST_DEFAULT: &str = "configBlackList;configStorePath;kvConfigPath";

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            rocketmq_home: std::env::var("ROCKETMQ_HOME").unwrap_or_default(),
            kv_config_path: None,
            config_store_path: None,
            config_black_list: CONFIG_BLACK_LIST_DEFAULT.to_string(),
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            enable_all_topic_list: true,
            enable_topic_list: true,
            notify_min_broker_id_changed: false,
            need_wait_for_service: false,
            wait_seconds_for_service: 45,
            delete_topic_with_broker_registration: false,
            support_acting_master: false,
            echo: JAVA_ECHO_KEYS.iter().map(|(k, _, v)| (*k, v.to_string())).collect(),
        }
    }
}

/// Java's `Boolean.parseBoolean` would take anything; a typo in a config file should not
/// silently become `false`, so only `true`/`false` (any case) are accepted.
/// The camelCase spelling of a key Meridian once spelled in snake_case (`frame_bytes_max`
/// -> `frameBytesMax`), if that spelling is one of today's keys.
fn renamed_key(key: &str) -> Option<String> {
    if !key.contains('_') || key.starts_with('_') || key.ends_with('_') {
        return None;
    }
    let mut now = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            now.extend(c.to_uppercase());
            upper = false;
        } else {
            now.push(c);
        }
    }
    let known = Config::default().properties().into_iter().any(|(k, _)| k == now);
    known.then_some(now)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

impl NamesrvConfig {
    /// Sets a NamesrvConfig key; `Ok(false)` when the key is not one of them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let v = value.trim();
        match key {
            "rocketmqHome" => self.rocketmq_home = v.to_string(),
            "kvConfigPath" => self.kv_config_path = Some(PathBuf::from(v)),
            "configStorePath" => self.config_store_path = Some(PathBuf::from(v)),
            "configBlackList" => self.config_black_list = v.to_string(),
            "orderMessageEnable" => self.order_message_enable = parse_bool(key, v)?,
            "returnOrderTopicConfigToBroker" => self.return_order_topic_config_to_broker = parse_bool(key, v)?,
            "enableAllTopicList" => self.enable_all_topic_list = parse_bool(key, v)?,
            "enableTopicList" => self.enable_topic_list = parse_bool(key, v)?,
            "notifyMinBrokerIdChanged" => self.notify_min_broker_id_changed = parse_bool(key, v)?,
            "needWaitForService" => self.need_wait_for_service = parse_bool(key, v)?,
            "waitSecondsForService" => self.wait_seconds_for_service = parse(key, v)?,
            "deleteTopicWithBrokerRegistration" => self.delete_topic_with_broker_registration = parse_bool(key, v)?,
            "supportActingMaster" => self.support_acting_master = parse_bool(key, v)?,
            _ => {
                let Some((name, kind, _)) = JAVA_ECHO_KEYS.iter().find(|(k, _, _)| *k == key) else {
                    return Ok(false);
                };
                match kind {
                    JavaKind::Bool => {
                        parse_bool(key, v)?;
                    }
                    JavaKind::Int => {
                        parse::<i32>(key, v)?;
                    }
                    JavaKind::Text => {}
                }
                self.echo.insert(name, v.to_string());
            }
        }
        Ok(true)
    }

    /// Whether UPDATE_NAMESRV_CONFIG must refuse `key` (Java's NamesrvConfig.configBlackList).
    pub fn is_black_listed(&self, key: &str) -> bool {
        key == "rocketmqHome" || self.config_black_list.split(';').any(|k| k.trim() == key)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "0.0.0.0:9876".parse().expect("literal address"),
            data_dir: default_data_dir(),
            // available_parallelism honours the affinity mask (taskset, cpusets).
            shards: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            frame_bytes_max: (256 * MIB) as u32,
            header_bytes_max: 256 * 1024,
            body_decompressed_bytes_max: 512 * MIB,
            registration_inflight_bytes_per_shard_max: 512 * MIB,
            // A registration is charged twice its wire bytes up front: 2 x frameBytesMax, so
            // the largest frame (a 1M-topic JSON body is ~200 MB) fits on its own, while the
            // whole process never holds more than this for registrations, whatever its shard
            // count: safe on a 2 GiB host.
            registration_memory_bytes_max: 512 * MIB,
            connections_per_shard_max: 16_384,
            update_queue_len_max: 4_096,
            topics_max: 5_000_000,
            brokers_max: 100_000,
            broker_timeout_default_ms: 120_000,
            scan_not_active_broker_interval_ms: 10_000,
            registration_round_quiet_ms: 2_000,
            connection_idle_timeout_ms: 120_000,
            reply_write_timeout_ms: 30_000,
            shutdown_drain_ms: 5_000,
            shutdown_go_away: false,
            shutdown_go_away_window_ms: 30_000,
            warm_restart: false,
            warm_restart_save_interval_ms: 10_000,
            warm_restart_max_age_ms: 300_000,
            warm_restart_path: None,
            watch_hold_ms_max: 60_000,
            watches_per_shard_max: 10_000,
            watch_topics_per_request_max: 10_000,
            peer_namesrv_addrs: Vec::new(),
            peer_check_interval_ms: 30_000,
            preempt_timer_us: 100_000,
            transparent_huge_pages: false,
            executor_poke_interval_us: 20_000,
            io_memory_bytes_per_shard: 256 * 1024,
            listen_backlog_len: 1024,
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], METRICS_PORT_DEFAULT))),
            log_level: LOG_LEVEL_DEFAULT.to_string(),
            log_format: LogFormat::Text,
            namesrv: NamesrvConfig::default(),
            remote_config_update_keys: split_keys(REMOTE_CONFIG_UPDATE_KEYS_DEFAULT),
            kv_entries_max: 10_000,
            kv_value_bytes_max: 64 * 1024,
            kv_bytes_max: 16 * MIB,
            auth: AuthConfig::default(),
        }
    }
}

fn is_never_remote(key: &str) -> bool {
    REMOTE_UPDATE_NEVER.contains(&key) || auth::KEYS.contains(&key)
}

/// A `;`- or `,`-separated key list, blanks dropped.
fn split_keys(value: &str) -> Vec<String> {
    value.split([';', ',']).map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect()
}

fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join("namesrv"),
        None => PathBuf::from("namesrv"),
    }
}

/// `logLevel`'s default: what the server always logged without RUST_LOG.
pub const LOG_LEVEL_DEFAULT: &str = "info";

/// How log lines are written (`logFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIMESTAMP LEVEL target: message key=value ...`
    Text,
    /// One JSON object per line: timestamp, level, target, fields (message included).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("invalid value {s:?}: expected text or json")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Refuses a filter the log subscriber could not use (`key` names where it came from).
pub fn check_log_filter(key: &str, directives: &str) -> Result<tracing_subscriber::EnvFilter, ConfigError> {
    let invalid = |why: String| {
        invalid(key, directives, format!("{why} (expected e.g. info or info,meridian_server::route=debug)"))
    };
    if directives.trim().is_empty() {
        return Err(invalid("empty filter".into()));
    }
    tracing_subscriber::EnvFilter::builder().parse(directives).map_err(|e| invalid(e.to_string()))
}

fn invalid(key: &str, value: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: value.to_string(), why: why.to_string() }
}

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e| invalid(key, value, e))
}

impl Config {
    /// Sets one key. Unknown keys are an error here; the properties loader turns them into
    /// warnings so Java keys in a shared file do not stop the server.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "listen" => self.listen = parse(key, value)?,
            "metricsListen" => {
                self.metrics_listen = match value.trim() {
                    "" | "off" => None,
                    v => Some(parse(key, v)?),
                }
            }
            "dataDir" => self.data_dir = PathBuf::from(value.trim()),
            "logLevel" => {
                let directives = value.trim();
                check_log_filter(key, directives)?;
                self.log_level = directives.to_string();
            }
            "logFormat" => {
                self.log_format =
                    value.parse().map_err(|why: String| ConfigError::InvalidFor { key: key.to_string(), why })?
            }
            "shards" => self.shards = parse(key, value)?,
            "frameBytesMax" => self.frame_bytes_max = parse(key, value)?,
            "headerBytesMax" => self.header_bytes_max = parse(key, value)?,
            "bodyDecompressedBytesMax" => self.body_decompressed_bytes_max = parse(key, value)?,
            "registrationInflightBytesPerShardMax" => {
                self.registration_inflight_bytes_per_shard_max = parse(key, value)?
            }
            "registrationMemoryBytesMax" => self.registration_memory_bytes_max = parse(key, value)?,
            "connectionsPerShardMax" => self.connections_per_shard_max = parse(key, value)?,
            "updateQueueLenMax" => self.update_queue_len_max = parse(key, value)?,
            "topicsMax" => self.topics_max = parse(key, value)?,
            "brokersMax" => self.brokers_max = parse(key, value)?,
            "brokerTimeoutDefaultMs" => self.broker_timeout_default_ms = parse(key, value)?,
            "scanNotActiveBrokerIntervalMs" => self.scan_not_active_broker_interval_ms = parse(key, value)?,
            "registrationRoundQuietMs" => self.registration_round_quiet_ms = parse(key, value)?,
            "connectionIdleTimeoutMs" => self.connection_idle_timeout_ms = parse(key, value)?,
            "replyWriteTimeoutMs" => self.reply_write_timeout_ms = parse(key, value)?,
            "shutdownDrainMs" => self.shutdown_drain_ms = parse(key, value)?,
            "shutdownGoAway" => self.shutdown_go_away = parse_bool(key, value)?,
            "shutdownGoAwayWindowMs" => self.shutdown_go_away_window_ms = parse(key, value)?,
            "warmRestart" => self.warm_restart = parse_bool(key, value)?,
            "warmRestartSaveIntervalMs" => self.warm_restart_save_interval_ms = parse(key, value)?,
            "warmRestartMaxAgeMs" => self.warm_restart_max_age_ms = parse(key, value)?,
            "warmRestartPath" => {
                self.warm_restart_path = Some(value.trim()).filter(|v| !v.is_empty()).map(PathBuf::from)
            }
            "watchHoldMsMax" => self.watch_hold_ms_max = parse(key, value)?,
            "watchesPerShardMax" => self.watches_per_shard_max = parse(key, value)?,
            "watchTopicsPerRequestMax" => self.watch_topics_per_request_max = parse(key, value)?,
            "peerNamesrvAddrs" => {
                self.peer_namesrv_addrs = match value.trim() {
                    "" => Vec::new(),
                    v => meridian_client::parse_namesrv_addrs(v).map_err(|e| invalid(key, value, e))?,
                }
            }
            "peerCheckIntervalMs" => self.peer_check_interval_ms = parse(key, value)?,
            "preemptTimerUs" => self.preempt_timer_us = parse(key, value)?,
            "transparentHugePages" => self.transparent_huge_pages = parse_bool(key, value)?,
            "executorPokeIntervalUs" => self.executor_poke_interval_us = parse(key, value)?,
            "ioMemoryBytesPerShard" => self.io_memory_bytes_per_shard = parse(key, value)?,
            "remoteConfigUpdateKeys" => self.remote_config_update_keys = split_keys(value),
            "kvEntriesMax" => self.kv_entries_max = parse(key, value)?,
            "kvValueBytesMax" => self.kv_value_bytes_max = parse(key, value)?,
            "kvBytesMax" => self.kv_bytes_max = parse(key, value)?,
            // Java keys that set a Meridian field.
            "listenPort" => self.listen.set_port(parse(key, value)?),
            "bindAddress" => self.listen.set_ip(parse(key, value)?),
            "serverSocketBacklog" => self.listen_backlog_len = parse(key, value)?,
            "scanNotActiveBrokerInterval" => self.scan_not_active_broker_interval_ms = parse(key, value)?,
            "enableShutdownGracefully" => self.shutdown_go_away = parse_bool(key, value)?,
            "shutdownWaitTimeSeconds" => {
                self.shutdown_go_away_window_ms = parse::<u64>(key, value)?.saturating_mul(1000)
            }
            "serverChannelMaxIdleTimeSeconds" => {
                self.connection_idle_timeout_ms = parse::<u64>(key, value)?.saturating_mul(1000)
            }
            _ => {
                if !self.auth.set(key, value)? && !self.namesrv.set(key, value)? {
                    if let Some(now) = renamed_key(key) {
                        return Err(ConfigError::RenamedKey { key: key.to_string(), now });
                    }
                    return Err(ConfigError::UnknownKey { key: key.to_string() });
                }
            }
        }
        Ok(())
    }

    /// Where the KV config lives.
    pub fn kv_config_path(&self) -> PathBuf {
        self.namesrv.kv_config_path.clone().unwrap_or_else(|| self.data_dir.join("kvConfig.json"))
    }

    /// Where the warm-restart route file lives.
    pub fn warm_restart_path(&self) -> PathBuf {
        self.warm_restart_path.clone().unwrap_or_else(|| self.data_dir.join("routes.warm"))
    }

    /// The file UPDATE_NAMESRV_CONFIG rewrites.
    pub fn config_store_path(&self) -> PathBuf {
        self.namesrv.config_store_path.clone().unwrap_or_else(|| self.data_dir.join("namesrv.properties"))
    }

    /// Every key with its value, sorted by key: Java's keys (as GET_NAMESRV_CONFIG lists
    /// them) followed in the same order by Meridian's own.
    pub fn properties(&self) -> Vec<(String, String)> {
        let n = &self.namesrv;
        let mut out: Vec<(String, String)> = vec![
            ("bindAddress".into(), self.listen.ip().to_string()),
            ("listenPort".into(), self.listen.port().to_string()),
            ("serverSocketBacklog".into(), self.listen_backlog_len.to_string()),
            ("scanNotActiveBrokerInterval".into(), self.scan_not_active_broker_interval_ms.to_string()),
            ("serverChannelMaxIdleTimeSeconds".into(), (self.connection_idle_timeout_ms / 1000).to_string()),
            ("enableShutdownGracefully".into(), self.shutdown_go_away.to_string()),
            ("shutdownWaitTimeSeconds".into(), (self.shutdown_go_away_window_ms / 1000).to_string()),
            ("rocketmqHome".into(), n.rocketmq_home.clone()),
            ("kvConfigPath".into(), self.kv_config_path().display().to_string()),
            ("configStorePath".into(), self.config_store_path().display().to_string()),
            ("configBlackList".into(), n.config_black_list.clone()),
            ("orderMessageEnable".into(), n.order_message_enable.to_string()),
            ("returnOrderTopicConfigToBroker".into(), n.return_order_topic_config_to_broker.to_string()),
            ("enableAllTopicList".into(), n.enable_all_topic_list.to_string()),
            ("enableTopicList".into(), n.enable_topic_list.to_string()),
            ("notifyMinBrokerIdChanged".into(), n.notify_min_broker_id_changed.to_string()),
            ("needWaitForService".into(), n.need_wait_for_service.to_string()),
            ("waitSecondsForService".into(), n.wait_seconds_for_service.to_string()),
            ("deleteTopicWithBrokerRegistration".into(), n.delete_topic_with_broker_registration.to_string()),
            ("supportActingMaster".into(), n.support_acting_master.to_string()),
        ];
        out.extend(n.echo.iter().map(|(k, v)| (k.to_string(), v.clone())));
        // Java omits null values; an unset rocketmqHome is null there.
        out.retain(|(k, v)| !(k == "rocketmqHome" && v.is_empty()));
        out.extend([
            ("dataDir".into(), self.data_dir.display().to_string()),
            ("logFormat".into(), self.log_format.to_string()),
            ("logLevel".into(), self.log_level.clone()),
            ("metricsListen".into(), self.metrics_listen.map_or_else(|| "off".to_string(), |a| a.to_string())),
            ("shards".into(), self.shards.to_string()),
            ("frameBytesMax".into(), self.frame_bytes_max.to_string()),
            ("headerBytesMax".into(), self.header_bytes_max.to_string()),
            ("bodyDecompressedBytesMax".into(), self.body_decompressed_bytes_max.to_string()),
            ("registrationInflightBytesPerShardMax".into(), self.registration_inflight_bytes_per_shard_max.to_string()),
            ("registrationMemoryBytesMax".into(), self.registration_memory_bytes_max.to_string()),
            ("connectionsPerShardMax".into(), self.connections_per_shard_max.to_string()),
            ("updateQueueLenMax".into(), self.update_queue_len_max.to_string()),
            ("topicsMax".into(), self.topics_max.to_string()),
            ("brokersMax".into(), self.brokers_max.to_string()),
            ("brokerTimeoutDefaultMs".into(), self.broker_timeout_default_ms.to_string()),
            ("registrationRoundQuietMs".into(), self.registration_round_quiet_ms.to_string()),
            ("connectionIdleTimeoutMs".into(), self.connection_idle_timeout_ms.to_string()),
            ("replyWriteTimeoutMs".into(), self.reply_write_timeout_ms.to_string()),
            ("shutdownDrainMs".into(), self.shutdown_drain_ms.to_string()),
            ("shutdownGoAway".into(), self.shutdown_go_away.to_string()),
            ("shutdownGoAwayWindowMs".into(), self.shutdown_go_away_window_ms.to_string()),
            ("warmRestart".into(), self.warm_restart.to_string()),
            ("warmRestartSaveIntervalMs".into(), self.warm_restart_save_interval_ms.to_string()),
            ("warmRestartMaxAgeMs".into(), self.warm_restart_max_age_ms.to_string()),
            ("warmRestartPath".into(), self.warm_restart_path().display().to_string()),
            ("watchHoldMsMax".into(), self.watch_hold_ms_max.to_string()),
            ("watchesPerShardMax".into(), self.watches_per_shard_max.to_string()),
            ("watchTopicsPerRequestMax".into(), self.watch_topics_per_request_max.to_string()),
            ("peerNamesrvAddrs".into(), self.peer_namesrv_addrs.join(";")),
            ("peerCheckIntervalMs".into(), self.peer_check_interval_ms.to_string()),
            ("preemptTimerUs".into(), self.preempt_timer_us.to_string()),
            ("transparentHugePages".into(), self.transparent_huge_pages.to_string()),
            ("executorPokeIntervalUs".into(), self.executor_poke_interval_us.to_string()),
            ("ioMemoryBytesPerShard".into(), self.io_memory_bytes_per_shard.to_string()),
            ("remoteConfigUpdateKeys".into(), self.remote_config_update_keys.join(";")),
            ("kvEntriesMax".into(), self.kv_entries_max.to_string()),
            ("kvValueBytesMax".into(), self.kv_value_bytes_max.to_string()),
            ("kvBytesMax".into(), self.kv_bytes_max.to_string()),
        ]);
        out.extend(self.auth.properties());
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Loads a properties file; returns the keys it did not know (the caller warns).
    pub fn load_properties(&mut self, text: &str) -> Result<Vec<String>, ConfigError> {
        let map = java_properties::read(text.as_bytes()).map_err(|e| ConfigError::Unreadable { why: e.to_string() })?;
        let mut keys: Vec<_> = map.into_iter().collect();
        keys.sort();
        let mut unknown = Vec::new();
        for (k, v) in keys {
            match self.set(&k, &v) {
                Err(e) if e.is_unknown_key() => unknown.push(k),
                other => other?,
            }
        }
        Ok(unknown)
    }

    /// Refuses configurations whose limits contradict each other, naming the keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError::Conflict(m));
        if self.shards == 0 {
            return fail("shards must be at least 1".into());
        }
        check_log_filter("logLevel", &self.log_level)?;
        if self.frame_bytes_max < 1024 || self.frame_bytes_max > i32::MAX as u32 {
            return fail(format!("frameBytesMax {} must be within 1024..=2147483647", self.frame_bytes_max));
        }
        if self.header_bytes_max >= self.frame_bytes_max {
            return fail(format!(
                "headerBytesMax {} must be < frameBytesMax {}",
                self.header_bytes_max, self.frame_bytes_max
            ));
        }
        if self.registration_inflight_bytes_per_shard_max < self.frame_bytes_max as u64 {
            return fail(format!(
                "registrationInflightBytesPerShardMax {} must be >= frameBytesMax {} (one largest registration must fit)",
                self.registration_inflight_bytes_per_shard_max, self.frame_bytes_max
            ));
        }
        if self.registration_memory_bytes_max < 2 * self.frame_bytes_max as u64 {
            return fail(format!(
                "registrationMemoryBytesMax {} must be >= 2 x frameBytesMax {} (a registration is charged \
                 its wire bytes plus as much for decoding them, and the largest one must fit)",
                self.registration_memory_bytes_max, self.frame_bytes_max
            ));
        }
        for (key, v) in [
            ("connectionsPerShardMax", self.connections_per_shard_max as u64),
            ("updateQueueLenMax", self.update_queue_len_max as u64),
            ("topicsMax", self.topics_max as u64),
            ("brokersMax", self.brokers_max as u64),
            ("brokerTimeoutDefaultMs", self.broker_timeout_default_ms),
            ("scanNotActiveBrokerIntervalMs", self.scan_not_active_broker_interval_ms),
            ("registrationRoundQuietMs", self.registration_round_quiet_ms),
            ("connectionIdleTimeoutMs", self.connection_idle_timeout_ms),
            ("replyWriteTimeoutMs", self.reply_write_timeout_ms),
            ("preemptTimerUs", self.preempt_timer_us),
            ("executorPokeIntervalUs", self.executor_poke_interval_us),
            ("bodyDecompressedBytesMax", self.body_decompressed_bytes_max),
            ("warmRestartSaveIntervalMs", self.warm_restart_save_interval_ms),
            ("warmRestartMaxAgeMs", self.warm_restart_max_age_ms),
            ("watchHoldMsMax", self.watch_hold_ms_max),
            ("watchesPerShardMax", self.watches_per_shard_max as u64),
            ("watchTopicsPerRequestMax", self.watch_topics_per_request_max as u64),
            ("peerCheckIntervalMs", self.peer_check_interval_ms),
            ("kvEntriesMax", self.kv_entries_max as u64),
            ("kvValueBytesMax", self.kv_value_bytes_max as u64),
            ("kvBytesMax", self.kv_bytes_max),
        ] {
            if v == 0 {
                return fail(format!("{key} must be > 0"));
            }
        }
        if self.kv_value_bytes_max as u64 > self.kv_bytes_max {
            return fail(format!(
                "kvValueBytesMax {} must be <= kvBytesMax {}",
                self.kv_value_bytes_max, self.kv_bytes_max
            ));
        }
        for key in &self.remote_config_update_keys {
            if is_never_remote(key) || !Config::is_known_key(key) {
                return fail(format!(
                    "remoteConfigUpdateKeys lists {key}, which {}",
                    if is_never_remote(key) { "is never remotely writable" } else { "is not a config key" }
                ));
            }
        }
        self.auth.validate()?;
        if self.warm_restart && self.warm_restart_save_interval_ms >= self.warm_restart_max_age_ms {
            return fail(format!(
                "warmRestartSaveIntervalMs {} must be < warmRestartMaxAgeMs {} (after a crash the last save would be too old to load)",
                self.warm_restart_save_interval_ms, self.warm_restart_max_age_ms
            ));
        }
        Ok(())
    }

    /// Whether `key` names a key Meridian knows (any spelling `set` takes, old snake_case
    /// names included); UPDATE_NAMESRV_CONFIG ignores the others, as Java does.
    pub fn is_known_key(key: &str) -> bool {
        !matches!(Config::default().set(key, ""), Err(e) if e.is_unknown_key())
    }

    /// Whether UPDATE_NAMESRV_CONFIG may change `key` (listed in `remoteConfigUpdateKeys`
    /// and not one that never is).
    pub fn is_remotely_writable(&self, key: &str) -> bool {
        !is_never_remote(key) && self.remote_config_update_keys.iter().any(|k| k == key)
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
        let unknown = c.load_properties("frameBytesMax=2048\nfooBar=9877\n# comment\nshards = 3\n").unwrap();
        assert_eq!(c.frame_bytes_max, 2048);
        assert_eq!(c.shards, 3);
        assert_eq!(unknown, vec!["fooBar".to_string()]);
        assert!(c.load_properties("shards=many").is_err());
    }

    #[test]
    fn transparent_huge_pages_are_off_unless_set() {
        let mut c = Config::default();
        assert!(!c.transparent_huge_pages);
        c.load_properties("transparentHugePages=true\n").unwrap();
        assert!(c.transparent_huge_pages);
        let err = c.load_properties("transparentHugePages=maybe\n").unwrap_err().to_string();
        assert!(err.contains("transparentHugePages"), "{err}");
    }

    #[test]
    fn old_snake_case_keys_are_refused_naming_the_new_spelling() {
        let mut c = Config::default();
        for (old, now) in [
            ("frame_bytes_max", "frameBytesMax"),
            ("broker_timeout_default_ms", "brokerTimeoutDefaultMs"),
            ("registration_inflight_bytes_per_shard_max", "registrationInflightBytesPerShardMax"),
            ("metrics_listen", "metricsListen"),
        ] {
            let e = c.set(old, "1").unwrap_err();
            assert_eq!(e, ConfigError::RenamedKey { key: old.into(), now: now.into() });
            assert!(e.to_string().contains(now), "{e}");
            // In a file too, where unknown keys are only warned about.
            assert_eq!(c.load_properties(&format!("{old}=1\n")).unwrap_err(), e);
        }
        // A snake_case key that never was Meridian's stays merely unknown.
        assert!(c.set("foo_bar", "1").unwrap_err().is_unknown_key());
        assert_eq!(c.frame_bytes_max, Config::default().frame_bytes_max, "nothing changed");
    }

    #[test]
    fn contradictory_limits_are_refused_naming_keys() {
        let c = Config { registration_inflight_bytes_per_shard_max: 1024, ..Config::default() };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("registrationInflightBytesPerShardMax"), "{e}");
        // The default admits one 1M-topic JSON registration (~200 MB, charged twice).
        assert!(Config::default().registration_memory_bytes_max >= 2 * 200_000_000);
        let c = Config { registration_memory_bytes_max: 256 * MIB, ..Config::default() };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("registrationMemoryBytesMax"), "{e}");
        let mut c = Config::default();
        c.header_bytes_max = c.frame_bytes_max;
        assert!(c.validate().unwrap_err().to_string().contains("headerBytesMax"));
        let c = Config { shards: 0, ..Config::default() };
        assert!(c.validate().is_err());
    }

    #[test]
    fn java_keys_set_meridian_fields_and_switches() {
        let mut c = Config::default();
        let unknown = c
            .load_properties(
                "listenPort=19876\nbindAddress=127.0.0.1\nscanNotActiveBrokerInterval=5000\n\
                 serverChannelMaxIdleTimeSeconds=60\norderMessageEnable=true\nserverWorkerThreads=4\n\
                 kvConfigPath=/tmp/kv.json\nnoSuchKey=1\n",
            )
            .unwrap();
        assert_eq!(unknown, vec!["noSuchKey".to_string()]);
        assert_eq!(c.listen, "127.0.0.1:19876".parse().unwrap());
        assert_eq!(c.scan_not_active_broker_interval_ms, 5000);
        assert_eq!(c.connection_idle_timeout_ms, 60_000);
        assert!(c.namesrv.order_message_enable);
        assert_eq!(c.kv_config_path(), PathBuf::from("/tmp/kv.json"));
        let props = c.properties();
        let get = |k: &str| props.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("serverWorkerThreads").as_deref(), Some("4"));
        assert_eq!(get("listenPort").as_deref(), Some("19876"));
        assert_eq!(get("frameBytesMax").as_deref(), Some("268435456"));
        assert!(props.windows(2).all(|w| w[0].0 < w[1].0), "sorted, no duplicates");
    }

    #[test]
    fn invalid_java_values_name_the_key() {
        let mut c = Config::default();
        assert!(c.set("orderMessageEnable", "yes").unwrap_err().to_string().contains("orderMessageEnable"));
        assert!(c.set("serverWorkerThreads", "many").unwrap_err().to_string().contains("serverWorkerThreads"));
        assert!(c.set("listenPort", "70000").unwrap_err().to_string().contains("listenPort"));
    }

    #[test]
    fn black_list_always_includes_rocketmq_home() {
        let n = NamesrvConfig::default();
        assert!(n.is_black_listed("kvConfigPath"));
        assert!(n.is_black_listed("rocketmqHome"));
        assert!(!n.is_black_listed("orderMessageEnable"));
    }

    #[test]
    fn remote_updates_reach_only_the_listed_switches() {
        let c = Config::default();
        for key in ["orderMessageEnable", "waitSecondsForService", "clusterTest"] {
            assert!(c.is_remotely_writable(key), "{key}");
            assert!(Config::is_known_key(key), "{key}");
        }
        for key in ["dataDir", "warmRestartPath", "frameBytesMax", "authEnabled", "remoteConfigUpdateKeys", "logLevel"]
        {
            assert!(!c.is_remotely_writable(key), "{key}");
            assert!(Config::is_known_key(key), "{key}");
        }
        assert!(Config::is_known_key("data_dir"), "an old spelling is known");
        assert!(!Config::is_known_key("noSuchKey"));
        let mut wide = Config::default();
        wide.set("remoteConfigUpdateKeys", "topicsMax;orderMessageEnable").unwrap();
        wide.validate().unwrap();
        assert!(wide.is_remotely_writable("topicsMax") && !wide.is_remotely_writable("enableTopicList"));
        for never in ["dataDir", "remoteConfigUpdateKeys", "authAccountsFile", "noSuchKey"] {
            wide.set("remoteConfigUpdateKeys", never).unwrap();
            assert!(wide.validate().unwrap_err().to_string().contains(never), "{never}");
        }
    }

    #[test]
    fn kv_bounds_are_validated() {
        let c = Config { kv_value_bytes_max: 2048, kv_bytes_max: 1024, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("kvValueBytesMax"));
        let c = Config { kv_entries_max: 0, ..Config::default() };
        assert!(c.validate().unwrap_err().to_string().contains("kvEntriesMax"));
    }

    #[test]
    fn log_keys_are_validated_and_listed() {
        let mut c = Config::default();
        assert_eq!((c.log_level.as_str(), c.log_format), ("info", LogFormat::Text));
        c.set("logLevel", " warn,meridian_server::route=debug ").unwrap();
        c.set("logFormat", "JSON").unwrap();
        assert_eq!((c.log_level.as_str(), c.log_format), ("warn,meridian_server::route=debug", LogFormat::Json));
        assert!(c.set("logFormat", "xml").unwrap_err().to_string().contains("logFormat"));
        assert!(c.set("logLevel", "meridian=loud").unwrap_err().to_string().contains("logLevel"));
        let props = c.properties();
        assert!(props.contains(&("logFormat".to_string(), "json".to_string())));
        assert!(props.contains(&("logLevel".to_string(), "warn,meridian_server::route=debug".to_string())));
        let bad = Config { log_level: "=x=y".into(), ..Config::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("logLevel"));
    }
}
