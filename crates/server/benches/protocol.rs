//! Wire-format micro-benchmarks: frame check/parse/encode, header decode/encode, and
//! REGISTER_BROKER body parsing in its three encodings (JSON, RocketMQ's deflate form, zstd).
//!
//! Body parses report MB/s (decimal) of the bytes as received on the wire, so a compressed body
//! reports fewer MB/s for the same topics; benches/README.md lists the time per body too.

mod common;

use bytes::BytesMut;
use common::{count_label, topic_counts, TOPIC_COUNT_LARGE_MIN, VERSION_5X};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meridian_protocol::body::{self, BodyEncoding};
use meridian_protocol::codes;
use meridian_protocol::frame::{self, SerializeType};
use meridian_protocol::header::{Header, HeaderOut};
use std::hint::black_box;

/// zstd level a broker using Meridian's extension would pick (zstd's own default).
const ZSTD_LEVEL: i32 = 3;

/// A request header as a 5.x client or broker sends it.
fn request_header(code: i32, ext: &[(&str, &str)], serialize_type: SerializeType) -> Vec<u8> {
    let header =
        HeaderOut { code, language: 0, version: VERSION_5X, opaque: 42, flag: 0, remark: None, ext_fields: Some(ext) };
    let mut out = Vec::new();
    header.encode(serialize_type, &mut out);
    out
}

fn register_ext(body_crc32: &str) -> Vec<(&'static str, String)> {
    vec![
        ("brokerAddr", "127.0.0.1:10911".to_string()),
        ("brokerId", "0".to_string()),
        ("brokerName", "broker-0".to_string()),
        ("clusterName", "DefaultCluster".to_string()),
        ("compressed", "false".to_string()),
        ("enableActingMaster", "false".to_string()),
        ("haServerAddr", "127.0.0.1:10912".to_string()),
        ("heartbeatTimeoutMillis", "120000".to_string()),
        ("bodyCrc32", body_crc32.to_string()),
    ]
}

fn borrow_ext<'a>(ext: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    ext.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn bench_frames(c: &mut Criterion) {
    let config = common::config();
    let route_header = request_header(
        codes::GET_ROUTEINFO_BY_TOPIC,
        &[("topic", "prod_trade_refund_notify_7f3a2c_000123")],
        SerializeType::Json,
    );
    let mut route_request = Vec::new();
    frame::encode(&mut route_request, SerializeType::Json, &route_header, &[]);

    let names = common::topic_names(1_000);
    let mut register_json = Vec::new();
    body::encode_register_body_json(&mut register_json, &common::register_body(&names, 1));
    let ext = register_ext(&body::body_crc32(&register_json).to_string());
    let register_header = request_header(codes::REGISTER_BROKER, &borrow_ext(&ext), SerializeType::Json);
    let mut register_request = Vec::new();
    frame::encode(&mut register_request, SerializeType::Json, &register_header, &register_json);

    let mut group = c.benchmark_group("frame");
    // `check` and `parse` read only the prefix and header word and split the buffer without
    // copying, so their cost does not depend on the frame size: counted in frames, not bytes.
    group.throughput(Throughput::Elements(1));
    for (label, bytes) in [("route_request", &route_request), ("register_1k_topics", &register_request)] {
        group.bench_function(format!("check/{label}"), |b| {
            b.iter(|| frame::check(black_box(bytes), config.frame_bytes_max, config.header_bytes_max).unwrap())
        });
        // The copy into a fresh read buffer is setup, not timed.
        group.bench_function(format!("check_parse/{label}"), |b| {
            b.iter_batched_ref(
                || BytesMut::from(&bytes[..]),
                |buf| {
                    let frame_bytes = frame::check(buf, config.frame_bytes_max, config.header_bytes_max).unwrap();
                    frame::parse(buf, frame_bytes)
                },
                BatchSize::SmallInput,
            )
        });
    }

    // A route answer frame: response header plus a pre-encoded body of two broker groups.
    let answer_body = vec![b'x'; 509];
    let mut answer_header = Vec::new();
    HeaderOut::response(codes::SUCCESS, 42, None, None).encode(SerializeType::Json, &mut answer_header);
    let mut out = Vec::with_capacity(4096);
    group.throughput(Throughput::BytesDecimal((8 + answer_header.len() + answer_body.len()) as u64));
    group.bench_function("encode/route_answer", |b| {
        b.iter(|| {
            out.clear();
            frame::encode(&mut out, SerializeType::Json, black_box(&answer_header), black_box(&answer_body));
            out.len()
        })
    });
    group.finish();
}

fn bench_headers(c: &mut Criterion) {
    let topic = [("topic", "prod_trade_refund_notify_7f3a2c_000123")];
    let ext = register_ext("-1234567890");
    let register_ext = borrow_ext(&ext);
    let mut group = c.benchmark_group("header");
    for (label, code, ext) in [
        ("route_request", codes::GET_ROUTEINFO_BY_TOPIC, &topic[..]),
        ("register_broker", codes::REGISTER_BROKER, &register_ext[..]),
    ] {
        for (type_label, serialize_type) in [("json", SerializeType::Json), ("binary", SerializeType::RocketMq)] {
            let bytes = request_header(code, ext, serialize_type);
            group.throughput(Throughput::BytesDecimal(bytes.len() as u64));
            group.bench_function(format!("decode/{type_label}/{label}"), |b| {
                b.iter(|| Header::decode(serialize_type, black_box(&bytes)).unwrap())
            });
        }
    }
    let mut out = Vec::with_capacity(256);
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode/json/route_response", |b| {
        b.iter(|| {
            out.clear();
            HeaderOut::response(codes::SUCCESS, black_box(42), None, None).encode(SerializeType::Json, &mut out);
            out.len()
        })
    });
    group.finish();
}

fn bench_register_bodies(c: &mut Criterion) {
    let limit = common::config().body_decompressed_bytes_max as usize;
    for &count in topic_counts() {
        let register_body = common::register_body(&common::topic_names(count), 1);
        let mut json = Vec::new();
        body::encode_register_body_json(&mut json, &register_body);
        let mut deflate = Vec::new();
        body::encode_register_body_compressed(&mut deflate, &register_body, VERSION_5X, true);
        let zstd = zstd::encode_all(&json[..], ZSTD_LEVEL).expect("zstd into memory");

        let mut group = c.benchmark_group(format!("register_body_parse/{}_topics", count_label(count)));
        if count >= TOPIC_COUNT_LARGE_MIN {
            group.sample_size(10);
        }
        for (label, bytes, encoding) in [
            ("json", &json, BodyEncoding::Json),
            ("deflate", &deflate, BodyEncoding::Compressed),
            ("zstd", &zstd, BodyEncoding::Zstd),
        ] {
            let decoded = body::decode_register_body(bytes, VERSION_5X, encoding, limit).unwrap();
            assert_eq!(decoded.topic_configs.len(), count, "{label}");
            group.throughput(Throughput::BytesDecimal(bytes.len() as u64));
            group.bench_function(label, |b| {
                b.iter(|| body::decode_register_body(black_box(bytes), VERSION_5X, encoding, limit).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_frames, bench_headers, bench_register_bodies);
criterion_main!(benches);
