//! Worker threads: one glommio executor per `--threads`, placed per `--cpus`, plus the
//! waker thread that works around glommio 0.9 parking with runnable tasks.
//!
//! Must not: hold scenario logic. A worker is a closure given its index; everything it
//! shares with other threads is `Send` (Arc, atomics, flume channels).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// io_uring registered buffer per executor. Loadgen's sockets use readiness polls plus
/// direct recv/send, so the buffer is not on the hot path; small keeps it under the 8 MiB
/// default RLIMIT_MEMLOCK even with several threads.
const IO_MEMORY_BYTES_PER_THREAD: usize = 256 * 1024;
/// glommio's preempt timer; the same value as Meridian's shards (100 ms), so a late timer
/// cannot make the lost wake-up below more likely than it is for the server.
const PREEMPT_TIMER: Duration = Duration::from_millis(100);
/// How often the waker thread pokes every executor (the same 20 ms Meridian uses).
const POKE_INTERVAL: Duration = Duration::from_millis(20);
/// Most worker threads a run may start.
pub const THREADS_MAX: usize = 256;

/// Where worker threads run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Placement {
    pub threads: usize,
    /// `None`: unpinned, the kernel schedules the threads. `Some`: worker i is pinned to
    /// `cpus[i % cpus.len()]`.
    pub cpus: Option<Vec<usize>>,
}

impl Placement {
    pub fn validate(&self) -> Result<(), String> {
        if self.threads == 0 || self.threads > THREADS_MAX {
            return Err(format!("--threads {} must be in 1..={THREADS_MAX}", self.threads));
        }
        let online = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        if let Some(cpus) = &self.cpus {
            if let Some(cpu) = cpus.iter().find(|&&c| c >= online) {
                return Err(format!("--cpus names CPU {cpu}, but this machine has CPUs 0..{}", online - 1));
            }
        }
        Ok(())
    }

    /// One line for the output, e.g. `2 threads pinned to CPUs [1, 1]` or `1 thread, unpinned`.
    pub fn describe(&self) -> String {
        let online = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let threads = if self.threads == 1 { "1 thread".to_string() } else { format!("{} threads", self.threads) };
        match &self.cpus {
            None => format!("{threads}, unpinned (kernel-scheduled over {online} CPUs)"),
            Some(cpus) => {
                let per: Vec<usize> = (0..self.threads).map(|i| cpus[i % cpus.len()]).collect();
                format!("{threads} pinned to CPUs {per:?} of {online}")
            }
        }
    }

    fn glommio_placement(&self, worker: usize) -> glommio::Placement {
        match &self.cpus {
            None => glommio::Placement::Unbound,
            Some(cpus) => glommio::Placement::Fixed(cpus[worker % cpus.len()]),
        }
    }
}

/// Parses a CPU list like `0`, `1,3` or `0-3,6`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |s: &str| s.trim().parse::<usize>().map_err(|e| format!("--cpus {text:?}: {s:?}: {e}"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(format!("--cpus {text:?}: range {part} runs backwards"));
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(parse(part)?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("--cpus {text:?} names no CPU"));
    }
    Ok(cpus)
}

/// Running workers; `join` waits for all of them.
pub struct Workers<T: Send + 'static> {
    handles: Vec<glommio::ExecutorJoinHandle<T>>,
    waker_stop: Arc<AtomicBool>,
}

impl<T: Send + 'static> Workers<T> {
    pub fn join(self) -> Result<Vec<T>, String> {
        let mut results = Vec::new();
        let mut failure = None;
        for (i, handle) in self.handles.into_iter().enumerate() {
            match handle.join() {
                Ok(value) => results.push(value),
                Err(e) => failure = Some(format!("worker {i} failed: {e:?}")),
            }
        }
        self.waker_stop.store(true, Ordering::Relaxed);
        match failure {
            Some(f) => Err(f),
            None => Ok(results),
        }
    }
}

fn set_thp_disabled(disabled: bool) {
    // SAFETY: prctl with integer arguments only; it changes this process's THP policy.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, disabled as libc::c_ulong, 0, 0, 0) };
}

/// Starts `placement.threads` executors, each running `work(index)`.
pub fn spawn<T, F, Fut>(name: &str, placement: &Placement, work: F) -> Result<Workers<T>, String>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = T> + 'static,
{
    placement.validate()?;
    let mut pokes = Vec::new();
    let mut handles = Vec::new();
    // io_uring charges registered buffers to RLIMIT_MEMLOCK by whole compound page, so a
    // transparent huge page under a small buffer would cost 2 MiB per ring; THP is off
    // while the executors start (as in Meridian's server::start).
    set_thp_disabled(true);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    for worker in 0..placement.threads {
        let (poke_tx, poke_rx) = flume::bounded::<()>(1);
        pokes.push(poke_tx);
        let work = work.clone();
        let ready = ready_tx.clone();
        let spawned = glommio::LocalExecutorBuilder::new(placement.glommio_placement(worker))
            .name(&format!("{name}-{worker}"))
            .io_memory(IO_MEMORY_BYTES_PER_THREAD)
            .preempt_timer(PREEMPT_TIMER)
            .spawn(move || async move {
                drop(ready);
                // Every poke is a foreign wake-up, which ends a lost-wake-up park.
                glommio::spawn_local(async move { while poke_rx.recv_async().await.is_ok() {} }).detach();
                work(worker).await
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                set_thp_disabled(false);
                return Err(format!(
                    "cannot start worker {worker}: {e} (io_uring needs locked memory: check `ulimit -l`)"
                ));
            }
        }
    }
    drop(ready_tx);
    while ready_rx.recv().is_ok() {}
    set_thp_disabled(false);
    let waker_stop = Arc::new(AtomicBool::new(false));
    spawn_waker(pokes, waker_stop.clone())?;
    Ok(Workers { handles, waker_stop })
}

/// glommio 0.9 can park an executor that still has runnable tasks when its preempt timer
/// fired just before the run loop (a lost wake-up under CPU contention; glommio PR #53,
/// unreleased). A timer inside the executor cannot help (its own task may be the one left
/// parked), so this thread pokes every executor from outside, as Meridian's server does.
fn spawn_waker(pokes: Vec<flume::Sender<()>>, stop: Arc<AtomicBool>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("loadgen-waker".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(POKE_INTERVAL);
                let mut alive = false;
                for poke in &pokes {
                    // Full: a poke is already pending. Disconnected: that executor ended.
                    alive |= !matches!(poke.try_send(()), Err(flume::TrySendError::Disconnected(_)));
                }
                if !alive {
                    return;
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("cannot start the waker thread: {e}"))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write and read the plain struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("1,3"), Ok(vec![1, 3]));
        assert_eq!(parse_cpu_list("0-2, 5"), Ok(vec![0, 1, 2, 5]));
        assert!(parse_cpu_list("2-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn placement_is_described() {
        let p = Placement { threads: 2, cpus: Some(vec![0]) };
        assert!(p.describe().starts_with("2 threads pinned to CPUs [0, 0]"), "{}", p.describe());
        let p = Placement { threads: 1, cpus: None };
        assert!(p.describe().starts_with("1 thread, unpinned"), "{}", p.describe());
        assert!(Placement { threads: 0, cpus: None }.validate().is_err());
        assert!(Placement { threads: 1, cpus: Some(vec![100_000]) }.validate().is_err());
    }
}
