//! `Header` → typed `Command`: one variant per supported request code, plus `Unsupported`.
//!
//! Each command reads its own ext fields. A missing required field is an error naming the
//! field, answered with SYSTEM_ERROR and no change (Meridian's rule); a
//! malformed optional number is ignored as Java ignores it. Bodies are not decoded here:
//! heavy decoding runs later, on the receiving shard's low-priority queue. Must not mutate.

use crate::route::table::UnitList;
use meridian_protocol::body::BodyEncoding;
use meridian_protocol::codes;
use meridian_protocol::header::{parse_java_bool, Header};

/// REGISTER_BROKER (103) header fields, as Java's RegisterBrokerRequestHeader carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerHeader {
    pub broker_name: String,
    pub broker_addr: String,
    pub cluster_name: String,
    pub ha_server_addr: String,
    pub broker_id: i64,
    pub heartbeat_timeout_ms: Option<u64>,
    pub enable_acting_master: Option<bool>,
    pub encoding: BodyEncoding,
    /// 0 = no check.
    pub body_crc32: i32,
    pub zone_name: Option<String>,
}

/// The (cluster, address, name, id) quadruple several broker requests carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerIdentity {
    pub cluster_name: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `zone`: the caller's zone when it asked for zone filtering (`__ZONE_MODE=true`).
    GetRouteInfo {
        topic: String,
        standard_json: bool,
        zone: Option<String>,
    },
    RegisterBroker(RegisterBrokerHeader),
    UnregisterBroker(BrokerIdentity),
    QueryDataVersion(BrokerIdentity),
    BrokerHeartbeat {
        cluster_name: String,
        broker_addr: String,
        broker_name: String,
    },
    GetBrokerClusterInfo,
    RegisterTopic {
        topic: String,
    },
    /// KV, topic lists, admin and config requests, all answered from the writer's data.
    Admin(AdminCommand),
    /// MERIDIAN_WATCH_ROUTES (Meridian's extension; see `watch`): the watched topics are in
    /// the body, decoded by `watch`.
    WatchRoutes {
        hold_ms: HoldMs,
    },
    Unsupported(i32),
}

/// The `holdMs` ext field of a route watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldMs {
    /// Absent: hold up to `watchHoldMsMax`.
    Default,
    Millis(u64),
    /// Present but not a number of milliseconds (answered after the body is checked).
    NotANumber,
}

/// Requests the writer answers from the table, the KV config or the config it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    PutKv {
        namespace: String,
        key: String,
        value: String,
    },
    GetKv {
        namespace: String,
        key: String,
    },
    DeleteKv {
        namespace: String,
        key: String,
    },
    GetKvList {
        namespace: String,
    },
    AllTopics,
    TopicsByCluster {
        cluster: String,
    },
    SystemTopics,
    UnitTopics(UnitList),
    DeleteTopic {
        topic: String,
        cluster: Option<String>,
    },
    WritePerm {
        broker_name: String,
        wipe: bool,
    },
    MemberGroup {
        cluster: String,
        broker_name: String,
    },
    GetConfig,
    /// UPDATE_NAMESRV_CONFIG: the properties are in the body, read by `admin`.
    UpdateConfig,
    /// MERIDIAN_BROKER_LIVE_TABLE: read only, refreshes nothing.
    BrokerLiveTable,
}

/// Answered with SYSTEM_ERROR and this remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError(pub String);

/// Ext field name of Meridian's zstd extension (README: "zstd registration bodies").
pub const EXT_BODY_ENCODING: &str = "bodyEncoding";

fn required<'a>(h: &'a Header, field: &str) -> Result<&'a str, CommandError> {
    h.ext(field).ok_or_else(|| CommandError(format!("missing required header field: {field}")))
}

fn required_long(h: &Header, field: &str) -> Result<i64, CommandError> {
    let text = required(h, field)?;
    text.trim().parse().map_err(|_| CommandError(format!("invalid header field {field}: {text:?} is not a number")))
}

/// Java's lenient parse of an optional number: garbage leaves the field absent.
fn optional_long(h: &Header, field: &str) -> Option<i64> {
    h.ext(field).and_then(|t| t.trim().parse().ok())
}

fn broker_identity(h: &Header) -> Result<BrokerIdentity, CommandError> {
    Ok(BrokerIdentity {
        broker_name: required(h, "brokerName")?.to_string(),
        broker_addr: required(h, "brokerAddr")?.to_string(),
        cluster_name: required(h, "clusterName")?.to_string(),
        broker_id: required_long(h, "brokerId")?,
    })
}

