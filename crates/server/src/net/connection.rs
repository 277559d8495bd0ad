//! One connection: its read buffer (bounded by `frameBytesMax`), the decode loop, and
//! replies tagged with the request's opaque. Handlers only ever see whole frames.
//!
//! Requests on one connection are answered in order, one at a time; a peer pipelining
//! requests simply waits its turn (clients match answers by opaque anyway). Every frame
//! that one read brought in is handled before the replies go out in one write, so a client
//! with 16 lookups in flight costs one read and one write, not sixteen of each. Must not:
//! parse bodies or decide routes.

use crate::config::Config;
use crate::error::CloseReason;
use crate::metrics::counters::CloseCause;
use crate::request::dispatch;
use crate::request::register::Effects;
use crate::route::writer::RouteUpdate;
use crate::route::ConnId;
use crate::shard::state::ShardState;
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use meridian_protocol::answer::Answer;
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

    let mut rbuf = ReadBuffer::new();
    let mut out = Replies::new(shard);
    let peer_ip = peer.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
    let mut session =
        Session { conn, peer: &peer, peer_ip, effects: Effects::default(), header_bytes: Vec::with_capacity(256) };
    let reason = 'conn: loop {
        // Every whole frame already buffered, then the replies in one write.
        loop {
            let frame = match rbuf.next_frame(config) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(why) => break 'conn why,
            };
            if let Err(why) = session.handle(shard, &mut stream, frame, &mut out).await {
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
        match rbuf.read_more(&mut stream, shard).await {
            Ok(None) => {}
            // A frame too large for the read buffer, read into its own.
            Ok(Some(frame)) => {
                if let Err(why) = session.handle(shard, &mut stream, frame, &mut out).await {
                    break why;
                }
            }
            Err(why) => break why,
        }
    };
    shard.untrack_fd(conn);
    shard.metrics.closed(close_cause(&reason));
    if matches!(reason, CloseReason::PeerClosed) {
        tracing::debug!(conn = conn.0, "{peer} closed");
    } else if shard.peer_warning_admitted() {
        // A peer breaking the protocol is worth a warning; timeouts and resets happen.
        if reason.is_protocol_error() {
            tracing::warn!(conn = conn.0, "closing {peer}: {reason}");
        } else {
            tracing::info!(conn = conn.0, "closing {peer}: {reason}");
        }
    }
    if session.effects.registered_broker {
        shard.send(RouteUpdate::ConnectionClosed { conn }).await;
    }
}

/// The metrics cause of a connection's end.
fn close_cause(reason: &CloseReason) -> CloseCause {
    match reason {
        CloseReason::PeerClosed | CloseReason::ReadFailed(_) => CloseCause::PeerClosed,
        CloseReason::IdleTimeout { .. } => CloseCause::IdleTimeout,
        CloseReason::WriteFailed { .. } => CloseCause::WriteFailed,
        CloseReason::PeerClosedMidFrame { .. } | CloseReason::InvalidFrame(_) | CloseReason::UndecodableHeader(_) => {
            CloseCause::ProtocolError
        }
    }
}

/// A read error as the reason to close.
fn read_failed(e: std::io::Error, config: &Config) -> CloseReason {
    if e.kind() == std::io::ErrorKind::TimedOut {
        CloseReason::IdleTimeout { idle_timeout_ms: config.connection_idle_timeout_ms }
    } else {
        CloseReason::ReadFailed(e)
    }
}

/// One whole request frame, decoded.
struct InFrame<'s> {
    header: Header,
    body: Bytes,
    /// The body's CRC as `bodyCrc32` carries it (a large frame's computed while it arrived).
    body_crc32: i32,
    /// Held by a large frame until it is handled (the shard's in-flight byte semaphore).
    _permit: Option<glommio::sync::Permit<'s>>,
    /// A large frame's receive time, from its first byte to its last (see `read_large_frame`).
    received: Option<Duration>,
}

/// The header of the whole frame `whole` (`frame_bytes` long) and its body's range.
fn decode_header(whole: &[u8], frame_bytes: usize) -> Result<(Header, std::ops::Range<usize>), CloseReason> {
    let parts = frame::split(whole, frame_bytes);
    let header =
        Header::decode(parts.serialize_type, &whole[parts.header.clone()]).map_err(CloseReason::UndecodableHeader)?;
    Ok((header, parts.body))
}

