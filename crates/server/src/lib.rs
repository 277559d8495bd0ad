//! Meridian: a RocketMQ-compatible NameServer, thread-per-core on io_uring (glommio).
//!
//! Data flows one way (see ARCHITECTURE.md for the picture and the invariants):
//! socket bytes → [`net::accept`] → [`net::connection`] → `meridian_protocol::frame` →
//! [`request::command`] → [`request::dispatch`] → [`shard::state`] (the shard's snapshot, or
//! the writer's channel). Lookups are answered from the shard's [`route::snapshot`]; writes
//! travel as [`route::writer::RouteUpdate`]s to the single [`route::writer`], which applies
//! them to the [`route::table`], returns data (never answers) and publishes the next snapshot.
//!
//! - [`config`]: the one `Config`, every limit with its unit.
//! - [`auth`]: opt-in access control (request signatures, address allow-lists).
//! - [`budget`]: the process-wide memory budget of registrations in flight.
//! - [`error`]: typed errors (kind, source: peer / internal / config, cause, context).
//! - [`net`]: a shard's start and accept loop, per-connection I/O (frames in, replies out).
//! - [`shard`]: what each shard owns (snapshot cache, writer channel, limits, counters).
//! - [`request`]: header → `Command` → `Answer` (lookups, registrations, admin, watch).
//! - [`route`]: table (mutable truth, writer-owned), snapshot (immutable), writer (the loop).
//! - [`metrics`]: per-thread counters, and the HTTP endpoint that sums them.
//! - [`server`]: start-up (locks, listeners, threads).
//! - [`persist`]: crash-safe files (KV config, config store).
//! - [`notify`]: the outbound NOTIFY_MIN_BROKER_ID_CHANGE sender.
//! - [`peer_watch`]: compares this server with its peers (`peerNamesrvAddrs`).
//! - [`logging`]: the log subscriber (`logLevel`, `logFormat`) and the peer-warning limiter.
//! - [`sys`]: every libc call and `unsafe` block, each with why it is sound.

pub mod auth;
pub mod budget;
pub mod config;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod peer_watch;
pub mod persist;
pub mod request;
pub mod route;
pub mod server;
pub mod shard;
pub mod sys;