impl Command {
    pub fn parse(h: &Header) -> Result<Command, CommandError> {
        Ok(match h.code {
            codes::GET_ROUTEINFO_BY_TOPIC => Command::GetRouteInfo {
                topic: required(h, "topic")?.to_string(),
                standard_json: h.version >= codes::VERSION_STANDARD_JSON_MIN
                    || h.ext("acceptStandardJsonOnly").is_some_and(parse_java_bool),
                zone: match (h.ext("__ZONE_MODE"), h.ext("__ZONE_NAME")) {
                    (Some(mode), Some(zone)) if parse_java_bool(mode) && !zone.trim().is_empty() => {
                        Some(zone.to_string())
                    }
                    _ => None,
                },
            },
            codes::REGISTER_BROKER => {
                let encoding = if h.ext(EXT_BODY_ENCODING).is_some_and(|v| v.eq_ignore_ascii_case("zstd")) {
                    BodyEncoding::Zstd
                } else if h.ext("compressed").is_some_and(parse_java_bool) {
                    BodyEncoding::Compressed
                } else {
                    BodyEncoding::Json
                };
                Command::RegisterBroker(RegisterBrokerHeader {
                    broker_name: required(h, "brokerName")?.to_string(),
                    broker_addr: required(h, "brokerAddr")?.to_string(),
                    cluster_name: required(h, "clusterName")?.to_string(),
                    ha_server_addr: required(h, "haServerAddr")?.to_string(),
                    broker_id: required_long(h, "brokerId")?,
                    heartbeat_timeout_ms: optional_long(h, "heartbeatTimeoutMillis")
                        .and_then(|v| u64::try_from(v).ok()),
                    enable_acting_master: h.ext("enableActingMaster").map(parse_java_bool),
                    encoding,
                    body_crc32: optional_long(h, "bodyCrc32").map(|v| v as i32).unwrap_or(0),
                    zone_name: h.ext("__ZONE_NAME").map(str::to_string),
                })
            }
            codes::UNREGISTER_BROKER => Command::UnregisterBroker(broker_identity(h)?),
            codes::QUERY_DATA_VERSION => Command::QueryDataVersion(broker_identity(h)?),
            codes::BROKER_HEARTBEAT => Command::BrokerHeartbeat {
                cluster_name: required(h, "clusterName")?.to_string(),
                broker_addr: required(h, "brokerAddr")?.to_string(),
                broker_name: required(h, "brokerName")?.to_string(),
            },
            codes::GET_BROKER_CLUSTER_INFO => Command::GetBrokerClusterInfo,
            codes::REGISTER_TOPIC_IN_NAMESRV => Command::RegisterTopic { topic: required(h, "topic")?.to_string() },
            codes::MERIDIAN_WATCH_ROUTES => Command::WatchRoutes {
                hold_ms: match h.ext("holdMs").map(|v| v.trim().parse::<u64>()) {
                    None => HoldMs::Default,
                    Some(Ok(ms)) => HoldMs::Millis(ms),
                    Some(Err(_)) => HoldMs::NotANumber,
                },
            },
            other => match AdminCommand::parse(h)? {
                Some(admin) => Command::Admin(admin),
                None => Command::Unsupported(other),
            },
        })
    }
}

