//! Route micro-benchmarks: snapshot publish cost against table size (it must follow the
//! change, not the table), route answer encoding, and the whole lookup path from request
//! bytes to reply bytes.

mod common;

// The server's allocator (crates/meridian): a registration frees its decoded body on the
// writer, and with glibc's allocator that alone made a 100k-topic 1%-changed re-send 20 ms
// instead of 4 ms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::{Bytes, BytesMut};
use common::{count_label, topic_counts, TOPIC_COUNT_LARGE_MIN, VERSION_5X};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meridian_protocol::body::{self, BrokerData, JsonFlavour, MemberPrints, QueueData, RegisterBrokerBody};
use meridian_protocol::codes;
use meridian_protocol::frame::{self, SerializeType};
use meridian_protocol::header::{Header, HeaderOut};
use meridian_server::config::Config;
use meridian_server::request::command::Command;
use meridian_server::route::snapshot::{build_topic_route, RouteBuildOptions, RouteModel, RouteSnapshot};
use meridian_server::route::table::{Delta, RegisterBroker, RouteTable};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Broker groups (masters) that each serve every topic of a bench table.
const GROUPS: u8 = 2;
/// Topics in the "whole table changed" contrast case (10k under `cargo bench`).
const FULL_CHANGE_TOPICS: usize = 10_000;
/// Distinct topics the lookup bench cycles through, so it is not one hot key.
const LOOKUP_TOPICS: usize = 1_024;

/// A table where `GROUPS` masters each registered all `names`, and its first snapshot.
fn loaded(names: &[String]) -> (RouteTable, RouteSnapshot) {
    let config = common::config();
    let mut table = common::table(&config);
    for group in 0..GROUPS {
        common::register(&mut table, common::register_request(group, common::register_body(names, 1)));
    }
    let snapshot = RouteSnapshot::empty().next(&mut table, &Arc::default(), None);
    assert_eq!(snapshot.topics.len(), names.len());
    (table, snapshot)
}

/// Times what the writer pays for a registration made by `prepare(generation)` (untimed):
/// applying it to the table (which copies the shards and entries it changes that the last
/// snapshot shares) and `RouteSnapshot::next`. Dropping the previous snapshot is not timed:
/// readers drop it, not the writer.
fn bench_publish(
    table: &mut RouteTable,
    snapshot: &mut RouteSnapshot,
    iters: u64,
    mut prepare: impl FnMut(u64) -> RegisterBroker,
) -> Duration {
    let options = Arc::new(RouteBuildOptions::default());
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        let req = prepare(snapshot.generation);
        let start = Instant::now();
        common::register(table, req);
        let next = snapshot.next(table, &options, None);
        elapsed += start.elapsed();
        *snapshot = next;
    }
    elapsed
}

fn bench_snapshot_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_publish");
    for &count in topic_counts() {
        let names = common::topic_names(count);
        let (mut table, mut snapshot) = loaded(&names);
        if count >= TOPIC_COUNT_LARGE_MIN {
            group.sample_size(10);
        }
        // An incremental registration (topic update): one topic flips between 8 and 16 queues.
        group.bench_function(format!("one_topic_changed/{}_topics", count_label(count)), |b| {
            b.iter_custom(|iters| {
                bench_publish(&mut table, &mut snapshot, iters, |generation| {
                    let queue_nums = if generation % 2 == 0 { 16 } else { 8 };
                    let mut body = common::register_body(&[], 2 + generation as i64);
                    body.topic_configs.push(common::topic_config(&names[0], queue_nums)).expect("one small topic");
                    common::register_request(0, body)
                })
            })
        });
    }
    // Contrast: a full re-registration in which every topic of one broker changed.
    let count = if common::bench_mode() { FULL_CHANGE_TOPICS } else { topic_counts()[0] };
    let names = common::topic_names(count);
    let (mut table, mut snapshot) = loaded(&names);
    let bodies = [common::register_body(&names, 2), {
        let mut body = common::register_body(&names, 3);
        let mut topics = body.topic_configs.to_vec();
        topics.iter_mut().for_each(|t| t.write_queue_nums += 1);
        body.topic_configs = topics.into();
        body
    }];
    group.sample_size(10);
    group.bench_function(format!("all_topics_changed/{}_topics", count_label(count)), |b| {
        b.iter_custom(|iters| {
            bench_publish(&mut table, &mut snapshot, iters, |generation| {
                let mut body = bodies[generation as usize % 2].clone();
                body.data_version.counter = 10 + generation as i64;
                common::register_request(0, body)
            })
        })
    });
    group.finish();
}

