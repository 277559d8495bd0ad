//! Everything loadgen prints or writes: the live progress line (rewritten in place on a
//! terminal, plain lines otherwise), the final table, the `--json` document and the
//! `--hdr` interval log.
//!
//! Must not: measure anything; it only formats `Metrics` and `CpuUsage`.

use crate::cpu::CpuUsage;
use crate::stats::{summarize, Metrics, Summary};
use hdrhistogram::serialization::interval_log::{IntervalLogWriter, IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// `1234567` → `1.23M`, `31240` → `31.2k`.
pub fn si(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{:.2}G", value / 1e9)
    } else if abs >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if abs >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if abs >= 100.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// `87` → `87us`, `12345` → `12.3ms`, `2500000` → `2.50s`.
pub fn micros_text(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}us")
    }
}

pub struct Progress {
    terminal: bool,
    enabled: bool,
    width: usize,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        Progress { terminal: std::io::stderr().is_terminal(), enabled, width: 0 }
    }

    /// One line: elapsed time, lookup rate and p99, registrations, errors, CPU.
    pub fn show(
        &mut self,
        elapsed: Duration,
        label: &str,
        interval: &Metrics,
        interval_s: f64,
        cpu: Option<&CpuUsage>,
    ) {
        if !self.enabled {
            return;
        }
        let mut line = format!("[{:>6.1}s] {label}", elapsed.as_secs_f64());
        let answered: u64 = interval.lookups.iter().map(|l| l.answered()).sum();
        if !interval.lookups.is_empty() {
            let mut merged = crate::stats::histogram();
            for l in &interval.lookups {
                merged.add(&l.latency).expect("histograms share bounds");
            }
            let p99 = if merged.is_empty() { "-".to_string() } else { micros_text(merged.value_at_quantile(0.99)) };
            line.push_str(&format!(" | lookups {}/s p99 {p99}", si(answered as f64 / interval_s.max(1e-9))));
        }
        // Registration answer times are recorded under `register.*` (see scenario.rs).
        let registrations: u64 =
            interval.hists.iter().filter(|(k, _)| k.starts_with("register.")).map(|(_, h)| h.len()).sum();
        if registrations > 0 {
            line.push_str(&format!(" | registrations {registrations}"));
        }
        // Split mode: broker rounds and the chunks they were sent in.
        let count = |name| interval.counts.get(name).copied().unwrap_or(0);
        let (rounds, chunks) = (count(crate::split::ROUNDS), count(crate::split::CHUNKS));
        if chunks > 0 {
            line.push_str(&format!(" (split: {rounds} rounds, {chunks} chunks)"));
        }
        let errors = interval.lookup_errors() + interval.other_errors();
        line.push_str(&format!(" | errors {errors}"));
        if let Some(cpu) = cpu {
            line.push_str(&format!(" | cpu loadgen {:.2}", cpu.loadgen_cores));
            for t in &cpu.targets {
                if let Some(c) = t.cores {
                    line.push_str(&format!(" pid {} {c:.2}", t.pid));
                }
            }
        }
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let pad = self.width.saturating_sub(line.len());
            let _ = write!(err, "\r{line}{}", " ".repeat(pad));
            self.width = line.len();
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Ends the in-place line so later output starts on a fresh one.
    pub fn finish(&mut self) {
        if self.enabled && self.terminal && self.width > 0 {
            let _ = writeln!(std::io::stderr());
            self.width = 0;
        }
    }
}

/// The `--hdr` log: one histogram per metric per progress interval, values in µs.
pub struct HdrLog {
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
    base: SystemTime,
    started: bool,
}

impl HdrLog {
    pub fn create(path: &Path, base: SystemTime) -> Result<HdrLog, String> {
        let file = File::create(path).map_err(|e| format!("cannot create --hdr file {}: {e}", path.display()))?;
        Ok(HdrLog { file: BufWriter::new(file), serializer: V2DeflateSerializer::new(), base, started: false })
    }

    fn writer(&mut self) -> Result<IntervalLogWriter<'_, '_, BufWriter<File>, V2DeflateSerializer>, String> {
        let mut builder = IntervalLogWriterBuilder::new();
        if !self.started {
            builder.add_comment("meridian-loadgen interval log; values are microseconds; tags name the metric");
            builder.with_start_time(self.base).with_base_time(self.base);
        }
        self.started = true;
        builder.begin_log_with(&mut self.file, &mut self.serializer).map_err(|e| format!("--hdr: {e}"))
    }

