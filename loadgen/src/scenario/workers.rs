//! The workers' scripts, one per scenario, run on every loadgen executor: register the
//! simulated brokers, open the clients, wait at the barriers, run the load phase, drain and
//! unregister. Must not: decode frames or pick topics itself (client.rs, broker.rs do).

use super::plan::{Kind, Plan, CALL_TIMEOUT};
use crate::broker::{self, BrokerPlan, BrokerSim, Schedule, Storm};
use crate::cli::LeaveKind;
use crate::client::{ClientEngine, ConnSpec};
use crate::ctx::{micros, sleep_until, Shared, Worker};
use crate::net::RpcConn;
use crate::probe::{Expect, Probes};
use crate::propagation::{Change, ObserverSpec, Observers};
use crate::stats::code_key;
use crate::workload::Workload;
use meridian_protocol::codes;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Brokers registering at once during setup, per worker.
const SETUP_REGISTER_CONCURRENCY: usize = 16;
/// Idle connections being opened at once, per worker (keeps the accept backlog sane).
const IDLE_CONNECT_CONCURRENCY: usize = 64;

pub(super) async fn worker_main(id: usize, shared: Arc<Shared>, plan: Arc<Plan>) {
    let (worker, _guard) = begin(id, shared);
    match plan.kind {
        Kind::Register { repeat, unchanged_resends, change_fraction, visibility } => {
            let rounds = |end| Rounds { repeat, unchanged_resends, change_fraction, visibility, end };
            register_scenario(&worker, &plan, rounds).await
        }
        _ => load_scenario(&worker, &plan).await,
    }
}

/// A worker of this thread, reporting, and the guard that sends its last report.
pub(super) fn begin(id: usize, shared: Arc<Shared>) -> (Rc<Worker>, FinishGuard) {
    let worker = Worker::new(id, shared);
    // If this worker dies (a panic unwinds through its executor), the guard still sends the
    // last report, so the main thread never waits for it forever.
    let guard = FinishGuard(worker.clone());
    worker.start_reporter();
    (worker, guard)
}

