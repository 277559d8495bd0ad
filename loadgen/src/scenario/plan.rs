//! Turning a scenario's flags into a checked `Prepared` run: targets, placement, the
//! simulated cluster, the broker and client plans, the phases, and enough file descriptors.
//! Must not: start threads or open sockets; everything here is checked before either.

use crate::broker::BrokerPlan;
use crate::cli::{ClusterArgs, Command, HeaderType, LeaveKind, LoadArgs, ProtocolArgs, RunArgs, ScaleArgs};
use crate::client::{LoadPlan, INFLIGHT_MAX};
use crate::output::{self};
use crate::propagation::{self, ObserverSpec};
use crate::rng::TopicPicker;
use crate::runtime::{self, Placement};
use crate::wire::RequestStyle;
use crate::workload::{self, BodyFormat, Workload, WorkloadSpec};
use meridian_protocol::frame::SerializeType;
use serde_json::Value;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Longest load phase a run may ask for.
const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Timeout of probe and idle-connection calls, and of unregistering.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// File descriptors kept free for everything that is not a connection.
const FD_SPARE: u64 = 64;
/// Most registrations a scale run keeps in flight while loading from empty.
pub(super) const SCALE_LOAD_CONCURRENCY_MAX: usize = 1024;

pub(super) enum Kind {
    Lookup,
    Register { repeat: u32, unchanged_resends: u32, change_fraction: f64, visibility: bool },
    Storm,
    Churn { interval: Duration, leave: LeaveKind, observers: ObserverSpec, seed: u64 },
    Connections { idle: usize },
    Scale(ScaleSpec),
}

/// The scale scenario's own settings (see `scale`).
pub(super) struct ScaleSpec {
    pub(super) load_concurrency: usize,
    pub(super) load_timeout: Duration,
    pub(super) period: Duration,
    pub(super) change_fraction: f64,
    /// Offset of the periods phase from t0 (half the duration).
    pub(super) periods_at: Duration,
    pub(super) state: Arc<ScaleState>,
}

/// What the workers of a scale run share beyond `Shared`.
#[derive(Default)]
pub(super) struct ScaleState {
    /// When the load from empty started (the first worker past barrier 0 sets it).
    pub(super) load_start: OnceLock<Instant>,
    /// Why the run failed (the first reason wins); the run then exits 1 with it.
    pub(super) failure: OnceLock<String>,
}

/// Background re-registration during the load.
pub(super) struct ScheduleSpec {
    pub(super) period: Duration,
    pub(super) change_fraction: f64,
    /// (offset from t0, period, change fraction) of the storm.
    pub(super) storm: Option<(Duration, Duration, f64)>,
}

/// What the workers run; shared read-only.
pub(super) struct Plan {
    pub(super) kind: Kind,
    pub(super) workload: Option<Arc<Workload>>,
    pub(super) brokers: Option<Arc<BrokerPlan>>,
    pub(super) load: Option<Arc<LoadPlan>>,
    pub(super) connections: usize,
    pub(super) requests: Option<u64>,
    pub(super) probe_style: RequestStyle,
    pub(super) schedule: ScheduleSpec,
    /// `--answers-only` of scale and storm: the brokers register, but nothing waits for them
    /// to show, and lookups are checked for their shape only.
    pub(super) answers_only: bool,
}

