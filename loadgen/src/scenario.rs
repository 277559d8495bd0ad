//! The scenarios (`lookup`, `register`, `storm`, `churn`, `connections`): turning flags
//! into a `Plan`, the per-worker script of each scenario, and the main thread's loop
//! (progress, Ctrl-C, merging reports, the final table, JSON and HDR output).
//!
//! Every scenario runs: setup (brokers register, connections open) → barrier → the load
//! phase, bounded by `--duration` and `--requests` → drain → barrier → teardown (brokers
//! unregister). Must not: decode frames or pick topics itself (client.rs, broker.rs do).

use crate::broker::{self, BrokerPlan, BrokerSim, Schedule, Storm};
use crate::cli::{Command, HeaderType, LeaveKind, LoadArgs, ProtocolArgs, RunArgs};
use crate::client::{ClientEngine, ConnSpec, LoadPlan, INFLIGHT_MAX};
use crate::ctx::{micros, sleep_until, Report, Shared, Worker};
use crate::net::RpcConn;
use crate::output::{self, Context, HdrLog, Progress};
use crate::probe::{Expect, Probes};
use crate::propagation::{self, Change, ObserverSpec, Observers};
use crate::rng::TopicPicker;
use crate::runtime::{self, Placement};
use crate::stats::{code_key, summarize, Metrics};
use crate::wire::RequestStyle;
use crate::workload::{self, BodyFormat, Workload, WorkloadSpec};
use meridian_protocol::codes;
use meridian_protocol::frame::SerializeType;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Longest load phase a run may ask for.
const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Brokers registering at once during setup, per worker.
const SETUP_REGISTER_CONCURRENCY: usize = 16;
/// Idle connections being opened at once, per worker (keeps the accept backlog sane).
const IDLE_CONNECT_CONCURRENCY: usize = 64;
/// File descriptors kept free for everything that is not a connection.
const FD_SPARE: u64 = 64;
/// Timeout of probe and idle-connection calls, and of unregistering.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the main thread looks at reports, the clock and Ctrl-C.
const MAIN_POLL: Duration = Duration::from_millis(20);
/// Longest wait for the workers' interval reports before a progress line is printed anyway.
const REPORT_WAIT_MAX: Duration = Duration::from_millis(250);

enum Kind {
    Lookup,
    Register { repeat: u32, change_fraction: f64 },
    Storm,
    Churn { interval: Duration, leave: LeaveKind, observers: ObserverSpec, seed: u64 },
    Connections { idle: usize },
}

/// Background re-registration during the load.
struct ScheduleSpec {
    period: Duration,
    change_fraction: f64,
    /// (offset from t0, period, change fraction) of the storm.
    storm: Option<(Duration, Duration, f64)>,
}

/// What the workers run; shared read-only.
struct Plan {
    kind: Kind,
    workload: Option<Arc<Workload>>,
    brokers: Option<Arc<BrokerPlan>>,
    load: Option<Arc<LoadPlan>>,
    connections: usize,
    requests: Option<u64>,
    probe_style: RequestStyle,
    schedule: ScheduleSpec,
}

struct Prepared {
    name: &'static str,
    config: Value,
    target_texts: Vec<String>,
    targets: Vec<SocketAddr>,
    placement: Placement,
    run: RunArgs,
    phases: Vec<(&'static str, Duration)>,
    mode: String,
    plan: Plan,
}

/// Runs a scenario subcommand; returns the process exit code.
pub fn run(command: Command) -> i32 {
    match prepare(command) {
        Ok(prepared) => execute(prepared),
        Err(e) => {
            eprintln!("meridian-loadgen: {e}");
            2
        }
    }
}

/// `a:9876;b:9876` → addresses; refuses non-loopback unless allowed.
pub fn parse_targets(text: &str, allow_remote: bool) -> Result<(Vec<String>, Vec<SocketAddr>), String> {
    let mut texts = Vec::new();
    let mut addrs = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let resolved: Vec<SocketAddr> = part
            .to_socket_addrs()
            .map_err(|e| format!("--namesrv {part:?}: {e} (expected host:port, several separated by ';')"))?
            .collect();
        let addr = resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .copied()
            .ok_or_else(|| format!("--namesrv {part:?} resolves to no address"))?;
        if !addr.ip().is_loopback() && !allow_remote {
            return Err(format!(
                "refusing target {part} ({addr}): not a loopback address; pass --allow-remote if you really mean to load it"
            ));
        }
        texts.push(part.to_string());
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err("--namesrv names no address".into());
    }
    Ok((texts, addrs))
}

fn placement(run: &RunArgs) -> Result<Placement, String> {
    let cpus = run.cpus.as_deref().map(runtime::parse_cpu_list).transpose()?;
    let placement = Placement { threads: run.threads, cpus };
    placement.validate()?;
    Ok(placement)
}

