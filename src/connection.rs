//! One connection: its read buffer (bounded by `frame_bytes_max`), the decode loop, and
//! replies tagged with the request's opaque. Handlers only ever see whole frames.
//!
//! Requests on one connection are answered in order, one at a time; a peer pipelining
//! requests simply waits its turn (clients match answers by opaque anyway). Must not:
//! parse bodies or decide routes.

use crate::handler::{self, Effects};
use crate::protocol::frame::{self, FrameError, SerializeType};
use crate::protocol::header::{Header, HeaderOut};
use crate::route::writer::RouteUpdate;
use crate::shard::ShardState;
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::os::unix::io::AsRawFd;
use std::time::Duration;

/// Bytes asked of the socket per read while frames are small.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Largest single read into a big frame's buffer.
const READ_CHUNK_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Frames above this size hold permits of the shard's in-flight byte semaphore while they
/// are read, decoded and applied; smaller ones are bounded by the connection count.
const LARGE_FRAME_BYTES_MIN: usize = 64 * 1024;

pub async fn serve(mut stream: TcpStream, peer: String, shard: &ShardState) {
    let conn = shard.next_conn_id();
    let config = &shard.config;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(config.connection_idle_timeout_ms)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(config.reply_write_timeout_ms)));
    shard.track_fd(conn, stream.as_raw_fd());
    tracing::debug!(shard = shard.id, conn = conn.0, "accepted {peer}");

    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // The encoded response header, reused so a lookup allocates no header buffer.
    let mut header_bytes: Vec<u8> = Vec::with_capacity(256);
    let mut effects = Effects::default();
    // Permits for the large frame being read, held until it has been handled.
    let mut permit: Option<glommio::sync::Permit> = None;

    let reason: String = loop {
        match frame::check(&buf, config.frame_bytes_max, config.header_bytes_max) {
            Ok(frame_bytes) => {
                let f = frame::parse(&mut buf, frame_bytes);
                let header = match Header::decode(f.serialize_type, &f.header) {
                    Ok(h) => h,
                    Err(e) => break format!("undecodable header: {e}"),
                };
                tracing::debug!(conn = conn.0, opaque = header.opaque, "request code={} from {peer}", header.code);
                if header.is_response() {
                    // Java logs and drops answers nobody asked for; we never send requests.
                    tracing::debug!(conn = conn.0, "ignoring a response frame (opaque {})", header.opaque);
                    permit = None;
                    continue;
                }
                let answer = handler::handle(shard, conn, &header, f.body, &mut effects).await;
                permit = None;
                if header.is_oneway() {
                    continue;
                }
                out.clear();
                let ext: Option<Vec<(&str, &str)>> =
                    answer.ext_fields.as_ref().map(|v| v.iter().map(|(k, v)| (*k, v.as_str())).collect());
                header_bytes.clear();
                HeaderOut::response(answer.code, header.opaque, answer.remark.as_deref(), ext.as_deref())
                    .encode(SerializeType::Json, &mut header_bytes);
                frame::encode(&mut out, SerializeType::Json, &header_bytes, &answer.body);
                if let Err(e) = stream.write_all(&out).await {
                    break format!("write failed ({e}); reply_write_timeout_ms {}", config.reply_write_timeout_ms);
                }
                if out.capacity() > READ_CHUNK_BYTES_MAX {
                    out = Vec::with_capacity(4096); // do not keep a huge reply buffer per idle connection
                }
            }
            Err(FrameError::Invalid(why)) => break why,
            Err(FrameError::Incomplete) => {
                let mut want = READ_CHUNK_BYTES;
                if let Ok(frame_bytes) = frame::peek_frame_len(&buf, config.frame_bytes_max) {
                    if frame_bytes >= LARGE_FRAME_BYTES_MIN && permit.is_none() {
                        permit = Some(shard.inflight.acquire_permit(frame_bytes as u64).await.expect(
                            "the shard semaphore is never closed, and frame_bytes_max <= its size (Config::validate)",
                        ));
                        buf.reserve(frame_bytes - buf.len());
                    }
                    want = (frame_bytes - buf.len()).clamp(READ_CHUNK_BYTES, READ_CHUNK_BYTES_MAX);
                }
                let start = buf.len();
                buf.resize(start + want, 0);
                match stream.read(&mut buf[start..]).await {
                    Ok(0) => {
                        buf.truncate(start);
                        if buf.is_empty() {
                            break "peer closed".to_string();
                        }
                        break format!("peer closed in the middle of a frame ({} bytes buffered)", buf.len());
                    }
                    Ok(n) => buf.truncate(start + n),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        break format!("idle for connection_idle_timeout_ms {}", config.connection_idle_timeout_ms)
                    }
                    Err(e) => break format!("read failed: {e}"),
                }
            }
        }
    };
    shard.untrack_fd(conn);
    drop(permit);
    if reason == "peer closed" {
        tracing::debug!(conn = conn.0, "{peer} closed");
    } else {
        tracing::info!(conn = conn.0, "closing {peer}: {reason}");
    }
    if effects.registered_broker {
        shard.send(RouteUpdate::ConnectionClosed { conn }).await;
    }
}