pub(super) struct Prepared {
    pub(super) name: &'static str,
    pub(super) config: Value,
    pub(super) target_texts: Vec<String>,
    pub(super) targets: Vec<SocketAddr>,
    pub(super) placement: Placement,
    pub(super) run: RunArgs,
    pub(super) phases: Vec<(&'static str, Duration)>,
    pub(super) mode: String,
    pub(super) plan: Plan,
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

fn workload_spec(cluster: &ClusterArgs, seed: u64, churn_groups: u32, per_broker: u32) -> WorkloadSpec {
    WorkloadSpec {
        prefix: cluster.prefix.clone(),
        clusters: cluster.clusters,
        broker_groups: cluster.brokers,
        churn_groups,
        slaves: cluster.slaves,
        topics: cluster.topics,
        width: cluster.width,
        per_broker,
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
    if cluster.split_registration_size == 1 {
        return Err("--split-registration-size 1 would make a first registration of one topic, which the Java \
                    NameServer refuses: use 0 (off) or at least 2"
            .into());
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
        split_size: cluster.split_registration_size as usize,
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
    answers_only: bool,
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
        workload: workload.filter(|_| !answers_only).cloned(),
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

pub(super) fn prepare(command: Command) -> Result<Prepared, String> {
    let (name, config) = match &command {
        Command::Lookup(a) => ("lookup", serde_json::to_value(a)),
        Command::Register(a) => ("register", serde_json::to_value(a)),
        Command::Storm(a) => ("storm", serde_json::to_value(a)),
        Command::Churn(a) => ("churn", serde_json::to_value(a)),
        Command::Connections(a) => ("connections", serde_json::to_value(a)),
        Command::Scale(a) => ("scale", serde_json::to_value(a)),
        Command::EchoServer(_) => unreachable!("main dispatches echo-server to echo::run"),
    };
    let config = config.map_err(|e| format!("cannot record the configuration: {e}"))?;
    let scale_cluster;
    let (target, run, cluster, protocol) = match &command {
        Command::Lookup(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Register(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Storm(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Churn(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Connections(a) => (&a.target, &a.run, &a.cluster, &a.protocol),
        Command::Scale(a) => {
            scale_cluster = a.cluster();
            (&a.target, &a.run, &scale_cluster, &a.protocol)
        }
        Command::EchoServer(_) => unreachable!("main dispatches echo-server to echo::run"),
    };
    check_run(run)?;
    let (target_texts, targets) = parse_targets(&target.namesrv, target.allow_remote)?;
    let placement = placement(run)?;
    let churn_groups = match &command {
        Command::Churn(a) => a.churn_brokers,
        _ => 0,
    };
    let per_broker = match &command {
        Command::Scale(a) => a.topics_per_broker,
        _ => 0,
    };
    let spec = workload_spec(cluster, run.seed, churn_groups, per_broker);
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
    let Shape { kind, load, phases, schedule } = scenario_shape(&command, cluster, run.seed, duration, calm)?;
    let answers_only = match &command {
        Command::Scale(a) => a.answers_only,
        Command::Storm(a) => a.answers_only,
        _ => false,
    };
    let load_plan = load.map(|l| load_plan(l, protocol, run, &spec, workload.as_ref(), answers_only)).transpose()?;
    let connections = load.map_or(0, |l| l.connections);
    let idle = match kind {
        Kind::Connections { idle } => idle,
        _ => 0,
    };
    let observers = match kind {
        Kind::Churn { observers, .. } => observers.watchers + observers.pollers,
        _ => 0,
    };
    check_fd_limit(connections + idle + observers, workload.as_deref(), targets.len())?;
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
            answers_only,
        },
    })
}

/// What a scenario subcommand asks for beyond the flags every scenario shares.
struct Shape<'a> {
    kind: Kind,
    /// The load flags, for scenarios with client load.
    load: Option<&'a LoadArgs>,
    /// (name, offset from the start of the load) of each phase.
    phases: Vec<(&'static str, Duration)>,
    schedule: ScheduleSpec,
}

/// A scenario's kind, the load flags it runs (if any), its phases and its background
/// re-registration schedule; checks the scenario's own flags.
fn scenario_shape<'a>(
    command: &'a Command,
    cluster: &ClusterArgs,
    seed: u64,
    duration: Duration,
    calm: ScheduleSpec,
) -> Result<Shape<'a>, String> {
    let (kind, load, phases, schedule) = match command {
        Command::Lookup(a) => (Kind::Lookup, Some(&a.load), vec![("load", Duration::ZERO)], calm),
        Command::Register(a) => (
            Kind::Register {
                repeat: a.repeat,
                unchanged_resends: a.unchanged_resends,
                change_fraction: cluster.change_fraction,
                visibility: !a.answers_only,
            },
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
                Kind::Churn { interval, leave: a.leave, observers, seed },
                Some(&a.load),
                vec![("load", Duration::ZERO)],
                calm,
            )
        }
        Command::Connections(a) => {
            (Kind::Connections { idle: a.idle_connections }, Some(&a.load), vec![("load", Duration::ZERO)], calm)
        }
        Command::Scale(a) => {
            let spec = scale_spec(a, duration)?;
            let phases = vec![("quiet", Duration::ZERO), ("periods", spec.periods_at)];
            (Kind::Scale(spec), Some(&a.load), phases, calm)
        }
        Command::EchoServer(_) => unreachable!("main dispatches echo-server to echo::run"),
    };
    Ok(Shape { kind, load, phases, schedule })
}

/// The scale scenario's flags, checked: open loop, a sane load concurrency and period.
fn scale_spec(a: &ScaleArgs, duration: Duration) -> Result<ScaleSpec, String> {
    if a.load.rate.is_none() {
        return Err("scale measures open-loop lookup latency: pass --rate (e.g. --rate 2000)".into());
    }
    if a.load_concurrency == 0 || a.load_concurrency > SCALE_LOAD_CONCURRENCY_MAX {
        return Err(format!("--load-concurrency {} must be in 1..={SCALE_LOAD_CONCURRENCY_MAX}", a.load_concurrency));
    }
    if a.period.0 < Duration::from_millis(10) {
        return Err("--period must be at least 10ms".into());
    }
    if a.load_timeout.0 < Duration::from_secs(1) {
        return Err("--load-timeout must be at least 1s".into());
    }
    Ok(ScaleSpec {
        load_concurrency: a.load_concurrency,
        load_timeout: a.load_timeout.0,
        period: a.period.0,
        change_fraction: fraction("--change-fraction", a.change_fraction)?,
        periods_at: duration / 2,
        state: Arc::new(ScaleState::default()),
    })
}

/// Refuses a run that would hold more sockets at once than RLIMIT_NOFILE allows (raising
/// the soft limit first): client and observer connections, one per broker instance and
/// target, and two per target for probes.
fn check_fd_limit(connections: usize, workload: Option<&Workload>, targets: usize) -> Result<(), String> {
    let instances = workload.map_or(0, |w| w.groups.len() * (w.spec.slaves as usize + 1));
    let fds_needed = (connections + instances * targets + targets * 2) as u64 + FD_SPARE;
    let fd_limit = runtime::raise_fd_limit();
    if fds_needed > fd_limit {
        return Err(format!(
            "this run needs about {fds_needed} file descriptors but RLIMIT_NOFILE is {fd_limit} \
             (raise `ulimit -n`, or lower --connections / --idle-connections / --brokers / --watchers / --pollers)"
        ));
    }
    Ok(())
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
}
