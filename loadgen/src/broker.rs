//! Broker simulation: one simulated broker instance (master or slave of a broker group)
//! holding one connection per NameServer, as real brokers do, and sending REGISTER_BROKER
//! to every target at once, periodic re-registrations with data-version changes,
//! heartbeats (QUERY_DATA_VERSION or BROKER_HEARTBEAT) and a clean UNREGISTER_BROKER.
//! With a split size, a registration is a round of chunks sent one after the other (see
//! `split` for where they are cut and which data version each carries).
//!
//! Connections stay open between calls: a NameServer unregisters a broker whose
//! registration connection closes. Must not: be shared across executors (`RpcConn` is
//! executor-local).

use crate::ctx::{micros, sleep_until, Worker};
use crate::net::RpcConn;
use crate::split;
use crate::stats::code_key;
use crate::wire::RequestStyle;
use crate::workload::{self, BodyFormat, TopicTable, Workload};
use meridian_protocol::body::{encode_data_version, DataVersion, RegisterBrokerBody};
use meridian_protocol::codes;
use meridian_protocol::frame::SerializeType;
use serde::Serialize;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeartbeatKind {
    /// Only the periodic full registrations (Java's default, forceRegister=true).
    None,
    /// QUERY_DATA_VERSION (322), two-way, with the broker's DataVersion as body.
    QueryDataVersion,
    /// BROKER_HEARTBEAT (904), oneway.
    BrokerHeartbeat,
}

/// What every simulated broker of a run does.
pub struct BrokerPlan {
    pub workload: Arc<Workload>,
    pub format: BodyFormat,
    pub heartbeat: HeartbeatKind,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout_ms: Option<u64>,
    /// Broker-side timeout of REGISTER_BROKER (Java: registerBrokerTimeoutMills, 24 s).
    pub register_timeout: Duration,
    /// Topics per chunk of a split registration (Java: splitRegistrationSize); 0 = one frame.
    pub split_size: usize,
    /// Timeout of the other calls (Java brokers use 3 s for unregister).
    pub call_timeout: Duration,
    pub targets: Vec<SocketAddr>,
}