/// A whole registration as the writer applies it (table + publish) at N topics: the first
/// one into an empty table, and a re-send with a new data version and 1% of topics changed.
fn bench_register(c: &mut Criterion) {
    let mut group = c.benchmark_group("register_apply");
    let options = Arc::new(RouteBuildOptions::default());
    for &count in topic_counts() {
        let names = common::topic_names(count);
        if count >= TOPIC_COUNT_LARGE_MIN {
            group.sample_size(10);
        }
        group.throughput(Throughput::Elements(count as u64));
        let first = common::register_body(&names, 1);
        group.bench_function(format!("first/{}_topics", count_label(count)), |b| {
            b.iter_batched(
                || (common::table(&common::config()), common::register_request(0, first.clone())),
                |(mut table, req)| {
                    common::register(&mut table, req);
                    let snapshot = RouteSnapshot::empty().next(&mut table, &options, None);
                    (table, snapshot) // dropped untimed
                },
                BatchSize::PerIteration,
            )
        });
        let (mut table, mut snapshot) = loaded(&names);
        group.bench_function(format!("resend_1pct_changed/{}_topics", count_label(count)), |b| {
            b.iter_custom(|iters| {
                bench_publish(&mut table, &mut snapshot, iters, |generation| {
                    common::register_request(0, one_pct_changed(&names, generation))
                })
            })
        });
        // The same re-sends as the shard sends a master's large body: a delta against the
        // previous body's member fingerprints (made untimed; the apply panics if refused).
        let (mut table, mut snapshot) = loaded(&names);
        let mut prints = resend_with_prints(&mut table, &names);
        group.bench_function(format!("resend_1pct_delta/{}_topics", count_label(count)), |b| {
            b.iter_custom(|iters| {
                bench_publish(&mut table, &mut snapshot, iters, |generation| {
                    let body = one_pct_changed(&names, generation);
                    let json = json_of(&body);
                    let (rest, delta, next) = body::scan::register_body_resend(&json, VERSION_5X, Some(&prints))
                        .expect("the bench's bodies scan");
                    let base = std::mem::replace(&mut prints, next).token();
                    let mut req = common::register_request(0, rest);
                    req.prints_token = Some(prints.token());
                    req.delta = Some(Delta { base, topics: delta.expect("read against the last body") });
                    req
                })
            })
        });
    }
    group.finish();
}

/// `names` with every 100th topic (a different hundredth each generation) flipped.
fn one_pct_changed(names: &[String], generation: u64) -> RegisterBrokerBody {
    let mut body = common::register_body(names, 10 + generation as i64);
    let step = 100;
    let mut topics = body.topic_configs.to_vec();
    for t in topics.iter_mut().skip(generation as usize % step).step_by(step) {
        t.perm = if generation % 2 == 0 { 4 } else { 6 };
    }
    body.topic_configs = topics.into();
    body
}

fn json_of(body: &RegisterBrokerBody) -> Vec<u8> {
    let mut out = Vec::new();
    body::encode_register_body_json(&mut out, body);
    out
}

/// Registers broker 0's body in full with its member fingerprints, as the shard does for a
/// large body: the table's list becomes a base for deltas. Returns the fingerprints.
fn resend_with_prints(table: &mut RouteTable, names: &[String]) -> MemberPrints {
    let body = common::register_body(names, 5);
    let (_, _, prints) = body::scan::register_body_resend(&json_of(&body), VERSION_5X, None).expect("scans");
    let mut req = common::register_request(0, body);
    req.prints_token = Some(prints.token());
    common::register(table, req);
    prints
}

/// A topic served by `groups` broker groups, each a master plus one slave.
fn route_model(groups: usize) -> RouteModel {
    let broker_datas = (0..groups)
        .map(|g| {
            Arc::new(BrokerData {
                cluster: "DefaultCluster".to_string(),
                broker_name: format!("broker-{g}"),
                broker_addrs: BTreeMap::from([(0, format!("10.0.{g}.1:10911")), (1, format!("10.0.{g}.2:10911"))]),
                enable_acting_master: false,
                zone_name: None,
            })
        })
        .collect();
    let queue_datas = (0..groups)
        .map(|g| QueueData {
            broker_name: format!("broker-{g}").into(),
            read_queue_nums: 8,
            write_queue_nums: 8,
            perm: 6,
            topic_sys_flag: 0,
        })
        .collect();
    RouteModel {
        broker_datas,
        queue_datas,
        filter_server_table: Vec::new(),
        order_topic_conf: None,
        topic_queue_mapping_by_broker: Vec::new(),
    }
}

