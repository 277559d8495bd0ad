//! The main thread of a run: starts the workers, merges their reports into progress lines
//! and HDR intervals, handles Ctrl-C, and prints the final table and JSON.
//! Must not: send requests or touch a socket (the workers do).

use super::plan::{Kind, Plan, Prepared};
use super::workers::worker_main;
use crate::ctx::{Report, Shared};
use crate::output::{self, Context, HdrLog, Progress};
use crate::propagation::{self, ObserverSpec};
use crate::runtime::{self};
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

pub(super) fn execute(p: Prepared) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    // First Ctrl-C (or SIGTERM): stop cleanly and still report. A second one: exit now.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone());
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    let (report_tx, report_rx) = flume::unbounded();
    let phase_offsets: Vec<Duration> = p.phases.iter().map(|(_, offset)| *offset).collect();
    let phase_names: Vec<&str> = p.phases.iter().map(|(name, _)| *name).collect();
    let duration = p.run.duration.0;
    let shared = Arc::new(Shared::new(
        p.placement.threads,
        p.targets.clone(),
        stop.clone(),
        duration,
        phase_offsets.clone(),
        report_tx,
        p.run.drain.0,
    ));
    let plan = Arc::new(p.plan);
    let base = SystemTime::now();
    let mut hdr = match p.run.hdr.as_deref().map(|path| HdrLog::create(path, base)).transpose() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("meridian-loadgen: {e}");
            return 2;
        }
    };
    let placement_text = p.placement.describe();
    if !p.run.quiet {
        eprintln!(
            "meridian-loadgen {}: targets {} | {placement_text} | {} | load {} s",
            p.name,
            p.target_texts.join(";"),
            p.mode,
            duration.as_secs_f64()
        );
    }
    let workers = {
        let (shared, plan) = (shared.clone(), plan.clone());
        runtime::spawn("loadgen", &p.placement, move |id| worker_main(id, shared.clone(), plan.clone()))
    };
    let workers = match workers {
        Ok(w) => w,
        Err(e) => {
            eprintln!("meridian-loadgen: {e}");
            return 1;
        }
    };

    let mut progress = Progress::new(!p.run.quiet);
    let mut total = Metrics::new(p.phases.len());
    let mut interval = Metrics::new(p.phases.len());
    let started = Instant::now();
    let mut tick_from = (started, base);
    let mut cpu_tick = crate::cpu::sample(&p.run.pid);
    let mut cpu_load_start = None;
    let mut cpu_load_end = None;
    let mut stop_seen: Option<Instant> = None;
    let mut done = 0;
    // A progress line waits for every running worker's report of the same generation.
    let mut asked: Option<(u64, Instant, usize)> = None;
    let mut generation = 0;
    while done < p.placement.threads {
        match report_rx.recv_timeout(MAIN_POLL) {
            Ok(Report::Interval { generation: g, metrics }) => {
                interval.merge(&metrics);
                if let Some((wanted, _, received)) = asked.as_mut() {
                    if g == *wanted {
                        *received += 1;
                    }
                }
            }
            Ok(Report::Done { metrics }) => {
                interval.merge(&metrics);
                done += 1;
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if stop_seen.is_none() && stop.load(Ordering::Relaxed) {
            stop_seen = Some(now);
            progress.finish();
            eprintln!("meridian-loadgen: stopping (draining, then unregistering); Ctrl-C again to exit at once");
        }
        let t0 = shared.t0();
        if let (Some(_), None) = (t0, &cpu_load_start) {
            cpu_load_start = Some(crate::cpu::sample(&p.run.pid));
        }
        if let (Some(t0), None) = (t0, &cpu_load_end) {
            if now >= t0 + duration || stop_seen.is_some() {
                cpu_load_end = Some(crate::cpu::sample(&p.run.pid));
            }
        }
        if asked.is_none() && now.duration_since(tick_from.0) >= p.run.progress_interval.0 {
            generation += 1;
            shared.report_generation.store(generation, Ordering::Release);
            asked = Some((generation, now, 0));
        }
        let complete = asked.is_some_and(|(_, at, received)| {
            received + done >= p.placement.threads || now.duration_since(at) >= REPORT_WAIT_MAX
        });
        if complete {
            let (_, at, _) = asked.take().expect("complete implies asked");
            let length = at.duration_since(tick_from.0);
            let cpu_now = crate::cpu::sample(&p.run.pid);
            let cpu = crate::cpu::usage(&cpu_tick, &cpu_now);
            let label = match t0 {
                None => "setup",
                Some(t0) if at < t0 + duration && stop_seen.is_none() => {
                    let since = at.duration_since(t0);
                    phase_names[phase_offsets.partition_point(|o| *o <= since).saturating_sub(1)]
                }
                Some(_) => "drain/teardown",
            };
            progress.show(at.duration_since(started), label, &interval, length.as_secs_f64(), Some(&cpu));
            if let Some(log) = hdr.as_mut() {
                if let Err(e) = log.write(&phase_names, &interval, tick_from.1, length) {
                    eprintln!("meridian-loadgen: {e}");
                    hdr = None;
                }
            }
            total.merge(&interval);
            interval = Metrics::new(p.phases.len());
            tick_from = (at, base + at.duration_since(started));
            cpu_tick = cpu_now;
        }
    }
    if let Some(log) = hdr.as_mut() {
        let length = Instant::now().duration_since(tick_from.0);
        if let Err(e) = log.write(&phase_names, &interval, tick_from.1, length) {
            eprintln!("meridian-loadgen: {e}");
        }
    }
    progress.finish();
    total.merge(&interval);
    if let Err(e) = workers.join() {
        eprintln!("meridian-loadgen: {e}");
        return 1;
    }
    let finished = Instant::now();

    // Figures over the load phase only (setup and teardown excluded).
    let t0 = shared.t0();
    let load_seconds = t0.map_or(0.0, |t0| {
        let end =
            (t0 + duration).min(stop_seen.unwrap_or(finished)).min(shared.load_done().unwrap_or(finished)).max(t0);
        end.duration_since(t0).as_secs_f64()
    });
    let phase_seconds: Vec<f64> = phase_offsets
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let end = phase_offsets.get(i + 1).copied().unwrap_or(duration).as_secs_f64().min(load_seconds);
            (end - start.as_secs_f64()).max(0.0)
        })
        .collect();
    let cpu_from = cpu_load_start.unwrap_or_else(|| crate::cpu::sample(&p.run.pid));
    let cpu_to = cpu_load_end.unwrap_or_else(|| crate::cpu::sample(&p.run.pid));
    let cpu = crate::cpu::usage(&cpu_from, &cpu_to);
    let notes = shared.notes.lock().map(|n| n.clone()).unwrap_or_default();
    let interrupted = stop_seen.is_some();
    let ctx = Context {
        scenario: p.name,
        targets: &p.target_texts,
        placement: &placement_text,
        mode: &p.mode,
        phases: &phase_names,
        phase_seconds: &phase_seconds,
        cpu: &cpu,
        has_lookups: plan.load.is_some(),
        interrupted,
        notes: &notes,
    };
    output::print_table(&ctx, &total);
    let extra = extra_results(&plan, &total, load_seconds, finished.duration_since(started));
    if let Some(text) = extra.get("summary").and_then(Value::as_str) {
        let _ = writeln!(std::io::stdout(), "{text}");
    }
    // stdout may be a pipe that closes early; the JSON below must still be written.
    let _ = std::io::stdout().flush();
    if let Some(path) = &p.run.json {
        let mut config = p.config;
        config["placement_detail"] = json!(p.placement);
        let document = output::to_json(&ctx, config, &total, extra);
        if let Err(e) = output::write_json(path, &document) {
            eprintln!("meridian-loadgen: {e}");
            return 1;
        }
    }
    let unexpected = total.lookup_errors() + total.other_errors();
    if interrupted {
        130
    } else if unexpected > 0 {
        eprintln!("meridian-loadgen: {unexpected} unexpected error(s), see the table");
        3
    } else {
        0
    }
}

fn extra_results(plan: &Plan, total: &Metrics, load_seconds: f64, wall: Duration) -> Value {
    let mut extra = json!({ "load_seconds": load_seconds, "wall_seconds": wall.as_secs_f64() });
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