fn check_run(run: &RunArgs) -> Result<(), String> {
    if run.duration.0.is_zero() || run.duration.0 > DURATION_MAX {
        return Err(format!("--duration must be in (0, {} h]", DURATION_MAX.as_secs() / 3600));
    }
    if run.requests == Some(0) {
        return Err("--requests must be at least 1".into());
    }
    if run.progress_interval.0 < Duration::from_millis(100) {
        return Err("--progress-interval must be at least 100ms".into());
    }
    if run.timeout.0.is_zero() {
        return Err("--timeout must be positive".into());
    }
    Ok(())
}

fn fraction(flag: &str, value: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{flag} {value} must be in [0, 1]"))
    }
}

fn workload_spec(cluster: &crate::cli::ClusterArgs, seed: u64, churn_groups: u32) -> WorkloadSpec {
    WorkloadSpec {
        prefix: cluster.prefix.clone(),
        clusters: cluster.clusters,
        broker_groups: cluster.brokers,
        churn_groups,
        slaves: cluster.slaves,
        topics: cluster.topics,
        width: cluster.width,
        names: cluster.topic_names,
        queue_nums: cluster.queues.clone(),
        seed,
    }
}

fn request_style(protocol: &ProtocolArgs) -> Result<RequestStyle, String> {
    let serialize_type = match protocol.header {
        HeaderType::Json => SerializeType::Json,
        HeaderType::Rocketmq => SerializeType::RocketMq,
    };
    if protocol.client_version < 0 || protocol.client_version > i16::MAX as i32 {
        return Err(format!("--client-version {} must be in 0..=32767", protocol.client_version));
    }
    Ok(RequestStyle { version: protocol.client_version, serialize_type })
}

fn broker_plan(
    cluster: &crate::cli::ClusterArgs,
    workload: &Arc<Workload>,
    targets: &[SocketAddr],
) -> Result<Arc<BrokerPlan>, String> {
    fraction("--change-fraction", cluster.change_fraction)?;
    if cluster.register_period.0 < Duration::from_millis(1) {
        return Err("--register-period must be at least 1ms".into());
    }
    if !(1..=22).contains(&cluster.zstd_level) {
        return Err(format!("--zstd-level {} must be in 1..=22", cluster.zstd_level));
    }
    Ok(Arc::new(BrokerPlan {
        workload: workload.clone(),
        format: BodyFormat {
            version: cluster.broker_version,
            encoding: cluster.encoding,
            zstd_level: cluster.zstd_level,
        },
        heartbeat: cluster.heartbeat,
        heartbeat_interval: cluster.heartbeat_interval.0.max(Duration::from_millis(1)),
        heartbeat_timeout_ms: cluster.heartbeat_timeout_ms,
        register_timeout: cluster.register_timeout.0,
        call_timeout: CALL_TIMEOUT,
        targets: targets.to_vec(),
    }))
}

fn load_plan(
    load: &LoadArgs,
    protocol: &ProtocolArgs,
    run: &RunArgs,
    spec: &WorkloadSpec,
    workload: Option<&Arc<Workload>>,
) -> Result<Arc<LoadPlan>, String> {
    if load.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if load.inflight == 0 || load.inflight > INFLIGHT_MAX {
        return Err(format!("--inflight {} must be in 1..={INFLIGHT_MAX}", load.inflight));
    }
    fraction("--unknown-fraction", load.unknown_fraction)?;
    if let Some(rate) = load.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(format!("--rate {rate} must be positive"));
        }
    }
    let topic_names = match workload {
        Some(w) => Arc::new(w.topic_names.clone()),
        None => Arc::new(workload::topic_names(spec)?),
    };
    Ok(Arc::new(LoadPlan {
        picker: TopicPicker::new(topic_names.len() as u32, load.popularity),
        topic_names,
        workload: workload.cloned(),
        unknown_fraction: load.unknown_fraction,
        unknown_prefix: spec.prefix.clone(),
        style: request_style(protocol)?,
        encoder: crate::wire::LookupEncoder::new(request_style(protocol)?),
        inflight: load.inflight,
        rate_per_conn: load.rate.map(|r| r / load.connections as f64),
        timeout: run.timeout.0,
        tick: load.tick.0.max(Duration::from_micros(1)),
        reconnect_delay: (!load.reconnect_delay.0.is_zero()).then_some(load.reconnect_delay.0),
        seed: run.seed,
    }))
}

