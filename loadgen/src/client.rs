//! Client simulation: C connections per run, each with K GET_ROUTEINFO_BY_TOPIC requests in
//! flight, matched by opaque (answers may come back in any order), closed-loop (a new
//! request as soon as one is answered) or open-loop (requests scheduled at fixed intervals,
//! latency measured from the *intended* send time: coordinated-omission correction).
//!
//! Per connection a reader task decodes and checks every answer and refills the window; a
//! writer task owns the socket's write side, so a slow server never blocks the reader (and
//! no two tasks ever interleave bytes of two frames). In open loop one pacer task per
//! worker puts due requests into the connections' out buffers. A supervisor task per worker
//! flags timeouts, stops the load at its end and abandons what is still unanswered once
//! the drain time is over. Must not: block, or hold a `RefCell` borrow across an await.

use crate::ctx::{micros, Worker};
use crate::net::{Conn, LocalNotify, ReadBuf};
use crate::rng::{Rng, TopicPicker};
use crate::stats::code_key;
use crate::wire::{self, FrameRef, RequestStyle};
use crate::workload::Workload;
use meridian_protocol::codes;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most requests in flight per connection.
pub const INFLIGHT_MAX: usize = 4096;
/// Topic index that stands for "a topic chosen to be unknown".
const TOPIC_UNKNOWN: u32 = u32::MAX;
/// How often the supervisor looks for timed-out requests and the end of the load.
const SUPERVISOR_STEP: Duration = Duration::from_millis(50);
/// Distinct names for unknown topics (so a server cannot cache one negative answer).
const UNKNOWN_TOPIC_NAMES: u64 = 1_000_000;

/// What every client connection of a run does; shared by all workers.
pub struct LoadPlan {
    pub topic_names: Arc<Vec<String>>,
    /// Where expectations come from: the brokers that host each topic. `None` when the run
    /// registers no brokers (a preloaded server or the echo server) or times answers only:
    /// then only the shape of the answer is checked.
    pub workload: Option<Arc<Workload>>,
    pub picker: TopicPicker,
    pub unknown_fraction: f64,
    pub unknown_prefix: String,
    pub style: RequestStyle,
    pub encoder: wire::LookupEncoder,
    pub inflight: usize,
    /// Open loop: requests per second per connection. `None`: closed loop.
    pub rate_per_conn: Option<f64>,
    pub timeout: Duration,
    /// Open loop: the pacer wakes at most this often, batching what fell due meanwhile.
    pub tick: Duration,
    /// Pause before a closed or failed connection is opened again; `None`: never.
    pub reconnect_delay: Option<Duration>,
    pub seed: u64,
}

/// One client connection to open.
pub struct ConnSpec {
    /// Index among all client connections of the run (seeds its topic choices).
    pub index: usize,
    pub connections_total: usize,
    pub target: SocketAddr,
    /// Most requests this connection sends (its share of `--requests`).
    pub quota: Option<u64>,
}

struct Slot {
    opaque: i32,
    topic: u32,
    intended: Instant,
    timed_out: bool,
}

/// Requests in flight, indexed by `opaque & mask`. Capacity is at least twice the window,
/// so when out-of-order answers leave a slot taken the next opaque is free soon.
struct Slots {
    entries: Vec<Option<Slot>>,
    mask: usize,
    next_opaque: i32,
    inflight: usize,
}

impl Slots {
    fn new(window: usize) -> Slots {
        let capacity = (window * 2).next_power_of_two();
        Slots { entries: (0..capacity).map(|_| None).collect(), mask: capacity - 1, next_opaque: 0, inflight: 0 }
    }

    fn insert(&mut self, topic: u32, intended: Instant) -> i32 {
        assert!(self.inflight < self.entries.len(), "window larger than the slot table");
        loop {
            let opaque = self.next_opaque;
            // Opaques stay non-negative and wrap at 2^31, a multiple of the table size.
            self.next_opaque = opaque.wrapping_add(1) & i32::MAX;
            let entry = &mut self.entries[opaque as usize & self.mask];
            if entry.is_none() {
                *entry = Some(Slot { opaque, topic, intended, timed_out: false });
                self.inflight += 1;
                return opaque;
            }
        }
    }

