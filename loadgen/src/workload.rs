//! The simulated cluster: topic names, broker groups (clusters, names, master and slaves,
//! addresses), which groups host which topic, queue counts, data versions and the changes
//! made to them each period, and the REGISTER_BROKER bodies and headers that follow.
//!
//! Everything here is a pure function of the `WorkloadSpec` (seed included), so two runs
//! with the same flags register the same cluster and ask for the same topics. Must not:
//! do I/O or read the clock (timestamps are passed in).

use crate::rng::Rng;
use crate::spread;
use meridian_protocol::body::{self, DataVersion, RegisterBrokerBody, TopicConfig};
use meridian_protocol::header::write_json_str;
use serde::Serialize;

/// Largest topic count a run may simulate; 10M names of ~35 bytes is ~0.5 GB of memory.
pub const TOPICS_MAX: u32 = 10_000_000;
/// Largest number of broker instances (groups × (1 + slaves)); each gets a distinct
/// 127.1.x.y address, and that range holds 65,536.
pub const BROKER_INSTANCES_MAX: u32 = 65_536;
/// Longest topic name RocketMQ accepts (`TopicValidator.TOPIC_MAX_LENGTH`).
pub const TOPIC_NAME_BYTES_MAX: usize = 127;
/// Request version a 5.x broker stamps: V5_3_3 (`MQVersion.Version` ordinal).
pub const VERSION_BROKER_5X: i32 = 479;
/// Request version a 4.x broker stamps: V4_9_4 (`MQVersion.Version` ordinal).
pub const VERSION_BROKER_4X: i32 = 401;
/// Port of every simulated broker's main listener; the IP is what tells them apart.
const BROKER_PORT: u16 = 10911;
/// HA port, one above the main port as in Java's defaults.
const BROKER_HA_PORT: u16 = 10912;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TopicNames {
    /// `TopicTest000123` (15 bytes), sequential and very compressible.
    Short,
    /// `prod_trade_refund_notify_7f3a2c_000123` (~35 bytes), random words and hex.
    Realistic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum BrokerVersion {
    /// 5.x brokers: request version 479, `enableActingMaster` header, 5.x body shape.
    #[value(name = "5")]
    #[serde(rename = "5.x")]
    V5,
    /// 4.x brokers: request version 401, no `enableActingMaster`, 4.x body shape.
    #[value(name = "4")]
    #[serde(rename = "4.x")]
    V4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncodingKind {
    /// Plain JSON body.
    None,
    /// RocketMQ's compressed layout in a zlib stream, header `compressed=true`
    /// (Java's `RegisterBrokerBody.encode(true)`).
    Deflate,
    /// Meridian extension: header `bodyEncoding=zstd`, body = zstd frame of the JSON body.
    Zstd,
}

/// What the flags say about the simulated cluster.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSpec {
    pub prefix: String,
    pub clusters: u32,
    /// Broker groups (distinct broker names) that host topics for the whole run.
    pub broker_groups: u32,
    /// Extra groups that come and go (churn); they host the topics of a stable group.
    pub churn_groups: u32,
    pub slaves: u32,
    pub topics: u32,
    /// Broker groups per topic (ignored with `per_broker`).
    pub width: u32,
    /// 0: `topics` topics, each on `width` groups. Otherwise the scale layout (`spread`):
    /// every group hosts exactly this many topics, each topic on 2..=10 groups, and
    /// `topics` is derived (the universe size).
    pub per_broker: u32,
    pub names: TopicNames,
    pub queue_nums: Vec<i32>,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct BrokerInstance {
    /// 0 = master, 1.. = slaves.
    pub broker_id: i64,
    pub addr: String,
    pub ha_addr: String,
}

#[derive(Debug, Clone)]
pub struct BrokerGroup {
    pub name: String,
    pub cluster: String,
    pub instances: Vec<BrokerInstance>,
    /// Topic indexes this group hosts, ascending.
    pub topics: Vec<u32>,
}

#[derive(Debug)]
pub struct Workload {
    pub spec: WorkloadSpec,
    pub topic_names: Vec<String>,
    /// Base read/write queue count per topic.
    pub queue_nums: Vec<i32>,
    /// Stable groups first (`0..broker_groups`), then churn groups.
    pub groups: Vec<BrokerGroup>,
    /// The scale layout's slot starts (`spread::topic_starts`), when `spec.per_broker > 0`.
    pub starts: Option<Vec<u64>>,
}

impl Workload {
    pub fn build(mut spec: WorkloadSpec) -> Result<Workload, String> {
        let (starts, mut hosted) = if spec.per_broker > 0 {
            let starts = spread::topic_starts(spec.broker_groups, spec.per_broker, spec.seed)?;
            spec.topics = u32::try_from(starts.len() - 1).map_err(|_| "too many topics".to_string())?;
            spec.width = spread::WIDTH_MIN;
            let hosted = spread::hosted(&starts, spec.broker_groups);
            (Some(starts), hosted)
        } else {
            (None, Vec::new())
        };
        validate(&spec)?;
        let topic_names = topic_names(&spec)?;
        let mut rng = Rng::derive(spec.seed, 0x71_75_65);
        let queue_nums: Vec<i32> =
            (0..spec.topics).map(|_| spec.queue_nums[rng.below(spec.queue_nums.len() as u64) as usize]).collect();
        let mut groups = Vec::new();
        let total_groups = spec.broker_groups + spec.churn_groups;
        for g in 0..total_groups {
            let churn = g >= spec.broker_groups;
            let name = if churn {
                format!("{}lg-churn-broker-{}", spec.prefix, g - spec.broker_groups)
            } else {
                format!("{}lg-broker-{g}", spec.prefix)
            };
            let cluster = format!("{}lg-cluster-{}", spec.prefix, g % spec.clusters);
            let instances = (0..=spec.slaves)
                .map(|id| {
                    let k = g * (spec.slaves + 1) + id;
                    let ip = format!("127.1.{}.{}", k / 256, k % 256);
                    BrokerInstance {
                        broker_id: id as i64,
                        addr: format!("{ip}:{BROKER_PORT}"),
                        ha_addr: format!("{ip}:{BROKER_HA_PORT}"),
                    }
                })
                .collect();
            // A churn group joins the routes of the stable group it shadows.
            let hosted_as = if churn { (g - spec.broker_groups) % spec.broker_groups } else { g };
            let topics = match hosted.get_mut(hosted_as as usize) {
                Some(list) if !churn => std::mem::take(list),
                Some(list) => list.clone(),
                None => (0..spec.topics).filter(|&t| hosts(&spec, hosted_as, t)).collect(),
            };
            groups.push(BrokerGroup { name, cluster, instances, topics });
        }
        for group in &groups {
            // The Java NameServer refuses a first registration carrying exactly one topic.
            if group.topics.len() < 2 {
                return Err(format!(
                    "broker group {} would host {} topic(s); a first registration needs at least 2 \
                     (raise --topics or --width, or lower --brokers)",
                    group.name,
                    group.topics.len()
                ));
            }
        }
        Ok(Workload { spec, topic_names, queue_nums, groups, starts })
    }

    pub fn stable_groups(&self) -> &[BrokerGroup] {
        &self.groups[..self.spec.broker_groups as usize]
    }

    /// Stable groups hosting topic `t`: the `width` groups starting at `t % broker_groups`,
    /// or in the scale layout the groups of the topic's slots.
    pub fn groups_of_topic(&self, t: u32) -> impl Iterator<Item = u32> + '_ {
        let n = self.spec.broker_groups;
        let (first, width) = match &self.starts {
            None => (t % n, self.spec.width),
            Some(starts) => {
                let (from, to) = (starts[t as usize], starts[t as usize + 1]);
                ((from % n as u64) as u32, (to - from) as u32)
            }
        };
        (0..width).map(move |j| (first + j) % n)
    }

    /// Queue count of topic `t`, or its alternative once a period change flipped it.
    pub fn queue_nums_of(&self, t: u32, flipped: bool) -> i32 {
        let base = self.queue_nums[t as usize];
        if flipped {
            alternative_queue_nums(base)
        } else {
            base
        }
    }
}

/// Whether stable group `g` hosts topic `t`.
fn hosts(spec: &WorkloadSpec, g: u32, t: u32) -> bool {
    let n = spec.broker_groups;
    (g + n - t % n) % n < spec.width
}

/// The queue count a changed topic switches to (and back from on the next change).
fn alternative_queue_nums(base: i32) -> i32 {
    if base >= 512 {
        base / 2
    } else {
        base * 2
    }
}

/// The topic names of a spec, without any broker (for runs against a server that already
/// knows them, such as the echo server).
pub fn topic_names(spec: &WorkloadSpec) -> Result<Vec<String>, String> {
    validate_names(spec)?;
    let mut rng = Rng::derive(spec.seed, 0x70_71_63);
    Ok((0..spec.topics).map(|t| topic_name(spec, t, &mut rng)).collect())
}

fn validate_names(spec: &WorkloadSpec) -> Result<(), String> {
    if spec.topics == 0 || spec.topics > TOPICS_MAX {
        return Err(format!("--topics {} must be in 1..={TOPICS_MAX}", spec.topics));
    }
    if let Some(c) = spec.prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(format!("--prefix {:?}: character {c:?} is not allowed in RocketMQ names", spec.prefix));
    }
    if spec.prefix.len() > 40 {
        return Err(format!("--prefix {:?} is longer than 40 bytes", spec.prefix));
    }
    Ok(())
}

