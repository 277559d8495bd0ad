//! Registration rounds: which applied registrations (chunks) of one broker address make up
//! one round, so the writer logs one lifecycle line per round, not per chunk.
//!
//! A broker registers every 30 s. With `enableSplitRegistration` a Java broker sends its
//! topic table in chunks of `splitRegistrationSize` topics, each one REGISTER_BROKER frame
//! with its own (higher) data version, then one last frame with the 0..size-1 topics left
//! over and its static-topic mappings. Nothing in a frame says "first" or "last", so a
//! round of (cluster, address) is open from its first chunk and closes when:
//! - a chunk carries fewer topics than the round's first (the remainder, which Java sends
//!   last; it belongs to the round) — `RoundEnd::Remainder`;
//! - no chunk of that address arrived for `registrationRoundQuietMs` — `RoundEnd::Quiet`
//!   (a one-frame registration is a round of one chunk closed this way, as is a split
//!   broker with fewer topics than one chunk, which sends only its remainder);
//! - the address is removed (unregister, connection closed, expiry) — `RoundEnd::Removed`;
//! - a chunk arrives when the round has been open for `ROUND_SPAN_MS_MAX` — `RoundEnd::Span`:
//!   the round closes and the chunk opens the next, so an address that re-registers more
//!   often than the quiet time still gets a line (and a count) at least that often.
//!
//! A round keeps counts only (chunks, topics added / removed / changed, first and last
//! data version), never topic names. Pure: takes `now_ms`, does no I/O and logs nothing.

use super::table::TopicCounts;
use meridian_protocol::body::DataVersion;
use std::collections::HashMap;

/// The longest a round stays open while chunks keep coming: a Java broker's default
/// registration period (30 s). Its split chunks go out back to back, well within it.
pub const ROUND_SPAN_MS_MAX: u64 = 30_000;

/// One applied registration of an address, as the writer saw it.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub cluster: String,
    pub broker: String,
    pub id: i64,
    pub addr: String,
    /// Topics in the body; `None` for a re-send whose topics were not read.
    pub topics: Option<usize>,
    pub data_version: DataVersion,
    /// What it did to its broker group's queue data.
    pub counts: TopicCounts,
    /// The address's live data version before this chunk (`None`: not registered).
    pub version_before: Option<DataVersion>,
}

/// Why a round closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundEnd {
    /// A chunk with fewer topics than the round's first: the remainder, sent last.
    Remainder,
    /// No chunk for `registrationRoundQuietMs`.
    Quiet,
    /// The address was removed (unregister, connection closed, expiry).
    Removed,
    /// Open for `ROUND_SPAN_MS_MAX` when another chunk came.
    Span,
}

impl RoundEnd {
    /// A short token for the log field.
    pub fn as_str(self) -> &'static str {
        match self {
            RoundEnd::Remainder => "remainder",
            RoundEnd::Quiet => "quiet",
            RoundEnd::Removed => "removed",
            RoundEnd::Span => "span",
        }
    }
}

/// One registration round of an address: what its chunks did, added up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub cluster: String,
    /// Broker name and id of the last chunk.
    pub broker: String,
    pub id: i64,
    pub addr: String,
    /// The address's data version when the round began (`None`: it was not registered).
    pub data_version_before: Option<DataVersion>,
    pub chunks: u64,
    /// Topics in the chunks whose bodies were read.
    pub topics: usize,
    pub counts: TopicCounts,
    pub data_version_first: DataVersion,
    pub data_version_last: DataVersion,
    /// Topics in the first chunk (`None`: it was not read, so no chunk is "fewer").
    first_topics: Option<usize>,
    first_chunk_ms: u64,
    last_chunk_ms: u64,
}

impl Round {
    fn open(chunk: Chunk, now_ms: u64) -> Round {
        Round {
            cluster: chunk.cluster,
            broker: chunk.broker,
            id: chunk.id,
            addr: chunk.addr,
            data_version_before: chunk.version_before,
            chunks: 1,
            topics: chunk.topics.unwrap_or(0),
            counts: chunk.counts,
            data_version_first: chunk.data_version,
            data_version_last: chunk.data_version,
            first_topics: chunk.topics,
            first_chunk_ms: now_ms,
            last_chunk_ms: now_ms,
        }
    }

    /// Adds a chunk; true if it is the remainder that closes the round.
    fn add(&mut self, chunk: Chunk, now_ms: u64) -> bool {
        self.broker = chunk.broker;
        self.id = chunk.id;
        self.chunks += 1;
        self.topics += chunk.topics.unwrap_or(0);
        self.counts.added += chunk.counts.added;
        self.counts.removed += chunk.counts.removed;
        self.counts.changed += chunk.counts.changed;
        self.data_version_last = chunk.data_version;
        self.last_chunk_ms = now_ms;
        matches!((chunk.topics, self.first_topics), (Some(n), Some(first)) if n < first)
    }

