//! Tests of the body codecs: golden frames from Java and rocketmq-rust peers decoded and
//! re-encoded byte for byte, every leniency and rejection rule, and the decompression caps.

use super::compress::inflate_capped;
use super::decode::quote_integer_keys;
use super::encode::{java_string_order, push_json_str, push_long_field, JSON_SAFE_INTEGER_MAX};
use super::*;
use std::collections::BTreeMap;
use std::io::Write;

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
    inflate_capped(body, zlib_wrapped, CAP_BYTES, &mut Unmetered).expect("test stream inflates")
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
    check_body_crc32(crc32_expected, body_crc32(&exchange.request_body)).expect("golden CRC matches");
    let encoding = if ext["compressed"] == "true" { BodyEncoding::Compressed } else { BodyEncoding::Json };
    let version = header["version"].as_i64().unwrap() as i32;
    let body = decode_register_body(&exchange.request_body, version, encoding, CAP_BYTES)
        .unwrap_or_else(|e| panic!("{file} seq {seq}: {e}"));
    (exchange, body)
}

fn find_topic(body: &RegisterBrokerBody, name: &str) -> TopicConfig {
    body.topic_configs
        .iter()
        .find(|t| t.topic_name == name)
        .unwrap_or_else(|| panic!("topic {name} missing"))
        .to_owned()
}

// --- worked examples -----------------------------------------------------------------

const REGISTER_JSON_449: &str = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"mappingDataVersion":{"counter":0,"stateVersion":0,"timestamp":1700000000001},"topicConfigTable":{"TopicTest":{"attributes":{},"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest","topicSysFlag":0,"writeQueueNums":8}},"topicQueueMappingDetailMap":{},"topicQueueMappingInfoMap":{}}}"#;

const COMPRESSED_EXAMPLE_HEX: &str = "78da6360 60b0a856 4ace2fcd 2b492d52 b232d651 2a2e492c
    490d4b2d 2acecccf 53b232d0 512ac9cc 4d050ae6 16285919 9a1b2040 2d030303 2310cb86
    e4176426 8700d528 5800a199 42b0a79f bb8f6b7c 88a3bb42 35481153 742c9064 0000540f 1b6b";

fn example_body() -> RegisterBrokerBody {
    RegisterBrokerBody {
        data_version: DataVersion { counter: 3, state_version: 0, timestamp: 1_700_000_000_000 },
        topic_configs: vec![topic("TopicTest", 8, 8, 6)].into(),
        filter_server_list: Some(Vec::new()),
        topic_queue_mapping_infos: Vec::new(),
    }
}

