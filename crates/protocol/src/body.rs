//! Typed bodies of the NameServer requests and answers, and their JSON / compressed forms.
//!
//! Owns: decoding registration bodies (RegisterBrokerBody JSON in its 4.x and 5.x shapes,
//! the pre-V3_0_11 bare TopicConfigSerializeWrapper, RocketMQ's deflate "compressed" layout
//! wrapped in zlib (Java brokers) or raw deflate (rocketmq-rust brokers), and Meridian's
//! opt-in zstd extension), the CRC32 check, and encoding every answer body in Java's exact
//! JSON flavours (fastjson default "legacy" form and the "standard" form).
//! Must not: touch route state, or allocate past `decompressed_bytes_max` before checking it.
//!
//! Reference: ../shared/protocol/bodies.md (section numbers below refer to it).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// Version ordinal (V3_0_11) from which REGISTER_BROKER carries a RegisterBrokerBody rather
/// than a bare TopicConfigSerializeWrapper.
pub const VERSION_REGISTER_BODY_MIN: i32 = 37;
/// Version ordinal (V5_0_0) from which the compressed layout carries static-topic mappings.
pub const VERSION_COMPRESSED_MAPPING_MIN: i32 = 413;

/// A broker's topic-config version (bodies.md §1). Equality is field-by-field.
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

/// One topic of a broker's registration (bodies.md §1 TopicConfig).
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

/// Static-topic mapping info (bodies.md §2 TopicQueueMappingInfo), as echoed in route answers.
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

/// A decoded REGISTER_BROKER body, whatever form it arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterBrokerBody {
    pub data_version: DataVersion,
    pub topic_configs: Vec<TopicConfig>,
    /// `None` when the body carried no filterServerList (bare wrapper form); Java then leaves
    /// the stored filter servers unchanged (behaviour.md §2 step 12).
    pub filter_server_list: Option<Vec<String>>,
    /// Static-topic mapping infos, keyed by topic (bodies.md §2, §3 #6).
    pub topic_queue_mapping_infos: Vec<(String, TopicQueueMappingInfo)>,
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

/// Route entry of one broker name inside a topic (bodies.md §6 QueueData).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueData {
    /// Shared: a broker's name is one allocation however many topics it hosts.
    pub broker_name: std::sync::Arc<str>,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    pub topic_sys_flag: i32,
}

/// One broker group (bodies.md §6 BrokerData).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerData {
    pub cluster: String,
    pub broker_name: String,
    /// brokerId -> `ip:port`; id 0 is the master.
    pub broker_addrs: BTreeMap<i64, String>,
    pub enable_acting_master: bool,
    pub zone_name: Option<String>,
}

/// Which JSON dialect an answer is written in (bodies.md §6).
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

/// Java's TopicConfig defaults (bodies.md §1), used when a JSON key is absent or `null`.
const TOPIC_PERM_DEFAULT: i32 = 6;
const TOPIC_QUEUE_NUMS_DEFAULT: i32 = 16;
/// Default `scope` of a TopicQueueMappingInfo (Java `TopicQueueMappingUtils` / bodies.md §2).
const MAPPING_SCOPE_DEFAULT: &str = "__global__";
/// Largest integer fastjson's BrowserCompatible mode still writes as a bare number (2^53 - 1).
const JSON_SAFE_INTEGER_MAX: i64 = 9_007_199_254_740_991;
/// Nesting depth up to which the unquoted-key rewrite tracks containers; serde_json itself
/// refuses more than 128 levels, so deeper input fails either way.
const JSON_DEPTH_MAX: usize = 256;
/// Growth step of decompression buffers: big enough to amortise, small enough that the
/// allocation never runs far ahead of what the stream actually produced.
const DECOMPRESS_CHUNK_BYTES: usize = 64 * 1024;
/// zstd window bounds (log2 bytes). A frame without a pledged content size declares the
/// level's window (8 MiB up to level 19) and the decoder reserves all of it, so the cap
/// bounds the window from above but never below what ordinary levels need; 30 is zstd's
/// own 32-bit limit.
const ZSTD_WINDOW_LOG_MIN: u32 = 23;
const ZSTD_WINDOW_LOG_MAX: u32 = 30;

impl TopicFilterType {
    /// The Java enum constant name, as written in JSON and in the compressed string form.
    pub fn java_name(self) -> &'static str {
        match self {
            TopicFilterType::SingleTag => "SINGLE_TAG",
            TopicFilterType::MultiTag => "MULTI_TAG",
        }
    }

    fn from_java_name(name: &str) -> Option<TopicFilterType> {
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
    /// Java's `MQVersion.value2Version` throws on a negative version before decoding.
    VersionNegative { version: i32 },
    /// The `bodyCrc32` header does not match the body (bodies.md §4).
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
                "decompressed body exceeds body_decompressed_bytes_max {decompressed_bytes_max} \
                 bytes (raise body_decompressed_bytes_max if this broker is legitimate)"
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

fn json_error(body_name: &'static str, error: impl fmt::Display) -> BodyError {
    BodyError::Json { body_name, detail: error.to_string() }
}

fn compressed_error(detail: impl Into<String>) -> BodyError {
    BodyError::Compressed { detail: detail.into() }
}

// ---------------------------------------------------------------------------------------
// CRC (bodies.md §4)
// ---------------------------------------------------------------------------------------

/// CRC-32 (IEEE) of the body exactly as sent, masked to 31 bits like Java's
/// `UtilAll.crc32`, so it fits the positive range of the `bodyCrc32` header.
pub fn body_crc32(body: &[u8]) -> i32 {
    crc32_field(crc32fast::hash(body))
}

/// A CRC32 as the `bodyCrc32` field carries it (Java masks it to a non-negative int).
pub fn crc32_field(crc: u32) -> i32 {
    // The mask keeps the value within i32::MAX, so the cast cannot change it.
    (crc & 0x7FFF_FFFF) as i32
}

/// Checks a `bodyCrc32` header value; 0 means the sender did not ask for a check.
/// An empty body has CRC 0, so a non-zero value with no body fails, as in Java.
pub fn check_body_crc32(body: &[u8], crc32_expected: i32) -> Result<(), BodyError> {
    if crc32_expected == 0 {
        return Ok(());
    }
    let crc32_actual = body_crc32(body);
    if crc32_actual == crc32_expected {
        Ok(())
    } else {
        Err(BodyError::Crc32Mismatch { crc32_expected, crc32_actual })
    }
}

// ---------------------------------------------------------------------------------------
// Decoding: entry points
// ---------------------------------------------------------------------------------------

/// Decodes a REGISTER_BROKER body (bodies.md §2, §3) sent with request `version`.
///
/// Never inflates past `decompressed_bytes_max`. An empty body is an empty registration
/// with a zero DataVersion, as in Java's `DefaultRequestProcessor.registerBroker`.
pub fn decode_register_body(
    body: &[u8],
    version: i32,
    encoding: BodyEncoding,
    decompressed_bytes_max: usize,
) -> Result<RegisterBrokerBody, BodyError> {
    if body.is_empty() {
        return Ok(RegisterBrokerBody::default());
    }
    if version < 0 {
        return Err(BodyError::VersionNegative { version });
    }
    match encoding {
        BodyEncoding::Json => {
            // 5.x Java brokers compress with `compressed=false` in the header
            // (BrokerOuterAPI.registerBrokerAll), which a stock NameServer rejects; we
            // accept the body when it cannot be JSON and carries a valid zlib header.
            if version >= VERSION_REGISTER_BODY_MIN && !starts_like_json(body) && is_zlib_header(body) {
                decode_compressed_register_body(body, version, decompressed_bytes_max)
            } else {
                decode_register_body_json(body, version)
            }
        }
        BodyEncoding::Compressed => decode_compressed_register_body(body, version, decompressed_bytes_max),
        BodyEncoding::Zstd => {
            let json = zstd_decompress_capped(body, decompressed_bytes_max)?;
            decode_register_body_json(&json, version)
        }
    }
}

/// Decodes a DataVersion JSON body (QUERY_DATA_VERSION request, bodies.md §12).
pub fn decode_data_version(body: &[u8]) -> Result<DataVersion, BodyError> {
    parse_lenient(body, "DataVersion", |json| {
        from_object_slice::<DataVersionJson>(json).map(DataVersionJson::into_data_version)
    })
}

/// Decodes the queueDatas of a REGISTER_TOPIC_IN_NAMESRV body (bodies.md §11); every other
/// key is skipped, including the explicit `null`s rocketmq-rust brokers send.
///
/// Entries without a brokerName are dropped: Java cannot match them to any broker either
/// (`RouteInfoManager.registerTopic` skips names absent from brokerAddrTable).
pub fn decode_register_topic_queue_datas(body: &[u8]) -> Result<Vec<QueueData>, BodyError> {
    parse_lenient(body, "TopicRouteData", |json| {
        let route: TopicRouteDataJson = from_object_slice(json)?;
        Ok::<_, serde_json::Error>(
            route.queue_datas.unwrap_or_default().into_iter().flatten().filter_map(|q| q.0.into_queue_data()).collect(),
        )
    })
}

fn starts_like_json(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b == b'{')
}