    fn remove(&mut self, opaque: i32) -> Option<Slot> {
        if opaque < 0 {
            return None;
        }
        let entry = &mut self.entries[opaque as usize & self.mask];
        if entry.as_ref().is_some_and(|s| s.opaque == opaque) {
            self.inflight -= 1;
            entry.take()
        } else {
            None
        }
    }
}

struct ClientConn {
    conn: Conn,
    out: RefCell<Vec<u8>>,
    writer_wake: LocalNotify,
    reader_wake: LocalNotify,
    slots: RefCell<Slots>,
    rng: RefCell<Rng>,
    issued: Cell<u64>,
    quota: Option<u64>,
    /// Open loop: nanoseconds between two intended sends, and when request 0 is due.
    interval_ns: Option<f64>,
    /// Where in one interval this connection's schedule starts, so the connections'
    /// sends are spread evenly rather than all due at once.
    schedule_offset_ns: f64,
    schedule_start: Cell<Instant>,
    /// No new requests; the reader ends once nothing is in flight.
    stopping: Cell<bool>,
    /// Give up on what is in flight (drain time over, or the socket failed).
    abandoned: Cell<bool>,
    /// The reader ended; the writer ends too.
    closed: Cell<bool>,
    /// The writer is in the middle of writing a batch (the reader waits for it to end
    /// before replacing the socket).
    writing: Cell<bool>,
    /// The reader is replacing the socket: the writer tells it when a batch ends.
    reopening: Cell<bool>,
}

/// The client connections of one worker.
pub struct ClientEngine {
    worker: Rc<Worker>,
    plan: Arc<LoadPlan>,
    conns: Vec<Rc<ClientConn>>,
    /// Per topic: (body length << 32 | CRC32) of the last answer that passed the full check.
    /// Route answers for a topic are the same bytes until the route changes, so a repeat is
    /// checked by comparing its CRC instead of parsing it again.
    verified: RefCell<Vec<u64>>,
    end: Cell<Instant>,
}

impl ClientEngine {
    /// Opens every connection; failures are counted and leave that connection out.
    pub async fn connect(worker: Rc<Worker>, plan: Arc<LoadPlan>, specs: Vec<ConnSpec>) -> Rc<ClientEngine> {
        let mut conns = Vec::new();
        for spec in specs {
            match Conn::connect(spec.target, plan.timeout).await {
                Ok(conn) => {
                    let interval_ns = plan.rate_per_conn.map(|rate| 1e9 / rate);
                    let schedule_offset_ns =
                        interval_ns.map_or(0.0, |ns| ns * spec.index as f64 / spec.connections_total as f64);
                    conns.push(Rc::new(ClientConn {
                        conn,
                        out: RefCell::new(Vec::with_capacity(16 * 1024)),
                        writer_wake: LocalNotify::default(),
                        reader_wake: LocalNotify::default(),
                        slots: RefCell::new(Slots::new(plan.inflight)),
                        rng: RefCell::new(Rng::derive(plan.seed, 0x636c_0000_0000 + spec.index as u64)),
                        issued: Cell::new(0),
                        quota: spec.quota,
                        interval_ns,
                        schedule_offset_ns,
                        schedule_start: Cell::new(Instant::now()),
                        stopping: Cell::new(spec.quota == Some(0)),
                        abandoned: Cell::new(false),
                        closed: Cell::new(false),
                        writing: Cell::new(false),
                        reopening: Cell::new(false),
                    }));
                }
                Err(e) => worker.metrics.borrow_mut().error("connect failed".into(), || e),
            }
        }
        let topic_count = plan.topic_names.len();
        Rc::new(ClientEngine {
            worker,
            plan,
            conns,
            verified: RefCell::new(vec![0; topic_count]),
            end: Cell::new(Instant::now()),
        })
    }

