//! The server's typed errors, in one place: each says what failed (its kind), whose fault
//! it is (`Source`: a peer, the server itself, or its configuration), the cause it wraps,
//! and the context an operator needs (a path, a key, an address). Peers still get RocketMQ
//! codes and remarks: `request/` turns these into answers with the exact texts Java uses.
//! Must not: hide the cause, or decide how an error is answered or logged.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Whose fault an error is (pingora's ErrorSource): it decides the log level and whether
/// a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A client or broker broke the protocol or a limit, or went away.
    Peer,
    /// The server could not do its own work (disk, threads, sockets).
    Internal,
    /// The configuration is invalid.
    Config,
}

/// Which durable file a write was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistTarget {
    /// The KV config (`kvConfigPath`), written before a KV change is answered.
    KvConfig,
    /// The config store (`configStorePath`), rewritten by UPDATE_NAMESRV_CONFIG.
    ConfigStore,
}

/// A KV or config write that could not be made durable; the change was not applied.
#[derive(Debug)]
pub struct PersistError {
    pub target: PersistTarget,
    pub path: PathBuf,
    pub cause: io::Error,
}

impl PersistError {
    pub fn source_kind(&self) -> Source {
        Source::Internal
    }
}

impl fmt::Display for PersistError {
    /// The remark the peer gets, and the start of the operator's log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, cause) = (self.path.display(), &self.cause);
        match self.target {
            PersistTarget::KvConfig => write!(f, "cannot persist KV config to {path}: {cause}"),
            PersistTarget::ConfigStore => write!(f, "cannot write config store {path}: {cause}"),
        }
    }
}

impl std::error::Error for PersistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

/// A configuration the server refuses: a key it does not know, a value it cannot use, or
/// limits that contradict each other. `Display` is the text operators and peers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Neither a Meridian key nor a Java NamesrvConfig/NettyServerConfig key. Config files
    /// and UPDATE_NAMESRV_CONFIG ignore these (as Java does); `--set` refuses them.
    UnknownKey { key: String },
    /// A key Meridian spelled in snake_case before its keys took RocketMQ's camelCase form
    /// (`frame_bytes_max` -> `frameBytesMax`). Refused everywhere, even in config files
    /// where unknown keys are only warned about: silently dropping an operator's limit
    /// would be worse than not starting.
    RenamedKey { key: String, now: String },
    /// A value that does not parse, or is out of range, for its key.
    Invalid { key: String, value: String, why: String },
    /// A value refused with the key and a reason only (`logFormat`).
    InvalidFor { key: String, why: String },
    /// A properties text that cannot be read.
    Unreadable { why: String },
    /// Limits that contradict each other (`Config::validate`); the text names the keys.
    Conflict(String),
    /// The log subscriber could not be installed (the config shapes it).
    Logging { why: String },
}

impl ConfigError {
    pub fn source_kind(&self) -> Source {
        match self {
            ConfigError::Logging { .. } => Source::Internal,
            _ => Source::Config,
        }
    }