/// RFC 1950 header check: deflate method, window ≤ 32 KiB, and the FCHECK multiple of 31.
/// Raw deflate (rocketmq-rust brokers) fails it for all practical first blocks.
fn is_zlib_header(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0F == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Decoding: JSON
// ---------------------------------------------------------------------------------------

/// Parses with serde_json first; only when that fails, quotes fastjson's unquoted integer
/// map keys (bodies.md §14.1) and parses again, so the common case costs one pass.
fn parse_lenient<R, E: fmt::Display>(
    body: &[u8],
    body_name: &'static str,
    parse: impl Fn(&[u8]) -> Result<R, E>,
) -> Result<R, BodyError> {
    match parse(body) {
        Ok(value) => Ok(value),
        Err(first_error) => match quote_integer_keys(body) {
            Some(rewritten) => parse(&rewritten).map_err(|e| json_error(body_name, e)),
            None => Err(json_error(body_name, first_error)),
        },
    }
}

/// Decodes a JSON answer body from any NameServer (ClusterInfo, TopicRouteData, TopicList…)
/// in either flavour: fastjson's unquoted integer map keys are accepted (bodies.md §14.1).
/// For clients of the protocol (the admin CLI); the server itself never reads answers.
pub fn decode_answer_json<T: de::DeserializeOwned>(body: &[u8], body_name: &'static str) -> Result<T, BodyError> {
    parse_lenient(body, body_name, |bytes| serde_json::from_slice::<T>(bytes))
}

/// Rewrites `{0:"a",-1:2}` into `{"0":"a","-1":2}` outside strings. Returns `None` when
/// nothing needed quoting (or the nesting is too deep to track), so callers keep the
/// original error.
fn quote_integer_keys(json: &[u8]) -> Option<Vec<u8>> {
    let mut rewritten: Option<Vec<u8>> = None;
    let mut copied_until = 0;
    // true = object, false = array; tells a key position after ',' from an array element.
    let mut containers: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut in_string = false;
    let mut index = 0;
    while index < json.len() {
        let byte = json[index];
        if in_string {
            match byte {
                b'\\' => index += 1,
                b'"' => in_string = false,
                _ => {}
            }
            index += 1;
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                expect_key = false;
            }
            b'{' | b'[' => {
                if containers.len() >= JSON_DEPTH_MAX {
                    return None;
                }
                containers.push(byte == b'{');
                expect_key = byte == b'{';
            }
            b'}' | b']' => {
                containers.pop();
                expect_key = false;
            }
            b',' => expect_key = containers.last() == Some(&true),
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'-' | b'0'..=b'9' if expect_key => {
                let key_end = json[index + 1..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(json.len(), |offset| index + 1 + offset);
                let out = rewritten.get_or_insert_with(|| Vec::with_capacity(json.len() + json.len() / 8));
                out.extend_from_slice(&json[copied_until..index]);
                out.push(b'"');
                out.extend_from_slice(&json[index..key_end]);
                out.push(b'"');
                copied_until = key_end;
                expect_key = false;
                index = key_end;
                continue;
            }
            _ => expect_key = false,
        }
        index += 1;
    }
    let mut out = rewritten?;
    out.extend_from_slice(&json[copied_until..]);
    Some(out)
}

fn decode_register_body_json(json: &[u8], version: i32) -> Result<RegisterBrokerBody, BodyError> {
    // The scanner reads what real brokers send several times faster; anything it does not
    // handle exactly goes through serde, which decides.
    match super::scan::register_body(json, version) {
        Ok(body) => Ok(body),
        Err(super::scan::Fallback) => decode_register_body_json_serde(json, version),
    }
}

/// The reference decoder: serde visitors with every leniency rule (bodies.md §14).
pub fn decode_register_body_json_serde(json: &[u8], version: i32) -> Result<RegisterBrokerBody, BodyError> {
    if version >= VERSION_REGISTER_BODY_MIN {
        parse_lenient(json, "RegisterBrokerBody", |json| {
            from_object_slice::<RegisterBrokerBodyJson>(json).map(RegisterBrokerBodyJson::into_body)
        })
    } else {
        // Pre-V3_0_11 brokers send a bare TopicConfigSerializeWrapper; there is no
        // filterServerList, so the stored filter servers stay as they are.
        parse_lenient(json, "TopicConfigSerializeWrapper", |json| {
            from_object_slice::<TopicConfigWrapperJson>(json).map(|wrapper| wrapper.into_body(None))
        })
    }
}

/// Lets a present-but-null key be told apart from an absent one (serde folds both into
/// `None` for a plain `Option<Option<T>>`).
fn deserialize_present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A derived struct that only accepts a JSON object. serde's derive also maps arrays onto
/// struct fields by position (`"dataVersion":[1,2,3]`), which fastjson rejects; so do we.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = ObjectOnly<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// Parses a whole body that must be one JSON object of shape `T`.
fn from_object_slice<'de, T: Deserialize<'de>>(json: &'de [u8]) -> serde_json::Result<T> {
    serde_json::from_slice::<ObjectOnly<T>>(json).map(|object| object.0)
}

/// A map key, borrowed from the input when it has no escapes.
struct KeyStr<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for KeyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KeyStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// fastjson's circular-reference marker key (bodies.md §14.2).
const JSON_REF_KEY: &str = "$ref";

#[derive(Deserialize, Default)]
#[serde(default)]
struct DataVersionJson {
    counter: Option<i64>,
    #[serde(rename = "stateVersion")]
    state_version: Option<i64>,
    timestamp: Option<i64>,
}

impl DataVersionJson {
    /// Absent fields become 0. Java's constructor would stamp `timestamp` with the
    /// receiver's clock; a fixed 0 keeps decoding pure and repeated registrations equal.
    fn into_data_version(self) -> DataVersion {
        DataVersion {
            counter: self.counter.unwrap_or(0),
            state_version: self.state_version.unwrap_or(0),
            timestamp: self.timestamp.unwrap_or(0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegisterBrokerBodyJson {
    /// Outer `None` = key absent, `Some(None)` = explicit null.
    #[serde(rename = "filterServerList", deserialize_with = "deserialize_present")]
    filter_server_list: Option<Option<Vec<Option<String>>>>,
    #[serde(rename = "topicConfigSerializeWrapper")]
    wrapper: Option<ObjectOnly<TopicConfigWrapperJson>>,
}

impl RegisterBrokerBodyJson {
    fn into_body(self) -> RegisterBrokerBody {
        // Java initialises filterServerList to an empty list, so an absent key clears the
        // stored filter servers; an explicit null leaves them unchanged, as fastjson then
        // sets the field to null (RouteInfoManager.registerBroker checks `!= null`).
        let filter_server_list = match self.filter_server_list {
            None => Some(Vec::new()),
            Some(None) => None,
            Some(Some(list)) => Some(list.into_iter().flatten().collect()),
        };
        self.wrapper.map(|w| w.0).unwrap_or_default().into_body(filter_server_list)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TopicConfigWrapperJson {
    #[serde(rename = "dataVersion")]
    data_version: Option<ObjectOnly<DataVersionJson>>,
    #[serde(rename = "topicConfigTable")]
    topic_config_table: Option<TopicTableJson>,
    #[serde(rename = "topicQueueMappingInfoMap")]
    mapping_info_map: Option<MappingInfoMapJson>,
    // mappingDataVersion and topicQueueMappingDetailMap are skipped unbuilt: the
    // NameServer never reads them.
}

impl TopicConfigWrapperJson {
    fn into_body(self, filter_server_list: Option<Vec<String>>) -> RegisterBrokerBody {
        RegisterBrokerBody {
            data_version: self.data_version.map(|v| v.0.into_data_version()).unwrap_or_default(),
            topic_configs: self.topic_config_table.map(|t| t.0).unwrap_or_default(),
            filter_server_list,
            topic_queue_mapping_infos: self.mapping_info_map.map(|m| m.0).unwrap_or_default(),
        }
    }
}

/// The topicConfigTable, built straight into a Vec in wire order (no intermediate map,
/// no allocation for the keys, which Java ignores in favour of `topicName`).
struct TopicTableJson(Vec<TopicConfig>);

impl<'de> Deserialize<'de> for TopicTableJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = TopicTableJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topicConfigTable object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut topics = Vec::new();
                while let Some(key) = map.next_key::<KeyStr<'de>>()? {
                    if key.0 == JSON_REF_KEY {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let Some(mut topic) = map.next_value::<Option<ObjectOnly<TopicConfigJson>>>()?.map(|t| t.0) else {
                        continue;
                    };
                    if topic.reference.is_some() && topic.topic_name.is_none() {
                        // A reference to a TopicConfig that already appears under its own
                        // name; resolving it would only repeat that entry.
                        continue;
                    }
                    let Some(topic_name) = topic.topic_name.take() else {
                        // Java would apply the topics before this one and then fail; we
                        // reject the whole registration instead of applying part of it.
                        return Err(de::Error::custom(format_args!(
                            "topicConfigTable entry {:?} has no topicName",
                            key.0
                        )));
                    };
                    topics.push(topic.into_topic_config(topic_name));
                }
                Ok(TopicTableJson(topics))
            }
        }
        deserializer.deserialize_map(TableVisitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TopicConfigJson {
    #[serde(rename = "topicName")]
    topic_name: Option<String>,
    #[serde(rename = "readQueueNums")]
    read_queue_nums: Option<i32>,
    #[serde(rename = "writeQueueNums")]
    write_queue_nums: Option<i32>,
    perm: Option<i32>,
    #[serde(rename = "topicSysFlag")]
    topic_sys_flag: Option<i32>,
    order: Option<bool>,
    #[serde(rename = "topicFilterType")]
    topic_filter_type: Option<FilterTypeJson>,
    attributes: Option<AttributesJson>,
    #[serde(rename = "$ref")]
    reference: Option<IgnoredAny>,
}

impl TopicConfigJson {
    fn into_topic_config(self, topic_name: String) -> TopicConfig {
        TopicConfig {
            topic_name,
            read_queue_nums: self.read_queue_nums.unwrap_or(TOPIC_QUEUE_NUMS_DEFAULT),
            write_queue_nums: self.write_queue_nums.unwrap_or(TOPIC_QUEUE_NUMS_DEFAULT),
            perm: self.perm.unwrap_or(TOPIC_PERM_DEFAULT),
            topic_sys_flag: self.topic_sys_flag.unwrap_or(0),
            order: self.order.unwrap_or(false),
            topic_filter_type: self.topic_filter_type.map(|t| t.0).unwrap_or_default(),
            attributes: self.attributes.map(|a| a.0).unwrap_or_default(),
        }
    }
}

/// fastjson accepts an enum by name or by ordinal, and maps an unknown name to null
/// (EnumDeserializer) rather than failing; null means the default SINGLE_TAG here.
struct FilterTypeJson(TopicFilterType);

impl<'de> Deserialize<'de> for FilterTypeJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FilterVisitor;
        impl Visitor<'_> for FilterVisitor {
            type Value = FilterTypeJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topicFilterType name or ordinal")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FilterTypeJson(TopicFilterType::from_java_name(v).unwrap_or_default()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(FilterTypeJson(if v == 1 { TopicFilterType::MultiTag } else { TopicFilterType::SingleTag }))
            }
            fn visit_i64<E: de::Error>(self, _v: i64) -> Result<Self::Value, E> {
                Ok(FilterTypeJson(TopicFilterType::SingleTag))
            }
        }
        deserializer.deserialize_any(FilterVisitor)
    }
}

/// TopicConfig attributes (map str→str) in wire order. A `{"$ref":…}` object yields no
/// attributes; numbers and booleans are kept as their JSON text, as fastjson coerces them.
struct AttributesJson(Vec<(String, String)>);

impl<'de> Deserialize<'de> for AttributesJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AttributesVisitor;
        impl<'de> Visitor<'de> for AttributesVisitor {
            type Value = AttributesJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an attributes object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut attributes = Vec::new();
                let mut is_reference = false;
                while let Some(key) = map.next_key::<KeyStr<'de>>()? {
                    let value = map.next_value::<Option<ScalarText>>()?;
                    if key.0 == JSON_REF_KEY {
                        is_reference = true;
                    } else if let Some(value) = value {
                        attributes.push((key.0.into_owned(), value.0));
                    }
                }
                if is_reference {
                    attributes.clear();
                }
                Ok(AttributesJson(attributes))
            }
        }
        deserializer.deserialize_map(AttributesVisitor)
    }
}

