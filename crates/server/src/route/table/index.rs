//! The topic index: topic → its queue data per broker name, shared structurally between the
//! table (the writer's mutable truth) and every published snapshot.
//!
//! `INDEX_SHARDS` hash tables, each behind an `Arc`. Publishing a snapshot clones the shard
//! pointers (one refcount bump each), not the topics; the writer's next change to a shard a
//! snapshot still holds copies that shard only (`Arc::make_mut`): table size / 16384 slots of
//! 32 bytes (hash, name, entry). So there is one copy of the route state, and a publish costs
//! what changed.
//!
//! Each topic's `TopicEntry` is itself an `Arc`, replaced (never mutated) once published: it
//! carries the generation that last changed it (`version`, what route watchers compare) and
//! the route answers encoded at first lookup. An entry is written in place only while it
//! carries the generation being built, which no reader can hold. Must not: know routes or
//! brokers beyond their names.

use super::{BrokerQueues, TopicName};
use bytes::Bytes;
use once_cell::race::OnceBox;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Shards of the index. More shards: less copied per changed topic, more pointers per
/// publish. Measured at 10M entries (1.67M topics, 1,000 brokers re-registering 1% changed
/// every 30 s): copying and freeing 4096-way shards (~400 slots each) was ~16% of the
/// server's CPU; at 16384 (~100 slots) re-registrations took ~0.28 instead of ~0.34 cores
/// (one run each). The price: each publish clones 16384 pointers (~0.1 ms), and a small table
/// pays for many nearly empty shards (`examples/mem_probe 10000`: ~200 B per entry, against
/// 147 B at 100k topics).
pub const INDEX_SHARDS: usize = 16384;

/// The topic's hash is kept with it: growing a shard then moves slots without touching the
/// names (a pointer chase per topic), and a probe compares names only on a full-hash match.
#[derive(Clone)]
struct Slot {
    hash: u64,
    name: TopicName,
    entry: Arc<TopicEntry>,
}

type Shard = hashbrown::HashTable<Slot>;

fn same(hash: u64, topic: &str) -> impl Fn(&Slot) -> bool + '_ {
    move |s| s.hash == hash && *s.name == *topic
}

fn rehash(s: &Slot) -> u64 {
    s.hash
}

/// One topic: its queue data, the generation that last changed it, and its answers.
#[derive(Debug)]
pub struct TopicEntry {
    queues: BrokerQueues,
    version: u64,
    /// Encoded by the first lookup that needs it (`route::snapshot`); an entry is replaced
    /// whenever its route could change, so a filled cell is never stale.
    standard: OnceBox<Bytes>,
    legacy: OnceBox<Bytes>,
}

impl TopicEntry {
    fn new(queues: BrokerQueues, version: u64) -> TopicEntry {
        TopicEntry { queues, version, standard: OnceBox::new(), legacy: OnceBox::new() }
    }

    pub fn queues(&self) -> &BrokerQueues {
        &self.queues
    }

    pub fn queues_mut(&mut self) -> &mut BrokerQueues {
        &mut self.queues
    }

    /// The generation of the snapshot that first published this entry.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The answer cell of one JSON flavour (`true` = standard).
    pub fn answer_cell(&self, standard: bool) -> &OnceBox<Bytes> {
        if standard {
            &self.standard
        } else {
            &self.legacy
        }
    }
}

/// Makes `slot` an entry of generation `stamp` that only the caller holds: the entry itself
/// if it was made in this generation (unpublished), else a copy with empty answer cells.
fn fresh(slot: &mut Arc<TopicEntry>, stamp: u64) -> &mut TopicEntry {
    if slot.version != stamp || Arc::get_mut(slot).is_none() {
        *slot = Arc::new(TopicEntry::new(slot.queues.clone(), stamp));
    }
    Arc::get_mut(slot).expect("a fresh entry has one owner")
}

#[derive(Clone)]
pub struct TopicIndex {
    hasher: foldhash::fast::RandomState,
    shards: Box<[Arc<Shard>]>,
    len: usize,
}