/// The answer time of one call per target, or why it failed.
pub type PerTarget = Vec<Result<Duration, String>>;
/// Ext fields of a request, shared by the per-target tasks that send it.
type ExtFields = Rc<Vec<(&'static str, String)>>;
/// Per target: `None` without a connection, else the answer's (code, remark, time) or why
/// the call failed.
type RawResults = Vec<Option<Result<(i32, Option<String>, Duration), String>>>;

pub struct BrokerSim {
    plan: Arc<BrokerPlan>,
    pub group: u32,
    pub instance: usize,
    pub table: TopicTable,
    conns: Vec<Option<RpcConn>>,
    /// Encoded body and its ext fields for the table's current data version.
    encoded: Option<(DataVersion, Rc<Vec<u8>>, ExtFields)>,
}

pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl BrokerSim {
    pub fn new(plan: Arc<BrokerPlan>, group: u32, instance: usize) -> BrokerSim {
        let table = TopicTable::new(&plan.workload, group, unix_ms());
        let conns = plan.targets.iter().map(|_| None).collect();
        BrokerSim { plan, group, instance, table, conns, encoded: None }
    }

    pub fn name(&self) -> &str {
        &self.plan.workload.groups[self.group as usize].name
    }

    fn style(&self) -> RequestStyle {
        RequestStyle { version: self.plan.format.request_version(), serialize_type: SerializeType::Json }
    }

    /// Flips a fraction of the topics (bumping the data version if any changed).
    pub fn change(&mut self, fraction: f64) -> Vec<u32> {
        self.table.change(&self.plan.workload, fraction, unix_ms())
    }

    /// The body for the current data version, encoded once per version.
    async fn encoded(&mut self, worker: &Worker) -> (Rc<Vec<u8>>, ExtFields) {
        if let Some((version, body, ext)) = &self.encoded {
            if *version == self.table.data_version {
                return (body.clone(), ext.clone());
            }
        }
        // The table is a flag per topic: cloned, it builds the body off the executor too.
        let (table, workload) = (self.table.clone(), self.plan.workload.clone());
        let (body, ext) = self.encode(worker, move || table.body(&workload)).await;
        self.encoded = Some((self.table.data_version, body.clone(), ext.clone()));
        (body, ext)
    }

    /// Builds the body with `build` and encodes it and its ext fields on the worker's
    /// blocking thread: a 1 ms encode on the executor would delay the lookup answers being
    /// timed on this worker and show up as the server's latency.
    async fn encode(
        &self,
        worker: &Worker,
        build: impl FnOnce() -> RegisterBrokerBody + Send + 'static,
    ) -> (Rc<Vec<u8>>, ExtFields) {
        let started = Instant::now();
        let workload = &self.plan.workload;
        let format = self.plan.format;
        let body = glommio::executor()
            .spawn_blocking(move || {
                background_priority();
                workload::encode_register_body(&build(), &format)
            })
            .await;
        let group = &workload.groups[self.group as usize];
        let ext = workload::register_ext_fields(
            group,
            &group.instances[self.instance],
            &body,
            &self.plan.format,
            self.plan.heartbeat_timeout_ms,
        );
        let mut metrics = worker.metrics.borrow_mut();
        metrics.record("encode.register", micros(started, Instant::now()));
        metrics.count("register body bytes", body.len() as u64);
        (Rc::new(body), Rc::new(ext))
    }

    /// Drops the encoded body kept for the current data version (a scale run holds a
    /// thousand brokers and re-encodes each on its turn, as its body changes anyway).
    pub fn release_body(&mut self) {
        self.encoded = None;
    }

    /// Encodes the next registration ahead, so that its timing is the server's, and returns
    /// its size. 0 in split mode: there every chunk is built and encoded as it is sent, with
    /// the data version of that moment, as the Java broker does.
    pub async fn body_bytes(&mut self, worker: &Worker) -> usize {
        if self.plan.split_size > 0 {
            return 0;
        }
        self.encoded(worker).await.0.len()
    }

    /// Opens (or reopens after a failure) the connection to every target.
    async fn connect(&mut self, worker: &Worker) {
        let style = self.style();
        for (i, slot) in self.conns.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|c| !c.is_broken()) {
                continue;
            }
            match RpcConn::connect(self.plan.targets[i], style, self.plan.call_timeout).await {
                Ok(conn) => *slot = Some(conn),
                Err(e) => {
                    *slot = None;
                    worker.metrics.borrow_mut().error("broker connect failed".into(), || e);
                }
            }
        }
    }

    /// Calls every target at once; `None` in the result where no connection exists.
    async fn call_all(&mut self, code: i32, ext: ExtFields, body: Rc<Vec<u8>>, limit: Duration) -> RawResults {
        let mut tasks = Vec::new();
        for (i, slot) in self.conns.iter_mut().enumerate() {
            let Some(mut conn) = slot.take() else {
                continue;
            };
            let (ext, body) = (ext.clone(), body.clone());
            tasks.push(glommio::spawn_local(async move {
                let refs: Vec<(&str, &str)> = ext.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let sent = Instant::now();
                let result = conn.call(code, &refs, &body, limit).await;
                let result = result.map(|answer| (answer.header.code, answer.header.remark, sent.elapsed()));
                (i, conn, result)
            }));
        }
        let mut results: Vec<Option<_>> = self.conns.iter().map(|_| None).collect();
        for task in tasks {
            let (i, conn, result) = task.await;
            self.conns[i] = Some(conn);
            results[i] = Some(result);
        }
        results
    }

    /// Records answers of `activity` (register, unregister, heartbeat) into histogram
    /// `hist` and errors under `activity`.
    fn account(&self, worker: &Worker, activity: &str, hist: &str, results: RawResults) -> PerTarget {
        let mut metrics = worker.metrics.borrow_mut();
        results
            .into_iter()
            .enumerate()
            .map(|(i, result)| match result {
                None => Err(format!("no connection to {}", self.plan.targets[i])),
                Some(Ok((codes::SUCCESS, _, took))) => {
                    metrics.record(hist, took.as_micros() as u64);
                    Ok(took)
                }
                Some(Ok((code, remark, _))) => {
                    let remark = remark.unwrap_or_else(|| "(no remark)".into());
                    let detail = format!("{} from {}: {remark}", self.name(), self.plan.targets[i]);
                    metrics.error(format!("{activity}: {}", code_key(code)), || detail.clone());
                    Err(detail)
                }
                Some(Err(e)) => {
                    metrics.error(format!("{activity}: call failed"), || e.clone());
                    Err(e)
                }
            })
            .collect()
    }

    /// Sends the current table to every target at once; answer times go to `hist`. In split
    /// mode this is a whole round of chunks (see `register_split`).
    pub async fn register(&mut self, worker: &Worker, hist: &str) -> PerTarget {
        if self.plan.split_size > 0 {
            return self.register_split(worker, hist).await;
        }
        self.connect(worker).await;
        let (body, ext) = self.encoded(worker).await;
        let results = self.call_all(codes::REGISTER_BROKER, ext, body, self.plan.register_timeout).await;
        self.account(worker, "register", hist, results)
    }

    /// One split registration round, as the Java broker's `registerBrokerAll` sends it: chunk
    /// after chunk, each a complete REGISTER_BROKER with its own data version and bodyCrc32,
    /// sent to every target at once and awaited from all before the next one is built; a
    /// refused or failed chunk does not stop the round. Each chunk's answer time goes to
    /// `split::CHUNK_HIST`; per target, the round's result is the sum of its chunks' answer
    /// times (recorded in `hist`), or the first failure among them.
    async fn register_split(&mut self, worker: &Worker, hist: &str) -> PerTarget {
        let mut round: PerTarget = self.conns.iter().map(|_| Ok(Duration::ZERO)).collect();
        for positions in split::chunk_ranges(self.table.topic_count(), self.plan.split_size) {
            // Each chunk is a call of its own: a connection lost mid-round is opened again.
            self.connect(worker).await;
            let body = split::chunk_body(&mut self.table, &self.plan.workload, positions, unix_ms());
            let (body, ext) = self.encode(worker, move || body).await;
            let results = self.call_all(codes::REGISTER_BROKER, ext, body, self.plan.register_timeout).await;
            let answers = self.account(worker, "register", split::CHUNK_HIST, results);
            worker.metrics.borrow_mut().count(split::CHUNKS, 1);
            for (total, answer) in round.iter_mut().zip(answers) {
                match (total.as_mut(), answer) {
                    (Ok(sum), Ok(took)) => *sum += took,
                    (Ok(_), Err(e)) => *total = Err(e),
                    (Err(_), _) => {}
                }
            }
        }
        let mut metrics = worker.metrics.borrow_mut();
        metrics.count(split::ROUNDS, 1);
        for took in round.iter().flatten() {
            metrics.record(hist, took.as_micros() as u64);
        }
        round
    }

    pub async fn heartbeat(&mut self, worker: &Worker) {
        let workload = &self.plan.workload;
        let group = &workload.groups[self.group as usize];
        let ext = Rc::new(workload::identity_ext_fields(group, &group.instances[self.instance]));
        match self.plan.heartbeat {
            HeartbeatKind::None => {}
            HeartbeatKind::QueryDataVersion => {
                let mut body = Vec::new();
                encode_data_version(&mut body, &self.table.data_version);
                let results =
                    self.call_all(codes::QUERY_DATA_VERSION, ext, Rc::new(body), self.plan.call_timeout).await;
                self.account(worker, "heartbeat", "heartbeat", results);
            }
            HeartbeatKind::BrokerHeartbeat => {
                let refs: Vec<(&str, &str)> = ext.iter().map(|(k, v)| (*k, v.as_str())).collect();
                for conn in self.conns.iter_mut().flatten() {
                    match conn.oneway(codes::BROKER_HEARTBEAT, &refs, &[], self.plan.call_timeout).await {
                        Ok(()) => worker.metrics.borrow_mut().count("heartbeats sent (oneway)", 1),
                        Err(e) => worker.metrics.borrow_mut().error("heartbeat: send failed".into(), || e),
                    }
                }
            }
        }
    }

    /// UNREGISTER_BROKER to every target at once (as a broker's clean shutdown does).
    pub async fn unregister(&mut self, worker: &Worker, hist: &str) -> PerTarget {
        let workload = &self.plan.workload;
        let group = &workload.groups[self.group as usize];
        let ext = Rc::new(workload::identity_ext_fields(group, &group.instances[self.instance]));
        let results = self.call_all(codes::UNREGISTER_BROKER, ext, Rc::new(Vec::new()), self.plan.call_timeout).await;
        self.account(worker, "unregister", hist, results)
    }

    /// Closes every connection (a NameServer then unregisters the broker by itself).
    pub fn close(&mut self) {
        for conn in self.conns.iter_mut().filter_map(Option::take) {
            conn.close();
        }
    }
}