    pub fn is_unknown_key(&self) -> bool {
        matches!(self, ConfigError::UnknownKey { .. })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownKey { key } => write!(f, "unknown config key {key}"),
            ConfigError::RenamedKey { key, now } => {
                write!(f, "config key {key} was renamed: write {now} (Meridian's keys are camelCase, as RocketMQ's)")
            }
            ConfigError::Invalid { key, value, why } => write!(f, "invalid value {value:?} for {key}: {why}"),
            ConfigError::InvalidFor { key, why } => write!(f, "{key}: {why}"),
            ConfigError::Unreadable { why } => write!(f, "config file: {why}"),
            ConfigError::Conflict(text) => f.write_str(text),
            ConfigError::Logging { why } => write!(f, "cannot install the log subscriber: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a connection ended. `Display` is the text of the operator's log line.
#[derive(Debug)]
pub enum CloseReason {
    /// The peer closed between frames.
    PeerClosed,
    /// The peer closed with part of a frame buffered.
    PeerClosedMidFrame { buffered_bytes: usize },
    /// Nothing arrived for `connectionIdleTimeoutMs`.
    IdleTimeout { idle_timeout_ms: u64 },
    /// A read failed (e.g. a reset, or the server's own shutdown of an expired broker's socket).
    ReadFailed(io::Error),
    /// A reply could not be written within `replyWriteTimeoutMs`, or at all.
    WriteFailed { cause: io::Error, reply_write_timeout_ms: u64 },
    /// Bytes no RocketMQ peer sends (a bad length, serialize type or header length).
    InvalidFrame(String),
    /// A header that does not decode.
    UndecodableHeader(meridian_protocol::header::HeaderError),
}

impl CloseReason {
    pub fn source_kind(&self) -> Source {
        Source::Peer
    }

    /// The peer broke the protocol (worth a warning); timeouts, resets and closes happen.
    pub fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            CloseReason::PeerClosedMidFrame { .. } | CloseReason::InvalidFrame(_) | CloseReason::UndecodableHeader(_)
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed"),
            CloseReason::PeerClosedMidFrame { buffered_bytes } => {
                write!(f, "peer closed in the middle of a frame ({buffered_bytes} bytes buffered)")
            }
            CloseReason::IdleTimeout { idle_timeout_ms } => {
                write!(f, "idle for connectionIdleTimeoutMs {idle_timeout_ms}")
            }
            CloseReason::ReadFailed(cause) => write!(f, "read failed: {cause}"),
            CloseReason::WriteFailed { cause, reply_write_timeout_ms } => {
                write!(f, "write failed ({cause}); replyWriteTimeoutMs {reply_write_timeout_ms}")
            }
            CloseReason::InvalidFrame(why) => f.write_str(why),
            CloseReason::UndecodableHeader(cause) => write!(f, "undecodable header: {cause}"),
        }
    }
}

/// The KV config file could not be loaded at start.
#[derive(Debug)]
pub enum KvLoadError {
    Unreadable { path: PathBuf, cause: io::Error },
    Invalid { path: PathBuf, cause: serde_json::Error },
}

impl fmt::Display for KvLoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvLoadError::Unreadable { path, cause } => write!(f, "cannot read KV file {}: {cause}", path.display()),
            KvLoadError::Invalid { path, cause } => write!(
                f,
                "KV file {} is not valid kvConfig.json ({cause}); fix or move it (a .bak may exist)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KvLoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KvLoadError::Unreadable { cause, .. } => Some(cause),
            KvLoadError::Invalid { cause, .. } => Some(cause),
        }
    }
}