fn validate(spec: &WorkloadSpec) -> Result<(), String> {
    validate_names(spec)?;
    if spec.clusters == 0 {
        return Err("--clusters must be at least 1".into());
    }
    if spec.broker_groups == 0 {
        return Err("--brokers must be at least 1 for a scenario that registers brokers".into());
    }
    if spec.width == 0 || spec.width > spec.broker_groups {
        return Err(format!("--width {} must be in 1..=--brokers ({})", spec.width, spec.broker_groups));
    }
    let instances = (spec.broker_groups as u64 + spec.churn_groups as u64) * (spec.slaves as u64 + 1);
    if instances > BROKER_INSTANCES_MAX as u64 {
        return Err(format!(
            "{instances} broker instances (groups × (1 + --slaves)) > {BROKER_INSTANCES_MAX}, the 127.1.x.y range"
        ));
    }
    if spec.queue_nums.is_empty() || spec.queue_nums.iter().any(|&q| !(1..=1024).contains(&q)) {
        return Err(format!("--queues {:?}: each count must be in 1..=1024", spec.queue_nums));
    }
    Ok(())
}

const ENVIRONMENTS: [&str; 4] = ["prod", "stage", "test", "dev"];
const DOMAINS: [&str; 12] =
    ["trade", "order", "payment", "user", "inventory", "logistics", "risk", "search", "ads", "billing", "coupon", "im"];