/// churn's `--watchers`, `--pollers` and their timings, checked.
fn observer_spec(a: &crate::cli::ChurnArgs) -> Result<ObserverSpec, String> {
    let max = propagation::OBSERVERS_MAX;
    if a.watchers > max {
        return Err(format!("--watchers {} must be at most {max}", a.watchers));
    }
    if a.pollers > max {
        return Err(format!("--pollers {} must be at most {max}", a.pollers));
    }
    if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&a.poll_interval.0) {
        return Err("--poll-interval must be in [10ms, 1h]".into());
    }
    if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&a.watch_hold.0) {
        return Err("--watch-hold must be in [100ms, 10m]".into());
    }
    Ok(ObserverSpec {
        watchers: a.watchers,
        pollers: a.pollers,
        poll_interval: a.poll_interval.0,
        watch_hold: a.watch_hold.0,
    })
}

fn mode_text(load: &LoadArgs) -> String {
    match load.rate {
        None => format!("closed loop, {} connections × {} in flight", load.connections, load.inflight),
        Some(rate) => format!(
            "open loop at {}/s ({} connections, ≤ {} in flight each, pacer tick {} µs; latency from intended send time)",
            output::si(rate),
            load.connections,
            load.inflight,
            load.tick.0.as_micros()
        ),
    }
}

