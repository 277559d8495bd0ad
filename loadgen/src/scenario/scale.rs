//! The `scale` scenario: B brokers × T topics (the `spread` layout) loaded into an empty
//! server with a bounded number of registrations in flight (timed until every broker is
//! answered and visible), then open-loop lookups for half the duration with no
//! registrations (quiet), then lookups while every broker re-registers once per period with
//! a fraction of its topics changed (periods). Also the scenario's figures for the report.
//!
//! Memory: a broker keeps only its topic table (a bit per topic); its ~2 MB body is
//! encoded on its turn (on the blocking thread) and dropped once answered, so bodies in
//! memory are bounded by the registrations in flight (`--load-concurrency`, then
//! `PERIOD_INFLIGHT_MAX`). Must not: decode frames or pick topics itself (client.rs,
//! broker.rs do), or wait without a bound.

use super::plan::{Kind, Plan, ScaleSpec};
use super::workers::{self, my_client_specs, record_visibility};
use crate::broker::{BrokerPlan, BrokerSim};
use crate::client::ClientEngine;
use crate::cpu::CpuUsage;
use crate::ctx::{micros, sleep_until, Shared, Worker};
use crate::output;
use crate::probe::{Expect, Probes};
use crate::spread;
use crate::stats::{summarize, Metrics, Summary};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time from the start of the load until a worker's last registration was answered.
const LOAD_ANSWERED: &str = "scale.load-answered";
/// Time from the start of the load until every broker was seen in a lookup.
const LOAD_VISIBLE: &str = "scale.load-visible";
/// Answer times of the registrations of the load from empty.
const REGISTER_LOAD: &str = "register.load";
/// Answer times of the re-registrations during the periods.
const REGISTER_PERIOD: &str = "register.period";
/// Count of period turns skipped because too many registrations were in flight.
const PERIOD_SKIPPED: &str = "period re-registrations skipped (too many in flight)";
/// Most period re-registrations in flight per worker (each holds its encoded body).
const PERIOD_INFLIGHT_MAX: usize = 64;
/// Longest the teardown (unregistering every broker) may take; the rest just close.
const TEARDOWN_MAX: Duration = Duration::from_secs(30);
/// Timeout of probe calls during the visibility sweep.
const PROBE_CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Every worker's entry point: the scale script, or the other scenarios' (`workers`).
pub(super) async fn worker_main(id: usize, shared: Arc<Shared>, plan: Arc<Plan>) {
    let Kind::Scale(spec) = &plan.kind else {
        return workers::worker_main(id, shared, plan).await;
    };
    let (worker, _guard) = workers::begin(id, shared);
    bound_heap();
    scale_worker(&worker, &plan, spec).await;
}

