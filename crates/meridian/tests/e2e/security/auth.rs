//! Opt-in access control over TCP: RocketMQ ACL signatures (made with
//! `meridian_protocol::acl`, as the Java client's ACL hook makes them) with authentication
//! on and off, a wrong secret, an unknown account, a body changed after signing, the
//! broker and read switches, the address allow-lists, the accounts file's reload, the
//! refusal metric and log line, and `meridian admin --access-key/--secret-key`.

use super::{assert_refused, namesrv_config, update_config, value_of};
use crate::common;
use crate::common::cli::admin;
use meridian_protocol::acl::{self, Credentials};
use meridian_protocol::codes::{GET_KV_CONFIG, GET_ROUTEINFO_BY_TOPIC, PUT_KV_CONFIG, UNREGISTER_BROKER};
use meridian_testkit::{poll_until, Client, Request, Server, TempDir};
use std::path::PathBuf;
use std::time::Duration;

const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

fn alice() -> Credentials {
    Credentials::new("alice", "s3cret")
}

fn signed(mut request: Request, credentials: &Credentials) -> Request {
    let mut ext = request.ext.take().unwrap_or_default();
    acl::sign(&mut ext, &request.body, credentials);
    request.ext = Some(ext);
    request
}

fn put_kv(key: &str, value: &str) -> Request {
    Request::new(PUT_KV_CONFIG).ext("namespace", "ns").ext("key", key).ext("value", value)
}

fn kv_value(conn: &mut Client, key: &str) -> Option<String> {
    conn.call(&Request::new(GET_KV_CONFIG).ext("namespace", "ns").ext("key", key)).ext_field("value")
}

fn unregister() -> Request {
    Request::new(UNREGISTER_BROKER)
        .ext("clusterName", "c1")
        .ext("brokerAddr", "127.0.0.1:10911")
        .ext("brokerName", "broker-a")
        .ext("brokerId", 0)
}

/// A server with authentication on and the accounts file `alice=s3cret`, plus `sets`.
fn auth_server(sets: &[&str]) -> (Server, TempDir, PathBuf) {
    let dir = TempDir::new("accounts");
    let file = dir.path().join("accounts.properties");
    std::fs::write(&file, "alice=s3cret\n").expect("writing the accounts file");
    let accounts = format!("authAccountsFile={}", file.display());
    let mut all = vec!["authEnabled=true", accounts.as_str()];
    all.extend_from_slice(sets);
    (common::server(&all), dir, file)
}