/// When a broker re-registers in the background, and with how much change.
#[derive(Clone)]
pub struct Schedule {
    pub period: Duration,
    pub change_fraction: f64,
    pub hist: &'static str,
    /// From `start` on, re-register every `period` with `change_fraction` instead.
    pub storm: Option<Storm>,
    /// This broker's place among all brokers, in (0, 1]: spreads their registrations.
    pub stagger: f64,
    pub until: Instant,
}

#[derive(Clone)]
pub struct Storm {
    pub start: Instant,
    pub period: Duration,
    pub change_fraction: f64,
    pub hist: &'static str,
}

impl Schedule {
    fn storming(&self, at: Instant) -> Option<&Storm> {
        self.storm.as_ref().filter(|s| at >= s.start)
    }

    /// The first background registration: one staggered period after `start`, or the
    /// (staggered) storm start if that comes first.
    fn first(&self, start: Instant) -> Instant {
        let normal = start + self.period.mul_f64(self.stagger);
        match &self.storm {
            Some(storm) if normal > storm.start => storm.start + storm.period.mul_f64(self.stagger),
            _ => normal,
        }
    }

    fn next_after(&self, last: Instant) -> Instant {
        let normal = last + self.period;
        match &self.storm {
            Some(storm) if last >= storm.start => last + storm.period,
            Some(storm) if normal > storm.start => storm.start + storm.period.mul_f64(self.stagger),
            _ => normal,
        }
    }
}

