//! The main thread of a run: starts the workers, merges their reports into progress lines
//! and HDR intervals, handles Ctrl-C, and prints the final table and JSON.
//! Must not: send requests or touch a socket (the workers do).

use super::plan::{Kind, Plan, Prepared};
use super::scale::{self, worker_main};
use crate::cli::RunArgs;
use crate::cpu::{CpuSample, CpuUsage};
use crate::ctx::{Report, Shared};
use crate::output::{self, Context, HdrLog, Progress};
use crate::propagation::{self, ObserverSpec};
use crate::runtime;
use crate::stats::{summarize, Metrics};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the main thread looks at reports, the clock and Ctrl-C.
const MAIN_POLL: Duration = Duration::from_millis(20);
/// Longest wait for the workers' interval reports before a progress line is printed anyway.
const REPORT_WAIT_MAX: Duration = Duration::from_millis(250);

/// Runs a prepared scenario to its end; returns the process exit code.
pub(super) fn execute(p: Prepared) -> i32 {
    let Prepared { name, config, target_texts, targets, placement, run, phases, mode, plan } = p;
    let stop = stop_on_signals();
    let (report_tx, report_rx) = flume::unbounded();
    let phases = Phases::new(&phases);
    let duration = run.duration.0;
    let shared = Arc::new(Shared::new(
        placement.threads,
        targets,
        stop.clone(),
        duration,
        phases.offsets.clone(),
        report_tx,
        run.drain.0,
    ));
    let plan = Arc::new(plan);
    let base = SystemTime::now();
    let hdr = match run.hdr.as_deref().map(|path| HdrLog::create(path, base)).transpose() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("meridian-loadgen: {e}");
            return 2;
        }
    };
    let placement_text = placement.describe();
    if !run.quiet {
        eprintln!(
            "meridian-loadgen {name}: targets {} | {placement_text} | {mode} | load {} s",
            target_texts.join(";"),
            duration.as_secs_f64()
        );
    }
    let workers = {
        let (shared, plan) = (shared.clone(), plan.clone());
        runtime::spawn("loadgen", &placement, move |id| worker_main(id, shared.clone(), plan.clone()))
    };
    let workers = match workers {
        Ok(w) => w,
        Err(e) => {
            eprintln!("meridian-loadgen: {e}");
            return 1;
        }
    };
    let mut monitor = Monitor::new(&run, placement.threads, &shared, &phases, &stop, hdr, base);
    monitor.watch(&report_rx);
    let mut observed = monitor.finish();
    if let Err(e) = workers.join() {
        eprintln!("meridian-loadgen: {e}");
        return 1;
    }
    observed.finished = Instant::now();
    let mut config = config;
    config["placement_detail"] = json!(placement);
    let run_text = RunText { name, target_texts: &target_texts, placement: &placement_text, mode: &mode };
    report(&run_text, &run, &plan, &shared, &phases, observed, config)
}

/// First Ctrl-C (or SIGTERM): stop cleanly and still report. A second one: exit now.
fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone());
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    stop
}

/// The load phases: their names and their offsets from the start of the load.
struct Phases {
    names: Vec<&'static str>,
    offsets: Vec<Duration>,
}

impl Phases {
    fn new(phases: &[(&'static str, Duration)]) -> Phases {
        Phases {
            names: phases.iter().map(|(name, _)| *name).collect(),
            offsets: phases.iter().map(|(_, offset)| *offset).collect(),
        }
    }

    /// The phase running `since` the start of the load.
    fn at(&self, since: Duration) -> &'static str {
        self.names[self.offsets.partition_point(|o| *o <= since).saturating_sub(1)]
    }
}

/// What the main thread saw while the workers ran.
struct Observed {
    total: Metrics,
    started: Instant,
    /// When every worker thread had ended.
    finished: Instant,
    stop_seen: Option<Instant>,
    cpu_load_start: Option<CpuSample>,
    cpu_load_end: Option<CpuSample>,
    /// CPU sampled as each phase began.
    phase_cpu: Vec<Option<CpuSample>>,
    /// VmRSS (KiB) of the first --pid before the setup, at t0 and at the end of the load.
    rss_kib: [Option<u64>; 3],
}

/// The main thread's loop state: merges reports, prints a progress line (and an HDR
/// interval) once every running worker reported the same generation, notices Ctrl-C, and
/// samples CPU at the start and the end of the load phase.
struct Monitor<'a> {
    run: &'a RunArgs,
    threads: usize,
    shared: &'a Shared,
    phases: &'a Phases,
    stop: &'a AtomicBool,
    hdr: Option<HdrLog>,
    base: SystemTime,
    progress: Progress,
    total: Metrics,
    interval: Metrics,
    started: Instant,
    /// Start of the current interval, as a monotonic and a wall-clock time.
    tick_from: (Instant, SystemTime),
    cpu_tick: CpuSample,
    cpu_load_start: Option<CpuSample>,
    cpu_load_end: Option<CpuSample>,
    phase_cpu: Vec<Option<CpuSample>>,
    rss_kib: [Option<u64>; 3],
    stop_seen: Option<Instant>,
    /// Workers that sent their final report.
    done: usize,
    /// (generation asked for, when, reports received) of the pending progress line.
    asked: Option<(u64, Instant, usize)>,
    generation: u64,
}

