//! PUT_KV_CONFIG (100) is bounded: `kvValueBytesMax`, `kvEntriesMax`, `kvBytesMax`. Over a
//! bound the answer is 1 naming the key, and neither memory nor the KV file changes.

use super::assert_refused;
use crate::common;
use meridian_protocol::codes::{GET_KV_CONFIG, PUT_KV_CONFIG};
use meridian_testkit::{Client, Request};

fn put(conn: &mut Client, key: &str, value: &str) -> meridian_testkit::Reply {
    conn.call(&Request::new(PUT_KV_CONFIG).ext("namespace", "ns").ext("key", key).ext("value", value))
}

fn get(conn: &mut Client, key: &str) -> Option<String> {
    let reply = conn.call(&Request::new(GET_KV_CONFIG).ext("namespace", "ns").ext("key", key));
    reply.ext_field("value")
}

#[test]
fn each_kv_bound_refuses_naming_its_key_and_writes_nothing() {
    let server = common::server(&["kvEntriesMax=3", "kvValueBytesMax=16", "kvBytesMax=40"]);
    let mut conn = server.client();
    let file = server.data_dir().join("kvConfig.json");

    assert_refused(&put(&mut conn, "k0", &"v".repeat(17)), 1, "kvValueBytesMax");
    assert_eq!(get(&mut conn, "k0"), None);
    assert!(!file.exists(), "a refused put wrote the KV file");

    // ns(2) + k1(2) + 16 = 20 bytes, then + k2(2) + 16 = 38 bytes.
    assert_eq!(put(&mut conn, "k1", &"a".repeat(16)).code(), 0);
    assert_eq!(put(&mut conn, "k2", &"b".repeat(16)).code(), 0);
    let before = std::fs::read(&file).expect("KV file");
    assert_refused(&put(&mut conn, "k3", "ccc"), 1, "kvBytesMax");
    assert_eq!(get(&mut conn, "k3"), None);
    assert_eq!(std::fs::read(&file).expect("KV file"), before, "a refused put rewrote the KV file");

    // Shrink k1 to make room; then the third entry fits and a fourth passes kvEntriesMax.
    assert_eq!(put(&mut conn, "k1", "a").code(), 0);
    assert_eq!(put(&mut conn, "k3", "c").code(), 0);
    let before = std::fs::read(&file).expect("KV file");
    assert_refused(&put(&mut conn, "k4", "d"), 1, "kvEntriesMax");
    assert_eq!(get(&mut conn, "k4"), None);
    assert_eq!(std::fs::read(&file).expect("KV file"), before);
    // Replacing an entry is not a new one.
    assert_eq!(put(&mut conn, "k3", "e").code(), 0);
    assert_eq!(get(&mut conn, "k3").as_deref(), Some("e"));
}