/// The connection's read buffer: unhandled bytes are `buf[start..end]`. It starts small
/// (`READ_BUFFER_BYTES_MIN`), grows to `READ_BUFFER_BYTES_MAX` when a frame or a read needs
/// room, and shrinks back after `SMALL_READS_BEFORE_SHRINK` small reads in a row.
struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    small_reads: u32,
}

impl ReadBuffer {
    fn new() -> ReadBuffer {
        ReadBuffer { buf: vec![0u8; READ_BUFFER_BYTES_MIN], start: 0, end: 0, small_reads: 0 }
    }

    /// The next whole frame already buffered, if any.
    fn next_frame(&mut self, config: &Config) -> Result<Option<InFrame<'static>>, CloseReason> {
        let buffered = &self.buf[self.start..self.end];
        let frame_bytes = match frame::check(buffered, config.frame_bytes_max, config.header_bytes_max) {
            Ok(n) => n,
            Err(FrameError::Incomplete) => return Ok(None),
            Err(FrameError::Invalid(why)) => return Err(CloseReason::InvalidFrame(why)),
        };
        let (header, body) = decode_header(buffered, frame_bytes)?;
        let body = Bytes::copy_from_slice(&buffered[body]);
        self.start += frame_bytes;
        // Bodies this small (at most the 64 KiB buffer) cost microseconds to hash.
        let body_crc32 = body::body_crc32(&body);
        Ok(Some(InFrame { header, body, body_crc32, _permit: None, received: None }))
    }

    /// Reads more bytes into the buffer (`None`), or, when the frame at its front is larger
    /// than the buffer can be, that whole frame into a buffer of its own (`Some`).
    async fn read_more<'s>(
        &mut self,
        stream: &mut TcpStream,
        shard: &'s ShardState,
    ) -> Result<Option<InFrame<'s>>, CloseReason> {
        let config = &shard.config;
        self.compact();
        let frame_bytes = match frame::peek_frame_len(&self.buf[..self.end], config.frame_bytes_max) {
            Ok(n) => Some(n),
            Err(FrameError::Incomplete) => None,
            Err(FrameError::Invalid(why)) => return Err(CloseReason::InvalidFrame(why)),
        };
        if frame_bytes.is_some_and(|n| n > self.buf.len() && n <= READ_BUFFER_BYTES_MAX) {
            self.grow();
        }
        if let Some(frame_bytes) = frame_bytes.filter(|&n| n > self.buf.len()) {
            let (whole, body_crc32, permit, received) =
                read_large_frame(stream, shard, &self.buf[..self.end], frame_bytes).await?;
            (self.start, self.end) = (0, 0);
            if let Err(FrameError::Invalid(why)) = frame::check(&whole, config.frame_bytes_max, config.header_bytes_max)
            {
                return Err(CloseReason::InvalidFrame(why));
            }
            let (header, body) = decode_header(&whole, frame_bytes)?;
            let body = whole.slice(body);
            return Ok(Some(InFrame { header, body, body_crc32, _permit: permit, received: Some(received) }));
        }
        match stream.read(&mut self.buf[self.end..]).await {
            Ok(0) if self.end == 0 => Err(CloseReason::PeerClosed),
            Ok(0) => Err(CloseReason::PeerClosedMidFrame { buffered_bytes: self.end }),
            Ok(n) => {
                self.filled(n);
                Ok(None)
            }
            Err(e) => Err(read_failed(e, config)),
        }
    }

    /// Keeps the partial frame at the front.
    fn compact(&mut self) {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
    }

    /// After a read of `n` bytes: grows a buffer the read filled (more is likely waiting),
    /// shrinks one that has been mostly empty for a while.
    fn filled(&mut self, n: usize) {
        let room = self.buf.len() - self.end;
        self.end += n;
        if n == room && self.buf.len() < READ_BUFFER_BYTES_MAX {
            self.grow();
            self.small_reads = 0;
        } else if self.buf.len() > READ_BUFFER_BYTES_MIN && self.end <= READ_BUFFER_BYTES_MIN / 2 {
            self.small_reads += 1;
            if self.small_reads >= SMALL_READS_BEFORE_SHRINK {
                let mut small = vec![0u8; READ_BUFFER_BYTES_MIN];
                small[..self.end].copy_from_slice(&self.buf[..self.end]);
                self.buf = small;
                self.small_reads = 0;
            }
        } else {
            self.small_reads = 0;
        }
    }

    /// Replaces the buffer by a zeroed one of `READ_BUFFER_BYTES_MAX`, keeping its bytes
    /// (the caller has compacted it).
    fn grow(&mut self) {
        let mut big = vec![0u8; READ_BUFFER_BYTES_MAX];
        big[..self.end].copy_from_slice(&self.buf[..self.end]);
        self.buf = big;
    }
}