fn prepare(command: Command) -> Result<Prepared, String> {
    let (name, config) = match &command {
        Command::Lookup(a) => ("lookup", serde_json::to_value(a)),
        Command::Register(a) => ("register", serde_json::to_value(a)),
        Command::Storm(a) => ("storm", serde_json::to_value(a)),
        Command::Churn(a) => ("churn", serde_json::to_value(a)),
        Command::Connections(a) => ("connections", serde_json::to_value(a)),
        Command::EchoServer(_) => unreachable!("main dispatches echo-server to echo::run"),
    };
    let config = config.map_err(|e| format!("cannot record the configuration: {e}"))?;
    let (target, run, cluster, protocol) = match &command {
        Command::Lookup(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Register(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Storm(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Churn(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Connections(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::EchoServer(_) => unreachable!("main dispatches echo-server to echo::run"),
    };
    check_run(run)?;
    let (target_texts, targets) = parse_targets(&target.namesrv, target.allow_remote)?;
    let placement = placement(run)?;
    let churn_groups = match &command {
        Command::Churn(a) => a.churn_brokers,
        _ => 0,
    };
    let spec = workload_spec(cluster, run.seed, churn_groups);
    let registers = cluster.brokers > 0;
    if !registers && !matches!(command, Command::Lookup(_) | Command::Connections(_)) {
        return Err(format!("--brokers 0 is only for lookup and connections; {name} needs brokers"));
    }
    let workload = if registers { Some(Arc::new(Workload::build(spec.clone())?)) } else { None };
    let brokers = workload.as_ref().map(|w| broker_plan(cluster, w, &targets)).transpose()?;
    let probe_style = request_style(protocol)?;
    let calm =
        ScheduleSpec { period: cluster.register_period.0, change_fraction: cluster.change_fraction, storm: None };
    let duration = run.duration.0;
    let (kind, load, phases, schedule) = match &command {
        Command::Lookup(a) => (Kind::Lookup, Some(&a.load), vec![("load", Duration::ZERO)], calm),
        Command::Register(a) => (
            Kind::Register { repeat: a.repeat, change_fraction: cluster.change_fraction },
            None,
            vec![("register", Duration::ZERO)],
            calm,
        ),
        Command::Storm(a) => {
            fraction("--storm-change-fraction", a.storm_change_fraction)?;
            if a.storm_period.0 < Duration::from_millis(1) {
                return Err("--storm-period must be at least 1ms".into());
            }
            let half = duration / 2;
            let storm = Some((half, a.storm_period.0, a.storm_change_fraction));
            (
                Kind::Storm,
                Some(&a.load),
                vec![("quiet", Duration::ZERO), ("storm", half)],
                ScheduleSpec { storm, ..calm },
            )
        }
        Command::Churn(a) => {
            if a.churn_brokers == 0 {
                return Err("--churn-brokers must be at least 1".into());
            }
            let interval = a.churn_interval.0.max(Duration::from_millis(1));
            let observers = observer_spec(a)?;
            (
                Kind::Churn { interval, leave: a.leave, observers, seed: run.seed },
                Some(&a.load),
                vec![("load", Duration::ZERO)],
                calm,
            )
        }
        Command::Connections(a) => {
            (Kind::Connections { idle: a.idle_connections }, Some(&a.load), vec![("load", Duration::ZERO)], calm)
        }
        Command::EchoServer(_) => unreachable!("main dispatches echo-server to echo::run"),
    };
    let load_plan = load.map(|l| load_plan(l, protocol, run, &spec, workload.as_ref())).transpose()?;
    let connections = load.map_or(0, |l| l.connections);
    let idle = match kind {
        Kind::Connections { idle } => idle,
        _ => 0,
    };
    let observers = match kind {
        Kind::Churn { observers, .. } => observers.watchers + observers.pollers,
        _ => 0,
    };
    // Every socket this process will hold at once, plus room for the rest.
    let instances = workload.as_ref().map_or(0, |w| w.groups.len() * (w.spec.slaves as usize + 1));
    let fds_needed = (connections + idle + observers + instances * targets.len() + targets.len() * 2) as u64 + FD_SPARE;
    let fd_limit = runtime::raise_fd_limit();
    if fds_needed > fd_limit {
        return Err(format!(
            "this run needs about {fds_needed} file descriptors but RLIMIT_NOFILE is {fd_limit} \
             (raise `ulimit -n`, or lower --connections / --idle-connections / --brokers / --watchers / --pollers)"
        ));
    }
    let mode = match (load, &kind) {
        (Some(l), _) => mode_text(l),
        (None, _) => "one registration round at a time per worker".to_string(),
    };
    Ok(Prepared {
        name,
        config,
        target_texts,
        targets,
        placement,
        run: run.clone(),
        phases,
        mode,
        plan: Plan {
            kind,
            workload,
            brokers,
            load: load_plan,
            connections,
            requests: run.requests,
            probe_style,
            schedule,
        },
    })
}

// ---------------------------------------------------------------------------------------
// The main thread
// ---------------------------------------------------------------------------------------

fn execute(p: Prepared) -> i32 {
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

// ---------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------

async fn worker_main(id: usize, shared: Arc<Shared>, plan: Arc<Plan>) {
    let worker = Worker::new(id, shared);
    // If this worker dies (a panic unwinds through its executor), the guard still sends the
    // last report, so the main thread never waits for it forever.
    let _guard = FinishGuard(worker.clone());
    worker.start_reporter();
    match plan.kind {
        Kind::Register { repeat, change_fraction } => register_scenario(&worker, &plan, repeat, change_fraction).await,
        _ => load_scenario(&worker, &plan).await,
    }
}

struct FinishGuard(Rc<Worker>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.shared.note(format!("worker {} failed; its figures are incomplete", self.0.id));
            self.0.shared.stop.store(true, Ordering::Relaxed);
        }
        self.0.finish();
    }
}

/// (global index, group, instance) of the stable broker instances this worker simulates.
fn my_instances(workload: &Workload, worker: usize, threads: usize) -> Vec<(usize, u32, usize)> {
    let per_group = workload.spec.slaves as usize + 1;
    (0..workload.spec.broker_groups as usize * per_group)
        .filter(|k| k % threads == worker)
        .map(|k| (k, (k / per_group) as u32, k % per_group))
        .collect()
}

/// Client connections of this worker, each with its share of `--requests`.
fn my_client_specs(plan: &Plan, targets: &[SocketAddr], worker: usize, threads: usize) -> Vec<ConnSpec> {
    let total = plan.connections;
    (0..total)
        .filter(|c| c % threads == worker)
        .map(|c| ConnSpec {
            index: c,
            connections_total: total,
            target: targets[c % targets.len()],
            quota: plan.requests.map(|n| n / total as u64 + u64::from((c as u64) < n % total as u64)),
        })
        .collect()
}

async fn register_brokers(
    worker: &Rc<Worker>,
    plan: &Arc<BrokerPlan>,
    instances: Vec<(usize, u32, usize)>,
) -> Vec<(usize, BrokerSim)> {
    let mut sims = Vec::new();
    for chunk in instances.chunks(SETUP_REGISTER_CONCURRENCY) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&(k, group, instance)| {
                let (worker, plan) = (worker.clone(), plan.clone());
                glommio::spawn_local(async move {
                    let mut sim = BrokerSim::new(plan, group, instance);
                    sim.register(&worker, "register.setup").await;
                    (k, sim)
                })
            })
            .collect();
        for task in tasks {
            sims.push(task.await);
        }
        if worker.stopped() {
            break;
        }
    }
    sims
}

/// Records per-target visibility times under `hist` (and `hist@target`, and the slowest
/// target under `hist.all-targets` when there are several).
fn record_visibility(worker: &Worker, hist: &str, targets: &[SocketAddr], results: Vec<Result<Duration, String>>) {
    let mut metrics = worker.metrics.borrow_mut();
    let mut slowest = Some(Duration::ZERO);
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(took) => {
                let us = took.as_micros() as u64;
                metrics.record(hist, us);
                if targets.len() > 1 {
                    metrics.record(&format!("{hist}@{}", targets[i]), us);
                }
                slowest = slowest.map(|s| s.max(took));
            }
            Err(_) if worker.stopped() => {
                slowest = None;
                metrics.count("visibility probes abandoned at the stop", 1);
            }
            Err(e) => {
                slowest = None;
                metrics.error(format!("{hist}: not visible"), || e);
            }
        }
    }
    if let (Some(slowest), true) = (slowest, targets.len() > 1) {
        metrics.record(&format!("{hist}.all-targets"), slowest.as_micros() as u64);
    }
}

