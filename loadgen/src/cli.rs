//! The command line: one subcommand per scenario plus `echo-server`, built from shared
//! flag groups. Every struct is `Serialize`, so `--json` records the full configuration.
//!
//! Must not: validate relationships between flags (scenario setup does, with messages that
//! name the flags).

use crate::broker::HeartbeatKind;
use crate::rng::Popularity;
use crate::workload::{BodyEncodingKind, BrokerVersion, TopicNames};
use clap::{Args, Parser, Subcommand, ValueEnum};
use meridian_protocol::acl::Credentials;
use serde::{Serialize, Serializer};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "meridian-loadgen",
    version,
    about = "Load generator for RocketMQ NameServers (Meridian, Java, rocketmq-rust): simulated brokers and clients",
    after_help = "Every run is bounded by --duration (and --requests); targets must be loopback unless --allow-remote."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Route lookups (GET_ROUTEINFO_BY_TOPIC) from C connections × K in flight, with brokers registered.
    Lookup(LookupArgs),
    /// One big registration per broker: time to answer and time until visible on every target.
    Register(RegisterArgs),
    /// Lookups, first quiet, then while brokers re-register at a high rate: p99 with vs without.
    Storm(StormArgs),
    /// Brokers appear and disappear during lookups: time until clients see each change.
    Churn(ChurnArgs),
    /// Many idle connections held open while lookups run on others.
    Connections(ConnectionsArgs),
    /// B brokers × T topics loaded from empty, then open-loop lookups, first quiet, then while
    /// every broker re-registers once per period with a fraction of its topics changed.
    Scale(ScaleArgs),
    /// A trivial server answering every request with one pre-encoded answer (the loadgen ceiling).
    EchoServer(EchoArgs),
}

impl Command {
    /// The targets of a scenario (`None` for the echo server, which sends no requests).
    pub fn target(&self) -> Option<&TargetArgs> {
        match self {
            Command::Lookup(a) => Some(&a.target),
            Command::Register(a) => Some(&a.target),
            Command::Storm(a) => Some(&a.target),
            Command::Churn(a) => Some(&a.target),
            Command::Connections(a) => Some(&a.target),
            Command::Scale(a) => Some(&a.target),
            Command::EchoServer(_) => None,
        }
    }
}

