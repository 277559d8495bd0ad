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