    /// Runs the load from `start` until `end` (or the quota, or a stop), then drains.
    pub async fn run(self: &Rc<Self>, start: Instant, end: Instant) {
        self.end.set(end);
        for conn in &self.conns {
            conn.schedule_start.set(start + Duration::from_nanos(conn.schedule_offset_ns as u64));
        }
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for conn in &self.conns {
            writers.push(glommio::spawn_local(writer(conn.clone())));
            readers.push(glommio::spawn_local(reader(self.clone(), conn.clone())));
        }
        let pacer = self.plan.rate_per_conn.map(|_| glommio::spawn_local(pacer(self.clone())));
        let supervisor = glommio::spawn_local(supervisor(self.clone()));
        for task in readers {
            task.await;
        }
        for conn in &self.conns {
            conn.closed.set(true);
            conn.writer_wake.notify();
        }
        for task in writers {
            task.await;
        }
        if let Some(pacer) = pacer {
            pacer.await;
        }
        supervisor.await;
    }

    fn all_closed(&self) -> bool {
        self.conns.iter().all(|c| c.closed.get())
    }

    fn stop_conn(&self, conn: &ClientConn) {
        if conn.stopping.replace(true) {
            return;
        }
        // Open loop: requests that fell due before the end but never left (the window was
        // full, or loadgen was starved) are not latencies; they are counted, so a run that
        // could not keep its rate says so.
        if let Some(ns) = conn.interval_ns {
            let until = self.end.get().min(Instant::now());
            let start = conn.schedule_start.get();
            if until > start && conn.quota.is_none() {
                let due = ((until - start).as_nanos() as f64 / ns).ceil() as u64;
                // What the last pacer tick before the end may legitimately not have sent yet.
                let slack = (self.plan.tick.as_nanos() as f64 / ns).ceil() as u64 + 1;
                let missed = due.saturating_sub(conn.issued.get());
                if missed > slack {
                    self.worker.metrics.borrow_mut().count("open loop: requests due but never sent", missed);
                    self.worker.shared.note(
                        "open loop fell behind its schedule: some requests were never sent \
                         (see count `open loop: requests due but never sent`; raise --inflight or lower --rate)"
                            .into(),
                    );
                }
            }
        }
        if conn.slots.borrow().inflight == 0 {
            conn.reader_wake.notify();
        }
    }

    /// Puts as many requests into `conn`'s out buffer as the window (and, in open loop, the
    /// schedule) allows at `now`.
    fn fill(&self, conn: &ClientConn, now: Instant) {
        // While reopening, nothing may be issued: it would never be sent on the new socket.
        if conn.stopping.get() || conn.reopening.get() {
            return;
        }
        if now >= self.end.get() || self.worker.stopped() {
            self.stop_conn(conn);
            return;
        }
        let plan = &*self.plan;
        let mut slots = conn.slots.borrow_mut();
        let mut out = conn.out.borrow_mut();
        let mut rng = conn.rng.borrow_mut();
        let mut wrote = false;
        let mut quota_reached = false;
        while slots.inflight < plan.inflight {
            let issued = conn.issued.get();
            if conn.quota.is_some_and(|q| issued >= q) {
                quota_reached = true;
                break;
            }
            let intended = match conn.interval_ns {
                None => now,
                Some(ns) => {
                    let due = conn.schedule_start.get() + Duration::from_nanos((issued as f64 * ns) as u64);
                    if due > now {
                        break;
                    }
                    due
                }
            };
            let unknown_name;
            let (topic, name) = if plan.unknown_fraction > 0.0 && rng.unit() < plan.unknown_fraction {
                unknown_name = format!("{}NoSuchTopic{:06}", plan.unknown_prefix, rng.below(UNKNOWN_TOPIC_NAMES));
                (TOPIC_UNKNOWN, unknown_name.as_str())
            } else {
                let t = plan.picker.pick(&mut rng);
                (t, plan.topic_names[t as usize].as_str())
            };
            let opaque = slots.insert(topic, intended);
            plan.encoder.encode(&mut out, opaque, name);
            conn.issued.set(issued + 1);
            wrote = true;
            if conn.interval_ns.is_some() {
                let phase = self.worker.phase_of(intended);
                self.worker.metrics.borrow_mut().lookups[phase].send_lag.saturating_record(micros(intended, now));
            }
        }
        drop((slots, out, rng));
        if wrote {
            conn.writer_wake.notify();
        }
        if quota_reached {
            self.stop_conn(conn);
        }
    }

