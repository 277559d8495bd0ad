//! Lookups answered from the shard's current snapshot: pre-encoded route bytes, no lock,
//! no channel, no syscall. Must not: send anything to the route writer.

use crate::route::snapshot::{AnswerInterner, RouteSnapshot};
use crate::shard::state::ShardState;
use meridian_protocol::answer::Answer;
use meridian_protocol::body::JsonFlavour;
use meridian_protocol::codes;
use std::time::Instant;

/// Remark Java appends to TOPIC_NOT_EXIST (FAQUrl.suggestTodo(APPLY_TOPIC_URL)).
const FAQ_SUFFIX: &str = "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";

/// GET_ROUTEINFO_BY_TOPIC from the shard's snapshot (Java's ClientRequestProcessor.getRouteInfoByTopic).
pub fn route_info(shard: &ShardState, topic: &str, standard_json: bool, zone: Option<&str>) -> Answer {
    shard.with_snapshot(|snapshot| route_answer(snapshot, &shard.answers, topic, standard_json, zone))
}

/// Identical answers share their bytes through `answers` (the shard's).
pub fn route_answer(
    snapshot: &RouteSnapshot,
    answers: &AnswerInterner,
    topic: &str,
    standard_json: bool,
    zone: Option<&str>,
) -> Answer {
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
        route.model().zone_filtered(zone).encode(&mut out, JsonFlavour::Legacy);
        return Answer::ok(out);
    }
    let flavour = if standard_json { JsonFlavour::Standard } else { JsonFlavour::Legacy };
    Answer::ok(route.encoded_shared(flavour, answers).clone())
}