/// Runs a broker's periodic registrations and heartbeats until `schedule.until` or a stop,
/// then hands the broker back (for unregistering).
pub async fn run_periodic(worker: Rc<Worker>, mut sim: BrokerSim, schedule: Schedule, start: Instant) -> BrokerSim {
    let mut next_register = schedule.first(start);
    let heartbeats = sim.plan.heartbeat != HeartbeatKind::None;
    let interval = sim.plan.heartbeat_interval;
    let mut next_heartbeat = start + interval;
    loop {
        let mut next = next_register.min(schedule.until);
        if heartbeats {
            next = next.min(next_heartbeat);
        }
        if !sleep_until(&worker, next).await {
            break;
        }
        let now = Instant::now();
        if now >= schedule.until {
            break;
        }
        if now >= next_register {
            let (fraction, hist) = match schedule.storming(now) {
                Some(storm) => (storm.change_fraction, storm.hist),
                None => (schedule.change_fraction, schedule.hist),
            };
            sim.change(fraction);
            sim.register(&worker, hist).await;
            // Fixed rate, but never a burst of catch-up registrations after a slow one.
            next_register = schedule.next_after(next_register).max(Instant::now());
        }
        if heartbeats && Instant::now() >= next_heartbeat {
            sim.heartbeat(&worker).await;
            next_heartbeat = (next_heartbeat + interval).max(Instant::now());
        }
    }
    sim
}

/// Puts the calling thread at SCHED_IDLE (once per thread): the blocking thread's body
/// encodes then run only on CPU time that the executors (which time the lookups) and the
/// server under test leave idle, instead of taking turns with them on a small host.
fn background_priority() {
    thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    DONE.with(|done| {
        if !done.replace(true) {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sets the calling thread's (pid 0) own policy; param is a valid local.
            // Lowering needs no privilege; were it refused, encodes keep the normal policy.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_threads_run_at_idle_priority() {
        let policy = std::thread::spawn(|| {
            background_priority();
            // A second call is a no-op.
            background_priority();
            // SAFETY: reads the calling thread's own policy.
            unsafe { libc::sched_getscheduler(0) }
        });
        assert_eq!(policy.join().unwrap(), libc::SCHED_IDLE);
        // SAFETY: as above; this thread was never lowered.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }

    #[test]
    fn schedule_switches_to_the_storm_period() {
        let t0 = Instant::now();
        let schedule = Schedule {
            period: Duration::from_secs(30),
            change_fraction: 0.0,
            hist: "register.periodic",
            storm: Some(Storm {
                start: t0 + Duration::from_secs(5),
                period: Duration::from_millis(100),
                change_fraction: 0.1,
                hist: "register.storm",
            }),
            stagger: 0.5,
            until: t0 + Duration::from_secs(10),
        };
        // Before the storm, the next registration is moved to the storm start (staggered).
        assert_eq!(schedule.next_after(t0), t0 + Duration::from_millis(5_050));
        assert_eq!(schedule.first(t0), t0 + Duration::from_millis(5_050));
        let in_storm = t0 + Duration::from_secs(6);
        assert_eq!(schedule.next_after(in_storm), in_storm + Duration::from_millis(100));
        assert!(schedule.storming(in_storm).is_some());
        assert!(schedule.storming(t0).is_none());
        let calm = Schedule { storm: None, ..schedule };
        assert_eq!(calm.next_after(t0), t0 + Duration::from_secs(30));
        assert_eq!(calm.first(t0), t0 + Duration::from_secs(15));
    }
}