/// A JSON string, number or boolean as text.
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ScalarText(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ScalarText(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ScalarText(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// topicQueueMappingInfoMap: topic → TopicQueueMappingInfo, in wire order.
struct MappingInfoMapJson(Vec<(String, TopicQueueMappingInfo)>);

impl<'de> Deserialize<'de> for MappingInfoMapJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MappingVisitor;
        impl<'de> Visitor<'de> for MappingVisitor {
            type Value = MappingInfoMapJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topicQueueMappingInfoMap object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut infos = Vec::new();
                while let Some(key) = map.next_key::<KeyStr<'de>>()? {
                    if key.0 == JSON_REF_KEY {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let Some(info) = map.next_value::<Option<ObjectOnly<MappingInfoJson>>>()?.map(|i| i.0) else {
                        continue;
                    };
                    if info.reference.is_some() {
                        continue;
                    }
                    let topic = key.0.into_owned();
                    let info = info.into_info(|| topic.clone());
                    infos.push((topic, info));
                }
                Ok(MappingInfoMapJson(infos))
            }
        }
        deserializer.deserialize_map(MappingVisitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MappingInfoJson {
    topic: Option<String>,
    bname: Option<String>,
    scope: Option<String>,
    #[serde(rename = "totalQueues")]
    total_queues: Option<i32>,
    epoch: Option<i64>,
    dirty: Option<bool>,
    #[serde(rename = "currIdMap")]
    curr_id_map: Option<IntMapJson>,
    #[serde(rename = "$ref")]
    reference: Option<IgnoredAny>,
}

impl MappingInfoJson {
    fn into_info(self, topic_default: impl FnOnce() -> String) -> TopicQueueMappingInfo {
        TopicQueueMappingInfo {
            topic: self.topic.unwrap_or_else(topic_default),
            bname: self.bname.unwrap_or_default(),
            scope: self.scope.unwrap_or_else(|| MAPPING_SCOPE_DEFAULT.to_owned()),
            total_queues: self.total_queues.unwrap_or(0),
            epoch: self.epoch.unwrap_or(0),
            dirty: self.dirty.unwrap_or(false),
            curr_id_map: self.curr_id_map.map(|m| m.0).unwrap_or_default(),
        }
    }
}

/// An i32 → i32 map such as currIdMap; keys arrive quoted (after the unquoted-key rewrite).
struct IntMapJson(BTreeMap<i32, i32>);

impl<'de> Deserialize<'de> for IntMapJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntMapVisitor;
        impl<'de> Visitor<'de> for IntMapVisitor {
            type Value = IntMapJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer-keyed object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut ids = BTreeMap::new();
                while let Some(key) = map.next_key::<KeyStr<'de>>()? {
                    if key.0 == JSON_REF_KEY {
                        map.next_value::<IgnoredAny>()?;
                        return Ok(IntMapJson(BTreeMap::new()));
                    }
                    let id: i32 = key
                        .0
                        .parse()
                        .map_err(|_| de::Error::custom(format_args!("map key {:?} is not an integer", key.0)))?;
                    if let Some(value) = map.next_value::<Option<i32>>()? {
                        ids.insert(id, value);
                    }
                }
                Ok(IntMapJson(ids))
            }
        }
        deserializer.deserialize_map(IntMapVisitor)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TopicRouteDataJson {
    #[serde(rename = "queueDatas")]
    queue_datas: Option<Vec<Option<ObjectOnly<QueueDataJson>>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct QueueDataJson {
    #[serde(rename = "brokerName")]
    broker_name: Option<String>,
    #[serde(rename = "readQueueNums")]
    read_queue_nums: Option<i32>,
    #[serde(rename = "writeQueueNums")]
    write_queue_nums: Option<i32>,
    perm: Option<i32>,
    #[serde(rename = "topicSysFlag")]
    topic_sys_flag: Option<i32>,
}

impl QueueDataJson {
    /// QueueData's fields are Java primitives, so absent numbers are 0.
    fn into_queue_data(self) -> Option<QueueData> {
        Some(QueueData {
            broker_name: self.broker_name?.into(),
            read_queue_nums: self.read_queue_nums.unwrap_or(0),
            write_queue_nums: self.write_queue_nums.unwrap_or(0),
            perm: self.perm.unwrap_or(0),
            topic_sys_flag: self.topic_sys_flag.unwrap_or(0),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Decoding: compressed layout (bodies.md §3)
// ---------------------------------------------------------------------------------------

fn decode_compressed_register_body(
    body: &[u8],
    version: i32,
    decompressed_bytes_max: usize,
) -> Result<RegisterBrokerBody, BodyError> {
    // Java brokers wrap the deflate stream in zlib; rocketmq-rust brokers send it raw.
    let zlib_wrapped = is_zlib_header(body);
    let plain = inflate_capped(body, zlib_wrapped, decompressed_bytes_max)?;
    decode_compressed_layout(&plain, version)
}

/// Inflates `body`, failing as soon as the output would pass `decompressed_bytes_max`;
/// the output buffer never grows beyond that cap plus one byte.
fn inflate_capped(body: &[u8], zlib_wrapped: bool, decompressed_bytes_max: usize) -> Result<Vec<u8>, BodyError> {
    use flate2::{Decompress, FlushDecompress, Status};

    // One byte past the cap tells "exactly at the cap" from "over it".
    let output_bytes_limit = decompressed_bytes_max.saturating_add(1);
    let mut inflater = Decompress::new(zlib_wrapped);
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == out.capacity() {
            let grow_bytes = out.capacity().max(DECOMPRESS_CHUNK_BYTES).min(output_bytes_limit - out.len());
            out.reserve_exact(grow_bytes);
        }
        let consumed_bytes =
            usize::try_from(inflater.total_in()).expect("total_in never exceeds the input slice length");
        let produced_before = out.len();
        let status =
            inflater.decompress_vec(&body[consumed_bytes..], &mut out, FlushDecompress::None).map_err(|e| {
                compressed_error(format!(
                    "invalid {} stream at input byte {consumed_bytes}: {e}",
                    if zlib_wrapped { "zlib" } else { "raw deflate" }
                ))
            })?;
        if out.len() > decompressed_bytes_max {
            return Err(BodyError::DecompressedTooLarge { decompressed_bytes_max });
        }
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => {
                let consumed_now = inflater.total_in() as usize != consumed_bytes;
                let produced_now = out.len() != produced_before;
                if !consumed_now && !produced_now {
                    // Output space was available, so the inflater is starving for input.
                    return Err(compressed_error(format!(
                        "truncated {} stream after {} input bytes \
                         (End of compressed data has reached)",
                        if zlib_wrapped { "zlib" } else { "raw deflate" },
                        body.len()
                    )));
                }
            }
        }
    }
}

/// Decompresses a zstd frame with the same cap as [`inflate_capped`]; the window size is
/// limited too, so a frame cannot make the decoder reserve more memory than the cap.
fn zstd_decompress_capped(body: &[u8], decompressed_bytes_max: usize) -> Result<Vec<u8>, BodyError> {
    let zstd_error = |e: std::io::Error| compressed_error(format!("invalid zstd frame: {e}"));
    let mut decoder = zstd::stream::read::Decoder::with_buffer(body).map_err(zstd_error)?;
    // A legitimate encoder never needs a window larger than twice its content.
    let window_log =
        (usize::BITS - decompressed_bytes_max.leading_zeros() + 1).clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX);
    decoder.window_log_max(window_log).map_err(zstd_error)?;

    let output_bytes_limit = decompressed_bytes_max.saturating_add(1);
    // `out` is zero-filled once as it grows; `filled_bytes` is how much of it holds output.
    // (Zero-filling the spare capacity before every read made 100k-topic bodies 2x slower.)
    let mut out: Vec<u8> = Vec::new();
    let mut filled_bytes = 0;
    loop {
        if filled_bytes == out.len() {
            let grow_bytes = out.len().max(DECOMPRESS_CHUNK_BYTES).min(output_bytes_limit - out.len());
            out.resize(out.len() + grow_bytes, 0);
        }
        let read_bytes = match decoder.read(&mut out[filled_bytes..]) {
            Ok(read_bytes) => read_bytes,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(zstd_error(e)),
        };
        filled_bytes += read_bytes;
        if filled_bytes > decompressed_bytes_max {
            return Err(BodyError::DecompressedTooLarge { decompressed_bytes_max });
        }
        if read_bytes == 0 {
            out.truncate(filled_bytes);
            return Ok(out);
        }
    }
}

/// Reads the big-endian, length-prefixed fields of the inflated layout; every length is
/// checked against what is left, so nothing is allocated from an unchecked length.
struct LayoutReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> LayoutReader<'a> {
    fn read_i32(&mut self, field: &str) -> Result<i32, BodyError> {
        let Some(word) = self.bytes.get(self.offset..self.offset + 4) else {
            return Err(compressed_error(format!(
                "{field}: 4-byte integer needed at offset {}, {} bytes left \
                 (End of compressed data has reached)",
                self.offset,
                self.bytes.len() - self.offset
            )));
        };
        self.offset += 4;
        Ok(i32::from_be_bytes([word[0], word[1], word[2], word[3]]))
    }

    /// A count of following length-prefixed entries; each needs at least 4 bytes, which
    /// bounds the count by what is left before anything is reserved for it.
    fn read_count(&mut self, field: &str) -> Result<usize, BodyError> {
        let count = self.read_i32(field)?;
        // Java loops zero times on a negative count; no encoder writes one, so we treat
        // it as the corruption it is.
        let count_usize =
            usize::try_from(count).map_err(|_| compressed_error(format!("{field}: negative count {count}")))?;
        let left_bytes = self.bytes.len() - self.offset;
        if count_usize > left_bytes / 4 {
            return Err(compressed_error(format!("{field}: count {count} cannot fit in the {left_bytes} bytes left")));
        }
        Ok(count_usize)
    }

    fn read_bytes(&mut self, field: &str) -> Result<&'a [u8], BodyError> {
        let length = self.read_i32(field)?;
        let length_usize =
            usize::try_from(length).map_err(|_| compressed_error(format!("{field}: negative length {length}")))?;
        let left_bytes = self.bytes.len() - self.offset;
        if length_usize > left_bytes {
            return Err(compressed_error(format!(
                "{field}: length {length} at offset {} passes the end, {left_bytes} bytes left \
                 (End of compressed data has reached)",
                self.offset - 4
            )));
        }
        let bytes = &self.bytes[self.offset..self.offset + length_usize];
        self.offset += length_usize;
        Ok(bytes)
    }
}

fn decode_compressed_layout(plain: &[u8], version: i32) -> Result<RegisterBrokerBody, BodyError> {
    let mut reader = LayoutReader { bytes: plain, offset: 0 };
    let data_version_json = reader.read_bytes("dataVersion")?;
    let data_version =
        decode_data_version(data_version_json).map_err(|e| compressed_error(format!("dataVersion: {e}")))?;

    let topic_count = reader.read_count("topic count")?;
    let mut topic_configs = Vec::with_capacity(topic_count);
    for topic_index in 0..topic_count {
        let encoded = reader.read_bytes("topic config")?;
        // Java decodes with `new String(bytes, UTF_8)`, which replaces invalid sequences.
        let encoded = String::from_utf8_lossy(encoded);
        let topic = decode_topic_config_string(&encoded)
            .map_err(|detail| compressed_error(format!("topic config #{topic_index} {encoded:?}: {detail}")))?;
        topic_configs.push(topic);
    }

    let filter_servers_json = reader.read_bytes("filterServerList")?;
    let filter_server_list = parse_lenient(filter_servers_json, "filterServerList", |json| {
        serde_json::from_slice::<Option<Vec<Option<String>>>>(json)
    })
    .map_err(|e| compressed_error(e.to_string()))?
    .map(|list| list.into_iter().flatten().collect());

    let mut topic_queue_mapping_infos = Vec::new();
    // The decoder follows the request version, not the remaining bytes (bodies.md §3).
    if version >= VERSION_COMPRESSED_MAPPING_MIN {
        let mapping_count = reader.read_count("static-topic mapping count")?;
        topic_queue_mapping_infos.reserve(mapping_count);
        for _ in 0..mapping_count {
            let json = reader.read_bytes("static-topic mapping")?;
            let info = parse_lenient(json, "TopicQueueMappingInfo", |json| from_object_slice::<MappingInfoJson>(json))
                .map_err(|e| compressed_error(e.to_string()))?;
            // Stored under its own `topic`; Java would put a null key and fail.
            let Some(topic) = info.topic.clone() else {
                return Err(compressed_error("static-topic mapping without a topic"));
            };
            let info = info.into_info(|| topic.clone());
            topic_queue_mapping_infos.push((topic, info));
        }
    }

    Ok(RegisterBrokerBody { data_version, topic_configs, filter_server_list, topic_queue_mapping_infos })
}

/// Parses `name read write perm filterType [attributesJSON]` as Java's
/// `TopicConfig.decode(String)` does: split on single spaces, fail on fewer than five
/// tokens, a non-numeric count or an unknown filter type, ignore a bad attributes token.
fn decode_topic_config_string(encoded: &str) -> Result<TopicConfig, String> {
    let mut tokens = encoded.split(' ');
    let mut next_token =
        |name: &str| tokens.next().ok_or_else(|| format!("fewer than 5 space-separated fields (missing {name})"));
    let topic_name = next_token("topic name")?;
    let read_queue_nums = parse_java_int(next_token("readQueueNums")?, "readQueueNums")?;
    let write_queue_nums = parse_java_int(next_token("writeQueueNums")?, "writeQueueNums")?;
    let perm = parse_java_int(next_token("perm")?, "perm")?;
    let filter_name = next_token("topicFilterType")?;
    let topic_filter_type = TopicFilterType::from_java_name(filter_name)
        .ok_or_else(|| format!("unknown topicFilterType {filter_name:?}"))?;
    let attributes = match tokens.next() {
        None | Some("{}") => Vec::new(),
        Some(json) => {
            parse_lenient(json.as_bytes(), "attributes", |json| serde_json::from_slice::<AttributesJson>(json))
                .map(|a| a.0)
                .unwrap_or_default()
        }
    };
    Ok(TopicConfig {
        topic_name: topic_name.to_owned(),
        read_queue_nums,
        write_queue_nums,
        perm,
        // Not carried by the string form; Java decodes them as 0 / false too.
        topic_sys_flag: 0,
        order: false,
        topic_filter_type,
        attributes,
    })
}

fn parse_java_int(token: &str, field: &str) -> Result<i32, String> {
    token.parse().map_err(|_| format!("{field} {token:?} is not an int"))
}

// ---------------------------------------------------------------------------------------
// Encoding: JSON primitives in fastjson's two flavours
// ---------------------------------------------------------------------------------------

fn push_hex4(out: &mut Vec<u8>, unit: u16) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(DIGITS[usize::from((unit >> shift) & 0xF)]);
    }
}

