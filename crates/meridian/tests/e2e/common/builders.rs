//! Request and body builders shared by the end-to-end suites. Bodies are made with
//! Meridian's encoders, whose byte-exactness against Java is checked in `protocol::body`.

use meridian_protocol::body::{self, DataVersion, RegisterBrokerBody, TopicConfig};
use meridian_protocol::codes::{GET_ROUTEINFO_BY_TOPIC, REGISTER_BROKER, SUCCESS};
use meridian_testkit::{Client, Request};
use std::io::Write;

/// `crc32(body) & 0x7fffffff`, as Java's UtilAll.crc32.
pub fn crc32(body: &[u8]) -> u32 {
    crc32fast::hash(body) & 0x7FFF_FFFF
}

pub fn topic(name: &str, queue_nums: i32, perm: i32) -> TopicConfig {
    let mut t = TopicConfig::new(name);
    t.read_queue_nums = queue_nums;
    t.write_queue_nums = queue_nums;
    t.perm = perm;
    t
}

pub fn data_version(counter: i64) -> DataVersion {
    DataVersion { counter, state_version: 0, timestamp: 1_700_000_000_000 + counter }
}

pub fn register_body(counter: i64, topics: &[TopicConfig]) -> RegisterBrokerBody {
    RegisterBrokerBody {
        data_version: data_version(counter),
        topic_configs: topics.to_vec().into(),
        filter_server_list: Some(Vec::new()),
        topic_queue_mapping_infos: Vec::new(),
    }
}

/// A 5.x RegisterBrokerBody JSON.
pub fn json_body(counter: i64, topics: &[TopicConfig]) -> Vec<u8> {
    let mut out = Vec::new();
    body::encode_register_body_json(&mut out, &register_body(counter, topics));
    out
}

/// A 5.x broker's REGISTER_BROKER (as a rocketmq-rust or Java 5.x broker sends it): a JSON
/// body of `topics` at data version `counter`.
pub fn register_request(
    cluster: &str,
    name: &str,
    id: i64,
    addr: &str,
    ha_addr: &str,
    counter: i64,
    topics: &[TopicConfig],
) -> Request {
    let body = json_body(counter, topics);
    Request::new(REGISTER_BROKER)
        .ext("brokerName", name)
        .ext("brokerAddr", addr)
        .ext("clusterName", cluster)
        .ext("brokerId", id)
        .ext("haServerAddr", ha_addr)
        .ext("compressed", "false")
        .ext("enableActingMaster", "false")
        .ext("bodyCrc32", crc32(&body))
        .body(body)
}

/// Sends `request` on `conn` and asserts SUCCESS.
#[track_caller]
pub fn call_ok(conn: &mut Client, request: &Request) {
    let reply = conn.call(request);
    assert_eq!(reply.code(), SUCCESS, "{}", reply.header);
}

pub fn route_request(topic: &str) -> Request {
    Request::new(GET_ROUTEINFO_BY_TOPIC).ext("topic", topic)
}

pub fn route_code(client: &mut Client, topic: &str) -> i32 {
    client.call(&route_request(topic)).code()
}

/// brokerAddrs in the standard (`"0":`) or legacy (`0:`) form.
pub fn addrs_json(addrs: &[(i64, &str)], standard: bool) -> String {
    let entries: Vec<String> = addrs
        .iter()
        .map(|(id, addr)| if standard { format!("\"{id}\":\"{addr}\"") } else { format!("{id}:\"{addr}\"") })
        .collect();
    format!("{{{}}}", entries.join(","))
}

/// A zlib stream of `mib` MiB of zeros, built from one compressed MiB repeated (each
/// piece ends in a sync flush and refers only to itself), so it costs milliseconds and
/// about 1 KiB of memory per inflated MiB.
pub fn zlib_zeros(mib: usize) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0u8; 1 << 20]).expect("writing into a Vec");
    encoder.flush().expect("writing into a Vec");
    let piece = encoder.get_ref().clone();
    let mut out = vec![0x78, 0xDA];
    for _ in 0..mib {
        out.extend_from_slice(&piece);
    }
    out.extend_from_slice(&[0x03, 0x00]); // final empty fixed-Huffman block
    let total_bytes = (mib as u64) << 20;
    let adler = (((total_bytes % 65521) as u32) << 16) | 1; // Adler-32 of zeros
    out.extend_from_slice(&adler.to_be_bytes());
    out
}
