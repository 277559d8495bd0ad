//! `meridian`: parse the command line, load the config, start the server and wait.

use clap::Parser;
use meridian_server::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its index in the option enum of the mimalloc v3 that
/// libmimalloc-sys 0.1.49 builds (the crate does not export it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc v3's default purge delay, in ms: what the option reads if the index is right.
const MI_PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1000;
/// How long freed memory may stay resident before mimalloc returns it to the OS.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Returns freed memory to the OS after 10 ms instead of mimalloc v3's 1 s (10 s for its
/// arenas). Memory a registration's decode thread or the writer frees stays resident
/// until that thread allocates again, so with the default the bench's memory scenario
/// (1M entries) held 265–280 B per entry of RSS, and 238 B with 10 ms, with lookup
/// throughput and tails unchanged (four alternating runs each). MIMALLOC_PURGE_DELAY, if
/// set, still decides; an option that does not read the known default is left alone.
fn set_allocator_purge_delay() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mimalloc's option getter and setter take and return plain integers.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "meridian",
    version,
    about = "A RocketMQ-compatible NameServer",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Address to serve on (default 0.0.0.0:9876, as Java's NameServer).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// State directory (KV config, lock file); default $HOME/namesrv like Java.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Executors (one per core by default).
    #[arg(long)]
    shards: Option<usize>,
    /// Config file (properties: key=value, Meridian's keys; see README).
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Sets one config key, e.g. --set scanNotActiveBrokerIntervalMs=1000 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the effective config and exit.
    #[arg(short = 'p', long = "print-config")]
    print_config: bool,
    #[command(subcommand)]
    command: Option<CliCommand>,
}

#[derive(clap::Subcommand, Debug)]
enum CliCommand {
    /// Ask running NameServers (Meridian or Java) like RocketMQ's mqadmin, then exit
    Admin(meridian_admin::AdminArgs),
}

/// The config, and the warnings to log once the log subscriber (which the config shapes)
/// is installed.
fn build_config(cli: &Cli) -> Result<(Config, Vec<String>), String> {
    let mut config = Config::default();
    let mut warnings = Vec::new();
    if let Some(path) = &cli.config {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        for key in config.load_properties(&text).map_err(|e| format!("{}: {e}", path.display()))? {
            warnings.push(format!("config {}: unknown key {key} ignored", path.display()));
        }
        // As in Java, the -c file is what UPDATE_NAMESRV_CONFIG rewrites unless the file
        // itself names another configStorePath.
        if config.namesrv.config_store_path.is_none() {
            config.namesrv.config_store_path = Some(path.clone());
        }
    }
    for kv in &cli.set {
        let (k, v) = kv.split_once('=').ok_or_else(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        config.set(k.trim(), v).map_err(|e| e.to_string())?;
    }
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(n) = cli.shards {
        config.shards = n;
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok((config, warnings))
}

/// Exit codes (README "Exit codes"): 0 stopped by SIGTERM/SIGINT (or `-p`, `--version`),
/// 1 could not start, 2 invalid configuration or usage (clap exits 2 for usage errors too).
const EXIT_CANNOT_START: i32 = 1;
const EXIT_INVALID_CONFIG: i32 = 2;

fn main() {
    // THP stays off from the first allocation; the server turns it on once the shards are
    // up if `transparentHugePages` says so (see `Config::transparent_huge_pages`).
    meridian_server::sys::set_thp_disabled(true);
    set_allocator_purge_delay();
    let cli = Cli::parse();
    if let Some(CliCommand::Admin(args)) = &cli.command {
        // A client of running NameServers: no config, no logging, no server.
        std::process::exit(meridian_admin::run(args));
    }
    let (config, warnings) = match build_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meridian: invalid configuration: {e}");
            std::process::exit(EXIT_INVALID_CONFIG);
        }
    };
    // The config decides the log filter and format, so logging starts only now.
    if let Err(e) = meridian_server::logging::init(&config) {
        eprintln!("meridian: invalid configuration: {e}");
        std::process::exit(EXIT_INVALID_CONFIG);
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if cli.print_config {
        // Java's `mqnamesrv -p` prints every key=value; so do we, Java keys and ours.
        for (k, v) in config.properties() {
            println!("{k}={v}");
        }
        return;
    }
    let shards = config.shards;
    let data_dir = config.data_dir.clone();
    let drain = Duration::from_millis(config.shutdown_drain_ms);
    let warm_restart = config.warm_restart;
    let go_away_window =
        if config.shutdown_go_away { Duration::from_millis(config.shutdown_go_away_window_ms) } else { Duration::ZERO };
    // SIGTERM/SIGINT are blocked before any thread exists, so every thread inherits the
    // mask and only this thread receives them, in `wait_for_signal`.
    let stop_signals = meridian_server::sys::block_stop_signals();
    let running = match meridian_server::server::start(config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meridian: cannot start: {e}");
            tracing::error!("cannot start: {e}");
            std::process::exit(EXIT_CANNOT_START);
        }
    };
    if let Some(addr) = running.metrics_addr {
        tracing::info!("metrics on http://{addr}/metrics (also /healthz, /readyz)");
    }
    tracing::info!("meridian listening on {} (shards {shards}, data dir {})", running.local_addr, data_dir.display());
    // Every acknowledged KV or config write is already on disk and route state is rebuilt
    // from broker registrations, so stopping flushes nothing (but the warm-restart routes,
    // when on): it refuses new connections and gives the requests being handled
    // `shutdownDrainMs` to be answered.
    let signal = loop {
        match meridian_server::sys::wait_for_signal(&stop_signals) {
            meridian_server::sys::SIGHUP => running.reload_accounts(),
            stop => break stop,
        }
    };
    running.stop_accepting();
    // Logged only now: whoever reads this line may rely on new connections being refused.
    tracing::info!("received signal {signal}; stopping: no new connections, draining for up to {drain:?}");
    if go_away_window > Duration::ZERO {
        let open = running.connections_open();
        tracing::info!(
            "answering GO_AWAY to clients newer than 5.3.1 for up to {go_away_window:?} ({open} connections open)"
        );
        match running.go_away_window(go_away_window) {
            0 => tracing::info!("every client closed its connection"),
            open => tracing::info!("GO_AWAY window over with {open} connections open"),
        }
    }
    let drain_deadline = Instant::now() + drain;
    match running.drain(drain) {
        0 => tracing::info!("drained: every request being handled was answered; exiting"),
        left => {
            tracing::warn!("shutdownDrainMs {} elapsed with {left} requests unanswered; exiting", drain.as_millis())
        }
    }
    // The one thing a stop writes: the routes for a warm restart, within what is left of
    // shutdownDrainMs (the writer logs where they went).
    if warm_restart {
        if let Err(e) = running.save_warm_restart(drain_deadline) {
            tracing::warn!("warm restart: routes not saved at stop: {e}; the next start reads the last periodic save");
        }
    }
    std::process::exit(0);
}