impl<'a> Monitor<'a> {
    fn new(
        run: &'a RunArgs,
        threads: usize,
        shared: &'a Shared,
        phases: &'a Phases,
        stop: &'a AtomicBool,
        hdr: Option<HdrLog>,
        base: SystemTime,
    ) -> Monitor<'a> {
        let started = Instant::now();
        Monitor {
            run,
            threads,
            shared,
            phases,
            stop,
            hdr,
            base,
            progress: Progress::new(!run.quiet),
            total: Metrics::new(phases.names.len()),
            interval: Metrics::new(phases.names.len()),
            started,
            tick_from: (started, base),
            cpu_tick: crate::cpu::sample(&run.pid),
            cpu_load_start: None,
            cpu_load_end: None,
            phase_cpu: phases.names.iter().map(|_| None).collect(),
            rss_kib: [first_rss(&run.pid), None, None],
            stop_seen: None,
            done: 0,
            asked: None,
            generation: 0,
        }
    }

    /// Runs until every worker sent its final report (or all of them are gone).
    fn watch(&mut self, reports: &flume::Receiver<Report>) {
        while self.done < self.threads {
            match reports.recv_timeout(MAIN_POLL) {
                Ok(report) => self.receive(report),
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            let t0 = self.shared.t0();
            self.notice_stop_and_load(now, t0);
            if self.asked.is_none() && now.duration_since(self.tick_from.0) >= self.run.progress_interval.0 {
                self.generation += 1;
                self.shared.report_generation.store(self.generation, Ordering::Release);
                self.asked = Some((self.generation, now, 0));
            }
            let complete = self.asked.is_some_and(|(_, at, received)| {
                received + self.done >= self.threads || now.duration_since(at) >= REPORT_WAIT_MAX
            });
            if complete {
                let (_, at, _) = self.asked.take().expect("complete implies asked");
                self.print_interval(at, t0);
            }
        }
    }

    fn receive(&mut self, report: Report) {
        match report {
            Report::Interval { generation, metrics } => {
                self.interval.merge(&metrics);
                if let Some((wanted, _, received)) = self.asked.as_mut() {
                    if generation == *wanted {
                        *received += 1;
                    }
                }
            }
            Report::Done { metrics } => {
                self.interval.merge(&metrics);
                self.done += 1;
            }
        }
    }

    /// Notes the first Ctrl-C, and samples CPU when the load starts and when it ends.
    fn notice_stop_and_load(&mut self, now: Instant, t0: Option<Instant>) {
        if self.stop_seen.is_none() && self.stop.load(Ordering::Relaxed) {
            self.stop_seen = Some(now);
            self.progress.finish();
            eprintln!("meridian-loadgen: stopping (draining, then unregistering); Ctrl-C again to exit at once");
        }
        if let (Some(_), None) = (t0, &self.cpu_load_start) {
            self.cpu_load_start = Some(crate::cpu::sample(&self.run.pid));
            self.rss_kib[1] = first_rss(&self.run.pid);
        }
        if let (Some(t0), None) = (t0, &self.cpu_load_end) {
            for (i, offset) in self.phases.offsets.iter().enumerate() {
                if self.phase_cpu[i].is_none() && now >= t0 + *offset && self.stop_seen.is_none() {
                    self.phase_cpu[i] = Some(crate::cpu::sample(&self.run.pid));
                }
            }
            if now >= t0 + self.run.duration.0 || self.stop_seen.is_some() {
                self.cpu_load_end = Some(crate::cpu::sample(&self.run.pid));
                self.rss_kib[2] = first_rss(&self.run.pid);
            }
        }
    }

    /// Shows the interval ending `at`, writes it to the HDR log, and starts the next one.
    fn print_interval(&mut self, at: Instant, t0: Option<Instant>) {
        let length = at.duration_since(self.tick_from.0);
        let cpu_now = crate::cpu::sample(&self.run.pid);
        let cpu = crate::cpu::usage(&self.cpu_tick, &cpu_now);
        let label = match t0 {
            None => "setup",
            Some(t0) if at < t0 + self.run.duration.0 && self.stop_seen.is_none() => {
                self.phases.at(at.duration_since(t0))
            }
            Some(_) => "drain/teardown",
        };
        let elapsed = at.duration_since(self.started);
        self.progress.show(elapsed, label, &self.interval, length.as_secs_f64(), Some(&cpu));
        if let Some(log) = self.hdr.as_mut() {
            if let Err(e) = log.write(&self.phases.names, &self.interval, self.tick_from.1, length) {
                eprintln!("meridian-loadgen: {e}");
                self.hdr = None;
            }
        }
        self.total.merge(&self.interval);
        self.interval = Metrics::new(self.phases.names.len());
        self.tick_from = (at, self.base + at.duration_since(self.started));
        self.cpu_tick = cpu_now;
    }

    /// Writes the last, partial interval and folds it into the total.
    fn finish(mut self) -> Observed {
        if let Some(log) = self.hdr.as_mut() {
            let length = Instant::now().duration_since(self.tick_from.0);
            if let Err(e) = log.write(&self.phases.names, &self.interval, self.tick_from.1, length) {
                eprintln!("meridian-loadgen: {e}");
            }
        }
        self.progress.finish();
        self.total.merge(&self.interval);
        Observed {
            total: self.total,
            started: self.started,
            finished: Instant::now(),
            stop_seen: self.stop_seen,
            cpu_load_start: self.cpu_load_start,
            cpu_load_end: self.cpu_load_end,
            phase_cpu: self.phase_cpu,
            rss_kib: self.rss_kib,
        }
    }
}

