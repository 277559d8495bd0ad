//! Network I/O on a shard: `accept` starts a shard and runs its accept loop, and each
//! accepted connection runs `connection`, which turns socket bytes into frames and frames
//! into requests for `request::dispatch`. Must not: parse bodies or decide routes.

pub mod accept;
pub mod connection;
