//! `Command` → answer. Lookups are served from the shard's current snapshot (pre-encoded
//! bytes, no lock); writes become `RouteUpdate`s for the writer, whose answer is awaited.
//! Must not: lock, block the executor, or touch the route table.

use crate::command::{Command, CommandError, RegisterBrokerHeader};
use crate::protocol::body;
use crate::protocol::codes;
use crate::protocol::header::Header;
use crate::route::table::{RegisterBroker, RegisterOutcome, Unregister};
use crate::route::writer::RouteUpdate;
use crate::route::ConnId;
use crate::shard::ShardState;
use bytes::Bytes;

/// Remark Java appends to TOPIC_NOT_EXIST (FAQUrl.suggestTodo(APPLY_TOPIC_URL)).
const FAQ_SUFFIX: &str = "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";

/// One answer, before encoding.
#[derive(Debug, Default)]
pub struct Answer {
    pub code: i32,
    pub remark: Option<String>,
    /// `Some(vec![])` is written as `"extFields":{}` (Java's typed response headers).
    pub ext_fields: Option<Vec<(&'static str, String)>>,
    pub body: Bytes,
}

impl Answer {
    fn ok(body: Bytes) -> Answer {
        Answer { code: codes::SUCCESS, body, ..Answer::default() }
    }

    fn error(code: i32, remark: String) -> Answer {
        Answer { code, remark: Some(remark), ..Answer::default() }
    }
}

/// What the connection must remember after a request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Effects {
    /// The request registered a broker on this connection: its close must be reported.
    pub registered_broker: bool,
}

pub async fn handle(shard: &ShardState, conn: ConnId, header: &Header, body: Bytes, effects: &mut Effects) -> Answer {
    let command = match Command::parse(header) {
        Ok(c) => c,
        Err(CommandError(remark)) => {
            tracing::warn!(code = header.code, conn = conn.0, "bad request: {remark}");
            return Answer::error(codes::SYSTEM_ERROR, remark);
        }
    };
    match command {
        Command::GetRouteInfo { topic, standard_json } => {
            let snapshot = shard.snapshot();
            match snapshot.route(&topic) {
                Some(route) => Answer::ok(if standard_json { route.standard.clone() } else { route.legacy.clone() }),
                None => Answer::error(
                    codes::TOPIC_NOT_EXIST,
                    format!("No topic route info in name server for the topic: {topic}{FAQ_SUFFIX}"),
                ),
            }
        }
        Command::GetBrokerClusterInfo => Answer::ok(shard.snapshot().cluster_info.clone()),
        Command::RegisterBroker(h) => {
            let answer = register_broker(shard, conn, header.version, h, body).await;
            effects.registered_broker |= answer.code == codes::SUCCESS;
            answer
        }
        Command::UnregisterBroker(id) => {
            let req = Unregister {
                cluster_name: id.cluster_name,
                broker_addr: id.broker_addr,
                broker_name: id.broker_name,
                broker_id: id.broker_id,
            };
            match shard.call(|reply| RouteUpdate::UnregisterBroker { req, reply }).await {
                Some(()) => Answer::ok(Bytes::new()),
                None => writer_gone(),
            }
        }
        Command::QueryDataVersion(id) => {
            let data_version = match body::decode_data_version(&body) {
                Ok(dv) => dv,
                Err(e) => return Answer::error(codes::SYSTEM_ERROR, e.to_string()),
            };
            let call = shard.call(|reply| RouteUpdate::QueryDataVersion {
                cluster: id.cluster_name,
                addr: id.broker_addr,
                data_version,
                reply,
            });
            match call.await {
                Some((changed, stored)) => {
                    let mut out = Vec::new();
                    if let Some(dv) = stored {
                        body::encode_data_version(&mut out, &dv);
                    }
                    Answer {
                        code: codes::SUCCESS,
                        remark: None,
                        ext_fields: Some(vec![("changed", changed.to_string())]),
                        body: Bytes::from(out),
                    }
                }
                None => writer_gone(),
            }
        }
        Command::BrokerHeartbeat { cluster_name, broker_addr, .. } => {
            shard.send(RouteUpdate::BrokerHeartbeat { cluster: cluster_name, addr: broker_addr }).await;
            Answer::ok(Bytes::new())
        }
        Command::RegisterTopic { topic } => {
            let queue_datas = match body::decode_register_topic_queue_datas(&body) {
                Ok(q) => q,
                Err(e) => return Answer::error(codes::SYSTEM_ERROR, e.to_string()),
            };
            match shard.call(|reply| RouteUpdate::RegisterTopic { topic, queue_datas, reply }).await {
                Some(Ok(())) => Answer::ok(Bytes::new()),
                Some(Err(remark)) => {
                    tracing::warn!(conn = conn.0, "REGISTER_TOPIC_IN_NAMESRV refused: {remark}");
                    Answer::error(codes::SYSTEM_ERROR, remark)
                }
                None => writer_gone(),
            }
        }
        Command::Unsupported(code) => {
            Answer::error(codes::REQUEST_CODE_NOT_SUPPORTED, format!(" request type {code} not supported"))
        }
    }
}

fn writer_gone() -> Answer {
    Answer::error(codes::SYSTEM_ERROR, "route writer is not running (server shutting down)".to_string())
}

async fn register_broker(
    shard: &ShardState,
    conn: ConnId,
    version: i32,
    h: RegisterBrokerHeader,
    body: Bytes,
) -> Answer {
    if let Err(e) = body::check_body_crc32(&body, h.body_crc32) {
        tracing::warn!(broker = %h.broker_name, addr = %h.broker_addr, "REGISTER_BROKER refused: {e:?}");
        return register_error(e.to_string());
    }
    let limit = shard.config.body_decompressed_bytes_max as usize;
    let encoding = h.encoding;
    // Decoding may take tens of milliseconds; `decode` keeps it from holding up lookups.
    let decoded = shard.decode(body.len(), move || body::decode_register_body(&body, version, encoding, limit)).await;
    let decoded = match decoded {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(broker = %h.broker_name, addr = %h.broker_addr, ?encoding, "REGISTER_BROKER refused: {e}");
            return register_error(e.to_string());
        }
    };
    let req = Box::new(RegisterBroker {
        cluster_name: h.cluster_name,
        broker_addr: h.broker_addr,
        broker_name: h.broker_name,
        broker_id: h.broker_id,
        ha_server_addr: h.ha_server_addr,
        heartbeat_timeout_ms: h.heartbeat_timeout_ms,
        enable_acting_master: h.enable_acting_master,
        zone_name: h.zone_name,
        body: decoded,
    });
    match shard.call(|reply| RouteUpdate::RegisterBroker { req, conn, reply }).await {
        Some(RegisterOutcome::Accepted { master_addr, ha_server_addr }) => {
            let mut ext = Vec::new();
            if let (Some(m), Some(ha)) = (master_addr, ha_server_addr) {
                ext.push(("haServerAddr", ha));
                ext.push(("masterAddr", m));
            }
            Answer { code: codes::SUCCESS, remark: None, ext_fields: Some(ext), body: Bytes::new() }
        }
        Some(RegisterOutcome::Refused(remark)) => {
            tracing::warn!(conn = conn.0, "REGISTER_BROKER refused: {remark}");
            register_error(remark)
        }
        None => writer_gone(),
    }
}

/// Java creates the typed response header before any check, so even its REGISTER_BROKER
/// errors carry `"extFields":{}`.
fn register_error(remark: String) -> Answer {
    Answer { code: codes::SYSTEM_ERROR, remark: Some(remark), ext_fields: Some(Vec::new()), body: Bytes::new() }
}
