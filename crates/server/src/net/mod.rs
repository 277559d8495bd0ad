//! Network I/O on a shard: one task per accepted connection (`connection`), which turns
//! socket bytes into frames and frames into requests for `request::dispatch`.
//! Must not: parse bodies or decide routes.

pub mod connection;
