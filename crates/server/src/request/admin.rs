//! KV, topic-list, admin and config requests: turned into the writer's `AdminRequest`, and
//! its `AdminResult` data into the answer Java's DefaultRequestProcessor gives (codes,
//! remarks, ext fields, bodies). Must not: touch the table or the KV config itself.

use super::command::AdminCommand;
use super::reply::writer_gone;
use crate::route::writer::{AdminRequest, AdminResult, LiveBroker, RouteUpdate};
use crate::shard::state::ShardState;
use bytes::Bytes;
use meridian_protocol::answer::Answer;
use meridian_protocol::body;
use meridian_protocol::codes;

pub async fn admin(shard: &ShardState, command: AdminCommand, body: &Bytes) -> Answer {
    // Admin requests are rare: the clone keeps the names the answer quotes.
    let request = match request(command.clone(), body) {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    match shard.call(|reply| RouteUpdate::Admin { request, reply }).await {
        Some(result) => answer(&command, result),
        None => writer_gone(),
    }
}

/// The answer to `command` from what the writer did.
fn answer(command: &AdminCommand, result: AdminResult) -> Answer {
    match result {
        AdminResult::Done => Answer::ok(Vec::new()),
        AdminResult::NotPersisted(e) => Answer::error(codes::SYSTEM_ERROR, e.to_string()),
        AdminResult::KvValue(Some(v)) => Answer::ok_with_ext(vec![("value", v)], Vec::new()),
        AdminResult::KvValue(None) => {
            let (namespace, key) = match command {
                AdminCommand::GetKv { namespace, key } => (namespace.as_str(), key.as_str()),
                _ => ("", ""),
            };
            Answer::error_with_empty_ext(
                codes::QUERY_NOT_FOUND,
                format!("No config item, Namespace: {namespace} Key: {key}"),
            )
        }
        AdminResult::KvList(Some(entries)) => {
            let entries: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut out = Vec::new();
            body::encode_kv_table(&mut out, &entries);
            Answer::ok(out)
        }
        AdminResult::KvList(None) => {
            let namespace = match command {
                AdminCommand::GetKvList { namespace } => namespace.as_str(),
                _ => "",
            };
            Answer::error(codes::QUERY_NOT_FOUND, format!("No config item, Namespace: {namespace}"))
        }
        AdminResult::Topics { topics, broker_addr } => {
            let mut out = Vec::new();
            body::encode_topic_list(&mut out, topics.iter().map(String::as_str), broker_addr.as_deref());
            Answer::ok(out)
        }
        AdminResult::ListingDisabled => Answer::error(codes::SYSTEM_ERROR, "disable"),
        AdminResult::WritePermChanged(count) => {
            let wipe = matches!(command, AdminCommand::WritePerm { wipe: true, .. });
            let key = if wipe { "wipeTopicCount" } else { "addTopicCount" };
            Answer::ok_with_ext(vec![(key, count.to_string())], Vec::new())
        }
        AdminResult::MemberGroup(addrs) => {
            let (cluster, broker_name) = match command {
                AdminCommand::MemberGroup { cluster, broker_name } => (cluster.as_str(), broker_name.as_str()),
                _ => ("", ""),
            };
            let mut out = Vec::new();
            body::encode_broker_member_group(&mut out, cluster, broker_name, &addrs);
            // Java answers SUCCESS but leaves the default remark of its response object.
            Answer {
                code: codes::SUCCESS,
                remark: Some("not set any response code".into()),
                ext_fields: None,
                body: out.into(),
            }
        }
        AdminResult::Config(properties) => {
            let mut out = String::new();
            for (k, v) in properties {
                out.push_str(&k);
                out.push('=');
                out.push_str(&v);
                out.push('\n');
            }
            Answer::ok(out.into_bytes())
        }
        AdminResult::ConfigBlackListed => Answer::error(codes::NO_PERMISSION, "Can not update config in black list."),
        AdminResult::ConfigInvalid(e) => Answer::error(codes::SYSTEM_ERROR, e.to_string()),
        AdminResult::ConfigKeyNotRemote(key) => Answer::error(
            codes::NO_PERMISSION,
            format!("Can not update config key {key} remotely: it is not in remoteConfigUpdateKeys"),
        ),
        AdminResult::KvLimit(why) => Answer::error(codes::SYSTEM_ERROR, why),
        AdminResult::BrokerLiveTable(rows) => Answer::ok(live_table_json(&rows)),
    }
}

/// The writer's request; `Err` is answered without asking the writer (an empty or
/// unreadable UPDATE_NAMESRV_CONFIG body, as Java's updateConfig answers it).
fn request(command: AdminCommand, body: &Bytes) -> Result<AdminRequest, Answer> {
    Ok(match command {
        AdminCommand::PutKv { namespace, key, value } => AdminRequest::PutKv { namespace, key, value },
        AdminCommand::GetKv { namespace, key } => AdminRequest::GetKv { namespace, key },
        AdminCommand::DeleteKv { namespace, key } => AdminRequest::DeleteKv { namespace, key },
        AdminCommand::GetKvList { namespace } => AdminRequest::GetKvList { namespace },
        AdminCommand::AllTopics => AdminRequest::AllTopics,
        AdminCommand::TopicsByCluster { cluster } => AdminRequest::TopicsByCluster { cluster },
        AdminCommand::SystemTopics => AdminRequest::SystemTopics,
        AdminCommand::UnitTopics(which) => AdminRequest::UnitTopics(which),
        AdminCommand::DeleteTopic { topic, cluster } => AdminRequest::DeleteTopic { topic, cluster },
        AdminCommand::WritePerm { broker_name, wipe } => AdminRequest::WritePerm { broker_name, wipe },
        AdminCommand::MemberGroup { broker_name, .. } => AdminRequest::MemberGroup { broker_name },
        AdminCommand::GetConfig => AdminRequest::GetConfig,
        AdminCommand::BrokerLiveTable => AdminRequest::BrokerLiveTable,
        AdminCommand::UpdateConfig => {
            if body.is_empty() {
                return Err(Answer::ok(Vec::new()));
            }
            let Ok(props) = java_properties::read(&body[..]) else {
                return Err(Answer::error(codes::SYSTEM_ERROR, "string2Properties error"));
            };
            let mut properties: Vec<(String, String)> = props.into_iter().collect();
            properties.sort();
            AdminRequest::UpdateConfig { properties }
        }
    })
}

/// MERIDIAN_BROKER_LIVE_TABLE body: `{"brokers":[{cluster, brokerName, brokerId, addr,
/// dataVersion, silentMs, timeoutMs, provisional}]}`, in the writer's order.
fn live_table_json(rows: &[LiveBroker]) -> Vec<u8> {
    let brokers: Vec<serde_json::Value> = rows
        .iter()
        .map(|live| {
            serde_json::json!({
                "cluster": live.cluster,
                "brokerName": live.broker_name,
                "brokerId": live.broker_id,
                "addr": live.addr,
                "dataVersion": {
                    "counter": live.data_version.counter,
                    "stateVersion": live.data_version.state_version,
                    "timestamp": live.data_version.timestamp,
                },
                "silentMs": live.silent_ms,
                "timeoutMs": live.timeout_ms,
                "provisional": live.provisional,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "brokers": brokers })).expect("JSON of plain values")
}
