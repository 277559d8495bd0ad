//! REGISTER_BROKER on the receiving shard: the body CRC check, the re-send fast path (a
//! body seen before on this connection is not decoded again), the registration's charge to
//! the process-wide memory budget, decoding off the lookup path, then the writer call and
//! the reply. Must not: touch the table.

use super::command::RegisterBrokerHeader;
use super::reply::writer_gone;
use crate::budget::Metered;
use crate::route::table::{Delta, RegisterBroker};
use crate::route::writer::{RegisterReply, RegisterResult, RouteUpdate};
use crate::route::ConnId;
use crate::shard::state::ShardState;
use bytes::Bytes;
use meridian_protocol::answer::Answer;
use meridian_protocol::body::{
    self, BodyEncoding, DataVersion, DecodeStages, Decoded, MemberPrints, Prints, RegisterBrokerBody,
};
use meridian_protocol::codes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Registrations remembered per connection for the re-send fast path; a broker sending its
/// topics in several chunks (split registration) re-sends each of them.
pub const RECENT_REGISTRATIONS_MAX: usize = 8;
/// How long a registration may wait for room in the memory budget before it is refused
/// (others give bytes back as they finish or are refused). Well within a broker's
/// registration timeout, so a refusal still reaches it.
const BUDGET_WAIT: Duration = Duration::from_secs(5);

/// What a connection must remember after its requests: whether a broker registered on it,
/// and the registrations it sent recently (for the re-send fast path).
#[derive(Debug, Default)]
pub struct Effects {
    /// The request registered a broker on this connection: its close must be reported.
    pub registered_broker: bool,
    /// Recently applied full registrations, newest last (at most RECENT_REGISTRATIONS_MAX).
    recent_registrations: Vec<RecentRegistration>,
    /// The member fingerprints of the last large body applied in full on this connection.
    kept_prints: Option<KeptPrints>,
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
    // The connection's one CRC pass, made as the bytes arrived, serves the bodyCrc32 check
    // and the re-send fingerprint: the body is never hashed twice.
    if let Err(e) = body::check_body_crc32(h.body_crc32, body_crc32) {
        if shard.peer_warning_admitted() {
            tracing::warn!(broker = %h.broker_name, addr = %h.broker_addr, "REGISTER_BROKER refused: {e:?}");
        }
        return Answer::error_with_empty_ext(codes::SYSTEM_ERROR, e.to_string());
    }
    let seen = Seen { version, body_bytes: body.len(), body_crc32 };
    if let Some(recent) = effects.recent_registrations.iter().find(|r| seen.matches(r, &h)) {
        let unread = RegisterBrokerBody {
            data_version: recent.data_version,
            topic_configs: Default::default(),
            filter_server_list: recent.filter_server_list.clone(),
            topic_queue_mapping_infos: Vec::new(),
        };
        let req = Box::new(register_request(&h, unread, true, seen.fingerprint()));
        match shard.call(|reply| RouteUpdate::RegisterBroker { req, conn, reply }).await {
            Some(RegisterReply::Applied(result)) => {
                shard.metrics.registration_unread();
                tracing::debug!(
                    conn = conn.0,
                    body_bytes = seen.body_bytes,
                    us = started.elapsed().as_micros() as u64,
                    "REGISTER_BROKER re-send answered unread"
                );
                return register_answer(result);
            }
            // The table changed meanwhile: read the body.
            Some(RegisterReply::NeedFullBody) => {}
            None => return writer_gone(),
        }
    }
    register_full(shard, conn, h, body, seen, effects, started).await
}

/// The bytes a registration arrived as: what identifies a re-send.
#[derive(Clone, Copy)]
struct Seen {
    version: i32,
    body_bytes: usize,
    body_crc32: i32,
}

impl Seen {
    /// The same bytes as a registration applied before: its topics are not read again (the
    /// writer still checks that this leaves the table as the full body would).
    fn matches(&self, r: &RecentRegistration, h: &RegisterBrokerHeader) -> bool {
        r.body_bytes == self.body_bytes
            && r.body_crc32 == self.body_crc32
            && r.version == self.version
            && r.header == *h
    }

    /// Length and CRC of the bytes: what the table remembers of the body it applied last.
    fn fingerprint(&self) -> u64 {
        ((self.body_bytes as u64) << 32) | u64::from(self.body_crc32 as u32)
    }
}