/// Bodies of megabytes are allocated on the blocking thread and freed on the executor, over
/// and over: glibc's dynamic mmap threshold would soon serve them from arenas that never
/// shrink (several hundred MB at 100 brokers). A fixed threshold keeps each body its own
/// mapping, returned to the kernel when freed.
fn bound_heap() {
    /// Allocations of at least this many bytes are mapped on their own.
    const MMAP_THRESHOLD_BYTES: libc::c_int = 256 * 1024;
    // SAFETY: mallopt only sets an allocator tunable; any value is valid to pass.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Records why the run fails (the first reason wins) and stops it.
fn fail(worker: &Worker, spec: &ScaleSpec, reason: String) {
    let _ = spec.state.failure.set(reason);
    worker.shared.stop.store(true, Ordering::Relaxed);
}

async fn scale_worker(worker: &Rc<Worker>, plan: &Arc<Plan>, spec: &ScaleSpec) {
    let (Some(workload), Some(brokers), Some(load)) = (&plan.workload, &plan.brokers, &plan.load) else {
        return;
    };
    let (id, threads) = (worker.id, worker.shared.threads);
    let mine: Vec<u32> = (0..workload.spec.broker_groups).filter(|g| *g as usize % threads == id).collect();
    let mut sims = Vec::new();
    let mut go = worker.barrier(0).await;
    if go {
        let start = *spec.state.load_start.get_or_init(Instant::now);
        let lanes = spec.load_concurrency.div_ceil(threads).max(1);
        sims = load_brokers(worker, brokers, &mine, spec, start, lanes).await;
        if sims.len() == mine.len() && spec.state.failure.get().is_none() {
            worker.metrics.borrow_mut().record(LOAD_ANSWERED, micros(start, Instant::now()));
        }
    }
    go = go && worker.barrier(1).await;
    if go && id == 0 && !plan.answers_only {
        let start = *spec.state.load_start.get().expect("set before barrier 1");
        if visibility_sweep(worker, plan, spec).await {
            worker.metrics.borrow_mut().record(LOAD_VISIBLE, micros(start, Instant::now()));
        }
    }
    let targets = worker.shared.targets.clone();
    // No clients for a run that already failed: their connect errors would hide the reason.
    let engine = match go && !worker.stopped() {
        true => Some(
            ClientEngine::connect(worker.clone(), load.clone(), my_client_specs(plan, &targets, id, threads)).await,
        ),
        false => None,
    };
    go = go && worker.barrier(2).await;
    let sims: Parked = Rc::new(RefCell::new(sims.into_iter().map(|(g, sim)| (g, Some(sim))).collect()));
    if let (true, Some(engine)) = (go, &engine) {
        let t0 = worker.start_clock();
        let end = t0 + worker.shared.load_duration;
        let turns = Turns { count: workload.spec.broker_groups, start: t0 + spec.periods_at, end };
        let driver =
            glommio::spawn_local(period_driver(worker.clone(), sims.clone(), turns, spec.period, spec.change_fraction));
        engine.run(t0, end).await;
        worker.load_finished();
        driver.await;
    }
    worker.barrier(3).await;
    let sims: Vec<BrokerSim> = sims.borrow_mut().drain(..).filter_map(|(_, sim)| sim).collect();
    teardown(worker, sims, spec).await;
}

/// Registers this worker's brokers from empty, `lanes` at a time; returns them registered.
/// A refused or failed registration, or the load timeout, fails the run.
async fn load_brokers(
    worker: &Rc<Worker>,
    plan: &Arc<BrokerPlan>,
    mine: &[u32],
    spec: &ScaleSpec,
    start: Instant,
    lanes: usize,
) -> Vec<(u32, BrokerSim)> {
    let deadline = start + spec.load_timeout;
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let groups: Vec<u32> = mine.iter().copied().skip(lane).step_by(lanes).collect();
            let (worker, plan, state) = (worker.clone(), plan.clone(), spec.state.clone());
            let timeout = spec.load_timeout;
            glommio::spawn_local(async move {
                let mut done = Vec::new();
                for g in groups {
                    if worker.stopped() {
                        break;
                    }
                    if Instant::now() >= deadline {
                        let _ = state.failure.set(format!(
                            "the load from empty did not finish within --load-timeout {} s",
                            timeout.as_secs()
                        ));
                        worker.shared.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    let mut sim = BrokerSim::new(plan.clone(), g, 0);
                    let answers = sim.register(&worker, REGISTER_LOAD).await;
                    sim.release_body();
                    if let Some(Err(e)) = answers.into_iter().find(Result::is_err) {
                        let _ = state.failure.set(format!("registering {} while loading: {e}", sim.name()));
                        worker.shared.stop.store(true, Ordering::Relaxed);
                        done.push((g, sim));
                        break;
                    }
                    done.push((g, sim));
                }
                done
            })
        })
        .collect();
    let mut sims = Vec::new();
    for task in tasks {
        sims.extend(task.await);
    }
    // The lanes interleave groups; the period driver walks them in the order their turns fall.
    sims.sort_by_key(|(g, _)| *g);
    sims
}

/// Worker 0, after every worker's load was answered: one lookup per broker (its last
/// topic) on every target until the broker shows. Returns true when all showed.
async fn visibility_sweep(worker: &Rc<Worker>, plan: &Plan, spec: &ScaleSpec) -> bool {
    let Some(workload) = &plan.workload else { return false };
    let targets = worker.shared.targets.clone();
    let mut probes = match Probes::connect(&targets, plan.probe_style, PROBE_CALL_TIMEOUT).await {
        Ok(p) => p,
        Err(e) => {
            fail(worker, spec, format!("visibility probes cannot connect: {e}"));
            return false;
        }
    };
    let mut all = true;
    for group in workload.stable_groups() {
        let topic = &workload.topic_names[*group.topics.last().expect("a broker hosts >= 2 topics") as usize];
        let expect = Expect::Present { broker: group.name.clone(), read_queue_nums: None };
        let running = probes.start(worker, topic, expect, Instant::now());
        let results = probes.finish(running).await;
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            fail(worker, spec, format!("broker {} not visible after the load: {e}", group.name));
            all = false;
        }
        record_visibility(worker, "visible.load", &targets, results);
        if worker.stopped() {
            all = false;
            break;
        }
    }
    probes.close();
    all
}

/// This worker's brokers by group; `None` while one is re-registering.
type Parked = Rc<RefCell<Vec<(u32, Option<BrokerSim>)>>>;

/// When the re-registrations of the periods phase fall due.
struct Turns {
    /// Brokers in the run: broker k's turn is at `start + period × ((k + 1) / count + n)`.
    count: u32,
    start: Instant,
    end: Instant,
}

