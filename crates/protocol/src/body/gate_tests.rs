//! Tests of charged decompression: a bomb stops at the gate having allocated at most one
//! growth step past what it was granted, nothing stays charged after a refusal, and a
//! legitimate body leaves exactly its decoded estimate charged.
//! A per-thread counting allocator measures what each decode really allocated.

use super::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

const MIB: usize = 1024 * 1024;

/// Counts the heap bytes each thread holds, and its peak, on top of the system allocator.
struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static PEAK_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE_BYTES.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK_BYTES.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        note(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `work` and returns its result with the most heap it held at once on this thread
/// beyond what was held before.
fn heap_peak<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE_BYTES.with(Cell::get);
    PEAK_BYTES.with(|peak| peak.set(before));
    let result = work();
    let peak = PEAK_BYTES.with(Cell::get);
    (result, (peak - before) as usize)
}

/// A budget of `limit_bytes` that records what is charged now and at most.
struct CountingGate {
    limit_bytes: usize,
    charged_bytes: usize,
    peak_bytes: usize,
}

impl CountingGate {
    fn new(limit_bytes: usize) -> CountingGate {
        CountingGate { limit_bytes, charged_bytes: 0, peak_bytes: 0 }
    }
}

impl MemoryGate for CountingGate {
    fn reserve(&mut self, bytes: usize) -> Result<(), BodyError> {
        if self.charged_bytes + bytes > self.limit_bytes {
            return Err(BodyError::MemoryBudgetExhausted { registration_memory_bytes_max: self.limit_bytes });
        }
        self.charged_bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.charged_bytes);
        Ok(())
    }

    fn release(&mut self, bytes: usize) {
        self.charged_bytes = self.charged_bytes.checked_sub(bytes).expect("released more than was charged");
    }
}

/// `total_bytes` zeros, deflated (zlib-wrapped or raw) a megabyte at a time.
fn deflated_zeros(zlib_wrapped: bool, total_bytes: usize) -> Vec<u8> {
    let zeros = vec![0u8; MIB];
    let level = flate2::Compression::fast();
    let mut out = Vec::new();
    if zlib_wrapped {
        let mut encoder = flate2::write::ZlibEncoder::new(&mut out, level);
        (0..total_bytes / MIB).for_each(|_| encoder.write_all(&zeros).unwrap());
        encoder.finish().unwrap();
    } else {
        let mut encoder = flate2::write::DeflateEncoder::new(&mut out, level);
        (0..total_bytes / MIB).for_each(|_| encoder.write_all(&zeros).unwrap());
        encoder.finish().unwrap();
    }
    out
}

fn zstd_zeros(total_bytes: usize) -> Vec<u8> {
    let zeros = vec![0u8; MIB];
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    (0..total_bytes / MIB).for_each(|_| encoder.write_all(&zeros).unwrap());
    encoder.finish().unwrap()
}

/// What a refused bomb may hold beyond its grant: one growth step (4 MiB), the inflater's
/// or zstd decoder's state, and the error.
const REFUSED_SLACK_BYTES: usize = 5 * MIB;

#[test]
fn deflate_bomb_stops_at_the_gate_with_bounded_allocation() {
    for zlib_wrapped in [true, false] {
        let bomb = deflated_zeros(zlib_wrapped, 64 * MIB);
        let mut gate = CountingGate::new(16 * MIB);
        let (result, peak_bytes) =
            heap_peak(|| decode_register_body_metered(&bomb, 479, BodyEncoding::Compressed, 512 * MIB, &mut gate));
        let error = result.unwrap_err();
        assert!(
            matches!(error, BodyError::MemoryBudgetExhausted { registration_memory_bytes_max } if registration_memory_bytes_max == 16 * MIB)
        );
        assert!(error.to_string().contains("registrationMemoryBytesMax"), "{error}");
        assert!(gate.peak_bytes <= 16 * MIB);
        assert!(peak_bytes <= 16 * MIB + REFUSED_SLACK_BYTES, "allocated {peak_bytes} bytes for a 16 MiB grant");
        assert_eq!(gate.charged_bytes, 0, "a refusal leaves nothing charged");
    }
}