/// A duration flag: `10s`, `250ms`, `20us`, `2m`, `1h`, or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(text: &str) -> Result<Dur, String> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number.parse().map_err(|_| format!("{text:?}: expected e.g. 10s, 250ms, 20us, 2m"))?;
        let seconds = match unit {
            "" | "s" => value,
            "ms" => value / 1e3,
            "us" | "µs" => value / 1e6,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (use us, ms, s, m or h)")),
        };
        if !seconds.is_finite() || !(0.0..=366.0 * 86_400.0).contains(&seconds) {
            return Err(format!("{text:?}: out of range"));
        }
        Ok(Dur(Duration::from_secs_f64(seconds)))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Milliseconds, fractional when needed: unambiguous for scripts.
        s.serialize_f64(self.0.as_secs_f64() * 1e3)
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct TargetArgs {
    /// NameServer addresses in NAMESRV_ADDR form, e.g. `127.0.0.1:9876;127.0.0.1:9877`.
    #[arg(short = 'n', long, default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Allow targets that are not loopback addresses (off by default so a typo cannot load a
    /// shared cluster).
    #[arg(long)]
    pub allow_remote: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Signing every request (RocketMQ ACL), to measure what verification costs the server.
#[derive(Args, Debug, Clone, Serialize)]
pub struct AuthArgs {
    /// Sign every request (registrations, lookups, everything) with this account; needs
    /// --secret-key.
    #[arg(long, value_name = "KEY")]
    pub access_key: Option<String>,
    /// The account's secret key; prefer --credentials, which keeps it off the command line.
    /// Never recorded by --json.
    #[arg(long, value_name = "KEY")]
    #[serde(skip)]
    pub secret_key: Option<String>,
    /// Sign every request with the account in this properties file (accessKey=, secretKey=,
    /// optional securityToken=), as RocketMQ's tools read it.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
}

impl AuthArgs {
    /// The credentials to sign with; `None` when no option asks for signing. Errors name
    /// the options or the file.
    pub fn credentials(&self) -> Result<Option<Credentials>, String> {
        meridian_client::credentials_from_options(
            self.access_key.as_deref(),
            self.secret_key.as_deref(),
            self.credentials.as_deref(),
        )
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct RunArgs {
    /// Length of the measured load phase (setup and teardown come on top, each bounded).
    #[arg(short = 'd', long, default_value = "10s")]
    #[serde(rename = "duration_ms")]
    pub duration: Dur,
    /// Stop after this many lookups in total (split evenly over the connections).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Worker threads (one glommio executor each).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin worker i to CPU cpus[i % len], e.g. `1` or `0,1` or `2-3`; unpinned if absent.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Write every figure and the full configuration as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write HdrHistogram interval logs (values in µs, one tag per metric) to this file.
    #[arg(long)]
    pub hdr: Option<PathBuf>,
    /// Also report the CPU use of this process (the target NameServer); repeatable.
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Seed of every random choice (topic names, popularity, changes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A lookup not answered within this time counts as a timeout (Java clients: 3 s).
    #[arg(long, default_value = "3s")]
    #[serde(rename = "timeout_ms")]
    pub timeout: Dur,
    /// Once the load stops, how long outstanding requests may still be answered.
    #[arg(long, default_value = "2s")]
    #[serde(rename = "drain_ms")]
    pub drain: Dur,
    /// Interval of the progress line and of the HDR log.
    #[arg(long, default_value = "1s")]
    #[serde(rename = "progress_interval_ms")]
    pub progress_interval: Dur,
    /// No progress line (the final table is still printed).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ClusterArgs {
    /// Clusters the broker groups are spread over.
    #[arg(long, default_value_t = 1)]
    pub clusters: u32,
    /// Broker groups (distinct broker names). 0 (lookup and connections only) registers
    /// nothing: the target must already know the topics (e.g. the echo server).
    #[arg(short = 'b', long, default_value_t = 2)]
    pub brokers: u32,
    /// Slaves per broker group (each registers like its master, with brokerId 1..).
    #[arg(long, default_value_t = 0)]
    pub slaves: u32,
    /// Topics in the cluster.
    #[arg(short = 't', long, default_value_t = 10_000)]
    pub topics: u32,
    /// Broker groups hosting each topic.
    #[arg(long, default_value_t = 1)]
    pub width: u32,
    /// Topic name style: short (`TopicTest000123`) or realistic (~35 bytes of words and hex).
    #[arg(long, value_enum, default_value_t = TopicNames::Short)]
    pub topic_names: TopicNames,
    /// Prefix of every topic, broker and cluster name (keeps concurrent runs apart).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Queue counts topics draw from (read = write).
    #[arg(long, value_delimiter = ',', default_value = "4,8,16")]
    pub queues: Vec<i32>,
    /// Broker generation: body shape, request version and headers.
    #[arg(long, value_enum, default_value_t = BrokerVersion::V5)]
    pub broker_version: BrokerVersion,
    /// Registration body encoding.
    #[arg(long, value_enum, default_value_t = BodyEncodingKind::None)]
    pub encoding: BodyEncodingKind,
    /// zstd level for `--encoding zstd`.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,
    /// Period of the full re-registration (Java: 30 s, clamped to 10–60 s; here down to 1 ms).
    #[arg(long, default_value = "30s")]
    #[serde(rename = "register_period_ms")]
    pub register_period: Dur,
    /// Fraction of a broker's topics changed (new queue count, new data version) per period.
    #[arg(long, default_value_t = 0.0)]
    pub change_fraction: f64,
    /// Heartbeats between registrations.
    #[arg(long, value_enum, default_value_t = HeartbeatKind::None)]
    pub heartbeat: HeartbeatKind,
    /// Heartbeat interval (Java acting-master brokers: 1 s).
    #[arg(long, default_value = "1s")]
    #[serde(rename = "heartbeat_interval_ms")]
    pub heartbeat_interval: Dur,
    /// Send heartbeatTimeoutMillis with each registration (absent: the server's 120 s).
    #[arg(long)]
    pub heartbeat_timeout_ms: Option<u64>,
    /// Split registration (Java brokers' enableSplitRegistration with splitRegistrationSize
    /// N): every round is sent as chunks of N topics plus one last chunk with the rest, each
    /// a REGISTER_BROKER of its own with the next data version. 0: one frame per round.
    #[arg(long, default_value_t = 0)]
    pub split_registration_size: u32,
    /// REGISTER_BROKER timeout (Java brokers: 24 s).
    #[arg(long, default_value = "24s")]
    #[serde(rename = "register_timeout_ms")]
    pub register_timeout: Dur,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeaderType {
    /// JSON header (what Java clients send by default).
    Json,
    /// ROCKETMQ binary header.
    Rocketmq,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ProtocolArgs {
    /// `version` of lookup requests: ≥ 401 gets the standard JSON answer, below gets the
    /// legacy form with unquoted integer keys (both are checked).
    #[arg(long, default_value_t = 479)]
    pub client_version: i32,
    /// Header encoding of lookup requests.
    #[arg(long, value_enum, default_value_t = HeaderType::Json)]
    pub header: HeaderType,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct LoadArgs {
    /// Client connections (each picks one target, round-robin over --namesrv).
    #[arg(short = 'c', long, default_value_t = 32)]
    pub connections: usize,
    /// Requests in flight per connection (pipelined, matched by opaque).
    #[arg(short = 'k', long, default_value_t = 4)]
    pub inflight: usize,
    /// Open loop at this many lookups per second in total (latency from the intended send
    /// time); closed loop (as fast as answers come) when absent.
    #[arg(short = 'r', long)]
    pub rate: Option<f64>,
    /// Open loop: the pacer wakes at most this often, sending what fell due meanwhile.
    #[arg(long, default_value = "20us")]
    #[serde(rename = "tick_ms")]
    pub tick: Dur,
    /// Topic popularity: `uniform`, `zipf` (exponent 0.99) or `zipf:EXPONENT`.
    #[arg(long, default_value = "uniform")]
    #[serde(serialize_with = "display")]
    pub popularity: Popularity,
    /// Fraction of lookups for topics nobody registered (answered TOPIC_NOT_EXIST).
    #[arg(long, default_value_t = 0.0)]
    pub unknown_fraction: f64,
    /// A client connection the server closes (or that fails) is opened again after this
    /// pause, as RocketMQ clients do, until the load ends; what was in flight counts as
    /// unanswered. `0s`: never reopened (the connection stays out for the rest of the run).
    #[arg(long, default_value = "1s")]
    #[serde(rename = "reconnect_delay_ms")]
    pub reconnect_delay: Dur,
}

fn display<T: std::fmt::Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_string())
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct LookupArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    /// Re-sends after the first registration (each with --change-fraction of the topics changed).
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// The first N of the re-sends change nothing (same data version: a broker's periodic
    /// re-send), the rest change --change-fraction; so one run times both kinds.
    #[arg(long, default_value_t = 0)]
    pub unchanged_resends: u32,
    /// Time the answers only: probes poll while each registration is in flight (the same
    /// client work as against any server) but stop at its answer and record nothing, and
    /// the broker is not checked to be unknown at the start. For a server whose lookups do
    /// not show registrations, such as `echo-server` (the registration floor).
    #[arg(long)]
    pub answers_only: bool,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Re-registration period of every broker during the storm half of --duration.
    #[arg(long, default_value = "100ms")]
    #[serde(rename = "storm_period_ms")]
    pub storm_period: Dur,
    /// Fraction of topics changed per storm registration.
    #[arg(long, default_value_t = 0.01)]
    pub storm_change_fraction: f64,
    /// Time the answers only: no wait for the brokers to show after setup, and lookups are
    /// checked for their shape, not for the topic's brokers. For `echo-server`: the same
    /// client work against a server that does the least (the bench's storm floor).
    #[arg(long)]
    pub answers_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LeaveKind {
    /// UNREGISTER_BROKER, then close (a clean broker shutdown).
    Unregister,
    /// Close the connections without a word (a crashed or partitioned broker).
    Close,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Broker groups that come and go (each shadows the topics of one stable group).
    #[arg(long, default_value_t = 2)]
    pub churn_brokers: u32,
    /// Time between two churn events (a join or a leave).
    #[arg(long, default_value = "500ms")]
    #[serde(rename = "churn_interval_ms")]
    pub churn_interval: Dur,
    /// How a churn broker leaves.
    #[arg(long, value_enum, default_value_t = LeaveKind::Unregister)]
    pub leave: LeaveKind,
    /// Route-watch clients (Meridian extension, request code 43701), each long-polling the
    /// churned topics on a connection of its own: time from each churn event until each
    /// holds the new route (`propagation.watch-*`). Max 10000.
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,
    /// Longest hold of one watch request (`holdMs`; the server caps it).
    #[arg(long, default_value = "30s")]
    #[serde(rename = "watch_hold_ms")]
    pub watch_hold: Dur,
    /// Polling clients, as stock RocketMQ clients: each looks up every churned topic once per
    /// --poll-interval from a random phase (`propagation.poll-*`). Max 10000.
    #[arg(long, default_value_t = 0)]
    pub pollers: usize,
    /// The pollers' interval (Java clients' pollNameServerInterval: 30 s).
    #[arg(long, default_value = "30s")]
    #[serde(rename = "poll_interval_ms")]
    pub poll_interval: Dur,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Idle connections opened before the load and held to the end (each sends one lookup
    /// when opened and one at the end, to prove it still works).
    #[arg(long, default_value_t = 1000)]
    pub idle_connections: usize,
}

/// Registrations of the scale scenario carry heartbeatTimeoutMillis = this, so the quiet
/// phase (no re-registrations) never expires a broker on a server that honours it.
pub const SCALE_HEARTBEAT_TIMEOUT_MS: u64 = 600_000;

/// The scale scenario: `--duration` is split in two halves, quiet then periods. Open loop
/// only: `--rate` is required.
#[derive(Args, Debug, Clone, Serialize)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub protocol: ProtocolArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Brokers, each the master of its own broker group.
    #[arg(short = 'b', long, default_value_t = 1000)]
    pub brokers: u32,
    /// Topics each broker hosts (each topic is on 2..=10 brokers, so the topic universe is
    /// about brokers × topics / 6).
    #[arg(short = 't', long, default_value_t = 10_000)]
    pub topics_per_broker: u32,
    /// Topic name style.
    #[arg(long, value_enum, default_value_t = TopicNames::Realistic)]
    pub topic_names: TopicNames,
    /// Prefix of every topic, broker and cluster name.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Queue counts topics draw from (read = write).
    #[arg(long, value_delimiter = ',', default_value = "4,8,16")]
    pub queues: Vec<i32>,
    /// Registration body encoding.
    #[arg(long, value_enum, default_value_t = BodyEncodingKind::None)]
    pub encoding: BodyEncodingKind,
    /// Every broker re-registers once per period during the second half, spread evenly.
    #[arg(long, default_value = "30s")]
    #[serde(rename = "period_ms")]
    pub period: Dur,
    /// Fraction of a broker's topics changed (queue counts flipped) per re-registration,
    /// which also carries a new data version.
    #[arg(long, default_value_t = 0.01)]
    pub change_fraction: f64,
    /// Registrations in flight at once while loading from empty (over all workers).
    #[arg(long, default_value_t = 8)]
    pub load_concurrency: usize,
    /// Longest the load from empty may take; the run fails past it.
    #[arg(long, default_value = "10m")]
    #[serde(rename = "load_timeout_ms")]
    pub load_timeout: Dur,
    /// REGISTER_BROKER timeout.
    #[arg(long, default_value = "60s")]
    #[serde(rename = "register_timeout_ms")]
    pub register_timeout: Dur,
    /// Time the answers only: no visibility sweep after the load, and lookups are checked
    /// for their shape, not for the brokers of the topic. For a server whose lookups do not
    /// show registrations, such as `echo-server`: the same client work against the least a
    /// server can do, so its p99 during / quiet is the client's and the host's share.
    #[arg(long)]
    pub answers_only: bool,
}

impl ScaleArgs {
    /// The simulated cluster as the other scenarios describe it (one cluster, masters only,
    /// no heartbeats, the topic count derived from the layout).
    pub fn cluster(&self) -> ClusterArgs {
        ClusterArgs {
            clusters: 1,
            brokers: self.brokers,
            slaves: 0,
            topics: 0,
            width: 2,
            topic_names: self.topic_names,
            prefix: self.prefix.clone(),
            queues: self.queues.clone(),
            broker_version: BrokerVersion::V5,
            encoding: self.encoding,
            zstd_level: 3,
            register_period: self.period,
            change_fraction: self.change_fraction,
            heartbeat: HeartbeatKind::None,
            heartbeat_interval: Dur(Duration::from_secs(1)),
            heartbeat_timeout_ms: Some(SCALE_HEARTBEAT_TIMEOUT_MS),
            split_registration_size: 0,
            register_timeout: self.register_timeout,
        }
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:19876")]
    pub listen: String,
    /// Worker threads (each accepts on its own SO_REUSEPORT listener).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin worker i to CPU cpus[i % len]; unpinned if absent.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Exit after this long (an echo server is bounded too).
    #[arg(short = 'd', long, default_value = "1h")]
    #[serde(rename = "duration_ms")]
    pub duration: Dur,
    /// Listen on a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!("10s".parse(), Ok(Dur(Duration::from_secs(10))));
        assert_eq!("3".parse(), Ok(Dur(Duration::from_secs(3))));
        assert_eq!("250ms".parse(), Ok(Dur(Duration::from_millis(250))));
        assert_eq!("20us".parse(), Ok(Dur(Duration::from_micros(20))));
        assert_eq!("1.5m".parse(), Ok(Dur(Duration::from_secs(90))));
        assert!("10 parsecs".parse::<Dur>().is_err());
        assert!("-1s".parse::<Dur>().is_err());
        assert!("".parse::<Dur>().is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "meridian-loadgen",
            "lookup",
            "-n",
            "127.0.0.1:1;127.0.0.1:2",
            "--rate",
            "1000",
            "--popularity",
            "zipf:1.1",
            "--queues",
            "2,4",
            "--broker-version",
            "4",
        ])
        .unwrap();
        let Command::Lookup(args) = cli.command else { panic!("lookup expected") };
        assert_eq!(args.load.rate, Some(1000.0));
        assert_eq!(args.cluster.queues, vec![2, 4]);
        assert_eq!(args.cluster.broker_version, BrokerVersion::V4);
        let json = serde_json::to_value(&args).unwrap();
        assert_eq!(json["load"]["popularity"], "zipf:1.1");
        assert_eq!(json["run"]["duration_ms"], 10_000.0);
        assert_eq!(json["cluster"]["broker_version"], "4.x");
        assert_eq!(json["cluster"]["split_registration_size"], 0, "off unless asked");
        assert_eq!(args.target.auth.credentials(), Ok(None));
    }

    #[test]
    fn every_scenario_with_brokers_takes_a_split_size() {
        for scenario in ["lookup", "register", "storm", "churn", "connections"] {
            let cli = Cli::try_parse_from(["meridian-loadgen", scenario, "--split-registration-size", "800"]).unwrap();
            let cluster = match cli.command {
                Command::Lookup(a) => a.cluster,
                Command::Register(a) => a.cluster,
                Command::Storm(a) => a.cluster,
                Command::Churn(a) => a.cluster,
                Command::Connections(a) => a.cluster,
                Command::Scale(_) | Command::EchoServer(_) => unreachable!("not in the list"),
            };
            assert_eq!(cluster.split_registration_size, 800, "{scenario}");
        }
    }

    fn auth_of(args: &[&str]) -> Result<Option<Credentials>, String> {
        let cli = Cli::try_parse_from(["meridian-loadgen", "register"].iter().chain(args)).unwrap();
        cli.command.target().expect("register has targets").auth.credentials()
    }

    #[test]
    fn signing_options_parse_and_pair() {
        let signed = auth_of(&["--access-key", "lg", "--secret-key", "s3cret"]);
        assert_eq!(signed, Ok(Some(Credentials::new("lg", "s3cret"))));
        for half in
            [&["--access-key", "lg"][..], &["--secret-key", "s"][..], &["--access-key", "", "--secret-key", "s"][..]]
        {
            assert!(auth_of(half).is_err(), "{half:?}");
        }
        assert!(auth_of(&["--credentials", "f", "--access-key", "lg", "--secret-key", "s"]).is_err());
        let path = std::env::temp_dir().join(format!("meridian-loadgen-{}-credentials", std::process::id()));
        std::fs::write(&path, "accessKey=lg\nsecretKey=s3cret\n").unwrap();
        let from_file = auth_of(&["--credentials", path.to_str().unwrap()]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(from_file, Ok(Some(Credentials::new("lg", "s3cret"))));
        // --json records the configuration, never the secret.
        let cli = Cli::try_parse_from(["meridian-loadgen", "lookup", "--access-key", "lg", "--secret-key", "s3cret"])
            .unwrap();
        let Command::Lookup(args) = cli.command else { panic!("lookup expected") };
        let json = serde_json::to_string(&args).unwrap();
        assert!(json.contains("\"access_key\":\"lg\"") && !json.contains("s3cret"), "{json}");
    }
}