/// Worker 0 makes sure every stable group's routes answer on every target before the load
/// starts (a server may answer REGISTER_BROKER before its lookups see the change).
async fn wait_setup_visible(worker: &Rc<Worker>, plan: &Plan) {
    let Some(workload) = &plan.workload else { return };
    let targets = worker.shared.targets.clone();
    let mut probes = match Probes::connect(&targets, plan.probe_style, CALL_TIMEOUT).await {
        Ok(p) => p,
        Err(e) => {
            worker.metrics.borrow_mut().error("probe connect failed".into(), || e);
            return;
        }
    };
    for group in workload.stable_groups() {
        let topic = &workload.topic_names[*group.topics.last().expect("a group hosts >= 2 topics") as usize];
        let expect = Expect::Present { broker: group.name.clone(), read_queue_nums: None };
        let running = probes.start(worker, topic, expect, Instant::now());
        let results = probes.finish(running).await;
        record_visibility(worker, "visible.setup", &targets, results);
        if worker.stopped() {
            break;
        }
    }
    probes.close();
}

fn schedule_for(plan: &Plan, index: usize, count: usize, t0: Instant, end: Instant) -> Schedule {
    let spec = &plan.schedule;
    Schedule {
        period: spec.period,
        change_fraction: spec.change_fraction,
        hist: "register.periodic",
        storm: spec.storm.map(|(offset, period, change_fraction)| Storm {
            start: t0 + offset,
            period,
            change_fraction,
            hist: "register.storm",
        }),
        // In (0, 1]: the first background registration comes one staggered period after t0,
        // never at t0 itself (setup has just registered every broker).
        stagger: (index + 1) as f64 / count.max(1) as f64,
        until: end,
    }
}

/// lookup, storm, churn and connections: brokers registered, clients looking up.
async fn load_scenario(worker: &Rc<Worker>, plan: &Arc<Plan>) {
    let (id, threads) = (worker.id, worker.shared.threads);
    let targets = worker.shared.targets.clone();
    let mut sims = match (&plan.workload, &plan.brokers) {
        (Some(w), Some(b)) => register_brokers(worker, b, my_instances(w, id, threads)).await,
        _ => Vec::new(),
    };
    let engine = match &plan.load {
        Some(load) => Some(
            ClientEngine::connect(worker.clone(), load.clone(), my_client_specs(plan, &targets, id, threads)).await,
        ),
        None => None,
    };
    let mut idle = match plan.kind {
        Kind::Connections { idle } => open_idle(worker, plan, idle).await,
        _ => Vec::new(),
    };
    let mut go = worker.barrier(0).await;
    if go && id == 0 {
        wait_setup_visible(worker, plan).await;
    }
    go = go && worker.barrier(1).await;
    if go {
        let t0 = worker.start_clock();
        let end = t0 + worker.shared.load_duration;
        let instance_count =
            plan.workload.as_ref().map_or(0, |w| w.spec.broker_groups as usize * (w.spec.slaves as usize + 1));
        let periodic: Vec<_> = sims
            .drain(..)
            .map(|(k, sim)| {
                let schedule = schedule_for(plan, k, instance_count, t0, end);
                (k, glommio::spawn_local(broker::run_periodic(worker.clone(), sim, schedule, t0)))
            })
            .collect();
        let churn =
            match plan.kind {
                Kind::Churn { interval, leave, observers, seed } if id == 0 => Some(glommio::spawn_local(
                    churn_driver(worker.clone(), plan.clone(), interval, leave, observers, seed, end),
                )),
                _ => None,
            };
        match &engine {
            Some(engine) => engine.run(t0, end).await,
            None => {
                sleep_until(worker, end).await;
            }
        }
        worker.load_finished();
        for (k, task) in periodic {
            sims.push((k, task.await));
        }
        if let Some(churn) = churn {
            churn.await;
        }
    }
    close_idle(worker, plan, &mut idle).await;
    // Nobody unregisters while another worker's clients may still be draining.
    worker.barrier(2).await;
    for (_, sim) in sims.iter_mut() {
        sim.unregister(worker, "unregister").await;
        sim.close();
    }
}