#[test]
fn zstd_bomb_stops_at_the_gate_with_bounded_allocation() {
    let bomb = zstd_zeros(64 * MIB);
    let mut gate = CountingGate::new(16 * MIB);
    let (result, peak_bytes) =
        heap_peak(|| decode_register_body_metered(&bomb, 479, BodyEncoding::Zstd, 512 * MIB, &mut gate));
    assert!(matches!(result.unwrap_err(), BodyError::MemoryBudgetExhausted { .. }));
    assert!(peak_bytes <= 16 * MIB + REFUSED_SLACK_BYTES, "allocated {peak_bytes} bytes for a 16 MiB grant");
    assert_eq!(gate.charged_bytes, 0, "a refusal leaves nothing charged");
}

#[test]
fn a_refusal_at_the_cap_leaves_nothing_charged() {
    let mut gate = CountingGate::new(64 * MIB);
    let bomb = deflated_zeros(true, 8 * MIB);
    let error = decode_register_body_metered(&bomb, 479, BodyEncoding::Compressed, MIB, &mut gate).unwrap_err();
    assert!(matches!(error, BodyError::DecompressedTooLarge { .. }), "{error}");
    assert_eq!(gate.charged_bytes, 0);
    let error =
        decode_register_body_metered(&zstd_zeros(8 * MIB), 479, BodyEncoding::Zstd, MIB, &mut gate).unwrap_err();
    assert!(matches!(error, BodyError::DecompressedTooLarge { .. }), "{error}");
    assert_eq!(gate.charged_bytes, 0);
    // Inflated fine, but the layout is zeros: the inflated bytes are given back too.
    let error =
        decode_register_body_metered(&deflated_zeros(true, MIB), 479, BodyEncoding::Compressed, 2 * MIB, &mut gate)
            .unwrap_err();
    assert!(matches!(error, BodyError::Compressed { .. }), "{error}");
    assert!(gate.charged_bytes <= MIB, "at most the decoded estimate stays: {}", gate.charged_bytes);
}

/// A body of `topics` topics in every encoding decodes the same with a gate as without,
/// and leaves only its decoded estimate charged, within a small factor of its JSON size.
#[test]
fn legitimate_bodies_decode_the_same_and_leave_their_estimate_charged() {
    let topic_configs: Vec<TopicConfig> = (0..2_000)
        .map(|i| TopicConfig {
            topic_name: format!("prod_trade_refund_notify_{i:06}"),
            read_queue_nums: 8,
            write_queue_nums: 8,
            perm: 6,
            topic_sys_flag: 0,
            order: false,
            topic_filter_type: TopicFilterType::SingleTag,
            attributes: Vec::new(),
        })
        .collect();
    let body = RegisterBrokerBody { topic_configs: topic_configs.into(), ..RegisterBrokerBody::default() };
    let mut json = Vec::new();
    encode_register_body_json(&mut json, &body);
    let mut compressed = Vec::new();
    encode_register_body_compressed(&mut compressed, &body, 479, true);
    let zstd = zstd::encode_all(json.as_slice(), 3).unwrap();
    for (encoding, wire) in
        [(BodyEncoding::Json, &json), (BodyEncoding::Compressed, &compressed), (BodyEncoding::Zstd, &zstd)]
    {
        let mut gate = CountingGate::new(64 * MIB);
        let metered = decode_register_body_metered(wire, 479, encoding, 64 * MIB, &mut gate).unwrap();
        assert_eq!(metered, decode_register_body(wire, 479, encoding, 64 * MIB).unwrap(), "{encoding:?}");
        assert_eq!(metered.topic_configs.len(), 2_000);
        assert!(gate.charged_bytes > 0 && gate.charged_bytes <= 2 * json.len(), "{encoding:?}: {}", gate.charged_bytes);
        // The zstd decoder's own state (its window: 2 MiB at level 3) comes on top.
        let decoder_bytes = if encoding == BodyEncoding::Zstd { 3 * MIB } else { 0 };
        assert!(gate.peak_bytes <= 3 * json.len() + decoder_bytes, "{encoding:?}: peak {}", gate.peak_bytes);
        // The timed decode gives the same body and says which stages ran.
        let mut stages = DecodeStages::default();
        let mut gate = CountingGate::new(64 * MIB);
        let timed = decode_register_body_timed(wire, 479, encoding, 64 * MIB, &mut gate, &mut stages).unwrap();
        assert_eq!(timed, metered, "{encoding:?}");
        assert_eq!(stages.inflate.is_some(), encoding != BodyEncoding::Json, "{encoding:?}: {stages:?}");
        assert!(stages.scan > std::time::Duration::ZERO, "{encoding:?}: {stages:?}");
    }
}