    /// Decodes and checks one answer. An `Err` means the stream cannot be trusted any more.
    fn on_answer(&self, conn: &ClientConn, frame: &FrameRef<'_>, now: Instant) -> Result<(), String> {
        let header = wire::answer_fields(frame)?;
        let Some(slot) = conn.slots.borrow_mut().remove(header.opaque) else {
            self.worker
                .metrics
                .borrow_mut()
                .error("lookup answer with an unknown opaque".into(), || format!("opaque {}", header.opaque));
            return Ok(());
        };
        let phase = self.worker.phase_of(slot.intended);
        let mut metrics = self.worker.metrics.borrow_mut();
        metrics.lookups[phase].latency.saturating_record(micros(slot.intended, now));
        if slot.timed_out {
            // Already counted as a timeout; the latency above still tells how late it was.
            return Ok(());
        }
        match (slot.topic == TOPIC_UNKNOWN, header.code) {
            (true, codes::TOPIC_NOT_EXIST) => metrics.lookups[phase].not_found_expected += 1,
            (true, codes::SUCCESS) => {
                metrics.lookup_error(phase, "route for a topic no broker registered".into(), || {
                    "SUCCESS for an unknown topic".into()
                })
            }
            (false, codes::SUCCESS) => match self.verify(slot.topic, frame.body, &mut metrics) {
                Ok(()) => metrics.lookups[phase].ok += 1,
                Err(e) => metrics.lookup_error(phase, e.key.to_string(), || {
                    format!("topic {}: {}", self.plan.topic_names[slot.topic as usize], e.detail)
                }),
            },
            (unknown, code) => {
                let topic =
                    if unknown { "an unknown topic" } else { self.plan.topic_names[slot.topic as usize].as_str() };
                metrics.lookup_error(phase, code_key(code), || {
                    format!("topic {topic}: {}", header.remark.as_deref().unwrap_or("(no remark)"))
                })
            }
        }
        Ok(())
    }

    fn verify(&self, topic: u32, body: &[u8], metrics: &mut crate::stats::Metrics) -> Result<(), wire::RouteError> {
        let fingerprint = ((body.len() as u64) << 32) | crc32fast::hash(body) as u64;
        let mut verified = self.verified.borrow_mut();
        if verified[topic as usize] == fingerprint {
            return Ok(());
        }
        metrics.count("lookup answers fully parsed", 1);
        match &self.plan.workload {
            Some(w) => wire::check_route(body, w.groups_of_topic(topic).map(|g| w.groups[g as usize].name.as_str()))?,
            None => wire::check_route(body, [])?,
        }
        verified[topic as usize] = fingerprint;
        Ok(())
    }

    /// Counts what is still in flight on a connection that ends, recording each request's
    /// latency as "at least until now" (coordinated-omission honest).
    fn abandon_in_flight(&self, conn: &ClientConn, reason: &str) {
        let now = Instant::now();
        let mut slots = conn.slots.borrow_mut();
        let mut metrics = self.worker.metrics.borrow_mut();
        for entry in slots.entries.iter_mut() {
            if let Some(slot) = entry.take() {
                let phase = self.worker.phase_of(slot.intended);
                metrics.lookups[phase].latency.saturating_record(micros(slot.intended, now));
                if !slot.timed_out {
                    metrics.lookup_error(phase, format!("unanswered ({reason})"), || format!("{}", conn.conn.peer));
                }
            }
        }
        slots.inflight = 0;
    }
}

async fn reader(engine: Rc<ClientEngine>, conn: Rc<ClientConn>) {
    let mut buf = ReadBuf::default();
    engine.fill(&conn, Instant::now());
    let reason = loop {
        match read_answers(&engine, &conn, &mut buf).await {
            None => break None,
            Some((reason, reopenable)) => {
                if reopenable && engine.reopen(&conn, reason, &mut buf).await {
                    continue;
                }
                break Some(reason);
            }
        }
    };
    if let Some(reason) = reason {
        conn.abandoned.set(true);
        conn.stopping.set(true);
        engine.abandon_in_flight(&conn, reason);
        conn.conn.shutdown();
    }
    conn.closed.set(true);
    conn.writer_wake.notify();
}

