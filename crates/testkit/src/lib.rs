//! Test support shared by the end-to-end tests (crates/meridian/tests/e2e), loadgen's tests
//! and the micro-benchmarks: realistic topic names, a spawner for the real `meridian` binary,
//! a blocking client that encodes requests itself, and loaders for the vendored golden frames.
//!
//! The client encodes request headers on its own (serde_json for JSON, a few lines for the
//! ROCKETMQ binary form) rather than with Meridian's encoder, so a codec bug cannot cancel
//! itself out between request and answer. Must not: depend on meridian-server (the server
//! is only ever run as a child process), sleep to synchronise (poll with a deadline), or
//! leave a process or a directory behind. The binary's path is always passed in by the
//! caller (`env!("CARGO_BIN_EXE_meridian")` in the crate that builds it).

pub mod client;
pub mod golden;
pub mod log;
pub mod server;
pub mod temp;
pub mod topics;
pub mod wire;

pub use client::{Client, Closed, IO_TIMEOUT};
pub use golden::{golden_dir, golden_lines, hex_decode};
pub use server::{Exited, Server, ServerOptions, START_DEADLINE};
pub use temp::{poll_until, TempDir, POLL_DEADLINE};
pub use wire::{
    frame, header_json, read_frame, read_request_opaque, split_frame, without_opaque, Reply, Request, FLAG_ONEWAY,
    FLAG_RESPONSE, SERIALIZE_JSON, SERIALIZE_ROCKETMQ,
};