/// The churn events, on worker 0: every `interval` one churn broker joins or leaves, and
/// probes on every target time how long until a lookup shows it. With `--watchers` /
/// `--pollers`, simulated clients time the same events until they hold the new route
/// (propagation.rs); they stop when the last event's probes are done.
#[allow(clippy::too_many_arguments)]
async fn churn_driver(
    worker: Rc<Worker>,
    plan: Arc<Plan>,
    interval: Duration,
    leave: LeaveKind,
    observer_spec: ObserverSpec,
    seed: u64,
    end: Instant,
) {
    let (Some(workload), Some(brokers)) = (&plan.workload, &plan.brokers) else { return };
    let targets = worker.shared.targets.clone();
    let mut probes = match Probes::connect(&targets, plan.probe_style, CALL_TIMEOUT).await {
        Ok(p) => p,
        Err(e) => {
            worker.metrics.borrow_mut().error("probe connect failed".into(), || e);
            return;
        }
    };
    let first = workload.spec.broker_groups;
    let count = workload.spec.churn_groups;
    // Per churn group: the topic the probes look at, and the broker that comes and goes.
    let churned: Vec<(String, String)> = (first..first + count)
        .map(|g| {
            let group = &workload.groups[g as usize];
            (workload.topic_names[group.topics[0] as usize].clone(), group.name.clone())
        })
        .collect();
    let (observers, observer_tasks) = if observer_spec.any() {
        let observers = Observers::new(&worker, &churned, observer_spec);
        let tasks = observers.spawn(&worker, &targets, plan.probe_style, CALL_TIMEOUT, seed);
        (Some(observers), tasks)
    } else {
        (None, Vec::new())
    };
    let mut present: Vec<Option<BrokerSim>> = (0..count).map(|_| None).collect();
    let mut next = worker.t0() + interval;
    let mut event: u64 = 0;
    // Never past the end: an interval longer than the run must not hold the teardown.
    while sleep_until(&worker, next.min(end)).await && Instant::now() < end {
        let c = (event % count as u64) as usize;
        event += 1;
        let group = first + c as u32;
        let (topic, name) = churned[c].clone();
        match present[c].take() {
            None => {
                let mut sim = BrokerSim::new(brokers.clone(), group, 0);
                sim.body_bytes(&worker).await;
                let expect = Expect::Present { broker: name, read_queue_nums: None };
                let started = Instant::now();
                if let Some(observers) = &observers {
                    observers.begin(c, Change::Join, started);
                }
                let running = probes.start(&worker, &topic, expect, started);
                let answers = sim.register(&worker, "register.churn-join").await;
                for (i, answer) in answers.iter().enumerate() {
                    if answer.is_err() {
                        running.cancel(i);
                    }
                }
                let results = probes.finish(running).await;
                record_visibility(&worker, "visible.churn-join", &targets, results);
                present[c] = Some(sim);
            }
            Some(mut sim) => {
                let expect = Expect::Absent { broker: name };
                let started = Instant::now();
                if let Some(observers) = &observers {
                    observers.begin(c, Change::Leave, started);
                }
                let running = probes.start(&worker, &topic, expect, started);
                match leave {
                    LeaveKind::Unregister => {
                        let answers = sim.unregister(&worker, "unregister.churn-leave").await;
                        for (i, answer) in answers.iter().enumerate() {
                            if answer.is_err() {
                                running.cancel(i);
                            }
                        }
                        sim.close();
                    }
                    LeaveKind::Close => sim.close(),
                }
                let results = probes.finish(running).await;
                record_visibility(&worker, "visible.churn-leave", &targets, results);
            }
        }
        next = (next + interval).max(Instant::now());
    }
    if let Some(observers) = &observers {
        observers.close(&worker);
        for task in observer_tasks {
            task.await;
        }
    }
    for mut sim in present.into_iter().flatten() {
        sim.unregister(&worker, "unregister").await;
        sim.close();
    }
    probes.close();
}

/// The connections scenario's idle connections of this worker: opened (timed), used once.
async fn open_idle(worker: &Rc<Worker>, plan: &Plan, total: usize) -> Vec<RpcConn> {
    let (id, threads) = (worker.id, worker.shared.threads);
    let targets = worker.shared.targets.clone();
    let Some(load) = &plan.load else { return Vec::new() };
    let mine: Vec<usize> = (0..total).filter(|i| i % threads == id).collect();
    let mut conns = Vec::new();
    for chunk in mine.chunks(IDLE_CONNECT_CONCURRENCY) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let (worker, load) = (worker.clone(), load.clone());
                let target = targets[i % targets.len()];
                glommio::spawn_local(async move {
                    let started = Instant::now();
                    let mut conn = match RpcConn::connect(target, load.style, CALL_TIMEOUT).await {
                        Ok(conn) => conn,
                        Err(e) => {
                            worker.metrics.borrow_mut().error("idle connection: connect failed".into(), || e);
                            return None;
                        }
                    };
                    worker.metrics.borrow_mut().record("connect.idle", micros(started, Instant::now()));
                    let topic = &load.topic_names[i % load.topic_names.len()];
                    let sent = Instant::now();
                    match conn.call(codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic)], &[], CALL_TIMEOUT).await {
                        Ok(answer) if answer.header.code == codes::SUCCESS => {
                            worker.metrics.borrow_mut().record("lookup.idle-first", micros(sent, Instant::now()));
                            Some(conn)
                        }
                        Ok(answer) => {
                            worker.metrics.borrow_mut().error(
                                format!("idle connection: first lookup {}", code_key(answer.header.code)),
                                || answer.header.remark.unwrap_or_default(),
                            );
                            Some(conn)
                        }
                        Err(e) => {
                            worker.metrics.borrow_mut().error("idle connection: first lookup failed".into(), || e);
                            None
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            conns.extend(task.await);
        }
        if worker.stopped() {
            break;
        }
    }
    worker.metrics.borrow_mut().count("idle connections open", conns.len() as u64);
    conns
}

