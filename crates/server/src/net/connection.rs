//! One connection: its read buffer (bounded by `frame_bytes_max`), the decode loop, and
//! replies tagged with the request's opaque. Handlers only ever see whole frames.
//!
//! Requests on one connection are answered in order, one at a time; a peer pipelining
//! requests simply waits its turn (clients match answers by opaque anyway). Every frame
//! that one read brought in is handled before the replies go out in one write, so a client
//! with 16 lookups in flight costs one read and one write, not sixteen of each. Must not:
//! parse bodies or decide routes.

use crate::metrics::counters::CloseCause;
use crate::request::dispatch::{self, Effects};
use crate::route::writer::RouteUpdate;
use crate::shard::state::ShardState;
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use meridian_protocol::body;
use meridian_protocol::codes;
use meridian_protocol::frame::{self, FrameError, SerializeType};
use meridian_protocol::header::{Header, HeaderOut};
use std::os::unix::io::AsRawFd;
use std::time::Duration;

/// Per-connection read buffer to start with: a few lookups' worth, so 10k mostly idle
/// client connections cost 10k × 4 KiB rather than 10k × 64 KiB.
const READ_BUFFER_BYTES_MIN: usize = 4 * 1024;
/// What the read buffer grows to when a frame or a read needs more room; frames above it
/// are read into a buffer of their own.
const READ_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// A grown read buffer goes back to the small one after this many reads in a row that
/// would have fitted it (hysteresis, so a busy pipelining client does not re-grow each time).
const SMALL_READS_BEFORE_SHRINK: u32 = 32;
/// Largest single read into a big frame's own buffer.
const READ_CHUNK_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Frames above this size hold permits of the shard's in-flight byte semaphore while they
/// are read, decoded and applied; smaller ones are bounded by the connection count.
const LARGE_FRAME_BYTES_MIN: usize = 64 * 1024;
/// Replies gathered before they are written even if more frames are buffered.
const REPLY_BATCH_BYTES_MAX: usize = 256 * 1024;
/// A reply buffer that grew past this (a big answer) is not kept by an idle connection.
const REPLY_BUFFER_KEEP_BYTES_MAX: usize = 1024 * 1024;

