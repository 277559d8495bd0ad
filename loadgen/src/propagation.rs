//! Route-change propagation to clients, in the `churn` scenario: for every churn event (a
//! churn broker joining or leaving), how long after the event starts each simulated client
//! holds a route that shows it. Two kinds of client:
//! - **watchers** (`--watchers`): Meridian's route-watch extension (request code 43701): a
//!   long poll naming the churned topics and the route versions held, answered as soon as
//!   one differs. One connection each (a held watch occupies its connection).
//! - **pollers** (`--pollers`): stock RocketMQ client behaviour: every `--poll-interval`
//!   (pollNameServerInterval, 30 s), from a random phase, one GET_ROUTEINFO_BY_TOPIC per
//!   churned topic.
//!
//! The clock of an event starts when the churn driver begins the register / unregister /
//! close (the instant its visibility probes start from), and stops for an observer when it
//! receives a route showing the new state (join: the churn broker listed, as probes judge it;
//! leave: not listed, or no route). One sample per observer per event, in
//! `propagation.{watch,poll}-{join,leave}`. An event an observer has not seen when the next
//! event of the same churn group starts (the state flips back), or when the run ends, is
//! counted as missed (`propagation.<kind> missed`), never dropped.
//!
//! `Tracker` is the bookkeeping, pure (the clock is passed in); `Observers` runs the tasks
//! on worker 0, beside the churn driver, sharing the tracker through a `RefCell` that is
//! never held across an await. Must not: block the end of the run: every wait of an
//! observer gives up when the driver closes the tracker.

use crate::ctx::Worker;
use crate::net::{LocalNotify, RpcConn};
use crate::rng::Rng;
use crate::stats::code_key;
use crate::wire::{self, RequestStyle};
use meridian_protocol::codes;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Most watchers, and most pollers, a run may have (each holds a connection).
pub const OBSERVERS_MAX: usize = 10_000;
/// How much longer than its hold a watch may take to be answered before it is a timeout.
const WATCH_ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// Pause before an observer tries again after a failed call or a refusal.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// Stream of `Rng::derive` for the pollers' phases.
const POLL_PHASE_STREAM: u64 = 0x706f_6c6c;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Watch,
    Poll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Join,
    Leave,
}

pub const CLASSES: [Class; 2] = [Class::Watch, Class::Poll];
pub const CHANGES: [Change; 2] = [Change::Join, Change::Leave];

/// The histogram of (class, change), e.g. `propagation.watch-join`.
pub fn hist_name(class: Class, change: Change) -> &'static str {
    match (class, change) {
        (Class::Watch, Change::Join) => "propagation.watch-join",
        (Class::Watch, Change::Leave) => "propagation.watch-leave",
        (Class::Poll, Change::Join) => "propagation.poll-join",
        (Class::Poll, Change::Leave) => "propagation.poll-leave",
    }
}

/// The counter of events of (class, change) that an observer never saw.
pub fn missed_name(class: Class, change: Change) -> String {
    format!("{} missed", hist_name(class, change))
}

/// The counter of churn events of one kind that the tracker timed.
pub fn events_name(change: Change) -> &'static str {
    match change {
        Change::Join => "propagation events (join)",
        Change::Leave => "propagation events (leave)",
    }
}

/// What `--watchers`, `--pollers` and their timings ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserverSpec {
    pub watchers: usize,
    pub pollers: usize,
    pub poll_interval: Duration,
    pub watch_hold: Duration,
}

impl ObserverSpec {
    pub fn any(&self) -> bool {
        self.watchers + self.pollers > 0
    }

    pub fn count(&self, class: Class) -> usize {
        match class {
            Class::Watch => self.watchers,
            Class::Poll => self.pollers,
        }
    }
}

fn slot(class: Class) -> usize {
    match class {
        Class::Watch => 0,
        Class::Poll => 1,
    }
}

fn change_slot(change: Change) -> usize {
    match change {
        Change::Join => 0,
        Change::Leave => 1,
    }
}

