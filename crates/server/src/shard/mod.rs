//! Shards: one pinned glommio executor per core, each accepting on its own SO_REUSEPORT
//! listener and owning its connections for life. `state` is what a shard owns (reached by
//! the request handlers); `accept` starts a shard and runs its accept loop.
//! Must not: own route state or share a `RefCell` with another shard.

pub mod accept;
pub mod state;