impl Turns {
    fn due(&self, broker: u32, round: u32, period: Duration) -> Instant {
        self.start + period.mul_f64((broker + 1) as f64 / self.count as f64 + round as f64)
    }
}

/// Re-registers each of this worker's brokers once per period (spread evenly over the
/// period) until the end, each with `fraction` of its topics changed, without waiting for
/// one answer before the next turn; a turn is skipped while that broker's previous
/// registration is still out or `PERIOD_INFLIGHT_MAX` are.
async fn period_driver(worker: Rc<Worker>, sims: Parked, turns: Turns, period: Duration, fraction: f64) {
    let inflight = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    let groups: Vec<u32> = sims.borrow().iter().map(|(g, _)| *g).collect();
    assert!(groups.windows(2).all(|p| p[0] < p[1]), "turns are walked in the order they fall due");
    'rounds: for round in 0.. {
        for (i, &g) in groups.iter().enumerate() {
            let due = turns.due(g, round, period);
            if due >= turns.end || !sleep_until(&worker, due).await {
                break 'rounds;
            }
            let sim = if inflight.get() < PERIOD_INFLIGHT_MAX { sims.borrow_mut()[i].1.take() } else { None };
            let Some(mut sim) = sim else {
                worker.metrics.borrow_mut().count(PERIOD_SKIPPED, 1);
                continue;
            };
            inflight.set(inflight.get() + 1);
            let (worker, sims, inflight) = (worker.clone(), sims.clone(), inflight.clone());
            tasks.push(glommio::spawn_local(async move {
                sim.change(fraction);
                sim.register(&worker, REGISTER_PERIOD).await;
                sim.release_body();
                sims.borrow_mut()[i].1 = Some(sim);
                inflight.set(inflight.get() - 1);
            }));
        }
    }
    // Each is bounded by the register timeout.
    for task in tasks {
        task.await;
    }
}