/// Decodes the body (off the lookup path) and has the writer apply it. A large JSON body
/// from the broker whose last body's member fingerprints this connection kept is read as
/// a delta against it (`route::table::delta`); if the writer cannot apply that, the body
/// is decoded in full.
async fn register_full(
    shard: &ShardState,
    conn: ConnId,
    h: RegisterBrokerHeader,
    body: Bytes,
    seen: Seen,
    effects: &mut Effects,
    started: Instant,
) -> Answer {
    // Only a master's list takes deltas (a slave writes topics only while standing in for
    // an absent master; its bodies are read in full).
    let printed = body.len() >= RESEND_PRINTS_BODY_BYTES_MIN
        && h.encoding != BodyEncoding::Compressed
        && h.broker_id == body::MASTER_ID;
    let base = effects.kept_prints.take().filter(|kept| printed && same_broker(&kept.header, &h));
    let decode_started = Instant::now();
    let (mut outcome, kept_body) = match base.as_ref() {
        // The frame is kept (and stays charged) for a second decode if the delta is refused.
        Some(kept) => {
            let against = Some((kept.token, kept.prints.clone()));
            (decode_and_apply(shard, conn, &h, body.clone(), seen, printed, against).await, Some(body))
        }
        None => (decode_and_apply(shard, conn, &h, body, seen, printed, None).await, None),
    };
    if let (Ok(applied), Some(body)) = (&outcome, kept_body) {
        if applied.reply.is_none() && !applied.writer_gone {
            // The table's list no longer follows the kept body: decode it all.
            outcome = decode_and_apply(shard, conn, &h, body, seen, printed, None).await;
        }
    }
    let outcome = match outcome {
        Ok(applied) if applied.writer_gone => return writer_gone(),
        Ok(applied) => applied,
        Err(answer) => return answer,
    };
    let answer = match outcome.reply {
        Some(RegisterReply::Applied(result)) => register_answer(result),
        Some(RegisterReply::NeedFullBody) | None => {
            // The table asks for the body only of a registration sent without its topics.
            tracing::error!(conn = conn.0, "route writer asked for the full body of a full REGISTER_BROKER");
            Answer::error_with_empty_ext(codes::SYSTEM_ERROR, "registration not applied: internal error")
        }
    };
    if answer.code == codes::SUCCESS {
        effects.recent_registrations.retain(|r| !seen.matches(r, &h));
        if effects.recent_registrations.len() >= RECENT_REGISTRATIONS_MAX {
            effects.recent_registrations.remove(0);
        }
        effects.kept_prints = outcome.prints.map(|(token, prints)| KeptPrints { header: h.clone(), token, prints });
        effects.recent_registrations.push(RecentRegistration {
            version: seen.version,
            header: h,
            body_bytes: seen.body_bytes,
            body_crc32: seen.body_crc32,
            data_version: outcome.data_version,
            filter_server_list: outcome.filter_server_list,
        });
    }
    tracing::debug!(
        conn = conn.0,
        body_bytes = seen.body_bytes,
        topics = outcome.topics,
        changed = outcome.changed,
        delta = outcome.delta,
        decode_us = (outcome.decoded_at - decode_started).as_micros() as u64,
        apply_us = outcome.decoded_at.elapsed().as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        "REGISTER_BROKER answered"
    );
    answer
}

/// Bodies from this size on have their topic-table members fingerprinted (12 bytes per
/// topic, kept by the connection until its next registration) so that the next one is
/// read as a delta: about 5k topics, below which a full decode takes under a millisecond.
pub const RESEND_PRINTS_BODY_BYTES_MIN: usize = 1 << 20;

/// The member fingerprints of the last body a connection's broker registered in full.
#[derive(Debug)]
pub struct KeptPrints {
    header: RegisterBrokerHeader,
    /// `MemberPrints::token`: what the table's list remembers of the body.
    token: u64,
    prints: Arc<MemberPrints>,
}

/// What `decode_and_apply` did. `reply` is `None` when the writer refused a delta.
struct Applied {
    reply: Option<RegisterReply>,
    writer_gone: bool,
    prints: Option<(u64, Arc<MemberPrints>)>,
    data_version: DataVersion,
    filter_server_list: Option<Vec<String>>,
    topics: usize,
    changed: usize,
    delta: bool,
    decoded_at: Instant,
}

/// One decode of the body (as a delta against `against`, if given and the scanner reads
/// it) and the writer's answer. `Err` is the answer to send for a body that does not decode.
async fn decode_and_apply(
    shard: &ShardState,
    conn: ConnId,
    h: &RegisterBrokerHeader,
    body: Bytes,
    seen: Seen,
    printed: bool,
    against: Option<(u64, Arc<MemberPrints>)>,
) -> Result<Applied, Answer> {
    let decode_started = Instant::now();
    let base = against.as_ref().map(|(token, _)| *token);
    let decoded = decode_on_shard(shard, h, body, seen, printed, against).await;
    let (decoded, prints, _charged) = match decoded {
        Ok(((decoded, prints, stages), charged)) => {
            shard.metrics.registration_decoded(seen.body_bytes, decode_started.elapsed(), stages);
            (decoded, prints, charged)
        }
        Err(e) => {
            if shard.peer_warning_admitted() {
                let encoding = h.encoding;
                tracing::warn!(broker = %h.broker_name, addr = %h.broker_addr, ?encoding, "REGISTER_BROKER refused: {e}");
            }
            return Err(Answer::error_with_empty_ext(codes::SYSTEM_ERROR, e.to_string()));
        }
    };
    let decoded_at = Instant::now();
    let Decoded { body: decoded_body, delta, .. } = decoded;
    let (topics, changed) = match &delta {
        Some(d) => (d.members, d.changed.len()),
        None => (decoded_body.topic_configs.len(), decoded_body.topic_configs.len()),
    };
    let is_delta = delta.is_some();
    let data_version = decoded_body.data_version;
    let filter_server_list = decoded_body.filter_server_list.clone();
    let mut req = register_request(h, decoded_body, false, seen.fingerprint());
    req.prints_token = prints.as_ref().map(|(token, _)| *token);
    req.delta = match (delta, base) {
        (Some(topics), Some(base)) => Some(Delta { base, topics }),
        _ => None,
    };
    let req = Box::new(req);
    let reply = shard.call(|reply| RouteUpdate::RegisterBroker { req, conn, reply }).await;
    let writer_gone = reply.is_none();
    let reply = match reply {
        Some(RegisterReply::NeedFullBody) if is_delta => None,
        reply => reply,
    };
    if is_delta && !writer_gone {
        shard.metrics.registration_delta(reply.is_some());
    }
    Ok(Applied {
        reply,
        writer_gone,
        prints,
        data_version,
        filter_server_list,
        topics,
        changed,
        delta: is_delta,
        decoded_at,
    })
}