impl AdminCommand {
    /// The KV, topic-list, admin and config requests; `None` for any other code.
    fn parse(h: &Header) -> Result<Option<AdminCommand>, CommandError> {
        Ok(Some(match h.code {
            codes::PUT_KV_CONFIG => {
                // Java checks these two itself, with this remark (golden seq 27).
                let (Some(namespace), Some(key)) = (h.ext("namespace"), h.ext("key")) else {
                    return Err(CommandError("namespace or key is null".into()));
                };
                AdminCommand::PutKv {
                    namespace: namespace.to_string(),
                    key: key.to_string(),
                    value: required(h, "value")?.to_string(),
                }
            }
            codes::GET_KV_CONFIG => AdminCommand::GetKv {
                namespace: required(h, "namespace")?.to_string(),
                key: required(h, "key")?.to_string(),
            },
            codes::DELETE_KV_CONFIG => AdminCommand::DeleteKv {
                namespace: required(h, "namespace")?.to_string(),
                key: required(h, "key")?.to_string(),
            },
            codes::GET_KVLIST_BY_NAMESPACE => {
                AdminCommand::GetKvList { namespace: required(h, "namespace")?.to_string() }
            }
            codes::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => AdminCommand::AllTopics,
            codes::MERIDIAN_BROKER_LIVE_TABLE => AdminCommand::BrokerLiveTable,
            codes::GET_TOPICS_BY_CLUSTER => {
                AdminCommand::TopicsByCluster { cluster: required(h, "cluster")?.to_string() }
            }
            codes::GET_SYSTEM_TOPIC_LIST_FROM_NS => AdminCommand::SystemTopics,
            codes::GET_UNIT_TOPIC_LIST => AdminCommand::UnitTopics(UnitList::Unit),
            codes::GET_HAS_UNIT_SUB_TOPIC_LIST => AdminCommand::UnitTopics(UnitList::HasUnitSub),
            codes::GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST => AdminCommand::UnitTopics(UnitList::HasUnitSubNotUnit),
            codes::DELETE_TOPIC_IN_NAMESRV => AdminCommand::DeleteTopic {
                topic: required(h, "topic")?.to_string(),
                cluster: h.ext("clusterName").map(str::to_string),
            },
            codes::WIPE_WRITE_PERM_OF_BROKER => {
                AdminCommand::WritePerm { broker_name: required(h, "brokerName")?.to_string(), wipe: true }
            }
            codes::ADD_WRITE_PERM_OF_BROKER => {
                AdminCommand::WritePerm { broker_name: required(h, "brokerName")?.to_string(), wipe: false }
            }
            codes::GET_BROKER_MEMBER_GROUP => AdminCommand::MemberGroup {
                cluster: required(h, "clusterName")?.to_string(),
                broker_name: required(h, "brokerName")?.to_string(),
            },
            codes::GET_NAMESRV_CONFIG => AdminCommand::GetConfig,
            codes::UPDATE_NAMESRV_CONFIG => AdminCommand::UpdateConfig,
            _ => return Ok(None),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(code: i32, version: i32, ext: &[(&str, &str)]) -> Header {
        Header {
            code,
            version,
            ext_fields: Some(ext.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Header::default()
        }
    }

    fn check(h: Header, expected: Result<Command, CommandError>) {
        assert_eq!(Command::parse(&h), expected);
    }

    #[test]
    fn route_flavour_follows_version_and_flag() {
        let cmd = |v, ext: &[(&str, &str)]| Command::parse(&header(105, v, ext)).unwrap();
        let route = |standard_json, zone: Option<&str>| Command::GetRouteInfo {
            topic: "T".into(),
            standard_json,
            zone: zone.map(str::to_string),
        };
        assert_eq!(cmd(401, &[("topic", "T")]), route(true, None));
        assert_eq!(cmd(400, &[("topic", "T")]), route(false, None));
        assert_eq!(cmd(400, &[("topic", "T"), ("acceptStandardJsonOnly", "TRUE")]), route(true, None));
        assert_eq!(
            cmd(479, &[("topic", "T"), ("__ZONE_MODE", "true"), ("__ZONE_NAME", "z1")]),
            route(true, Some("z1"))
        );
        assert_eq!(cmd(479, &[("topic", "T"), ("__ZONE_MODE", "true"), ("__ZONE_NAME", " ")]), route(true, None));
        assert_eq!(cmd(479, &[("topic", "T"), ("__ZONE_MODE", "false"), ("__ZONE_NAME", "z1")]), route(true, None));
    }

    #[test]
    fn missing_required_fields_are_named() {
        check(header(105, 479, &[]), Err(CommandError("missing required header field: topic".into())));
        check(
            header(103, 479, &[("brokerName", "b"), ("brokerAddr", "a"), ("haServerAddr", "h"), ("brokerId", "0")]),
            Err(CommandError("missing required header field: clusterName".into())),
        );
        check(
            header(104, 479, &[("brokerName", "b"), ("brokerAddr", "a"), ("clusterName", "c"), ("brokerId", "x")]),
            Err(CommandError("invalid header field brokerId: \"x\" is not a number".into())),
        );
        // No extFields at all.
        check(
            Header { code: 217, ..Header::default() },
            Err(CommandError("missing required header field: topic".into())),
        );
    }

    #[test]
    fn register_header_reads_every_field() {
        let h = header(
            103,
            479,
            &[
                ("brokerName", "b"),
                ("brokerAddr", "1.1.1.1:10911"),
                ("clusterName", "c"),
                ("haServerAddr", ""),
                ("brokerId", "1"),
                ("heartbeatTimeoutMillis", "10000"),
                ("enableActingMaster", "true"),
                ("compressed", "true"),
                ("bodyCrc32", "abc"),
                ("__ZONE_NAME", "z1"),
            ],
        );
        check(
            h,
            Ok(Command::RegisterBroker(RegisterBrokerHeader {
                broker_name: "b".into(),
                broker_addr: "1.1.1.1:10911".into(),
                cluster_name: "c".into(),
                ha_server_addr: String::new(),
                broker_id: 1,
                heartbeat_timeout_ms: Some(10_000),
                enable_acting_master: Some(true),
                encoding: BodyEncoding::Compressed,
                body_crc32: 0,
                zone_name: Some("z1".into()),
            })),
        );
    }

    #[test]
    fn put_kv_config_uses_javas_remark_for_namespace_and_key() {
        check(
            header(100, 479, &[("namespace", "n"), ("value", "v")]),
            Err(CommandError("namespace or key is null".into())),
        );
        check(
            header(100, 479, &[("namespace", "n"), ("key", "k")]),
            Err(CommandError("missing required header field: value".into())),
        );
        check(
            header(216, 479, &[("topic", "t"), ("clusterName", "c")]),
            Ok(Command::Admin(AdminCommand::DeleteTopic { topic: "t".into(), cluster: Some("c".into()) })),
        );
    }

    #[test]
    fn unknown_codes_are_unsupported() {
        check(header(9999, 479, &[]), Ok(Command::Unsupported(9999)));
        check(header(215, 479, &[("topic", "t")]), Ok(Command::Unsupported(215)));
    }
}