pub(super) struct FinishGuard(Rc<Worker>);

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
pub(super) fn my_client_specs(plan: &Plan, targets: &[SocketAddr], worker: usize, threads: usize) -> Vec<ConnSpec> {
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
pub(super) fn record_visibility(
    worker: &Worker,
    hist: &str,
    targets: &[SocketAddr],
    results: Vec<Result<Duration, String>>,
) {
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
    if go && id == 0 && !plan.answers_only {
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
        let watching = observers.as_deref().map(|o| (o, c));
        present[c] = match present[c].take() {
            None => Some(churn_join(&worker, brokers, group, &mut probes, watching, &topic, name).await),
            Some(sim) => {
                churn_leave(&worker, sim, leave, &mut probes, watching, &topic, name).await;
                None
            }
        };
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

/// A churn broker joins: it registers while the probes (and any observers) time how long
/// until a lookup shows it. Returns the broker, to leave later.
async fn churn_join(
    worker: &Rc<Worker>,
    brokers: &Arc<BrokerPlan>,
    group: u32,
    probes: &mut Probes,
    observers: Option<(&Observers, usize)>,
    topic: &str,
    name: String,
) -> BrokerSim {
    let mut sim = BrokerSim::new(brokers.clone(), group, 0);
    sim.body_bytes(worker).await;
    let expect = Expect::Present { broker: name, read_queue_nums: None };
    let started = Instant::now();
    if let Some((observers, c)) = observers {
        observers.begin(c, Change::Join, started);
    }
    let running = probes.start(worker, topic, expect, started);
    let answers = sim.register(worker, "register.churn-join").await;
    running.cancel_refused(&answers);
    let results = probes.finish(running).await;
    record_visibility(worker, "visible.churn-join", &worker.shared.targets, results);
    sim
}

/// A churn broker leaves (unregisters, or just closes its connections) while the probes
/// (and any observers) time how long until a lookup no longer shows it.
async fn churn_leave(
    worker: &Rc<Worker>,
    mut sim: BrokerSim,
    leave: LeaveKind,
    probes: &mut Probes,
    observers: Option<(&Observers, usize)>,
    topic: &str,
    name: String,
) {
    let expect = Expect::Absent { broker: name };
    let started = Instant::now();
    if let Some((observers, c)) = observers {
        observers.begin(c, Change::Leave, started);
    }
    let running = probes.start(worker, topic, expect, started);
    match leave {
        LeaveKind::Unregister => {
            let answers = sim.unregister(worker, "unregister.churn-leave").await;
            running.cancel_refused(&answers);
            sim.close();
        }
        LeaveKind::Close => sim.close(),
    }
    let results = probes.finish(running).await;
    record_visibility(worker, "visible.churn-leave", &worker.shared.targets, results);
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
/// unregister, each timed to the answer and (with `visibility`) until visible on every target.
async fn register_scenario(worker: &Rc<Worker>, plan: &Arc<Plan>, rounds: impl Fn(Instant) -> Rounds) {
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
            register_group(worker, workload, brokers, probes, group, &rounds(end)).await;
        }
        probes.close();
    }
    worker.barrier(1).await;
}

/// Sends one registration while probes wait for `probe` to show; records both times.
/// Without `visible_hist` (--answers-only) the probes poll only until the answer and record
/// nothing: the client does the same work while the frame is in flight as against any server.
async fn timed_registration(
    worker: &Rc<Worker>,
    sim: &mut BrokerSim,
    probes: &mut Probes,
    probe: Option<(String, Expect)>,
    answer_hist: &str,
    visible_hist: Option<&str>,
) {
    // Encoding happens before the clock starts: the server's time is what is measured.
    sim.body_bytes(worker).await;
    let running = probe.map(|(topic, expect)| probes.start(worker, &topic, expect, Instant::now()));
    let answers = sim.register(worker, answer_hist).await;
    if let Some(running) = running {
        match visible_hist {
            Some(_) => running.cancel_refused(&answers),
            None => running.cancel_all(),
        }
        let results = probes.finish(running).await;
        if let Some(hist) = visible_hist {
            record_visibility(worker, hist, &worker.shared.targets, results);
        }
    }
}

/// What each broker group of the register scenario does: `repeat` re-sends with
/// `change_fraction` changed, visibility probes or not, until `end` at the latest.
#[derive(Clone, Copy)]
struct Rounds {
    repeat: u32,
    /// The first re-sends that change nothing.
    unchanged_resends: u32,
    change_fraction: f64,
    visibility: bool,
    end: Instant,
}

async fn register_group(
    worker: &Rc<Worker>,
    workload: &Arc<Workload>,
    brokers: &Arc<BrokerPlan>,
    probes: &mut Probes,
    group: u32,
    rounds: &Rounds,
) {
    let Rounds { repeat, unchanged_resends, change_fraction, visibility, end } = *rounds;
    let g = &workload.groups[group as usize];
    let mut master = BrokerSim::new(brokers.clone(), group, 0);
    let mut slaves: Vec<BrokerSim> =
        (1..g.instances.len()).map(|instance| BrokerSim::new(brokers.clone(), group, instance)).collect();
    let probe_topic = workload.topic_names[*g.topics.last().expect("a group hosts >= 2 topics") as usize].clone();
    let gone = Expect::Absent { broker: g.name.clone() };
    let absent = if visibility { probes.check_now(worker, &probe_topic, &gone).await } else { Vec::new() };
    if absent.iter().any(|a| !a) {
        worker
            .metrics
            .borrow_mut()
            .error("register: broker already routed before its first registration".into(), || {
                format!("{} already serves {probe_topic}; visibility times would be meaningless (use --prefix)", g.name)
            });
    }
    // 0 in split mode, where chunks are encoded as they are sent (counted as they are).
    let bytes = master.body_bytes(worker).await;
    if bytes > 0 {
        worker.metrics.borrow_mut().count("register first body bytes (per broker)", bytes as u64);
    }
    let present = Expect::Present { broker: g.name.clone(), read_queue_nums: None };
    timed_registration(
        worker,
        &mut master,
        probes,
        Some((probe_topic.clone(), present)),
        "register.first",
        visibility.then_some("visible.first"),
    )
    .await;
    for slave in slaves.iter_mut() {
        slave.register(worker, "register.slave").await;
    }
    for resend in 0..repeat {
        if worker.stopped() || Instant::now() >= end {
            worker.shared.note("--duration ended before every re-send was made".into());
            break;
        }
        let fraction = if resend < unchanged_resends { 0.0 } else { change_fraction };
        let changed = master.change(fraction);
        for slave in slaves.iter_mut() {
            slave.change(fraction);
        }
        let probe = changed.first().map(|&t| {
            let queues = master.table.queue_nums(workload, t);
            let expect = Expect::Present { broker: g.name.clone(), read_queue_nums: queues };
            (workload.topic_names[t as usize].clone(), expect)
        });
        let hist = if changed.is_empty() { "register.resend-unchanged" } else { "register.resend-changed" };
        let visible = visibility.then_some("visible.resend");
        timed_registration(worker, &mut master, probes, probe, hist, visible).await;
        for slave in slaves.iter_mut() {
            slave.register(worker, "register.slave").await;
        }
    }
    for slave in slaves.iter_mut() {
        slave.unregister(worker, "unregister").await;
        slave.close();
    }
    if visibility {
        let running = probes.start(worker, &probe_topic, gone, Instant::now());
        let answers = master.unregister(worker, "unregister").await;
        running.cancel_refused(&answers);
        let results = probes.finish(running).await;
        record_visibility(worker, "visible.unregister", &worker.shared.targets, results);
    } else {
        master.unregister(worker, "unregister").await;
    }
    master.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::ScheduleSpec;
    use crate::wire::RequestStyle;
    use crate::workload::{self, WorkloadSpec};
    use meridian_protocol::frame::SerializeType;

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
            answers_only: false,
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
            per_broker: 0,
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