fn bench_route_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_answer_encode");
    let mut out = Vec::with_capacity(8192);
    for groups in [1, 4] {
        let model = route_model(groups);
        for (label, flavour) in [("standard", JsonFlavour::Standard), ("legacy", JsonFlavour::Legacy)] {
            out.clear();
            model.encode(&mut out, flavour);
            group.throughput(Throughput::BytesDecimal(out.len() as u64));
            group.bench_function(format!("{label}/{groups}_groups"), |b| {
                b.iter(|| {
                    out.clear();
                    black_box(&model).encode(&mut out, flavour);
                    out.len()
                })
            });
        }
    }
    // What a publish pays per changed topic: assemble from the table and encode both flavours.
    let names = common::topic_names(topic_counts()[0]);
    let (table, _) = loaded(&names);
    let options = RouteBuildOptions::default();
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("build_topic_route/{GROUPS}_groups"), |b| {
        b.iter(|| build_topic_route(&table, black_box(&names[0]), &options).unwrap())
    });
    group.finish();
}

/// What the server does for one GET_ROUTEINFO_BY_TOPIC, minus the socket: frame check and
/// parse, header decode, command parse, snapshot lookup, response header encode, frame encode.
fn answer_lookup(buf: &mut BytesMut, config: &Config, snapshot: &RouteSnapshot, out: &mut Vec<u8>) -> usize {
    let frame_bytes = frame::check(buf, config.frame_bytes_max, config.header_bytes_max).unwrap();
    let request = frame::parse(buf, frame_bytes);
    let header = Header::decode(request.serialize_type, &request.header).unwrap();
    let Command::GetRouteInfo { topic, standard_json, zone: None } = Command::parse(&header).unwrap() else {
        panic!("not a plain route lookup");
    };
    let route = snapshot.route(&topic).expect("topic is in the snapshot");
    let body: Bytes = route.encoded(if standard_json { JsonFlavour::Standard } else { JsonFlavour::Legacy }).clone();
    let mut header_bytes = Vec::with_capacity(128);
    HeaderOut::response(codes::SUCCESS, header.opaque, None, None).encode(SerializeType::Json, &mut header_bytes);
    out.clear();
    frame::encode(out, SerializeType::Json, &header_bytes, &body);
    out.len()
}

fn bench_lookup_path(c: &mut Criterion) {
    let config = common::config();
    let count = if common::bench_mode() { 10_000 } else { topic_counts()[0] };
    let names = common::topic_names(count);
    let (_table, snapshot) = loaded(&names);
    let requests: Vec<Vec<u8>> = names
        .iter()
        .step_by((count / LOOKUP_TOPICS).max(1))
        .map(|topic| {
            let ext = [("topic", topic.as_str())];
            let header = HeaderOut {
                code: codes::GET_ROUTEINFO_BY_TOPIC,
                language: 0,
                version: VERSION_5X,
                opaque: 7,
                flag: 0,
                remark: None,
                ext_fields: Some(&ext),
            };
            let mut header_bytes = Vec::new();
            header.encode(SerializeType::Json, &mut header_bytes);
            let mut request = Vec::new();
            frame::encode(&mut request, SerializeType::Json, &header_bytes, &[]);
            request
        })
        .collect();
    let mut out = Vec::with_capacity(4096);
    let mut next = 0;
    let mut group = c.benchmark_group("lookup_path");
    group.throughput(Throughput::Elements(1));
    // The copy of the request into a read buffer stands in for the socket read: not timed.
    group.bench_function(format!("route_hit/{}_topics", count_label(count)), |b| {
        b.iter_batched_ref(
            || {
                next = (next + 1) % requests.len();
                BytesMut::from(&requests[next][..])
            },
            |buf| answer_lookup(buf, &config, &snapshot, &mut out),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_snapshot_publish, bench_register, bench_route_encode, bench_lookup_path);
criterion_main!(benches);
