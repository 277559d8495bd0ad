//! Split registration, as an Apache RocketMQ 5.x Java broker sends it with
//! `enableSplitRegistration=true` (`BrokerController.registerBrokerAll` and
//! `TopicConfigManager.buildSerializeWrapper`): one registration round cut into chunks of N
//! topics, each chunk a complete REGISTER_BROKER frame of its own, with its own data version.
//!
//! Owns: where a round is cut and how the data version moves from chunk to chunk. Must not:
//! do I/O or read the clock (timestamps are passed in); sending the chunks is `broker`'s job.

use crate::workload::{TopicTable, Workload};
use meridian_protocol::body::{DataVersion, RegisterBrokerBody};
use std::ops::Range;

/// Counter of split registration rounds (one per broker round, whatever the target count).
pub const ROUNDS: &str = "split registration rounds";
/// Counter of split registration chunks (one per chunk a broker sends to all targets).
pub const CHUNKS: &str = "split registration chunks";
/// Histogram of each chunk's answer time, per target. Deliberately not under `register.`:
/// those histograms hold one sample per registration round, and the progress line counts them.
pub const CHUNK_HIST: &str = "register-chunk";

/// The table positions of each chunk of one round. The Java broker walks its topic table and
/// sends a chunk every time `size` topics have piled up, then one last chunk with the rest
/// (and the static-topic mapping map): that last one holds 0..size-1 topics and is sent even
/// when empty. So there are always `topics / size + 1` chunks.
pub fn chunk_ranges(topics: usize, size: usize) -> Vec<Range<usize>> {
    assert!(size > 0, "a split registration needs chunks of at least one topic");
    let full = topics / size;
    let mut ranges: Vec<Range<usize>> = (0..full).map(|i| i * size..(i + 1) * size).collect();
    ranges.push(full * size..topics);
    ranges
}

/// Moves the broker's data version on as `DataVersion.nextVersion()` does (timestamp = now,
/// stateVersion = 0, counter + 1) and returns the new one. In split mode the Java broker
/// does this for every chunk, after putting its DataVersion object in the chunk but before
/// the chunk is serialized: each chunk carries a version one counter above the previous
/// chunk's, across rounds too.
pub fn next_version(version: &mut DataVersion, now_ms: i64) -> DataVersion {
    version.counter += 1;
    version.state_version = 0;
    version.timestamp = now_ms;
    *version
}

/// The body of one chunk: the table's topics at `positions`, with the data version moved on
/// first. Loadgen hosts no static topics, so the mapping map is empty in every chunk, the
/// last one included (as a Java broker without static topics sends it).
pub fn chunk_body(
    table: &mut TopicTable,
    workload: &Workload,
    positions: Range<usize>,
    now_ms: i64,
) -> RegisterBrokerBody {
    next_version(&mut table.data_version, now_ms);
    table.body_of(workload, positions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{
        encode_register_body, BodyEncodingKind, BodyFormat, BrokerVersion, TopicNames, WorkloadSpec,
    };
    use meridian_protocol::body::{decode_register_body, BodyEncoding};

    fn workload(topics: u32) -> Workload {
        Workload::build(WorkloadSpec {
            prefix: String::new(),
            clusters: 1,
            broker_groups: 1,
            churn_groups: 0,
            slaves: 0,
            topics,
            width: 1,
            per_broker: 0,
            names: TopicNames::Short,
            queue_nums: vec![4, 8],
            seed: 1,
        })
        .unwrap()
    }

    #[test]
    fn chunks_are_full_then_one_remainder_even_when_empty() {
        assert_eq!(chunk_ranges(10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(chunk_ranges(8, 4), vec![0..4, 4..8, 8..8], "an exact multiple still ends with an empty chunk");
        assert_eq!(chunk_ranges(3, 4), vec![0..3], "fewer topics than a chunk: one frame");
        assert_eq!(chunk_ranges(0, 4), vec![0..0]);
        assert_eq!(chunk_ranges(5, 1), vec![0..1, 1..2, 2..3, 3..4, 4..5, 5..5]);
        // 100,200 topics in chunks of 800 (the Java default): 125 full chunks and 200 more.
        let big = chunk_ranges(100_200, 800);
        assert_eq!(big.len(), 126);
        assert_eq!(big[125], 100_000..100_200);
        assert!(big.windows(2).all(|w| w[0].end == w[1].start), "contiguous");
    }

    #[test]
    fn every_chunk_carries_the_next_data_version_across_rounds() {
        let w = workload(10);
        let mut table = TopicTable::new(&w, 0, 1_000);
        assert_eq!(table.topic_count(), 10);
        let mut seen = Vec::new();
        for round in 0..3i64 {
            if round == 2 {
                // A real topic change between rounds bumps the version once more.
                assert_eq!(table.change(&w, 0.1, 5_000).len(), 1);
            }
            for (i, range) in chunk_ranges(table.topic_count(), 4).into_iter().enumerate() {
                let now = 2_000 + round * 100 + i as i64;
                let body = chunk_body(&mut table, &w, range.clone(), now);
                assert_eq!(body.data_version, table.data_version, "the chunk carries the moved-on version");
                assert_eq!(body.data_version.timestamp, now);
                assert_eq!(body.topic_configs.len(), range.len());
                assert!(body.topic_queue_mapping_infos.is_empty());
                seen.push(body.data_version.counter);
            }
        }
        // Starts at 1; chunks 2,3,4 | 5,6,7 | change → 8 | 9,10,11.
        assert_eq!(seen, vec![2, 3, 4, 5, 6, 7, 9, 10, 11]);
    }

    #[test]
    fn chunks_cover_the_table_once_and_decode_in_every_format() {
        let w = workload(11);
        let mut table = TopicTable::new(&w, 0, 1);
        table.change(&w, 0.3, 2);
        let whole = table.body(&w);
        for encoding in [BodyEncodingKind::None, BodyEncodingKind::Deflate, BodyEncodingKind::Zstd] {
            for version in [BrokerVersion::V5, BrokerVersion::V4] {
                let format = BodyFormat { version, encoding, zstd_level: 3 };
                let kind = match encoding {
                    BodyEncodingKind::None => BodyEncoding::Json,
                    BodyEncodingKind::Deflate => BodyEncoding::Compressed,
                    BodyEncodingKind::Zstd => BodyEncoding::Zstd,
                };
                let mut names = Vec::new();
                for range in chunk_ranges(table.topic_count(), 4) {
                    let body = chunk_body(&mut table, &w, range, 3);
                    let bytes = encode_register_body(&body, &format);
                    let back = decode_register_body(&bytes, format.request_version(), kind, 1 << 20).unwrap();
                    assert_eq!(back.data_version, body.data_version, "{format:?}");
                    names.extend(back.topic_configs.iter().map(|t| (t.topic_name.to_string(), t.read_queue_nums)));
                }
                let expected: Vec<_> =
                    whole.topic_configs.iter().map(|t| (t.topic_name.to_string(), t.read_queue_nums)).collect();
                assert_eq!(names, expected, "{format:?}");
            }
        }
    }
}
