//! `ShardState`: what one shard owns (`Rc`, `Cell`, `RefCell`: `!Send`, so it stays home):
//! the cached current snapshot, the sender into the writer, the byte semaphore for
//! registrations in flight, the connection count and the low-priority decode queue.
//! Requests reach the route writer only through `call` and `send` here.
//! Must not: own route state, share a `RefCell` with another shard, or know about sockets
//! beyond the raw fds it tracks for the writer's close requests.

use crate::auth::AccessControl;
use crate::budget::MemoryBudget;
use crate::config::Config;
use crate::logging::WarnLimiter;
use crate::metrics::counters::ShardMetrics;
use crate::route::snapshot::{AnswerInterner, RouteSnapshot, SnapshotCell};
use crate::route::writer::{Reply, RouteUpdate};
use crate::route::ConnId;
use bytes::Bytes;
use glommio::{Latency, Shares, TaskQueueHandle};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::unix::io::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Share of CPU the decode queue gets relative to the default queue's 1000 (lookups):
/// under contention a registration decode gets about 1/11 of the shard.
const DECODE_QUEUE_SHARES: usize = 100;
/// Bodies at least this large are decoded on the shard's blocking thread (same CPU).
/// 256 KiB of registration JSON is about 1,300 topics, about 1 ms to parse.
const DECODE_OFFLOAD_BYTES_MIN: usize = 256 * 1024;

pub struct ShardState {
    pub id: usize,
    pub config: Config,
    snapshot: RefCell<arc_swap::Cache<SnapshotCell, Arc<RouteSnapshot>>>,
    /// This shard's identical route answers, shared (`route::snapshot::AnswerInterner`).
    pub answers: AnswerInterner,
    /// The buffer large frames are read into, kept between them.
    pub frame_buffers: FrameBuffers,
    updates: flume::Sender<RouteUpdate>,
    /// Frame bytes of large requests being read, decoded or applied on this shard.
    pub inflight: glommio::sync::Semaphore,
    /// What registrations in flight hold, on every shard (`registrationMemoryBytesMax`).
    pub budget: Arc<MemoryBudget>,
    /// Written only by this shard (plain load + store, no RMW); read by the waker thread.
    pub connections_open: Arc<AtomicUsize>,
    /// One inline decode at a time: a queued batch of small registrations then delays a
    /// lookup by at most one decode (about 1 ms), whatever the preempt timer does.
    decode_turn: glommio::sync::Semaphore,
    conn_seq: Cell<u64>,
    decode_queue: TaskQueueHandle,
    /// Raw fds of open connections, so the writer can have an expired broker's one closed.
    open_fds: RefCell<HashMap<ConnId, RawFd>>,
    /// Requests being handled or answered on every shard (process-wide), for the drain.
    pub in_flight: Arc<AtomicUsize>,
    /// Set once a stop signal arrived: the accept loop ends.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Written only by this shard; summed with the others' on scrape.
    pub metrics: Arc<ShardMetrics>,
    /// Notified whenever the writer publishes a snapshot; route watches wait on it.
    pub snapshot_published: event_listener::Event,
    /// Route watches held on this shard now (`watchesPerShardMax`).
    pub watches_held: Cell<usize>,
    /// Bounds this shard's log lines about misbehaving peers (see `peer_warning_admitted`).
    peer_warnings: Rc<WarnLimiter>,
    /// Process-wide access control (signatures, allow-lists), checked before dispatch.
    pub access: Arc<AccessControl>,
}

/// What a shard's state is made of that the process hands over at start.
pub struct ShardParts {
    pub id: usize,
    pub config: Config,
    pub published: SnapshotCell,
    pub updates: flume::Sender<RouteUpdate>,
    pub connections_open: Arc<AtomicUsize>,
    pub in_flight: Arc<AtomicUsize>,
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    pub metrics: Arc<ShardMetrics>,
    pub access: Arc<AccessControl>,
    pub budget: Arc<MemoryBudget>,
}