/// A churn event not yet superseded: which observers have still to see it.
#[derive(Debug)]
struct Pending {
    change: Change,
    started: Instant,
    /// Per class, per observer: true while that observer has not seen the event.
    unseen: [Vec<bool>; 2],
}

#[derive(Debug)]
struct Group {
    topic: usize,
    broker: String,
    pending: Option<Pending>,
}

/// One propagation time to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub class: Class,
    pub change: Change,
    pub took: Duration,
}

/// Events of the churn groups and who has seen them. Pure: no I/O, no clock of its own.
#[derive(Debug)]
pub struct Tracker {
    topics: Vec<String>,
    groups: Vec<Group>,
    /// Per class, per observer: false once it stopped for good (it is expected no more).
    active: [Vec<bool>; 2],
    /// [class][change] events an observer never saw.
    missed: [[u64; 2]; 2],
    /// [change] events begun.
    events: [u64; 2],
    closed: bool,
}

impl Tracker {
    /// `groups[c]` = (topic probed for churn group c, its broker name). Several groups may
    /// share a topic; it is watched once.
    pub fn new(groups: &[(String, String)], watchers: usize, pollers: usize) -> Tracker {
        let mut topics: Vec<String> = Vec::new();
        let groups = groups
            .iter()
            .map(|(topic, broker)| {
                let index = match topics.iter().position(|t| t == topic) {
                    Some(i) => i,
                    None => {
                        topics.push(topic.clone());
                        topics.len() - 1
                    }
                };
                Group { topic: index, broker: broker.clone(), pending: None }
            })
            .collect();
        Tracker {
            topics,
            groups,
            active: [vec![true; watchers], vec![true; pollers]],
            missed: [[0; 2]; 2],
            events: [0; 2],
            closed: false,
        }
    }

    /// The distinct topics to watch or poll.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    pub fn topic_index(&self, topic: &str) -> Option<usize> {
        self.topics.iter().position(|t| t == topic)
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn missed(&self, class: Class, change: Change) -> u64 {
        self.missed[slot(class)][change_slot(change)]
    }

    pub fn events(&self, change: Change) -> u64 {
        self.events[change_slot(change)]
    }

    /// Counts what `pending` was still waiting for as missed.
    fn miss(missed: &mut [[u64; 2]; 2], pending: &Pending) {
        for class in CLASSES {
            let unseen = pending.unseen[slot(class)].iter().filter(|u| **u).count() as u64;
            missed[slot(class)][change_slot(pending.change)] += unseen;
        }
    }

    /// Churn group `group` starts `change` at `at`: its previous event is superseded (what
    /// was not seen of it is missed) and every active observer now waits for this one.
    pub fn begin(&mut self, group: usize, change: Change, at: Instant) {
        if self.closed {
            return;
        }
        if let Some(previous) = self.groups[group].pending.take() {
            Self::miss(&mut self.missed, &previous);
        }
        self.events[change_slot(change)] += 1;
        self.groups[group].pending = Some(Pending { change, started: at, unseen: self.active.clone() });
    }

    /// Observer `index` of `class` received, at `at`, the route of topic `topic`;
    /// `listed(broker)` says whether it lists that broker. Returns the events it shows.
    pub fn observe(
        &mut self,
        class: Class,
        index: usize,
        topic: usize,
        listed: impl Fn(&str) -> bool,
        at: Instant,
    ) -> Vec<Sample> {
        let mut samples = Vec::new();
        for group in self.groups.iter_mut().filter(|g| g.topic == topic) {
            let Some(pending) = group.pending.as_mut() else { continue };
            let Some(unseen) = pending.unseen[slot(class)].get_mut(index) else { continue };
            if !*unseen {
                continue;
            }
            let shows = match pending.change {
                Change::Join => listed(&group.broker),
                Change::Leave => !listed(&group.broker),
            };
            if shows {
                *unseen = false;
                samples.push(Sample {
                    class,
                    change: pending.change,
                    took: at.saturating_duration_since(pending.started),
                });
            }
        }
        samples
    }

