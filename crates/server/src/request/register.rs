//! REGISTER_BROKER on the receiving shard: the body CRC check, the re-send fast path (a
//! body seen before on this connection is not decoded again), decoding off the lookup
//! path, then the writer call and the reply. Must not: touch the table.

use super::command::RegisterBrokerHeader;
use super::dispatch::{writer_gone, Effects};
use crate::route::table::RegisterBroker;
use crate::route::writer::RouteUpdate;
use crate::route::ConnId;
use crate::shard::state::ShardState;
use bytes::Bytes;
use meridian_protocol::answer::Answer;
use meridian_protocol::body::{self, DataVersion, RegisterBrokerBody};
use meridian_protocol::codes;
use std::time::Instant;

/// Registrations remembered per connection for the re-send fast path; a broker sending its
/// topics in several chunks (split registration) re-sends each of them.
pub const RECENT_REGISTRATIONS_MAX: usize = 8;

/// A registration applied from its full body, identified by header and body fingerprint.
/// Brokers re-send the same bytes every 30 s while their topics do not change.
#[derive(Debug)]
pub(super) struct RecentRegistration {
    version: i32,
    header: RegisterBrokerHeader,
    body_bytes: usize,
    body_crc32: i32,
    data_version: DataVersion,
    filter_server_list: Option<Vec<String>>,
}

pub async fn register_broker(
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
