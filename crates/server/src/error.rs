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