pub async fn serve(mut stream: TcpStream, peer: String, shard: &ShardState) {
    let conn = shard.next_conn_id();
    let config = &shard.config;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(config.connection_idle_timeout_ms)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(config.reply_write_timeout_ms)));
    shard.track_fd(conn, stream.as_raw_fd());
    tracing::debug!(shard = shard.id, conn = conn.0, "accepted {peer}");

    let mut rbuf = vec![0u8; READ_BUFFER_BYTES_MIN];
    let mut small_reads = 0u32;
    // Unhandled bytes are rbuf[start..end].
    let (mut start, mut end) = (0usize, 0usize);
    let mut out = Replies::new(shard);
    // The encoded response header, reused so a lookup allocates no header buffer.
    let mut header_bytes: Vec<u8> = Vec::with_capacity(256);
    let mut effects = Effects::default();

    let reason: String = 'conn: loop {
        // Every whole frame already buffered.
        loop {
            let frame_bytes = match frame::check(&rbuf[start..end], config.frame_bytes_max, config.header_bytes_max) {
                Ok(n) => n,
                Err(FrameError::Incomplete) => break,
                Err(FrameError::Invalid(why)) => break 'conn why,
            };
            let parts = frame::split(&rbuf[start..], frame_bytes);
            let header = match Header::decode(parts.serialize_type, &rbuf[start..][parts.header.clone()]) {
                Ok(h) => h,
                Err(e) => break 'conn format!("undecodable header: {e}"),
            };
            let body = Bytes::copy_from_slice(&rbuf[start..][parts.body]);
            start += frame_bytes;
            // Bodies this small (at most the 64 KiB buffer) cost microseconds to hash.
            let body_crc32 = body::body_crc32(&body);
            let request = Request { header: &header, peer: &peer, body, body_crc32 };
            if let Err(why) = handle(shard, conn, &mut stream, request, &mut effects, &mut out, &mut header_bytes).await
            {
                break 'conn why;
            }
            if out.bytes.len() >= REPLY_BATCH_BYTES_MAX {
                if let Err(why) = out.flush(&mut stream).await {
                    break 'conn why;
                }
            }
        }
        if let Err(why) = out.flush(&mut stream).await {
            break why;
        }
        // Keep the partial frame at the front, then read more.
        if start == end {
            (start, end) = (0, 0);
        } else if start > 0 {
            rbuf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        let frame_bytes = match frame::peek_frame_len(&rbuf[..end], config.frame_bytes_max) {
            Ok(n) => Some(n),
            Err(FrameError::Incomplete) => None,
            Err(FrameError::Invalid(why)) => break why,
        };
        if frame_bytes.is_some_and(|n| n > rbuf.len() && n <= READ_BUFFER_BYTES_MAX) {
            grow(&mut rbuf, end);
        }
        if let Some(frame_bytes) = frame_bytes.filter(|&n| n > rbuf.len()) {
            // Too big for the read buffer: read it into its own, then handle it.
            match read_large_frame(&mut stream, shard, &rbuf[..end], frame_bytes).await {
                Ok((whole, body_crc32, permit)) => {
                    (start, end) = (0, 0);
                    if let Err(FrameError::Invalid(why)) =
                        frame::check(&whole, config.frame_bytes_max, config.header_bytes_max)
                    {
                        break why;
                    }
                    let parts = frame::split(&whole, frame_bytes);
                    let header = match Header::decode(parts.serialize_type, &whole[parts.header.clone()]) {
                        Ok(h) => h,
                        Err(e) => break format!("undecodable header: {e}"),
                    };
                    let body = whole.slice(parts.body);
                    drop(whole);
                    let request = Request { header: &header, peer: &peer, body, body_crc32 };
                    let handled =
                        handle(shard, conn, &mut stream, request, &mut effects, &mut out, &mut header_bytes).await;
                    drop(permit);
                    if let Err(why) = handled {
                        break why;
                    }
                    continue;
                }
                Err(why) => break why,
            }
        }
        match stream.read(&mut rbuf[end..]).await {
            Ok(0) if end == 0 => break "peer closed".to_string(),
            Ok(0) => break format!("peer closed in the middle of a frame ({end} bytes buffered)"),
            Ok(n) => {
                let room = rbuf.len() - end;
                end += n;
                if n == room && rbuf.len() < READ_BUFFER_BYTES_MAX {
                    // The read filled the buffer: more is likely waiting.
                    grow(&mut rbuf, end);
                    small_reads = 0;
                } else if rbuf.len() > READ_BUFFER_BYTES_MIN && end <= READ_BUFFER_BYTES_MIN / 2 {
                    small_reads += 1;
                    if small_reads >= SMALL_READS_BEFORE_SHRINK {
                        let mut small = vec![0u8; READ_BUFFER_BYTES_MIN];
                        small[..end].copy_from_slice(&rbuf[..end]);
                        rbuf = small;
                        small_reads = 0;
                    }
                } else {
                    small_reads = 0;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                break format!("idle for connection_idle_timeout_ms {}", config.connection_idle_timeout_ms)
            }
            Err(e) => break format!("read failed: {e}"),
        }
    };
    shard.untrack_fd(conn);
    shard.metrics.closed(close_cause(&reason));
    if reason == "peer closed" {
        tracing::debug!(conn = conn.0, "{peer} closed");
    } else if shard.peer_warning_admitted() {
        // A peer breaking the protocol is worth a warning; timeouts and resets happen.
        if matches!(close_cause(&reason), CloseCause::ProtocolError) {
            tracing::warn!(conn = conn.0, "closing {peer}: {reason}");
        } else {
            tracing::info!(conn = conn.0, "closing {peer}: {reason}");
        }
    }
    if effects.registered_broker {
        shard.send(RouteUpdate::ConnectionClosed { conn }).await;
    }
}

/// Replaces the read buffer by a zeroed one of `READ_BUFFER_BYTES_MAX`, keeping its first
/// `end` bytes.
fn grow(rbuf: &mut Vec<u8>, end: usize) {
    let mut big = vec![0u8; READ_BUFFER_BYTES_MAX];
    big[..end].copy_from_slice(&rbuf[..end]);
    *rbuf = big;
}