    /// Observer `index` of `class` stops for good (e.g. the target has no watch): what it
    /// had still to see is missed, and later events do not wait for it.
    pub fn retire(&mut self, class: Class, index: usize) {
        if let Some(active) = self.active[slot(class)].get_mut(index) {
            *active = false;
        }
        for group in &mut self.groups {
            let Some(pending) = group.pending.as_mut() else { continue };
            if let Some(unseen) = pending.unseen[slot(class)].get_mut(index) {
                if std::mem::replace(unseen, false) {
                    self.missed[slot(class)][change_slot(pending.change)] += 1;
                }
            }
        }
    }

    /// The run ends: every event still waiting is missed by whoever has not seen it.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for group in &mut self.groups {
            if let Some(pending) = group.pending.take() {
                Self::miss(&mut self.missed, &pending);
            }
        }
    }
}

/// Poller `index`'s phase in `[0, interval)`, from the seed.
pub fn poll_phase(seed: u64, index: usize, interval: Duration) -> Duration {
    let mut rng = Rng::derive(seed, POLL_PHASE_STREAM ^ ((index as u64) << 16));
    interval.mul_f64(rng.unit())
}

/// The watchers and pollers of one run, on worker 0.
pub struct Observers {
    tracker: RefCell<Tracker>,
    /// Per class, per observer: woken when the tracker closes.
    wake: [Vec<LocalNotify>; 2],
    spec: ObserverSpec,
    unsupported_reported: Cell<bool>,
}

impl Observers {
    pub fn new(worker: &Worker, groups: &[(String, String)], spec: ObserverSpec) -> Rc<Observers> {
        let mut metrics = worker.metrics.borrow_mut();
        for class in CLASSES.into_iter().filter(|c| spec.count(*c) > 0) {
            for change in CHANGES {
                metrics.declare(hist_name(class, change));
            }
        }
        Rc::new(Observers {
            tracker: RefCell::new(Tracker::new(groups, spec.watchers, spec.pollers)),
            wake: [
                (0..spec.watchers).map(|_| LocalNotify::default()).collect(),
                (0..spec.pollers).map(|_| LocalNotify::default()).collect(),
            ],
            spec,
            unsupported_reported: Cell::new(false),
        })
    }

    /// Starts every watcher and poller (observer i of a class uses target i % targets).
    pub fn spawn(
        self: &Rc<Self>,
        worker: &Rc<Worker>,
        targets: &[SocketAddr],
        style: RequestStyle,
        call_timeout: Duration,
        seed: u64,
    ) -> Vec<glommio::Task<()>> {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for index in 0..self.spec.watchers {
            let (me, worker, target) = (self.clone(), worker.clone(), targets[index % targets.len()]);
            tasks.push(glommio::spawn_local(async move { me.watch(&worker, index, target, style).await }));
        }
        for index in 0..self.spec.pollers {
            let (me, worker, target) = (self.clone(), worker.clone(), targets[index % targets.len()]);
            let first = start + poll_phase(seed, index, self.spec.poll_interval);
            tasks.push(glommio::spawn_local(async move {
                me.poll(&worker, index, target, style, call_timeout, first).await
            }));
        }
        tasks
    }

    pub fn begin(&self, group: usize, change: Change, at: Instant) {
        self.tracker.borrow_mut().begin(group, change, at);
    }

    /// Ends the measurement: pending events are missed, every observer is told to stop,
    /// and the missed and event counts go into the worker's metrics.
    pub fn close(&self, worker: &Worker) {
        let mut tracker = self.tracker.borrow_mut();
        tracker.close();
        let mut metrics = worker.metrics.borrow_mut();
        for change in CHANGES {
            metrics.count(events_name(change), tracker.events(change));
            for class in CLASSES.into_iter().filter(|c| self.spec.count(*c) > 0) {
                metrics.count(&missed_name(class, change), tracker.missed(class, change));
            }
        }
        drop(tracker);
        for notify in self.wake.iter().flatten() {
            notify.notify();
        }
    }