/// Why the server did not start. `context` is the operator's line (what start-up was
/// doing, with the path, port or key involved, and what to do); `cause` the error behind it.
#[derive(Debug)]
pub struct StartError {
    pub source_kind: Source,
    pub context: String,
    pub cause: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StartError {
    /// The server could not do its own work (a socket, a thread, a file).
    pub fn internal(context: String, cause: impl std::error::Error + Send + Sync + 'static) -> StartError {
        StartError { source_kind: Source::Internal, context, cause: Some(Box::new(cause)) }
    }

    /// A condition without an error value behind it (e.g. a lock held by another server).
    pub fn refused(context: String) -> StartError {
        StartError { source_kind: Source::Internal, context, cause: None }
    }
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> StartError {
        StartError { source_kind: e.source_kind(), context: e.to_string(), cause: Some(Box::new(e)) }
    }
}

impl From<KvLoadError> for StartError {
    fn from(e: KvLoadError) -> StartError {
        StartError { source_kind: Source::Internal, context: e.to_string(), cause: Some(Box::new(e)) }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// Why a warm-restart route file cannot be used; the server then starts cold. `Display`
/// is the reason in the operator's "ignoring FILE: ..." line.
#[derive(Debug)]
pub enum WarmFileError {
    Open(io::Error),
    Read(io::Error),
    TooLarge {
        bytes_max: u64,
    },
    ShortHeader {
        bytes: usize,
        header_bytes: usize,
    },
    BadMagic,
    Version {
        found: u32,
        supported: u32,
    },
    PayloadLength {
        declared: u64,
        found: usize,
    },
    Crc,
    Truncated {
        needed: usize,
        offset: usize,
    },
    InvalidFlag {
        value: u8,
        offset: usize,
    },
    CountTooLarge {
        count: usize,
        offset: usize,
        left: usize,
    },
    InvalidUtf8 {
        offset: usize,
    },
    NameReference {
        index: usize,
        offset: usize,
        names: usize,
    },
    TrailingBytes {
        bytes: usize,
    },
    /// Valid, but saved longer ago than `warmRestartMaxAgeMs`.
    TooOld {
        age_ms: u64,
        age_ms_max: u64,
    },
    /// Valid, but the table already has brokers (loading happens before any registration).
    TableNotEmpty,
    /// Valid, but more entries than a limit allows (`what` names the limit's key).
    OverLimit {
        count: usize,
        what: &'static str,
        key: &'static str,
        max: usize,
    },
}

impl fmt::Display for WarmFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WarmFileError as E;
        match self {
            E::Open(cause) => write!(f, "cannot open: {cause}"),
            E::Read(cause) => write!(f, "cannot read: {cause}"),
            E::TooLarge { bytes_max } => write!(f, "larger than WARM_FILE_BYTES_MAX ({bytes_max} bytes)"),
            E::ShortHeader { bytes, header_bytes } => {
                write!(f, "truncated: {bytes} bytes, shorter than the {header_bytes}-byte header")
            }
            E::BadMagic => f.write_str("not a warm-restart route file (bad magic)"),
            E::Version { found, supported } => {
                write!(f, "format version {found}, this build reads only version {supported}")
            }
            E::PayloadLength { declared, found } => {
                write!(f, "truncated or padded: header says {declared} payload bytes, found {found}")
            }
            E::Crc => f.write_str("CRC mismatch: the payload is corrupt"),
            E::Truncated { needed, offset } => write!(f, "truncated payload: {needed} bytes needed at offset {offset}"),
            E::InvalidFlag { value, offset } => write!(f, "invalid flag {value} at offset {offset}"),
            E::CountTooLarge { count, offset, left } => {
                write!(f, "count {count} at offset {offset} exceeds the {left} bytes left")
            }
            E::InvalidUtf8 { offset } => write!(f, "invalid UTF-8 at offset {offset}"),
            E::NameReference { index, offset, names } => {
                write!(f, "broker name reference {index} at offset {offset} is ahead of the {names} names read")
            }
            E::TrailingBytes { bytes } => write!(f, "{bytes} unexpected bytes after the payload"),
            E::TooOld { age_ms, age_ms_max } => {
                write!(f, "saved {:.1} s ago, older than warmRestartMaxAgeMs {age_ms_max}", *age_ms as f64 / 1000.0)
            }
            E::TableNotEmpty => f.write_str("the route table is not empty"),
            E::OverLimit { count, what, key, max } => write!(f, "{count} {what} > {key} {max}"),
        }
    }
}

impl std::error::Error for WarmFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WarmFileError::Open(cause) | WarmFileError::Read(cause) => Some(cause),
            _ => None,
        }
    }
}

/// Why the routes were not saved for a warm restart at a graceful stop.
#[derive(Debug)]
pub enum WarmSaveError {
    /// The save thread could not be started.
    NotRunning,
    /// Not written before the end of `shutdownDrainMs` (`path`, when the writer knows it).
    Late {
        path: Option<PathBuf>,
    },
    Write {
        path: PathBuf,
        cause: io::Error,
    },
}

impl fmt::Display for WarmSaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WarmSaveError::NotRunning => f.write_str("the save thread is not running"),
            WarmSaveError::Late { path: None } => f.write_str("not written within shutdownDrainMs"),
            WarmSaveError::Late { path: Some(path) } => {
                write!(f, "not written within shutdownDrainMs to {}", path.display())
            }
            WarmSaveError::Write { path, cause } => write!(f, "cannot write {}: {cause}", path.display()),
        }
    }
}

impl std::error::Error for WarmSaveError {}

/// REGISTER_TOPIC_IN_NAMESRV refused: a new topic would pass `topicsMax`. `Display` is
/// the remark the peer gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTableFull {
    pub topics: usize,
    pub topics_max: usize,
}

impl TopicTableFull {
    pub fn source_kind(&self) -> Source {
        Source::Peer
    }
}

impl fmt::Display for TopicTableFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "topic table full: {} topics >= topicsMax {}", self.topics, self.topics_max)
    }
}

impl std::error::Error for TopicTableFull {}