const ENTITIES: [&str; 12] = [
    "refund", "invoice", "cart", "profile", "shipment", "account", "session", "price", "review", "ticket", "stock",
    "audit",
];
const EVENTS: [&str; 8] = ["notify", "created", "updated", "deleted", "sync", "retry", "changed", "event"];

fn topic_name(spec: &WorkloadSpec, t: u32, rng: &mut Rng) -> String {
    let name = match spec.names {
        TopicNames::Short => format!("{}TopicTest{t:06}", spec.prefix),
        TopicNames::Realistic => {
            let mut pick = |words: &[&'static str]| words[rng.below(words.len() as u64) as usize];
            let (env, domain, entity, event) = (pick(&ENVIRONMENTS), pick(&DOMAINS), pick(&ENTITIES), pick(&EVENTS));
            let hex = rng.below(1 << 24);
            format!("{}{env}_{domain}_{entity}_{event}_{hex:06x}_{t:06}", spec.prefix)
        }
    };
    debug_assert!(name.len() <= TOPIC_NAME_BYTES_MAX, "{name}");
    name
}

// ---------------------------------------------------------------------------------------
// A broker's topic table over time
// ---------------------------------------------------------------------------------------

/// The topic table one broker instance registers: its data version and which topics a
/// period change has flipped to their alternative queue count.
#[derive(Debug, Clone)]
pub struct TopicTable {
    pub group: u32,
    pub data_version: DataVersion,
    /// Parallel to the group's `topics`.
    flipped: Vec<bool>,
    rng: Rng,
}

impl TopicTable {
    /// Every instance of a group starts from the same seed, so master and slaves change the
    /// same topics in the same period, as replicated brokers do.
    pub fn new(workload: &Workload, group: u32, timestamp_ms: i64) -> TopicTable {
        let topic_count = workload.groups[group as usize].topics.len();
        TopicTable {
            group,
            data_version: DataVersion { counter: 1, state_version: 0, timestamp: timestamp_ms },
            flipped: vec![false; topic_count],
            rng: Rng::derive(workload.spec.seed, 0x6368_0000 + group as u64),
        }
    }

    /// Flips `ceil(fraction × topics)` distinct topics and bumps the data version if any
    /// changed. Returns the changed topic indexes (workload-wide), in ascending order.
    pub fn change(&mut self, workload: &Workload, fraction: f64, timestamp_ms: i64) -> Vec<u32> {
        let topics = &workload.groups[self.group as usize].topics;
        let count = ((fraction.clamp(0.0, 1.0) * topics.len() as f64).ceil() as usize).min(topics.len());
        if count == 0 {
            return Vec::new();
        }
        let mut positions: Vec<usize> = if count * 2 >= topics.len() {
            // Dense: a partial Fisher-Yates over all positions.
            let mut all: Vec<usize> = (0..topics.len()).collect();
            for i in 0..count {
                let j = i + self.rng.below((all.len() - i) as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(count);
            all
        } else {
            // Sparse: rejection sampling is cheaper than shuffling a huge table.
            let mut chosen = std::collections::HashSet::with_capacity(count);
            while chosen.len() < count {
                chosen.insert(self.rng.below(topics.len() as u64) as usize);
            }
            chosen.into_iter().collect()
        };
        positions.sort_unstable();
        for &p in &positions {
            self.flipped[p] = !self.flipped[p];
        }
        self.data_version.counter += 1;
        self.data_version.timestamp = timestamp_ms.max(self.data_version.timestamp + 1);
        positions.into_iter().map(|p| topics[p]).collect()
    }

    /// Current queue count of workload topic `t` in this table (None if not hosted).
    pub fn queue_nums(&self, workload: &Workload, t: u32) -> Option<i32> {
        let topics = &workload.groups[self.group as usize].topics;
        let p = topics.binary_search(&t).ok()?;
        Some(workload.queue_nums_of(t, self.flipped[p]))
    }

    /// Topics in this table (the group's, in the order they are registered).
    pub fn topic_count(&self) -> usize {
        self.flipped.len()
    }

    /// The registration body of the whole table.
    pub fn body(&self, workload: &Workload) -> RegisterBrokerBody {
        self.body_of(workload, 0..self.topic_count())
    }

    /// The registration body of the topics at `positions` of the table (a split chunk), with
    /// the current data version.
    pub fn body_of(&self, workload: &Workload, positions: std::ops::Range<usize>) -> RegisterBrokerBody {
        let topics = &workload.groups[self.group as usize].topics[positions.clone()];
        let topic_configs = topics
            .iter()
            .zip(&self.flipped[positions])
            .map(|(&t, &flipped)| {
                let q = workload.queue_nums_of(t, flipped);
                TopicConfig {
                    read_queue_nums: q,
                    write_queue_nums: q,
                    ..TopicConfig::new(workload.topic_names[t as usize].clone())
                }
            })
            .collect();
        RegisterBrokerBody {
            data_version: self.data_version,
            topic_configs,
            filter_server_list: Some(Vec::new()),
            topic_queue_mapping_infos: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Wire form of a registration
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BodyFormat {
    pub version: BrokerVersion,
    pub encoding: BodyEncodingKind,
    pub zstd_level: i32,
}

impl BodyFormat {
    pub fn request_version(&self) -> i32 {
        match self.version {
            BrokerVersion::V5 => VERSION_BROKER_5X,
            BrokerVersion::V4 => VERSION_BROKER_4X,
        }
    }
}

/// The REGISTER_BROKER body bytes exactly as sent.
pub fn encode_register_body(body: &RegisterBrokerBody, format: &BodyFormat) -> Vec<u8> {
    let mut out = Vec::new();
    match format.encoding {
        BodyEncodingKind::Deflate => {
            // Java brokers zlib-wrap the layout; the version decides the 5.x extras.
            body::encode_register_body_compressed(&mut out, body, format.request_version(), true);
        }
        BodyEncodingKind::None | BodyEncodingKind::Zstd => {
            match format.version {
                BrokerVersion::V5 => body::encode_register_body_json(&mut out, body),
                BrokerVersion::V4 => encode_register_body_json_4x(&mut out, body),
            }
            if format.encoding == BodyEncodingKind::Zstd {
                out = zstd::bulk::compress(&out, format.zstd_level).expect("zstd compression of an in-memory buffer");
            }
        }
    }
    out
}

/// A 4.x broker's RegisterBrokerBody JSON: the 5.x shape without
/// `attributes`, `mappingDataVersion` and the two mapping maps. Meridian's codec writes
/// only the 5.x shape, so this one lives here.
pub fn encode_register_body_json_4x(out: &mut Vec<u8>, body: &RegisterBrokerBody) {
    out.extend_from_slice(b"{\"filterServerList\":[");
    for (i, server) in body.filter_server_list.as_deref().unwrap_or_default().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, server);
    }
    out.extend_from_slice(b"],\"topicConfigSerializeWrapper\":{\"dataVersion\":");
    body::encode_data_version(out, &body.data_version);
    out.extend_from_slice(b",\"topicConfigTable\":{");
    for (i, topic) in body.topic_configs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, topic.topic_name);
        out.extend_from_slice(b":{\"order\":");
        out.extend_from_slice(if topic.order { b"true" } else { b"false" });
        out.extend_from_slice(
            format!(",\"perm\":{},\"readQueueNums\":{}", topic.perm, topic.read_queue_nums).as_bytes(),
        );
        out.extend_from_slice(b",\"topicFilterType\":\"");
        out.extend_from_slice(topic.topic_filter_type.java_name().as_bytes());
        out.extend_from_slice(b"\",\"topicName\":");
        write_json_str(out, topic.topic_name);
        out.extend_from_slice(
            format!(",\"topicSysFlag\":{},\"writeQueueNums\":{}}}", topic.topic_sys_flag, topic.write_queue_nums)
                .as_bytes(),
        );
    }
    out.extend_from_slice(b"}}}");
}

/// Ext fields of REGISTER_BROKER for one instance (Java's `RegisterBrokerRequestHeader`).
pub fn register_ext_fields(
    group: &BrokerGroup,
    instance: &BrokerInstance,
    body: &[u8],
    format: &BodyFormat,
    heartbeat_timeout_ms: Option<u64>,
) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("brokerName", group.name.clone()),
        ("brokerAddr", instance.addr.clone()),
        ("clusterName", group.cluster.clone()),
        ("haServerAddr", instance.ha_addr.clone()),
        ("brokerId", instance.broker_id.to_string()),
        ("bodyCrc32", body::body_crc32(body).to_string()),
        ("compressed", (format.encoding == BodyEncodingKind::Deflate).to_string()),
    ];
    if format.version == BrokerVersion::V5 {
        fields.push(("enableActingMaster", "false".into()));
    }
    if format.encoding == BodyEncodingKind::Zstd {
        fields.push(("bodyEncoding", "zstd".into()));
    }
    if let Some(ms) = heartbeat_timeout_ms {
        fields.push(("heartbeatTimeoutMillis", ms.to_string()));
    }
    fields
}

