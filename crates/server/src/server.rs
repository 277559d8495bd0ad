//! Process start-up: data directory and its lock, the single-instance guard for the port,
//! one SO_REUSEPORT listener per shard, the writer thread and the pinned shard executors.

use crate::auth::{accounts, AccessControl};
use crate::config::Config;
use crate::error::{StartError, WarmSaveError};
use crate::metrics::counters::{ShardMetrics, WriterMetrics};
use crate::metrics::http::{Metrics, SnapshotProbe, SnapshotStats};
use crate::net::accept::{self, ShardSetup};
use crate::route::snapshot::RouteSnapshot;
use crate::route::snapshot::SnapshotCell;
use crate::route::writer::{RouteUpdate, Writer, WriterSetup};
use crate::route::ConnId;
use crate::{notify, persist, sys};
use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::io::{IntoRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// `authAccountsFile` and the accounts it feeds, reloaded on SIGHUP.
    accounts_file: Option<AccountsFile>,
    /// Held for the life of the process: the port guard and the data-dir lock.
    _guard: UnixListener,
    _lock: File,
}

/// An I/O failure during start-up, with the operator's line.
fn io_err(context: String, cause: std::io::Error) -> StartError {
    StartError::internal(context, cause)
}

/// SO_REUSEPORT would silently split a port's traffic between two servers, so each port is
/// claimed with an abstract Unix socket named after it: the name is unique per network
/// namespace and the kernel releases it when the process dies, crash included.
fn claim_port(port: u16) -> Result<UnixListener, StartError> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("meridian-port-{port}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| io_err(format!("port guard {name}: {e}"), e))?;
    UnixListener::bind_addr(&addr).map_err(|e| {
        io_err(format!("another meridian is already serving port {port} (guard @{name} is taken: {e}); stop it or choose another --listen port"), e)
    })
}

/// One lock per data directory, so two servers never write the same KV file.
fn lock_data_dir(config: &Config) -> Result<File, StartError> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| io_err(format!("cannot create data dir {}: {e} (set --data-dir)", dir.display()), e))?;
    let path = dir.join("meridian.lock");
    let file = File::create(&path).map_err(|e| io_err(format!("cannot open lock file {}: {e}", path.display()), e))?;
    if !sys::try_lock_exclusive(&file) {
        return Err(StartError::refused(format!(
            "data dir {} is in use by another meridian (lock {} is held); use another --data-dir",
            dir.display(),
            path.display()
        )));
    }
    Ok(file)
}

fn bind_reuseport(addr: SocketAddr, backlog_len: u32) -> Result<Socket, StartError> {
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket =
        Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(|e| io_err(format!("socket: {e}"), e))?;
    socket.set_reuse_address(true).map_err(|e| io_err(format!("SO_REUSEADDR: {e}"), e))?;
    socket.set_reuse_port(true).map_err(|e| io_err(format!("SO_REUSEPORT: {e}"), e))?;
    socket.bind(&SockAddr::from(addr)).map_err(|e| io_err(format!("cannot bind {addr}: {e}"), e))?;
    socket
        .listen(backlog_len.min(i32::MAX as u32) as i32)
        .map_err(|e| io_err(format!("cannot listen on {addr}: {e}"), e))?;
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
        .map_err(|e| io_err(format!("cannot start the waker thread: {e}"), e))
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
            "open files limit {} < connectionsPerShardMax x shards + {FD_RESERVE} = {wanted}: connections beyond \
             about {} will be refused; raise `ulimit -n` (hard limit {}) or lower connectionsPerShardMax",
            soft,
            soft.saturating_sub(FD_RESERVE),
            hard
        );
    }
}

