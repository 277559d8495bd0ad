//! REGISTER_BROKER answers with orderTopicConf, and the namesrv config codes (318/319).

use super::*;

// ---------------------------------------------------------------------------------------
// REGISTER_BROKER answers and orderTopicConf (KV namespace ORDER_TOPIC_CONFIG)
// ---------------------------------------------------------------------------------------

#[test]
fn register_answer_carries_the_order_topic_config_namespace() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let topics = [topic("TOrd", 4, 6), topic("T2", 4, 6)];
    // No namespace yet: no body.
    assert_registered(&mut conn, &b.register(json_body(1, &topics)));
    // Another namespace does not count.
    assert_answer(&conn.call(&put_kv("ns", "TOrd", "x")), ok_header(), "");
    assert_registered(&mut conn, &b.register(json_body(1, &topics)));

    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    assert_eq!(register_ok(&mut conn, &b.register(json_body(1, &topics))), r#"{"table":{"TOrd":"broker-a:4"}}"#);
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd2", "broker-a:2;broker-b:2")), ok_header(), "");
    // A slave gets it too, besides its master's addresses.
    let slave = Broker::new("c1", "broker-a", 1, 10921);
    let reply = conn.call(&slave.register(json_body(1, &topics)));
    let ext = json!({"haServerAddr":"127.0.0.1:10912","masterAddr":"127.0.0.1:10911"});
    assert_answer(
        &reply,
        java_header(0, Some(ext), None),
        r#"{"table":{"TOrd":"broker-a:4","TOrd2":"broker-a:2;broker-b:2"}}"#,
    );
    // orderMessageEnable is false by default: routes carry no orderTopicConf.
    let expected = route_json(
        &[broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911"), (1, "127.0.0.1:10921")], true)],
        &[queue_data("broker-a", 4, 6)],
        None,
    );
    assert_eq!(route_body(&mut conn, route_request("TOrd")), expected);
}

#[test]
fn register_answer_has_no_body_when_return_order_topic_config_to_broker_is_false() {
    let server = common::server(&["returnOrderTopicConfigToBroker=false"]);
    let mut conn = server.client();
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
}

#[test]
fn order_message_enable_at_start_fills_order_topic_conf() {
    let server = common::server(&["orderMessageEnable=true"]);
    let mut conn = server.client();
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("TPlain", 4, 6)])));
    let bd = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    let qd = queue_data("broker-a", 4, 6);
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[&bd], &[&qd], None));

    // A KV entry written after the route was built changes the route.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    let with_conf = route_json(&[&bd], &[&qd], Some("broker-a:4"));
    assert_eq!(route_body(&mut conn, route_request("TOrd")), with_conf);
    // Legacy flavour too.
    let legacy_bd = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], false);
    let legacy = route_json(&[legacy_bd], &[&qd], Some("broker-a:4"));
    assert_eq!(route_body(&mut conn, route_request("TOrd").version(400)), legacy);
    // Only that topic.
    assert_eq!(route_body(&mut conn, route_request("TPlain")), route_json(&[&bd], &[&qd], None));
    // Updated and deleted entries follow.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:2")), ok_header(), "");
    let updated = route_json(&[&bd], &[&qd], Some("broker-a:2"));
    assert_eq!(route_body(&mut conn, route_request("TOrd")), updated);
    assert_answer(&conn.call(&delete_kv(ORDER_NS, "TOrd")), ok_header(), "");
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[bd], &[qd], None));
}

// ---------------------------------------------------------------------------------------
// 319 / 318: namesrv config
// ---------------------------------------------------------------------------------------