/// The metrics cause of a connection's end, from the reason the loop above gives.
fn close_cause(reason: &str) -> CloseCause {
    if reason == "peer closed" || reason.starts_with("read failed") {
        CloseCause::PeerClosed
    } else if reason.starts_with("idle for") {
        CloseCause::IdleTimeout
    } else if reason.starts_with("write failed") {
        CloseCause::WriteFailed
    } else {
        CloseCause::ProtocolError
    }
}

/// One decoded request frame.
struct Request<'h> {
    header: &'h Header,
    /// The peer's address, for the per-request debug line.
    peer: &'h str,
    body: Bytes,
    /// The body's CRC as `bodyCrc32` carries it (a large frame's computed while it arrived).
    body_crc32: i32,
}

/// Handles one request, appending its reply (if any) to `out`. Requests the writer must
/// answer first flush the replies gathered so far, so they do not wait behind it.
async fn handle(
    shard: &ShardState,
    conn: crate::route::ConnId,
    stream: &mut TcpStream,
    request: Request<'_>,
    effects: &mut Effects,
    out: &mut Replies<'_>,
    header_bytes: &mut Vec<u8>,
) -> Result<(), String> {
    let header = request.header;
    if header.is_response() {
        // Java logs and drops answers nobody asked for; we never send requests.
        tracing::debug!(conn = conn.0, "ignoring a response frame (opaque {})", header.opaque);
        return Ok(());
    }
    let from_snapshot = matches!(header.code, codes::GET_ROUTEINFO_BY_TOPIC | codes::GET_BROKER_CLUSTER_INFO);
    if !from_snapshot {
        out.flush(stream).await?;
    }
    // Counted from here until its reply is written (or the connection ends).
    out.count_request();
    tracing::debug!(conn = conn.0, opaque = header.opaque, "request code={} from {}", header.code, request.peer);
    let started = std::time::Instant::now();
    let answer = if go_away(shard, header) {
        tracing::debug!(conn = conn.0, opaque = header.opaque, "shutting down: GO_AWAY to {}", request.peer);
        meridian_protocol::answer::Answer::error(codes::GO_AWAY, "please go away")
    } else {
        dispatch::handle(shard, conn, header, request.body, request.body_crc32, effects).await
    };
    shard.metrics.request(header.code, answer.code, started.elapsed());
    if header.is_oneway() {
        return Ok(());
    }
    let ext: Option<Vec<(&str, &str)>> =
        answer.ext_fields.as_ref().map(|v| v.iter().map(|(k, v)| (*k, v.as_str())).collect());
    header_bytes.clear();
    HeaderOut::response(answer.code, header.opaque, answer.remark.as_deref(), ext.as_deref())
        .encode(SerializeType::Json, header_bytes);
    frame::encode(&mut out.bytes, SerializeType::Json, header_bytes, &answer.body);
    Ok(())
}

/// While a graceful shutdown's GO_AWAY window is open, clients that understand GO_AWAY
/// (newer than 5.3.1, as Java decides) are told to reconnect elsewhere instead of served.
fn go_away(shard: &ShardState, header: &Header) -> bool {
    shard.config.shutdown_go_away
        && header.version > codes::VERSION_GO_AWAY_AFTER
        && shard.stopping.load(std::sync::atomic::Ordering::Acquire)
}

/// Replies gathered for one write, and how many requests they (and requests without a
/// reply) stand for in the shard's in-flight count, which the shutdown drain waits on.
struct Replies<'s> {
    bytes: Vec<u8>,
    unwritten_requests: usize,
    in_flight: &'s std::sync::atomic::AtomicUsize,
    reply_write_timeout_ms: u64,
}