    /// The address was not registered when the round began.
    pub fn new_address(&self) -> bool {
        self.data_version_before.is_none()
    }

    /// Any topic of the broker group gained, lost or changed its queue data in this round.
    pub fn topics_changed(&self) -> bool {
        self.counts != TopicCounts::default()
    }

    fn deadline_ms(&self, quiet_ms: u64) -> u64 {
        self.last_chunk_ms.saturating_add(quiet_ms)
    }
}

/// The open rounds, one per (cluster, address) at most.
#[derive(Debug, Default)]
pub struct Rounds {
    open: HashMap<(String, String), Round>,
}

impl Rounds {
    /// Records an applied chunk; returns the round it closed, if any: its own (the
    /// remainder), or the one before it, open too long (`Span`; the chunk opens the next).
    pub fn chunk(&mut self, chunk: Chunk, now_ms: u64) -> Option<(Round, RoundEnd)> {
        let key = (chunk.cluster.clone(), chunk.addr.clone());
        match self.open.get_mut(&key) {
            Some(round) if now_ms.saturating_sub(round.first_chunk_ms) >= ROUND_SPAN_MS_MAX => {
                let next = Round::open(chunk, now_ms);
                self.open.insert(key, next).map(|spanned| (spanned, RoundEnd::Span))
            }
            Some(round) => {
                if round.add(chunk, now_ms) {
                    return self.open.remove(&key).map(|r| (r, RoundEnd::Remainder));
                }
                None
            }
            None => {
                self.open.insert(key, Round::open(chunk, now_ms));
                None
            }
        }
    }

    /// Closes the rounds with no chunk for `quiet_ms`, the longest silent first.
    pub fn close_quiet(&mut self, now_ms: u64, quiet_ms: u64) -> Vec<Round> {
        let due: Vec<(String, String)> =
            self.open.iter().filter(|(_, r)| r.deadline_ms(quiet_ms) <= now_ms).map(|(k, _)| k.clone()).collect();
        let mut closed: Vec<Round> = due.iter().filter_map(|k| self.open.remove(k)).collect();
        closed.sort_by(|a, b| (a.last_chunk_ms, &a.cluster, &a.addr).cmp(&(b.last_chunk_ms, &b.cluster, &b.addr)));
        closed
    }

    /// The address was removed: its open round, if any, closes.
    pub fn remove(&mut self, cluster: &str, addr: &str) -> Option<Round> {
        self.open.remove(&(cluster.to_string(), addr.to_string()))
    }