/// Starts the server: locks and listeners first (so a second server fails before it does
/// anything), then the writer, the metrics endpoint, the waker, the shards and the peer watch.
pub fn start(config: Config) -> Result<Running, StartError> {
    config.validate()?;
    raise_fd_limit(&config);
    let lock = lock_data_dir(&config)?;
    let (guard, listeners, local_addr) = bind_listeners(&config)?;
    let published: SnapshotCell = Arc::new(ArcSwap::from_pointee(RouteSnapshot::empty()));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (access, accounts_file) = start_access_control(&config, &stopping)?;
    let shared = Shared {
        in_flight: Arc::new(AtomicUsize::new(0)),
        access,
        stopping,
        connections_open: (0..config.shards).map(|_| Arc::new(AtomicUsize::new(0))).collect(),
        shard_metrics: (0..config.shards).map(|_| Arc::default()).collect(),
        budget: crate::budget::MemoryBudget::new(config.registration_memory_bytes_max as usize),
    };
    let (updates_tx, updates_rx) = flume::bounded(config.update_queue_len_max);
    let mut wiring = ShardWiring::new(config.shards);
    let writer_metrics = Arc::new(WriterMetrics::default());
    let writer = start_writer(&config, &published, updates_rx, &mut wiring, writer_metrics.clone())?;
    // Bound before the shards start, so a taken metrics port fails the start cleanly.
    let peer_report = crate::peer_watch::cell_if_enabled(&config);
    let metrics_addr = match config.metrics_listen {
        Some(addr) => {
            let metrics = Arc::new(Metrics {
                shards: shared.shard_metrics.clone(),
                writer: writer_metrics,
                connections_open: shared.connections_open.clone(),
                in_flight: shared.in_flight.clone(),
                stopping: shared.stopping.clone(),
                published: snapshot_probe(published.clone()),
                started: Instant::now(),
                peer_report: peer_report.clone(),
            });
            Some(crate::metrics::http::spawn_http(addr, metrics)?)
        }
        None => None,
    };
    let pokes = std::mem::take(&mut wiring.poke_txs);
    let poke_interval = Duration::from_micros(config.executor_poke_interval_us);
    spawn_waker(shared.connections_open.clone(), pokes, poke_interval)?;
    let listener_fds: Vec<RawFd> = listeners.into_iter().map(IntoRawFd::into_raw_fd).collect();
    let shards = start_shards(&config, &listener_fds, &published, &updates_tx, wiring, &shared)?;
    // Listening on every shard: the peer watch may now read this server over TCP.
    if let Some(cell) = peer_report {
        crate::peer_watch::spawn(&config, local_addr, cell, shared.stopping.clone())?;
    }
    Ok(Running {
        local_addr,
        listener_fds,
        in_flight: shared.in_flight,
        stopping: shared.stopping,
        connections_open: shared.connections_open,
        metrics_addr,
        shards,
        writer,
        updates: updates_tx,
        accounts_file,
        _guard: guard,
        _lock: lock,
    })
}

/// The accounts (an unreadable `authAccountsFile` stops the start) and, when there is a
/// file, the thread that reloads it when it changes, and what SIGHUP reloads.
fn start_access_control(
    config: &Config,
    stopping: &Arc<AtomicBool>,
) -> Result<(Arc<AccessControl>, Option<AccountsFile>), StartError> {
    let file = config.auth.accounts_file.as_deref();
    let cell = accounts::load_at_start(file)?;
    let reload = match file {
        Some(path) => {
            accounts::spawn_reloader(path.to_path_buf(), cell.clone(), stopping.clone())
                .map_err(|e| io_err("cannot start the accounts reload thread".into(), e))?;
            Some((path.to_path_buf(), cell.clone()))
        }
        None => None,
    };
    Ok((Arc::new(AccessControl::new(config.auth.clone(), cell)), reload))
}

/// How the metrics endpoint reads the published snapshot.
fn snapshot_probe(published: SnapshotCell) -> SnapshotProbe {
    Box::new(move || {
        let snapshot = published.load();
        SnapshotStats {
            generation: snapshot.generation,
            topics: snapshot.topics.len(),
            not_ready_until: snapshot.not_ready_until,
        }
    })
}

