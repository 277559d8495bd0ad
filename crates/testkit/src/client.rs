//! A blocking connection to a server with read and write timeouts and a bounded answer size.
//! Must not: hang on a read longer than `IO_TIMEOUT`.

use crate::wire::{header_json, read_frame, split_frame, Reply, Request, FLAG_RESPONSE};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Socket read/write timeout of test clients: a test never hangs longer on one read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer a test accepts; a larger length prefix means the stream is garbage.
const REPLY_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How a read on a connection the server should have closed ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// EOF or a reset: the server closed the connection.
    Yes,
    /// The server sent this many bytes instead.
    SentData(usize),
    /// Nothing happened within the read timeout.
    TimedOut,
}

/// A blocking connection to a server, with read and write timeouts.
pub struct Client {
    stream: TcpStream,
    opaque_next: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set_read_timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set_write_timeout");
        stream.set_nodelay(true).expect("set_nodelay");
        Client { stream, opaque_next: 1 }
    }

    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("local_addr").port()
    }

    /// Writes the request; returns the opaque it carries.
    pub fn send(&mut self, request: &Request) -> i32 {
        self.try_send(request).unwrap_or_else(|e| panic!("writing a request with code {}: {e}", request.code))
    }

    pub fn try_send(&mut self, request: &Request) -> io::Result<i32> {
        let opaque = request.opaque.unwrap_or_else(|| {
            let o = self.opaque_next;
            self.opaque_next += 1;
            o
        });
        self.stream.write_all(&request.encode(opaque))?;
        Ok(opaque)
    }

    /// Sends a request and reads one answer, reporting I/O failures instead of panicking
    /// (for connections the server may have refused).
    pub fn try_call(&mut self, request: &Request) -> io::Result<Reply> {
        let opaque = self.try_send(request)?;
        let reply = self.read_reply()?;
        assert_eq!(reply.opaque(), opaque, "answer to code {} carries another opaque: {}", request.code, reply.header);
        Ok(reply)
    }

    /// Reads one whole frame.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let whole = read_frame(&mut self.stream, REPLY_FRAME_BYTES_MAX)?;
        let (serialize_type, header_bytes, body) = split_frame(&whole);
        Ok(Reply { serialize_type, header: header_json(serialize_type, &header_bytes), header_bytes, body })
    }

    /// Sends a request and reads its answer, checking the opaque and the response flag.
    pub fn call(&mut self, request: &Request) -> Reply {
        let opaque = self.send(request);
        let reply = self.read_reply().unwrap_or_else(|e| panic!("no answer to code {}: {e}", request.code));
        assert_eq!(reply.opaque(), opaque, "answer to code {} carries another opaque: {}", request.code, reply.header);
        assert_eq!(reply.flag() & FLAG_RESPONSE, FLAG_RESPONSE, "answer without the response flag: {}", reply.header);
        reply
    }

    /// Writes raw bytes; errors are returned (the server may already have closed).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads until the server closes the connection, it sends something, or the read
    /// timeout passes.
    pub fn read_until_closed(&mut self) -> Closed {
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => Closed::Yes,
            Ok(n) => Closed::SentData(n),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Closed::TimedOut,
            Err(_) => Closed::Yes,
        }
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).expect("set_read_timeout");
    }

    /// Stops sending; the server sees EOF once it has read what was sent.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