/// Proves each idle connection still works after the load, then closes it.
async fn close_idle(worker: &Rc<Worker>, plan: &Plan, idle: &mut Vec<RpcConn>) {
    let Some(load) = &plan.load else { return };
    for (i, mut conn) in idle.drain(..).enumerate() {
        let topic = &load.topic_names[i % load.topic_names.len()];
        match conn.call(codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic)], &[], CALL_TIMEOUT).await {
            Ok(_) => worker.metrics.borrow_mut().count("idle connections alive at the end", 1),
            Err(e) => worker.metrics.borrow_mut().error("idle connection lost during the run".into(), || e),
        }
        conn.close();
    }
}

/// register: per broker group, one big first registration, `repeat` re-sends, then an
/// unregister, each timed to the answer and until visible on every target.
async fn register_scenario(worker: &Rc<Worker>, plan: &Arc<Plan>, repeat: u32, change_fraction: f64) {
    let (Some(workload), Some(brokers)) = (&plan.workload, &plan.brokers) else { return };
    let (id, threads) = (worker.id, worker.shared.threads);
    let targets = worker.shared.targets.clone();
    let mut probes = match Probes::connect(&targets, plan.probe_style, CALL_TIMEOUT).await {
        Ok(p) => Some(p),
        Err(e) => {
            worker.metrics.borrow_mut().error("probe connect failed".into(), || e);
            None
        }
    };
    if !worker.barrier(0).await {
        return;
    }
    let t0 = worker.start_clock();
    let end = t0 + worker.shared.load_duration;
    let groups: Vec<u32> = (0..workload.spec.broker_groups).filter(|g| *g as usize % threads == id).collect();
    if let Some(probes) = probes.as_mut() {
        for group in groups {
            if worker.stopped() || Instant::now() >= end {
                worker.shared.note(format!("--duration ended before every broker group registered (worker {id})"));
                break;
            }
            register_group(worker, workload, brokers, probes, group, repeat, change_fraction, end).await;
        }
        probes.close();
    }
    worker.barrier(1).await;
}

/// Sends one registration while probes wait for `probe` to show; records both times.
async fn timed_registration(
    worker: &Rc<Worker>,
    sim: &mut BrokerSim,
    probes: &mut Probes,
    probe: Option<(String, Expect)>,
    answer_hist: &str,
    visible_hist: &str,
) {
    // Encoding happens before the clock starts: the server's time is what is measured.
    sim.body_bytes(worker).await;
    let running = probe.map(|(topic, expect)| probes.start(worker, &topic, expect, Instant::now()));
    let answers = sim.register(worker, answer_hist).await;
    if let Some(running) = running {
        for (i, answer) in answers.iter().enumerate() {
            if answer.is_err() {
                running.cancel(i);
            }
        }
        let results = probes.finish(running).await;
        record_visibility(worker, visible_hist, &worker.shared.targets, results);
    }
}

