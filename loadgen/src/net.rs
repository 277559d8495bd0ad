//! Sockets on a glommio executor: a connection shared by a reader and a writer task, a
//! reusable read buffer, a task-local notification, and `RpcConn`, the one-request-at-a-
//! time connection brokers and probes use.
//!
//! Must not: know request semantics beyond framing and opaque matching.

use crate::wire::{self, RequestStyle};
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use meridian_protocol::codes;
use meridian_protocol::header::Header;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::Duration;

/// Initial read buffer per connection; grows only for an answer frame larger than this.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Runs `future`, or gives up after `limit` with `Err(())`. Dropping a pending read or
/// write is safe here: glommio's non-buffered streams poll for readiness and then call
/// recv/send directly, so the kernel never holds one of our buffers.
pub async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Result<T, ()> {
    futures_lite::future::or(async { Ok(future.await) }, async {
        glommio::timer::sleep(limit).await;
        Err(())
    })
    .await
}

/// A TCP connection that a reader task and a writer task use at the same time. Each poll
/// borrows the stream only for the duration of that poll, never across an await.
pub struct Conn {
    stream: RefCell<TcpStream>,
    pub peer: SocketAddr,
}

/// Largest single write: a multi-MB registration is copied into the socket in slices, so
/// the lookups sharing the executor are sent and read between them, not after all of it.
const WRITE_CHUNK_BYTES_MAX: usize = 256 * 1024;

impl Conn {
    pub async fn connect(peer: SocketAddr, limit: Duration) -> Result<Conn, String> {
        let stream = match within(limit, TcpStream::connect(peer)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("connect {peer}: {e}")),
            Err(()) => return Err(format!("connect {peer}: no answer within {} ms", limit.as_millis())),
        };
        // Requests are small and latency is what we measure: never wait for Nagle.
        stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY on {peer}: {e}"))?;
        Ok(Conn { stream: RefCell::new(stream), peer })
    }

    /// Wraps an accepted stream (the echo server's side).
    pub fn from_stream(stream: TcpStream, peer: SocketAddr) -> Result<Conn, String> {
        stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY on {peer}: {e}"))?;
        Ok(Conn { stream: RefCell::new(stream), peer })
    }

    pub async fn read(&self, buf: &mut ReadBuf) -> io::Result<usize> {
        let spare = buf.spare();
        let n =
            futures_lite::future::poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, spare)).await?;
        buf.filled_by(n);
        Ok(n)
    }

    pub async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let chunk = &bytes[..bytes.len().min(WRITE_CHUNK_BYTES_MAX)];
            let n = futures_lite::future::poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, chunk))
                .await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes"));
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Goes on over `fresh`'s socket (the old one closes). Callers make sure no write of
    /// the old socket is half done, or its rest would land on the new one.
    pub fn replace_with(&self, fresh: Conn) {
        *self.stream.borrow_mut() = fresh.stream.into_inner();
    }

    /// Whether the peer has closed the connection (or it failed), seen without reading:
    /// a non-blocking peek. For a connection with no answer pending, as a broker's between
    /// calls; a Netty client learns the same from its channel going inactive.
    pub fn peer_closed(&self) -> bool {
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&*self.stream.borrow());
        let mut byte = 0u8;
        // SAFETY: a 1-byte recv into a local on the stream's own open fd; MSG_PEEK leaves
        // the data in the socket and MSG_DONTWAIT never blocks.
        let n = unsafe { libc::recv(fd, (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        match n {
            0 => true,
            n if n > 0 => false,
            _ => !matches!(io::Error::last_os_error().kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted),
        }
    }

    /// Ends both directions now; a pending read in another task then sees EOF or an error.
    pub fn shutdown(&self) {
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&*self.stream.borrow());
        // SAFETY: the fd belongs to the stream we own and is open until the stream drops;
        // shutdown only ends its I/O.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

/// A read buffer zeroed once and reused: bytes `start..end` are unread.
pub struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf { data: vec![0; READ_BUFFER_BYTES], start: 0, end: 0 }
    }
}

