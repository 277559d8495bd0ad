//! Decoding JSON bodies with serde: the reference decoders for registrations (every
//! fastjson leniency rule), and the small request and answer bodies. A registration is
//! first offered to the one-pass scanner in `scan`; serde decides whatever it declines.
//! Must not: touch route state, or decompress (that is `compress`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::model::*;
use super::registration::{NamesTooLong, RegisterBrokerBody, TopicConfigs};
use super::scan;

/// Nesting depth up to which the unquoted-key rewrite tracks containers; serde_json itself
/// refuses more than 128 levels, so deeper input fails either way.
const JSON_DEPTH_MAX: usize = 256;
/// Default `scope` of a TopicQueueMappingInfo (Java's `TopicQueueMappingUtils`).
const MAPPING_SCOPE_DEFAULT: &str = "__global__";

/// Decodes a DataVersion JSON body (the QUERY_DATA_VERSION request).
pub fn decode_data_version(body: &[u8]) -> Result<DataVersion, BodyError> {
    parse_lenient(body, "DataVersion", |json| {
        from_object_slice::<DataVersionJson>(json).map(DataVersionJson::into_data_version)
    })
}

/// Decodes the queueDatas of a REGISTER_TOPIC_IN_NAMESRV body; every other
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

/// Parses with serde_json first; only when that fails, quotes fastjson's unquoted integer
/// map keys and parses again, so the common case costs one pass.
pub(super) fn parse_lenient<R, E: fmt::Display>(
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
/// in either flavour: fastjson's unquoted integer map keys are accepted.
/// For clients of the protocol (the admin CLI); the server itself never reads answers.
pub fn decode_answer_json<T: de::DeserializeOwned>(body: &[u8], body_name: &'static str) -> Result<T, BodyError> {
    parse_lenient(body, body_name, |bytes| serde_json::from_slice::<T>(bytes))
}

/// Rewrites `{0:"a",-1:2}` into `{"0":"a","-1":2}` outside strings. Returns `None` when
/// nothing needed quoting (or the nesting is too deep to track), so callers keep the
/// original error.
pub(super) fn quote_integer_keys(json: &[u8]) -> Option<Vec<u8>> {
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

pub(super) fn decode_register_body_json(json: &[u8], version: i32) -> Result<RegisterBrokerBody, BodyError> {
    // The scanner reads what real brokers send several times faster; anything it does not
    // handle exactly goes through serde, which decides.
    match scan::register_body(json, version) {
        Ok(body) => Ok(body),
        Err(scan::Fallback) => decode_register_body_json_serde(json, version),
    }
}

/// The reference decoder: serde visitors with every leniency rule.
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
pub(super) fn from_object_slice<'de, T: Deserialize<'de>>(json: &'de [u8]) -> serde_json::Result<T> {
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

/// fastjson's circular-reference marker key.
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

/// The topicConfigTable, built straight into `TopicConfigs` in wire order (no intermediate
/// map, no allocation for the keys, which Java ignores in favour of `topicName`).
struct TopicTableJson(TopicConfigs);

impl<'de> Deserialize<'de> for TopicTableJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;
        impl<'de> Visitor<'de> for TableVisitor {
            type Value = TopicTableJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topicConfigTable object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut topics = TopicConfigs::new();
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
                    topics
                        .push(topic.into_topic_config(topic_name))
                        .map_err(|NamesTooLong| de::Error::custom("topic names pass 4 GiB"))?;
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
pub(super) struct AttributesJson(pub(super) Vec<(String, String)>);

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
pub(super) struct MappingInfoJson {
    pub(super) topic: Option<String>,
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
    pub(super) fn into_info(self, topic_default: impl FnOnce() -> String) -> TopicQueueMappingInfo {
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
