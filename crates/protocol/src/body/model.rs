//! The typed bodies of NameServer requests and answers, as values: what a broker registers
//! (`TopicConfig`, `DataVersion`; the whole body is `registration`'s), what a route answer holds
//! (`QueueData`, `BrokerData`), and why a body failed to decode (`BodyError`).
//! Must not: read or write bytes (the sibling modules do), or touch route state.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// Version ordinal (V3_0_11) from which REGISTER_BROKER carries a RegisterBrokerBody rather
/// than a bare TopicConfigSerializeWrapper.
pub const VERSION_REGISTER_BODY_MIN: i32 = 37;
/// Version ordinal (V5_0_0) from which the compressed layout carries static-topic mappings.
pub const VERSION_COMPRESSED_MAPPING_MIN: i32 = 413;

/// Where one registration decode spent its time, filled by `decode_register_body_timed`:
/// `inflate` (decompression, `None` for a plain JSON body) and `scan` (decoding the plain
/// bytes into a `RegisterBrokerBody`). Only durations: measuring changes no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeStages {
    pub inflate: Option<std::time::Duration>,
    pub scan: std::time::Duration,
}

/// A broker's topic-config version. Equality is field-by-field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataVersion {
    pub counter: i64,
    pub state_version: i64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicFilterType {
    #[default]
    SingleTag,
    MultiTag,
}

/// One topic of a broker's registration (Java's `TopicConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
    pub order: bool,
    pub topic_filter_type: TopicFilterType,
    /// Kept in the order received; the NameServer never interprets them.
    pub attributes: Vec<(String, String)>,
}

/// Static-topic mapping info (Java's `TopicQueueMappingInfo`), as echoed in route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicQueueMappingInfo {
    pub topic: String,
    pub bname: String,
    pub scope: String,
    pub total_queues: i32,
    pub epoch: i64,
    pub dirty: bool,
    /// logical queue id -> physical queue id.
    pub curr_id_map: BTreeMap<i32, i32>,
}

/// How a REGISTER_BROKER body is wrapped on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// Plain JSON (or, leniently, a zlib stream when the broker forgot the flag).
    Json,
    /// `compressed=true`: RocketMQ's binary layout, deflated (zlib-wrapped or raw).
    Compressed,
    /// Meridian extension (`bodyEncoding=zstd` ext field): a zstd frame holding the JSON body.
    Zstd,
}

/// Route entry of one broker name inside a topic (Java's `QueueData`). Deserialize reads it
/// from any NameServer's answer (missing keys take their defaults), for clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QueueData {
    /// Shared: a broker's name is one allocation however many topics it hosts.
    pub broker_name: std::sync::Arc<str>,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// One broker group (Java's `BrokerData`). Deserialize reads it from any NameServer's answer
/// (missing keys take their defaults), for clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    /// brokerId -> `ip:port`; id 0 is the master.
    pub broker_addrs: BTreeMap<i64, String>,
    pub enable_acting_master: bool,
    pub zone_name: Option<String>,
}

/// Which JSON dialect an answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFlavour {
    /// fastjson defaults: integer map keys unquoted, maps in iteration order, raw UTF-8.
    Legacy,
    /// BrowserCompatible + MapSortField: keys quoted, maps sorted, `\/` and `\uXXXX` escapes.
    Standard,
}

/// Borrowed view of everything a TopicRouteData answer contains.
pub struct TopicRouteView<'a> {
    pub broker_datas: &'a [&'a BrokerData],
    pub queue_datas: &'a [&'a QueueData],
    /// broker address -> filter server addresses; usually empty.
    pub filter_server_table: &'a [(&'a str, &'a [String])],
    pub order_topic_conf: Option<&'a str>,
    /// brokerName -> mapping info; `None` or empty means the key is omitted.
    pub topic_queue_mapping_by_broker: &'a [(&'a str, &'a TopicQueueMappingInfo)],
}

/// Broker id of a broker group's master (Java's `MixAll.MASTER_ID`); slaves have ids > 0.
pub const MASTER_ID: i64 = 0;

/// Java's TopicConfig defaults, used when a JSON key is absent or `null`.
pub(super) const TOPIC_PERM_DEFAULT: i32 = crate::perm::READ | crate::perm::WRITE;
pub(super) const TOPIC_QUEUE_NUMS_DEFAULT: i32 = 16;

