//! `Command` → answer. Lookups are served from the shard's current snapshot (pre-encoded
//! bytes, no lock); writes, KV, admin and config requests become `RouteUpdate`s for the
//! writer, whose answer is awaited. Must not: lock, block the executor, or touch the table.

use crate::command::{Command, CommandError, RegisterBrokerHeader};
use crate::route::snapshot::RouteSnapshot;
use crate::route::table::{RegisterBroker, Unregister};
use crate::route::writer::{AdminRequest, RouteUpdate};
use crate::route::ConnId;
use crate::shard::ShardState;
use bytes::Bytes;
use meridian_protocol::answer::Answer;
use meridian_protocol::body::{self, DataVersion, JsonFlavour, RegisterBrokerBody};
use meridian_protocol::codes;
use meridian_protocol::header::Header;
use std::time::Instant;

/// Remark Java appends to TOPIC_NOT_EXIST (FAQUrl.suggestTodo(APPLY_TOPIC_URL)).
const FAQ_SUFFIX: &str = "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";

/// Registrations remembered per connection for the re-send fast path; a broker sending its
/// topics in several chunks (split registration) re-sends each of them.
pub const RECENT_REGISTRATIONS_MAX: usize = 8;

/// What the connection must remember after a request.
#[derive(Debug, Default)]
pub struct Effects {
    /// The request registered a broker on this connection: its close must be reported.
    pub registered_broker: bool,
    /// Recently applied full registrations, newest last (at most RECENT_REGISTRATIONS_MAX).
    recent_registrations: Vec<RecentRegistration>,
}

/// A registration applied from its full body, identified by header and body fingerprint.
/// Brokers re-send the same bytes every 30 s while their topics do not change.
#[derive(Debug)]
struct RecentRegistration {
    version: i32,
    header: RegisterBrokerHeader,
    body_bytes: usize,
    body_crc32: i32,
    data_version: DataVersion,
    filter_server_list: Option<Vec<String>>,
}

/// `body_crc32`: the body's CRC as the `bodyCrc32` field carries it, computed by the
/// connection as the frame arrived.
pub async fn handle(
    shard: &ShardState,
    conn: ConnId,
    header: &Header,
    body: Bytes,
    body_crc32: i32,
    effects: &mut Effects,
) -> Answer {
    if header.code == codes::MERIDIAN_WATCH_ROUTES {
        return crate::watch::watch_routes(shard, header, &body).await;
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
            route_info(shard, &topic, standard_json, zone.as_deref())
        }
        Command::GetBrokerClusterInfo => shard.with_snapshot(|s| Answer::ok(s.cluster_info.clone())),
        Command::RegisterBroker(h) => {
            let answer = register_broker(shard, conn, header.version, h, body, body_crc32, effects).await;
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
            shard
                .call(|reply| RouteUpdate::RegisterTopic { topic, queue_datas, reply })
                .await
                .unwrap_or_else(writer_gone)
        }
        Command::Admin(request) => {
            let request = match request {
                AdminRequest::UpdateConfig { .. } => AdminRequest::UpdateConfig { body: body.to_vec() },
                other => other,
            };
            shard.call(|reply| RouteUpdate::Admin { request, reply }).await.unwrap_or_else(writer_gone)
        }
        Command::Unsupported(code) => {
            Answer::error(codes::REQUEST_CODE_NOT_SUPPORTED, format!(" request type {code} not supported"))
        }
    }
}

/// GET_ROUTEINFO_BY_TOPIC from the shard's snapshot (behaviour.md §7).
fn route_info(shard: &ShardState, topic: &str, standard_json: bool, zone: Option<&str>) -> Answer {
    shard.with_snapshot(|snapshot| route_answer(snapshot, topic, standard_json, zone))
}

fn route_answer(snapshot: &RouteSnapshot, topic: &str, standard_json: bool, zone: Option<&str>) -> Answer {
    if snapshot.not_ready_until.is_some_and(|until| Instant::now() < until) {
        return Answer::error(codes::SYSTEM_ERROR, "name server not ready");
    }
    let Some(route) = snapshot.route(topic) else {
        return Answer::error(
            codes::TOPIC_NOT_EXIST,
            format!("No topic route info in name server for the topic: {topic}{FAQ_SUFFIX}"),
        );
    };
    if let Some(zone) = zone {
        // Java filters after encoding and re-encodes in the legacy flavour, whatever the version.
        let mut out = Vec::with_capacity(512);
        route.model.zone_filtered(zone).encode(&mut out, JsonFlavour::Legacy);
        return Answer::ok(out);
    }
    let flavour = if standard_json { JsonFlavour::Standard } else { JsonFlavour::Legacy };
    Answer::ok(route.encoded(flavour).clone())
}

fn writer_gone() -> Answer {
    Answer::error(codes::SYSTEM_ERROR, "route writer is not running (server shutting down)")
}