    fn closed(&self) -> bool {
        self.tracker.borrow().is_closed()
    }

    /// Runs `future` unless (or until) the tracker closes; `None` then.
    async fn unless_closed<T>(&self, class: Class, index: usize, future: impl Future<Output = T>) -> Option<T> {
        if self.closed() {
            return None;
        }
        let notify = &self.wake[slot(class)][index];
        futures_lite::future::or(async { Some(future.await) }, async {
            loop {
                notify.wait().await;
                if self.closed() {
                    return None;
                }
            }
        })
        .await
    }

    /// Sleeps `pause` unless the tracker closes meanwhile; false if it did.
    async fn pause(&self, class: Class, index: usize, pause: Duration) -> bool {
        self.unless_closed(class, index, glommio::timer::sleep(pause)).await.is_some()
    }

    fn observe(
        &self,
        worker: &Worker,
        class: Class,
        index: usize,
        topic: usize,
        listed: impl Fn(&str) -> bool,
        at: Instant,
    ) {
        let samples = self.tracker.borrow_mut().observe(class, index, topic, listed, at);
        let mut metrics = worker.metrics.borrow_mut();
        for sample in samples {
            metrics.record(hist_name(sample.class, sample.change), sample.took.as_micros() as u64);
        }
    }

    /// (Re)connects `conn` if it is missing or broken; false if the tracker closed first.
    async fn ensure_conn(
        &self,
        worker: &Worker,
        class: Class,
        index: usize,
        conn: &mut Option<RpcConn>,
        target: SocketAddr,
        style: RequestStyle,
    ) -> bool {
        loop {
            if conn.as_ref().is_some_and(|c| !c.is_broken()) {
                return true;
            }
            if let Some(old) = conn.take() {
                old.close();
            }
            let what = match class {
                Class::Watch => "watch",
                Class::Poll => "poll",
            };
            match self.unless_closed(class, index, RpcConn::connect(target, style, RETRY_DELAY * 3)).await {
                None => return false,
                Some(Ok(c)) => *conn = Some(c),
                Some(Err(e)) => {
                    worker.metrics.borrow_mut().error(format!("{what}: connect failed"), || e);
                    if !self.pause(class, index, RETRY_DELAY).await {
                        return false;
                    }
                }
            }
        }
    }

