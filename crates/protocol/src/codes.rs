//! Request and response codes, named as in RocketMQ's `RequestCode` / `ResponseCode`.
//! Holds no logic beyond naming them: `REQUEST_NAMES` and `RESPONSE_NAMES` are the one table
//! of names.

// Request codes served by the NameServer.
pub const PUT_KV_CONFIG: i32 = 100;
pub const GET_KV_CONFIG: i32 = 101;
pub const DELETE_KV_CONFIG: i32 = 102;
pub const REGISTER_BROKER: i32 = 103;
pub const UNREGISTER_BROKER: i32 = 104;
pub const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
pub const GET_BROKER_CLUSTER_INFO: i32 = 106;
pub const WIPE_WRITE_PERM_OF_BROKER: i32 = 205;
pub const GET_ALL_TOPIC_LIST_FROM_NAMESERVER: i32 = 206;
pub const DELETE_TOPIC_IN_NAMESRV: i32 = 216;
pub const REGISTER_TOPIC_IN_NAMESRV: i32 = 217;
pub const GET_KVLIST_BY_NAMESPACE: i32 = 219;
pub const GET_TOPICS_BY_CLUSTER: i32 = 224;
pub const GET_SYSTEM_TOPIC_LIST_FROM_NS: i32 = 304;
pub const GET_UNIT_TOPIC_LIST: i32 = 311;
pub const GET_HAS_UNIT_SUB_TOPIC_LIST: i32 = 312;
pub const GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: i32 = 313;
pub const UPDATE_NAMESRV_CONFIG: i32 = 318;
pub const GET_NAMESRV_CONFIG: i32 = 319;
pub const QUERY_DATA_VERSION: i32 = 322;
pub const ADD_WRITE_PERM_OF_BROKER: i32 = 327;
pub const GET_BROKER_MEMBER_GROUP: i32 = 901;
pub const BROKER_HEARTBEAT: i32 = 904;
pub const NOTIFY_MIN_BROKER_ID_CHANGE: i32 = 905;

/// Meridian extension (not RocketMQ): watch topics' routes, long-polled. Far
/// from every RocketMQ range (0–1013, 2000s, 3001–3010, 200050+); stock NameServers answer 3.
pub const MERIDIAN_WATCH_ROUTES: i32 = 43_701;
/// Meridian extension: every live broker's data version and liveness, read without side
/// effects (stock QUERY_DATA_VERSION refreshes the broker's heartbeat); used by routeDiff.
pub const MERIDIAN_BROKER_LIVE_TABLE: i32 = 43_702;

// Response codes a NameServer emits.
pub const SUCCESS: i32 = 0;
pub const SYSTEM_ERROR: i32 = 1;
pub const SYSTEM_BUSY: i32 = 2;
pub const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
pub const NO_PERMISSION: i32 = 16;
pub const TOPIC_NOT_EXIST: i32 = 17;
pub const QUERY_NOT_FOUND: i32 = 22;
/// Answered instead of serving while shutting down gracefully, so the client reconnects
/// elsewhere (Java's `enableShutdownGracefully`).
pub const GO_AWAY: i32 = 1500;
/// `MQVersion.V5_3_1` ordinal: only clients newer than this understand GO_AWAY.
pub const VERSION_GO_AWAY_AFTER: i32 = 475;