#[allow(clippy::too_many_arguments)]
async fn register_group(
    worker: &Rc<Worker>,
    workload: &Arc<Workload>,
    brokers: &Arc<BrokerPlan>,
    probes: &mut Probes,
    group: u32,
    repeat: u32,
    change_fraction: f64,
    end: Instant,
) {
    let g = &workload.groups[group as usize];
    let mut master = BrokerSim::new(brokers.clone(), group, 0);
    let mut slaves: Vec<BrokerSim> =
        (1..g.instances.len()).map(|instance| BrokerSim::new(brokers.clone(), group, instance)).collect();
    let probe_topic = workload.topic_names[*g.topics.last().expect("a group hosts >= 2 topics") as usize].clone();
    let gone = Expect::Absent { broker: g.name.clone() };
    let absent = probes.check_now(worker, &probe_topic, &gone).await;
    if absent.iter().any(|a| !a) {
        worker
            .metrics
            .borrow_mut()
            .error("register: broker already routed before its first registration".into(), || {
                format!("{} already serves {probe_topic}; visibility times would be meaningless (use --prefix)", g.name)
            });
    }
    let bytes = master.body_bytes(worker).await;
    worker.metrics.borrow_mut().count("register first body bytes (per broker)", bytes as u64);
    let present = Expect::Present { broker: g.name.clone(), read_queue_nums: None };
    timed_registration(
        worker,
        &mut master,
        probes,
        Some((probe_topic.clone(), present)),
        "register.first",
        "visible.first",
    )
    .await;
    for slave in slaves.iter_mut() {
        slave.register(worker, "register.slave").await;
    }
    for _ in 0..repeat {
        if worker.stopped() || Instant::now() >= end {
            worker.shared.note("--duration ended before every re-send was made".into());
            break;
        }
        let changed = master.change(change_fraction);
        for slave in slaves.iter_mut() {
            slave.change(change_fraction);
        }
        let probe = changed.first().map(|&t| {
            let queues = master.table.queue_nums(workload, t);
            let expect = Expect::Present { broker: g.name.clone(), read_queue_nums: queues };
            (workload.topic_names[t as usize].clone(), expect)
        });
        let hist = if changed.is_empty() { "register.resend-unchanged" } else { "register.resend-changed" };
        timed_registration(worker, &mut master, probes, probe, hist, "visible.resend").await;
        for slave in slaves.iter_mut() {
            slave.register(worker, "register.slave").await;
        }
    }
    for slave in slaves.iter_mut() {
        slave.unregister(worker, "unregister").await;
        slave.close();
    }
    let running = probes.start(worker, &probe_topic, gone, Instant::now());
    let answers = master.unregister(worker, "unregister").await;
    for (i, answer) in answers.iter().enumerate() {
        if answer.is_err() {
            running.cancel(i);
        }
    }
    let results = probes.finish(running).await;
    record_visibility(worker, "visible.unregister", &worker.shared.targets, results);
    master.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_remote_ones_are_refused() {
        let (texts, addrs) = parse_targets("127.0.0.1:9876; localhost:9877;", false).unwrap();
        assert_eq!(texts, vec!["127.0.0.1:9876", "localhost:9877"]);
        assert_eq!(addrs[0], "127.0.0.1:9876".parse().unwrap());
        assert!(addrs[1].ip().is_loopback());
        let refused = parse_targets("127.0.0.1:9876;10.1.2.3:9876", false).unwrap_err();
        assert!(refused.contains("--allow-remote"), "{refused}");
        assert!(parse_targets("10.1.2.3:9876", true).is_ok());
        assert!(parse_targets(";", false).is_err());
        assert!(parse_targets("nohostport", false).is_err());
    }

    fn plan_for(connections: usize, requests: Option<u64>) -> Plan {
        Plan {
            kind: Kind::Lookup,
            workload: None,
            brokers: None,
            load: None,
            connections,
            requests,
            probe_style: RequestStyle { version: 479, serialize_type: SerializeType::Json },
            schedule: ScheduleSpec { period: Duration::from_secs(30), change_fraction: 0.0, storm: None },
        }
    }

    #[test]
    fn connections_and_quotas_split_over_workers_and_targets() {
        let targets: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap()];
        let plan = plan_for(5, Some(12));
        let a = my_client_specs(&plan, &targets, 0, 2);
        let b = my_client_specs(&plan, &targets, 1, 2);
        assert_eq!(a.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0, 2, 4]);
        assert_eq!(b.iter().map(|s| s.index).collect::<Vec<_>>(), vec![1, 3]);
        // 12 over 5 connections: 3,3,2,2,2.
        let quotas: Vec<u64> = a.iter().chain(&b).map(|s| s.quota.unwrap()).collect();
        assert_eq!(quotas.iter().sum::<u64>(), 12);
        assert_eq!(a[0].quota, Some(3));
        assert_eq!(b[0].quota, Some(3));
        assert_eq!(a[1].quota, Some(2));
        assert_eq!(a[1].target, targets[0]);
        assert_eq!(b[0].target, targets[1]);
        assert!(my_client_specs(&plan_for(3, None), &targets, 0, 1).iter().all(|s| s.quota.is_none()));
    }

    #[test]
    fn broker_instances_split_over_workers() {
        let spec = WorkloadSpec {
            prefix: String::new(),
            clusters: 1,
            broker_groups: 3,
            churn_groups: 0,
            slaves: 1,
            topics: 30,
            width: 1,
            names: workload::TopicNames::Short,
            queue_nums: vec![4],
            seed: 1,
        };
        let w = Workload::build(spec).unwrap();
        let a = my_instances(&w, 0, 2);
        let b = my_instances(&w, 1, 2);
        assert_eq!(a, vec![(0, 0, 0), (2, 1, 0), (4, 2, 0)]);
        assert_eq!(b, vec![(1, 0, 1), (3, 1, 1), (5, 2, 1)]);
    }
}