/// What a connection keeps between requests.
struct Session<'p> {
    conn: ConnId,
    /// The peer's address, for the per-request debug line.
    peer: &'p str,
    /// The peer's IP address, for access control's allow-lists.
    peer_ip: Option<std::net::IpAddr>,
    effects: Effects,
    /// The encoded response header, reused so a lookup allocates no header buffer.
    header_bytes: Vec<u8>,
}

impl Session<'_> {
    /// Handles one request, appending its reply (if any) to `out`. Requests the writer must
    /// answer first flush the replies gathered so far, so they do not wait behind it.
    async fn handle(
        &mut self,
        shard: &ShardState,
        stream: &mut TcpStream,
        frame: InFrame<'_>,
        out: &mut Replies<'_>,
    ) -> Result<(), CloseReason> {
        // The permit is held until the request is handled; the body moves on to dispatch.
        let InFrame { header, body, body_crc32, _permit, received } = frame;
        let (conn, header) = (self.conn, &header);
        if let (codes::REGISTER_BROKER, Some(received)) = (header.code, received) {
            shard.metrics.registration_received(received);
        }
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
        tracing::debug!(conn = conn.0, opaque = header.opaque, "request code={} from {}", header.code, self.peer);
        let started = std::time::Instant::now();
        let answer = if go_away(shard, header) {
            tracing::debug!(conn = conn.0, opaque = header.opaque, "shutting down: GO_AWAY to {}", self.peer);
            Answer::error(codes::GO_AWAY, "please go away")
        } else {
            dispatch::handle(shard, conn, self.peer_ip, header, body, body_crc32, &mut self.effects).await
        };
        shard.metrics.request(header.code, answer.code, started.elapsed());
        if header.is_oneway() {
            return Ok(());
        }
        let ext: Option<Vec<(&str, &str)>> =
            answer.ext_fields.as_ref().map(|v| v.iter().map(|(k, v)| (*k, v.as_str())).collect());
        self.header_bytes.clear();
        HeaderOut::response(answer.code, header.opaque, answer.remark.as_deref(), ext.as_deref())
            .encode(SerializeType::Json, &mut self.header_bytes);
        frame::encode(&mut out.bytes, SerializeType::Json, &self.header_bytes, &answer.body);
        Ok(())
    }
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
    async fn flush(&mut self, stream: &mut TcpStream) -> Result<(), CloseReason> {
        if !self.bytes.is_empty() {
            if let Err(cause) = stream.write_all(&self.bytes).await {
                return Err(CloseReason::WriteFailed { cause, reply_write_timeout_ms: self.reply_write_timeout_ms });
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
/// after its last byte. Also returns how long the frame took to arrive: from this call,
/// made as soon as the frames before it in the read that brought its length prefix (its
/// first bytes, unless the prefix itself was split) are handled, to its last byte.
async fn read_large_frame<'s>(
    stream: &mut TcpStream,
    shard: &'s ShardState,
    buffered: &[u8],
    frame_bytes: usize,
) -> Result<(Bytes, i32, Option<glommio::sync::Permit<'s>>, Duration), CloseReason> {
    let started = std::time::Instant::now();
    let config = &shard.config;
    let permit = if frame_bytes >= LARGE_FRAME_BYTES_MIN {
        Some(
            shard
                .inflight
                .acquire_permit(frame_bytes as u64)
                .await
                .expect("the shard semaphore is never closed, and frameBytesMax <= its size (Config::validate)"),
        )
    } else {
        None
    };
    // The shard's kept buffer when it is large enough (no page faults), filled by reads.
    let mut whole = shard.frame_buffers.take(frame_bytes);
    whole[..buffered.len()].copy_from_slice(buffered);
    let mut filled = buffered.len();
    let mut crc = BodyCrc::default();
    crc.update(&whole[..filled]).await;
    while filled < frame_bytes {
        let until = (filled + READ_CHUNK_BYTES_MAX).min(frame_bytes);
        match stream.read(&mut whole[filled..until]).await {
            Ok(0) => return Err(CloseReason::PeerClosedMidFrame { buffered_bytes: filled }),
            Ok(n) => {
                filled += n;
                crc.update(&whole[..filled]).await;
            }
            Err(e) => return Err(read_failed(e, config)),
        }
    }
    Ok((shard.frame_buffers.frame(whole), crc.finish(), permit, started.elapsed()))
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
