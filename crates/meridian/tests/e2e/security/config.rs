//! UPDATE_NAMESRV_CONFIG (318) reaches only `remoteConfigUpdateKeys`: every key
//! GET_NAMESRV_CONFIG (319) lists has an explicit decision here, checked over TCP (answer
//! code, value after, config store after). A key added later without a decision fails.

use super::{assert_refused, namesrv_config, update_config, value_of};
use crate::common;
use meridian_testkit::{Server, ServerOptions};

/// Remotely writable by default: Java 5.3.3 NamesrvConfig's plain boolean/int switches.
const WRITABLE: &[&str] = &[
    "clusterTest",
    "deleteTopicWithBrokerRegistration",
    "enableAllTopicList",
    "enableTopicList",
    "needWaitForService",
    "notifyMinBrokerIdChanged",
    "orderMessageEnable",
    "returnOrderTopicConfigToBroker",
    "supportActingMaster",
    "waitSecondsForService",
];

/// In Java's `configBlackList` (and `rocketmqHome`): 16 with Java's own remark.
const BLACK_LISTED: &[&str] = &["configBlackList", "configStorePath", "kvConfigPath", "rocketmqHome"];
const BLACK_LIST_REMARK: &str = "Can not update config in black list.";

/// Refused with 16 naming the key: paths, addresses, listeners, limits, tuning, security.
const REFUSED: &[&str] = &[
    // Meridian's security keys: never remotely writable.
    "authAccountsFile",
    "authBrokerRequests",
    "authEnabled",
    "authReadRequests",
    "brokerAllowedCidrs",
    "remoteConfigUpdateKeys",
    "writeAllowedCidrs",
    // Paths, addresses, listeners.
    "bindAddress",
    "dataDir",
    "listenPort",
    "metricsListen",
    "peerNamesrvAddrs",
    "warmRestartPath",
    // Limits and timing.
    "bodyDecompressedBytesMax",
    "brokerTimeoutDefaultMs",
    "brokersMax",
    "connectionIdleTimeoutMs",
    "connectionsPerShardMax",
    "executorPokeIntervalUs",
    "frameBytesMax",
    "headerBytesMax",
    "ioMemoryBytesPerShard",
    "kvBytesMax",
    "kvEntriesMax",
    "kvValueBytesMax",
    "peerCheckIntervalMs",
    "preemptTimerUs",
    "registrationInflightBytesPerShardMax",
    "registrationMemoryBytesMax",
    "registrationRoundQuietMs",
    "replyWriteTimeoutMs",
    "scanNotActiveBrokerInterval",
    "serverChannelMaxIdleTimeSeconds",
    "serverSocketBacklog",
    "shards",
    "shutdownDrainMs",
    "shutdownGoAwayWindowMs",
    "shutdownWaitTimeSeconds",
    "topicsMax",
    "transparentHugePages",
    "updateQueueLenMax",
    "watchHoldMsMax",
    "watchTopicsPerRequestMax",
    "watchesPerShardMax",
    "warmRestartMaxAgeMs",
    "warmRestartSaveIntervalMs",
    // Behaviour switches that are Meridian's, or logging.
    "enableShutdownGracefully",
    "logFormat",
    "logLevel",
    "shutdownGoAway",
    "warmRestart",
    // Java keys Meridian only echoes (thread pools, buffers, Netty, controller).
    "clientRequestThreadPoolNums",
    "clientRequestThreadPoolQueueCapacity",
    "defaultThreadPoolNums",
    "defaultThreadPoolQueueCapacity",
    "enableControllerInNamesrv",
    "productEnvName",
    "serverAsyncSemaphoreValue",
    "serverCallbackExecutorThreads",
    "serverNettyWorkerGroupEnable",
    "serverOnewaySemaphoreValue",
    "serverPooledByteBufAllocatorEnable",
    "serverSelectorThreads",
    "serverSocketRcvBufSize",
    "serverSocketSndBufSize",
    "serverWorkerThreads",
    "unRegisterBrokerQueueCapacity",
    "useEpollNativeSelector",
    "writeBufferHighWaterMark",
    "writeBufferLowWaterMark",
];

/// What an attacker would send for a key (the attacks), else a plausible value.
fn hostile_value(key: &str) -> &'static str {
    match key {
        "dataDir" | "warmRestartPath" | "authAccountsFile" | "kvConfigPath" | "configStorePath" => "/tmp/owned",
        "peerNamesrvAddrs" => "192.0.2.1:9876",
        "metricsListen" => "0.0.0.0:19880",
        "logLevel" => "trace",
        "writeAllowedCidrs" | "brokerAllowedCidrs" => "0.0.0.0/0",
        "authEnabled" | "warmRestart" | "shutdownGoAway" => "true",
        _ => "1",
    }
}

