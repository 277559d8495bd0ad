//! What a worker measures: lookup latency and outcomes per phase, named event histograms
//! (registration answers, visibility times, connects) and named counters, all mergeable.
//!
//! Workers record into a thread-local `Metrics` with no lock or atomic, hand the interval's
//! `Metrics` to the main thread every second, and start a fresh one; the main thread merges
//! (monoio's "aggregate per thread, merge on demand"). Must not: print or do I/O.

use hdrhistogram::Histogram;
use meridian_protocol::codes;
use serde::Serialize;
use std::collections::BTreeMap;

/// Largest latency a histogram holds, in microseconds (10 minutes); larger values are
/// recorded as this value (they only happen when something is badly stuck).
pub const LATENCY_US_MAX: u64 = 600_000_000;
/// Significant decimal digits the histograms keep (0.1% resolution).
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, HISTOGRAM_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Outcomes of route lookups during one phase.
#[derive(Clone)]
pub struct LookupStats {
    /// Answer time in µs, from the intended send time (open loop) or the send (closed loop).
    pub latency: Histogram<u64>,
    /// Open loop only: how late each request left compared with its schedule, in µs.
    pub send_lag: Histogram<u64>,
    /// Answers that passed every check.
    pub ok: u64,
    /// TOPIC_NOT_EXIST for a topic chosen to be unknown: expected, not an error.
    pub not_found_expected: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Default for LookupStats {
    fn default() -> Self {
        LookupStats {
            latency: histogram(),
            send_lag: histogram(),
            ok: 0,
            not_found_expected: 0,
            errors: BTreeMap::new(),
        }
    }
}

impl LookupStats {
    pub fn answered(&self) -> u64 {
        self.ok + self.not_found_expected + self.errors.values().sum::<u64>()
    }