    /// One watcher: long polls on a connection of its own until the tracker closes.
    async fn watch(&self, worker: &Worker, index: usize, target: SocketAddr, style: RequestStyle) {
        let class = Class::Watch;
        let hold_ms = self.spec.watch_hold.as_millis().to_string();
        let limit = self.spec.watch_hold + WATCH_ANSWER_MARGIN;
        // The versions held, starting from "no route" (the first answer brings them all).
        let mut versions: BTreeMap<String, u64> =
            self.tracker.borrow().topics().iter().map(|t| (t.clone(), 0)).collect();
        let mut conn: Option<RpcConn> = None;
        while self.ensure_conn(worker, class, index, &mut conn, target, style).await {
            let c = conn.as_mut().expect("ensure_conn connected");
            let body = serde_json::to_vec(&versions).expect("a map of strings to integers serializes");
            let ext = [("holdMs", hold_ms.as_str())];
            let call = c.call(codes::MERIDIAN_WATCH_ROUTES, &ext, &body, limit);
            let Some(result) = self.unless_closed(class, index, call).await else { break };
            let at = Instant::now();
            let retry = match result {
                Ok(answer) if answer.header.code == codes::SUCCESS => match wire::parse_watch_answer(&answer.body) {
                    Ok(changes) => {
                        worker.metrics.borrow_mut().count("watch answers", 1);
                        if changes.is_empty() {
                            worker.metrics.borrow_mut().count("watch answers without a change (hold passed)", 1);
                        }
                        for change in changes {
                            let Some(topic) = self.tracker.borrow().topic_index(&change.topic) else {
                                worker
                                    .metrics
                                    .borrow_mut()
                                    .error("watch answer names a topic not watched".into(), || {
                                        format!("{} from {target}", change.topic)
                                    });
                                continue;
                            };
                            let route = change.route;
                            self.observe(
                                worker,
                                class,
                                index,
                                topic,
                                |broker| route.as_ref().is_some_and(|r| r.has_broker(broker)),
                                at,
                            );
                            versions.insert(change.topic, change.version);
                        }
                        false
                    }
                    Err(e) => {
                        worker.metrics.borrow_mut().error("watch answer undecodable".into(), || e);
                        true
                    }
                },
                // Java answers an unknown code with 3, rocketmq-rust with 16.
                Ok(answer)
                    if matches!(answer.header.code, codes::REQUEST_CODE_NOT_SUPPORTED | codes::NO_PERMISSION) =>
                {
                    if !self.unsupported_reported.replace(true) {
                        worker.metrics.borrow_mut().error("watch not supported".into(), || {
                            format!(
                                "{target} answered {} to MERIDIAN_WATCH_ROUTES: no route watch there; \
                                 watchers stop (pollers go on)",
                                code_key(answer.header.code)
                            )
                        });
                    }
                    worker.metrics.borrow_mut().count("watchers stopped: watch not supported", 1);
                    self.tracker.borrow_mut().retire(class, index);
                    break;
                }
                Ok(answer) => {
                    worker.metrics.borrow_mut().error(format!("watch: {}", code_key(answer.header.code)), || {
                        answer.header.remark.unwrap_or_default()
                    });
                    true
                }
                Err(e) => {
                    worker.metrics.borrow_mut().error("watch failed".into(), || e);
                    true
                }
            };
            if retry && !self.pause(class, index, RETRY_DELAY).await {
                break;
            }
        }
        if let Some(conn) = conn {
            conn.close();
        }
    }

