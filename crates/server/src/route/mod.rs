//! Route state: the writer-owned mutable `table`, the immutable `snapshot` readers answer
//! from, and the single `writer` loop that turns `RouteUpdate`s into new snapshots; `kv`
//! (the KV config), `warm` (routes saved for a warm restart), `rounds` (which registrations
//! make one broker's registration round) and `events` (one log line per broker lifecycle
//! event) belong to the writer too. Must not: import `request`, `net`,
//! `shard` or `metrics::http`, or build answers: the writer returns data.

pub mod events;
pub mod kv;
pub mod rounds;
pub mod snapshot;
pub mod table;
pub mod warm;
pub mod writer;

#[cfg(test)]
mod model_tests;

/// Identifies one accepted connection across all shards: shard index in the top 16 bits,
/// a per-shard counter below. Brokers are tied to the connection they registered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    /// No connection: a broker loaded by a warm restart (`warm`), until it registers. An
    /// accepted connection could carry it only on a 65,536th shard.
    pub const NONE: ConnId = ConnId(u64::MAX);

    pub fn new(shard: usize, seq: u64) -> ConnId {
        debug_assert!(shard < (1 << 16));
        ConnId(((shard as u64) << 48) | (seq & ((1 << 48) - 1)))
    }

    pub fn shard(self) -> usize {
        (self.0 >> 48) as usize
    }
}