/// State every shard and the metrics endpoint share.
struct Shared {
    in_flight: Arc<AtomicUsize>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    connections_open: Vec<Arc<AtomicUsize>>,
    shard_metrics: Vec<Arc<ShardMetrics>>,
    access: Arc<AccessControl>,
    /// `registrationMemoryBytesMax`, one for the whole process.
    budget: Arc<crate::budget::MemoryBudget>,
}

/// The channels between the shards and the writer and waker threads, one of each per shard.
struct ShardWiring {
    /// Writer → shard: close an expired broker's connection.
    closers: Vec<flume::Sender<ConnId>>,
    close_rxs: Vec<flume::Receiver<ConnId>>,
    /// Writer → shard: "a new snapshot is out".
    published_signals: Vec<flume::Sender<()>>,
    published_rxs: Vec<flume::Receiver<()>>,
    /// Waker → shard.
    poke_txs: Vec<flume::Sender<()>>,
    poke_rxs: Vec<flume::Receiver<()>>,
}

impl ShardWiring {
    fn new(shards: usize) -> ShardWiring {
        // Expiry closes are rare; a full queue just means the connection closes at its idle timeout.
        let (closers, close_rxs) = (0..shards).map(|_| flume::bounded(1024)).unzip();
        let (published_signals, published_rxs) = (0..shards).map(|_| flume::bounded(1)).unzip();
        let (poke_txs, poke_rxs) = (0..shards).map(|_| flume::bounded(1)).unzip();
        ShardWiring { closers, close_rxs, published_signals, published_rxs, poke_txs, poke_rxs }
    }
}

/// Claims the port, binds one SO_REUSEPORT listener per shard. With a fixed port it is
/// claimed before binding so we never steal a running server's connections; with port 0,
/// the first bind picks the port and no one else can have it.
fn bind_listeners(config: &Config) -> Result<(UnixListener, Vec<Socket>, SocketAddr), StartError> {
    let mut guard = None;
    if config.listen.port() != 0 {
        guard = Some(claim_port(config.listen.port())?);
    }
    let first = bind_reuseport(config.listen, config.listen_backlog_len)?;
    let local_addr = first
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| StartError::refused("listener has no local address".into()))?;
    let guard = match guard {
        Some(g) => g,
        None => claim_port(local_addr.port())?,
    };
    let mut listeners = vec![first];
    for _ in 1..config.shards {
        listeners.push(bind_reuseport(local_addr, config.listen_backlog_len)?);
    }
    Ok((guard, listeners, local_addr))
}

/// Loads the KV config and starts the notifier and the writer threads.
fn start_writer(
    config: &Config,
    published: &SnapshotCell,
    updates: flume::Receiver<RouteUpdate>,
    wiring: &mut ShardWiring,
    metrics: Arc<WriterMetrics>,
) -> Result<JoinHandle<()>, StartError> {
    let kv = persist::load_kv(&config.kv_config_path())?;
    let (notify_tx, notify_rx) = flume::bounded(notify::NOTIFY_QUEUE_LEN_MAX);
    notify::spawn(notify_rx).map_err(|e| io_err(format!("cannot start the notifier thread: {e}"), e))?;
    let writer = Writer::new(WriterSetup {
        config: config.clone(),
        kv,
        published: published.clone(),
        updates,
        closers: std::mem::take(&mut wiring.closers),
        notifications: notify_tx,
        metrics,
        published_signals: std::mem::take(&mut wiring.published_signals),
        started_at: Instant::now(),
    });
    std::thread::Builder::new()
        .name("meridian-writer".into())
        .spawn(move || writer.run())
        .map_err(|e| io_err(format!("cannot start the writer thread: {e}"), e))
}