/// Reads and checks answers until the connection is done (`None`) or ends early: the
/// reason, and whether opening it again may help (the server closed it, or it failed).
async fn read_answers(engine: &ClientEngine, conn: &ClientConn, buf: &mut ReadBuf) -> Option<(&'static str, bool)> {
    loop {
        if conn.abandoned.get() {
            return Some(("drain time over", false));
        }
        if conn.stopping.get() && conn.slots.borrow().inflight == 0 {
            return None;
        }
        let read = futures_lite::future::or(async { Some(conn.conn.read(buf).await) }, async {
            conn.reader_wake.wait().await;
            None
        })
        .await;
        match read {
            None => continue,
            Some(Ok(0)) => {
                engine.worker.metrics.borrow_mut().error("connection closed by the server".into(), || {
                    format!("{} closed a client connection", conn.conn.peer)
                });
                return Some(("connection closed", true));
            }
            Some(Err(e)) => {
                if conn.abandoned.get() {
                    return Some(("drain time over", false));
                }
                engine
                    .worker
                    .metrics
                    .borrow_mut()
                    .error("client connection failed".into(), || format!("{}: {e}", conn.conn.peer));
                return Some(("connection failed", true));
            }
            Some(Ok(_)) => {}
        }
        let now = Instant::now();
        let mut broken = None;
        loop {
            let consumed = match wire::next_frame(buf.unread()) {
                Ok(Some((frame, n))) => match engine.on_answer(conn, &frame, now) {
                    Ok(()) => n,
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            };
            buf.consume(consumed);
        }
        if let Some(e) = broken {
            engine
                .worker
                .metrics
                .borrow_mut()
                .error("undecodable answer stream".into(), || format!("{}: {e}", conn.conn.peer));
            // A server bug, not an outage: reconnecting would only repeat it.
            return Some(("stream undecodable", false));
        }
        engine.fill(conn, now);
    }
}

impl ClientEngine {
    /// After the server closed `conn` or it failed: counts what was in flight as unanswered
    /// (`reason`), then connects again every `reconnect_delay` until it works or the load
    /// ends, as a RocketMQ client does on its next request. True when open again.
    async fn reopen(&self, conn: &ClientConn, reason: &'static str, buf: &mut ReadBuf) -> bool {
        let Some(delay) = self.plan.reconnect_delay else { return false };
        // No half-written batch may go on over the new socket: end the old one and wait
        // for the writer to be between batches.
        conn.reopening.set(true);
        conn.conn.shutdown();
        while conn.writing.get() {
            conn.reader_wake.wait().await;
        }
        conn.out.borrow_mut().clear();
        self.abandon_in_flight(conn, reason);
        *buf = ReadBuf::default();
        let give_up =
            || conn.stopping.get() || conn.abandoned.get() || self.worker.stopped() || Instant::now() >= self.end.get();
        loop {
            if give_up() {
                conn.reopening.set(false);
                return false;
            }
            // The supervisor's stop wakes this pause early.
            futures_lite::future::or(glommio::timer::sleep(delay), conn.reader_wake.wait()).await;
            if give_up() {
                conn.reopening.set(false);
                return false;
            }
            match Conn::connect(conn.conn.peer, self.plan.timeout).await {
                Ok(fresh) => {
                    conn.conn.replace_with(fresh);
                    conn.reopening.set(false);
                    self.worker.metrics.borrow_mut().count("client connections reopened", 1);
                    self.fill(conn, Instant::now());
                    conn.writer_wake.notify();
                    return true;
                }
                Err(e) => self.worker.metrics.borrow_mut().error("reconnect failed".into(), || e),
            }
        }
    }
}

async fn writer(conn: Rc<ClientConn>) {
    let mut batch: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let empty = conn.out.borrow().is_empty();
        if empty {
            if conn.closed.get() {
                return;
            }
            conn.writer_wake.wait().await;
            continue;
        }
        std::mem::swap(&mut *conn.out.borrow_mut(), &mut batch);
        if conn.closed.get() {
            return;
        }
        conn.writing.set(true);
        let written = conn.conn.write_all(&batch).await;
        conn.writing.set(false);
        batch.clear();
        if conn.reopening.get() {
            conn.reader_wake.notify();
        }
        if written.is_err() {
            // The reader does the accounting (and the reopening, if any): make sure it
            // sees the failure even if its read would not.
            conn.conn.shutdown();
            conn.reader_wake.notify();
        }
    }
}

