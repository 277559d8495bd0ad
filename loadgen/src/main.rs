//! `meridian-loadgen`: drives any RocketMQ NameServer (Meridian, Java, rocketmq-rust) as
//! simulated brokers and clients, and reports latency (HDR), throughput and errors.
//!
//! Modules, in the order data flows:
//! - [`cli`]: flags, one subcommand per scenario.
//! - [`workload`], [`rng`]: the simulated cluster (topics, broker groups, bodies) and topic
//!   popularity, all from a seed; [`split`]: how a broker cuts a round into chunks;
//!   [`spread`]: the scale scenario's layout (T topics per broker, 2..=10 brokers per topic).
//! - [`scenario`]: per-scenario scripts on the workers, and the main thread's loop.
//! - [`runtime`], [`ctx`]: worker threads (glommio executors, placement, the waker
//!   thread), and what they share.
//! - [`client`], [`broker`], [`probe`]: client connections (pipelined, open or closed loop),
//!   broker instances, visibility probes.
//! - [`propagation`]: churn's watching and polling clients, timing route changes as
//!   clients receive them.
//! - [`net`], [`wire`]: sockets, framing and answer checks, on top of `meridian_protocol`.
//! - [`stats`], [`cpu`], [`output`]: what is measured and how it is shown.
//! - [`echo`]: the trivial server that measures loadgen's own ceiling.
//!
//! Only `meridian_protocol` is used from Meridian, never its route or shard internals, so
//! loadgen tests any NameServer the same way.

mod broker;
mod cli;
mod client;
mod cpu;
mod ctx;
mod echo;
mod net;
mod output;
mod probe;
mod propagation;
mod rng;
mod runtime;
mod scenario;
mod split;
mod spread;
mod stats;
mod wire;
mod workload;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    // Before any request is encoded: every request is then signed.
    match cli.command.target().map(|target| target.auth.credentials()).transpose() {
        Ok(credentials) => wire::sign_with(credentials.flatten()),
        Err(e) => {
            eprintln!("meridian-loadgen: {e}");
            std::process::exit(2);
        }
    }
    let code = match cli.command {
        cli::Command::EchoServer(args) => echo::run(args),
        command => scenario::run(command),
    };
    std::process::exit(code);
}