/// Ext fields shared by UNREGISTER_BROKER, QUERY_DATA_VERSION and BROKER_HEARTBEAT.
pub fn identity_ext_fields(group: &BrokerGroup, instance: &BrokerInstance) -> Vec<(&'static str, String)> {
    vec![
        ("brokerName", group.name.clone()),
        ("brokerAddr", instance.addr.clone()),
        ("clusterName", group.cluster.clone()),
        ("brokerId", instance.broker_id.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_protocol::body::{decode_register_body, BodyEncoding};

    fn spec(topics: u32, groups: u32, width: u32) -> WorkloadSpec {
        WorkloadSpec {
            prefix: String::new(),
            clusters: 2,
            broker_groups: groups,
            churn_groups: 0,
            slaves: 1,
            topics,
            width,
            per_broker: 0,
            names: TopicNames::Short,
            queue_nums: vec![4, 8, 16],
            seed: 1,
        }
    }

    fn decode(bytes: &[u8], format: &BodyFormat) -> RegisterBrokerBody {
        let encoding = match format.encoding {
            BodyEncodingKind::None => BodyEncoding::Json,
            BodyEncodingKind::Deflate => BodyEncoding::Compressed,
            BodyEncodingKind::Zstd => BodyEncoding::Zstd,
        };
        decode_register_body(bytes, format.request_version(), encoding, 64 << 20).expect("Meridian decodes it")
    }

    #[test]
    fn short_names_are_topictest_and_a_number() {
        let w = Workload::build(spec(200, 4, 1)).unwrap();
        assert_eq!(w.topic_names[123], "TopicTest000123");
        assert_eq!(w.topic_names.len(), 200);
    }

    #[test]
    fn realistic_names_are_unique_valid_and_about_35_bytes() {
        let w = Workload::build(WorkloadSpec { names: TopicNames::Realistic, ..spec(5000, 4, 1) }).unwrap();
        let unique: std::collections::HashSet<&String> = w.topic_names.iter().collect();
        assert_eq!(unique.len(), 5000);
        let mean = w.topic_names.iter().map(|n| n.len()).sum::<usize>() as f64 / 5000.0;
        assert!((30.0..42.0).contains(&mean), "mean length {mean}");
        assert!(w.topic_names.iter().all(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
    }

    #[test]
    fn same_seed_same_workload_other_seed_other_names() {
        let a = Workload::build(WorkloadSpec { names: TopicNames::Realistic, ..spec(100, 4, 2) }).unwrap();
        let b = Workload::build(WorkloadSpec { names: TopicNames::Realistic, ..spec(100, 4, 2) }).unwrap();
        assert_eq!(a.topic_names, b.topic_names);
        assert_eq!(a.queue_nums, b.queue_nums);
        let c = Workload::build(WorkloadSpec { names: TopicNames::Realistic, seed: 2, ..spec(100, 4, 2) }).unwrap();
        assert_ne!(a.topic_names, c.topic_names);
    }

    #[test]
    fn width_spreads_topics_over_that_many_groups() {
        let w = Workload::build(spec(1000, 5, 2)).unwrap();
        for t in 0..1000 {
            let groups: Vec<u32> = w.groups_of_topic(t).collect();
            assert_eq!(groups.len(), 2);
            assert_ne!(groups[0], groups[1]);
            for g in groups {
                assert!(w.groups[g as usize].topics.binary_search(&t).is_ok(), "topic {t} on group {g}");
            }
        }
        // Every group hosts width/groups of the topics.
        for g in w.stable_groups() {
            assert_eq!(g.topics.len(), 400, "{}", g.name);
        }
        let hosted: usize = w.stable_groups().iter().map(|g| g.topics.len()).sum();
        assert_eq!(hosted, 2000);
    }

    #[test]
    fn groups_have_clusters_slaves_and_distinct_addresses() {
        let w = Workload::build(spec(100, 3, 1)).unwrap();
        assert_eq!(w.groups[0].cluster, "lg-cluster-0");
        assert_eq!(w.groups[1].cluster, "lg-cluster-1");
        assert_eq!(w.groups[2].cluster, "lg-cluster-0");
        let addrs: std::collections::HashSet<&String> =
            w.groups.iter().flat_map(|g| g.instances.iter().map(|i| &i.addr)).collect();
        assert_eq!(addrs.len(), 6);
        assert_eq!(w.groups[1].instances[1].broker_id, 1);
        assert_eq!(w.groups[1].instances[1].addr, "127.1.0.3:10911");
    }

    #[test]
    fn churn_groups_shadow_stable_groups() {
        let w = Workload::build(WorkloadSpec { churn_groups: 3, ..spec(90, 2, 1) }).unwrap();
        assert_eq!(w.groups.len(), 5);
        assert_eq!(w.stable_groups().len(), 2);
        assert_eq!(w.groups[2].name, "lg-churn-broker-0");
        assert_eq!(w.groups[2].topics, w.groups[0].topics);
        assert_eq!(w.groups[3].topics, w.groups[1].topics);
        assert_eq!(w.groups[4].topics, w.groups[0].topics);
        // Expectations only name stable groups.
        assert!(w.groups_of_topic(0).all(|g| g < 2));
    }

    #[test]
    fn refusals_name_the_flag() {
        let one_topic = Workload::build(spec(3, 2, 1)).unwrap_err();
        assert!(one_topic.contains("at least 2"), "{one_topic}");
        assert!(Workload::build(spec(100, 2, 3)).unwrap_err().contains("--width"));
        assert!(Workload::build(WorkloadSpec { prefix: "a b".into(), ..spec(100, 2, 1) })
            .unwrap_err()
            .contains("--prefix"));
        assert!(Workload::build(WorkloadSpec { queue_nums: vec![0], ..spec(100, 2, 1) })
            .unwrap_err()
            .contains("--queues"));
        assert!(Workload::build(spec(0, 2, 1)).is_err());
    }

    #[test]
    fn changes_flip_the_requested_fraction_and_bump_the_version() {
        let w = Workload::build(spec(1000, 2, 1)).unwrap();
        let mut table = TopicTable::new(&w, 0, 1_000);
        assert!(table.change(&w, 0.0, 2_000).is_empty());
        assert_eq!(table.data_version.counter, 1, "no change, no new version");
        let changed = table.change(&w, 0.1, 2_000);
        assert_eq!(changed.len(), 50);
        assert_eq!(table.data_version.counter, 2);
        assert_eq!(table.data_version.timestamp, 2_000);
        for &t in &changed {
            assert_eq!(table.queue_nums(&w, t), Some(w.queue_nums_of(t, true)));
            assert_ne!(w.queue_nums_of(t, true), w.queue_nums_of(t, false));
        }
        let all = table.change(&w, 1.0, 1_500);
        assert_eq!(all.len(), 500);
        assert!(table.data_version.timestamp > 2_000, "timestamps never go back");
        // Master and slave tables evolve identically.
        let mut a = TopicTable::new(&w, 1, 0);
        let mut b = TopicTable::new(&w, 1, 0);
        assert_eq!(a.change(&w, 0.05, 1), b.change(&w, 0.05, 1));
    }

    #[test]
    fn the_scale_layout_hosts_t_topics_per_group_and_lookups_expect_the_same_groups() {
        let w = Workload::build(WorkloadSpec { per_broker: 50, clusters: 1, slaves: 0, ..spec(0, 5, 1) }).unwrap();
        assert_eq!(w.topic_names.len() as u32, w.spec.topics, "the universe size is derived");
        assert!(w.stable_groups().iter().all(|g| g.topics.len() == 50));
        let mut entries = 0;
        for t in 0..w.spec.topics {
            let groups: Vec<u32> = w.groups_of_topic(t).collect();
            assert!((2..=5).contains(&groups.len()), "topic {t} on {groups:?}");
            for g in groups {
                assert!(w.groups[g as usize].topics.binary_search(&t).is_ok(), "topic {t} on group {g}");
                entries += 1;
            }
        }
        assert_eq!(entries, 5 * 50);
        // The change generator: 1% of 10k topics is 100 flipped topics and a new version.
        let big =
            Workload::build(WorkloadSpec { per_broker: 10_000, clusters: 1, slaves: 0, ..spec(0, 20, 1) }).unwrap();
        let mut table = TopicTable::new(&big, 3, 1_000);
        let before = table.body(&big);
        let changed = table.change(&big, 0.01, 2_000);
        let after = table.body(&big);
        assert_eq!(changed.len(), 100);
        assert_eq!(after.data_version.counter, before.data_version.counter + 1);
        let differing = before.topic_configs.iter().zip(&after.topic_configs).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 100, "exactly the changed topics differ");
    }

    #[test]
    fn every_body_format_decodes_with_meridians_codec() {
        let w = Workload::build(spec(60, 2, 1)).unwrap();
        let mut table = TopicTable::new(&w, 1, 1_700_000_000_000);
        table.change(&w, 0.2, 1_700_000_000_001);
        let body = table.body(&w);
        for version in [BrokerVersion::V5, BrokerVersion::V4] {
            for encoding in [BodyEncodingKind::None, BodyEncodingKind::Deflate, BodyEncodingKind::Zstd] {
                let format = BodyFormat { version, encoding, zstd_level: 3 };
                let bytes = encode_register_body(&body, &format);
                let back = decode(&bytes, &format);
                assert_eq!(back.data_version, body.data_version, "{format:?}");
                let names = |b: &RegisterBrokerBody| {
                    b.topic_configs.iter().map(|t| (t.topic_name.to_string(), t.read_queue_nums)).collect::<Vec<_>>()
                };
                assert_eq!(names(&back), names(&body), "{format:?}");
            }
        }
    }

    #[test]
    fn json_4x_has_no_5x_keys() {
        let w = Workload::build(spec(10, 2, 1)).unwrap();
        let body = TopicTable::new(&w, 0, 5).body(&w);
        let format = BodyFormat { version: BrokerVersion::V4, encoding: BodyEncodingKind::None, zstd_level: 3 };
        let text = String::from_utf8(encode_register_body(&body, &format)).unwrap();
        assert!(text.starts_with(r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":1,"stateVersion":0,"timestamp":5},"topicConfigTable":{"TopicTest000000":{"order":false,"perm":6,"readQueueNums":"#), "{text}");
        assert!(!text.contains("attributes") && !text.contains("mapping"), "{text}");
        serde_json::from_str::<serde_json::Value>(&text).expect("valid JSON");
    }

    #[test]
    fn register_headers_follow_the_version_and_encoding() {
        let w = Workload::build(spec(10, 2, 1)).unwrap();
        let (g, i) = (&w.groups[0], &w.groups[0].instances[1]);
        let five = BodyFormat { version: BrokerVersion::V5, encoding: BodyEncodingKind::Deflate, zstd_level: 3 };
        let fields = register_ext_fields(g, i, b"abc", &five, Some(10_000));
        let get = |f: &[(&str, String)], k: &str| f.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone());
        assert_eq!(get(&fields, "compressed").as_deref(), Some("true"));
        assert_eq!(get(&fields, "enableActingMaster").as_deref(), Some("false"));
        assert_eq!(get(&fields, "brokerId").as_deref(), Some("1"));
        assert_eq!(get(&fields, "bodyCrc32"), Some(body::body_crc32(b"abc").to_string()));
        assert_eq!(get(&fields, "heartbeatTimeoutMillis").as_deref(), Some("10000"));
        let four = BodyFormat { version: BrokerVersion::V4, encoding: BodyEncodingKind::Zstd, zstd_level: 3 };
        let fields = register_ext_fields(g, i, b"abc", &four, None);
        assert_eq!(get(&fields, "enableActingMaster"), None);
        assert_eq!(get(&fields, "bodyEncoding").as_deref(), Some("zstd"));
        assert_eq!(get(&fields, "compressed").as_deref(), Some("false"));
    }
}
