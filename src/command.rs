//! `Header` → typed `Command`: one variant per supported request code, plus `Unsupported`.
//!
//! Each command reads its own ext fields. A missing required field is an error naming the
//! field, answered with SYSTEM_ERROR and no change (Meridian's rule, requests.md §0); a
//! malformed optional number is ignored as Java ignores it. Bodies are not decoded here:
//! heavy decoding runs later, on the receiving shard's low-priority queue. Must not mutate.

use crate::protocol::body::BodyEncoding;
use crate::protocol::codes;
use crate::protocol::header::{parse_java_bool, Header};

/// REGISTER_BROKER header fields (requests.md §2, 103).
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
    GetRouteInfo { topic: String, standard_json: bool },
    RegisterBroker(RegisterBrokerHeader),
    UnregisterBroker(BrokerIdentity),
    QueryDataVersion(BrokerIdentity),
    BrokerHeartbeat { cluster_name: String, broker_addr: String, broker_name: String },
    GetBrokerClusterInfo,
    RegisterTopic { topic: String },
    Unsupported(i32),
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
            other => Command::Unsupported(other),
        })
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
        assert_eq!(cmd(401, &[("topic", "T")]), Command::GetRouteInfo { topic: "T".into(), standard_json: true });
        assert_eq!(cmd(400, &[("topic", "T")]), Command::GetRouteInfo { topic: "T".into(), standard_json: false });
        assert_eq!(
            cmd(400, &[("topic", "T"), ("acceptStandardJsonOnly", "TRUE")]),
            Command::GetRouteInfo { topic: "T".into(), standard_json: true }
        );
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
    fn unknown_codes_are_unsupported() {
        check(header(9999, 479, &[]), Ok(Command::Unsupported(9999)));
        check(header(215, 479, &[("topic", "t")]), Ok(Command::Unsupported(215)));
    }
}
