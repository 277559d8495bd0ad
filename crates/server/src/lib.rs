//! Meridian: a RocketMQ-compatible NameServer, thread-per-core on io_uring (glommio).
//!
//! Data flows one way (see ARCHITECTURE.md for the picture and the invariants):
//! socket bytes → [`connection`] → `meridian_protocol::frame` → [`command`] → [`handler`];
//! lookups are answered from the shard's [`route::snapshot`], writes travel as
//! [`route::writer::RouteUpdate`]s to the single [`route::writer`], which applies them to the
//! [`route::table`] and publishes the next snapshot to every shard.
//!
//! - [`config`]: the one `Config`, every limit with its unit.
//! - [`command`]: header → typed request.
//! - [`handler`]: request → answer.
//! - [`route`]: table (mutable truth, writer-owned), snapshot (immutable), writer (the loop).
//! - [`shard`], [`connection`]: executors, accept loops, per-connection I/O.
//! - [`server`]: start-up (locks, listeners, threads).
//! - [`persist`]: crash-safe files (KV config, config store).
//! - [`notify`]: the outbound NOTIFY_MIN_BROKER_ID_CHANGE sender.
//! - [`peer_watch`]: compares this server with its peers (`peer_namesrv_addrs`).
//! - [`logging`]: the log subscriber (`log_level`, `log_format`) and the peer-warning limiter.

pub mod command;
pub mod config;
pub mod connection;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod peer_watch;
pub mod persist;
pub mod route;
pub mod server;
pub mod shard;
pub mod watch;