/// How a run describes itself in the table and the JSON.
struct RunText<'a> {
    name: &'static str,
    target_texts: &'a [String],
    placement: &'a str,
    mode: &'a str,
}

/// Prints the final table and summary, writes the JSON, and picks the exit code.
fn report(
    text: &RunText<'_>,
    run: &RunArgs,
    plan: &Plan,
    shared: &Shared,
    phases: &Phases,
    observed: Observed,
    config: Value,
) -> i32 {
    let Observed { total, started, finished, stop_seen, cpu_load_start, cpu_load_end, phase_cpu, rss_kib } = observed;
    let duration = run.duration.0;
    // Figures over the load phase only (setup and teardown excluded).
    let load_seconds = shared.t0().map_or(0.0, |t0| {
        let end =
            (t0 + duration).min(stop_seen.unwrap_or(finished)).min(shared.load_done().unwrap_or(finished)).max(t0);
        end.duration_since(t0).as_secs_f64()
    });
    let phase_seconds: Vec<f64> = phases
        .offsets
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let end = phases.offsets.get(i + 1).copied().unwrap_or(duration).as_secs_f64().min(load_seconds);
            (end - start.as_secs_f64()).max(0.0)
        })
        .collect();
    let cpu_from = cpu_load_start.unwrap_or_else(|| crate::cpu::sample(&run.pid));
    let cpu_to = cpu_load_end.clone().unwrap_or_else(|| crate::cpu::sample(&run.pid));
    let cpu = crate::cpu::usage(&cpu_from, &cpu_to);
    let notes = shared.notes.lock().map(|n| n.clone()).unwrap_or_default();
    // A failed scale run stopped itself: it says why below, it was not interrupted.
    let interrupted = stop_seen.is_some() && scale::failure(plan).is_none();
    let ctx = Context {
        scenario: text.name,
        targets: text.target_texts,
        placement: text.placement,
        mode: text.mode,
        phases: &phases.names,
        phase_seconds: &phase_seconds,
        cpu: &cpu,
        has_lookups: plan.load.is_some(),
        interrupted,
        notes: &notes,
    };
    output::print_table(&ctx, &total);
    let phase_cpu: Vec<Option<CpuUsage>> = (0..phase_cpu.len())
        .map(|i| {
            let to = phase_cpu.get(i + 1).cloned().flatten().or_else(|| cpu_load_end.clone())?;
            Some(crate::cpu::usage(phase_cpu[i].as_ref()?, &to))
        })
        .collect();
    let measured = scale::Measured { phase_cpu: &phase_cpu, rss_kib, loadgen_hwm_kib: crate::cpu::self_hwm_kib() };
    let extra = extra_results(plan, &total, load_seconds, finished.duration_since(started), &measured);
    if let Some(text) = extra.get("summary").and_then(Value::as_str) {
        let _ = writeln!(std::io::stdout(), "{text}");
    }
    // stdout may be a pipe that closes early; the JSON below must still be written.
    let _ = std::io::stdout().flush();
    if let Some(path) = &run.json {
        let document = output::to_json(&ctx, config, &total, extra);
        if let Err(e) = output::write_json(path, &document) {
            eprintln!("meridian-loadgen: {e}");
            return 1;
        }
    }
    let unexpected = total.lookup_errors() + total.other_errors();
    if let Some(reason) = scale::failure(plan) {
        eprintln!("meridian-loadgen: scale failed: {reason}");
        1
    } else if interrupted {
        130
    } else if unexpected > 0 {
        eprintln!("meridian-loadgen: {unexpected} unexpected error(s), see the table");
        3
    } else {
        0
    }
}