#[test]
fn get_namesrv_config_lists_every_java_key_sorted() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let config = namesrv_config(&mut conn);
    assert!(config.ends_with('\n'), "{config}");
    let keys: Vec<&str> =
        config.lines().map(|l| l.split_once('=').unwrap_or_else(|| panic!("not key=value: {l:?}")).0).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "not sorted by key, or duplicated: {keys:?}");
    for line in [
        "orderMessageEnable=false",
        "returnOrderTopicConfigToBroker=true",
        "enableAllTopicList=true",
        "enableTopicList=true",
        "notifyMinBrokerIdChanged=false",
        "needWaitForService=false",
        "waitSecondsForService=45",
        "deleteTopicWithBrokerRegistration=false",
        "supportActingMaster=false",
        "configBlackList=configBlackList;configStorePath;kvConfigPath",
    ] {
        assert!(config.lines().any(|l| l == line), "no line {line:?} in\n{config}");
    }
    let data_dir = server.data_dir().display().to_string();
    assert_eq!(config_value(&config, "kvConfigPath"), Some(format!("{data_dir}/kvConfig.json")));
    assert_eq!(config_value(&config, "configStorePath"), Some(format!("{data_dir}/namesrv.properties")));

    // Every key Java 5.3.3 lists (golden seq 32), with Java's default value. Left out: the
    // values that depend on the installation (paths, address, port, rocketmqHome), and
    // scanNotActiveBrokerInterval, whose default Meridian sets to 10 s on purpose.
    let golden = &golden_lines(JAVA_GOLDEN)[31];
    assert_eq!(golden["step"], "319 GET_NAMESRV_CONFIG");
    let (_, _, java_body) = split_frame(&hex_decode(golden["response_hex"].as_str().expect("answered")));
    let java_body = String::from_utf8(java_body).expect("UTF-8");
    let installation = ["bindAddress", "configStorePath", "kvConfigPath", "listenPort", "rocketmqHome"];
    for line in java_body.lines() {
        let (key, _) = line.split_once('=').expect("key=value");
        if key == "scanNotActiveBrokerInterval" {
            assert!(config_value(&config, key).is_some(), "no {key} in\n{config}");
        } else if installation.contains(&key) {
            if key != "rocketmqHome" {
                assert!(config_value(&config, key).is_some(), "no {key} in\n{config}");
            }
        } else {
            assert!(config.lines().any(|l| l == line), "Java's line {line:?} missing from\n{config}");
        }
    }
}

#[test]
fn update_namesrv_config_refuses_black_listed_keys() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let before = namesrv_config(&mut conn);
    // Golden seq 33, and the other default black-listed keys; rocketmqHome always.
    for body in [
        "kvConfigPath=probe-must-not-apply/kvConfig.json\n",
        "configStorePath=/tmp/elsewhere.properties\n",
        "configBlackList=\n",
        "rocketmqHome=/tmp/home\n",
        // One black-listed key spoils the whole update.
        "orderMessageEnable=true\nkvConfigPath=/tmp/x.json\n",
    ] {
        assert_answer(&conn.call(&update_config(body)), java_header(16, None, Some(BLACK_LIST_REMARK)), "");
    }
    assert_eq!(namesrv_config(&mut conn), before, "a refused update changed the config");
    assert!(!server.data_dir().join("namesrv.properties").exists(), "a refused update wrote the config store");

    // No body: SUCCESS, nothing changes (golden seq 34).
    assert_answer(&conn.call(&Request::new(UPDATE_NAMESRV_CONFIG)), ok_header(), "");
    assert_eq!(namesrv_config(&mut conn), before);
}

#[test]
fn update_namesrv_config_honours_a_configured_black_list() {
    let server = common::server(&["configBlackList=orderMessageEnable;configBlackList"]);
    let mut conn = server.client();
    let refused = conn.call(&update_config("orderMessageEnable=true\n"));
    assert_answer(&refused, java_header(16, None, Some(BLACK_LIST_REMARK)), "");
    // rocketmqHome is refused whatever the list says.
    assert_answer(&conn.call(&update_config("rocketmqHome=/x\n")), java_header(16, None, Some(BLACK_LIST_REMARK)), "");
    assert_eq!(config_value(&namesrv_config(&mut conn), "orderMessageEnable").as_deref(), Some("false"));
    assert_answer(&conn.call(&update_config("enableAllTopicList=false\n")), ok_header(), "");
    let config = namesrv_config(&mut conn);
    assert_eq!(config_value(&config, "enableAllTopicList").as_deref(), Some("false"));
    assert_eq!(config_value(&config, "orderMessageEnable").as_deref(), Some("false"));
}

