//! A decoded registration: `RegisterBrokerBody`, whose topics are a `TopicConfigs`, held
//! in three allocations whatever their number.
//!
//! A 100k-topic registration decoded into `Vec<TopicConfig>` made 100k name strings on the
//! decoding threads that the route writer then freed on its own: about a third of the
//! scan's time (`cargo bench --bench protocol`, register_body_parse/100k json 13.4 → 9.3 ms
//! without them) and cross-thread frees in the allocator. Here every name is appended to
//! one string and the numbers go to one array of 24-byte rows; attributes, which the
//! NameServer never reads and real brokers mostly leave empty, are kept aside by row.
//! Must not: touch route state.

use super::model::{DataVersion, TopicConfig, TopicFilterType, TopicQueueMappingInfo};

/// A decoded REGISTER_BROKER body, whatever form it arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterBrokerBody {
    pub data_version: DataVersion,
    pub topic_configs: TopicConfigs,
    /// `None` when the body carried no filterServerList (bare wrapper form); Java then leaves
    /// the stored filter servers unchanged (`RouteInfoManager.registerBroker`).
    pub filter_server_list: Option<Vec<String>>,
    /// Static-topic mapping infos, keyed by topic (the last section of the
    /// compressed layout from V5_0_0 on).
    pub topic_queue_mapping_infos: Vec<(String, TopicQueueMappingInfo)>,
}

/// A registration's topics in wire order. Equal when the same topics come in the same order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TopicConfigs {
    /// Every topic name, one after the other.
    names: String,
    rows: Vec<Row>,
    /// (row, attributes) for the rows with attributes, by row.
    attributes: Vec<(u32, Vec<(String, String)>)>,
}

/// One topic-table member's fingerprint: a 64-bit hash of its bytes (from its key's quote
/// to its value's end) and their length. 12 bytes (held per topic of a large registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPrint {
    hash_low: u32,
    hash_high: u32,
    len: u32,
}

impl MemberPrint {
    pub fn new(hash: u64, len: u32) -> MemberPrint {
        MemberPrint { hash_low: hash as u32, hash_high: (hash >> 32) as u32, len }
    }

    pub fn hash(&self) -> u64 {
        u64::from(self.hash_high) << 32 | u64::from(self.hash_low)
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A body's topic-table members (null ones left out) fingerprinted in body order: what the
/// next body from the same broker is compared against (`TopicsDelta`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberPrints(pub Vec<MemberPrint>);

impl MemberPrints {
    /// One hash of every fingerprint in order: names the body these came from.
    pub fn token(&self) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = foldhash::fast::FixedState::with_seed(0x746f_6b65_6e00_0001).build_hasher();
        h.write_usize(self.0.len());
        for p in &self.0 {
            h.write_u64(p.hash());
            h.write_u32(p.len);
        }
        h.finish()
    }
}

/// The hash of `MemberPrint`: any fixed 64-bit hash will do within one process.
pub fn member_hash(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6d65_7269_6469_616e).hash_one(bytes)
}

/// One step of a `TopicsDelta`, over the previous body's members and the new body's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOp {
    /// The next `n` previous members come next in this body, byte for byte.
    Same(u32),
    /// The next `n` previous members are not in this body as they were (changed, moved or
    /// gone: a `changed` topic of the same name says which).
    Skip(u32),
    /// The next `n` topics of `changed` come next in this body.
    Changed(u32),
}

/// A topic table described against the previous body of the same broker (its
/// `MemberPrints`): which members are byte for byte the previous ones, in order, and the
/// others decoded. A re-send with 1% of its topics changed decodes 1% of them; a member
/// whose bytes are equal is the same topic config, since a member's bytes alone decide it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsDelta {
    pub ops: Vec<DeltaOp>,
    /// The members not found byte for byte among the previous ones, in body order.
    pub changed: TopicConfigs,
    /// Topic members in this body (same and changed).
    pub members: usize,
}

impl TopicsDelta {
    /// Appends `op`, merged into the last one if of the same kind.
    pub fn push(&mut self, op: DeltaOp) {
        use DeltaOp::*;
        match (self.ops.last_mut(), op) {
            (Some(Same(n)), Same(m)) | (Some(Skip(n)), Skip(m)) | (Some(Changed(n)), Changed(m)) => *n += m,
            (_, op) => self.ops.push(op),
        }
    }

    /// The topics this stands for, given the previous body's (`None` if the ops do not
    /// cover exactly `prev` and `changed`): what the differential tests compare.
    #[cfg(test)]
    pub fn expand(&self, prev: &TopicConfigs) -> Option<TopicConfigs> {
        let (mut out, mut at, mut changed) = (TopicConfigs::new(), 0usize, self.changed.iter());
        for op in &self.ops {
            match *op {
                DeltaOp::Same(n) => {
                    for i in at..at + n as usize {
                        out.push(prev.get(i)?.to_owned()).ok()?;
                    }
                    at += n as usize;
                }
                DeltaOp::Skip(n) => at += n as usize,
                DeltaOp::Changed(n) => {
                    for _ in 0..n {
                        out.push(changed.next()?.to_owned()).ok()?;
                    }
                }
            }
        }
        (at == prev.len() && changed.next().is_none() && out.len() == self.members).then_some(out)
    }
}