impl std::fmt::Debug for TopicIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TopicIndex({} topics)", self.len)
    }
}

impl Default for TopicIndex {
    fn default() -> TopicIndex {
        let empty = Arc::new(Shard::new());
        TopicIndex { hasher: Default::default(), shards: vec![empty; INDEX_SHARDS].into(), len: 0 }
    }
}

/// A topic's entry opened for writing, with the index's shared name of the topic.
pub struct EntryMut<'a> {
    pub name: &'a TopicName,
    pub entry: &'a mut TopicEntry,
}

/// One topic of `TopicIndex::put_many`: its slot's name, and its entry to read or to open
/// for writing.
pub struct SlotMut<'a> {
    pub name: &'a TopicName,
    entry: &'a mut Arc<TopicEntry>,
    stamp: u64,
    /// Whether `put_many` just created the (empty) entry.
    pub created: bool,
}

impl<'a> SlotMut<'a> {
    pub fn current(&self) -> &TopicEntry {
        self.entry
    }

    /// The entry for writing in the generation being built (copied if published).
    pub fn open(self) -> &'a mut TopicEntry {
        fresh(self.entry, self.stamp)
    }
}

impl TopicIndex {
    fn locate(&self, topic: &str) -> (u64, usize) {
        let hash = self.hasher.hash_one(topic);
        // High bits pick the shard; the shard's table uses the low bits (and the top 7).
        (hash, (hash >> 40) as usize % INDEX_SHARDS)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, topic: &str) -> Option<&Arc<TopicEntry>> {
        self.get_key_value(topic).map(|(_, e)| e)
    }

    pub fn get_key_value(&self, topic: &str) -> Option<(&TopicName, &Arc<TopicEntry>)> {
        let (hash, i) = self.locate(topic);
        self.shards[i].find(hash, same(hash, topic)).map(|s| (&s.name, &s.entry))
    }

    pub fn contains_key(&self, topic: &str) -> bool {
        self.get_key_value(topic).is_some()
    }