/// A valid value different from `current`, for a writable key.
fn changed_value(key: &str, current: &str) -> String {
    match current {
        "true" => "false".into(),
        "false" => "true".into(),
        n => (n.parse::<u64>().unwrap_or_else(|_| panic!("{key}={n}: add a value for it")) + 1).to_string(),
    }
}

#[test]
fn every_listed_key_has_a_decision_and_a_remote_update_gets_exactly_it() {
    let mut server = common::server(&[]);
    let mut conn = server.client();
    let store = server.data_dir().join("namesrv.properties");
    let listed = namesrv_config(&mut conn);
    for (key, _) in &listed {
        let decided = [WRITABLE, BLACK_LISTED, REFUSED].iter().filter(|list| list.contains(&key.as_str())).count();
        assert_eq!(
            decided, 1,
            "key {key} must have exactly one decision in this test (WRITABLE, BLACK_LISTED or REFUSED)"
        );
    }
    for key in WRITABLE.iter().chain(BLACK_LISTED).chain(REFUSED) {
        // rocketmqHome is listed only when set, as Java omits it when null.
        assert!(*key == "rocketmqHome" || value_of(&listed, key).is_some(), "decided key {key} is not listed any more");
    }
    // Refused keys first: none may write the config store.
    for key in BLACK_LISTED.iter().chain(REFUSED) {
        let before = namesrv_config(&mut conn);
        let reply = conn.call(&update_config(&format!("{key}={}\n", hostile_value(key))));
        let remark = if BLACK_LISTED.contains(key) { BLACK_LIST_REMARK } else { key };
        assert_refused(&reply, 16, remark);
        assert_eq!(namesrv_config(&mut conn), before, "refused {key} changed the config");
        assert!(!store.exists(), "refused {key} wrote the config store");
    }
    for key in WRITABLE {
        let current = value_of(&namesrv_config(&mut conn), key).expect("listed");
        let next = changed_value(key, &current);
        let reply = conn.call(&update_config(&format!("{key}={next}\n")));
        assert_eq!(reply.code(), 0, "{key}: {reply:?}");
        assert_eq!(value_of(&namesrv_config(&mut conn), key), Some(next.clone()), "{key} in memory");
        let text = std::fs::read_to_string(&store).expect("config store written");
        assert!(text.lines().any(|l| l == format!("{key}={next}")), "{key} not in the store:\n{text}");
    }
    assert!(server.is_running(), "no update stopped the server");
}

#[test]
fn one_refused_key_spoils_the_whole_update_and_unknown_keys_are_ignored() {
    let server = common::server(&[]);
    let mut conn = server.client();
    let before = namesrv_config(&mut conn);
    let reply = conn.call(&update_config("orderMessageEnable=true\nframeBytesMax=1\nnoSuchKey=1\n"));
    assert_refused(&reply, 16, "frameBytesMax");
    assert_eq!(namesrv_config(&mut conn), before);
    assert!(!server.data_dir().join("namesrv.properties").exists());
    // An old snake_case spelling is a known key too: refused, not ignored.
    assert_refused(&conn.call(&update_config("data_dir=/tmp/owned\n")), 16, "data_dir");
    let reply = conn.call(&update_config("orderMessageEnable=true\nnoSuchKey=1\n"));
    assert_eq!(reply.code(), 0, "{reply:?}");
    assert_eq!(value_of(&namesrv_config(&mut conn), "orderMessageEnable").as_deref(), Some("true"));
}

#[test]
fn the_operator_narrows_or_widens_the_list_locally() {
    let server = common::server(&["remoteConfigUpdateKeys=topicsMax;enableTopicList"]);
    let mut conn = server.client();
    assert_eq!(conn.call(&update_config("topicsMax=1000\n")).code(), 0);
    assert_eq!(value_of(&namesrv_config(&mut conn), "topicsMax").as_deref(), Some("1000"));
    assert_refused(&conn.call(&update_config("orderMessageEnable=true\n")), 16, "orderMessageEnable");
    assert_refused(&conn.call(&update_config("remoteConfigUpdateKeys=dataDir\n")), 16, "remoteConfigUpdateKeys");
}

#[test]
fn listing_a_never_writable_key_stops_the_start() {
    for key in ["dataDir", "authEnabled", "remoteConfigUpdateKeys"] {
        let set = format!("remoteConfigUpdateKeys={key}");
        let exited = Server::run_expecting_exit(options_with(&[&set]));
        assert!(!exited.status.success(), "{key}: {}", exited.log);
        assert!(exited.log.contains(key) && exited.log.contains("never remotely writable"), "{}", exited.log);
    }
}

fn options_with(sets: &[&str]) -> ServerOptions {
    common::options().sets(sets)
}
