//! The Java golden answers of the KV, member-group and config codes, and the KV config
//! codes (100/101/102/219) with their persistence and crash safety.

use super::*;

// ---------------------------------------------------------------------------------------
// Golden replay: the Java answers of codes 100/101/102/219/318/901
// ---------------------------------------------------------------------------------------

#[test]
fn golden_java_kv_member_group_and_config_answers_replay_exactly() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let lines = golden_lines(JAVA_GOLDEN);
    // 2, 3: bA master and slave (needed by 901); 14, 15: 901; 18–27: KV; 33, 34: 318.
    let selected: Vec<u64> = [2, 3, 14, 15].into_iter().chain(18..=27).chain([33, 34]).collect();
    for seq in selected {
        let line = &lines[seq as usize - 1];
        assert_eq!(line["seq"].as_u64(), Some(seq));
        let request = hex_decode(line["request_hex"].as_str().expect("request_hex"));
        let (request_type, request_header, _) = split_frame(&request);
        let request_header = header_json(request_type, &request_header);
        let (java_type, java_header_bytes, java_body) =
            split_frame(&hex_decode(line["response_hex"].as_str().expect("two-way exchanges")));
        let java_header = header_json(java_type, &java_header_bytes);

        conn.write_raw(&request).expect("writing a golden frame");
        let reply = conn.read_reply().unwrap_or_else(|e| panic!("seq {seq}: no answer: {e}"));
        assert_eq!(reply.header["opaque"], request_header["opaque"], "seq {seq}: opaque");
        assert_eq!(reply.header_without_opaque(), without_opaque(&java_header), "seq {seq}: header");
        assert_eq!(reply.body_text(), String::from_utf8_lossy(&java_body), "seq {seq}: body");
    }
}

// ---------------------------------------------------------------------------------------
// 100 / 101 / 102 / 219: KV config
// ---------------------------------------------------------------------------------------