async fn pacer(engine: Rc<ClientEngine>) {
    loop {
        let now = Instant::now();
        let mut next_due: Option<Instant> = None;
        let mut active = false;
        for conn in &engine.conns {
            engine.fill(conn, now);
            if conn.stopping.get() {
                continue;
            }
            active = true;
            if let Some(ns) = conn.interval_ns {
                let due = conn.schedule_start.get() + Duration::from_nanos((conn.issued.get() as f64 * ns) as u64);
                next_due = Some(next_due.map_or(due, |d: Instant| d.min(due)));
            }
        }
        if !active {
            return;
        }
        let wait = next_due.map_or(engine.plan.tick, |due| due.saturating_duration_since(Instant::now()));
        glommio::timer::sleep(wait.max(engine.plan.tick)).await;
    }
}

async fn supervisor(engine: Rc<ClientEngine>) {
    let mut drain_end: Option<Instant> = None;
    loop {
        glommio::timer::sleep(SUPERVISOR_STEP).await;
        if engine.all_closed() {
            return;
        }
        let now = Instant::now();
        // Timeouts: counted once; the request stays in its slot so a late answer still
        // shows its real latency.
        let timeout = engine.plan.timeout;
        for conn in &engine.conns {
            let mut slots = conn.slots.borrow_mut();
            for slot in slots.entries.iter_mut().flatten() {
                if !slot.timed_out && now.saturating_duration_since(slot.intended) > timeout {
                    slot.timed_out = true;
                    let phase = engine.worker.phase_of(slot.intended);
                    engine.worker.metrics.borrow_mut().lookup_error(phase, "timeout".into(), || {
                        format!("no answer from {} within {} ms", conn.conn.peer, timeout.as_millis())
                    });
                }
            }
        }
        if drain_end.is_none() && (now >= engine.end.get() || engine.worker.stopped()) {
            drain_end = Some(now + engine.worker.shared.drain);
            for conn in &engine.conns {
                engine.stop_conn(conn);
            }
        }
        if drain_end.is_some_and(|d| now >= d) {
            for conn in &engine.conns {
                if !conn.closed.get() {
                    conn.abandoned.set(true);
                    conn.reader_wake.notify();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_out_of_order_answers() {
        let now = Instant::now();
        let mut slots = Slots::new(3);
        let a = slots.insert(10, now);
        let b = slots.insert(11, now);
        let c = slots.insert(12, now);
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(slots.remove(b).map(|s| s.topic), Some(11));
        assert!(slots.remove(b).is_none(), "answered twice");
        assert!(slots.remove(-5).is_none());
        assert!(slots.remove(99).is_none());
        // Keep slot 0 busy while opaques wrap around the 8-entry table.
        for _ in 0..20 {
            let o = slots.insert(1, now);
            assert_ne!(o & 7, a & 7, "a busy slot is skipped");
            assert!(slots.remove(o).is_some());
        }
        assert_eq!(slots.remove(a).map(|s| s.topic), Some(10));
        assert_eq!(slots.remove(c).map(|s| s.topic), Some(12));
        assert_eq!(slots.inflight, 0);
    }

    #[test]
    fn opaques_wrap_to_zero_and_stay_non_negative() {
        let now = Instant::now();
        let mut slots = Slots::new(1);
        slots.next_opaque = i32::MAX;
        let last = slots.insert(0, now);
        assert_eq!(last, i32::MAX);
        assert!(slots.remove(last).is_some());
        assert_eq!(slots.insert(0, now), 0);
    }
}