/// The 107 inflated bytes of `example_body` in RocketMQ's compressed layout.
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
    assert!(check_body_crc32(0, body_crc32(b"x")).is_ok());
    assert!(check_body_crc32(437_133_061, body_crc32(REGISTER_JSON_449.as_bytes())).is_ok());
    let mismatch = check_body_crc32(1, body_crc32(REGISTER_JSON_449.as_bytes())).unwrap_err();
    assert_eq!(mismatch.to_string(), "crc32 not match");
    // A non-zero CRC with no body fails, as in Java.
    assert!(check_body_crc32(437_133_061, body_crc32(b"")).is_err());
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
    let mut topics = expected.topic_configs.to_vec();
    topics[0].attributes = Vec::new();
    expected.topic_configs = topics.into();
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
    body.topic_configs
        .push(TopicConfig {
            attributes: vec![("message.type".to_owned(), "FIFO".to_owned())],
            ..topic("OrderTopic", 4, 4, 6)
        })
        .unwrap();
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
    assert_eq!(decoded.topic_configs.get(1).unwrap().attributes, Vec::new());
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
    let standard = |text: &str, expected: &str| check(|out| push_json_str(out, text, JsonFlavour::Standard), expected);
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
    let legacy = br#"{"brokerDatas":[{"brokerAddrs":{0:"a:1"}}],"queueDatas":[{"brokerName":"b"},null,{"perm":6}]}"#;
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
    assert_eq!(body.topic_configs, vec![TopicConfig::new("T")].into());
    assert_eq!(body.data_version, DataVersion::default());
    assert_eq!(body.filter_server_list, Some(vec!["f:1".to_owned()]));

    // The NameServer uses topicName, not the map key.
    let renamed =
        decode_json(r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"key":{"topicName":"name"}}}}"#).unwrap();
    assert_eq!(renamed.topic_configs.get(0).unwrap().topic_name, "name");

    // No filterServerList key: Java's empty-list default; explicit null: unchanged.
    assert_eq!(decode_json("{}").unwrap().filter_server_list, Some(Vec::new()));
    assert_eq!(decode_json(r#"{"filterServerList":null}"#).unwrap().filter_server_list, None);

    let multi = decode_json(r#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a","topicFilterType":"MULTI_TAG","attributes":{"n":1,"b":true,"s":"v","z":null}},"b":{"topicName":"b","topicFilterType":"NOPE"}}}}"#).unwrap();
    assert_eq!(multi.topic_configs.get(0).unwrap().topic_filter_type, TopicFilterType::MultiTag);
    let attributes = [("n", "1"), ("b", "true"), ("s", "v")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    assert_eq!(multi.topic_configs.get(0).unwrap().attributes, attributes);
    assert_eq!(multi.topic_configs.get(1).unwrap().topic_filter_type, TopicFilterType::SingleTag);
}

#[test]
fn json_unquoted_keys_and_refs() {
    let body = decode_json(
        r#"{"topicConfigSerializeWrapper":{"dataVersion":{"$ref":"$.x"},"topicConfigTable":{"T":{"topicName":"T","attributes":{"$ref":"$.y"}},"U":{"$ref":"$.topicConfigSerializeWrapper.topicConfigTable.T"}},"topicQueueMappingDetailMap":{"S":{"hostedQueues":{0:[{"bname":"b","queueId":0}]}}},"topicQueueMappingInfoMap":{"S":{"bname":"b","currIdMap":{0:1, -1 :2},"totalQueues":2}}}}"#,
    )
    .unwrap();
    assert_eq!(body.topic_configs, vec![TopicConfig::new("T")].into());
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
    // Cases that came with loadgen's former copy of this rewrite.
    assert_eq!(rewrite(r#"{"m":{0:0,-1:2}}"#).as_deref(), Some(r#"{"m":{"0":0,"-1":2}}"#));
    assert_eq!(rewrite(r#"[1,2,{3:[4,5]}]"#).as_deref(), Some(r#"[1,2,{"3":[4,5]}]"#));
    assert_eq!(rewrite(r#"{"s":"a\"{0:","x":1}"#), None);
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
        vec![TopicConfig { topic_filter_type: TopicFilterType::MultiTag, ..topic("T", 1, 2, 7) }].into()
    );
    // A bad 6th token is ignored, including attributes split apart by a space.
    for tail in [" {bad", " {\"k\":\"a b\"}", " ", " {\"$ref\":\"$\"}"] {
        let decoded = decode_layout(&layout_with_topic(&format!("T 1 2 7 SINGLE_TAG{tail}"))).unwrap();
        assert_eq!(decoded.topic_configs.get(0).unwrap().attributes, Vec::new(), "{tail:?}");
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
        let error =
            decode_register_body(&body[..cut_bytes], 479, BodyEncoding::Compressed, CAP_BYTES).unwrap_err().to_string();
        assert!(error.contains("truncated zlib stream"), "{cut_bytes}: {error}");
    }
    let mut raw = Vec::new();
    encode_register_body_compressed(&mut raw, &example_body(), 479, false);
    let error =
        decode_register_body(&raw[..raw.len() / 2], 479, BodyEncoding::Compressed, CAP_BYTES).unwrap_err().to_string();
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
            "decompressed body exceeds bodyDecompressedBytesMax 1048576 bytes \
             (raise bodyDecompressedBytesMax if this broker is legitimate)"
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

/// Deep nesting costs no stack: an unknown key's deeply nested value is skipped (the scanner
/// hands it to serde, which skips it too), and nested objects as an attribute value are
/// refused because attribute values must be scalars.
#[test]
fn deep_nesting_is_skipped_or_refused_without_recursion() {
    for depth in [1_000usize, 100_000, 1_000_000] {
        let mut body = String::from("{\"filterServerList\":[],\"x\":");
        body.push_str(&"[".repeat(depth));
        body.push_str(&"]".repeat(depth));
        body.push('}');
        let decoded = decode_register_body(body.as_bytes(), 479, BodyEncoding::Json, 1 << 30)
            .unwrap_or_else(|e| panic!("depth {depth}: an unknown nested value is skipped, got {e}"));
        assert_eq!(
            decoded,
            RegisterBrokerBody { filter_server_list: Some(Vec::new()), ..RegisterBrokerBody::default() }
        );

        let mut body = String::from("{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"a\":{\"attributes\":");
        body.push_str(&"{\"a\":".repeat(depth));
        body.push('1');
        body.push_str(&"}".repeat(depth));
        body.push_str("}}}}");
        let error = decode_register_body(body.as_bytes(), 479, BodyEncoding::Json, 1 << 30)
            .expect_err("nested objects as an attribute value are refused");
        assert!(error.to_string().contains("expected a string, number or boolean"), "depth {depth}: {error}");
    }
}
