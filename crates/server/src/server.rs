//! Process start-up: data directory and its lock, the single-instance guard for the port,
//! one SO_REUSEPORT listener per shard, the writer thread and the pinned shard executors.

use crate::config::Config;
use crate::metrics::counters::{ShardMetrics, WriterMetrics};
use crate::metrics::http::Metrics;
use crate::route::snapshot::RouteSnapshot;
use crate::route::snapshot::SnapshotCell;
use crate::route::writer::{RouteUpdate, Writer, WriterSetup};
use crate::shard::accept::{self, ShardSetup};
use crate::{notify, persist, sys};
use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::io::IntoRawFd;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Running {
    pub local_addr: SocketAddr,
    /// The shards' listening sockets (owned by the shards; shut down, never closed, here).
    listener_fds: Vec<std::os::unix::io::RawFd>,
    /// Requests being handled or answered, all shards.
    in_flight: Arc<AtomicUsize>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Open connections per shard.
    connections_open: Vec<Arc<AtomicUsize>>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    pub shards: Vec<glommio::ExecutorJoinHandle<()>>,
    pub writer: JoinHandle<()>,
    /// The writer's queue, for the warm-restart save at a graceful stop.
    updates: flume::Sender<RouteUpdate>,
    /// Held for the life of the process: the port guard and the data-dir lock.
    _guard: UnixListener,
    _lock: File,
}

#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn err(msg: String) -> StartError {
    StartError(msg)
}

/// SO_REUSEPORT would silently split a port's traffic between two servers, so each port is
/// claimed with an abstract Unix socket named after it: the name is unique per network
/// namespace and the kernel releases it when the process dies, crash included.
fn claim_port(port: u16) -> Result<UnixListener, StartError> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("meridian-port-{port}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| err(format!("port guard {name}: {e}")))?;
    UnixListener::bind_addr(&addr).map_err(|e| {
        err(format!("another meridian is already serving port {port} (guard @{name} is taken: {e}); stop it or choose another --listen port"))
    })
}

/// One lock per data directory, so two servers never write the same KV file.
fn lock_data_dir(config: &Config) -> Result<File, StartError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("cannot create data dir {}: {e} (set --data-dir)", dir.display())))?;
    let path = dir.join("meridian.lock");
    let file = File::create(&path).map_err(|e| err(format!("cannot open lock file {}: {e}", path.display())))?;
    if !sys::try_lock_exclusive(&file) {
        return Err(err(format!(
            "data dir {} is in use by another meridian (lock {} is held); use another --data-dir",
            dir.display(),
            path.display()
        )));
    }
    Ok(file)
}

fn bind_reuseport(addr: SocketAddr, backlog_len: u32) -> Result<Socket, StartError> {
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(|e| err(format!("socket: {e}")))?;
    socket.set_reuse_address(true).map_err(|e| err(format!("SO_REUSEADDR: {e}")))?;
    socket.set_reuse_port(true).map_err(|e| err(format!("SO_REUSEPORT: {e}")))?;
    socket.bind(&SockAddr::from(addr)).map_err(|e| err(format!("cannot bind {addr}: {e}")))?;
    socket.listen(backlog_len.min(i32::MAX as u32) as i32).map_err(|e| err(format!("cannot listen on {addr}: {e}")))?;
    Ok(socket)
}

/// glommio 0.9 can park an executor that still has runnable tasks: when its preempt timer
/// has already fired as `run_task_queues` starts (the thread was descheduled just after
/// re-arming it), that call reports "nothing ran" and the executor sleeps until some I/O
/// completes, which may be never. Seen here under CPU contention: accepted connections left
/// unread for 10 s. glommio/glommio PR #53 fixes it upstream, unreleased on crates.io.
/// A timer inside the shard cannot guard against it (the timer's own task can be the one
/// left parked), so this thread pokes, from outside, every shard that has connections: a
/// foreign wake-up always ends a park. An idle shard without connections is never woken.
fn spawn_waker(
    open_counts: Vec<Arc<AtomicUsize>>,
    pokes: Vec<flume::Sender<()>>,
    interval: Duration,
) -> Result<(), StartError> {
    std::thread::Builder::new()
        .name("meridian-waker".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let mut alive = false;
            for (open, poke) in open_counts.iter().zip(&pokes) {
                if open.load(Ordering::Relaxed) > 0 {
                    // Full means a poke is already pending; disconnected means the shard ended.
                    alive |= !matches!(poke.try_send(()), Err(flume::TrySendError::Disconnected(_)));
                } else {
                    alive |= !poke.is_disconnected();
                }
            }
            if !alive {
                return;
            }
        })
        .map(|_| ())
        .map_err(|e| err(format!("cannot start the waker thread: {e}")))
}

/// The CPUs this process may run on (its affinity mask), in ascending order.
fn allowed_cpus() -> Vec<usize> {
    let mut cpus = sys::affinity_cpus();
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        cpus.extend(0..n);
    }
    cpus
}

/// File descriptors kept for everything but connections (listeners, rings, eventfds, files).
const FD_RESERVE: u64 = 256;

