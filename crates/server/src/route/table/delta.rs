//! A master's re-send applied as a delta against its previous body (`RegisterBroker::delta`):
//! the members equal byte for byte to the previous body's keep their list entries, which
//! are moved, not probed; only the changed members reach the index.
//!
//! Why: a broker re-sends all its topics every 30 s with a new data version when a few
//! changed. Decoding and walking 100k topics for 1k changes cost the shard ~15 ms and the
//! writer ~4–9 ms; a delta costs a hash per member on the shard and a move per entry here.
//!
//! Correctness rests on `GroupTopics::delta_base`: the list is, entry for entry, the base
//! body's topics with the fields it wrote (set only by a full rebuild from a master's
//! body with `write_all`, cleared by any other change to the list, valid only `in_sync`).
//! A member equal to a base member is the same topic config, so the full path would find
//! it in step with fields unchanged and write nothing. `delta_applies` checks everything
//! that could make the two paths differ before anything changes; the model test applies
//! every body both ways.
//! Must not: apply a delta the checks did not admit.

use super::group_topics::{pack, DeltaBase, Listed};
use super::register::GroupUpdate;
use super::*;
use meridian_protocol::body::DeltaOp;

impl RouteTable {
    /// Whether `req.delta` stands for its body here: a master's, against the body the
    /// group's list was built from, covering that list exactly, naming no topic twice and
    /// no topic the group has unless it is among the base members the delta passed over.
    pub(super) fn delta_applies(&self, req: &RegisterBroker) -> bool {
        let Some(delta) = &req.delta else { return true };
        if req.broker_id != MASTER_ID || !req.body.topic_queue_mapping_infos.is_empty() {
            return false;
        }
        let Some(group) = self.broker_topics.get(&req.broker_name) else { return false };
        let Some(base) = group.delta_base.filter(|b| group.in_sync && b.token == delta.base) else { return false };
        let Some(passed) = passed_over(&group.list, base.listed, &delta.topics.ops) else { return false };
        let changed: usize =
            delta.topics.ops.iter().map(|op| if let DeltaOp::Changed(n) = *op { n as usize } else { 0 }).sum();
        if changed != delta.topics.changed.len() {
            return false;
        }
        let passed: FastSet<&str> = passed.iter().map(|l| &*l.name).collect();
        let mut named: FastSet<&str> = FastSet::default();
        delta.topics.changed.iter().all(|t| {
            named.insert(t.topic_name)
                && (passed.contains(t.topic_name) || self.queue_data_of(t.topic_name, &req.broker_name).is_none())
        })
    }

    /// Step 10 for a delta `delta_applies` admitted: the list is rebuilt in body order by
    /// moving the same members' entries; changed topics are written as the full path
    /// would; base topics the body no longer lists stay the group's (appended), or lose
    /// its queue data with `deleteTopicWithBrokerRegistration`.
    pub(super) fn write_delta(&mut self, req: &RegisterBroker, delta: &Delta, group: &GroupUpdate, write_all: bool) {
        let broker_name = self.group_name(&req.broker_name);
        let prev = self.broker_topics.remove(&req.broker_name).expect("delta_applies found the list");
        let listed = prev.delta_base.expect("delta_applies found the base").listed;
        // By name: the entries passed over, then those the base body did not list (about as
        // many as changed topics, plus the topics the broker stopped listing).
        let (mut passed, passed_order): (FastMap<TopicName, u64>, Vec<TopicName>) = {
            let over = passed_over(&prev.list, listed, &delta.topics.ops).expect("delta_applies checked the ops");
            (over.iter().map(|l| (l.name.clone(), l.fields)).collect(), over.iter().map(|l| l.name.clone()).collect())
        };
        let mut next: Vec<Listed> = Vec::with_capacity(delta.topics.members + passed.len());
        let (mut entries, mut changed) = (prev.list.into_iter(), delta.topics.changed.iter());
        for op in &delta.topics.ops {
            match *op {
                DeltaOp::Same(n) => next.extend(entries.by_ref().take(n as usize)),
                DeltaOp::Skip(n) => entries.by_ref().take(n as usize).for_each(drop),
                DeltaOp::Changed(n) => {
                    for tc in changed.by_ref().take(n as usize) {
                        let qd = Self::queue_data(tc, &broker_name, group);
                        let fields = pack(&qd);
                        match passed.remove_entry(tc.topic_name) {
                            // The group has it and keeps its queue data (same data version).
                            Some((name, old)) if !write_all => next.push(Listed { name, fields: old }),
                            _ => {
                                let (put, name) = self.put_entry(tc.topic_name, qd);
                                self.count(put);
                                next.push(Listed { name, fields });
                            }
                        }
                    }
                }
            }
        }
        let body_listed = next.len();
        for name in passed_order {
            let Some(fields) = passed.remove(&name) else { continue };
            if self.options.delete_topic_with_broker_registration {
                self.drop_queue_data(&name, &req.broker_name);
                self.last_topic_counts.removed += 1;
            } else {
                next.push(Listed { name, fields });
            }
        }
        if self.last_topic_counts.removed > 0 {
            self.mark_topics_not_intact(&req.broker_name);
        }
        let delta_base =
            write_all.then_some(req.prints_token).flatten().map(|token| DeltaBase { token, listed: body_listed });
        if !next.is_empty() {
            self.broker_topics.insert(req.broker_name.clone(), GroupTopics { list: next, in_sync: true, delta_base });
        }
    }
}

/// The list entries a delta passes over (its `Skip` ranges), then those past the `listed`
/// entries of the base body; `None` unless its `Same` and `Skip` runs cover exactly those.
fn passed_over<'l>(list: &'l [Listed], listed: usize, ops: &[DeltaOp]) -> Option<Vec<&'l Listed>> {
    let (mut at, mut passed) = (0usize, Vec::new());
    for op in ops {
        match *op {
            DeltaOp::Same(n) => at += n as usize,
            DeltaOp::Skip(n) => {
                passed.extend(list.get(at..at + n as usize)?);
                at += n as usize;
            }
            DeltaOp::Changed(_) => {}
        }
    }
    (at == listed).then(|| {
        passed.extend(list.get(listed..).unwrap_or_default());
        passed
    })
}