    /// The entry of `topic` for writing in generation `stamp` (copying a shard or entry a
    /// snapshot holds). `None` if the topic has no entry.
    pub fn get_mut(&mut self, topic: &str, stamp: u64) -> Option<EntryMut<'_>> {
        let (hash, i) = self.locate(topic);
        // Look before copying: a topic that is absent must not copy its shard.
        self.shards[i].find(hash, same(hash, topic))?;
        let shard = Arc::make_mut(&mut self.shards[i]);
        let slot = shard.find_mut(hash, same(hash, topic)).expect("found above");
        Some(EntryMut { name: &slot.name, entry: fresh(&mut slot.entry, stamp) })
    }

    /// Like `get_mut`, creating an empty entry (named by `name()`, called only then) if
    /// the topic has none. The second value says whether it was created.
    pub fn get_or_insert_mut(
        &mut self,
        topic: &str,
        name: impl FnOnce() -> TopicName,
        stamp: u64,
    ) -> (EntryMut<'_>, bool) {
        let (hash, i) = self.locate(topic);
        let shard = Arc::make_mut(&mut self.shards[i]);
        match shard.entry(hash, same(hash, topic), rehash) {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let slot = o.into_mut();
                (EntryMut { name: &slot.name, entry: fresh(&mut slot.entry, stamp) }, false)
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                self.len += 1;
                let entry = Arc::new(TopicEntry::new(BrokerQueues::default(), stamp));
                let slot = v.insert(Slot { hash, name: name(), entry }).into_mut();
                (EntryMut { name: &slot.name, entry: Arc::get_mut(&mut slot.entry).expect("just made") }, true)
            }
        }
    }

    /// Marks `topic`'s route as changed in generation `stamp` (its answers are dropped).
    pub fn touch(&mut self, topic: &str, stamp: u64) {
        let _ = self.get_mut(topic, stamp);
    }

    pub fn remove(&mut self, topic: &str) -> Option<TopicName> {
        let (hash, i) = self.locate(topic);
        self.shards[i].find(hash, same(hash, topic))?;
        let shard = Arc::make_mut(&mut self.shards[i]);
        let entry = shard.find_entry(hash, same(hash, topic)).ok()?;
        let (slot, _) = entry.remove();
        self.len -= 1;
        Some(slot.name)
    }

    /// Calls `put(i, payload, slot)` for the `i`th (name, payload) of `names`, and returns
    /// what it returned (`Some`) with `i`, in no particular order. An absent topic's slot
    /// takes that name, and an empty entry that `put` must write; a present one keeps its
    /// own name. Topics are visited grouped by index shard, and each shard is copied (if a
    /// snapshot holds it) and grown once: in the caller's order each topic costs two probes
    /// and ~3 cache misses. The caller makes the names, so new names lie in its order (a
    /// walk over its list in that order then reads memory in order). Topics with the same
    /// name are visited in increasing `i`, so the last write holds. From
    /// `PUT_MANY_PARALLEL_MIN` topics, a second thread takes the upper half of the shards.
    pub fn put_many<T: Send, R: Send>(
        &mut self,
        names: impl Iterator<Item = (TopicName, T)>,
        stamp: u64,
        put: impl Fn(usize, T, SlotMut<'_>) -> Option<R> + Sync,
    ) -> Vec<(usize, R)> {
        let located: Vec<Located<T>> = names
            .enumerate()
            .map(|(at, (name, payload))| {
                let (hash, shard) = self.locate(&name);
                Located { hash, at: at as u32, shard: shard as u32, name, payload }
            })
            .collect();
        // A stable counting sort of the topics by shard.
        let mut starts = vec![0usize; INDEX_SHARDS + 1];
        for l in &located {
            starts[l.shard as usize + 1] += 1;
        }
        for s in 0..INDEX_SHARDS {
            starts[s + 1] += starts[s];
        }
        let count = located.len();
        let mut sorted: Vec<Option<Located<T>>> = (0..count).map(|_| None).collect();
        let mut fill = starts.clone();
        for l in located {
            let at = &mut fill[l.shard as usize];
            sorted[*at] = Some(l);
            *at += 1;
        }
        let (half, split) = (INDEX_SHARDS / 2, starts[INDEX_SHARDS / 2]);
        let (lo_shards, hi_shards) = self.shards.split_at_mut(half);
        let (lo, hi) = sorted.split_at_mut(split);
        let (put, starts) = (&put, &starts[..]);
        // The upper half's work, taken by the second thread, or by this one if none starts.
        let upper = std::sync::Mutex::new(Some((hi_shards, hi)));
        let run_upper = || match upper.lock().map(|mut u| u.take()) {
            Ok(Some((shards, items))) => put_run(shards, half, items, starts, stamp, put),
            _ => (0, Vec::new()),
        };
        let ((lo_new, mut out), (hi_new, hi_out)) = if count >= PUT_MANY_PARALLEL_MIN {
            std::thread::scope(|scope| {
                let helper = std::thread::Builder::new().name("meridian-put".into()).spawn_scoped(scope, run_upper);
                let lower = put_run(lo_shards, 0, lo, starts, stamp, put);
                let upper = match helper {
                    Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                    Err(_) => run_upper(),
                };
                (lower, upper)
            })
        } else {
            (put_run(lo_shards, 0, lo, starts, stamp, put), run_upper())
        };
        self.len += lo_new + hi_new;
        out.extend(hi_out);
        out
    }

    /// Grows each shard once for the topics about to be inserted (a 100k-topic registration
    /// would otherwise rehash every shard several times).
    pub fn reserve_for<'t>(&mut self, topics: impl Iterator<Item = &'t str>) {
        let mut per_shard = vec![0u32; INDEX_SHARDS];
        for topic in topics {
            per_shard[self.locate(topic).1] += 1;
        }
        for (shard, &n) in self.shards.iter_mut().zip(&per_shard) {
            if n >= 8 {
                Arc::make_mut(shard).reserve(n as usize, rehash);
            }
        }
    }

    /// Every topic, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TopicName, &Arc<TopicEntry>)> {
        self.shards.iter().flat_map(|s| s.iter().map(|s| (&s.name, &s.entry)))
    }

    /// Topics changed in generation `stamp` (tests; O(table)).
    pub fn changed_in(&self, stamp: u64) -> Vec<&TopicName> {
        self.iter().filter(|(_, e)| e.version == stamp).map(|(n, _)| n).collect()
    }

    /// Whether both hold the very same shards.
    pub fn ptr_eq(&self, other: &TopicIndex) -> bool {
        self.shards.iter().zip(other.shards.iter()).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// From this many topics `TopicIndex::put_many` uses two threads: at 1M topics one thread
/// takes ~270 ms (`examples/reg_probe`); a thread's start costs ~0.1 ms.
/// Small in unit tests, so both paths run.
const PUT_MANY_PARALLEL_MIN: usize = if cfg!(test) { 1_000 } else { 32_768 };

/// One topic of `TopicIndex::put_many`, with what it needs in index order.
struct Located<T> {
    hash: u64,
    /// Its position in the caller's order.
    at: u32,
    shard: u32,
    name: TopicName,
    payload: T,
}

/// `put_many` over `shards` (index shards `base..`), for `items`: the topics of those shards,
/// sorted by shard (`starts`: where each shard's topics begin among all topics, so
/// `items[0]` is at `starts[base]`). Returns how many entries it created and what `put` said.
fn put_run<T, R>(
    shards: &mut [Arc<Shard>],
    base: usize,
    items: &mut [Option<Located<T>>],
    starts: &[usize],
    stamp: u64,
    put: &impl Fn(usize, T, SlotMut<'_>) -> Option<R>,
) -> (usize, Vec<(usize, R)>) {
    let (mut created_count, mut out) = (0, Vec::new());
    let offset = starts[base];
    for (k, shard) in shards.iter_mut().enumerate() {
        let run = &mut items[starts[base + k] - offset..starts[base + k + 1] - offset];
        if run.is_empty() {
            continue;
        }
        let shard = Arc::make_mut(shard);
        shard.reserve(run.len(), rehash);
        for item in run {
            let Located { hash, at, name, payload, .. } = item.take().expect("each topic is visited once");
            let (slot, created) = match shard.entry(hash, same(hash, &name), rehash) {
                hashbrown::hash_table::Entry::Occupied(o) => (o.into_mut(), false),
                hashbrown::hash_table::Entry::Vacant(v) => {
                    created_count += 1;
                    let entry = Arc::new(TopicEntry::new(BrokerQueues::default(), stamp));
                    (v.insert(Slot { hash, name, entry }).into_mut(), true)
                }
            };
            if let Some(r) =
                put(at as usize, payload, SlotMut { name: &slot.name, entry: &mut slot.entry, stamp, created })
            {
                out.push((at as usize, r));
            }
        }
    }
    (created_count, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_protocol::body::QueueData;

    fn qd(broker: &str, perm: i32) -> QueueData {
        QueueData { broker_name: broker.into(), read_queue_nums: 4, write_queue_nums: 4, perm, topic_sys_flag: 0 }
    }

    fn put(index: &mut TopicIndex, topic: &str, q: QueueData, stamp: u64) {
        let (e, _) = index.get_or_insert_mut(topic, || topic.into(), stamp);
        e.entry.queues_mut().insert(q);
    }

    #[test]
    fn a_published_entry_is_replaced_not_mutated() {
        let mut index = TopicIndex::default();
        put(&mut index, "T", qd("a", 6), 1);
        let published = index.clone();
        let before = published.get("T").unwrap().clone();
        before.answer_cell(true).get_or_init(|| Box::new(Bytes::from_static(b"cached")));
        put(&mut index, "T", qd("a", 4), 2);
        // The published copy still answers what it answered.
        assert_eq!(published.get("T").unwrap().queues().get("a").unwrap().perm, 6);
        assert_eq!(published.get("T").unwrap().answer_cell(true).get().map(|b| &b[..]), Some(&b"cached"[..]));
        let now = index.get("T").unwrap();
        assert_eq!((now.queues().get("a").unwrap().perm, now.version()), (4, 2));
        assert!(now.answer_cell(true).get().is_none(), "a changed entry must not keep an old answer");
        assert!(!published.ptr_eq(&index));
    }

    #[test]
    fn entries_of_the_generation_being_built_are_written_in_place() {
        let mut index = TopicIndex::default();
        put(&mut index, "T", qd("a", 6), 1);
        let first = Arc::as_ptr(index.get("T").unwrap());
        put(&mut index, "T", qd("b", 6), 1);
        assert_eq!(Arc::as_ptr(index.get("T").unwrap()), first);
        assert_eq!(index.get("T").unwrap().queues().len(), 2);
    }

    #[test]
    fn put_many_probes_once_per_name_and_keeps_present_names() {
        let mut index = TopicIndex::default();
        put(&mut index, "old", qd("a", 6), 1);
        let published = index.clone();
        let mut names: Vec<String> = (0..5_000).map(|i| format!("t{i}")).collect();
        names.extend(["old".to_string(), "t7".to_string()]);
        let mut seen = Vec::new();
        let items = names.iter().enumerate().map(|(i, n)| (TopicName::from(n.as_str()), i as i32));
        let seen = std::sync::Mutex::new(&mut seen);
        let said = index.put_many(items, 2, |i, perm, slot| {
            assert_eq!(perm, i as i32, "the payload travels with its name");
            seen.lock().unwrap().push((i, slot.created));
            let created = slot.created;
            slot.open().queues_mut().insert(qd("b", perm));
            (!created).then_some(i * 10)
        });
        let seen = seen.into_inner().unwrap();
        let mut said: Vec<(usize, usize)> = said;
        said.sort_unstable();
        assert_eq!(said, vec![(5_000, 50_000), (5_001, 50_010)]);
        assert_eq!(seen.len(), names.len());
        assert_eq!(index.len(), 5_001);
        let mut present: Vec<usize> = seen.iter().filter(|(_, c)| !c).map(|(i, _)| *i).collect();
        present.sort_unstable(); // two threads push in any order
        assert_eq!(present, vec![5_000, 5_001], "a present topic keeps its slot");
        // The same name twice: visited in order (by the same thread), so the later write holds.
        let at = |n: &str| seen.iter().position(|(i, _)| names[*i] == n).unwrap();
        assert!(at("t7") < seen.iter().position(|(i, _)| *i == 5_001).unwrap());
        assert_eq!(index.get("t7").unwrap().queues().get("b").unwrap().perm, 5_001);
        // The published copy is untouched; the present topic was copied, not written.
        assert_eq!(published.get("old").unwrap().queues().len(), 1);
        assert_eq!(index.get("old").unwrap().queues().len(), 2);
        assert_eq!(index.get("old").unwrap().version(), 2);
    }

    #[test]
    fn unchanged_shards_stay_shared_and_len_follows() {
        let mut index = TopicIndex::default();
        let names: Vec<String> = (0..20_000).map(|i| format!("topic-{i}")).collect();
        index.reserve_for(names.iter().map(String::as_str));
        for n in &names {
            put(&mut index, n, qd("a", 6), 1);
        }
        assert_eq!(index.len(), names.len());
        let published = index.clone();
        index.touch("topic-7", 2);
        index.touch("absent", 2);
        let shared = index.shards.iter().zip(published.shards.iter()).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, INDEX_SHARDS - 1, "one touch copies one shard");
        assert_eq!(index.changed_in(2), vec![&TopicName::from("topic-7")]);
        assert_eq!(index.remove("topic-7").as_deref(), Some("topic-7"));
        assert_eq!(index.remove("topic-7"), None);
        assert_eq!((index.len(), published.len()), (names.len() - 1, names.len()));
        assert!(published.contains_key("topic-7") && !index.contains_key("topic-7"));
        assert_eq!(index.iter().count(), names.len() - 1);
    }
}
