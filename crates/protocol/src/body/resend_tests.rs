//! Re-sends read against the previous body (`scan::register_body_resend`): whatever the
//! two bodies, the delta expands to exactly the topics a full decode of the new body
//! gives, its fingerprints are the ones a full scan records, and the rest of the body is
//! the same.

use super::scan::register_body_resend;
use super::*;

const V5: i32 = 479;

/// A small deterministic generator (xorshift), so every case is reproducible by index.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One member as written: a topic (name, perm, attributes) or a null.
#[derive(Clone, Debug)]
enum Member {
    Topic { name: String, perm: i32, queues: i32, attrs: bool },
    Null(String),
}

fn body(members: &[Member], counter: i64, spaced: bool) -> Vec<u8> {
    let sep = if spaced { ", " } else { "," };
    let mut table = Vec::new();
    for m in members {
        table.push(match m {
            Member::Topic { name, perm, queues, attrs } => {
                let attributes = if *attrs { r#"{"+message.type":"FIFO"}"# } else { "{}" };
                format!(
                    r#""{name}":{{"attributes":{attributes},"order":false,"perm":{perm},"readQueueNums":{queues},"topicFilterType":"SINGLE_TAG","topicName":"{name}","topicSysFlag":0,"writeQueueNums":{queues}}}"#
                )
            }
            Member::Null(key) => format!(r#""{key}":null"#),
        });
    }
    format!(
        r#"{{"filterServerList":[],"topicConfigSerializeWrapper":{{"dataVersion":{{"counter":{counter},"stateVersion":0,"timestamp":1}},"topicConfigTable":{{{}}},"topicQueueMappingInfoMap":{{}}}}}}"#,
        table.join(sep)
    )
    .into_bytes()
}

fn topic(rng: &mut Rng, i: u64) -> Member {
    Member::Topic { name: format!("t{i}_{}", rng.below(1000)), perm: 6, queues: 8, attrs: rng.below(4) == 0 }
}

/// Edits like a broker's between two registrations, several at once.
fn edit(rng: &mut Rng, members: &mut Vec<Member>, fresh: &mut u64) {
    for _ in 0..rng.below(5) {
        let at = rng.below(members.len() as u64 + 1) as usize;
        match rng.below(7) {
            0 if at < members.len() => {
                if let Member::Topic { perm, .. } = &mut members[at] {
                    *perm = if *perm == 6 { 4 } else { 6 };
                }
            }
            1 => {
                *fresh += 1;
                members.insert(at, topic(rng, *fresh));
            }
            2 if at < members.len() => {
                members.remove(at);
            }
            3 if at + 1 < members.len() => members.swap(at, at + 1),
            4 if at < members.len() => {
                let copy = members[at].clone();
                let to = rng.below(members.len() as u64 + 1) as usize;
                members.insert(to, copy);
            }
            5 => members.insert(at, Member::Null(format!("n{}", rng.below(100)))),
            _ if at < members.len() => {
                if let Member::Topic { queues, .. } = &mut members[at] {
                    *queues += 1;
                }
            }
            _ => {}
        }
    }
}

#[test]
fn deltas_expand_to_the_full_decode() {
    let (mut deltas, mut changed_total, mut same_total) = (0, 0, 0);
    for case in 0..3000u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let mut fresh = 1000;
        let mut members: Vec<Member> = (0..rng.below(40)).map(|i| topic(&mut rng, i)).collect();
        let a = body(&members, 1, rng.below(3) == 0);
        let (a_body, a_delta, a_prints) = register_body_resend(&a, V5, None).expect("scans");
        assert!(a_delta.is_none());
        assert_eq!(a_body, decode_register_body_json_serde(&a, V5).unwrap(), "case {case}");
        edit(&mut rng, &mut members, &mut fresh);
        let b = body(&members, 2, rng.below(3) == 0);
        let full = decode_register_body_json_serde(&b, V5).unwrap();
        let (_, _, full_prints) = register_body_resend(&b, V5, None).unwrap();
        let (b_body, delta, prints) = register_body_resend(&b, V5, Some(&a_prints)).expect("scans");
        let delta = delta.expect("read against the previous body");
        assert_eq!(prints, full_prints, "case {case}: the fingerprints of a full scan");
        let expanded = delta.expand(&a_body.topic_configs).unwrap_or_else(|| panic!("case {case}: {delta:?}"));
        assert_eq!(expanded, full.topic_configs, "case {case}: {delta:?}");
        assert!(b_body.topic_configs.is_empty());
        assert_eq!(RegisterBrokerBody { topic_configs: full.topic_configs.clone(), ..b_body }, full);
        deltas += 1;
        changed_total += delta.changed.len();
        same_total += delta.members - delta.changed.len();
    }
    assert_eq!(deltas, 3000);
    // Most members of an edited body are still found byte for byte.
    assert!(same_total > 5 * changed_total, "same {same_total}, changed {changed_total}");
}

#[test]
fn a_resend_with_one_topic_changed_decodes_that_topic_only() {
    let members: Vec<Member> =
        (0..1000).map(|i| Member::Topic { name: format!("topic_{i}"), perm: 6, queues: 8, attrs: false }).collect();
    let (_, _, prints) = register_body_resend(&body(&members, 1, false), V5, None).unwrap();
    assert_eq!(prints.0.len(), 1000);
    let mut changed = members.clone();
    if let Member::Topic { perm, .. } = &mut changed[500] {
        *perm = 2;
    }
    changed.remove(700);
    changed.insert(10, Member::Topic { name: "new".into(), perm: 6, queues: 8, attrs: false });
    let (_, delta, _) = register_body_resend(&body(&changed, 2, false), V5, Some(&prints)).unwrap();
    let delta = delta.unwrap();
    use DeltaOp::*;
    assert_eq!(
        delta.ops,
        [Same(10), Changed(1), Same(490), Changed(1), Skip(1), Same(199), Skip(1), Same(299)],
        "one decode each for the new and the changed topic"
    );
    let names: Vec<&str> = delta.changed.iter().map(|t| t.topic_name).collect();
    assert_eq!(names, ["new", "topic_500"]);
    // A body the scanner declines (an escape in a name) has no fingerprints and no delta.
    let declined = br#"{"topicConfigSerializeWrapper":{"topicConfigTable":{"a":{"topicName":"a\"b"}}}}"#;
    assert!(register_body_resend(declined, V5, Some(&prints)).is_err());
}

#[test]
fn a_table_scanned_by_two_threads_has_the_fingerprints_of_one() {
    let members: Vec<Member> = (0..30_000)
        .map(|i| Member::Topic {
            name: format!("prod_trade_refund_notify_{i:07}"),
            perm: 6,
            queues: 8,
            attrs: i % 3 == 0,
        })
        .collect();
    let json = body(&members, 1, false);
    assert!(json.len() >= scan::SPLIT_SCAN_BYTES_MIN, "{} bytes", json.len());
    let (full, _, prints) = register_body_resend(&json, V5, None).unwrap();
    assert_eq!((full.topic_configs.len(), prints.0.len()), (30_000, 30_000));
    // Read against itself, every member is found in order: the prints are each member's.
    let (_, delta, again) = register_body_resend(&json, V5, Some(&prints)).unwrap();
    assert_eq!(delta.unwrap().ops, [DeltaOp::Same(30_000)]);
    assert_eq!(again, prints);
}