impl ShardState {
    /// Built on the shard's own executor (the decode queue belongs to it).
    pub fn new(parts: ShardParts) -> ShardState {
        let decode_queue =
            glommio::executor().create_task_queue(Shares::Static(DECODE_QUEUE_SHARES), Latency::NotImportant, "decode");
        ShardState {
            id: parts.id,
            snapshot: RefCell::new(arc_swap::Cache::new(parts.published)),
            answers: AnswerInterner::default(),
            frame_buffers: FrameBuffers::new(parts.config.frame_bytes_max as usize),
            updates: parts.updates,
            inflight: glommio::sync::Semaphore::new(parts.config.registration_inflight_bytes_per_shard_max),
            budget: parts.budget,
            connections_open: parts.connections_open,
            decode_turn: glommio::sync::Semaphore::new(1),
            conn_seq: Cell::new(0),
            decode_queue,
            open_fds: RefCell::new(HashMap::new()),
            in_flight: parts.in_flight,
            stopping: parts.stopping,
            metrics: parts.metrics,
            snapshot_published: event_listener::Event::new(),
            watches_held: Cell::new(0),
            peer_warnings: Rc::new(WarnLimiter::new(format!("shard {}", parts.id))),
            config: parts.config,
            access: parts.access,
        }
    }

    /// Runs `read` on the newest published snapshot (lock-free: a generation check on the
    /// shared cell). Borrowing instead of cloning the `Arc` keeps the snapshot's shared
    /// reference count, which every shard would otherwise bump, off the lookup path.
    pub fn with_snapshot<R>(&self, read: impl FnOnce(&RouteSnapshot) -> R) -> R {
        read(self.snapshot.borrow_mut().load())
    }

    /// Sends an update and waits for the writer's answer; `None` if the writer is gone.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> RouteUpdate) -> Option<T> {
        let (tx, rx) = flume::bounded(1);
        self.updates.send_async(make(tx)).await.ok()?;
        rx.recv_async().await.ok()
    }

    /// Sends an update that has no answer (waits only while the writer's queue is full).
    pub async fn send(&self, update: RouteUpdate) {
        if self.updates.send_async(update).await.is_err() {
            tracing::error!(shard = self.id, "route writer is gone; update dropped");
        }
    }

    /// Runs CPU-heavy decoding without holding up lookups. Small jobs run in the shard's
    /// low-priority queue (they take about a millisecond at most). Large ones run on the
    /// shard's blocking thread, which glommio pins to this shard's CPU: the parse of a
    /// 20 MB body is one call that cannot yield, so the kernel time-slices it against the
    /// executor instead, and lookups keep being answered while it runs.
    pub async fn decode<T: Send + 'static>(&self, input_bytes: usize, work: impl FnOnce() -> T + Send + 'static) -> T {
        if input_bytes >= DECODE_OFFLOAD_BYTES_MIN {
            return glommio::executor().spawn_blocking(work).await;
        }
        let _turn = self.decode_turn.acquire_permit(1).await.expect("the decode semaphore is never closed");
        let task = glommio::spawn_local_into(
            async move {
                // Let lookups that are already queued go first.
                glommio::yield_if_needed().await;
                work()
            },
            self.decode_queue,
        )
        .expect("the decode queue is created at shard start and never removed");
        task.await
    }

    /// Whether a log line about a misbehaving peer (a connection closed on an error, a
    /// refused request) may be written now: at most `PEER_WARNINGS_PER_WINDOW_MAX` per
    /// window on this shard, then one line counting the rest when the window ends.
    pub fn peer_warning_admitted(&self) -> bool {
        crate::logging::admit_on_shard(&self.peer_warnings)
    }

    pub fn open_count(&self) -> usize {
        self.connections_open.load(Ordering::Relaxed)
    }

    pub fn set_open_count(&self, n: usize) {
        // Only this shard writes it, so a load and a store are enough (no atomic RMW).
        self.connections_open.store(n, Ordering::Relaxed);
    }

    pub fn next_conn_id(&self) -> ConnId {
        let seq = self.conn_seq.get() + 1;
        self.conn_seq.set(seq);
        ConnId::new(self.id, seq)
    }

    pub fn track_fd(&self, conn: ConnId, fd: RawFd) {
        self.open_fds.borrow_mut().insert(conn, fd);
    }

    pub fn untrack_fd(&self, conn: ConnId) {
        self.open_fds.borrow_mut().remove(&conn);
    }

    pub fn close_conn(&self, conn: ConnId) {
        if let Some(fd) = self.open_fds.borrow().get(&conn) {
            // The fd belongs to a live connection task on this shard (it removes itself from
            // `open_fds` before its socket is dropped), so it is still open and still ours;
            // shutdown only ends its I/O, the task then closes it.
            crate::sys::shutdown_socket(*fd);
        }
    }
}