    pub fn write(
        &mut self,
        phases: &[&str],
        metrics: &Metrics,
        from: SystemTime,
        length: Duration,
    ) -> Result<(), String> {
        let start = from.duration_since(self.base).unwrap_or_default();
        let mut entries: Vec<(String, &hdrhistogram::Histogram<u64>)> = Vec::new();
        for (i, l) in metrics.lookups.iter().enumerate() {
            entries.push((lookup_name(phases, i), &l.latency));
        }
        for (name, h) in &metrics.hists {
            entries.push((name.clone(), h));
        }
        let mut writer = self.writer()?;
        for (name, h) in entries {
            if h.is_empty() {
                continue;
            }
            let tag = Tag::new(&name);
            writer.write_histogram(h, start, length, tag).map_err(|e| format!("--hdr: {e}"))?;
        }
        drop(writer);
        self.file.flush().map_err(|e| format!("--hdr: {e}"))
    }
}

pub fn lookup_name(phases: &[&str], phase: usize) -> String {
    if phases.len() <= 1 {
        "lookup".to_string()
    } else {
        format!("lookup.{}", phases[phase])
    }
}

/// What the final report needs besides the metrics.
pub struct Context<'a> {
    pub scenario: &'a str,
    pub targets: &'a [String],
    pub placement: &'a str,
    pub mode: &'a str,
    pub phases: &'a [&'a str],
    /// Measured length of each phase, in seconds.
    pub phase_seconds: &'a [f64],
    pub cpu: &'a CpuUsage,
    /// False for scenarios without client load (register): no lookup rows.
    pub has_lookups: bool,
    pub interrupted: bool,
    pub notes: &'a [String],
}

fn row(name: &str, count: u64, rate: Option<f64>, s: &Summary, errors: Option<u64>) -> String {
    let rate = rate.map_or("-".to_string(), si);
    let errors = errors.map_or("-".to_string(), |e| e.to_string());
    if s.count == 0 {
        return format!(
            "{name:<34} {:>10} {rate:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {errors:>7}",
            si(count as f64),
            "-",
            "-",
            "-",
            "-",
            "-"
        );
    }
    format!(
        "{name:<34} {:>10} {rate:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {errors:>7}",
        si(count as f64),
        micros_text(s.p50_us),
        micros_text(s.p90_us),
        micros_text(s.p99_us),
        micros_text(s.p999_us),
        micros_text(s.max_us),
    )
}

/// The human table on stdout.
pub fn print_table(ctx: &Context<'_>, metrics: &Metrics) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    let _ = writeln!(out, "meridian-loadgen {} — targets {}", ctx.scenario, ctx.targets.join(";"));
    let _ = writeln!(out, "placement: {} | {}", ctx.placement, ctx.mode);
    if ctx.interrupted {
        let _ = writeln!(out, "INTERRUPTED: figures cover the run up to Ctrl-C");
    }
    let _ = writeln!(
        out,
        "{:<34} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "metric", "count", "rate/s", "p50", "p90", "p99", "p99.9", "max", "errors"
    );
    let lookups = if ctx.has_lookups { metrics.lookups.as_slice() } else { &[] };
    for (i, l) in lookups.iter().enumerate() {
        let answered = l.answered();
        let seconds = ctx.phase_seconds.get(i).copied().unwrap_or(0.0);
        let rate = (seconds > 0.0).then(|| answered as f64 / seconds);
        let errors = l.errors.values().sum::<u64>();
        let _ =
            writeln!(out, "{}", row(&lookup_name(ctx.phases, i), answered, rate, &summarize(&l.latency), Some(errors)));
        if !l.send_lag.is_empty() {
            let _ =
                writeln!(out, "{}", row("  open-loop send lag", l.send_lag.len(), None, &summarize(&l.send_lag), None));
        }
    }
    for (name, h) in &metrics.hists {
        let _ = writeln!(out, "{}", row(name, h.len(), None, &summarize(h), None));
    }
    let mut any_error = false;
    for (i, l) in metrics.lookups.iter().enumerate() {
        for (key, n) in &l.errors {
            any_error = true;
            let example = metrics.error_examples.get(&format!("lookup: {key}")).cloned().unwrap_or_default();
            let _ = writeln!(out, "error  {}: {key} × {n}  (e.g. {example})", lookup_name(ctx.phases, i));
        }
    }
    for (key, n) in &metrics.errors {
        any_error = true;
        let example = metrics.error_examples.get(key).cloned().unwrap_or_default();
        let _ = writeln!(out, "error  {key} × {n}  (e.g. {example})");
    }
    if !any_error {
        let _ = writeln!(out, "errors: none");
    }
    let not_found: u64 = metrics.lookups.iter().map(|l| l.not_found_expected).sum();
    if not_found > 0 {
        let _ = writeln!(out, "expected TOPIC_NOT_EXIST answers (unknown topics): {not_found}");
    }
    for (key, n) in &metrics.counts {
        let _ = writeln!(out, "count  {key}: {n}");
    }
    for note in ctx.notes {
        let _ = writeln!(out, "note   {note}");
    }
    let _ = writeln!(out, "cpu: {}", ctx.cpu.describe());
}

