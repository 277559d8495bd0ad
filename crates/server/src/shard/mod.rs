//! Shards: one pinned glommio executor per core, each owning its connections for life.
//! `state` is what a shard owns, reached by the connection and request code that runs on
//! it (`net::accept` starts a shard). Must not: own route state, share a `RefCell` with
//! another shard, or import `net` or `request` (data flows from them to here).

pub mod state;