/// Writes `text` as a quoted JSON string the way fastjson 1.2.83's SerializeWriter does:
/// - both flavours: `\"`, `\\`, `\b \f \n \r \t`, other controls as `\u00XX`;
/// - legacy: U+007F..U+009F, U+2028, U+2029 as `\uXXXX`, everything else raw UTF-8;
/// - standard (BrowserCompatible): `/` as `\/`, every char ≥ U+007F as `\uXXXX` per UTF-16
///   unit (so astral chars become surrogate pairs).
fn push_json_str(out: &mut Vec<u8>, text: &str, flavour: JsonFlavour) {
    out.push(b'"');
    let plain = text.bytes().all(|b| (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\' && b != b'/');
    if plain {
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    let mut utf16 = [0u16; 2];
    for ch in text.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '/' if flavour == JsonFlavour::Standard => out.extend_from_slice(b"\\/"),
            c if (c as u32) < 0x20 => push_hex4(out, c as u16),
            c if flavour == JsonFlavour::Standard && (c as u32) >= 0x7F => {
                for unit in c.encode_utf16(&mut utf16) {
                    push_hex4(out, *unit);
                }
            }
            c if ('\u{7F}'..='\u{9F}').contains(&c) || c == '\u{2028}' || c == '\u{2029}' => push_hex4(out, c as u16),
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn push_i64(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn push_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A Java `long` field: BrowserCompatible quotes values a JavaScript double cannot hold.
fn push_long_field(out: &mut Vec<u8>, value: i64, flavour: JsonFlavour) {
    let quoted = flavour == JsonFlavour::Standard && !(-JSON_SAFE_INTEGER_MAX..=JSON_SAFE_INTEGER_MAX).contains(&value);
    if quoted {
        out.push(b'"');
    }
    push_i64(out, value);
    if quoted {
        out.push(b'"');
    }
}

fn push_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// An integer map key: bare in legacy fastjson output, quoted in the standard flavour.
fn push_int_key(out: &mut Vec<u8>, key: i64, flavour: JsonFlavour) {
    if flavour == JsonFlavour::Standard {
        out.push(b'"');
        push_i64(out, key);
        out.extend_from_slice(b"\":");
    } else {
        push_i64(out, key);
        out.push(b':');
    }
}

fn push_str_key(out: &mut Vec<u8>, key: &str, flavour: JsonFlavour) {
    push_json_str(out, key, flavour);
    out.push(b':');
}

fn push_str_array<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>, flavour: JsonFlavour) {
    out.push(b'[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_json_str(out, item, flavour);
    }
    out.push(b']');
}

/// Java's TreeMap order for String keys (MapSortField): UTF-16 code units, which differs
/// from byte order only between astral chars and U+E000..U+FFFF.
fn java_string_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Indices of `entries` in the order the flavour writes a map: as given (legacy, the
/// caller's iteration order) or sorted by `key` (standard).
fn map_order<T>(entries: &[T], key: impl Fn(&T) -> &str, flavour: JsonFlavour) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    if flavour == JsonFlavour::Standard {
        order.sort_by(|&a, &b| java_string_order(key(&entries[a]), key(&entries[b])));
    }
    order
}

fn push_data_version(out: &mut Vec<u8>, data_version: &DataVersion) {
    out.extend_from_slice(b"{\"counter\":");
    push_i64(out, data_version.counter);
    out.extend_from_slice(b",\"stateVersion\":");
    push_i64(out, data_version.state_version);
    out.extend_from_slice(b",\"timestamp\":");
    push_i64(out, data_version.timestamp);
    out.push(b'}');
}

/// brokerAddrs in both flavours: ascending ids, which is also Java's HashMap order for
/// the small non-negative ids brokers use.
fn push_broker_addrs(out: &mut Vec<u8>, broker_addrs: &BTreeMap<i64, String>, flavour: JsonFlavour) {
    out.push(b'{');
    for (index, (broker_id, addr)) in broker_addrs.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_int_key(out, *broker_id, flavour);
        push_json_str(out, addr, flavour);
    }
    out.push(b'}');
}

fn push_broker_data(out: &mut Vec<u8>, broker: &BrokerData, flavour: JsonFlavour) {
    out.extend_from_slice(b"{\"brokerAddrs\":");
    push_broker_addrs(out, &broker.broker_addrs, flavour);
    out.extend_from_slice(b",\"brokerName\":");
    push_json_str(out, &broker.broker_name, flavour);
    out.extend_from_slice(b",\"cluster\":");
    push_json_str(out, &broker.cluster, flavour);
    out.extend_from_slice(b",\"enableActingMaster\":");
    push_bool(out, broker.enable_acting_master);
    if let Some(zone_name) = &broker.zone_name {
        out.extend_from_slice(b",\"zoneName\":");
        push_json_str(out, zone_name, flavour);
    }
    out.push(b'}');
}

fn push_queue_data(out: &mut Vec<u8>, queue: &QueueData, flavour: JsonFlavour) {
    out.extend_from_slice(b"{\"brokerName\":");
    push_json_str(out, &queue.broker_name, flavour);
    out.extend_from_slice(b",\"perm\":");
    push_i32(out, queue.perm);
    out.extend_from_slice(b",\"readQueueNums\":");
    push_i32(out, queue.read_queue_nums);
    out.extend_from_slice(b",\"topicSysFlag\":");
    push_i32(out, queue.topic_sys_flag);
    out.extend_from_slice(b",\"writeQueueNums\":");
    push_i32(out, queue.write_queue_nums);
    out.push(b'}');
}

fn push_mapping_info(out: &mut Vec<u8>, info: &TopicQueueMappingInfo, flavour: JsonFlavour) {
    out.extend_from_slice(b"{\"bname\":");
    push_json_str(out, &info.bname, flavour);
    out.extend_from_slice(b",\"currIdMap\":{");
    for (index, (logical_id, physical_id)) in info.curr_id_map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_int_key(out, i64::from(*logical_id), flavour);
        push_i32(out, *physical_id);
    }
    out.extend_from_slice(b"},\"dirty\":");
    push_bool(out, info.dirty);
    out.extend_from_slice(b",\"epoch\":");
    push_long_field(out, info.epoch, flavour);
    out.extend_from_slice(b",\"scope\":");
    push_json_str(out, &info.scope, flavour);
    out.extend_from_slice(b",\"topic\":");
    push_json_str(out, &info.topic, flavour);
    out.extend_from_slice(b",\"totalQueues\":");
    push_i32(out, info.total_queues);
    out.push(b'}');
}

fn push_attributes(out: &mut Vec<u8>, attributes: &[(String, String)]) {
    out.push(b'{');
    for (index, (key, value)) in attributes.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_str_key(out, key, JsonFlavour::Legacy);
        push_json_str(out, value, JsonFlavour::Legacy);
    }
    out.push(b'}');
}

// ---------------------------------------------------------------------------------------
// Encoding: answer bodies
// ---------------------------------------------------------------------------------------

/// TopicRouteData (bodies.md §6), byte-identical to Java for the same data in the same
/// order. Legacy keeps the given map order; standard sorts maps by key.
pub fn encode_topic_route(out: &mut Vec<u8>, route: &TopicRouteView<'_>, flavour: JsonFlavour) {
    out.extend_from_slice(b"{\"brokerDatas\":[");
    for (index, broker) in route.broker_datas.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_broker_data(out, broker, flavour);
    }
    out.extend_from_slice(b"],\"filterServerTable\":{");
    let filter_servers = route.filter_server_table;
    for (index, &entry) in map_order(filter_servers, |e| e.0, flavour).iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let (broker_addr, servers) = filter_servers[entry];
        push_str_key(out, broker_addr, flavour);
        push_str_array(out, servers.iter().map(String::as_str), flavour);
    }
    out.push(b'}');
    if let Some(order_topic_conf) = route.order_topic_conf {
        out.extend_from_slice(b",\"orderTopicConf\":");
        push_json_str(out, order_topic_conf, flavour);
    }
    out.extend_from_slice(b",\"queueDatas\":[");
    for (index, queue) in route.queue_datas.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_queue_data(out, queue, flavour);
    }
    out.push(b']');
    let mappings = route.topic_queue_mapping_by_broker;
    if !mappings.is_empty() {
        out.extend_from_slice(b",\"topicQueueMappingByBroker\":{");
        for (index, &entry) in map_order(mappings, |e| e.0, flavour).iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let (broker_name, info) = mappings[entry];
            push_str_key(out, broker_name, flavour);
            push_mapping_info(out, info, flavour);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// ClusterInfo (bodies.md §7), always legacy; brokerAddrTable is keyed by each broker's
/// name, and both maps are written in the order given.
pub fn encode_cluster_info(out: &mut Vec<u8>, brokers: &[&BrokerData], clusters: &[(&str, &[&str])]) {
    let flavour = JsonFlavour::Legacy;
    out.extend_from_slice(b"{\"brokerAddrTable\":{");
    for (index, broker) in brokers.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_str_key(out, &broker.broker_name, flavour);
        push_broker_data(out, broker, flavour);
    }
    out.extend_from_slice(b"},\"clusterAddrTable\":{");
    for (index, (cluster, broker_names)) in clusters.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_str_key(out, cluster, flavour);
        push_str_array(out, broker_names.iter().copied(), flavour);
    }
    out.extend_from_slice(b"}}");
}

/// GetBrokerMemberGroupResponseBody (bodies.md §10), legacy form.
pub fn encode_broker_member_group(
    out: &mut Vec<u8>,
    cluster: &str,
    broker_name: &str,
    broker_addrs: &BTreeMap<i64, String>,
) {
    let flavour = JsonFlavour::Legacy;
    out.extend_from_slice(b"{\"brokerMemberGroup\":{\"brokerAddrs\":");
    push_broker_addrs(out, broker_addrs, flavour);
    out.extend_from_slice(b",\"brokerName\":");
    push_json_str(out, broker_name, flavour);
    out.extend_from_slice(b",\"cluster\":");
    push_json_str(out, cluster, flavour);
    out.extend_from_slice(b"}}");
}

/// DataVersion JSON (bodies.md §1, §12).
pub fn encode_data_version(out: &mut Vec<u8>, data_version: &DataVersion) {
    push_data_version(out, data_version);
}

/// KVTable (bodies.md §9), entries in the order given.
pub fn encode_kv_table(out: &mut Vec<u8>, entries: &[(&str, &str)]) {
    let flavour = JsonFlavour::Legacy;
    out.extend_from_slice(b"{\"table\":{");
    for (index, (key, value)) in entries.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_str_key(out, key, flavour);
        push_json_str(out, value, flavour);
    }
    out.extend_from_slice(b"}}");
}

/// TopicList (bodies.md §8); `brokerAddr` only for code 304.
pub fn encode_topic_list<'a>(out: &mut Vec<u8>, topics: impl IntoIterator<Item = &'a str>, broker_addr: Option<&str>) {
    let flavour = JsonFlavour::Legacy;
    out.push(b'{');
    if let Some(broker_addr) = broker_addr {
        out.extend_from_slice(b"\"brokerAddr\":");
        push_json_str(out, broker_addr, flavour);
        out.push(b',');
    }
    out.extend_from_slice(b"\"topicList\":");
    push_str_array(out, topics, flavour);
    out.push(b'}');
}

// ---------------------------------------------------------------------------------------
// Encoding: registration bodies (tests and loadgen)
// ---------------------------------------------------------------------------------------

/// The 5.x Java broker's RegisterBrokerBody JSON (bodies.md §2) with a zero
/// `mappingDataVersion`; see [`encode_register_body_json_with_mapping_version`].
pub fn encode_register_body_json(out: &mut Vec<u8>, body: &RegisterBrokerBody) {
    encode_register_body_json_with_mapping_version(out, body, &DataVersion::default());
}

