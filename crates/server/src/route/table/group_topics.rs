//! The reverse index of `topic_queue`: each broker group's topics, in the order its topic
//! writer's last full body listed them, each with the queue-data fields that body wrote.
//!
//! Why the order and the fields: a broker re-sends every topic every 30 s with a new data
//! version when a few changed. Probing the index for each of 100k topics costs several
//! cache misses per topic (~20 ms); walking the new body beside the last one, in step, and
//! comparing names and packed fields touches two sequential arrays (~1–2 ms), so only the
//! topics that differ reach the index. A broker sends its topics in the same order each
//! time (Java iterates the same ConcurrentHashMap); a topic added or removed shifts the
//! walk by one, which a one-entry look-ahead absorbs. Anything else falls back to a probe.
//!
//! Must not: hold a topic twice, or a topic whose queue data lacks this group.

use super::TopicName;
use meridian_protocol::body::QueueData;

/// `fields` of an entry whose queue data is not known to match anything (never matches).
pub(super) const FIELDS_UNKNOWN: u64 = u64::MAX;

/// A queue data's fields in one word, exact: queue counts up to 65535, perm and sysflag up
/// to 255 (every value RocketMQ uses); anything larger is `FIELDS_UNKNOWN`.
pub(super) fn pack(qd: &QueueData) -> u64 {
    let small = |v: i32, max: i32| (0..=max).contains(&v).then_some(v as u64);
    match (
        small(qd.read_queue_nums, 0xFFFF),
        small(qd.write_queue_nums, 0xFFFF),
        small(qd.perm, 0xFF),
        small(qd.topic_sys_flag, 0xFF),
    ) {
        (Some(r), Some(w), Some(p), Some(s)) => r | w << 16 | p << 32 | s << 40,
        _ => FIELDS_UNKNOWN,
    }
}

#[derive(Debug, Clone)]
pub(super) struct Listed {
    /// The index slot's own name (the same allocation).
    pub name: TopicName,
    /// `pack` of this group's queue data of the topic as the table holds it, when
    /// `GroupTopics::in_sync`; `FIELDS_UNKNOWN` if not known.
    pub fields: u64,
}

#[derive(Debug, Clone, Default)]
pub(super) struct GroupTopics {
    pub list: Vec<Listed>,
    /// The `fields` are true: nothing but a registration's rebuild changed this group's
    /// queue data since the list was built (`set_perm`, `register_topic` clear it).
    pub in_sync: bool,
    /// The list's first entries are, entry for entry and in order, the topics of the
    /// master's body whose member fingerprints hash to this token
    /// (`RegisterBroker::prints_token`), with the fields that body wrote; the rest are
    /// topics the group kept that the body no longer lists. A re-send described against that
    /// body (`TopicsDelta`) can be applied to it. Any change to the list but a rebuild
    /// clears it; valid only `in_sync`.
    pub delta_base: Option<DeltaBase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeltaBase {
    /// `MemberPrints::token` of the body.
    pub token: u64,
    /// How many of the first entries are that body's topics.
    pub listed: usize,
}

impl GroupTopics {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &TopicName> {
        self.list.iter().map(|l| &l.name)
    }

    /// A topic that gained this group's queue data other than by a rebuild.
    pub fn push(&mut self, name: TopicName) {
        self.delta_base = None;
        self.list.push(Listed { name, fields: FIELDS_UNKNOWN });
    }

    /// O(topics): for the rare single removals (DELETE_TOPIC_IN_NAMESRV); keeps the order.
    pub fn remove(&mut self, topic: &str) -> bool {
        self.delta_base = None;
        match self.list.iter().position(|l| *l.name == *topic) {
            Some(i) => {
                self.list.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Walks a new body beside the group's last list. `matched(name)` returns the index of the
/// previous entry with that name if it is the next one or the one after (the one passed
/// over stays a leftover); the cursor only moves forward, so each previous entry is
/// matched at most once.
pub(super) struct Walk<'p> {
    prev: &'p [Listed],
    next: usize,
    matched: Vec<bool>,
}

impl<'p> Walk<'p> {
    pub fn new(prev: &'p [Listed]) -> Walk<'p> {
        Walk { prev, next: 0, matched: vec![false; prev.len()] }
    }

    pub fn find(&mut self, name: &str) -> Option<&'p Listed> {
        for k in self.next..(self.next + 2).min(self.prev.len()) {
            if *self.prev[k].name == *name {
                self.matched[k] = true;
                self.next = k + 1;
                return Some(&self.prev[k]);
            }
        }
        None
    }

    /// The previous entries no name matched, in their order.
    pub fn leftovers(self) -> impl Iterator<Item = &'p Listed> {
        self.prev.iter().zip(self.matched).filter(|(_, m)| !m).map(|(l, _)| l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qd(r: i32, w: i32, perm: i32, flag: i32) -> QueueData {
        QueueData { broker_name: "b".into(), read_queue_nums: r, write_queue_nums: w, perm, topic_sys_flag: flag }
    }

    #[test]
    fn pack_is_exact_or_unknown() {
        assert_ne!(pack(&qd(8, 8, 6, 0)), pack(&qd(8, 8, 4, 0)));
        assert_ne!(pack(&qd(8, 16, 6, 0)), pack(&qd(16, 8, 6, 0)));
        assert_ne!(pack(&qd(8, 8, 6, 0)), pack(&qd(8, 8, 6, 1)));
        assert_eq!(pack(&qd(65535, 65535, 255, 255)) & FIELDS_UNKNOWN, pack(&qd(65535, 65535, 255, 255)));
        assert_ne!(pack(&qd(65535, 65535, 255, 255)), FIELDS_UNKNOWN);
        assert_eq!(pack(&qd(65536, 8, 6, 0)), FIELDS_UNKNOWN);
        assert_eq!(pack(&qd(-1, 8, 6, 0)), FIELDS_UNKNOWN);
        assert_eq!(pack(&qd(8, 8, 256, 0)), FIELDS_UNKNOWN);
    }

    fn listed(names: &[&str]) -> Vec<Listed> {
        names.iter().map(|n| Listed { name: TopicName::from(*n), fields: 0 }).collect()
    }

    #[test]
    fn the_walk_absorbs_one_insertion_or_removal_and_keeps_leftovers() {
        let prev = listed(&["a", "b", "c", "d", "e"]);
        let mut walk = Walk::new(&prev);
        // "b" removed, "x" inserted, "e" moved to the front (a miss, then a leftover).
        let found: Vec<bool> = ["e", "a", "c", "x", "d"].iter().map(|n| walk.find(n).is_some()).collect();
        assert_eq!(found, [false, true, true, false, true]);
        let left: Vec<&str> = walk.leftovers().map(|l| &*l.name).collect();
        assert_eq!(left, ["b", "e"]);
    }

    #[test]
    fn a_duplicate_name_matches_once() {
        let prev = listed(&["a", "b"]);
        let mut walk = Walk::new(&prev);
        assert!(walk.find("a").is_some());
        assert!(walk.find("a").is_none());
        assert!(walk.find("b").is_some());
        assert_eq!(walk.leftovers().count(), 0);
    }
}
