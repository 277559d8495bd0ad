//! The scenarios (`lookup`, `register`, `storm`, `churn`, `connections`, `scale`): turning
//! flags into a `Plan` (`plan`), the per-worker script of each scenario (`workers`; `scale`
//! has its own, and is every worker's entry point), and the main
//! thread's loop (`monitor`: progress, Ctrl-C, merging reports, the final table, JSON and
//! HDR output).
//!
//! Every scenario runs: setup (brokers register, connections open) → barrier → the load
//! phase, bounded by `--duration` and `--requests` → drain → barrier → teardown (brokers
//! unregister). Must not: decode frames or pick topics itself (client.rs, broker.rs do).
//! `plan` is a leaf; `monitor` uses `plan` and `scale`; `scale` uses `plan` and `workers`;
//! `workers` uses `plan`.

mod monitor;
mod plan;
mod scale;
mod workers;

use crate::cli::Command;

pub use plan::parse_targets;

/// Runs a scenario subcommand; returns the process exit code.
pub fn run(command: Command) -> i32 {
    match plan::prepare(command) {
        Ok(prepared) => monitor::execute(prepared),
        Err(e) => {
            eprintln!("meridian-loadgen: {e}");
            2
        }
    }
}