/// Every request code a NameServer serves, with RocketMQ's name for it (`RequestCode`), in
/// code order. The one table of names: metrics labels, tools and loadgen read it.
pub const REQUEST_NAMES: [(i32, &str); 26] = [
    (PUT_KV_CONFIG, "PUT_KV_CONFIG"),
    (GET_KV_CONFIG, "GET_KV_CONFIG"),
    (DELETE_KV_CONFIG, "DELETE_KV_CONFIG"),
    (REGISTER_BROKER, "REGISTER_BROKER"),
    (UNREGISTER_BROKER, "UNREGISTER_BROKER"),
    (GET_ROUTEINFO_BY_TOPIC, "GET_ROUTEINFO_BY_TOPIC"),
    (GET_BROKER_CLUSTER_INFO, "GET_BROKER_CLUSTER_INFO"),
    (WIPE_WRITE_PERM_OF_BROKER, "WIPE_WRITE_PERM_OF_BROKER"),
    (GET_ALL_TOPIC_LIST_FROM_NAMESERVER, "GET_ALL_TOPIC_LIST_FROM_NAMESERVER"),
    (DELETE_TOPIC_IN_NAMESRV, "DELETE_TOPIC_IN_NAMESRV"),
    (REGISTER_TOPIC_IN_NAMESRV, "REGISTER_TOPIC_IN_NAMESRV"),
    (GET_KVLIST_BY_NAMESPACE, "GET_KVLIST_BY_NAMESPACE"),
    (GET_TOPICS_BY_CLUSTER, "GET_TOPICS_BY_CLUSTER"),
    (GET_SYSTEM_TOPIC_LIST_FROM_NS, "GET_SYSTEM_TOPIC_LIST_FROM_NS"),
    (GET_UNIT_TOPIC_LIST, "GET_UNIT_TOPIC_LIST"),
    (GET_HAS_UNIT_SUB_TOPIC_LIST, "GET_HAS_UNIT_SUB_TOPIC_LIST"),
    (GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST, "GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST"),
    (UPDATE_NAMESRV_CONFIG, "UPDATE_NAMESRV_CONFIG"),
    (GET_NAMESRV_CONFIG, "GET_NAMESRV_CONFIG"),
    (QUERY_DATA_VERSION, "QUERY_DATA_VERSION"),
    (ADD_WRITE_PERM_OF_BROKER, "ADD_WRITE_PERM_OF_BROKER"),
    (GET_BROKER_MEMBER_GROUP, "GET_BROKER_MEMBER_GROUP"),
    (BROKER_HEARTBEAT, "BROKER_HEARTBEAT"),
    (NOTIFY_MIN_BROKER_ID_CHANGE, "NOTIFY_MIN_BROKER_ID_CHANGE"),
    (MERIDIAN_WATCH_ROUTES, "MERIDIAN_WATCH_ROUTES"),
    (MERIDIAN_BROKER_LIVE_TABLE, "MERIDIAN_BROKER_LIVE_TABLE"),
];

/// Every response code a NameServer sends, with RocketMQ's name for it (`ResponseCode`).
pub const RESPONSE_NAMES: [(i32, &str); 8] = [
    (SUCCESS, "SUCCESS"),
    (SYSTEM_ERROR, "SYSTEM_ERROR"),
    (SYSTEM_BUSY, "SYSTEM_BUSY"),
    (REQUEST_CODE_NOT_SUPPORTED, "REQUEST_CODE_NOT_SUPPORTED"),
    (NO_PERMISSION, "NO_PERMISSION"),
    (TOPIC_NOT_EXIST, "TOPIC_NOT_EXIST"),
    (QUERY_NOT_FOUND, "QUERY_NOT_FOUND"),
    (GO_AWAY, "GO_AWAY"),
];

/// RocketMQ's name of a request code a NameServer serves.
pub fn request_name(code: i32) -> Option<&'static str> {
    REQUEST_NAMES.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
}

/// RocketMQ's name of a response code a NameServer sends.
pub fn response_name(code: i32) -> Option<&'static str> {
    RESPONSE_NAMES.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
}

/// `MQVersion.CURRENT_VERSION` ordinal of V5_3_3, stamped on every answer as Java does.
pub const VERSION_CURRENT: i32 = 479;
/// V4_9_4: route answers use the standard JSON flavour from this request version on.
pub const VERSION_STANDARD_JSON_MIN: i32 = 401;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for table in [&REQUEST_NAMES[..], &RESPONSE_NAMES[..]] {
            for (i, (code, name)) in table.iter().enumerate() {
                assert!(table[i + 1..].iter().all(|(c, n)| c != code && n != name), "{code} {name} twice");
            }
        }
        assert_eq!(request_name(GET_ROUTEINFO_BY_TOPIC), Some("GET_ROUTEINFO_BY_TOPIC"));
        assert_eq!(request_name(MERIDIAN_BROKER_LIVE_TABLE), Some("MERIDIAN_BROKER_LIVE_TABLE"));
        assert_eq!(request_name(SUCCESS), None);
        assert_eq!(response_name(TOPIC_NOT_EXIST), Some("TOPIC_NOT_EXIST"));
        assert_eq!(response_name(GET_ROUTEINFO_BY_TOPIC), None);
    }
}