/// Connections are file descriptors: raises the soft open-file limit towards what the
/// connection limits allow (up to the hard limit) and says so; warns when it stays below.
fn raise_fd_limit(config: &Config) {
    let Some((mut soft, hard)) = sys::open_files_limit() else {
        return;
    };
    let wanted = (config.connections_per_shard_max as u64).saturating_mul(config.shards as u64) + FD_RESERVE;
    let before = soft;
    if before < wanted && before < hard && sys::set_open_files_limit(wanted.min(hard), hard).is_ok() {
        soft = wanted.min(hard);
        tracing::info!("open files limit raised from {before} to {soft}");
    }
    if soft < wanted {
        tracing::warn!(
            "open files limit {} < connections_per_shard_max x shards + {FD_RESERVE} = {wanted}: connections beyond \
             about {} will be refused; raise `ulimit -n` (hard limit {}) or lower connections_per_shard_max",
            soft,
            soft.saturating_sub(FD_RESERVE),
            hard
        );
    }
}

pub fn start(config: Config) -> Result<Running, StartError> {
    config.validate().map_err(|e| err(e.to_string()))?;
    raise_fd_limit(&config);
    let lock = lock_data_dir(&config)?;

    // With a fixed port, claim it before binding so we never steal a running server's
    // connections; with port 0, the first bind picks the port and no one else can have it.
    let mut guard = None;
    if config.listen.port() != 0 {
        guard = Some(claim_port(config.listen.port())?);
    }
    let first = bind_reuseport(config.listen, config.listen_backlog_len)?;
    let local_addr = first
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| err("listener has no local address".into()))?;
    let guard = match guard {
        Some(g) => g,
        None => claim_port(local_addr.port())?,
    };
    let mut listeners = vec![first];
    for _ in 1..config.shards {
        listeners.push(bind_reuseport(local_addr, config.listen_backlog_len)?);
    }

    let published: SnapshotCell = Arc::new(ArcSwap::from_pointee(RouteSnapshot::empty()));
    let (updates_tx, updates_rx) = flume::bounded(config.update_queue_len_max);
    let mut closers = Vec::new();
    let mut close_rxs = Vec::new();
    let (published_signals, published_rxs): (Vec<_>, Vec<_>) = (0..config.shards).map(|_| flume::bounded(1)).unzip();
    for _ in 0..config.shards {
        // Expiry closes are rare; a full queue just means the connection closes at its idle timeout.
        let (tx, rx) = flume::bounded(1024);
        closers.push(tx);
        close_rxs.push(rx);
    }
    let kv_path = config.kv_config_path();
    let kv = persist::load_kv(&kv_path).map_err(err)?;
    let shard_metrics: Vec<Arc<ShardMetrics>> = (0..config.shards).map(|_| Arc::default()).collect();
    let writer_metrics = Arc::new(WriterMetrics::default());
    let (notify_tx, notify_rx) = flume::bounded(notify::NOTIFY_QUEUE_LEN_MAX);
    notify::spawn(notify_rx).map_err(|e| err(format!("cannot start the notifier thread: {e}")))?;
    let writer = Writer::new(WriterSetup {
        config: config.clone(),
        kv,
        published: published.clone(),
        updates: updates_rx,
        closers,
        notifications: notify_tx,
        metrics: writer_metrics.clone(),
        published_signals,
        started_at: Instant::now(),
    });
    let writer = std::thread::Builder::new()
        .name("meridian-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| err(format!("cannot start the writer thread: {e}")))?;

    let mut open_counts = Vec::new();
    let mut poke_txs = Vec::new();
    let mut poke_rxs = Vec::new();
    for _ in 0..config.shards {
        open_counts.push(Arc::new(AtomicUsize::new(0)));
        let (tx, rx) = flume::bounded(1);
        poke_txs.push(tx);
        poke_rxs.push(rx);
    }
    let connections_open = open_counts.clone();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Bound before the shards start, so a taken metrics port fails the start cleanly.
    let peer_report = crate::peer_watch::cell_if_enabled(&config);
    let metrics_addr = match config.metrics_listen {
        Some(addr) => {
            let metrics = Arc::new(Metrics {
                shards: shard_metrics.clone(),
                writer: writer_metrics,
                connections_open: open_counts.clone(),
                in_flight: in_flight.clone(),
                stopping: stopping.clone(),
                published: published.clone(),
                started: Instant::now(),
                peer_report: peer_report.clone(),
            });
            Some(crate::metrics::http::spawn_http(addr, metrics).map_err(err)?)
        }
        None => None,
    };
    spawn_waker(open_counts.clone(), poke_txs, Duration::from_micros(config.executor_poke_interval_us))?;

    let cpus = allowed_cpus();
    // io_uring charges registered buffers to RLIMIT_MEMLOCK by whole compound page, once per
    // ring: a 256 KiB buffer inside a transparent huge page costs 3 x 2 MiB per shard, and a
    // second shard no longer fits an 8 MiB limit. So THP is off while the shards register
    // their buffers, and back on afterwards (pinned pages are never collapsed later).
    sys::set_thp_disabled(true);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut shards = Vec::new();
    let per_shard = close_rxs.into_iter().zip(open_counts).zip(poke_rxs).zip(shard_metrics).zip(published_rxs);
    let mut listener_fds = Vec::new();
    for (id, (listener, ((((close_requests, connections_open), pokes), metrics), publish_signal))) in
        listeners.into_iter().zip(per_shard).enumerate()
    {
        let listener_fd = listener.into_raw_fd();
        listener_fds.push(listener_fd);
        let setup = ShardSetup {
            id,
            config: config.clone(),
            listener_fd,
            published: published.clone(),
            updates: updates_tx.clone(),
            close_requests,
            ready: ready_tx.clone(),
            connections_open,
            pokes,
            in_flight: in_flight.clone(),
            stopping: stopping.clone(),
            metrics,
            publish_signal,
        };
        // Shard i runs on the i-th CPU this process may use (so `taskset` and cgroup cpusets
        // are honoured): one executor per core, so a shard's connections and its snapshot
        // copy stay in one core's cache. The writer thread is not pinned.
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpus[id % cpus.len()]))
            .name(&format!("meridian-shard-{id}"))
            .io_memory(config.io_memory_bytes_per_shard)
            .preempt_timer(Duration::from_micros(config.preempt_timer_us))
            .spawn(move || accept::run(setup))
            .map_err(|e| {
                err(format!(
                    "cannot start shard {id}: {e} (io_uring needs locked memory: check `ulimit -l`, or lower io_memory_bytes_per_shard)"
                ))
            })?;
        shards.push(handle);
    }
    drop(ready_tx);
    // Each shard reports once its reactor (and so its registered buffer) exists; a shard
    // whose reactor cannot be built (e.g. RLIMIT_MEMLOCK below glommio's 512 KiB minimum)
    // drops its sender unsignalled. Serving with fewer shards than configured would leave
    // that shard's listener accepting connections nobody answers, so refuse to start.
    let started = ready_rx.iter().count();
    sys::set_thp_disabled(false);
    if started != config.shards {
        let mut reasons = Vec::new();
        for handle in shards {
            if let Err(e) = handle.join() {
                reasons.push(e.to_string());
            }
        }
        return Err(err(format!(
            "only {started} of {} shards started ({}); io_uring needs locked memory: raise `ulimit -l` \
             (at least 512 KiB per shard, 2 MiB for 2 shards without warnings) or run fewer --shards",
            config.shards,
            reasons.join("; ")
        )));
    }
    // Listening on every shard: the peer watch may now read this server over TCP.
    if let Some(cell) = peer_report {
        crate::peer_watch::spawn(&config, local_addr, cell, stopping.clone()).map_err(err)?;
    }
    Ok(Running {
        local_addr,
        listener_fds,
        in_flight,
        stopping,
        connections_open,
        metrics_addr,
        shards,
        writer,
        updates: updates_tx,
        _guard: guard,
        _lock: lock,
    })
}

