//! `Command` → answer. Lookups are served from the shard's current snapshot (pre-encoded
//! bytes, no lock); writes, KV, admin and config requests become `RouteUpdate`s for the
//! writer, whose answer is awaited. Must not: lock, block the executor, or touch the table.

use super::command::{Command, CommandError};
use super::register::Effects;
use super::reply::writer_gone;
use super::{admin, lookup, register, watch};
use crate::route::table::Unregister;
use crate::route::writer::RouteUpdate;
use crate::route::ConnId;
use crate::shard::state::ShardState;
use bytes::Bytes;
use meridian_protocol::answer::Answer;
use meridian_protocol::body;
use meridian_protocol::codes;
use meridian_protocol::header::Header;
use std::net::IpAddr;

/// `body_crc32`: the body's CRC as the `bodyCrc32` field carries it, computed by the
/// connection as the frame arrived. `peer`: the connection's remote address.
pub async fn handle(
    shard: &ShardState,
    conn: ConnId,
    peer: Option<IpAddr>,
    header: &Header,
    body: Bytes,
    body_crc32: i32,
    effects: &mut Effects,
) -> Answer {
    // Access control runs here, on the shard, before anything reaches the writer.
    if let Err(refusal) = shard.access.check(header.code, header.version, header.ext_fields.as_deref(), &body, peer) {
        shard.metrics.request_refused(refusal.reason.label());
        if shard.peer_warning_admitted() {
            tracing::warn!(code = header.code, conn = conn.0, "refused: {}", refusal.remark);
        }
        return Answer::error(codes::NO_PERMISSION, refusal.remark);
    }
    let command = match Command::parse(header) {
        Ok(c) => c,
        Err(CommandError(remark)) => {
            if shard.peer_warning_admitted() {
                tracing::warn!(code = header.code, conn = conn.0, "bad request: {remark}");
            }
            return Answer::error(codes::SYSTEM_ERROR, remark);
        }
    };
    match command {
        Command::GetRouteInfo { topic, standard_json, zone } => {
            lookup::route_info(shard, &topic, standard_json, zone.as_deref())
        }
        Command::GetBrokerClusterInfo => shard.with_snapshot(|s| Answer::ok(s.cluster_info.clone())),
        Command::RegisterBroker(h) => {
            let answer = register::register_broker(shard, conn, header.version, h, body, body_crc32, effects).await;
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
                    Answer::ok_with_ext(vec![("changed", changed.to_string())], out)
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
                Some(Ok(())) => Answer::ok(Vec::new()),
                Some(Err(refused)) => Answer::error(codes::SYSTEM_ERROR, refused.to_string()),
                None => writer_gone(),
            }
        }
        Command::Admin(command) => admin::admin(shard, command, &body).await,
        Command::WatchRoutes { hold_ms } => watch::watch_routes(shard, hold_ms, &body).await,
        Command::Unsupported(code) => {
            Answer::error(codes::REQUEST_CODE_NOT_SUPPORTED, format!(" request type {code} not supported"))
        }
    }
}