async fn register_broker(
    shard: &ShardState,
    conn: ConnId,
    version: i32,
    h: RegisterBrokerHeader,
    body: Bytes,
    body_crc32: i32,
    effects: &mut Effects,
) -> Answer {
    let started = Instant::now();
    let body_bytes = body.len();
    // The connection's one CRC pass serves the bodyCrc32 check and the re-send fingerprint.
    if h.body_crc32 != 0 && body_crc32 != h.body_crc32 {
        let e = body::BodyError::Crc32Mismatch { crc32_expected: h.body_crc32, crc32_actual: body_crc32 };
        if shard.peer_warning_admitted() {
            tracing::warn!(broker = %h.broker_name, addr = %h.broker_addr, "REGISTER_BROKER refused: {e:?}");
        }
        return Answer::error_with_empty_ext(codes::SYSTEM_ERROR, e.to_string());
    }
    // Length and CRC of the bytes: what the table remembers of the body it applied last.
    let fingerprint = ((body_bytes as u64) << 32) | u64::from(body_crc32 as u32);
    let same = |r: &RecentRegistration| {
        r.body_bytes == body_bytes && r.body_crc32 == body_crc32 && r.version == version && r.header == h
    };
    if let Some(recent) = effects.recent_registrations.iter().find(|r| same(r)) {
        // The same bytes as a registration applied before: its topics are not read again.
        // The writer still checks that this leaves the table as the full body would.
        let unread = RegisterBrokerBody {
            data_version: recent.data_version,
            topic_configs: Vec::new(),
            filter_server_list: recent.filter_server_list.clone(),
            topic_queue_mapping_infos: Vec::new(),
        };
        let req = Box::new(register_request(&h, unread, true, fingerprint));
        match shard.call(|reply| RouteUpdate::RegisterBroker { req, conn, reply }).await {
            Some(Some(answer)) => {
                shard.metrics.registration_unread();
                tracing::debug!(
                    conn = conn.0,
                    body_bytes,
                    us = started.elapsed().as_micros() as u64,
                    "REGISTER_BROKER re-send answered unread"
                );
                return answer;
            }
            Some(None) => {} // the table changed meanwhile: read the body
            None => return writer_gone(),
        }
    }
    let limit = shard.config.body_decompressed_bytes_max as usize;
    let encoding = h.encoding;
    // Decoding may take tens of milliseconds; `decode` keeps it from holding up lookups.
    let decode_started = Instant::now();
    let decoded = shard.decode(body.len(), move || body::decode_register_body(&body, version, encoding, limit)).await;
    let decoded = match decoded {
        Ok(b) => {
            shard.metrics.registration_decoded(body_bytes, decode_started.elapsed());
            b
        }
        Err(e) => {
            if shard.peer_warning_admitted() {
                tracing::warn!(broker = %h.broker_name, addr = %h.broker_addr, ?encoding, "REGISTER_BROKER refused: {e}");
            }
            return Answer::error_with_empty_ext(codes::SYSTEM_ERROR, e.to_string());
        }
    };
    let decoded_at = Instant::now();
    let topics = decoded.topic_configs.len();
    let data_version = decoded.data_version;
    let filter_server_list = decoded.filter_server_list.clone();
    let req = Box::new(register_request(&h, decoded, false, fingerprint));
    let answer = match shard.call(|reply| RouteUpdate::RegisterBroker { req, conn, reply }).await {
        Some(Some(answer)) => answer,
        Some(None) => unreachable!("a full body is never sent back for reading"),
        None => writer_gone(),
    };
    if answer.code == codes::SUCCESS {
        effects.recent_registrations.retain(|r| !same(r));
        if effects.recent_registrations.len() >= RECENT_REGISTRATIONS_MAX {
            effects.recent_registrations.remove(0);
        }
        effects.recent_registrations.push(RecentRegistration {
            version,
            header: h,
            body_bytes,
            body_crc32,
            data_version,
            filter_server_list,
        });
    }
    tracing::debug!(
        conn = conn.0,
        body_bytes,
        topics,
        decode_us = (decoded_at - started).as_micros() as u64,
        apply_us = decoded_at.elapsed().as_micros() as u64,
        "REGISTER_BROKER answered"
    );
    answer
}

fn register_request(
    h: &RegisterBrokerHeader,
    body: RegisterBrokerBody,
    topics_unchanged: bool,
    body_fingerprint: u64,
) -> RegisterBroker {
    RegisterBroker {
        cluster_name: h.cluster_name.clone(),
        broker_addr: h.broker_addr.clone(),
        broker_name: h.broker_name.clone(),
        broker_id: h.broker_id,
        ha_server_addr: h.ha_server_addr.clone(),
        heartbeat_timeout_ms: h.heartbeat_timeout_ms,
        enable_acting_master: h.enable_acting_master,
        zone_name: h.zone_name.clone(),
        body,
        topics_unchanged,
        body_fingerprint,
    }
}
