//! What every worker thread shares (`Shared`: targets, stop flag, barriers, the load clock,
//! the report channel) and what each keeps to itself (`Worker`: its `Metrics`).
//!
//! Must not: hold `Rc`/`RefCell` in `Shared`; it crosses threads. A `Worker` never leaves
//! its executor.

use crate::stats::Metrics;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Barriers a scenario may use (setup done, load done, teardown done, spare).
const BARRIERS_MAX: usize = 4;
/// How often a worker's reporter looks for a report request.
const REPORT_POLL: Duration = Duration::from_millis(5);
/// How often a worker waiting at a barrier looks again.
const BARRIER_POLL: Duration = Duration::from_millis(1);

pub enum Report {
    /// What a worker recorded since its previous report, sent when the main thread asked
    /// for report `generation`.
    Interval { generation: u64, metrics: Metrics },
    /// The worker's last report; it has finished.
    Done { metrics: Metrics },
}

pub struct Shared {
    pub threads: usize,
    pub targets: Vec<SocketAddr>,
    /// Set by Ctrl-C (or a fatal setup error): stop issuing work, drain, tear down.
    pub stop: Arc<AtomicBool>,
    barriers: [AtomicUsize; BARRIERS_MAX],
    /// Start of the measured load phase, set once by the first worker past barrier 0.
    t0: OnceLock<Instant>,
    pub load_duration: Duration,
    /// Phase i of the load starts at t0 + phase_offsets[i]; phase_offsets[0] is zero.
    pub phase_offsets: Vec<Duration>,
    pub reports: flume::Sender<Report>,
    /// Bumped by the main thread when it wants every worker's interval report, so all
    /// reports of one progress line cover the same interval.
    pub report_generation: std::sync::atomic::AtomicU64,
    /// Latest end of any worker's client load, in ns after t0 (0 = not yet): a run ended
    /// by `--requests` reports its rate over the time the load really took.
    load_done_ns: std::sync::atomic::AtomicU64,
    /// How long outstanding requests may take to be answered once the load stops.
    pub drain: Duration,
    /// Warnings for the summary (rare, so a mutex is fine).
    pub notes: Mutex<Vec<String>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        threads: usize,
        targets: Vec<SocketAddr>,
        stop: Arc<AtomicBool>,
        load_duration: Duration,
        phase_offsets: Vec<Duration>,
        reports: flume::Sender<Report>,
        drain: Duration,
    ) -> Shared {
        assert!(phase_offsets.first() == Some(&Duration::ZERO), "phase 0 starts at t0");
        Shared {
            threads,
            targets,
            stop,
            barriers: Default::default(),
            t0: OnceLock::new(),
            load_duration,
            phase_offsets,
            reports,
            report_generation: Default::default(),
            load_done_ns: Default::default(),
            drain,
            notes: Mutex::new(Vec::new()),
        }
    }

    pub fn t0(&self) -> Option<Instant> {
        self.t0.get().copied()
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// When the last worker's client load ended, if every worker has reported one.
    pub fn load_done(&self) -> Option<Instant> {
        let ns = self.load_done_ns.load(Ordering::Acquire);
        Some(self.t0()? + Duration::from_nanos(ns)).filter(|_| ns > 0)
    }

    pub fn note(&self, text: String) {
        let mut notes = self.notes.lock().expect("notes lock is never poisoned: no panics while held");
        if !notes.contains(&text) {
            notes.push(text);
        }
    }
}

pub struct Worker {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub metrics: RefCell<Metrics>,
    /// Set when the worker has sent its last report; its reporter then ends.
    finished: std::cell::Cell<bool>,
}

impl Worker {
    pub fn new(id: usize, shared: Arc<Shared>) -> Rc<Worker> {
        let phases = shared.phase_offsets.len();
        Rc::new(Worker { id, shared, metrics: RefCell::new(Metrics::new(phases)), finished: Default::default() })
    }

    pub fn stopped(&self) -> bool {
        self.shared.stopped()
    }

    /// Waits until every worker reached barrier `index`. Returns false if the run was
    /// stopped meanwhile (the other workers may never arrive).
    pub async fn barrier(&self, index: usize) -> bool {
        let counter = &self.shared.barriers[index];
        counter.fetch_add(1, Ordering::AcqRel);
        while counter.load(Ordering::Acquire) < self.shared.threads {
            if self.stopped() {
                return false;
            }
            glommio::timer::sleep(BARRIER_POLL).await;
        }
        true
    }

    /// The start of the load phase; the first caller fixes it for everybody.
    pub fn start_clock(&self) -> Instant {
        *self.shared.t0.get_or_init(Instant::now)
    }

    pub fn t0(&self) -> Instant {
        self.shared.t0().expect("start_clock runs before the load phase")
    }

    /// Notes that this worker's client load ended now.
    pub fn load_finished(&self) {
        let ns = Instant::now().saturating_duration_since(self.t0()).as_nanos() as u64;
        self.shared.load_done_ns.fetch_max(ns.max(1), Ordering::AcqRel);
    }

    pub fn phase_of(&self, at: Instant) -> usize {
        let Some(t0) = self.shared.t0() else { return 0 };
        let since = at.saturating_duration_since(t0);
        self.shared.phase_offsets.partition_point(|offset| *offset <= since).saturating_sub(1)
    }

    /// Sends what was recorded whenever the main thread asks (within REPORT_POLL), until
    /// `finish`.
    pub fn start_reporter(self: &Rc<Self>) {
        let worker = self.clone();
        glommio::spawn_local(async move {
            let mut answered = 0;
            while !worker.finished.get() {
                glommio::timer::sleep(REPORT_POLL).await;
                let generation = worker.shared.report_generation.load(Ordering::Acquire);
                if generation != answered && !worker.finished.get() {
                    answered = generation;
                    let metrics = worker.metrics.borrow_mut().take();
                    // The main thread outlives the workers; a send error means it gave up.
                    let _ = worker.shared.reports.send(Report::Interval { generation, metrics });
                }
            }
        })
        .detach();
    }

    /// Sends the last report (once). Nothing may be recorded afterwards.
    pub fn finish(&self) {
        if self.finished.replace(true) {
            return;
        }
        // During a panic the metrics may still be borrowed; then the last interval is lost.
        let metrics = match self.metrics.try_borrow_mut() {
            Ok(mut metrics) => metrics.take(),
            Err(_) => Metrics::new(self.shared.phase_offsets.len()),
        };
        let _ = self.shared.reports.send(Report::Done { metrics });
    }
}

/// Sleeps until `deadline`, waking every `step` to give up early if the run stops.
pub async fn sleep_until(worker: &Worker, deadline: Instant) -> bool {
    const STEP: Duration = Duration::from_millis(20);
    loop {
        if worker.stopped() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        glommio::timer::sleep((deadline - now).min(STEP)).await;
    }
}

/// Microseconds between two instants, at least 1 (a histogram cannot hold 0).
pub fn micros(from: Instant, to: Instant) -> u64 {
    (to.saturating_duration_since(from).as_micros() as u64).max(1)
}