impl<'s> Replies<'s> {
    fn new(shard: &'s ShardState) -> Replies<'s> {
        Replies {
            // Grown on the first reply; an idle connection holds none.
            bytes: Vec::new(),
            unwritten_requests: 0,
            in_flight: &shard.in_flight,
            reply_write_timeout_ms: shard.config.reply_write_timeout_ms,
        }
    }

    fn count_request(&mut self) {
        self.in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.unwritten_requests += 1;
    }

    fn settle(&mut self) {
        self.in_flight.fetch_sub(self.unwritten_requests, std::sync::atomic::Ordering::AcqRel);
        self.unwritten_requests = 0;
    }

    /// Writes the gathered replies.
    async fn flush(&mut self, stream: &mut TcpStream) -> Result<(), String> {
        if !self.bytes.is_empty() {
            if let Err(e) = stream.write_all(&self.bytes).await {
                return Err(format!("write failed ({e}); reply_write_timeout_ms {}", self.reply_write_timeout_ms));
            }
            self.bytes.clear();
            if self.bytes.capacity() > REPLY_BUFFER_KEEP_BYTES_MAX {
                self.bytes = Vec::new();
            }
        }
        self.settle();
        Ok(())
    }
}

impl Drop for Replies<'_> {
    /// A connection that ends leaves nothing in flight.
    fn drop(&mut self) {
        self.settle();
    }
}

/// Reads a frame larger than the read buffer into a buffer of its own, holding permits of
/// the shard's in-flight byte semaphore (returned with the frame) for large frames. The
/// body's CRC32 is computed as the bytes arrive, so a registration's check costs nothing
/// after its last byte.
async fn read_large_frame<'s>(
    stream: &mut TcpStream,
    shard: &'s ShardState,
    buffered: &[u8],
    frame_bytes: usize,
) -> Result<(Bytes, i32, Option<glommio::sync::Permit<'s>>), String> {
    let config = &shard.config;
    let permit = if frame_bytes >= LARGE_FRAME_BYTES_MIN {
        Some(
            shard
                .inflight
                .acquire_permit(frame_bytes as u64)
                .await
                .expect("the shard semaphore is never closed, and frame_bytes_max <= its size (Config::validate)"),
        )
    } else {
        None
    };
    // Zeroed by the allocator (fresh pages for big sizes), filled by reads.
    let mut whole = vec![0u8; frame_bytes];
    whole[..buffered.len()].copy_from_slice(buffered);
    let mut filled = buffered.len();
    let mut crc = BodyCrc::default();
    crc.update(&whole[..filled]).await;
    while filled < frame_bytes {
        let until = (filled + READ_CHUNK_BYTES_MAX).min(frame_bytes);
        match stream.read(&mut whole[filled..until]).await {
            Ok(0) => return Err(format!("peer closed in the middle of a frame ({filled} bytes buffered)")),
            Ok(n) => {
                filled += n;
                crc.update(&whole[..filled]).await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(format!("idle for connection_idle_timeout_ms {}", config.connection_idle_timeout_ms))
            }
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    Ok((Bytes::from(whole), crc.finish(), permit))
}

/// Bytes hashed between two chances for other tasks to run (about 25 µs of CRC).
const CRC_SLICE_BYTES: usize = 256 * 1024;

/// CRC32 of a frame's body, fed the frame's bytes as they arrive (the body starts after
/// the header, whose length the header word gives).
#[derive(Default)]
struct BodyCrc {
    hasher: crc32fast::Hasher,
    /// Frame bytes already hashed or skipped.
    done: usize,
    body_start: Option<usize>,
}

impl BodyCrc {
    /// Hashes the body bytes of `frame_so_far` not hashed yet.
    async fn update(&mut self, frame_so_far: &[u8]) {
        let start = match self.body_start {
            Some(start) => start,
            None if frame_so_far.len() >= 8 => {
                let start = frame::split(frame_so_far, frame_so_far.len()).header.end;
                self.body_start = Some(start);
                start
            }
            None => return,
        };
        self.done = self.done.max(start);
        while self.done < frame_so_far.len() {
            let end = (self.done + CRC_SLICE_BYTES).min(frame_so_far.len());
            self.hasher.update(&frame_so_far[self.done..end]);
            self.done = end;
            glommio::yield_if_needed().await;
        }
    }

    fn finish(self) -> i32 {
        body::crc32_field(self.hasher.finalize())
    }
}