fn refused_metric(server: &Server, reason: &str) -> u64 {
    let (status, text) = server.http_get("/metrics");
    assert_eq!(status, 200);
    let prefix = format!("meridian_requests_refused_total{{reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn auth_off_by_default_takes_signed_and_unsigned_requests() {
    let server = common::server(&[]);
    let mut conn = server.client();
    assert_eq!(conn.call(&put_kv("plain", "1")).code(), 0);
    assert_eq!(conn.call(&signed(put_kv("signed", "2"), &alice())).code(), 0);
    // Off means off: even a bad signature is not looked at.
    assert_eq!(conn.call(&signed(put_kv("bad", "3"), &Credentials::new("x", "y"))).code(), 0);
    assert_eq!(kv_value(&mut conn, "signed").as_deref(), Some("2"));
    assert_eq!(refused_metric(&server, "unsigned"), 0);
}

#[test]
fn auth_on_requires_a_valid_signature_on_writes_only() {
    let (server, _dir, _file) = auth_server(&[]);
    let mut conn = server.client();
    // Unsigned write: refused, nothing stored.
    assert_refused(&conn.call(&put_kv("k", "unsigned")), 16, "AccessKey");
    assert_eq!(kv_value(&mut conn, "k"), None);
    // Signed by the account: applied.
    assert_eq!(conn.call(&signed(put_kv("k", "signed"), &alice())).code(), 0);
    assert_eq!(kv_value(&mut conn, "k").as_deref(), Some("signed"));
    // Wrong secret key, unknown account.
    assert_refused(&conn.call(&signed(put_kv("k", "wrong"), &Credentials::new("alice", "guess"))), 16, "signature");
    assert_refused(&conn.call(&signed(put_kv("k", "who"), &Credentials::new("mallory", "x"))), 16, "mallory");
    // An ext field changed after signing.
    let mut tampered = signed(put_kv("k", "fine"), &alice());
    for (k, v) in tampered.ext.as_mut().expect("ext") {
        if k == "value" {
            *v = "evil".into();
        }
    }
    assert_refused(&conn.call(&tampered), 16, "signature");
    assert_eq!(kv_value(&mut conn, "k").as_deref(), Some("signed"), "refusals changed nothing");
    // A body changed after signing (UPDATE_NAMESRV_CONFIG signs its body).
    let mut update = signed(update_config("orderMessageEnable=true\n"), &alice());
    update.body = b"orderMessageEnable=false\n".to_vec();
    assert_refused(&conn.call(&update), 16, "signature");
    assert_eq!(value_of(&namesrv_config(&mut conn), "orderMessageEnable").as_deref(), Some("false"));
    assert_eq!(conn.call(&signed(update_config("orderMessageEnable=true\n"), &alice())).code(), 0);
    assert_eq!(value_of(&namesrv_config(&mut conn), "orderMessageEnable").as_deref(), Some("true"));
    // Reads and broker requests stay open.
    assert_eq!(conn.call(&Request::new(GET_ROUTEINFO_BY_TOPIC).ext("topic", "T")).code(), 17);
    assert_eq!(conn.call(&unregister()).code(), 0);
    // Counted by reason, logged.
    assert_eq!(refused_metric(&server, "unsigned"), 1);
    assert_eq!(refused_metric(&server, "signature"), 3);
    assert_eq!(refused_metric(&server, "unknown_account"), 1);
    server.expect_log_line(&["refused", "check signature failed"]);
}

#[test]
fn broker_and_read_switches_extend_signatures() {
    let (server, _dir, _file) = auth_server(&["authBrokerRequests=true", "authReadRequests=true"]);
    let mut conn = server.client();
    assert_refused(&conn.call(&unregister()), 16, "AccessKey");
    assert_eq!(conn.call(&signed(unregister(), &alice())).code(), 0);
    let lookup = Request::new(GET_ROUTEINFO_BY_TOPIC).ext("topic", "T");
    assert_refused(&conn.call(&lookup), 16, "AccessKey");
    assert_eq!(conn.call(&signed(lookup, &alice())).code(), 17, "signed lookup answered (no such topic)");
}

#[test]
fn address_allow_lists_refuse_peers_outside_them() {
    // The test client connects from 127.0.0.1.
    let server = common::server(&["writeAllowedCidrs=127.0.0.1/32", "brokerAllowedCidrs=10.0.0.0/8"]);
    let mut conn = server.client();
    assert_eq!(conn.call(&put_kv("k", "v")).code(), 0, "127.0.0.1 may write");
    assert_refused(&conn.call(&unregister()), 16, "brokerAllowedCidrs");
    assert_eq!(refused_metric(&server, "address"), 1);

    let server = common::server(&["writeAllowedCidrs=127.0.0.2/32;10.0.0.0/8"]);
    let mut conn = server.client();
    let reply = conn.call(&put_kv("k", "v"));
    assert_refused(&reply, 16, "writeAllowedCidrs");
    assert!(reply.remark().unwrap_or_default().contains("127.0.0.1"), "{reply:?}");
    assert_eq!(kv_value(&mut conn, "k"), None);
    assert_eq!(conn.call(&unregister()).code(), 0, "no broker allow-list: brokers are open");
    assert_eq!(conn.call(&Request::new(GET_ROUTEINFO_BY_TOPIC).ext("topic", "T")).code(), 17, "reads are open");
}

#[test]
fn the_accounts_file_is_reloaded_when_it_changes_and_a_broken_one_is_ignored() {
    let (server, _dir, file) = auth_server(&[]);
    let mut conn = server.client();
    assert_eq!(conn.call(&signed(put_kv("k", "1"), &alice())).code(), 0);
    let rotated = Credentials::new("alice", "rotated-secret");
    std::fs::write(&file, "alice=rotated-secret\nbob=other\n").expect("rewriting the accounts file");
    let reloaded = poll_until(RELOAD_DEADLINE, || conn.call(&signed(put_kv("k", "2"), &rotated)).code() == 0);
    assert!(reloaded, "new accounts not in effect; log:\n{}", server.log_text());
    assert_refused(&conn.call(&signed(put_kv("k", "3"), &alice())), 16, "signature");
    // A broken file keeps the last good accounts, with a log line.
    std::fs::write(&file, "{ broken json").expect("breaking the accounts file");
    assert!(server.wait_for_log("keeping the last good accounts", RELOAD_DEADLINE).is_some(), "{}", server.log_text());
    assert_eq!(conn.call(&signed(put_kv("k", "4"), &rotated)).code(), 0);
    assert_eq!(kv_value(&mut conn, "k").as_deref(), Some("4"));
}

#[test]
fn sighup_reloads_the_accounts_file_and_does_not_stop_the_server() {
    let (server, _dir, file) = auth_server(&[]);
    let mut conn = server.client();
    assert_eq!(conn.call(&signed(put_kv("k", "1"), &alice())).code(), 0);
    // Same size and modification time as before, renamed into place in one step: the change
    // poll never sees a difference (nor a half-written file), only SIGHUP makes it re-read.
    let modified = std::fs::metadata(&file).and_then(|m| m.modified()).expect("the file's mtime");
    let next = file.with_extension("next");
    std::fs::write(&next, "alice=s3crex\n").expect("writing the new accounts file");
    let f = std::fs::File::options().write(true).open(&next).expect("opening the new accounts file");
    f.set_modified(modified).expect("giving it the old mtime");
    drop(f);
    std::fs::rename(&next, &file).expect("renaming it into place");
    let rotated = Credentials::new("alice", "s3crex");
    assert_eq!(conn.call(&signed(put_kv("k", "2"), &rotated)).code(), 16, "not re-read before the signal");
    // SAFETY: kill(2) on the PID of the child this test started and still owns.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) }, 0);
    let reloaded = poll_until(RELOAD_DEADLINE, || conn.call(&signed(put_kv("k", "2"), &rotated)).code() == 0);
    assert!(reloaded, "the new secret never took effect (or the server stopped); log:\n{}", server.log_text());
    assert!(server.log_text().contains("reloaded: 1 accounts"), "{}", server.log_text());
    assert_refused(&conn.call(&signed(put_kv("k", "3"), &alice())), 16, "signature");
}

#[test]
fn admin_signs_with_access_and_secret_keys() {
    let (server, _dir, file) = auth_server(&[]);
    let n = server.addr().to_string();
    let set = ["updateNamesrvConfig", "-n", &n, "-k", "enableTopicList", "-v", "false"];
    let run = admin(&set).expect_code(1);
    assert!(run.stderr.contains("16"), "{run:?}");
    let mut with_keys = vec!["--access-key", "alice", "--secret-key", "s3cret"];
    with_keys.extend_from_slice(&set);
    admin(&with_keys).expect_code(0);
    let credentials = file.with_file_name("alice.properties");
    std::fs::write(&credentials, "accessKey=alice\nsecretKey=s3cret\n").expect("writing the credentials file");
    let credentials = credentials.display().to_string();
    let mut with_file = vec!["--credentials", credentials.as_str()];
    with_file.extend_from_slice(&["updateNamesrvConfig", "-n", &n, "-k", "notifyMinBrokerIdChanged", "-v", "true"]);
    admin(&with_file).expect_code(0);
    let config = namesrv_config(&mut server.client());
    assert_eq!(value_of(&config, "notifyMinBrokerIdChanged").as_deref(), Some("true"));
    assert_eq!(value_of(&namesrv_config(&mut server.client()), "enableTopicList").as_deref(), Some("false"));
}