/// Interval at which the drain looks at the in-flight count.
const DRAIN_POLL: Duration = Duration::from_millis(5);

impl Running {
    /// Stops accepting connections: once this returns, a new connection is refused.
    pub fn stop_accepting(&self) {
        self.stopping.store(true, Ordering::Release);
        for fd in &self.listener_fds {
            // The fds are the shards' listening sockets, open for the life of the process
            // (a shard never closes its listener); shutdown only ends accepting.
            sys::shutdown_socket(*fd);
        }
    }

    /// Connections open on all shards.
    pub fn connections_open(&self) -> usize {
        self.connections_open.iter().map(|n| n.load(Ordering::Acquire)).sum()
    }

    /// The GO_AWAY window of a graceful shutdown (after `stop_accepting`, while shards
    /// answer GO_AWAY): waits up to `window` for every client to close its connection.
    /// Returns how many connections were still open.
    pub fn go_away_window(&self, window: Duration) -> usize {
        let deadline = Instant::now() + window;
        loop {
            let open = self.connections_open();
            if open == 0 || Instant::now() >= deadline {
                return open;
            }
            std::thread::sleep(DRAIN_POLL);
        }
    }

    /// With `warm_restart` on, after the drain: has the writer save the route table for the
    /// next start (after every update queued before), waiting until `deadline`. When it is
    /// off the writer answers at once and nothing is written.
    pub fn save_warm_restart(&self, deadline: Instant) -> Result<(), String> {
        let (reply, answer) = flume::bounded(1);
        let late = || "not written within shutdown_drain_ms".to_string();
        self.updates.send_deadline(RouteUpdate::SaveWarmRestart { deadline, reply }, deadline).map_err(|_| late())?;
        answer.recv_deadline(deadline).map_err(|_| late())?
    }

    /// Waits up to `grace` for the requests being handled to be answered. Returns how many
    /// were still unanswered (0: drained).
    pub fn drain(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        loop {
            let left = self.in_flight.load(Ordering::Acquire);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(DRAIN_POLL);
        }
    }
}