#[test]
fn update_namesrv_config_applies_persists_and_takes_effect() {
    let server = common::server(&[]);
    let mut conn = server.client();
    // An order topic with its KV entry: no orderTopicConf while orderMessageEnable=false.
    assert_answer(&conn.call(&put_kv(ORDER_NS, "TOrd", "broker-a:4")), ok_header(), "");
    let b = Broker::new("c1", "broker-a", 0, 10911);
    let body = register_ok(&mut conn, &b.register(json_body(1, &[topic("TOrd", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(body, r#"{"table":{"TOrd":"broker-a:4"}}"#);
    let bd = broker_data("c1", "broker-a", &[(0, "127.0.0.1:10911")], true);
    let qd = queue_data("broker-a", 4, 6);
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[&bd], &[&qd], None));

    // Unknown keys are ignored (Java applies only keys it knows).
    assert_answer(&conn.call(&update_config("orderMessageEnable=true\nnoSuchKey=1\n")), ok_header(), "");
    let config = namesrv_config(&mut conn);
    assert_eq!(config_value(&config, "orderMessageEnable").as_deref(), Some("true"));
    assert_eq!(config_value(&config, "noSuchKey"), None);
    // The config store (data dir namesrv.properties by default) holds the full list.
    let store = std::fs::read_to_string(server.data_dir().join("namesrv.properties")).expect("config store written");
    assert!(store.lines().any(|l| l == "orderMessageEnable=true"), "config store:\n{store}");
    assert!(store.lines().any(|l| l == "returnOrderTopicConfigToBroker=true"), "config store:\n{store}");
    // In effect, on every shard.
    let with_conf = route_json(&[&bd], &[&qd], Some("broker-a:4"));
    assert_eq!(route_body(&mut conn, route_request("TOrd")), with_conf);
    assert_eq!(route_body(&mut server.client(), route_request("TOrd")), with_conf);
    assert_eq!(route_body(&mut conn, route_request("T2")), route_json(&[&bd], &[&qd], None));

    // And back.
    assert_answer(&conn.call(&update_config("orderMessageEnable=false")), ok_header(), "");
    assert_eq!(route_body(&mut conn, route_request("TOrd")), route_json(&[bd], &[qd], None));
    let store = std::fs::read_to_string(server.data_dir().join("namesrv.properties")).expect("config store written");
    assert!(store.lines().any(|l| l == "orderMessageEnable=false"), "config store:\n{store}");
}

#[test]
fn config_file_sets_switches_and_is_the_config_store() {
    let dir = TempDir::new("config-file");
    let file = dir.path().join("namesrv.conf");
    std::fs::write(&file, "enableAllTopicList=false\nproductEnvName=test-env\n").expect("writing the config file");
    let server = Server::start_with(common::options().arg("-c").arg(file.display().to_string()));
    let mut conn = server.client();
    assert_answer(
        &conn.call(&Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER)),
        java_header(1, None, Some("disable")),
        "",
    );
    let config = namesrv_config(&mut conn);
    assert_eq!(config_value(&config, "productEnvName").as_deref(), Some("test-env"));
    assert_eq!(config_value(&config, "configStorePath"), Some(file.display().to_string()));

    assert_answer(&conn.call(&update_config("enableAllTopicList=true\n")), ok_header(), "");
    assert_eq!(topic_list(&mut conn, Request::new(GET_ALL_TOPIC_LIST_FROM_NAMESERVER)).0, set(&[]));
    let store = std::fs::read_to_string(&file).expect("the config file");
    assert!(store.lines().any(|l| l == "enableAllTopicList=true"), "config file:\n{store}");
    assert!(store.lines().any(|l| l == "productEnvName=test-env"), "config file:\n{store}");
    assert!(!server.data_dir().join("namesrv.properties").exists());
}