// The rows of a 100k-topic registration take 2.4 MB.
const _: () = assert!(std::mem::size_of::<Row>() == 24);

/// One topic without its name and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    /// Where the name ends in `names` (it starts where the previous row's ends).
    name_end: u32,
    fields: TopicFields,
}

/// One topic of a `TopicConfigs`, borrowed: the fields of `TopicConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfigRef<'a> {
    pub topic_name: &'a str,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
    pub order: bool,
    pub topic_filter_type: TopicFilterType,
    pub attributes: &'a [(String, String)],
}

impl TopicConfigRef<'_> {
    pub fn to_owned(&self) -> TopicConfig {
        TopicConfig {
            topic_name: self.topic_name.to_owned(),
            read_queue_nums: self.read_queue_nums,
            write_queue_nums: self.write_queue_nums,
            perm: self.perm,
            topic_sys_flag: self.topic_sys_flag,
            order: self.order,
            topic_filter_type: self.topic_filter_type,
            attributes: self.attributes.to_vec(),
        }
    }
}

/// Why a topic could not be added: the names would pass 4 GiB (a body is far below that:
/// `frameBytesMax` and the inflation cap bound it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamesTooLong;

impl TopicConfigs {
    pub fn new() -> TopicConfigs {
        TopicConfigs::default()
    }

    /// Room for `topics` topics whose names take `name_bytes` bytes together.
    pub fn with_capacity(topics: usize, name_bytes: usize) -> TopicConfigs {
        TopicConfigs {
            names: String::with_capacity(name_bytes),
            rows: Vec::with_capacity(topics),
            attributes: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes this holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        let attributes: usize = self
            .attributes
            .iter()
            .flat_map(|(_, list)| list.iter())
            .map(|(k, v)| k.capacity() + v.capacity() + std::mem::size_of::<(String, String)>())
            .sum();
        self.names.capacity()
            + self.rows.capacity() * std::mem::size_of::<Row>()
            + self.attributes.capacity() * std::mem::size_of::<(u32, Vec<(String, String)>)>()
            + attributes
    }

    /// Heap bytes per topic apart from its name and attributes (for estimates made before
    /// decoding).
    pub const ROW_BYTES: usize = std::mem::size_of::<Row>();

    /// Appends a topic given by its parts (the scanner's way: the name is copied, nothing
    /// else is allocated unless there are attributes).
    pub fn push_parts(
        &mut self,
        topic_name: &str,
        fields: TopicFields,
        attributes: Vec<(String, String)>,
    ) -> Result<(), NamesTooLong> {
        let name_end = u32::try_from(self.names.len() + topic_name.len()).map_err(|_| NamesTooLong)?;
        let row = u32::try_from(self.rows.len()).map_err(|_| NamesTooLong)?;
        self.names.push_str(topic_name);
        if !attributes.is_empty() {
            self.attributes.push((row, attributes));
        }
        self.rows.push(Row { name_end, fields });
        Ok(())
    }

    pub fn push(&mut self, topic: TopicConfig) -> Result<(), NamesTooLong> {
        let fields = TopicFields::of(&topic);
        self.push_parts(&topic.topic_name, fields, topic.attributes)
    }

    /// Appends every topic of `other`, in its order.
    pub fn append(&mut self, other: TopicConfigs) -> Result<(), NamesTooLong> {
        let (names_before, rows_before) = (self.names.len(), self.rows.len());
        u32::try_from(names_before + other.names.len()).map_err(|_| NamesTooLong)?;
        u32::try_from(rows_before + other.rows.len()).map_err(|_| NamesTooLong)?;
        self.names.push_str(&other.names);
        // Both fit in u32 (checked above).
        let (names_shift, rows_shift) = (names_before as u32, rows_before as u32);
        self.rows.extend(other.rows.iter().map(|row| Row { name_end: row.name_end + names_shift, ..*row }));
        self.attributes.extend(other.attributes.into_iter().map(|(row, list)| (row + rows_shift, list)));
        Ok(())
    }

    pub fn get(&self, index: usize) -> Option<TopicConfigRef<'_>> {
        let row = self.rows.get(index)?;
        let attributes = match self.attributes.binary_search_by_key(&(index as u32), |(row, _)| *row) {
            Ok(at) => &self.attributes[at].1[..],
            Err(_) => &[],
        };
        Some(self.view(index, row, attributes))
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter { topics: self, next: 0, next_attributes: 0 }
    }

    /// `topics` in order; `Err` past 4 GiB of names (a peer's body can not get there, but
    /// the caller need not prove it).
    pub fn from_topics(topics: impl IntoIterator<Item = TopicConfig>) -> Result<TopicConfigs, NamesTooLong> {
        let mut out = TopicConfigs::new();
        for topic in topics {
            out.push(topic)?;
        }
        Ok(out)
    }