    fn merge(&mut self, other: &LookupStats) {
        self.latency.add(&other.latency).expect("histograms share bounds");
        self.send_lag.add(&other.send_lag).expect("histograms share bounds");
        self.ok += other.ok;
        self.not_found_expected += other.not_found_expected;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// Everything one worker recorded over some interval.
#[derive(Clone)]
pub struct Metrics {
    /// One entry per phase of the scenario (most have one; `storm` has quiet and storm).
    pub lookups: Vec<LookupStats>,
    /// Named histograms in µs, e.g. `register`, `visible.first`, `connect`.
    pub hists: BTreeMap<String, Histogram<u64>>,
    pub counts: BTreeMap<String, u64>,
    /// Unexpected outcomes outside lookups (registration refused, connect failed, ...).
    pub errors: BTreeMap<String, u64>,
    /// First detail seen for each error key (lookups and others), for the report.
    pub error_examples: BTreeMap<String, String>,
}

impl Metrics {
    pub fn new(phase_count: usize) -> Metrics {
        Metrics {
            lookups: (0..phase_count).map(|_| LookupStats::default()).collect(),
            hists: BTreeMap::new(),
            counts: BTreeMap::new(),
            errors: BTreeMap::new(),
            error_examples: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, name: &str, value_us: u64) {
        if !self.hists.contains_key(name) {
            self.hists.insert(name.to_string(), histogram());
        }
        let hist = self.hists.get_mut(name).expect("inserted above");
        hist.saturating_record(value_us.max(1));
    }

    /// Makes histogram `name` exist even if nothing is ever recorded in it, so the table
    /// and the JSON show an empty row rather than nothing.
    pub fn declare(&mut self, name: &str) {
        if !self.hists.contains_key(name) {
            self.hists.insert(name.to_string(), histogram());
        }
    }

    pub fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    /// An unexpected outcome; `key` groups it (keep it free of topic names), `detail` is kept
    /// once per key as an example.
    pub fn error(&mut self, key: String, detail: impl FnOnce() -> String) {
        self.error_examples.entry(key.clone()).or_insert_with(detail);
        *self.errors.entry(key).or_default() += 1;
    }

    pub fn lookup_error(&mut self, phase: usize, key: String, detail: impl FnOnce() -> String) {
        let example_key = format!("lookup: {key}");
        self.error_examples.entry(example_key).or_insert_with(detail);
        *self.lookups[phase].errors.entry(key).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Metrics) {
        while self.lookups.len() < other.lookups.len() {
            self.lookups.push(LookupStats::default());
        }
        for (mine, theirs) in self.lookups.iter_mut().zip(&other.lookups) {
            mine.merge(theirs);
        }
        for (name, hist) in &other.hists {
            match self.hists.get_mut(name) {
                Some(mine) => mine.add(hist).expect("histograms share bounds"),
                None => {
                    self.hists.insert(name.clone(), hist.clone());
                }
            }
        }
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.error_examples {
            self.error_examples.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// Hands out what was recorded so far and starts over.
    pub fn take(&mut self) -> Metrics {
        std::mem::replace(self, Metrics::new(self.lookups.len()))
    }

    pub fn lookup_errors(&self) -> u64 {
        self.lookups.iter().map(|l| l.errors.values().sum::<u64>()).sum()
    }

    pub fn other_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// `code 17 TOPIC_NOT_EXIST`: the error key of an unexpected response code.
pub fn code_key(code: i32) -> String {
    format!("code {code} {}", codes::response_name(code).unwrap_or("unknown code"))
}

/// Percentiles of a histogram, for the table and the JSON.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

pub fn summarize(hist: &Histogram<u64>) -> Summary {
    if hist.is_empty() {
        return Summary::default();
    }
    Summary {
        count: hist.len(),
        min_us: hist.min(),
        mean_us: (hist.mean() * 10.0).round() / 10.0,
        p50_us: hist.value_at_quantile(0.50),
        p90_us: hist.value_at_quantile(0.90),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        max_us: hist.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Metrics::new(2);
        a.lookups[1].ok = 3;
        a.lookups[1].latency.record(100).unwrap();
        a.record("register", 2_000);
        a.count("sent", 2);
        a.error("register: code 1 SYSTEM_ERROR".into(), || "crc32 not match".into());
        let mut b = Metrics::new(2);
        b.lookups[1].ok = 4;
        b.lookups[1].latency.record(300).unwrap();
        b.lookup_error(0, code_key(17), || "topic X".into());
        b.record("register", 4_000);
        b.record("visible", 10);
        b.count("sent", 5);
        b.error("register: code 1 SYSTEM_ERROR".into(), || "other".into());
        a.merge(&b);
        assert_eq!(a.lookups[1].ok, 7);
        assert_eq!(a.lookups[1].latency.len(), 2);
        assert_eq!(a.lookups[0].errors.get("code 17 TOPIC_NOT_EXIST"), Some(&1));
        assert_eq!(a.hists["register"].len(), 2);
        assert_eq!(a.hists["visible"].len(), 1);
        assert_eq!(a.counts["sent"], 7);
        assert_eq!(a.other_errors(), 2);
        assert_eq!(a.lookup_errors(), 1);
        assert_eq!(a.error_examples["register: code 1 SYSTEM_ERROR"], "crc32 not match");
        let taken = a.take();
        assert_eq!(taken.counts["sent"], 7);
        assert!(a.counts.is_empty());
        assert_eq!(a.lookups.len(), 2);
    }

    #[test]
    fn summaries_and_saturation() {
        let mut m = Metrics::new(1);
        m.record("x", LATENCY_US_MAX * 10);
        let s = summarize(&m.hists["x"]);
        assert_eq!(s.count, 1);
        assert!(s.max_us >= LATENCY_US_MAX && s.max_us <= LATENCY_US_MAX + LATENCY_US_MAX / 1000);
        assert_eq!(summarize(&histogram()).count, 0);
        assert_eq!(code_key(1), "code 1 SYSTEM_ERROR");
    }
}