/// The 5.x Java broker's RegisterBrokerBody JSON. `mappingDataVersion` is the broker's
/// static-topic manager version, independent of the topic-config version and ignored by
/// the NameServer, so it is not part of [`RegisterBrokerBody`] and is passed here.
/// `topicQueueMappingDetailMap` is always `{}`, as brokers send it.
pub fn encode_register_body_json_with_mapping_version(
    out: &mut Vec<u8>,
    body: &RegisterBrokerBody,
    mapping_data_version: &DataVersion,
) {
    let flavour = JsonFlavour::Legacy;
    out.extend_from_slice(b"{\"filterServerList\":");
    let filter_servers = body.filter_server_list.as_deref().unwrap_or_default();
    push_str_array(out, filter_servers.iter().map(String::as_str), flavour);
    out.extend_from_slice(b",\"topicConfigSerializeWrapper\":{\"dataVersion\":");
    push_data_version(out, &body.data_version);
    out.extend_from_slice(b",\"mappingDataVersion\":");
    push_data_version(out, mapping_data_version);
    out.extend_from_slice(b",\"topicConfigTable\":{");
    for (index, topic) in body.topic_configs.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_str_key(out, &topic.topic_name, flavour);
        out.extend_from_slice(b"{\"attributes\":");
        push_attributes(out, &topic.attributes);
        out.extend_from_slice(b",\"order\":");
        push_bool(out, topic.order);
        out.extend_from_slice(b",\"perm\":");
        push_i32(out, topic.perm);
        out.extend_from_slice(b",\"readQueueNums\":");
        push_i32(out, topic.read_queue_nums);
        out.extend_from_slice(b",\"topicFilterType\":\"");
        out.extend_from_slice(topic.topic_filter_type.java_name().as_bytes());
        out.extend_from_slice(b"\",\"topicName\":");
        push_json_str(out, &topic.topic_name, flavour);
        out.extend_from_slice(b",\"topicSysFlag\":");
        push_i32(out, topic.topic_sys_flag);
        out.extend_from_slice(b",\"writeQueueNums\":");
        push_i32(out, topic.write_queue_nums);
        out.push(b'}');
    }
    out.extend_from_slice(b"},\"topicQueueMappingDetailMap\":{},\"topicQueueMappingInfoMap\":{");
    for (index, (topic, info)) in body.topic_queue_mapping_infos.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_str_key(out, topic, flavour);
        push_mapping_info(out, info, flavour);
    }
    out.extend_from_slice(b"}}}");
}

/// Appends a big-endian i32 length placeholder, runs `write`, then patches the length.
fn push_length_prefixed(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let length_at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let length = i32::try_from(out.len() - length_at - 4).expect("a registration field we encode is far below 2 GiB");
    out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
}

fn push_i32_be(out: &mut Vec<u8>, value: usize) {
    let value = i32::try_from(value).expect("a registration holds far fewer than 2^31 entries");
    out.extend_from_slice(&value.to_be_bytes());
}

