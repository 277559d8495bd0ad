//! Encoding answer bodies in Java's exact JSON bytes, in both fastjson flavours (the
//! default "legacy" form and the BrowserCompatible "standard" form), and registration
//! bodies in JSON for tests and loadgen.
//! Must not: touch route state, or decide which flavour a client gets (the caller does).

use std::collections::BTreeMap;

use super::model::*;
use super::registration::RegisterBrokerBody;

/// Largest integer fastjson's BrowserCompatible mode still writes as a bare number (2^53 - 1).
pub(super) const JSON_SAFE_INTEGER_MAX: i64 = 9_007_199_254_740_991;

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
pub(super) fn push_json_str(out: &mut Vec<u8>, text: &str, flavour: JsonFlavour) {
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

pub(super) fn push_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A Java `long` field: BrowserCompatible quotes values a JavaScript double cannot hold.
pub(super) fn push_long_field(out: &mut Vec<u8>, value: i64, flavour: JsonFlavour) {
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

pub(super) fn push_str_array<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>, flavour: JsonFlavour) {
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
pub(super) fn java_string_order(a: &str, b: &str) -> std::cmp::Ordering {
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

pub(super) fn push_data_version(out: &mut Vec<u8>, data_version: &DataVersion) {
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

pub(super) fn push_mapping_info(out: &mut Vec<u8>, info: &TopicQueueMappingInfo, flavour: JsonFlavour) {
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

pub(super) fn push_attributes(out: &mut Vec<u8>, attributes: &[(String, String)]) {
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

/// TopicRouteData, byte-identical to Java for the same data in the same
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

/// ClusterInfo, always legacy; brokerAddrTable is keyed by each broker's
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

/// GetBrokerMemberGroupResponseBody, legacy form.
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

/// DataVersion JSON.
pub fn encode_data_version(out: &mut Vec<u8>, data_version: &DataVersion) {
    push_data_version(out, data_version);
}

/// KVTable, entries in the order given.
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

/// TopicList; `brokerAddr` only for code 304.
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

/// The 5.x Java broker's RegisterBrokerBody JSON with a zero
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
        push_str_key(out, topic.topic_name, flavour);
        out.extend_from_slice(b"{\"attributes\":");
        push_attributes(out, topic.attributes);
        out.extend_from_slice(b",\"order\":");
        push_bool(out, topic.order);
        out.extend_from_slice(b",\"perm\":");
        push_i32(out, topic.perm);
        out.extend_from_slice(b",\"readQueueNums\":");
        push_i32(out, topic.read_queue_nums);
        out.extend_from_slice(b",\"topicFilterType\":\"");
        out.extend_from_slice(topic.topic_filter_type.java_name().as_bytes());
        out.extend_from_slice(b"\",\"topicName\":");
        push_json_str(out, topic.topic_name, flavour);
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