    /// When the earliest open round closes by `quiet_ms`, if any is open (a scan of the
    /// open rounds: one per broker sending right now).
    pub fn next_deadline_ms(&self, quiet_ms: u64) -> Option<u64> {
        self.open.values().map(|r| r.deadline_ms(quiet_ms)).min()
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: u64 = 2_000;

    fn version(counter: i64) -> DataVersion {
        DataVersion { state_version: 0, timestamp: 1_700_000_000_000, counter }
    }

    fn chunk(addr: &str, topics: usize, counter: i64, added: usize) -> Chunk {
        Chunk {
            cluster: "c1".into(),
            broker: format!("broker-{addr}"),
            id: 0,
            addr: addr.into(),
            topics: Some(topics),
            data_version: version(counter),
            counts: TopicCounts { added, removed: 0, changed: 0 },
            version_before: (counter > 1).then(|| version(counter - 1)),
        }
    }

    #[test]
    fn a_remainder_with_fewer_topics_closes_the_round_it_belongs_to() {
        let mut rounds = Rounds::default();
        assert_eq!(rounds.chunk(chunk("a", 800, 1, 800), 0), None);
        assert_eq!(rounds.chunk(chunk("a", 800, 2, 800), 10), None);
        let (round, end) = rounds.chunk(chunk("a", 3, 3, 3), 20).expect("the remainder closes it");
        assert_eq!(end, RoundEnd::Remainder);
        assert_eq!((round.chunks, round.topics, round.counts.added), (3, 1603, 1603));
        assert_eq!((round.data_version_first.counter, round.data_version_last.counter), (1, 3));
        assert!(round.new_address() && round.topics_changed());
        assert_eq!(rounds.open_count(), 0);
        assert_eq!(rounds.next_deadline_ms(QUIET), None);
    }

    #[test]
    fn a_remainder_of_zero_topics_closes_the_round() {
        let mut rounds = Rounds::default();
        rounds.chunk(chunk("a", 800, 4, 0), 0);
        rounds.chunk(chunk("a", 800, 5, 0), 1);
        let (round, _) = rounds.chunk(chunk("a", 0, 6, 0), 2).expect("an empty remainder is fewer");
        assert_eq!((round.chunks, round.topics), (3, 1600));
        assert!(!round.new_address() && !round.topics_changed());
    }

    #[test]
    fn a_lone_chunk_closes_when_the_broker_goes_quiet() {
        let mut rounds = Rounds::default();
        rounds.chunk(chunk("a", 5, 1, 5), 1_000);
        assert_eq!(rounds.next_deadline_ms(QUIET), Some(3_000));
        assert!(rounds.close_quiet(2_999, QUIET).is_empty());
        let closed = rounds.close_quiet(3_000, QUIET);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].chunks, closed[0].topics, closed[0].counts.added), (1, 5, 5));
        assert_eq!(rounds.open_count(), 0);
    }

    #[test]
    fn each_chunk_moves_the_quiet_deadline() {
        let mut rounds = Rounds::default();
        rounds.chunk(chunk("a", 800, 1, 800), 0);
        rounds.chunk(chunk("a", 800, 2, 800), 1_500);
        assert_eq!(rounds.next_deadline_ms(QUIET), Some(3_500));
        assert!(rounds.close_quiet(3_000, QUIET).is_empty());
        // A late remainder-sized chunk after the round closed opens the next round.
        assert_eq!(rounds.close_quiet(3_500, QUIET)[0].chunks, 2);
        assert_eq!(rounds.chunk(chunk("a", 7, 3, 0), 9_000), None);
        assert_eq!(rounds.close_quiet(11_000, QUIET)[0].data_version_first.counter, 3);
    }

    #[test]
    fn an_unread_first_chunk_is_never_outnumbered() {
        let mut rounds = Rounds::default();
        rounds.chunk(Chunk { topics: None, ..chunk("a", 0, 2, 0) }, 0);
        assert_eq!(rounds.chunk(chunk("a", 1, 3, 0), 1), None);
        let closed = rounds.close_quiet(5_000, QUIET);
        assert_eq!((closed[0].chunks, closed[0].topics), (2, 1));
    }

    #[test]
    fn removal_mid_round_closes_it_with_what_it_has() {
        let mut rounds = Rounds::default();
        rounds.chunk(chunk("a", 800, 1, 800), 0);
        rounds.chunk(chunk("a", 800, 2, 800), 1);
        let round = rounds.remove("c1", "a").expect("open");
        assert_eq!((round.chunks, round.counts.added), (2, 1600));
        assert_eq!(rounds.remove("c1", "a"), None);
        assert!(rounds.close_quiet(u64::MAX, QUIET).is_empty());
    }

    #[test]
    fn two_brokers_interleaved_keep_their_own_rounds() {
        let mut rounds = Rounds::default();
        rounds.chunk(chunk("a", 800, 1, 800), 0);
        rounds.chunk(chunk("b", 100, 1, 100), 1);
        rounds.chunk(chunk("a", 800, 2, 800), 2);
        // b's chunk of 100 is fewer than a's first, but it is b's round.
        rounds.chunk(chunk("b", 100, 2, 1), 3);
        let (a, _) = rounds.chunk(chunk("a", 100, 3, 100), 4).expect("a's remainder");
        assert_eq!((a.addr.as_str(), a.chunks, a.counts.added), ("a", 3, 1700));
        let (b, _) = rounds.chunk(chunk("b", 99, 3, 0), 5).expect("b's remainder");
        assert_eq!((b.addr.as_str(), b.chunks, b.topics, b.counts.added), ("b", 3, 299, 101));
        // Same address in another cluster is another round.
        rounds.chunk(chunk("a", 10, 1, 10), 6);
        rounds.chunk(Chunk { cluster: "c2".into(), ..chunk("a", 10, 1, 10) }, 7);
        let closed = rounds.close_quiet(10_000, QUIET);
        let clusters: Vec<&str> = closed.iter().map(|r| r.cluster.as_str()).collect();
        assert_eq!(clusters, ["c1", "c2"], "the longest silent first");
    }

    #[test]
    fn an_address_that_never_goes_quiet_still_closes_a_round_per_span() {
        let mut rounds = Rounds::default();
        // One frame every second, same topic count: never quiet, never a remainder.
        let mut closed = Vec::new();
        for i in 0..70u64 {
            closed.extend(rounds.chunk(chunk("a", 50, 1 + i as i64, usize::from(i == 40)), i * 1_000));
        }
        let spans: Vec<(u64, RoundEnd)> = closed.iter().map(|(r, end)| (r.chunks, *end)).collect();
        assert_eq!(spans, [(30, RoundEnd::Span), (30, RoundEnd::Span)], "a round per 30 s");
        assert!(closed[1].0.topics_changed() && !closed[0].0.topics_changed(), "the change is in the second");
        assert_eq!(closed[1].0.data_version_first.counter, 31, "the chunk after a span opens the next round");
        assert_eq!(rounds.open_count(), 1);
    }
}