/// The same broker: what a kept body's fingerprints may be compared for.
fn same_broker(a: &RegisterBrokerHeader, b: &RegisterBrokerHeader) -> bool {
    a.cluster_name == b.cluster_name
        && a.broker_name == b.broker_name
        && a.broker_addr == b.broker_addr
        && a.broker_id == b.broker_id
}

/// A decode's result, its members' fingerprints with their token, and its stages.
type DecodedOnShard = (Decoded, Option<(u64, Arc<MemberPrints>)>, DecodeStages);

/// Charges the memory budget and decodes the body off the lookup path, fingerprinting its
/// members (against `against`'s, if given) when `printed`. What is returned stays charged.
async fn decode_on_shard(
    shard: &ShardState,
    h: &RegisterBrokerHeader,
    body: Bytes,
    seen: Seen,
    printed: bool,
    against: Option<(u64, Arc<MemberPrints>)>,
) -> Result<(DecodedOnShard, Metered), body::BodyError> {
    let limit = shard.config.body_decompressed_bytes_max as usize;
    let (encoding, version) = (h.encoding, seen.version);
    // A delta the writer may refuse keeps the frame for a second decode: still charged.
    let frame_kept = against.is_some();
    let Some(mut metered) = charge(shard, &body).await else { return Err(shard.budget.exhausted()) };
    let wire_bytes = body.len();
    // Decoding may take tens of milliseconds; `decode` keeps it from holding up lookups.
    let (decoded, mut metered) = shard
        .decode(wire_bytes, move || {
            let mut stages = DecodeStages::default();
            let prints = match (&against, printed) {
                (Some((_, prev)), _) => Prints::Against(prev),
                (None, true) => Prints::Yes,
                (None, false) => Prints::No,
            };
            let decoded =
                body::decode_register_body_resend(&body, version, encoding, limit, &mut metered, &mut stages, prints);
            let decoded = decoded.map(|mut d| {
                let prints = d.prints.take().map(|p| (p.token(), Arc::new(p)));
                (d, prints, stages)
            });
            (decoded, metered)
        })
        .await;
    // The frame is freed with the closure (unless kept); the decoded body stays charged
    // until answered.
    metered.return_unused();
    if !frame_kept {
        body::MemoryGate::release(&mut metered, wire_bytes);
    }
    decoded.map(|decoded| (decoded, metered))
}

/// Reserves, waiting up to `BUDGET_WAIT`, the body's wire bytes (already in memory) plus as
/// many again for the decode to draw on (the JSON estimate, or the first inflation steps):
/// everything a registration holds beyond that is charged as it grows, without waiting.
async fn charge(shard: &ShardState, body: &Bytes) -> Option<Metered> {
    let wire_bytes = body.len();
    let deadline = Instant::now() + BUDGET_WAIT;
    let reservation =
        shard.budget.reserve_waiting(wire_bytes.saturating_mul(2), deadline, glommio::timer::sleep).await?;
    Some(Metered::new(reservation, wire_bytes))
}

/// The answer Java's registerBroker gives: for a slave whose master is known, the master's
/// and HA addresses as ext fields; the order-topic table as body when configured.
fn register_answer(result: RegisterResult) -> Answer {
    match result {
        RegisterResult::Accepted { master_addr, ha_server_addr, order_topic_config } => {
            let mut ext = Vec::new();
            if let (Some(m), Some(ha)) = (master_addr, ha_server_addr) {
                ext.push(("haServerAddr", ha));
                ext.push(("masterAddr", m));
            }
            let mut out = Vec::new();
            if let Some(table) = order_topic_config {
                let entries: Vec<(&str, &str)> = table.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                body::encode_kv_table(&mut out, &entries);
            }
            Answer::ok_with_ext(ext, out)
        }
        RegisterResult::Refused(remark) => Answer::error_with_empty_ext(codes::SYSTEM_ERROR, remark),
    }
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
        prints_token: None,
        delta: None,
    }
}