/// The `--json` document.
pub fn to_json(ctx: &Context<'_>, config: Value, metrics: &Metrics, extra: Value) -> Value {
    let phases = if ctx.has_lookups { metrics.lookups.as_slice() } else { &[] };
    let lookups: Vec<Value> = phases
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let seconds = ctx.phase_seconds.get(i).copied().unwrap_or(0.0);
            json!({
                "name": lookup_name(ctx.phases, i),
                "phase": ctx.phases.get(i),
                "seconds": seconds,
                "answered": l.answered(),
                "ok": l.ok,
                "not_found_expected": l.not_found_expected,
                "errors": l.errors,
                "errors_total": l.errors.values().sum::<u64>(),
                "throughput_rps": if seconds > 0.0 { l.answered() as f64 / seconds } else { 0.0 },
                "latency_us": summarize(&l.latency),
                "send_lag_us": summarize(&l.send_lag),
            })
        })
        .collect();
    let events: serde_json::Map<String, Value> =
        metrics.hists.iter().map(|(k, h)| (k.clone(), json!(summarize(h)))).collect();
    let ok: u64 = metrics.lookups.iter().map(|l| l.ok).sum();
    json!({
        "tool": "meridian-loadgen",
        "version": env!("CARGO_PKG_VERSION"),
        "scenario": ctx.scenario,
        "command_line": std::env::args().collect::<Vec<_>>(),
        "targets": ctx.targets,
        "placement": ctx.placement,
        "mode": ctx.mode,
        "config": config,
        "interrupted": ctx.interrupted,
        "lookups": lookups,
        "lookups_ok_total": ok,
        "events_us": events,
        "counts": metrics.counts,
        "errors": metrics.errors,
        "error_examples": metrics.error_examples,
        "errors_unexpected": metrics.lookup_errors() + metrics.other_errors(),
        "notes": ctx.notes,
        "cpu": ctx.cpu,
        "results": extra,
    })
}

pub fn write_json(path: &Path, value: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).expect("a JSON value always serializes");
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write --json file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(31_240.0), "31.2k");
        assert_eq!(si(512.0), "512");
        assert_eq!(si(7.0), "7");
        assert_eq!(si(2.25), "2.2");
        assert_eq!(micros_text(87), "87us");
        assert_eq!(micros_text(1_500), "1.50ms");
        assert_eq!(micros_text(12_345), "12.3ms");
        assert_eq!(micros_text(2_500_000), "2.50s");
    }

    #[test]
    fn hdr_log_is_readable_back() {
        let dir = std::env::temp_dir().join(format!("loadgen-hdr-test-{}", std::process::id()));
        let base = SystemTime::now();
        let mut log = HdrLog::create(&dir, base).unwrap();
        let mut m = Metrics::new(1);
        m.lookups[0].latency.record(120).unwrap();
        m.record("register.setup", 3_000);
        log.write(&["load"], &m, base, Duration::from_secs(1)).unwrap();
        log.write(&["load"], &m, base + Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        let bytes = std::fs::read(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.matches("#[StartTime").count(), 1, "{text}");
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        let tags: Vec<String> = IntervalLogIterator::new(&bytes)
            .filter_map(|e| match e {
                Ok(LogEntry::Interval(h)) => h.tag().map(|t| t.as_str().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(tags, vec!["lookup", "register.setup", "lookup", "register.setup"]);
    }
}
