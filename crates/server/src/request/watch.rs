//! Route watch: a Meridian extension (request code `MERIDIAN_WATCH_ROUTES`, 43701) by which a
//! client names topics with the route versions it holds and is answered as soon as any of
//! them differs — at once if one already does, else when a published snapshot changes one
//! (registration, removal by close or expiry, admin change), else empty after the hold.
//! Stock brokers and clients never send it; stock NameServers refuse it (Java 3, rocketmq-rust
//! 16), which `RouteWatcher` reports as `WatchError::Unsupported` so a client can fall back to
//! polling (`examples/watch_routes.rs` shows both).
//!
//! Wire form. Request: ext `holdMs` (optional; default and cap `watchHoldMsMax`; 0 =
//! answer now), body a JSON object `{"TopicA": 7, "TopicB": 0}` (0 = "I hold no route").
//! Answer: SUCCESS, body `{"generation":G,"changed":{"TopicA":{"version":9,"route":{…}},
//! "TopicB":{"version":0,"route":null}}}` — `route` is exactly what GET_ROUTEINFO_BY_TOPIC
//! returns to a 5.x client (standard JSON), `null` when the topic has no route. A route's version is the snapshot generation that built it.
//!
//! Server side: served from the shard's snapshot, no locks; a held watch waits on the
//! shard's "snapshot published" event. A held watch occupies its connection (answers are
//! in order), so clients watch on a connection of their own.

use super::command::HoldMs;
use crate::route::snapshot::{AnswerInterner, RouteSnapshot};
use crate::shard::state::ShardState;
use bytes::Bytes;
use meridian_protocol::answer::Answer;
use meridian_protocol::body::JsonFlavour;
use meridian_protocol::codes;
use meridian_protocol::header;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Holds a count of held watches on the shard; released on drop (also when the
/// connection ends while the watch is held).
struct Held<'s>(&'s ShardState);

impl Held<'_> {
    fn start(shard: &ShardState) -> Held<'_> {
        shard.watches_held.set(shard.watches_held.get() + 1);
        shard.metrics.watches_held(shard.watches_held.get());
        Held(shard)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.watches_held.set(self.0.watches_held.get() - 1);
        self.0.metrics.watches_held(self.0.watches_held.get());
    }
}

pub async fn watch_routes(shard: &ShardState, hold_ms: HoldMs, body: &[u8]) -> Answer {
    let config = &shard.config;
    let watched: BTreeMap<String, u64> = match serde_json::from_slice(body) {
        Ok(w) => w,
        Err(e) => {
            return Answer::error(codes::SYSTEM_ERROR, format!("watch body must be {{\"topic\": version, ...}}: {e}"))
        }
    };
    if watched.len() > config.watch_topics_per_request_max {
        return Answer::error(
            codes::SYSTEM_ERROR,
            format!(
                "{} topics in one watch > watchTopicsPerRequestMax {}",
                watched.len(),
                config.watch_topics_per_request_max
            ),
        );
    }
    let hold_ms = match hold_ms {
        HoldMs::Default => config.watch_hold_ms_max,
        HoldMs::Millis(ms) => ms.min(config.watch_hold_ms_max),
        HoldMs::NotANumber => return Answer::error(codes::SYSTEM_ERROR, "holdMs must be a number of milliseconds"),
    };
    // Watchers are new clients: always the standard JSON form, so the answer is valid JSON.
    let flavour = JsonFlavour::Standard;

    if shard.watches_held.get() >= config.watches_per_shard_max {
        return Answer::error(
            codes::SYSTEM_BUSY,
            format!("watchesPerShardMax {} watches already held; poll instead", config.watches_per_shard_max),
        );
    }
    let _held = Held::start(shard);
    let deadline = Instant::now() + Duration::from_millis(hold_ms);
    loop {
        // Listening before looking: a publish in between still wakes us.
        let published = shard.snapshot_published.listen();
        let answer = shard.with_snapshot(|s| changes(s, &shard.answers, &watched, flavour));
        let now = Instant::now();
        let stopping = shard.stopping.load(std::sync::atomic::Ordering::Acquire);
        match answer {
            Ok(Some(body)) => return Answer::ok(body),
            Err(not_ready) => return not_ready,
            Ok(None) if now >= deadline || stopping => {
                return Answer::ok(shard.with_snapshot(|s| empty_answer(s.generation)))
            }
            Ok(None) => {}
        }
        // A held watch costs nothing until a publish, the stop (the shard notifies the same
        // event when it stops accepting) or its deadline.
        let wait = deadline.saturating_duration_since(now);
        futures_lite::future::or(published, glommio::timer::sleep(wait)).await;
    }
}

fn empty_answer(generation: u64) -> Bytes {
    Bytes::from(format!("{{\"generation\":{generation},\"changed\":{{}}}}"))
}

/// The answer body if any watched topic's version differs from the client's; `Err` when the
/// NameServer is not serving routes yet (needWaitForService), as lookups answer.
fn changes(
    snapshot: &RouteSnapshot,
    answers: &AnswerInterner,
    watched: &BTreeMap<String, u64>,
    flavour: JsonFlavour,
) -> Result<Option<Bytes>, Answer> {
    if snapshot.not_ready_until.is_some_and(|until| Instant::now() < until) {
        return Err(Answer::error(codes::SYSTEM_ERROR, "name server not ready"));
    }
    let mut out: Option<Vec<u8>> = None;
    for (topic, held) in watched {
        let route = snapshot.route(topic);
        let version = route.as_ref().map_or(0, |r| r.version());
        if version == *held {
            continue;
        }
        let out = out.get_or_insert_with(|| {
            let mut o = Vec::with_capacity(1024);
            o.extend_from_slice(format!("{{\"generation\":{},\"changed\":{{", snapshot.generation).as_bytes());
            o
        });
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        header::write_json_str(out, topic);
        out.extend_from_slice(format!(":{{\"version\":{version},\"route\":").as_bytes());
        match route {
            Some(r) => out.extend_from_slice(r.encoded_shared(flavour, answers)),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    Ok(out.map(|mut o| {
        o.extend_from_slice(b"}}");
        Bytes::from(o)
    }))
}
