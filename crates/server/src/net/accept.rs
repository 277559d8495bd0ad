//! A shard's start and its accept loop: builds the `ShardState`, starts its helper tasks
//! (waker pokes, publish signals, close requests), then accepts on the shard's own
//! SO_REUSEPORT listener and hands each connection to `net::connection` for life.
//! Must not: read or answer requests itself.

use super::connection;
use crate::auth::AccessControl;
use crate::config::Config;
use crate::metrics::counters::ShardMetrics;
use crate::route::snapshot::SnapshotCell;
use crate::route::writer::RouteUpdate;
use crate::route::ConnId;
use crate::shard::state::{ShardParts, ShardState, FRAME_BUFFER_SWEEP_INTERVAL};
use glommio::net::TcpListener;
use std::os::unix::io::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What a shard needs from the process when it starts.
pub struct ShardSetup {
    pub id: usize,
    pub config: Config,
    /// A bound, listening SO_REUSEPORT socket created by the main thread.
    pub listener_fd: RawFd,
    pub published: SnapshotCell,
    pub updates: flume::Sender<RouteUpdate>,
    pub close_requests: flume::Receiver<ConnId>,
    /// Signalled once this shard's reactor exists (see `server::start` on memlock).
    pub ready: std::sync::mpsc::Sender<()>,
    /// Shared with the waker thread, which pokes only shards that have connections.
    pub connections_open: Arc<AtomicUsize>,
    /// Periodic pokes from the waker thread.
    pub pokes: flume::Receiver<()>,
    pub in_flight: Arc<AtomicUsize>,
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    pub metrics: Arc<ShardMetrics>,
    /// The registration memory budget every shard shares.
    pub budget: Arc<crate::budget::MemoryBudget>,
    /// "A new snapshot is out", from the writer.
    pub publish_signal: flume::Receiver<()>,
    pub access: Arc<AccessControl>,
}

pub async fn run(setup: ShardSetup) {
    // Reaching this line means the reactor (and its io_uring rings) exists. The sender is
    // dropped right away: `server::start` counts signals until every sender is gone.
    let ready = setup.ready;
    let _ = ready.send(());
    drop(ready);
    // The main thread created this listening socket for this shard only and handed over
    // ownership; nothing else uses or closes the fd.
    let listener = crate::sys::adopt_listener(setup.listener_fd);
    let state = Rc::new(ShardState::new(ShardParts {
        id: setup.id,
        config: setup.config,
        published: setup.published,
        updates: setup.updates,
        connections_open: setup.connections_open,
        in_flight: setup.in_flight,
        stopping: setup.stopping,
        metrics: setup.metrics,
        access: setup.access,
        budget: setup.budget,
    }));
    spawn_helpers(&state, setup.pokes, setup.publish_signal, setup.close_requests);
    accept_loop(listener, state).await
}

/// The shard's helper tasks: waker pokes, "a snapshot is out" signals (which wake route
/// watches), freeing an idle large frame buffer, and the writer's requests to close an
/// expired broker's connection.
fn spawn_helpers(
    state: &Rc<ShardState>,
    pokes: flume::Receiver<()>,
    publish_signal: flume::Receiver<()>,
    close_requests: flume::Receiver<ConnId>,
) {
    // glommio 0.9 can park with runnable tasks (see `server::spawn_waker`): every poke
    // from the waker thread is a foreign wake-up that gets the executor out of such a park.
    glommio::spawn_local(async move { while pokes.recv_async().await.is_ok() {} }).detach();

    let publish_state = state.clone();
    glommio::spawn_local(async move {
        while publish_signal.recv_async().await.is_ok() {
            // Move this shard's cached snapshot on, idle or not, so the writer (which
            // keeps replaced snapshots until no shard holds them) frees the old one.
            publish_state.with_snapshot(|_| ());
            publish_state.snapshot_published.notify(usize::MAX);
        }
    })
    .detach();

    let sweep_state = state.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(FRAME_BUFFER_SWEEP_INTERVAL).await;
            sweep_state.frame_buffers.release_idle(std::time::Instant::now());
        }
    })
    .detach();

    let closer_state = state.clone();
    glommio::spawn_local(async move {
        while let Ok(conn) = close_requests.recv_async().await {
            closer_state.close_conn(conn);
        }
    })
    .detach();
}

/// Accepts until the stop: each connection runs in its own task for life, unless the
/// shard already holds `connectionsPerShardMax`.
async fn accept_loop(listener: TcpListener, state: Rc<ShardState>) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(_) if state.stopping.load(Ordering::Acquire) => {
                // The main thread shut the listener down: accept no more, but keep the
                // executor (and so the open connections) running while the process drains.
                // The listener stays open (its fd must stay ours: the main thread used it).
                tracing::debug!(shard = state.id, "stopped accepting");
                // Held watches wake on this event only (no polling): they see `stopping`
                // and answer at once.
                state.snapshot_published.notify(usize::MAX);
                let _listener = listener;
                return std::future::pending::<()>().await;
            }
            Err(e) => {
                tracing::error!(shard = state.id, "accept failed: {e}");
                glommio::timer::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
        if state.open_count() >= state.config.connections_per_shard_max {
            if state.peer_warning_admitted() {
                tracing::warn!(
                    shard = state.id,
                    "closing {peer}: {} open connections >= connectionsPerShardMax {} (raise it if this load is legitimate)",
                    state.open_count(),
                    state.config.connections_per_shard_max
                );
            }
            state.metrics.refused();
            drop(stream);
            continue;
        }
        state.metrics.accepted();
        state.set_open_count(state.open_count() + 1);
        let conn_state = state.clone();
        glommio::spawn_local(async move {
            connection::serve(stream, peer, &conn_state).await;
            conn_state.set_open_count(conn_state.open_count() - 1);
        })
        .detach();
    }
}