/// Unregisters every broker, as many at once as the load did, for at most TEARDOWN_MAX;
/// the rest (and all of them after a failure) just close their connections.
async fn teardown(worker: &Rc<Worker>, sims: Vec<BrokerSim>, spec: &ScaleSpec) {
    let deadline = Instant::now() + TEARDOWN_MAX;
    let clean = spec.state.failure.get().is_none();
    let lanes = spec.load_concurrency.div_ceil(worker.shared.threads).max(1);
    let queue = Rc::new(RefCell::new(sims));
    let tasks: Vec<_> = (0..lanes)
        .map(|_| {
            let (worker, queue) = (worker.clone(), queue.clone());
            glommio::spawn_local(async move {
                loop {
                    let Some(mut sim) = queue.borrow_mut().pop() else { break };
                    if clean && Instant::now() < deadline {
                        sim.unregister(&worker, "unregister").await;
                    }
                    sim.close();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

/// What the main thread measured of the target (`--pid`) and of loadgen for the report.
pub(super) struct Measured<'a> {
    /// Per phase (quiet, periods), the CPU used; `None` when the phase never started.
    pub(super) phase_cpu: &'a [Option<CpuUsage>],
    /// VmRSS of the first --pid before the load, at t0 and at the end of the load phase.
    pub(super) rss_kib: [Option<u64>; 3],
    /// loadgen's own peak RSS (VmHWM).
    pub(super) loadgen_hwm_kib: Option<u64>,
}

/// Why a scale run failed, if it did.
pub(super) fn failure(plan: &Plan) -> Option<String> {
    match &plan.kind {
        Kind::Scale(spec) => spec.state.failure.get().cloned(),
        _ => None,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        (a as f64 / b as f64 * 100.0).round() / 100.0
    }
}

/// The scale figures for the JSON (`scale`) and the summary lines.
pub(super) fn results(plan: &Plan, spec: &ScaleSpec, total: &Metrics, measured: &Measured<'_>) -> (String, Value) {
    let workload = plan.workload.as_deref().expect("scale registers brokers");
    let brokers = workload.spec.broker_groups as u64;
    let entries = brokers * workload.spec.per_broker as u64;
    let (width_min, width_max, width_mean) = workload.starts.as_deref().map_or((0, 0, 0.0), spread::width_stats);
    let hist = |name: &str| total.hists.get(name).map(summarize).unwrap_or_default();
    let (answered, visible) = (hist(LOAD_ANSWERED), hist(LOAD_VISIBLE));
    let (reg_load, reg_period) = (hist(REGISTER_LOAD), hist(REGISTER_PERIOD));
    let phase = |i: usize| total.lookups.get(i).map(|p| summarize(&p.latency)).unwrap_or_default();
    let (quiet, periods) = (phase(0), phase(1));
    let period_s = spec.period.as_secs_f64();
    let cores = |i: usize| measured.phase_cpu.get(i).and_then(Option::as_ref).and_then(|c| c.targets.first()?.cores);
    let (quiet_cores, period_cores) = (cores(0), cores(1));
    let [rss_before, rss_loaded, rss_end] = measured.rss_kib;
    let per_entry = |kib: Option<u64>| {
        kib.map(|k| ((k.saturating_sub(rss_before.unwrap_or(0))) * 1024) as f64 / entries.max(1) as f64)
    };
    let skipped = total.counts.get(PERIOD_SKIPPED).copied().unwrap_or(0);
    let figures = json!({
        "brokers": brokers,
        "topics_per_broker": workload.spec.per_broker,
        "topic_universe": workload.spec.topics,
        "entries": entries,
        "width_min": width_min, "width_max": width_max, "width_mean": (width_mean * 100.0).round() / 100.0,
        "period_ms": spec.period.as_millis() as u64,
        "change_fraction": spec.change_fraction,
        "load_answered_s": (answered.count > 0).then(|| answered.max_us as f64 / 1e6),
        "load_visible_s": (visible.count > 0).then(|| visible.max_us as f64 / 1e6),
        "register_load_us": reg_load,
        "register_period_us": reg_period,
        "period_registrations_skipped": skipped,
        "p99_quiet_us": quiet.p99_us,
        "p99_periods_us": periods.p99_us,
        "p99_ratio_periods_vs_quiet": ratio(periods.p99_us, quiet.p99_us),
        "server_cores_quiet": quiet_cores,
        "server_cores_periods": period_cores,
        "server_cpu_s_per_period": period_cores.map(|c| (c * period_s * 100.0).round() / 100.0),
        "server_cpu_pct_of_core_periods": period_cores.map(|c| (c * 1000.0).round() / 10.0),
        "server_rss_before_load_kib": rss_before,
        "server_rss_loaded_kib": rss_loaded,
        "server_rss_end_kib": rss_end,
        "server_rss_bytes_per_entry_end": per_entry(rss_end),
        "loadgen_hwm_kib": measured.loadgen_hwm_kib,
    });
    (summary_text(&figures, &reg_load, &reg_period), figures)
}

fn summary_text(f: &Value, reg_load: &Summary, reg_period: &Summary) -> String {
    let us = |key: &str| f[key].as_u64().map_or("-".into(), output::micros_text);
    let num = |key: &str, digits: usize| f[key].as_f64().map_or("-".into(), |v| format!("{v:.digits$}"));
    let mib = |key: &str| f[key].as_u64().map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    let time = |s: &Summary, v: u64| if s.count == 0 { "-".to_string() } else { output::micros_text(v) };
    format!(
        "scale: {} brokers × {} topics = {} entries ({} topics, each on {}..={} brokers, mean {})\n\
         load from empty: all answered {} s, all visible {} s; registration p50 {} p99 {}\n\
         lookup p99 quiet {} vs {} during re-registrations → ×{} \n\
         re-registrations every {} ms with {} changed: {} answered, p50 {} p99 {}, {} skipped\n\
         server CPU: {} cores quiet, {} cores during periods = {} s per period ({}% of one core)\n\
         server RSS: {} before, {} loaded, {} at the end ({} B per entry); loadgen peak RSS {}",
        f["brokers"],
        f["topics_per_broker"],
        f["entries"],
        f["topic_universe"],
        f["width_min"],
        f["width_max"],
        f["width_mean"],
        num("load_answered_s", 2),
        num("load_visible_s", 2),
        time(reg_load, reg_load.p50_us),
        time(reg_load, reg_load.p99_us),
        us("p99_quiet_us"),
        us("p99_periods_us"),
        num("p99_ratio_periods_vs_quiet", 2),
        f["period_ms"],
        f["change_fraction"],
        reg_period.count,
        time(reg_period, reg_period.p50_us),
        time(reg_period, reg_period.p99_us),
        f["period_registrations_skipped"],
        num("server_cores_quiet", 2),
        num("server_cores_periods", 2),
        num("server_cpu_s_per_period", 2),
        num("server_cpu_pct_of_core_periods", 1),
        mib("server_rss_before_load_kib"),
        mib("server_rss_loaded_kib"),
        mib("server_rss_end_kib"),
        num("server_rss_bytes_per_entry_end", 0),
        mib("loadgen_hwm_kib"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_spread_every_broker_evenly_over_each_period() {
        let start = Instant::now();
        let turns = Turns { count: 1000, start, end: start + Duration::from_secs(60) };
        let period = Duration::from_secs(30);
        assert_eq!(turns.due(0, 0, period), start + Duration::from_millis(30));
        assert_eq!(turns.due(1, 0, period), start + Duration::from_millis(60));
        assert_eq!(turns.due(999, 0, period), start + period);
        assert_eq!(turns.due(0, 1, period), start + Duration::from_millis(30_030));
    }
}
