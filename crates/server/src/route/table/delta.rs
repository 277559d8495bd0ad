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
        let (mut at, mut changed) = (0usize, 0usize);
        // The entries the delta passed over, and those the base body did not list.
        let mut passed: FastSet<&str> =
            group.list.get(base.listed..).unwrap_or_default().iter().map(|l| &*l.name).collect();
        for op in &delta.topics.ops {
            match *op {
                DeltaOp::Same(n) => at += n as usize,
                DeltaOp::Skip(n) => {
                    let Some(skipped) = group.list.get(at..at + n as usize) else { return false };
                    passed.extend(skipped.iter().map(|l| &*l.name));
                    at += n as usize;
                }
                DeltaOp::Changed(n) => changed += n as usize,
            }
        }
        if at != base.listed || changed != delta.topics.changed.len() {
            return false;
        }
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
        // The entries passed over, then those the base body did not list, by name (about as
        // many as changed topics, plus the topics the broker stopped listing).
        let mut passed: FastMap<TopicName, u64> = FastMap::default();
        let mut passed_order: Vec<TopicName> = Vec::new();
        let mut pass = |l: &Listed| {
            passed.insert(l.name.clone(), l.fields);
            passed_order.push(l.name.clone());
        };
        let mut at = 0usize;
        for op in &delta.topics.ops {
            match *op {
                DeltaOp::Same(n) => at += n as usize,
                DeltaOp::Skip(n) => {
                    prev.list[at..at + n as usize].iter().for_each(&mut pass);
                    at += n as usize;
                }
                DeltaOp::Changed(_) => {}
            }
        }
        prev.list[listed..].iter().for_each(&mut pass);
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