impl ReadBuf {
    pub fn unread(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        assert!(n <= self.end - self.start, "consume {n} of {} unread bytes", self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space to read into, after moving unread bytes to the front if that helps and
    /// growing the buffer when the frame at the front is larger than it.
    fn spare(&mut self) -> &mut [u8] {
        let unread = self.end - self.start;
        let mut needed = unread + 1;
        if unread >= 4 {
            let prefix = [
                self.data[self.start],
                self.data[self.start + 1],
                self.data[self.start + 2],
                self.data[self.start + 3],
            ];
            // frame::check has already refused lengths above ANSWER_FRAME_BYTES_MAX.
            let frame_bytes = (u32::from_be_bytes(prefix) as usize).saturating_add(4);
            needed = needed.max(frame_bytes.min(wire::ANSWER_FRAME_BYTES_MAX as usize));
        }
        if self.data.len() - self.start < needed || self.start > self.data.len() / 2 {
            self.data.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = unread;
        }
        if self.data.len() < needed {
            self.data.resize(needed.next_power_of_two(), 0);
        }
        &mut self.data[self.end..]
    }

    fn filled_by(&mut self, n: usize) {
        assert!(self.end + n <= self.data.len());
        self.end += n;
    }
}

/// Wakes one waiting task of the same executor; cheap when nobody waits.
#[derive(Default)]
pub struct LocalNotify {
    set: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl LocalNotify {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    pub async fn wait(&self) {
        futures_lite::future::poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// An answer as `RpcConn` returns it.
pub struct Answer {
    pub header: Header,
    pub body: Vec<u8>,
}

/// A connection that sends one request and waits for its answer before the next, as a
/// broker's registration, heartbeat and unregister calls do. After a timeout or an I/O
/// error the connection is unusable (a frame may be half-written), so callers reconnect;
/// Java peers close it in that case too (`NettyRemotingClient.invokeSync` closes the channel
/// on a send error, and on a timeout with `clientCloseSocketIfTimeout`).
pub struct RpcConn {
    conn: Conn,
    buf: ReadBuf,
    next_opaque: i32,
    style: RequestStyle,
    broken: bool,
    frame: Vec<u8>,
}

impl RpcConn {
    pub async fn connect(peer: SocketAddr, style: RequestStyle, limit: Duration) -> Result<RpcConn, String> {
        let conn = Conn::connect(peer, limit).await?;
        Ok(RpcConn { conn, buf: ReadBuf::default(), next_opaque: 1, style, broken: false, frame: Vec::new() })
    }

    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    pub fn is_broken(&self) -> bool {
        self.broken || self.conn.peer_closed()
    }

    fn take_opaque(&mut self) -> i32 {
        let opaque = self.next_opaque;
        self.next_opaque = self.next_opaque.checked_add(1).unwrap_or(1);
        opaque
    }

    /// Sends a request and waits at most `limit` for its answer.
    pub async fn call(
        &mut self,
        code: i32,
        ext: &[(&str, &str)],
        body: &[u8],
        limit: Duration,
    ) -> Result<Answer, String> {
        if self.broken {
            return Err(format!("connection to {} is closed after an earlier failure", self.conn.peer));
        }
        let opaque = self.take_opaque();
        self.frame.clear();
        wire::encode_request(&mut self.frame, self.style, code, opaque, false, ext, body);
        let peer = self.conn.peer;
        let outcome = within(limit, async {
            self.conn.write_all(&self.frame).await.map_err(|e| format!("write to {peer}: {e}"))?;
            loop {
                if let Some((frame, n)) =
                    wire::next_frame(self.buf.unread()).map_err(|e| format!("from {peer}: {e}"))?
                {
                    let header = wire::decode_answer_header(&frame).map_err(|e| format!("from {peer}: {e}"))?;
                    let body = frame.body.to_vec();
                    self.buf.consume(n);
                    if header.opaque == opaque {
                        return Ok(Answer { header, body });
                    }
                    // An answer to nothing we are waiting for: ignore it, as Java does.
                    continue;
                }
                match self.conn.read(&mut self.buf).await {
                    Ok(0) => return Err(format!("{peer} closed the connection")),
                    Ok(_) => {}
                    Err(e) => return Err(format!("read from {peer}: {e}")),
                }
            }
        })
        .await;
        let result = match outcome {
            Ok(result) => result,
            Err(()) => {
                let request = codes::request_name(code).unwrap_or("unknown request");
                Err(format!("no answer from {peer} within {} ms (code {code} {request})", limit.as_millis()))
            }
        };
        if result.is_err() {
            self.broken = true;
            self.conn.shutdown();
        }
        result
    }

    /// Sends a oneway request (flag bit 1): the server answers nothing.
    pub async fn oneway(
        &mut self,
        code: i32,
        ext: &[(&str, &str)],
        body: &[u8],
        limit: Duration,
    ) -> Result<(), String> {
        if self.broken {
            return Err(format!("connection to {} is closed after an earlier failure", self.conn.peer));
        }
        let opaque = self.take_opaque();
        self.frame.clear();
        wire::encode_request(&mut self.frame, self.style, code, opaque, true, ext, body);
        let peer = self.conn.peer;
        let result = match within(limit, self.conn.write_all(&self.frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write to {peer}: {e}")),
            Err(()) => Err(format!("write to {peer} blocked for {} ms", limit.as_millis())),
        };
        if result.is_err() {
            self.broken = true;
            self.conn.shutdown();
        }
        result
    }

    /// Closes the connection now (a NameServer unregisters a broker whose connection closes).
    pub fn close(self) {
        self.conn.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_compacts_and_grows() {
        let mut buf = ReadBuf::default();
        // Pretend a 10-byte read, consume 6.
        buf.spare()[..10].copy_from_slice(&[0, 0, 0, 6, 1, 2, 3, 4, 5, 6]);
        buf.filled_by(10);
        buf.consume(6);
        assert_eq!(buf.unread(), &[3, 4, 5, 6]);
        // A frame announcing 200,000 bytes forces growth beyond the initial size.
        let mut buf = ReadBuf::default();
        buf.spare()[..4].copy_from_slice(&200_000u32.to_be_bytes());
        buf.filled_by(4);
        assert!(buf.spare().len() >= 200_000);
        assert_eq!(buf.unread(), &200_000u32.to_be_bytes());
        buf.consume(4);
        assert!(buf.unread().is_empty());
    }
}
