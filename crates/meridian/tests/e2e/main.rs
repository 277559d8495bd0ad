//! End-to-end tests: the real `meridian` binary on an ephemeral port, driven over TCP with
//! RocketMQ remoting frames (crates/testkit) or through `meridian admin`. One test binary, so
//! the crate links once; one module per area. Every test starts its own server and ends by
//! itself.

mod admin;
mod admin_cli;
mod bomb;
mod common;
mod metrics;
mod ops;
mod route_diff;
mod security;
mod server;
mod split_registration;
mod warm_restart;
mod watch;
