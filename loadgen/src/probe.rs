//! Visibility probes: ask one NameServer for one topic, back to back, until its route shows
//! what we wait for (a broker present, with a given queue count, or gone). This is how
//! "time until visible to lookups" is measured, on every target at once.
//!
//! Probing is closed-loop with one request in flight, so the resolution is one round trip
//! (tens of µs on loopback). Must not: sleep between polls (it would hide the time).

use crate::ctx::Worker;
use crate::net::RpcConn;
use crate::wire::{self, RequestStyle};
use meridian_protocol::codes;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Longest wait for a change to become visible; past it the probe reports a timeout.
pub const VISIBILITY_WAIT_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The topic's route lists `broker` (with `read_queue_nums` queues, if given).
    Present { broker: String, read_queue_nums: Option<i32> },
    /// The topic's route does not list `broker` (or the topic is unknown).
    Absent { broker: String },
}

impl Expect {
    fn satisfied(&self, code: i32, body: &[u8]) -> bool {
        match (self, code) {
            (Expect::Absent { .. }, codes::TOPIC_NOT_EXIST) => true,
            (Expect::Absent { broker }, codes::SUCCESS) => wire::parse_route(body).is_ok_and(|r| !r.has_broker(broker)),
            (Expect::Present { broker, read_queue_nums }, codes::SUCCESS) => wire::parse_route(body).is_ok_and(|r| {
                r.has_broker(broker) && read_queue_nums.is_none_or(|q| r.read_queue_nums(broker) == Some(q))
            }),
            _ => false,
        }
    }
}

/// Polls `topic` on `conn` until `expect` holds; returns the time since `since`. Gives up
/// when `cancel` is set (the change was refused, so it will never show).
pub async fn wait_for(
    worker: &Worker,
    conn: &mut RpcConn,
    topic: &str,
    expect: &Expect,
    since: Instant,
    call_timeout: Duration,
    cancel: &Cell<bool>,
) -> Result<Duration, String> {
    let mut polls: u64 = 0;
    loop {
        if worker.stopped() {
            return Err("run stopped".into());
        }
        if cancel.get() {
            return Err(format!("{topic} on {}: probe cancelled (the change was not accepted)", conn.peer()));
        }
        if since.elapsed() > VISIBILITY_WAIT_MAX {
            return Err(format!(
                "{topic} on {}: {expect:?} not seen within {} s ({polls} polls)",
                conn.peer(),
                VISIBILITY_WAIT_MAX.as_secs()
            ));
        }
        let answer = conn.call(codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic)], &[], call_timeout).await?;
        polls += 1;
        if expect.satisfied(answer.header.code, &answer.body) {
            worker.metrics.borrow_mut().count("probe lookups", polls);
            return Ok(since.elapsed());
        }
    }
}

/// One probe connection per target, kept for the run.
pub struct Probes {
    conns: Vec<Option<RpcConn>>,
    targets: Vec<SocketAddr>,
    style: RequestStyle,
    call_timeout: Duration,
}

impl Probes {
    pub async fn connect(
        targets: &[SocketAddr],
        style: RequestStyle,
        call_timeout: Duration,
    ) -> Result<Probes, String> {
        let mut conns = Vec::new();
        for &target in targets {
            conns.push(Some(RpcConn::connect(target, style, call_timeout).await?));
        }
        Ok(Probes { conns, targets: targets.to_vec(), style, call_timeout })
    }