/// Starts one pinned executor per listener and waits until every shard's reactor exists.
fn start_shards(
    config: &Config,
    listener_fds: &[RawFd],
    published: &SnapshotCell,
    updates: &flume::Sender<RouteUpdate>,
    wiring: ShardWiring,
    shared: &Shared,
) -> Result<Vec<glommio::ExecutorJoinHandle<()>>, StartError> {
    let cpus = allowed_cpus();
    // io_uring charges registered buffers to RLIMIT_MEMLOCK by whole compound page, once per
    // ring: a 256 KiB buffer inside a transparent huge page costs 3 x 2 MiB per shard, and a
    // second shard no longer fits an 8 MiB limit. So THP is off while the shards register
    // their buffers, and stays off unless `transparentHugePages` (pinned pages are never
    // collapsed later).
    sys::set_thp_disabled(true);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut shards = Vec::new();
    let per_shard = wiring.close_rxs.into_iter().zip(wiring.poke_rxs).zip(wiring.published_rxs);
    for (id, ((close_requests, pokes), publish_signal)) in per_shard.enumerate() {
        let setup = ShardSetup {
            id,
            config: config.clone(),
            listener_fd: listener_fds[id],
            published: published.clone(),
            updates: updates.clone(),
            close_requests,
            ready: ready_tx.clone(),
            connections_open: shared.connections_open[id].clone(),
            pokes,
            in_flight: shared.in_flight.clone(),
            stopping: shared.stopping.clone(),
            metrics: shared.shard_metrics[id].clone(),
            budget: shared.budget.clone(),
            publish_signal,
            access: shared.access.clone(),
        };
        // Shard i runs on the i-th CPU this process may use (so `taskset` and cgroup cpusets
        // are honoured): one executor per core, so a shard's connections and its snapshot
        // copy stay in one core's cache. The writer thread is not pinned.
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpus[id % cpus.len()]))
            .blocking_thread_pool_placement(decode_thread_placement(&cpus))
            .name(&format!("meridian-shard-{id}"))
            .io_memory(config.io_memory_bytes_per_shard)
            .preempt_timer(Duration::from_micros(config.preempt_timer_us))
            .spawn(move || accept::run(setup))
            .map_err(|e| {
                // glommio's error is not Sync; its text is kept in the context.
                StartError::refused(format!(
                    "cannot start shard {id}: {e} (io_uring needs locked memory: check `ulimit -l`, or lower ioMemoryBytesPerShard)"
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
    sys::set_thp_disabled(!config.transparent_huge_pages);
    if started != config.shards {
        let mut reasons = Vec::new();
        for handle in shards {
            if let Err(e) = handle.join() {
                reasons.push(e.to_string());
            }
        }
        return Err(StartError::refused(format!(
            "only {started} of {} shards started ({}); io_uring needs locked memory: raise `ulimit -l` \
             (at least 512 KiB per shard, 2 MiB for 2 shards without warnings) or run fewer --shards",
            config.shards,
            reasons.join("; ")
        )));
    }
    Ok(shards)
}

/// Interval at which the drain looks at the in-flight count.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// An accounts file and the cell the shards read its accounts from.
type AccountsFile = (std::path::PathBuf, accounts::AccountsCell);

impl Running {
    /// SIGHUP: re-reads `authAccountsFile` now (it is also re-read when it changes).
    pub fn reload_accounts(&self) {
        match &self.accounts_file {
            Some((path, cell)) => accounts::reload_now(path, cell),
            None => tracing::info!("SIGHUP: no authAccountsFile configured; nothing to reload"),
        }
    }

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

    /// With `warmRestart` on, after the drain: has the writer save the route table for the
    /// next start (after every update queued before), waiting until `deadline`. When it is
    /// off the writer answers at once and nothing is written.
    pub fn save_warm_restart(&self, deadline: Instant) -> Result<(), WarmSaveError> {
        let (reply, answer) = flume::bounded(1);
        let late = || WarmSaveError::Late { path: None };
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

/// The shard's blocking thread (big registration decodes) may run on any CPU this process
/// may use, like the writer: pinned to its shard's CPU it shared that CPU with the shard's
/// lookups and ran 2-3x slower while another core idled.
fn decode_thread_placement(cpus: &[usize]) -> glommio::PoolPlacement {
    match glommio::CpuSet::online().map(|set| set.filter(|l| cpus.contains(&l.cpu))) {
        Ok(set) if !set.is_empty() => glommio::PoolPlacement::Fenced(1, set),
        _ => glommio::PoolPlacement::Unbound(1),
    }
}