/// The compressed RegisterBrokerBody (bodies.md §3), deflated at best compression.
///
/// `zlib_wrapped = true` mimics Java brokers: zlib stream, and from `version` 413 every
/// topic string carries the attributes JSON token. `false` mimics rocketmq-rust brokers:
/// raw deflate, and the attributes token only for topics that have attributes. The
/// static-topic section is written from `version` 413 on, like both encoders.
pub fn encode_register_body_compressed(out: &mut Vec<u8>, body: &RegisterBrokerBody, version: i32, zlib_wrapped: bool) {
    let with_mappings = version >= VERSION_COMPRESSED_MAPPING_MIN;
    let mut plain = Vec::new();
    push_length_prefixed(&mut plain, |plain| push_data_version(plain, &body.data_version));
    push_i32_be(&mut plain, body.topic_configs.len());
    for topic in &body.topic_configs {
        push_length_prefixed(&mut plain, |plain| {
            plain.extend_from_slice(topic.topic_name.as_bytes());
            for number in [topic.read_queue_nums, topic.write_queue_nums, topic.perm] {
                plain.push(b' ');
                push_i32(plain, number);
            }
            plain.push(b' ');
            plain.extend_from_slice(topic.topic_filter_type.java_name().as_bytes());
            if with_mappings && (zlib_wrapped || !topic.attributes.is_empty()) {
                plain.push(b' ');
                push_attributes(plain, &topic.attributes);
            }
        });
    }
    push_length_prefixed(&mut plain, |plain| {
        let filter_servers = body.filter_server_list.as_deref().unwrap_or_default();
        push_str_array(plain, filter_servers.iter().map(String::as_str), JsonFlavour::Legacy);
    });
    if with_mappings {
        push_i32_be(&mut plain, body.topic_queue_mapping_infos.len());
        for (_, info) in &body.topic_queue_mapping_infos {
            push_length_prefixed(&mut plain, |plain| push_mapping_info(plain, info, JsonFlavour::Legacy));
        }
    }

    let level = flate2::Compression::best();
    if zlib_wrapped {
        let mut encoder = flate2::write::ZlibEncoder::new(&mut *out, level);
        encoder.write_all(&plain).expect("writing into a Vec cannot fail");
        encoder.finish().expect("writing into a Vec cannot fail");
    } else {
        let mut encoder = flate2::write::DeflateEncoder::new(&mut *out, level);
        encoder.write_all(&plain).expect("writing into a Vec cannot fail");
        encoder.finish().expect("writing into a Vec cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;
    /// Cap used where the test is not about the cap.
    const CAP_BYTES: usize = 16 * MIB;

    /// Runs an encoder on an empty buffer and compares the text byte for byte.
    fn check(encode: impl FnOnce(&mut Vec<u8>), expected: &str) {
        let mut out = Vec::new();
        encode(&mut out);
        assert_eq!(String::from_utf8_lossy(&out), expected);
        assert_eq!(out, expected.as_bytes());
    }

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert!(digits.len() % 2 == 0, "odd hex length {}", digits.len());
        let nibble = |d: u8| (d as char).to_digit(16).expect("hex digit") as u8;
        digits.chunks(2).map(|pair| nibble(pair[0]) << 4 | nibble(pair[1])).collect()
    }

    fn inflate_all(body: &[u8], zlib_wrapped: bool) -> Vec<u8> {
        inflate_capped(body, zlib_wrapped, CAP_BYTES).expect("test stream inflates")
    }

    fn deflate(plain: &[u8], zlib_wrapped: bool) -> Vec<u8> {
        let level = flate2::Compression::best();
        if zlib_wrapped {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
            encoder.write_all(plain).unwrap();
            encoder.finish().unwrap()
        } else {
            let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), level);
            encoder.write_all(plain).unwrap();
            encoder.finish().unwrap()
        }
    }

    fn decode_json(body: &str) -> Result<RegisterBrokerBody, BodyError> {
        decode_register_body(body.as_bytes(), 479, BodyEncoding::Json, CAP_BYTES)
    }

    fn topic(name: &str, read: i32, write: i32, perm: i32) -> TopicConfig {
        TopicConfig { read_queue_nums: read, write_queue_nums: write, perm, ..TopicConfig::new(name) }
    }

    fn broker(cluster: &str, name: &str, addrs: &[(i64, &str)]) -> BrokerData {
        BrokerData {
            cluster: cluster.to_owned(),
            broker_name: name.to_owned(),
            broker_addrs: addrs.iter().map(|(id, a)| (*id, a.to_string())).collect(),
            enable_acting_master: false,
            zone_name: None,
        }
    }

    fn queue(name: &str, read: i32, write: i32, perm: i32) -> QueueData {
        QueueData { broker_name: name.into(), read_queue_nums: read, write_queue_nums: write, perm, topic_sys_flag: 0 }
    }

    fn route<'a>(brokers: &'a [&'a BrokerData], queues: &'a [&'a QueueData]) -> TopicRouteView<'a> {
        TopicRouteView {
            broker_datas: brokers,
            queue_datas: queues,
            filter_server_table: &[],
            order_topic_conf: None,
            topic_queue_mapping_by_broker: &[],
        }
    }

    fn static_mapping(ids: &[(i32, i32)]) -> TopicQueueMappingInfo {
        TopicQueueMappingInfo {
            topic: "StaticTopic".to_owned(),
            bname: "broker-a".to_owned(),
            scope: "__global__".to_owned(),
            total_queues: 2,
            epoch: 1_700_000_000_000,
            dirty: false,
            curr_id_map: ids.iter().copied().collect(),
        }
    }

    // --- golden frames -------------------------------------------------------------------

    fn golden_dir() -> std::path::PathBuf {
        // Vendored at the repo root (testdata/golden/README.md says where they came from).
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
    }

    struct GoldenExchange {
        request_header: serde_json::Value,
        request_body: Vec<u8>,
        response_body: Vec<u8>,
    }

    /// Body of a whole frame: 4-byte total_len, 4-byte (type << 24 | header_len), header.
    fn frame_body(frame_hex: &serde_json::Value) -> Vec<u8> {
        let Some(frame_hex) = frame_hex.as_str() else {
            return Vec::new();
        };
        let frame = hex(frame_hex);
        let header_bytes = u32::from_be_bytes([0, frame[5], frame[6], frame[7]]) as usize;
        frame[8 + header_bytes..].to_vec()
    }

    fn golden(file: &str, seq: u64) -> GoldenExchange {
        let path = golden_dir().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let line = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find(|line| line["seq"] == seq)
            .unwrap_or_else(|| panic!("{file} has no seq {seq}"));
        GoldenExchange {
            request_header: line["request_header"].clone(),
            request_body: frame_body(&line["request_hex"]),
            response_body: frame_body(&line["response_hex"]),
        }
    }

    const JAVA: &str = "java-5.3.3-examples.jsonl";
    const RUST: &str = "rocketmq-rust-broker-1.0.0.jsonl";

    /// Decodes a golden REGISTER_BROKER exactly as the handler will: CRC, then body.
    fn decode_golden_register(file: &str, seq: u64) -> (GoldenExchange, RegisterBrokerBody) {
        let exchange = golden(file, seq);
        let header = &exchange.request_header;
        let ext = &header["extFields"];
        let crc32_expected: i32 = ext["bodyCrc32"].as_str().unwrap().parse().unwrap();
        check_body_crc32(&exchange.request_body, crc32_expected).expect("golden CRC matches");
        let encoding = if ext["compressed"] == "true" { BodyEncoding::Compressed } else { BodyEncoding::Json };
        let version = header["version"].as_i64().unwrap() as i32;
        let body = decode_register_body(&exchange.request_body, version, encoding, CAP_BYTES)
            .unwrap_or_else(|e| panic!("{file} seq {seq}: {e}"));
        (exchange, body)
    }

    fn find_topic<'a>(body: &'a RegisterBrokerBody, name: &str) -> &'a TopicConfig {
        body.topic_configs.iter().find(|t| t.topic_name == name).unwrap_or_else(|| panic!("topic {name} missing"))
    }

    // --- bodies.md examples --------------------------------------------------------------

    const REGISTER_JSON_449: &str = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":1700000000001},"topicConfigTable":{"TopicTest":{"attributes":{},"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":8}},"topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}"#;

    const COMPRESSED_EXAMPLE_HEX: &str = "78da6360 60b0a856 4ace2fcd 2b492d52 b232d651 2a2e492c
        490d4b2d 2acecccf 53b232d0 512ac9cc 4d050ae6 16285919 9a1b2040 2d030303 2310cb86
        e4176426 8700d528 5800a199 42b0a79f bb8f6b7c 88a3bb42 35481153 742c9064 0000540f 1b6b";

    fn example_body() -> RegisterBrokerBody {
        RegisterBrokerBody {
            data_version: DataVersion { counter: 3, state_version: 0, timestamp: 1_700_000_000_000 },
            topic_configs: vec![topic("TopicTest", 8, 8, 6)],
            filter_server_list: Some(Vec::new()),
            topic_queue_mapping_infos: Vec::new(),
        }
    }

    /// The 107 inflated bytes of bodies.md §3.
    fn compressed_example_plain() -> Vec<u8> {
        let mut plain = Vec::new();
        let data_version = br#"{"counter":3,"stateVersion":0,"timestamp":1700000000000}"#;
        plain.extend_from_slice(&56i32.to_be_bytes());
        plain.extend_from_slice(data_version);
        plain.extend_from_slice(&1i32.to_be_bytes());
        plain.extend_from_slice(&29i32.to_be_bytes());
        plain.extend_from_slice(b"TopicTest 8 8 6 SINGLE_TAG {}");
        plain.extend_from_slice(&2i32.to_be_bytes());
        plain.extend_from_slice(b"[]");
        plain.extend_from_slice(&0i32.to_be_bytes());
        plain
    }

    #[test]
    fn crc_examples() {
        assert_eq!(body_crc32(REGISTER_JSON_449.as_bytes()), 437_133_061);
        assert_eq!(body_crc32(&hex(COMPRESSED_EXAMPLE_HEX)), 2_083_926_730);
        assert!(check_body_crc32(b"x", 0).is_ok());
        let mismatch = check_body_crc32(REGISTER_JSON_449.as_bytes(), 1).unwrap_err();
        assert_eq!(mismatch.to_string(), "crc32 not match");
        // A non-zero CRC with no body fails, as in Java.
        assert!(check_body_crc32(b"", 437_133_061).is_err());
    }

    #[test]
    fn register_json_example_encodes_and_decodes() {
        assert_eq!(REGISTER_JSON_449.len(), 449);
        let mapping_data_version = DataVersion { counter: 0, state_version: 0, timestamp: 1_700_000_000_001 };
        check(
            |out| encode_register_body_json_with_mapping_version(out, &example_body(), &mapping_data_version),
            REGISTER_JSON_449,
        );
        assert_eq!(decode_json(REGISTER_JSON_449).unwrap(), example_body());

        let mut out = Vec::new();
        encode_register_body_json(&mut out, &example_body());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":0}"#));
    }

    #[test]
    fn compressed_example_decodes() {
        let body = hex(COMPRESSED_EXAMPLE_HEX);
        assert_eq!(body.len(), 98);
        assert_eq!(inflate_all(&body, true), compressed_example_plain());
        let decoded = decode_register_body(&body, 479, BodyEncoding::Compressed, CAP_BYTES).unwrap();
        let mut expected = example_body();
        expected.topic_configs[0].attributes = Vec::new();
        assert_eq!(decoded, expected);
        // 5.x Java brokers send this with compressed=false.
        let lenient = decode_register_body(&body, 479, BodyEncoding::Json, CAP_BYTES).unwrap();
        assert_eq!(lenient, expected);
    }

    #[test]
    fn compressed_encoder_matches_layout() {
        for zlib_wrapped in [true, false] {
            let mut out = Vec::new();
            encode_register_body_compressed(&mut out, &example_body(), 479, zlib_wrapped);
            assert_eq!(is_zlib_header(&out), zlib_wrapped);
            let plain = inflate_all(&out, zlib_wrapped);
            if zlib_wrapped {
                assert_eq!(plain, compressed_example_plain());
            } else {
                // rocketmq-rust style: no attributes token for a topic without attributes.
                assert!(plain.windows(30).any(|w| w == b"\0\0\0\x1aTopicTest 8 8 6 SINGLE_TAG"));
            }
            let decoded = decode_register_body(&out, 479, BodyEncoding::Compressed, CAP_BYTES).unwrap();
            assert_eq!(decoded, example_body());
        }
    }

    #[test]
    fn compressed_round_trip_with_mappings_and_attributes() {
        let mut body = example_body();
        body.topic_configs.push(TopicConfig {
            attributes: vec![("message.type".to_owned(), "FIFO".to_owned())],
            ..topic("OrderTopic", 4, 4, 6)
        });
        body.filter_server_list = Some(vec!["10.0.0.9:30000".to_owned()]);
        body.topic_queue_mapping_infos = vec![("StaticTopic".to_owned(), static_mapping(&[(0, 0), (1, 3)]))];
        let mut out = Vec::new();
        encode_register_body_compressed(&mut out, &body, 479, true);
        let plain = String::from_utf8_lossy(&inflate_all(&out, true)).into_owned();
        assert!(plain.contains(r#"OrderTopic 4 4 6 SINGLE_TAG {"message.type":"FIFO"}"#));
        assert!(plain.contains(r#""currIdMap":{0:0,1:3}"#));
        let decoded = decode_register_body(&out, 479, BodyEncoding::Compressed, CAP_BYTES).unwrap();
        assert_eq!(decoded, body);

        // A 4.x broker (version < 413) writes neither attributes nor the mapping section.
        let mut out = Vec::new();
        encode_register_body_compressed(&mut out, &body, 400, true);
        let decoded = decode_register_body(&out, 400, BodyEncoding::Compressed, CAP_BYTES).unwrap();
        assert_eq!(decoded.topic_configs[1].attributes, Vec::new());
        assert_eq!(decoded.topic_queue_mapping_infos, Vec::new());
        // Reading a 4.x body with a 5.x version runs off the end: the version decides.
        let error = decode_register_body(&out, 479, BodyEncoding::Compressed, CAP_BYTES).unwrap_err();
        assert!(error.to_string().contains("End of compressed data"), "{error}");
    }

    #[test]
    fn json_register_with_mappings_round_trips() {
        let mut body = example_body();
        body.topic_queue_mapping_infos = vec![("StaticTopic".to_owned(), static_mapping(&[(0, 0)]))];
        let mut out = Vec::new();
        encode_register_body_json(&mut out, &body);
        let text = String::from_utf8(out).unwrap();
        // Broker output carries unquoted integer keys, which serde_json alone rejects.
        assert!(text.contains(r#""topicQueueMappingInfoMap":{"StaticTopic":{"bname":"broker-a","currIdMap":{0:0},"dirty":false,"epoch":1700000000000,"scope":"__global__","topic":"StaticTopic","totalQueues":2}}"#));
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
        assert_eq!(decode_json(&text).unwrap(), body);
    }

    #[test]
    fn data_version() {
        let data_version = DataVersion { counter: 3, state_version: 0, timestamp: 1_700_000_000_000 };
        let text = r#"{"counter":3,"stateVersion":0,"timestamp":1700000000000}"#;
        check(|out| encode_data_version(out, &data_version), text);
        assert_eq!(decode_data_version(text.as_bytes()).unwrap(), data_version);
        // rocketmq-rust key order, nulls, unknown keys and $ref all decode leniently.
        let lenient = br#"{"stateVersion":null,"timestamp":1700000000000,"counter":3,"x":[1]}"#;
        assert_eq!(decode_data_version(lenient).unwrap(), data_version);
        assert_eq!(decode_data_version(br#"{"$ref":"$.a"}"#).unwrap(), DataVersion::default());
        let error = decode_data_version(b"").unwrap_err();
        assert!(error.to_string().starts_with("Failed to decode DataVersion: "), "{error}");
    }

    #[test]
    fn route_standard_and_legacy() {
        let broker_a = broker("DefaultCluster", "broker-a", &[(0, "10.0.0.1:10911"), (1, "10.0.0.2:10911")]);
        let queue_a = queue("broker-a", 4, 4, 6);
        let (brokers, queues) = ([&broker_a], [&queue_a]);
        let view = route(&brokers, &queues);
        check(
            |out| encode_topic_route(out, &view, JsonFlavour::Standard),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#,
        );
        check(
            |out| encode_topic_route(out, &view, JsonFlavour::Legacy),
            r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#,
        );
        check(
            |out| encode_topic_route(out, &route(&[], &[]), JsonFlavour::Standard),
            r#"{"brokerDatas":[],"filterServerTable":{},"queueDatas":[]}"#,
        );
    }

    #[test]
    fn route_optional_keys() {
        let zoned = BrokerData {
            zone_name: Some("zone-1".to_owned()),
            enable_acting_master: true,
            ..broker("c", "b", &[(0, "a:1")])
        };
        let servers = vec!["f:2".to_owned()];
        let other_servers = vec!["g:3".to_owned(), "h:4".to_owned()];
        let filter_server_table: [(&str, &[String]); 2] = [("z:1", &servers), ("a:1", &other_servers)];
        let mapping = static_mapping(&[(0, 0), (1, 1)]);
        let view = TopicRouteView {
            broker_datas: &[&zoned],
            queue_datas: &[],
            filter_server_table: &filter_server_table,
            order_topic_conf: Some("b:4"),
            topic_queue_mapping_by_broker: &[("broker-a", &mapping)],
        };
        check(
            |out| encode_topic_route(out, &view, JsonFlavour::Standard),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"a:1"},"brokerName":"b","cluster":"c","enableActingMaster":true,"zoneName":"zone-1"}],"filterServerTable":{"a:1":["g:3","h:4"],"z:1":["f:2"]},"orderTopicConf":"b:4","queueDatas":[],"topicQueueMappingByBroker":{"broker-a":{"bname":"broker-a","currIdMap":{"0":0,"1":1},"dirty":false,"epoch":1700000000000,"scope":"__global__","topic":"StaticTopic","totalQueues":2}}}"#,
        );
        check(
            |out| encode_topic_route(out, &view, JsonFlavour::Legacy),
            r#"{"brokerDatas":[{"brokerAddrs":{0:"a:1"},"brokerName":"b","cluster":"c","enableActingMaster":true,"zoneName":"zone-1"}],"filterServerTable":{"z:1":["f:2"],"a:1":["g:3","h:4"]},"orderTopicConf":"b:4","queueDatas":[],"topicQueueMappingByBroker":{"broker-a":{"bname":"broker-a","currIdMap":{0:0,1:1},"dirty":false,"epoch":1700000000000,"scope":"__global__","topic":"StaticTopic","totalQueues":2}}}"#,
        );
    }

    #[test]
    fn other_answer_bodies() {
        let broker_a = broker("DefaultCluster", "broker-a", &[(0, "10.0.0.1:10911"), (1, "10.0.0.2:10911")]);
        check(
            |out| encode_cluster_info(out, &[&broker_a], &[("DefaultCluster", &["broker-a"])]),
            r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}},"clusterAddrTable":{"DefaultCluster":["broker-a"]}}"#,
        );
        check(
            |out| encode_broker_member_group(out, "DefaultCluster", "broker-a", &broker_a.broker_addrs),
            r#"{"brokerMemberGroup":{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}}"#,
        );
        check(
            |out| encode_kv_table(out, &[("TopicOrder", "broker-a:4;broker-b:4")]),
            r#"{"table":{"TopicOrder":"broker-a:4;broker-b:4"}}"#,
        );
        check(|out| encode_topic_list(out, ["TopicTest", "TBW102"], None), r#"{"topicList":["TopicTest","TBW102"]}"#);
        check(
            |out| encode_topic_list(out, ["DefaultCluster", "broker-a"], Some("10.0.0.1:10911")),
            r#"{"brokerAddr":"10.0.0.1:10911","topicList":["DefaultCluster","broker-a"]}"#,
        );
    }

    #[test]
    fn string_escaping() {
        let standard =
            |text: &str, expected: &str| check(|out| push_json_str(out, text, JsonFlavour::Standard), expected);
        let legacy = |text: &str, expected: &str| check(|out| push_json_str(out, text, JsonFlavour::Legacy), expected);
        standard("集群", r#""\u96C6\u7FA4""#);
        legacy("集群", "\"集群\"");
        standard("a/b", r#""a\/b""#);
        legacy("a/b", r#""a/b""#);
        standard("\u{1F600}", r#""\uD83D\uDE00""#);
        legacy("\u{1F600}", "\"\u{1F600}\"");
        for flavour_check in [standard, legacy] {
            flavour_check("q\"b\\", r#""q\"b\\""#);
            flavour_check("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#);
            flavour_check("\u{0}\u{b}\u{1f}", r#""\u0000\u000B\u001F""#);
            flavour_check("\u{7f}\u{85}", r#""\u007F\u0085""#);
        }
        legacy("\u{2028}é", "\"\\u2028é\"");
        standard("é", r#""\u00E9""#);

        // Whole bodies take the same escaping; standard sorts map keys by UTF-16 units.
        let named = broker("集群", "b/1", &[(0, "a:1")]);
        let brokers = [&named];
        let view = route(&brokers, &[]);
        check(
            |out| encode_topic_route(out, &view, JsonFlavour::Standard),
            r#"{"brokerDatas":[{"brokerAddrs":{"0":"a:1"},"brokerName":"b\/1","cluster":"\u96C6\u7FA4","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[]}"#,
        );
        assert_eq!(java_string_order("\u{FF61}", "\u{1F600}"), std::cmp::Ordering::Greater);
        check(|out| push_long_field(out, JSON_SAFE_INTEGER_MAX + 1, JsonFlavour::Standard), r#""9007199254740992""#);
    }

    // --- golden frames -------------------------------------------------------------------

    #[test]
    fn golden_java_registrations_decode_and_re_encode() {
        for seq in [2, 3] {
            let (exchange, body) = decode_golden_register(JAVA, seq);
            assert_eq!(body.topic_configs.len(), 6);
            assert_eq!(body.data_version, DataVersion { counter: 1, state_version: 0, timestamp: 1_700_000_000_001 });
            assert_eq!(find_topic(&body, "pcb0912c-t-perm7").perm, 7);
            let topic_a = find_topic(&body, "pcb0912c-t-a");
            assert_eq!((topic_a.read_queue_nums, topic_a.write_queue_nums), (2, 3));
            assert_eq!(body.filter_server_list, Some(Vec::new()));
            // Same data, same order: Java's bytes exactly.
            let mapping_data_version = DataVersion { counter: 0, state_version: 0, timestamp: 1_700_000_000_001 };
            let mut out = Vec::new();
            encode_register_body_json_with_mapping_version(&mut out, &body, &mapping_data_version);
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&exchange.request_body));
        }
    }

    #[test]
    fn golden_rocketmq_rust_registrations_decode() {
        // (seq, topic count, counter): JSON bodies then raw-deflate compressed ones.
        for (seq, topic_count, counter) in [(1, 13, 0), (4, 15, 2), (7, 13, 0), (10, 15, 2)] {
            let (_, body) = decode_golden_register(RUST, seq);
            assert_eq!(body.topic_configs.len(), topic_count, "seq {seq}");
            assert_eq!(body.data_version.counter, counter, "seq {seq}");
            let tbw102 = find_topic(&body, "TBW102");
            assert_eq!((tbw102.perm, tbw102.read_queue_nums, tbw102.write_queue_nums), (7, 8, 8));
            assert_eq!(find_topic(&body, "BenchmarkTest").read_queue_nums, 1024);
            assert_eq!(body.filter_server_list, Some(Vec::new()));
            assert!(body.topic_queue_mapping_infos.is_empty());
        }
        let (_, compressed) = decode_golden_register(RUST, 10);
        assert!(compressed.topic_configs.iter().any(|t| t.topic_name == "GoldenTopicZip"));
    }

    #[test]
    fn golden_route_answers_re_encode() {
        let broker_a = broker("pcb0912c-c1", "pcb0912c-bA", &[(0, "127.0.0.1:41011"), (1, "127.0.0.1:41021")]);
        let broker_b = broker("pcb0912c-c1", "pcb0912c-bB", &[(0, "127.0.0.1:41111"), (1, "127.0.0.1:41121")]);
        let queue_a = queue("pcb0912c-bA", 4, 4, 6);
        let queue_b = queue("pcb0912c-bB", 8, 8, 6);
        let (brokers, queues) = ([&broker_a, &broker_b], [&queue_a, &queue_b]);
        let shared = route(&brokers, &queues);
        for (seq, flavour) in [(5, JsonFlavour::Standard), (6, JsonFlavour::Legacy), (7, JsonFlavour::Standard)] {
            let mut out = Vec::new();
            encode_topic_route(&mut out, &shared, flavour);
            assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&golden(JAVA, seq).response_body));
        }
        let queue_217 = queue("pcb0912c-bA", 7, 7, 6);
        let mut out = Vec::new();
        encode_topic_route(&mut out, &route(&[&broker_a], &[&queue_217]), JsonFlavour::Standard);
        assert_eq!(out, golden(JAVA, 17).response_body);
    }

    #[test]
    fn golden_other_answers_re_encode() {
        let encoded = |encode: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            encode(&mut out);
            String::from_utf8(out).unwrap()
        };
        let java = |seq| String::from_utf8(golden(JAVA, seq).response_body).unwrap();

        let brokers = [
            broker("pcb0912c-c3", "pcb0912c-bE", &[]),
            broker("pcb0912c-c2", "pcb0912c-bC", &[(0, "127.0.0.1:41211"), (1, "127.0.0.1:41221")]),
            broker("pcb0912c-c2", "pcb0912c-bD", &[(0, "127.0.0.1:41311"), (1, "127.0.0.1:41321")]),
            broker("pcb0912c-c1", "pcb0912c-bA", &[(0, "127.0.0.1:41011"), (1, "127.0.0.1:41021")]),
            broker("pcb0912c-c1", "pcb0912c-bB", &[(0, "127.0.0.1:41111"), (1, "127.0.0.1:41121")]),
        ];
        let broker_refs: Vec<&BrokerData> = brokers.iter().collect();
        let clusters: [(&str, &[&str]); 3] = [
            ("pcb0912c-c2", &["pcb0912c-bC", "pcb0912c-bD"]),
            ("pcb0912c-c3", &["pcb0912c-bE"]),
            ("pcb0912c-c1", &["pcb0912c-bA", "pcb0912c-bB"]),
        ];
        assert_eq!(encoded(&|out| encode_cluster_info(out, &broker_refs, &clusters)), java(13));
        assert_eq!(encoded(&|out| encode_cluster_info(out, &[], &[])), java(1));
        let addrs = &brokers[3].broker_addrs;
        assert_eq!(encoded(&|out| encode_broker_member_group(out, "pcb0912c-c1", "pcb0912c-bA", addrs)), java(14));
        let none = BTreeMap::new();
        assert_eq!(encoded(&|out| encode_broker_member_group(out, "pcb0912c-c1", "pcb0912c-ghost", &none)), java(15));
        assert_eq!(encoded(&|out| encode_kv_table(out, &[("k1", "v1"), ("k2", "broker-a:4;broker-b:4")])), java(22));
        let data_version = DataVersion { counter: 1, state_version: 0, timestamp: 1_700_000_000_001 };
        assert_eq!(encoded(&|out| encode_data_version(out, &data_version)), java(9));
        assert_eq!(encoded(&|out| encode_topic_list(out, [], None)), java(30));
        let system_topics = [
            "pcb0912c-bE",
            "pcb0912c-bC",
            "pcb0912c-bD",
            "pcb0912c-c2",
            "pcb0912c-bA",
            "pcb0912c-c3",
            "pcb0912c-bB",
            "pcb0912c-c1",
        ];
        assert_eq!(encoded(&|out| encode_topic_list(out, system_topics, Some("127.0.0.1:41211"))), java(31));
    }

    #[test]
    fn golden_register_topic_bodies() {
        let queues = decode_register_topic_queue_datas(&golden(JAVA, 16).request_body).unwrap();
        assert_eq!(queues, vec![queue("pcb0912c-bA", 7, 7, 6)]);
        // rocketmq-rust sends explicit nulls for orderTopicConf and topicQueueMappingInfo.
        for (seq, name, queue_nums) in
            [(2, "gbroker-plain", 4), (3, "gbroker-plain", 1), (8, "gbroker-zip", 4), (9, "gbroker-zip", 1)]
        {
            let queues = decode_register_topic_queue_datas(&golden(RUST, seq).request_body).unwrap();
            assert_eq!(queues, vec![queue(name, queue_nums, queue_nums, 6)]);
        }
        // A legacy-form route (unquoted ids) is accepted too; missing numbers are 0.
        let legacy =
            br#"{"brokerDatas":[{"brokerAddrs":{0:"a:1"}}],"queueDatas":[{"brokerName":"b"},null,{"perm":6}]}"#;
        assert_eq!(decode_register_topic_queue_datas(legacy).unwrap(), vec![queue("b", 0, 0, 0)]);
        assert!(decode_register_topic_queue_datas(b"{").is_err());
    }

    // --- lenient JSON --------------------------------------------------------------------

    #[test]
    fn json_defaults_nulls_and_unknown_keys() {
        let body = decode_json(
            r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"k":{"topicName":"T","perm":null,"readQueueNums":null,"attributes":null,"topicFilterType":null,"order":null,"future":{"x":[1,{}]}}},"dataVersion":null,"topicQueueMappingInfoMap":null},"filterServerList":["f:1",null],"extra":1}"#,
        )
        .unwrap();
        assert_eq!(body.topic_configs, vec![TopicConfig::new("T")]);
        assert_eq!(body.data_version, DataVersion::default());
        assert_eq!(body.filter_server_list, Some(vec!["f:1".to_owned()]));

        // The NameServer uses topicName, not the map key.
        let renamed =
            decode_json(r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"key":{"topicName":"name"}}}}"#)
                .unwrap();
        assert_eq!(renamed.topic_configs[0].topic_name, "name");

        // No filterServerList key: Java's empty-list default; explicit null: unchanged.
        assert_eq!(decode_json("{}").unwrap().filter_server_list, Some(Vec::new()));
        assert_eq!(decode_json(r#"{"filterServerList":null}"#).unwrap().filter_server_list, None);

        let multi = decode_json(r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a","topicFilterType":"MULTI_TAG","attributes":{"n":1,"b":true,"s":"v","z":null}},"b":{"topicName":"b","topicFilterType":"NOPE"}}}}"#).unwrap();
        assert_eq!(multi.topic_configs[0].topic_filter_type, TopicFilterType::MultiTag);
        let attributes = [("n", "1"), ("b", "true"), ("s", "v")].map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(multi.topic_configs[0].attributes, attributes);
        assert_eq!(multi.topic_configs[1].topic_filter_type, TopicFilterType::SingleTag);
    }

    #[test]
    fn json_unquoted_keys_and_refs() {
        let body = decode_json(
            r#"{"topicConfigSerializeWrapper":{"dataVersion":{"$ref":"$.x"},"topicConfigTable":{"T":{"topicName":"T","attributes":{"$ref":"$.y"}},"U":{"$ref":"$.topicConfigSerializeWrapper.topicConfigTable.T"}},"topicQueueMappingDetailMap":{"S":{"hostedQueues":{0:[{"bname":"b","queueId":0}]}}},"topicQueueMappingInfoMap":{"S":{"bname":"b","currIdMap":{0:1, -1 :2},"totalQueues":2}}}}"#,
        )
        .unwrap();
        assert_eq!(body.topic_configs, vec![TopicConfig::new("T")]);
        let (topic, info) = &body.topic_queue_mapping_infos[0];
        assert_eq!(topic, "S");
        assert_eq!(info.topic, "S");
        assert_eq!(info.scope, "__global__");
        assert_eq!(info.curr_id_map, BTreeMap::from([(-1, 2), (0, 1)]));
    }

    #[test]
    fn quote_integer_keys_only_touches_keys() {
        let rewrite = |json: &str| quote_integer_keys(json.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(rewrite(r#"{0:"a",1:{2:3}}"#).as_deref(), Some(r#"{"0":"a","1":{"2":3}}"#));
        assert_eq!(rewrite(r#"{ 0 :[1,2],"x":"{0:1}"}"#).as_deref(), Some(r#"{ "0" :[1,2],"x":"{0:1}"}"#));
        assert_eq!(rewrite(r#"{"a":[1,{"b":2}],"c":"\"{3:"}"#), None);
    }

    #[test]
    fn json_rejections() {
        let missing_name =
            decode_json(r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"perm":6}}}}"#).unwrap_err();
        assert!(missing_name.to_string().contains("has no topicName"), "{missing_name}");
        for garbage in [
            "{",
            "[]",
            "{\"topicConfigSerializeWrapper\":5}",
            "nonsense",
            "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"T\":{\"topicName\":\"T\",\"perm\":\"x\"}}}}",
        ] {
            let error = decode_json(garbage).unwrap_err();
            assert!(error.to_string().starts_with("Failed to decode RegisterBrokerBody: "), "{error}");
        }
        // serde would map arrays onto struct fields by position; fastjson refuses.
        for positional in
            [r#"{"topicConfigSerializeWrapper":{"dataVersion":[1,2,3]}}"#, r#"{"topicConfigSerializeWrapper":[]}"#]
        {
            assert!(decode_json(positional).is_err(), "{positional}");
        }
        let out_of_range = decode_json(
            r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"T":{"topicName":"T","perm":4294967296}}}}"#,
        );
        assert!(out_of_range.is_err());
        let negative = decode_register_body(b"{}", -1, BodyEncoding::Json, CAP_BYTES).unwrap_err();
        assert!(matches!(negative, BodyError::VersionNegative { version: -1 }));
    }

    #[test]
    fn empty_bare_wrapper_and_4x_bodies() {
        assert_eq!(
            decode_register_body(b"", 479, BodyEncoding::Compressed, CAP_BYTES).unwrap(),
            RegisterBrokerBody::default()
        );
        let bare = br#"{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":8}}}"#;
        let decoded = decode_register_body(bare, 36, BodyEncoding::Json, CAP_BYTES).unwrap();
        assert_eq!(decoded, RegisterBrokerBody { filter_server_list: None, ..example_body() });
        // The same bytes with a version ≥ 37 are a RegisterBrokerBody without its keys.
        let misread = decode_register_body(bare, 37, BodyEncoding::Json, CAP_BYTES).unwrap();
        assert!(misread.topic_configs.is_empty());
        let v4 = br#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":8}}}}"#;
        assert_eq!(decode_register_body(v4, 400, BodyEncoding::Json, CAP_BYTES).unwrap(), example_body());
    }

    #[test]
    fn large_registration_keeps_order() {
        let body = RegisterBrokerBody {
            topic_configs: (0..10_000).map(|i| topic(&format!("topic-{i}"), 8, 8, 6)).collect(),
            ..example_body()
        };
        let mut json = Vec::new();
        encode_register_body_json(&mut json, &body);
        assert_eq!(decode_register_body(&json, 479, BodyEncoding::Json, CAP_BYTES).unwrap(), body);
        let mut compressed = Vec::new();
        encode_register_body_compressed(&mut compressed, &body, 479, true);
        let decoded = decode_register_body(&compressed, 479, BodyEncoding::Compressed, CAP_BYTES).unwrap();
        assert_eq!(decoded, body);
    }

    // --- compressed layout: bad input ----------------------------------------------------

    /// Deflates a hand-built layout and decodes it at version 479.
    fn decode_layout(plain: &[u8]) -> Result<RegisterBrokerBody, BodyError> {
        decode_register_body(&deflate(plain, true), 479, BodyEncoding::Compressed, CAP_BYTES)
    }

    fn layout_with_topic(topic_string: &str) -> Vec<u8> {
        let mut plain = Vec::new();
        plain.extend_from_slice(&2i32.to_be_bytes());
        plain.extend_from_slice(b"{}");
        plain.extend_from_slice(&1i32.to_be_bytes());
        plain.extend_from_slice(&(topic_string.len() as i32).to_be_bytes());
        plain.extend_from_slice(topic_string.as_bytes());
        plain.extend_from_slice(&2i32.to_be_bytes());
        plain.extend_from_slice(b"[]");
        plain.extend_from_slice(&0i32.to_be_bytes());
        plain
    }

    #[test]
    fn topic_string_forms() {
        let decoded = decode_layout(&layout_with_topic("T 1 2 7 MULTI_TAG")).unwrap();
        assert_eq!(
            decoded.topic_configs,
            vec![TopicConfig { topic_filter_type: TopicFilterType::MultiTag, ..topic("T", 1, 2, 7) }]
        );
        // A bad 6th token is ignored, including attributes split apart by a space.
        for tail in [" {bad", " {\"k\":\"a b\"}", " ", " {\"$ref\":\"$\"}"] {
            let decoded = decode_layout(&layout_with_topic(&format!("T 1 2 7 SINGLE_TAG{tail}"))).unwrap();
            assert_eq!(decoded.topic_configs[0].attributes, Vec::new(), "{tail:?}");
        }
        for (bad, detail) in [
            ("T 1 2 7", "fewer than 5"),
            ("T 1 2 x SINGLE_TAG", "perm \"x\" is not an int"),
            ("T 1  2 7 SINGLE_TAG", "writeQueueNums \"\" is not an int"),
            ("T 1 2 7 OTHER_TAG", "unknown topicFilterType"),
        ] {
            let error = decode_layout(&layout_with_topic(bad)).unwrap_err().to_string();
            assert!(error.starts_with("Failed to decode RegisterBrokerBody: "), "{error}");
            assert!(error.contains(detail), "{bad:?}: {error}");
        }
    }

    #[test]
    fn compressed_length_errors() {
        let negative_length = [(-1i32).to_be_bytes().as_slice(), b"{}"].concat();
        let error = decode_layout(&negative_length).unwrap_err().to_string();
        assert!(error.contains("negative length -1"), "{error}");

        let past_end = [1000i32.to_be_bytes().as_slice(), b"{}"].concat();
        let error = decode_layout(&past_end).unwrap_err().to_string();
        assert!(error.contains("passes the end"), "{error}");

        let mut huge_count = layout_with_topic("T 1 2 7 SINGLE_TAG");
        huge_count[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        let error = decode_layout(&huge_count).unwrap_err().to_string();
        assert!(error.contains("cannot fit"), "{error}");
        huge_count[6..10].copy_from_slice(&(-5i32).to_be_bytes());
        let error = decode_layout(&huge_count).unwrap_err().to_string();
        assert!(error.contains("negative count -5"), "{error}");

        let mut mapping_missing_topic = layout_with_topic("T 1 2 7 SINGLE_TAG");
        let mapping_at = mapping_missing_topic.len() - 4;
        mapping_missing_topic.truncate(mapping_at);
        mapping_missing_topic.extend_from_slice(&1i32.to_be_bytes());
        mapping_missing_topic.extend_from_slice(&20i32.to_be_bytes());
        mapping_missing_topic.extend_from_slice(br#"{"currIdMap":{0:0}} "#);
        let error = decode_layout(&mapping_missing_topic).unwrap_err().to_string();
        assert!(error.contains("without a topic"), "{error}");

        let mut bad_data_version = layout_with_topic("T 1 2 7 SINGLE_TAG");
        bad_data_version[4..6].copy_from_slice(b"[}");
        assert!(decode_layout(&bad_data_version).is_err());
    }

    #[test]
    fn truncated_and_corrupt_streams() {
        let body = hex(COMPRESSED_EXAMPLE_HEX);
        for cut_bytes in [2, 50, 90] {
            let error = decode_register_body(&body[..cut_bytes], 479, BodyEncoding::Compressed, CAP_BYTES)
                .unwrap_err()
                .to_string();
            assert!(error.contains("truncated zlib stream"), "{cut_bytes}: {error}");
        }
        let mut raw = Vec::new();
        encode_register_body_compressed(&mut raw, &example_body(), 479, false);
        let error = decode_register_body(&raw[..raw.len() / 2], 479, BodyEncoding::Compressed, CAP_BYTES)
            .unwrap_err()
            .to_string();
        assert!(error.contains("truncated raw deflate stream"), "{error}");
        let mut corrupt = body.clone();
        corrupt[40] ^= 0xFF;
        corrupt[41] ^= 0xFF;
        assert!(decode_register_body(&corrupt, 479, BodyEncoding::Compressed, CAP_BYTES).is_err());
        // Not a zlib header and not valid raw deflate either.
        assert!(decode_register_body(b"\xff\xff\xff", 479, BodyEncoding::Compressed, CAP_BYTES).is_err());
    }

    /// A deflate stream of `total_bytes` zeros built from one repeated, byte-aligned
    /// segment, so the test never spends time compressing 100 MB.
    fn deflate_bomb(zlib_wrapped: bool, total_bytes: usize) -> Vec<u8> {
        use flate2::{Compress, Compression, FlushCompress};
        let zeros = vec![0u8; MIB];
        let mut compress = Compress::new(Compression::best(), false);
        let mut segment = Vec::with_capacity(64 * 1024);
        while compress.total_in() < MIB as u64 {
            let consumed = compress.total_in() as usize;
            compress.compress_vec(&zeros[consumed..], &mut segment, FlushCompress::Sync).unwrap();
        }
        let mut bomb = if zlib_wrapped { vec![0x78, 0xDA] } else { Vec::new() };
        for _ in 0..total_bytes / MIB {
            bomb.extend_from_slice(&segment);
        }
        // A final, empty fixed-Huffman block.
        bomb.extend_from_slice(&[0x03, 0x00]);
        bomb
    }

    #[test]
    fn deflate_bomb_stops_at_the_cap() {
        // The bomb construction is valid: small enough, it inflates to zeros, whose
        // layout (an empty dataVersion) is then rejected.
        let small = deflate_bomb(false, 3 * MIB);
        assert_eq!(inflate_all(&small, false).len(), 3 * MIB);
        for zlib_wrapped in [true, false] {
            let bomb = deflate_bomb(zlib_wrapped, 100 * MIB);
            assert!(bomb.len() < 200 * 1024, "bomb is {} bytes", bomb.len());
            let error = decode_register_body(&bomb, 479, BodyEncoding::Compressed, MIB).unwrap_err();
            assert!(matches!(error, BodyError::DecompressedTooLarge { decompressed_bytes_max: MIB }));
            assert_eq!(
                error.to_string(),
                "decompressed body exceeds body_decompressed_bytes_max 1048576 bytes \
                 (raise body_decompressed_bytes_max if this broker is legitimate)"
            );
        }
        // Exactly at the cap is still fine.
        let plain = compressed_example_plain();
        let body = hex(COMPRESSED_EXAMPLE_HEX);
        assert!(decode_register_body(&body, 479, BodyEncoding::Compressed, plain.len()).is_ok());
        assert!(decode_register_body(&body, 479, BodyEncoding::Compressed, plain.len() - 1).is_err());
    }

    #[test]
    fn zstd_bodies() {
        let compressed = zstd::encode_all(REGISTER_JSON_449.as_bytes(), 3).unwrap();
        let decoded = decode_register_body(&compressed, 479, BodyEncoding::Zstd, CAP_BYTES).unwrap();
        assert_eq!(decoded, example_body());
        assert!(decode_register_body(&compressed, 479, BodyEncoding::Zstd, 448).is_err());
        decode_register_body(&compressed, 479, BodyEncoding::Zstd, 449).unwrap();

        let bomb = zstd::encode_all(vec![0u8; 8 * MIB].as_slice(), 1).unwrap();
        let error = decode_register_body(&bomb, 479, BodyEncoding::Zstd, MIB).unwrap_err();
        assert!(matches!(error, BodyError::DecompressedTooLarge { .. }), "{error}");

        let truncated = &compressed[..compressed.len() - 3];
        let error = decode_register_body(truncated, 479, BodyEncoding::Zstd, CAP_BYTES).unwrap_err();
        assert!(error.to_string().contains("zstd"), "{error}");
        assert!(decode_register_body(b"not zstd", 479, BodyEncoding::Zstd, CAP_BYTES).is_err());
    }
}
#[cfg(test)]
mod nesting_probe {
    #[test]
    fn deep() {
        for depth in [1000usize, 100_000, 1_000_000] {
            let mut s = String::from("{\"filterServerList\":[],\"x\":");
            s.push_str(&"[".repeat(depth));
            s.push_str(&"]".repeat(depth));
            s.push('}');
            let r = super::decode_register_body(s.as_bytes(), 479, super::BodyEncoding::Json, 1 << 30);
            println!("{depth}: {:?}", r.map(|_| ()));
            let mut s = String::from("{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"a\":{\"attributes\":");
            s.push_str(&"{\"a\":".repeat(depth));
            s.push('1');
            s.push_str(&"}".repeat(depth));
            s.push_str("}}}}");
            let r = super::decode_register_body(s.as_bytes(), 479, super::BodyEncoding::Json, 1 << 30);
            println!("{depth}: {:?}", r.map(|_| ()));
        }
    }
}