#[test]
fn kv_put_get_delete_and_list() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let miss = |ns: &str, key: &str| format!("No config item, Namespace: {ns} Key: {key}");

    // Empty table: 101 misses carry `extFields:{}` (golden seq 21), 219 misses do not (23).
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(22, Some(json!({})), Some(&miss("ns", "k1"))), "");
    assert_answer(&conn.call(&kv_list("ns")), java_header(22, None, Some("No config item, Namespace: ns")), "");

    assert_answer(&conn.call(&put_kv("ns", "k1", "v1")), ok_header(), "");
    assert_answer(&conn.call(&put_kv("ns", "k2", "broker-a:4;broker-b:4")), ok_header(), "");
    assert_answer(&conn.call(&put_kv("other", "k1", "x")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(0, Some(json!({"value":"v1"})), None), "");
    assert_answer(&conn.call(&get_kv("other", "k1")), java_header(0, Some(json!({"value":"x"})), None), "");
    assert_answer(&conn.call(&kv_list("ns")), ok_header(), r#"{"table":{"k1":"v1","k2":"broker-a:4;broker-b:4"}}"#);
    assert_answer(&conn.call(&kv_list("other")), ok_header(), r#"{"table":{"k1":"x"}}"#);

    // Overwrite.
    assert_answer(&conn.call(&put_kv("ns", "k1", "v1b")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(0, Some(json!({"value":"v1b"})), None), "");
    // Values are strings on the wire, whatever they hold.
    assert_answer(&conn.call(&put_kv("ns", "k3", "{\"a\":\"b\\\\c\"} é")), ok_header(), "");
    assert_answer(
        &conn.call(&get_kv("ns", "k3")),
        java_header(0, Some(json!({"value":"{\"a\":\"b\\\\c\"} é"})), None),
        "",
    );
    assert_answer(&conn.call(&delete_kv("ns", "k3")), ok_header(), "");

    // Delete: SUCCESS always, also for a missing key or namespace (golden seq 24, 26).
    assert_answer(&conn.call(&delete_kv("ns", "k1")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(22, Some(json!({})), Some(&miss("ns", "k1"))), "");
    assert_answer(&conn.call(&delete_kv("ns", "k1")), ok_header(), "");
    assert_answer(&conn.call(&delete_kv("nowhere", "k1")), ok_header(), "");
    assert_answer(
        &conn.call(&kv_list("nowhere")),
        java_header(22, None, Some("No config item, Namespace: nowhere")),
        "",
    );
    assert_answer(&conn.call(&kv_list("ns")), ok_header(), r#"{"table":{"k2":"broker-a:4;broker-b:4"}}"#);
    // Another connection (another shard) sees the same table.
    let mut other = server.client();
    assert_answer(
        &other.call(&get_kv("ns", "k2")),
        java_header(0, Some(json!({"value":"broker-a:4;broker-b:4"})), None),
        "",
    );
}

#[test]
fn kv_requests_without_required_fields_are_refused() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // Java checks namespace and key of 100 itself, with this remark (golden seq 27).
    let no_key = Request::new(PUT_KV_CONFIG).ext("namespace", "ns").ext("value", "x");
    assert_answer(&conn.call(&no_key), java_header(1, None, Some("namespace or key is null")), "");
    let no_namespace = Request::new(PUT_KV_CONFIG).ext("key", "k").ext("value", "x");
    assert_answer(&conn.call(&no_namespace), java_header(1, None, Some("namespace or key is null")), "");
    // The other required fields: SYSTEM_ERROR naming the field.
    let cases = [
        (Request::new(PUT_KV_CONFIG).ext("namespace", "ns").ext("key", "k"), "value"),
        (Request::new(GET_KV_CONFIG).ext("namespace", "ns"), "key"),
        (Request::new(GET_KV_CONFIG).ext("key", "k"), "namespace"),
        (Request::new(DELETE_KV_CONFIG).ext("namespace", "ns"), "key"),
        (Request::new(GET_KVLIST_BY_NAMESPACE), "namespace"),
    ];
    for (request, field) in cases {
        let reply = conn.call(&request);
        assert_eq!(reply.code(), 1, "{request:?}: {}", reply.header);
        let remark = reply.remark().unwrap_or_default();
        assert!(remark.contains(field), "{request:?}: remark {remark:?} does not name {field}");
    }
    // Nothing was stored.
    assert_eq!(conn.call(&kv_list("ns")).code(), 22);
}

#[test]
fn kv_namespace_emptied_by_delete_still_answers_an_empty_table() {
    // Java's KVConfigManager.deleteKVConfig removes the key but keeps the namespace map, so
    // GET_KVLIST_BY_NAMESPACE then answers SUCCESS with an empty table, not QUERY_NOT_FOUND.
    let server = common::server(&[]);
    let mut conn = server.client();
    assert_answer(&conn.call(&put_kv("ns", "k1", "v1")), ok_header(), "");
    assert_answer(&conn.call(&delete_kv("ns", "k1")), ok_header(), "");
    assert_answer(&conn.call(&kv_list("ns")), ok_header(), r#"{"table":{}}"#);
    // So an emptied ORDER_TOPIC_CONFIG namespace still goes to brokers, as an empty table.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    assert_answer(&conn.call(&delete_kv(ORDER_NS, "TOrd")), ok_header(), "");
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = register_ok(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(body, r#"{"table":{}}"#);
}

#[test]
fn kv_survives_a_restart_on_the_same_data_dir() {
    let dir = TempDir::new("kv-restart");
    {
        let server = Server::start_with(common::options().data_dir(dir.path()));
        let mut conn = server.client();
        assert_answer(&conn.call(&put_kv("ns", "k1", "v1")), ok_header(), "");
        assert_answer(&conn.call(&put_kv("ns", "k2", "v2")), ok_header(), "");
        assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
        assert_answer(&conn.call(&delete_kv("ns", "k2")), ok_header(), "");
        // Dropping the server kills it (SIGKILL): only what was acknowledged is on disk.
    }
    // Java's file format.
    let file = std::fs::read_to_string(dir.path().join("kvConfig.json")).expect("the KV file exists");
    let parsed: Value = serde_json::from_str(&file).unwrap_or_else(|e| panic!("KV file is not JSON ({e}): {file}"));
    assert_eq!(parsed, json!({"configTable":{"ORDER_TOPIC_CONFIG":{"TOrd":"broker-a:4"},"ns":{"k1":"v1"}}}));

    let server = Server::start_with(common::options().data_dir(dir.path()));
    let mut conn = server.client();
    assert_answer(&conn.call(&get_kv("ns", "k1")), java_header(0, Some(json!({"value":"v1"})), None), "");
    let miss = "No config item, Namespace: ns Key: k2";
    assert_answer(&conn.call(&get_kv("ns", "k2")), java_header(22, Some(json!({})), Some(miss)), "");
    assert_answer(&conn.call(&kv_list(ORDER_NS)), ok_header(), r#"{"table":{"TOrd":"broker-a:4"}}"#);
    // The loaded order config reaches brokers too.
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = register_ok(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(body, r#"{"table":{"TOrd":"broker-a:4"}}"#);
}

/// One crash-safety round (crates/server/src/persist.rs): k1 acknowledged, then a server
/// that aborts at `step` of the write of k2, then a normal start on the same directory.
fn kv_write_crash_round(step: u32) {
    let dir = TempDir::new(&format!("kv-crash-{step}"));
    {
        let server = Server::start_with(common::options().data_dir(dir.path()));
        assert_answer(&server.client().call(&put_kv("ns", "k1", "v1")), ok_header(), "");
    }
    {
        let options = common::options()
            .data_dir(dir.path())
            .env("MERIDIAN_TEST_CRASH_AT_WRITE_STEP", &step.to_string())
            .without_core_dump();
        let mut server = Server::start_with(options);
        let mut conn = server.client();
        let answer = conn.try_call(&put_kv("ns", "k2", "v2"));
        assert!(answer.is_err(), "step {step}: the aborting server answered: {:?}", answer.map(|r| r.header));
        let status = server.wait_exit(POLL_DEADLINE).unwrap_or_else(|| panic!("step {step}: the server did not abort"));
        assert!(!status.success(), "step {step}: exit {status:?}");
        server.expect_log("aborting on purpose");
    }
    // Whatever the step, the file is whole: the server loads it and starts.
    let file = std::fs::read_to_string(dir.path().join("kvConfig.json")).expect("the KV file exists");
    let parsed: Value =
        serde_json::from_str(&file).unwrap_or_else(|e| panic!("step {step}: torn KV file ({e}): {file}"));
    let server = Server::start_with(common::options().data_dir(dir.path()));
    let mut conn = server.client();
    // The acknowledged write survives.
    let k1 = conn.call(&get_kv("ns", "k1"));
    assert_eq!(k1.ext_field("value").as_deref(), Some("v1"), "step {step}: {}", k1.header);
    assert_answer(&k1, java_header(0, Some(json!({"value":"v1"})), None), "");
    let k2 = conn.call(&get_kv("ns", "k2"));
    if step == 3 {
        // The rename happened before the abort: the new content is the file.
        assert_answer(&k2, java_header(0, Some(json!({"value":"v2"})), None), "");
        assert_eq!(parsed, json!({"configTable":{"ns":{"k1":"v1","k2":"v2"}}}), "step {step}");
    } else if k2.code() == 0 {
        assert_eq!(k2.ext_field("value").as_deref(), Some("v2"), "step {step}: {}", k2.header);
    } else {
        let miss = "No config item, Namespace: ns Key: k2";
        assert_answer(&k2, java_header(22, Some(json!({})), Some(miss)), "");
        assert_eq!(parsed, json!({"configTable":{"ns":{"k1":"v1"}}}), "step {step}");
    }
    // And the server keeps working on that directory.
    assert_answer(&conn.call(&put_kv("ns", "k3", "v3")), ok_header(), "");
    assert_answer(&conn.call(&get_kv("ns", "k3")), java_header(0, Some(json!({"value":"v3"})), None), "");
}

/// SIGKILL at arbitrary moments of a stream of KV writes: after every restart on the same
/// directory each acknowledged write is there, and the restart is clean (the data-dir lock
/// and the port guard died with the killed process).
#[test]
fn sigkill_during_kv_writes_loses_no_acknowledged_write() {
    const ROUNDS: usize = 5;
    let dir = TempDir::new("kv-sigkill");
    let mut acked: Vec<String> = Vec::new();
    let check_all = |conn: &mut Client, acked: &[String], when: &str| {
        for key in acked {
            let reply = conn.call(&get_kv("ns", key));
            assert_eq!(reply.ext_field("value").as_deref(), Some(key.as_str()), "{when}: acknowledged {key} lost");
        }
    };
    for round in 0..ROUNDS {
        let mut server = Server::start_with(common::options().data_dir(dir.path()).without_core_dump());
        check_all(&mut server.client(), &acked, &format!("restart {round}"));
        let addr = server.addr();
        let (acks_tx, acks_rx) = std::sync::mpsc::channel::<String>();
        let writer = std::thread::spawn(move || {
            let mut conn = Client::connect(addr);
            for i in 0.. {
                let key = format!("k{round}-{i}");
                match conn.try_call(&put_kv("ns", &key, &key)) {
                    Ok(reply) if reply.code() == 0 => {
                        if acks_tx.send(key).is_err() {
                            return;
                        }
                    }
                    _ => return, // killed
                }
            }
        });
        // A different number of acknowledged writes before each kill.
        for _ in 0..(3 + round * 5) {
            acked.push(acks_rx.recv_timeout(POLL_DEADLINE).expect("a KV write acknowledged"));
        }
        // SAFETY: plain kill(2) on the child process this test started.
        assert_eq!(unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGKILL) }, 0);
        writer.join().expect("writer thread");
        // Answers read before the kill are acknowledged writes too.
        acked.extend(acks_rx.try_iter());
        server.wait_exit(POLL_DEADLINE).expect("the killed server is gone");
    }
    let server = Server::start_with(common::options().data_dir(dir.path()));
    check_all(&mut server.client(), &acked, "after the last kill");
    assert!(acked.len() >= ROUNDS * 3, "{} writes acknowledged", acked.len());
}

#[test]
fn kv_write_interrupted_at_step_1_loses_no_acknowledged_write() {
    kv_write_crash_round(1);
}

#[test]
fn kv_write_interrupted_at_step_2_loses_no_acknowledged_write() {
    kv_write_crash_round(2);
}

#[test]
fn kv_write_interrupted_at_step_3_keeps_the_renamed_file() {
    kv_write_crash_round(3);
}