    pub fn to_vec(&self) -> Vec<TopicConfig> {
        self.iter().map(|t| t.to_owned()).collect()
    }

    fn view<'a>(&'a self, index: usize, row: &Row, attributes: &'a [(String, String)]) -> TopicConfigRef<'a> {
        let start = if index == 0 { 0 } else { self.rows[index - 1].name_end as usize };
        TopicConfigRef {
            // Rows split `names` only where a pushed name ended: always a char boundary.
            topic_name: &self.names[start..row.name_end as usize],
            read_queue_nums: row.fields.read_queue_nums,
            write_queue_nums: row.fields.write_queue_nums,
            perm: row.fields.perm,
            topic_sys_flag: row.fields.topic_sys_flag,
            order: row.fields.order,
            topic_filter_type: row.fields.topic_filter_type,
            attributes,
        }
    }
}

/// A topic's numbers and flags: everything but its name and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicFields {
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
    pub order: bool,
    pub topic_filter_type: TopicFilterType,
}

impl TopicFields {
    fn of(topic: &TopicConfig) -> TopicFields {
        TopicFields {
            read_queue_nums: topic.read_queue_nums,
            write_queue_nums: topic.write_queue_nums,
            perm: topic.perm,
            topic_sys_flag: topic.topic_sys_flag,
            order: topic.order,
            topic_filter_type: topic.topic_filter_type,
        }
    }
}

/// The topics of a `TopicConfigs` in order.
pub struct Iter<'a> {
    topics: &'a TopicConfigs,
    next: usize,
    /// The first entry of `topics.attributes` not yet passed.
    next_attributes: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = TopicConfigRef<'a>;

    fn next(&mut self) -> Option<TopicConfigRef<'a>> {
        let topics = self.topics;
        let row = topics.rows.get(self.next)?;
        let index = self.next;
        self.next += 1;
        let attributes = match topics.attributes.get(self.next_attributes) {
            Some((at, list)) if *at as usize == index => {
                self.next_attributes += 1;
                &list[..]
            }
            _ => &[],
        };
        Some(topics.view(index, row, attributes))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.topics.rows.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a TopicConfigs {
    type Item = TopicConfigRef<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl From<Vec<TopicConfig>> for TopicConfigs {
    /// Panics past 4 GiB of names, which no test or tool builds.
    fn from(topics: Vec<TopicConfig>) -> TopicConfigs {
        topics.into_iter().collect()
    }
}

impl FromIterator<TopicConfig> for TopicConfigs {
    /// Panics past 4 GiB of names, which no test or tool builds.
    fn from_iter<I: IntoIterator<Item = TopicConfig>>(iter: I) -> TopicConfigs {
        TopicConfigs::from_topics(iter).expect("topic names of a built body stay below 4 GiB")
    }
}

impl std::fmt::Debug for TopicConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, perm: i32, attributes: &[(&str, &str)]) -> TopicConfig {
        TopicConfig {
            perm,
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..TopicConfig::new(name)
        }
    }

    #[test]
    fn keeps_every_topic_in_order_with_its_attributes() {
        let list = vec![
            topic("a", 6, &[]),
            topic("", 2, &[("+x", "1")]),
            topic("ü-topic", 4, &[]),
            topic("last", 6, &[("k", "v"), ("k2", "")]),
        ];
        let topics = TopicConfigs::from(list.clone());
        assert_eq!(topics.len(), 4);
        assert_eq!(topics.to_vec(), list);
        for (i, t) in list.iter().enumerate() {
            assert_eq!(topics.get(i).unwrap().to_owned(), *t);
        }
        assert!(topics.get(4).is_none());
        assert_eq!(topics.iter().len(), 4);
    }

    #[test]
    fn append_is_pushing_one_by_one() {
        let first = vec![topic("a", 6, &[("x", "1")]), topic("bb", 6, &[])];
        let second = vec![topic("ccc", 2, &[]), topic("d", 4, &[("y", "2")])];
        let mut joined = TopicConfigs::from(first.clone());
        joined.append(TopicConfigs::from(second.clone())).unwrap();
        let all: Vec<TopicConfig> = first.into_iter().chain(second).collect();
        assert_eq!(joined, TopicConfigs::from(all.clone()));
        assert_eq!(joined.to_vec(), all);
    }

    #[test]
    fn equality_is_by_topics_in_order() {
        let a = TopicConfigs::from(vec![topic("a", 6, &[]), topic("b", 6, &[])]);
        let b = TopicConfigs::from(vec![topic("b", 6, &[]), topic("a", 6, &[])]);
        assert_ne!(a, b);
        // The same names split differently are different topics.
        assert_ne!(
            TopicConfigs::from(vec![topic("ab", 6, &[]), topic("", 6, &[])]),
            TopicConfigs::from(vec![topic("a", 6, &[]), topic("b", 6, &[])])
        );
        assert!(TopicConfigs::new().is_empty());
        assert!(a.heap_bytes() >= 2 + 2 * TopicConfigs::ROW_BYTES);
    }
}