fn extra_results(
    plan: &Plan,
    total: &Metrics,
    load_seconds: f64,
    wall: Duration,
    measured: &scale::Measured<'_>,
) -> Value {
    let mut extra = json!({ "load_seconds": load_seconds, "wall_seconds": wall.as_secs_f64() });
    if let Kind::Scale(spec) = &plan.kind {
        let (text, figures) = scale::results(plan, spec, total, measured);
        extra["scale"] = figures;
        extra["phase_cpu"] = json!(measured.phase_cpu);
        extra["summary"] = json!(text);
    }
    if let (Kind::Storm, [quiet, storm]) = (&plan.kind, total.lookups.as_slice()) {
        let (q, s) = (summarize(&quiet.latency), summarize(&storm.latency));
        let ratio = if q.p99_us > 0 { s.p99_us as f64 / q.p99_us as f64 } else { 0.0 };
        extra["p99_quiet_us"] = json!(q.p99_us);
        extra["p99_storm_us"] = json!(s.p99_us);
        extra["p99_ratio_storm_vs_quiet"] = json!((ratio * 100.0).round() / 100.0);
        let storms = total.hists.get("register.storm").map_or(0, |h| h.len());
        extra["summary"] = json!(format!(
            "storm: lookup p99 {} quiet vs {} during {} re-registrations → ×{:.2}",
            output::micros_text(q.p99_us),
            output::micros_text(s.p99_us),
            storms,
            ratio
        ));
    }
    if let Kind::Churn { observers, .. } = &plan.kind {
        if observers.any() {
            let (text, figures) = propagation_summary(observers, total);
            extra["propagation"] = figures;
            extra["summary"] = json!(text);
        }
    }
    extra
}

/// churn with watchers or pollers: one line per (client kind, change) with what was seen,
/// missed and how long it took, and the same figures for the JSON.
fn propagation_summary(spec: &ObserverSpec, total: &Metrics) -> (String, Value) {
    let pollers = match spec.pollers {
        0 => "no pollers".to_string(),
        n => format!("{n} pollers every {}", output::micros_text(spec.poll_interval.as_micros() as u64)),
    };
    let mut text = format!(
        "propagation to clients (churn event start → client holds a route showing it; {} watchers, {pollers}; \
         missed = not seen before the group's next event or the end)\n",
        spec.watchers
    );
    text.push_str(&format!(
        "{:<26} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "clients", "events", "seen", "missed", "p50", "p90", "p99", "max"
    ));
    let mut figures = serde_json::Map::new();
    for class in propagation::CLASSES.into_iter().filter(|c| spec.count(*c) > 0) {
        for change in propagation::CHANGES {
            let name = propagation::hist_name(class, change);
            let s = total.hists.get(name).map(summarize).unwrap_or_default();
            let missed = total.counts.get(&propagation::missed_name(class, change)).copied().unwrap_or(0);
            let events = total.counts.get(propagation::events_name(change)).copied().unwrap_or(0);
            let time = |us: u64| if s.count == 0 { "-".to_string() } else { output::micros_text(us) };
            text.push_str(&format!(
                "\n{name:<26} {events:>7} {:>7} {missed:>7} {:>9} {:>9} {:>9} {:>9}",
                s.count,
                time(s.p50_us),
                time(s.p90_us),
                time(s.p99_us),
                time(s.max_us)
            ));
            figures.insert(
                name.to_string(),
                json!({ "events": events, "observers": spec.count(class), "seen": s.count, "missed": missed, "time_us": s }),
            );
        }
    }
    (text, Value::Object(figures))
}

/// VmRSS of the first `--pid`, if any and readable.
fn first_rss(pids: &[u32]) -> Option<u64> {
    crate::cpu::rss_kib(*pids.first()?)
}
