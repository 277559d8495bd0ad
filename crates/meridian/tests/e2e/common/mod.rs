//! What only the end-to-end tests share: the binary under test, request and body builders
//! (`builders`) and running `meridian admin` (`cli`). The server spawner, client and frame
//! helpers are in meridian-testkit. Must not: duplicate testkit.

pub mod builders;
pub mod cli;

use meridian_testkit::{Server, ServerOptions};

/// The `meridian` binary cargo built for these tests.
pub const MERIDIAN_BIN: &str = env!("CARGO_BIN_EXE_meridian");

/// The default options for the binary under test.
pub fn options() -> ServerOptions {
    ServerOptions::new(MERIDIAN_BIN)
}

/// Starts a server with the default options plus `--set` arguments.
pub fn server(sets: &[&str]) -> Server {
    Server::start_with(options().sets(sets))
}