    /// Starts polling every target at once; `finish` collects the results. Started before
    /// the change is sent, so nothing between the send and the first poll is missed.
    pub fn start(&mut self, worker: &Rc<Worker>, topic: &str, expect: Expect, since: Instant) -> Running {
        let mut tasks = Vec::new();
        let mut cancels = Vec::new();
        for (i, slot) in self.conns.iter_mut().enumerate() {
            let (worker, topic, expect) = (worker.clone(), topic.to_string(), expect.clone());
            let cancel = Rc::new(Cell::new(false));
            cancels.push(cancel.clone());
            let (target, style, call_timeout) = (self.targets[i], self.style, self.call_timeout);
            let conn = slot.take();
            tasks.push(glommio::spawn_local(async move {
                // A broken connection (an earlier timeout) is replaced before probing.
                let mut conn = match conn {
                    Some(c) if !c.is_broken() => c,
                    _ => match RpcConn::connect(target, style, call_timeout).await {
                        Ok(c) => c,
                        Err(e) => return (i, None, Err(e)),
                    },
                };
                let result = wait_for(&worker, &mut conn, &topic, &expect, since, call_timeout, &cancel).await;
                (i, Some(conn), result)
            }));
        }
        Running { tasks, cancels }
    }

    /// Waits for the probes started by `start` and takes their connections back.
    pub async fn finish(&mut self, running: Running) -> Vec<Result<Duration, String>> {
        let mut results: Vec<Result<Duration, String>> =
            self.targets.iter().map(|_| Err("not probed".into())).collect();
        for task in running.tasks {
            let (i, conn, result) = task.await;
            self.conns[i] = conn;
            results[i] = result;
        }
        results
    }

    /// Asks once per target; true where `expect` already holds.
    pub async fn check_now(&mut self, worker: &Worker, topic: &str, expect: &Expect) -> Vec<bool> {
        let mut out = Vec::new();
        for slot in self.conns.iter_mut() {
            let holds = match slot {
                Some(conn) => {
                    match conn.call(codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic)], &[], self.call_timeout).await {
                        Ok(answer) => expect.satisfied(answer.header.code, &answer.body),
                        Err(e) => {
                            worker.metrics.borrow_mut().error("probe failed".into(), || e);
                            false
                        }
                    }
                }
                None => false,
            };
            out.push(holds);
        }
        out
    }

    pub fn close(&mut self) {
        for conn in self.conns.iter_mut().filter_map(Option::take) {
            conn.close();
        }
    }
}

/// What a probe task hands back: its target index, its connection, its result.
type ProbeOutcome = (usize, Option<RpcConn>, Result<Duration, String>);

pub struct Running {
    tasks: Vec<glommio::Task<ProbeOutcome>>,
    cancels: Vec<Rc<Cell<bool>>>,
}

impl Running {
    /// Stops waiting on every target whose change was refused: `answers` holds one answer
    /// per target, in target order.
    pub fn cancel_refused<T, E>(&self, answers: &[Result<T, E>]) {
        for (cancel, answer) in self.cancels.iter().zip(answers) {
            if answer.is_err() {
                cancel.set(true);
            }
        }
    }

    /// Stops waiting on every target.
    pub fn cancel_all(&self) {
        for cancel in &self.cancels {
            cancel.set(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"a:1"},"brokerName":"b1","cluster":"c"}],"queueDatas":[{"brokerName":"b1","perm":6,"readQueueNums":8,"writeQueueNums":8}]}"#;

    #[test]
    fn expectations() {
        let present = Expect::Present { broker: "b1".into(), read_queue_nums: None };
        assert!(present.satisfied(0, ROUTE.as_bytes()));
        assert!(!present.satisfied(17, b""));
        let eight = Expect::Present { broker: "b1".into(), read_queue_nums: Some(8) };
        let sixteen = Expect::Present { broker: "b1".into(), read_queue_nums: Some(16) };
        assert!(eight.satisfied(0, ROUTE.as_bytes()));
        assert!(!sixteen.satisfied(0, ROUTE.as_bytes()));
        let other = Expect::Present { broker: "b2".into(), read_queue_nums: None };
        assert!(!other.satisfied(0, ROUTE.as_bytes()));
        let gone = Expect::Absent { broker: "b1".into() };
        assert!(!gone.satisfied(0, ROUTE.as_bytes()));
        assert!(gone.satisfied(17, b""));
        assert!(Expect::Absent { broker: "b2".into() }.satisfied(0, ROUTE.as_bytes()));
        assert!(!gone.satisfied(1, b""), "an error proves nothing");
    }
}