/// The largest frame buffer a shard keeps for good for the next large frame (64 MiB: a
/// ~300k-topic JSON registration). A larger one, up to `frameBytesMax`, is kept only while
/// large frames keep coming (`FRAME_BUFFER_LARGE_IDLE`): a 1M-topic broker's 222 MB re-send
/// every 30 s otherwise faulted its whole frame afresh (~180 ms here).
pub const FRAME_BUFFER_KEPT_BYTES_MAX: usize = 64 << 20;
/// A kept buffer above `FRAME_BUFFER_KEPT_BYTES_MAX` is freed once no frame has needed one
/// for this long: three of a broker's 30 s periods.
pub const FRAME_BUFFER_LARGE_IDLE: Duration = Duration::from_secs(90);
/// How often a shard looks for such a buffer to free (`FrameBuffers::release_idle`).
pub const FRAME_BUFFER_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// One buffer for large frames, kept between them. A registration's frame used to be a
/// fresh zeroed allocation every time: 22 MB of page faults at 100k topics (about 9 ms
/// here, more when the allocator gave huge pages, which this VM compacts on fault) on
/// every re-send once the allocator had returned the last one to the OS. The buffer comes
/// back from whichever thread drops the frame (decoding runs on the blocking thread) over
/// a channel of one; what does not fit is freed.
pub struct FrameBuffers {
    kept: RefCell<Option<Vec<u8>>>,
    /// When a frame last needed a buffer above `FRAME_BUFFER_KEPT_BYTES_MAX` (smaller
    /// frames may use a larger kept buffer, but do not keep it alive).
    last_large: Cell<Instant>,
    returned: flume::Receiver<Vec<u8>>,
    home: flume::Sender<Vec<u8>>,
    /// No buffer above this is kept at all (`frameBytesMax`).
    keep_bytes_max: usize,
}

impl FrameBuffers {
    pub fn new(keep_bytes_max: usize) -> FrameBuffers {
        let (home, returned) = flume::bounded(1);
        FrameBuffers { kept: RefCell::new(None), last_large: Cell::new(Instant::now()), returned, home, keep_bytes_max }
    }

    /// Keeps the larger of the kept buffer and one that came back.
    fn collect(&self, kept: &mut Option<Vec<u8>>) {
        if let Ok(back) = self.returned.try_recv() {
            if kept.as_ref().is_none_or(|k| k.capacity() < back.capacity()) {
                *kept = Some(back);
            }
        }
    }

