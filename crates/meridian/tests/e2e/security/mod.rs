//! Security (README "Security"): which keys UPDATE_NAMESRV_CONFIG may change (`config`),
//! the KV config's bounds (`kv`) and opt-in access control: signatures, allow-lists and the
//! accounts file's reload (`auth`). Everything over real TCP against the built binary.

mod auth;
mod config;
mod kv;

use meridian_protocol::codes::{GET_NAMESRV_CONFIG, UPDATE_NAMESRV_CONFIG};
use meridian_testkit::{Client, Reply, Request};

/// GET_NAMESRV_CONFIG's body as (key, value) lines, in the server's order.
fn namesrv_config(conn: &mut Client) -> Vec<(String, String)> {
    let reply = conn.call(&Request::new(GET_NAMESRV_CONFIG));
    assert_eq!(reply.code(), 0, "{reply:?}");
    reply
        .body_text()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not key=value: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn value_of(config: &[(String, String)], key: &str) -> Option<String> {
    config.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

fn update_config(body: &str) -> Request {
    Request::new(UPDATE_NAMESRV_CONFIG).body(body.as_bytes().to_vec())
}

#[track_caller]
fn assert_refused(reply: &Reply, code: i32, remark_has: &str) {
    assert_eq!(reply.code(), code, "{reply:?}");
    let remark = reply.remark().unwrap_or_default();
    assert!(remark.contains(remark_has), "remark {remark:?} does not name {remark_has:?}");
}