impl TopicFilterType {
    /// The Java enum constant name, as written in JSON and in the compressed string form.
    pub fn java_name(self) -> &'static str {
        match self {
            TopicFilterType::SingleTag => "SINGLE_TAG",
            TopicFilterType::MultiTag => "MULTI_TAG",
        }
    }

    pub(super) fn from_java_name(name: &str) -> Option<TopicFilterType> {
        match name {
            "SINGLE_TAG" => Some(TopicFilterType::SingleTag),
            "MULTI_TAG" => Some(TopicFilterType::MultiTag),
            _ => None,
        }
    }
}

impl TopicConfig {
    /// A topic with Java's defaults (perm 6, 16 read and 16 write queues, SINGLE_TAG).
    pub fn new(topic_name: impl Into<String>) -> TopicConfig {
        TopicConfig {
            topic_name: topic_name.into(),
            read_queue_nums: TOPIC_QUEUE_NUMS_DEFAULT,
            write_queue_nums: TOPIC_QUEUE_NUMS_DEFAULT,
            perm: TOPIC_PERM_DEFAULT,
            topic_sys_flag: 0,
            order: false,
            topic_filter_type: TopicFilterType::SingleTag,
            attributes: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a body could not be decoded. Every variant is the peer's fault; the handler answers
/// `SYSTEM_ERROR` with the Display text as remark, as Java does.
#[derive(Debug)]
pub enum BodyError {
    /// The JSON does not parse, or lacks something we refuse to guess (e.g. a topicName).
    Json { body_name: &'static str, detail: String },
    /// The deflate/zstd stream or the binary layout inside it is malformed or truncated.
    Compressed { detail: String },
    /// Decompression stopped because the output would pass the configured cap.
    DecompressedTooLarge { decompressed_bytes_max: usize },
    /// The process-wide registration memory budget could not cover the next allocation.
    MemoryBudgetExhausted { registration_memory_bytes_max: usize },
    /// Java's `MQVersion.value2Version` throws on a negative version before decoding.
    VersionNegative { version: i32 },
    /// The `bodyCrc32` header does not match the body.
    Crc32Mismatch { crc32_expected: i32, crc32_actual: i32 },
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Json { body_name, detail } => {
                write!(f, "Failed to decode {body_name}: {detail}")
            }
            BodyError::Compressed { detail } => {
                write!(f, "Failed to decode RegisterBrokerBody: {detail}")
            }
            BodyError::DecompressedTooLarge { decompressed_bytes_max } => write!(
                f,
                "decompressed body exceeds bodyDecompressedBytesMax {decompressed_bytes_max} \
                 bytes (raise bodyDecompressedBytesMax if this broker is legitimate)"
            ),
            BodyError::MemoryBudgetExhausted { registration_memory_bytes_max } => write!(
                f,
                "registrations in flight would exceed registrationMemoryBytesMax \
                 {registration_memory_bytes_max} bytes (retry later, or raise \
                 registrationMemoryBytesMax if this broker is legitimate)"
            ),
            BodyError::VersionNegative { version } => {
                write!(f, "Failed to decode RegisterBrokerBody: negative request version {version}")
            }
            // Exactly Java's remark; brokers and tools match on it.
            BodyError::Crc32Mismatch { .. } => f.write_str("crc32 not match"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Charges the memory a decode is about to hold (inflated bytes, decoded structures) to a
/// budget, before it is allocated; a refusal stops the decode with that error.
pub trait MemoryGate {
    /// Charges `bytes` about to be allocated.
    fn reserve(&mut self, bytes: usize) -> Result<(), BodyError>;
    /// Gives back `bytes` charged earlier and freed since.
    fn release(&mut self, bytes: usize);
}

/// A gate that charges nothing: for callers bounded otherwise (tools, tests, benches).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unmetered;

impl MemoryGate for Unmetered {
    fn reserve(&mut self, _bytes: usize) -> Result<(), BodyError> {
        Ok(())
    }

    fn release(&mut self, _bytes: usize) {}
}

pub(super) fn json_error(body_name: &'static str, error: impl fmt::Display) -> BodyError {
    BodyError::Json { body_name, detail: error.to_string() }
}

pub(super) fn compressed_error(detail: impl Into<String>) -> BodyError {
    BodyError::Compressed { detail: detail.into() }
}