    /// One poller: from `first`, every poll interval, one lookup per watched topic.
    async fn poll(
        &self,
        worker: &Worker,
        index: usize,
        target: SocketAddr,
        style: RequestStyle,
        call_timeout: Duration,
        first: Instant,
    ) {
        let class = Class::Poll;
        let interval = self.spec.poll_interval;
        let topics: Vec<String> = self.tracker.borrow().topics().to_vec();
        let mut conn: Option<RpcConn> = None;
        let mut next = first;
        'rounds: while self.ensure_conn(worker, class, index, &mut conn, target, style).await {
            let now = Instant::now();
            if next > now && !self.pause(class, index, next - now).await {
                break;
            }
            for (topic, name) in topics.iter().enumerate() {
                let Some(c) = conn.as_mut().filter(|c| !c.is_broken()) else { break };
                let ext = [("topic", name.as_str())];
                let call = c.call(codes::GET_ROUTEINFO_BY_TOPIC, &ext, &[], call_timeout);
                let Some(result) = self.unless_closed(class, index, call).await else { break 'rounds };
                let at = Instant::now();
                worker.metrics.borrow_mut().count("poll lookups", 1);
                match result {
                    Ok(answer) if answer.header.code == codes::SUCCESS => match wire::parse_route(&answer.body) {
                        Ok(route) => self.observe(worker, class, index, topic, |b| route.has_broker(b), at),
                        Err(e) => worker.metrics.borrow_mut().error("poll: route undecodable".into(), || e),
                    },
                    Ok(answer) if answer.header.code == codes::TOPIC_NOT_EXIST => {
                        self.observe(worker, class, index, topic, |_| false, at)
                    }
                    Ok(answer) => {
                        worker.metrics.borrow_mut().error(format!("poll: {}", code_key(answer.header.code)), || {
                            answer.header.remark.unwrap_or_default()
                        })
                    }
                    Err(e) => worker.metrics.borrow_mut().error("poll failed".into(), || e),
                }
            }
            // Keep the phase; a round that overran its interval skips the rounds it missed.
            next += interval;
            let now = Instant::now();
            if next <= now {
                let behind = (now - next).as_nanos() / interval.as_nanos().max(1) + 1;
                worker.metrics.borrow_mut().count("poll rounds skipped (a round overran)", behind as u64);
                next += interval * behind as u32;
            }
        }
        if let Some(conn) = conn {
            conn.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<(String, String)> {
        vec![("T0".into(), "churn-0".into()), ("T1".into(), "churn-1".into()), ("T0".into(), "churn-2".into())]
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn topics_are_deduplicated() {
        let t = Tracker::new(&groups(), 1, 1);
        assert_eq!(t.topics(), ["T0", "T1"]);
        assert_eq!(t.topic_index("T1"), Some(1));
        assert_eq!(t.topic_index("T9"), None);
    }

    #[test]
    fn an_event_is_timed_once_per_observer_when_its_state_shows() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&groups(), 2, 1);
        t.begin(1, Change::Join, t0);
        // A route without the broker proves nothing for a join.
        assert!(t.observe(Class::Watch, 0, 1, |_| false, t0 + ms(1)).is_empty());
        // Another topic's route is not about group 1.
        assert!(t.observe(Class::Watch, 0, 0, |_| true, t0 + ms(1)).is_empty());
        let s = t.observe(Class::Watch, 0, 1, |b| b == "churn-1", t0 + ms(5));
        assert_eq!(s, vec![Sample { class: Class::Watch, change: Change::Join, took: ms(5) }]);
        // Seen already: no second sample for the same observer.
        assert!(t.observe(Class::Watch, 0, 1, |b| b == "churn-1", t0 + ms(9)).is_empty());
        let s = t.observe(Class::Poll, 0, 1, |b| b == "churn-1", t0 + ms(700));
        assert_eq!(s, vec![Sample { class: Class::Poll, change: Change::Join, took: ms(700) }]);
        // Out-of-range observers are ignored, not a panic.
        assert!(t.observe(Class::Poll, 7, 1, |_| true, t0).is_empty());
        // Leave: the next event supersedes the join; watcher 1 never saw the join.
        t.begin(1, Change::Leave, t0 + ms(1000));
        assert_eq!(t.missed(Class::Watch, Change::Join), 1);
        assert_eq!(t.missed(Class::Poll, Change::Join), 0);
        // The route still listing the broker (the old state) is not the leave.
        assert!(t.observe(Class::Watch, 1, 1, |_| true, t0 + ms(1001)).is_empty());
        let s = t.observe(Class::Watch, 1, 1, |_| false, t0 + ms(1003));
        assert_eq!(s, vec![Sample { class: Class::Watch, change: Change::Leave, took: ms(3) }]);
        t.close();
        assert!(t.is_closed());
        // Watcher 0 and the poller never saw the leave.
        assert_eq!(t.missed(Class::Watch, Change::Leave), 1);
        assert_eq!(t.missed(Class::Poll, Change::Leave), 1);
        assert_eq!((t.events(Change::Join), t.events(Change::Leave)), (1, 1));
        // Nothing is timed or begun after the close.
        t.begin(0, Change::Join, t0 + ms(2000));
        assert_eq!(t.events(Change::Join), 1);
        assert!(t.observe(Class::Watch, 0, 0, |_| true, t0 + ms(2001)).is_empty());
        t.close();
        assert_eq!(t.missed(Class::Watch, Change::Leave), 1, "a second close counts nothing again");
    }

    #[test]
    fn groups_sharing_a_topic_are_tracked_apart() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&groups(), 1, 0);
        t.begin(0, Change::Join, t0);
        t.begin(2, Change::Join, t0 + ms(10));
        // A route with churn-2 but not yet churn-0: only group 2's join shows.
        let s = t.observe(Class::Watch, 0, 0, |b| b == "churn-2", t0 + ms(12));
        assert_eq!(s, vec![Sample { class: Class::Watch, change: Change::Join, took: ms(2) }]);
        let s = t.observe(Class::Watch, 0, 0, |_| true, t0 + ms(20));
        assert_eq!(s, vec![Sample { class: Class::Watch, change: Change::Join, took: ms(20) }]);
        t.close();
        assert_eq!(t.missed(Class::Watch, Change::Join), 0);
    }

    #[test]
    fn seen_plus_missed_is_events_times_observers() {
        let t0 = Instant::now();
        let (watchers, pollers) = (3, 2);
        let mut t = Tracker::new(&groups(), watchers, pollers);
        let mut seen = [[0u64; 2]; 2];
        for e in 0..40u64 {
            let group = (e % 3) as usize;
            let change = if (e / 3) % 2 == 0 { Change::Join } else { Change::Leave };
            let at = t0 + ms(e * 100);
            t.begin(group, change, at);
            // Some observers look, some do not.
            for class in CLASSES {
                for index in 0..(if class == Class::Watch { watchers } else { pollers }) {
                    if (e as usize + index) % 3 == 0 {
                        continue;
                    }
                    let topic = if group == 1 { 1 } else { 0 };
                    let listed = |_: &str| change == Change::Join;
                    for s in t.observe(class, index, topic, listed, at + ms(1)) {
                        seen[slot(s.class)][change_slot(s.change)] += 1;
                    }
                }
            }
        }
        t.close();
        for class in CLASSES {
            let n = if class == Class::Watch { watchers } else { pollers } as u64;
            let total: u64 = CHANGES.iter().map(|c| seen[slot(class)][change_slot(*c)] + t.missed(class, *c)).sum();
            assert_eq!(total, 40 * n, "{class:?}");
            for change in CHANGES {
                assert_eq!(
                    seen[slot(class)][change_slot(change)] + t.missed(class, change),
                    t.events(change) * n,
                    "{class:?} {change:?}"
                );
            }
        }
    }

    #[test]
    fn a_retired_observer_misses_what_it_had_not_seen_and_is_expected_no_more() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&groups(), 2, 0);
        t.begin(0, Change::Join, t0);
        t.begin(1, Change::Join, t0);
        assert_eq!(t.observe(Class::Watch, 0, 1, |_| true, t0 + ms(1)).len(), 1);
        t.retire(Class::Watch, 0);
        assert_eq!(t.missed(Class::Watch, Change::Join), 1, "group 0's join, unseen by watcher 0");
        t.retire(Class::Watch, 0);
        assert_eq!(t.missed(Class::Watch, Change::Join), 1, "retiring twice counts once");
        t.begin(0, Change::Leave, t0 + ms(100));
        assert!(t.observe(Class::Watch, 0, 0, |_| false, t0 + ms(101)).is_empty(), "retired");
        assert_eq!(t.observe(Class::Watch, 1, 0, |_| false, t0 + ms(102)).len(), 1);
        t.close();
        // Group 1's join was unseen by watcher 1 only; group 0's first join by watcher 1 too.
        assert_eq!(t.missed(Class::Watch, Change::Join), 3);
        assert_eq!(t.missed(Class::Watch, Change::Leave), 0);
        t.retire(Class::Watch, 9);
    }

    #[test]
    fn poll_phases_spread_over_the_interval() {
        let interval = Duration::from_secs(30);
        let phases: Vec<Duration> = (0..1000).map(|i| poll_phase(7, i, interval)).collect();
        assert!(phases.iter().all(|p| *p < interval));
        let early = phases.iter().filter(|p| **p < interval / 2).count();
        assert!((400..600).contains(&early), "{early} of 1000 in the first half");
        assert_eq!(poll_phase(7, 3, interval), phases[3], "a seed replays the phases");
        assert_ne!(poll_phase(8, 3, interval), phases[3]);
    }

    #[test]
    fn names() {
        assert_eq!(hist_name(Class::Poll, Change::Leave), "propagation.poll-leave");
        assert_eq!(missed_name(Class::Watch, Change::Join), "propagation.watch-join missed");
    }
}