    /// A buffer of `len` bytes: the kept one if it is large enough (only bytes past its
    /// last length are zeroed), else a fresh one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        if len > FRAME_BUFFER_KEPT_BYTES_MAX {
            self.last_large.set(Instant::now());
        }
        let mut kept = self.kept.borrow_mut();
        self.collect(&mut kept);
        match kept.take() {
            Some(mut buf) if buf.capacity() >= len => {
                buf.resize(len, 0);
                buf
            }
            other => {
                *kept = other;
                vec![0u8; len]
            }
        }
    }

    /// `buf` as the frame's bytes; kept for the next frame when they are dropped, unless it
    /// is larger than any frame may be.
    pub fn frame(&self, buf: Vec<u8>) -> Bytes {
        if buf.capacity() > self.keep_bytes_max {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Returning { buf, home: self.home.clone() })
    }

    /// Frees a kept buffer above `FRAME_BUFFER_KEPT_BYTES_MAX` once no frame has needed one
    /// for `FRAME_BUFFER_LARGE_IDLE` (called every `FRAME_BUFFER_SWEEP_INTERVAL`).
    pub fn release_idle(&self, now: Instant) {
        let mut kept = self.kept.borrow_mut();
        self.collect(&mut kept);
        let idle = now.saturating_duration_since(self.last_large.get()) >= FRAME_BUFFER_LARGE_IDLE;
        if idle && kept.as_ref().is_some_and(|k| k.capacity() > FRAME_BUFFER_KEPT_BYTES_MAX) {
            *kept = None;
        }
    }
}

/// A frame's buffer, sent back to its shard's `FrameBuffers` when the frame is dropped.
struct Returning {
    buf: Vec<u8>,
    home: flume::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        // Full (a buffer is already on its way back) or the shard is gone: freed here.
        let _ = self.home.try_send(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_buffer_comes_back_from_any_thread_and_is_reused() {
        let buffers = FrameBuffers::new(FRAME_BUFFER_KEPT_BYTES_MAX);
        let mut buf = buffers.take(1000);
        buf[999] = 7;
        let ptr = buf.as_ptr();
        let frame = buffers.frame(buf);
        let body = frame.slice(10..);
        drop(frame);
        std::thread::spawn(move || drop(body)).join().unwrap();
        let again = buffers.take(800);
        assert_eq!((again.as_ptr(), again.len()), (ptr, 800), "the same allocation, resized");
        // In use (not returned yet): a fresh one.
        let other = buffers.take(800);
        assert_ne!(other.as_ptr(), ptr);
        // Too small for the next frame: a fresh one, the kept one stays.
        drop(buffers.frame(again));
        assert_eq!(buffers.take(5000).len(), 5000);
        let kept = buffers.take(900);
        assert_eq!(kept.as_ptr(), ptr);
    }

    #[test]
    fn oversized_buffers_are_not_kept() {
        let buffers = FrameBuffers::new(FRAME_BUFFER_KEPT_BYTES_MAX);
        let big = vec![0u8; FRAME_BUFFER_KEPT_BYTES_MAX + 1];
        drop(buffers.frame(big));
        assert!(buffers.kept.borrow().is_none() && buffers.returned.is_empty(), "a buffer past the max is freed");
    }

    #[test]
    fn a_large_buffer_is_kept_only_while_large_frames_keep_coming() {
        let buffers = FrameBuffers::new(4 * FRAME_BUFFER_KEPT_BYTES_MAX);
        let large = buffers.take(FRAME_BUFFER_KEPT_BYTES_MAX + 1);
        let taken_at = Instant::now();
        let ptr = large.as_ptr();
        drop(buffers.frame(large));
        buffers.release_idle(taken_at + FRAME_BUFFER_LARGE_IDLE / 2);
        let again = buffers.take(FRAME_BUFFER_KEPT_BYTES_MAX + 1);
        assert_eq!(again.as_ptr(), ptr, "kept while frames come");
        drop(buffers.frame(again));
        let last_large = Instant::now();
        // A smaller frame may use the large buffer, but does not keep it alive.
        let small = buffers.take(1000);
        assert_eq!(small.as_ptr(), ptr);
        drop(buffers.frame(small));
        buffers.release_idle(last_large + FRAME_BUFFER_LARGE_IDLE);
        assert!(buffers.kept.borrow().is_none(), "freed once idle");
        // A buffer up to the lasting size stays however long it is idle.
        drop(buffers.frame(buffers.take(1000)));
        buffers.release_idle(Instant::now() + 10 * FRAME_BUFFER_LARGE_IDLE);
        assert!(buffers.kept.borrow().is_some());
    }
}
