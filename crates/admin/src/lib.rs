//! `meridian admin <verb>`: an admin CLI that speaks the RocketMQ remoting protocol to any
//! NameServer (Meridian or Java's), with verbs and option letters named like Apache RocketMQ's
//! `mqadmin`, over the tools' blocking client ([`meridian_client::conn`]): one connection per
//! NameServer address, connecting and every request bounded by `--timeout`.
//!
//! Read verbs ask the first address that gives a usable answer, as RocketMQ clients do;
//! write verbs go to every address and report each one, as mqadmin does. Exit codes are
//! [`EXIT_OK`], [`EXIT_ANSWER_ERROR`], [`EXIT_USAGE`] (clap's own) and [`EXIT_UNUSABLE`].
//! Must not: start a server, or use anything of Meridian's but `meridian-protocol` and
//! `meridian-client` (it is a client, like `loadgen`). The requests, headers and bodies are
//! those of Java's mqadmin (`MQAdminImpl`, `DefaultMQAdminExt`) against a NameServer.

use clap::{Args, Subcommand};
use meridian_client::conn::{
    self, broker_entries, BrokerData, BrokerEntry, ClusterInfo, QueueData, Reply, TopicList, TopicRouteData,
};
use meridian_client::{parse_namesrv_addrs, NAMESRV_ADDR_DEFAULT, NAMESRV_ADDR_ENV, TIMEOUT_MS_DEFAULT};
use meridian_protocol::{codes, perm};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::time::Duration;

/// Success.
pub const EXIT_OK: i32 = 0;
/// A NameServer answered with an error code (or brokerStatus -b names a broker it does not list).
pub const EXIT_ANSWER_ERROR: i32 = 1;
/// Bad command line; clap exits with the same code for the errors it finds itself.
pub const EXIT_USAGE: i32 = 2;
/// No usable answer: cannot resolve or connect, timeout, connection closed, malformed answer.
pub const EXIT_UNUSABLE: i32 = 3;
/// routeDiff: every NameServer was read and they differ.
pub const EXIT_DIFFERENT: i32 = 4;

/// brokerStatus --probe connects to at most this many brokers at once.
const PROBE_PARALLEL_MAX: usize = 64;
/// mqadmin's `topicList -c` leaves out consumer-group topics (MixAll's prefixes).
const GROUP_TOPIC_PREFIXES: [&str; 2] = ["%RETRY%", "%DLQ%"];

const EXIT_CODES_HELP: &str = "\
Exit codes: 0 ok; 1 a NameServer answered an error (its code and remark are printed), or
brokerStatus -b names a broker the NameServer does not list; 2 usage error; 3 no usable
answer (cannot connect, timeout, malformed answer); 4 routeDiff: the NameServers differ.
Write verbs report every address and exit with the worst outcome (3 before 1).";

/// `meridian admin [-n ADDRS] [--json] [--timeout MS] <verb>`.
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct AdminArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub verb: Verb,
}

/// Options every verb takes (before or after the verb).
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// NameServer addresses, `host:port;host:port` [default: $NAMESRV_ADDR, then 127.0.0.1:9876]
    #[arg(short = 'n', long = "namesrv", visible_alias = "namesrvAddr", value_name = "ADDRS", global = true)]
    pub namesrv: Option<String>,
    /// Print one JSON document on stdout instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Bound on connecting and on each request, in milliseconds
    #[arg(
        long = "timeout",
        value_name = "MS",
        default_value_t = TIMEOUT_MS_DEFAULT,
        value_parser = clap::value_parser!(u64).range(1..),
        global = true
    )]
    pub timeout_ms: u64,
}

fn non_empty() -> clap::builder::NonEmptyStringValueParser {
    clap::builder::NonEmptyStringValueParser::new()
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Every broker of every cluster: cluster, broker name, broker id, address (code 106)
    #[command(name = "clusterList")]
    ClusterList {
        /// Only this cluster
        #[arg(short = 'c', long = "clusterName", value_parser = non_empty())]
        cluster: Option<String>,
    },
    /// Brokers and queue data of a topic (code 105); --json prints the route document
    #[command(name = "topicRoute")]
    TopicRoute {
        /// Topic name
        #[arg(short = 't', long = "topic", value_parser = non_empty())]
        topic: String,
    },
    /// Every topic (code 206); with -c also each topic's cluster (codes 106 and 224)
    #[command(name = "topicList")]
    TopicList {
        /// Show the cluster(s) of each topic; like mqadmin, leaves out %RETRY% and %DLQ% topics
        #[arg(short = 'c', long = "clusterModel")]
        cluster_model: bool,
    },
    /// One KV config value (code 101)
    #[command(name = "getKvConfig")]
    GetKvConfig {
        /// KV namespace (e.g. ORDER_TOPIC_CONFIG)
        #[arg(short = 's', long = "namespace", value_parser = non_empty())]
        namespace: String,
        /// KV key
        #[arg(short = 'k', long = "key", value_parser = non_empty())]
        key: String,
    },
    /// Sets a KV config value on every NameServer (code 100)
    #[command(name = "updateKvConfig")]
    UpdateKvConfig {
        /// KV namespace (e.g. ORDER_TOPIC_CONFIG)
        #[arg(short = 's', long = "namespace", value_parser = non_empty())]
        namespace: String,
        /// KV key
        #[arg(short = 'k', long = "key", value_parser = non_empty())]
        key: String,
        /// Value (may be empty)
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// Deletes a KV config value on every NameServer (code 102)
    #[command(name = "deleteKvConfig")]
    DeleteKvConfig {
        /// KV namespace (e.g. ORDER_TOPIC_CONFIG)
        #[arg(short = 's', long = "namespace", value_parser = non_empty())]
        namespace: String,
        /// KV key
        #[arg(short = 'k', long = "key", value_parser = non_empty())]
        key: String,
    },
    /// Removes the write permission of a broker's topics on every NameServer (code 205)
    #[command(name = "wipeWritePerm")]
    WipeWritePerm {
        /// Broker name (the group's brokerName, not an address)
        #[arg(short = 'b', long = "brokerName", value_parser = non_empty())]
        broker_name: String,
    },
    /// Gives a broker's topics read and write permission again on every NameServer (code 327)
    #[command(name = "addWritePerm")]
    AddWritePerm {
        /// Broker name (the group's brokerName, not an address)
        #[arg(short = 'b', long = "brokerName", value_parser = non_empty())]
        broker_name: String,
    },
    /// Deletes a topic's routes from every NameServer (code 216) -- NameServers only
    #[command(
        name = "deleteTopic",
        long_about = "Deletes a topic's routes from every NameServer given (DELETE_TOPIC_IN_NAMESRV 216).\n\n\
            Unlike mqadmin deleteTopic, this does NOT delete the topic on the brokers: only the \
            NameServers forget it, and a broker that still has the topic registers it again with \
            its next registration (within 30 s). Delete it on the brokers as well to remove it."
    )]
    DeleteTopic {
        /// Topic name
        #[arg(short = 't', long = "topic", value_parser = non_empty())]
        topic: String,
        /// Only remove the queue data of this cluster's brokers
        #[arg(short = 'c', long = "clusterName", value_parser = non_empty())]
        cluster: Option<String>,
    },
    /// The NameServer's configuration, key by key (code 319)
    #[command(name = "getNamesrvConfig")]
    GetNamesrvConfig,
    /// Sets one configuration key on every NameServer (code 318); unknown keys are ignored by the NameServer
    #[command(name = "updateNamesrvConfig")]
    UpdateNamesrvConfig {
        /// Configuration key (e.g. orderMessageEnable)
        #[arg(short = 'k', long = "key", value_parser = non_empty())]
        key: String,
        /// Value (may be empty)
        #[arg(short = 'v', long = "value")]
        value: String,
    },
    /// Brokers the NameServer lists (registered = heard from within its expiry, 120 s by default)
    #[command(name = "brokerStatus")]
    BrokerStatus {
        /// Only this broker address (`ip:port`); exit 1 if the NameServer does not list it
        #[arg(short = 'b', long = "brokerAddr", value_parser = non_empty())]
        broker_addr: Option<String>,
        /// Only this cluster
        #[arg(short = 'c', long = "clusterName", value_parser = non_empty())]
        cluster: Option<String>,
        /// Also try a TCP connect (bounded by --timeout) to every broker address
        #[arg(long)]
        probe: bool,
    },
    /// Compares the routes every NameServer given serves (codes 106, 206, 105, 43702); exit 4 if they differ
    #[command(
        name = "routeDiff",
        long_about = "Compares what every NameServer given (-n 'a:9876;b:9876') serves, with stock read \
            requests only: cluster info (106), the topic list (206, unless --topics) and each topic's route \
            (105), one connection per NameServer, all read at the same time.\n\n\
            Reports, grouped by kind and naming the NameServers on each side: broker addresses (cluster, \
            name, id, address) some list and others do not; topics with a route on some only; and for \
            topics routed everywhere, per broker name, differing queue data (readQueueNums, \
            writeQueueNums, perm, topicSysFlag) and broker addresses.\n\n\
            Data versions (what each broker last registered) are compared between Meridians, read with \
            Meridian's MERIDIAN_BROKER_LIVE_TABLE (43702); a stock NameServer refuses that code and is named \
            in a note. QUERY_DATA_VERSION (322) is never sent: it makes a Java NameServer refresh the \
            broker's heartbeat timestamp (a monitor would keep a dead broker alive).\n\n\
            The report starts with a table per broker name: which NameServers' cluster info lacks it, \
            how many topics it is routed differently in, and what differs.\n\n\
            The NameServers are read at the same time but not atomically: a broker registering meanwhile \
            can show as a difference; run again to confirm. The human report shows at most 100 rows per \
            kind; --json lists every difference.\n\n\
            Exit: 0 all agree; 4 they differ; 3 a NameServer could not be read (the report names it; the \
            others are still compared); 2 usage (fewer than two NameServers, more topics than --max-topics)."
    )]
    RouteDiff {
        /// Only these topics (comma-separated); default: every topic any NameServer lists
        #[arg(long = "topics", value_name = "T1,T2", value_delimiter = ',', value_parser = non_empty())]
        topics: Option<Vec<String>>,
        /// Refuse to read more topics' routes than this (over all NameServers)
        #[arg(
            long = "max-topics",
            value_name = "N",
            default_value_t = meridian_client::route_diff::fetch::MAX_TOPICS_DEFAULT,
            value_parser = clap::value_parser!(usize)
        )]
        max_topics: usize,
    },
}

/// Runs one admin verb; returns the process exit code. Output goes to stdout, errors and
/// notes to stderr.
pub fn run(args: &AdminArgs) -> i32 {
    let env_addrs = std::env::var(NAMESRV_ADDR_ENV).ok();
    let addr_text = args
        .common
        .namesrv
        .clone()
        .or_else(|| env_addrs.filter(|a| !a.trim().is_empty()))
        .unwrap_or_else(|| NAMESRV_ADDR_DEFAULT.to_string());
    let addrs = match parse_namesrv_addrs(&addr_text) {
        Ok(addrs) => addrs,
        Err(e) => {
            print_stderr(&format!("meridian admin: {e}\n"));
            return EXIT_USAGE;
        }
    };
    let ctx = Ctx { addrs, timeout: Duration::from_millis(args.common.timeout_ms) };
    let result = match &args.verb {
        Verb::ClusterList { cluster } => cluster_list(&ctx, cluster.as_deref()),
        Verb::TopicRoute { topic } => topic_route(&ctx, topic),
        Verb::TopicList { cluster_model } => topic_list(&ctx, *cluster_model),
        Verb::GetKvConfig { namespace, key } => get_kv_config(&ctx, namespace, key),
        Verb::UpdateKvConfig { namespace, key, value } => Ok(ctx.write(
            WriteCount::None,
            codes::PUT_KV_CONFIG,
            &[("namespace", namespace), ("key", key), ("value", value)],
            b"",
        )),
        Verb::DeleteKvConfig { namespace, key } => {
            Ok(ctx.write(WriteCount::None, codes::DELETE_KV_CONFIG, &[("namespace", namespace), ("key", key)], b""))
        }
        Verb::WipeWritePerm { broker_name } => Ok(ctx.write(
            WriteCount::Ext { field: "wipeTopicCount", title: "#Wiped Topics" },
            codes::WIPE_WRITE_PERM_OF_BROKER,
            &[("brokerName", broker_name)],
            b"",
        )),
        Verb::AddWritePerm { broker_name } => Ok(ctx.write(
            WriteCount::Ext { field: "addTopicCount", title: "#Added Topics" },
            codes::ADD_WRITE_PERM_OF_BROKER,
            &[("brokerName", broker_name)],
            b"",
        )),
        Verb::DeleteTopic { topic, cluster } => {
            let mut ext = vec![("topic", topic.as_str())];
            if let Some(cluster) = cluster {
                ext.push(("clusterName", cluster.as_str()));
            }
            Ok(ctx.write(WriteCount::None, codes::DELETE_TOPIC_IN_NAMESRV, &ext, b""))
        }
        Verb::GetNamesrvConfig => get_namesrv_config(&ctx),
        Verb::UpdateNamesrvConfig { key, value } => {
            let body = properties_line(key, value);
            Ok(ctx.write(WriteCount::None, codes::UPDATE_NAMESRV_CONFIG, &[], body.as_bytes()))
        }
        Verb::BrokerStatus { broker_addr, cluster, probe } => {
            broker_status(&ctx, broker_addr.as_deref(), cluster.as_deref(), *probe)
        }
        Verb::RouteDiff { topics, max_topics } => match route_diff(&ctx, topics.as_deref(), *max_topics) {
            Ok(report) => Ok(report),
            Err(usage) => {
                print_stderr(&format!("meridian admin: {usage}\n"));
                return EXIT_USAGE;
            }
        },
    };
    match result {
        Ok(report) => {
            for note in &report.notes {
                print_stderr(&format!("meridian admin: {note}\n"));
            }
            if args.common.json {
                let mut text = serde_json::to_string_pretty(&report.json).expect("a Value always serializes");
                text.push('\n');
                print_stdout(&text);
            } else {
                print_stdout(&report.human);
            }
            report.exit_code
        }
        Err(failure) => {
            print_stderr(&format!("meridian admin: {failure}\n"));
            failure.exit_code()
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn print_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

// ---------------------------------------------------------------------------------------
// Addresses, failures, reports
// ---------------------------------------------------------------------------------------

/// Why a verb got no answer it could use.
#[derive(Debug)]
enum Failure {
    /// The NameServer answered with a non-zero code.
    Answer { namesrv: String, code: i32, remark: Option<String> },
    /// Cannot resolve or connect, timeout, closed connection, malformed answer.
    Unusable { namesrv: String, detail: String },
    /// A read verb tried every address and none gave a usable answer.
    NoneUsable(Vec<Failure>),
}

impl Failure {
    fn exit_code(&self) -> i32 {
        match self {
            Failure::Answer { .. } => EXIT_ANSWER_ERROR,
            Failure::Unusable { .. } | Failure::NoneUsable(_) => EXIT_UNUSABLE,
        }
    }

    /// A read verb asks the next address after this (as RocketMQ clients do); GO_AWAY means
    /// the NameServer is shutting down and wants its clients elsewhere.
    fn try_next(&self) -> bool {
        match self {
            Failure::Answer { code, .. } => *code == codes::GO_AWAY,
            Failure::Unusable { .. } | Failure::NoneUsable(_) => true,
        }
    }

    fn unusable(namesrv: &str, detail: impl Into<String>) -> Failure {
        Failure::Unusable { namesrv: namesrv.to_string(), detail: detail.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Answer { namesrv, code, remark } => {
                write!(f, "NameServer {namesrv} answered code {code}")?;
                if let Some(name) = codes::response_name(*code) {
                    write!(f, " ({name})")?;
                }
                match remark {
                    Some(remark) => write!(f, ": {remark}"),
                    None => f.write_str(" without a remark"),
                }
            }
            Failure::Unusable { namesrv, detail } => write!(f, "NameServer {namesrv}: {detail}"),
            Failure::NoneUsable(failures) => {
                f.write_str("no NameServer gave a usable answer")?;
                for failure in failures {
                    write!(f, "; {failure}")?;
                }
                Ok(())
            }
        }
    }
}

/// What a verb prints: a table for people, one JSON document for programs.
struct Report {
    human: String,
    json: Value,
    /// Lines for stderr (e.g. an address that failed before another answered).
    notes: Vec<String>,
    exit_code: i32,
}

/// Whether a write verb's answer carries a count in an ext field (205/327).
#[derive(Clone, Copy)]
enum WriteCount {
    None,
    Ext { field: &'static str, title: &'static str },
}

struct Ctx {
    addrs: Vec<String>,
    timeout: Duration,
}

impl Ctx {
    /// Runs `ask` against the first address that gives a usable answer. Returns that
    /// address, `ask`'s value, and a note for each address that failed before it.
    fn read<T>(
        &self,
        mut ask: impl FnMut(&mut Connection) -> Result<T, Failure>,
    ) -> Result<(String, T, Vec<String>), Failure> {
        let mut failures = Vec::new();
        for addr in &self.addrs {
            match Connection::open(addr, self.timeout).and_then(|mut conn| ask(&mut conn)) {
                Ok(value) => {
                    let notes = failures.iter().map(|f| format!("{f}; asked {addr} instead")).collect();
                    return Ok((addr.clone(), value, notes));
                }
                Err(failure) if failure.try_next() => failures.push(failure),
                Err(failure) => return Err(failure),
            }
        }
        if failures.len() == 1 {
            return Err(failures.pop().expect("one failure"));
        }
        Err(Failure::NoneUsable(failures))
    }

    /// Sends one request to every address and reports each outcome.
    fn write(&self, count: WriteCount, code: i32, ext: &[(&str, &str)], body: &[u8]) -> Report {
        let mut header = vec!["#NameServer", "#Result"];
        if let WriteCount::Ext { title, .. } = count {
            header.push(title);
        }
        let mut table = Table::new(&header);
        let mut results = Vec::new();
        let mut notes = Vec::new();
        let mut exit_code = EXIT_OK;
        for addr in &self.addrs {
            let outcome = Connection::open(addr, self.timeout)
                .and_then(|mut conn| conn.call(code, ext, body))
                .and_then(|reply| reply.success(addr))
                .and_then(|reply| match count {
                    WriteCount::None => Ok(None),
                    WriteCount::Ext { field, .. } => reply.ext_i64(addr, field).map(Some),
                });
            match outcome {
                Ok(counted) => {
                    let mut row = vec![addr.clone(), "OK".to_string()];
                    let mut result = json!({"namesrv": addr, "ok": true});
                    if let (WriteCount::Ext { field, .. }, Some(n)) = (count, counted) {
                        row.push(n.to_string());
                        result[field] = json!(n);
                    }
                    table.row(row);
                    results.push(result);
                }
                Err(failure) => {
                    let mut row = vec![addr.clone(), failure_label(&failure)];
                    if let WriteCount::Ext { .. } = count {
                        row.push("-".to_string());
                    }
                    table.row(row);
                    results.push(failure_json(addr, &failure));
                    exit_code = exit_code.max(failure.exit_code());
                    notes.push(failure.to_string());
                }
            }
        }
        Report { human: table.render(), json: json!({ "results": results }), notes, exit_code }
    }
}

fn failure_label(failure: &Failure) -> String {
    match failure {
        Failure::Answer { code, .. } => match codes::response_name(*code) {
            Some(name) => format!("ERROR {code} ({name})"),
            None => format!("ERROR {code}"),
        },
        Failure::Unusable { .. } | Failure::NoneUsable(_) => "UNUSABLE".to_string(),
    }
}

fn failure_json(addr: &str, failure: &Failure) -> Value {
    match failure {
        Failure::Answer { code, remark, .. } => json!({"namesrv": addr, "ok": false, "code": code, "remark": remark}),
        other => json!({"namesrv": addr, "ok": false, "error": other.to_string()}),
    }
}

// ---------------------------------------------------------------------------------------
// The blocking client
// ---------------------------------------------------------------------------------------

/// One connection to one NameServer.
/// A connection whose failures name the NameServer, as the verbs report them.
struct Connection(conn::Conn);

impl Connection {
    fn open(addr: &str, timeout: Duration) -> Result<Connection, Failure> {
        conn::Conn::open(addr, timeout).map(Connection).map_err(|e| Failure::unusable(addr, e.to_string()))
    }

    fn addr(&self) -> &str {
        self.0.addr()
    }

    /// Sends one request and reads its answer, all within the timeout.
    fn call(&mut self, code: i32, ext: &[(&str, &str)], body: &[u8]) -> Result<Reply, Failure> {
        self.0.call(code, ext, body).map_err(|e| Failure::unusable(self.0.addr(), e.to_string()))
    }
}

/// The verbs' view of an answer: failures name the NameServer.
trait ReplyExt: Sized {
    fn success(self, addr: &str) -> Result<Reply, Failure>;
    fn ext_i64(&self, addr: &str, field: &str) -> Result<i64, Failure>;
    fn json_of<T: serde::de::DeserializeOwned>(&self, addr: &str, body_name: &'static str) -> Result<T, Failure>;
}

impl ReplyExt for Reply {
    /// The reply if its code is SUCCESS, else the NameServer's error.
    fn success(self, addr: &str) -> Result<Reply, Failure> {
        if self.header.code == codes::SUCCESS {
            return Ok(self);
        }
        Err(Failure::Answer { namesrv: addr.to_string(), code: self.header.code, remark: self.header.remark })
    }

    fn ext_i64(&self, addr: &str, field: &str) -> Result<i64, Failure> {
        let text = self.header.ext(field).ok_or_else(|| Failure::unusable(addr, format!("answer lacks {field}")))?;
        text.trim()
            .parse()
            .map_err(|_| Failure::unusable(addr, format!("answer field {field}={text:?} is not a number")))
    }

    /// [`Reply::json`], failing as `addr`'s.
    fn json_of<T: serde::de::DeserializeOwned>(&self, addr: &str, body_name: &'static str) -> Result<T, Failure> {
        self.json(body_name).map_err(|e| Failure::unusable(addr, e.to_string()))
    }
}

/// One `key=value` line of Java properties text with everything escaped that
/// `Properties.load` would otherwise read differently; non-ASCII as `\uXXXX`, so the bytes
/// mean the same whatever charset the NameServer reads them in (Java: UTF-8).
pub fn properties_line(key: &str, value: &str) -> String {
    let mut line = String::with_capacity(key.len() + value.len() + 2);
    push_properties_escaped(&mut line, key, true);
    line.push('=');
    push_properties_escaped(&mut line, value, false);
    line.push('\n');
    line
}

fn push_properties_escaped(out: &mut String, text: &str, is_key: bool) {
    for (index, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            // A key ends at the first unescaped separator; a value only loses leading spaces.
            ' ' if is_key || index == 0 => out.push_str("\\ "),
            '=' | ':' if is_key => {
                out.push('\\');
                out.push(c);
            }
            // A leading # or ! would make the line a comment.
            '#' | '!' if is_key && index == 0 => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Answer bodies (ClusterInfo, TopicRouteData, TopicList), read leniently: unknown keys ignored, missing ones empty
// ---------------------------------------------------------------------------------------

fn cluster_info(conn: &mut Connection) -> Result<ClusterInfo, Failure> {
    let addr = conn.addr().to_string();
    conn.call(codes::GET_BROKER_CLUSTER_INFO, &[], b"")?.success(&addr)?.json_of(&addr, "ClusterInfo")
}

fn topics(conn: &mut Connection, code: i32, ext: &[(&str, &str)]) -> Result<Vec<String>, Failure> {
    let addr = conn.addr().to_string();
    let list: TopicList = conn.call(code, ext, b"")?.success(&addr)?.json_of(&addr, "TopicList")?;
    Ok(list.topic_list)
}

/// `6 (READ|WRITE)`.
fn perm_text(perm: i32) -> String {
    let names: Vec<&str> = perm::NAMES.iter().filter(|(bit, _)| perm & bit != 0).map(|(_, name)| *name).collect();
    if names.is_empty() {
        format!("{perm} (none)")
    } else {
        format!("{perm} ({})", names.join("|"))
    }
}

// ---------------------------------------------------------------------------------------
// Verbs
// ---------------------------------------------------------------------------------------

fn cluster_list(ctx: &Ctx, cluster: Option<&str>) -> Result<Report, Failure> {
    let (namesrv, info, mut notes) = ctx.read(cluster_info)?;
    let rows: Vec<BrokerEntry> =
        broker_entries(&info).into_iter().filter(|r| cluster.is_none_or(|c| r.cluster == c)).collect();
    if let (Some(cluster), true) = (cluster, rows.is_empty()) {
        notes.push(format!("NameServer {namesrv} lists no broker in cluster {cluster:?}"));
    }
    let mut table = Table::new(&["#Cluster Name", "#Broker Name", "#BID", "#Addr"]);
    for r in &rows {
        table.row(vec![r.cluster.clone(), r.broker_name.clone(), r.broker_id.to_string(), r.addr.clone()]);
    }
    let brokers: Vec<Value> = rows
        .iter()
        .map(|r| json!({"cluster": r.cluster, "brokerName": r.broker_name, "brokerId": r.broker_id, "addr": r.addr}))
        .collect();
    Ok(Report {
        human: table.render(),
        json: json!({"namesrv": namesrv, "brokers": brokers}),
        notes,
        exit_code: EXIT_OK,
    })
}

fn topic_route(ctx: &Ctx, topic: &str) -> Result<Report, Failure> {
    let (_, (document, route), notes) = ctx.read(|conn| {
        let addr = conn.addr().to_string();
        let reply = conn.call(codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", topic)], b"")?.success(&addr)?;
        let document: Value = reply.json_of(&addr, "TopicRouteData")?;
        let route: TopicRouteData = serde_json::from_value(document.clone())
            .map_err(|e| Failure::unusable(&addr, format!("malformed answer: Failed to decode TopicRouteData: {e}")))?;
        Ok((document, route))
    })?;
    let mut brokers = Table::new(&["#Broker Name", "#Cluster Name", "#BID", "#Role", "#Addr"]);
    let mut broker_datas: Vec<&BrokerData> = route.broker_datas.iter().collect();
    broker_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    for broker in broker_datas {
        for (id, addr) in &broker.broker_addrs {
            let role = if *id == 0 { "MASTER" } else { "SLAVE" };
            brokers.row(vec![
                broker.broker_name.clone(),
                broker.cluster.clone(),
                id.to_string(),
                role.to_string(),
                addr.clone(),
            ]);
        }
    }
    let mut queues = Table::new(&["#Broker Name", "#Read Queues", "#Write Queues", "#Perm", "#Topic Sys Flag"]);
    let mut queue_datas: Vec<&QueueData> = route.queue_datas.iter().collect();
    queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    for q in queue_datas {
        queues.row(vec![
            q.broker_name.to_string(),
            q.read_queue_nums.to_string(),
            q.write_queue_nums.to_string(),
            perm_text(q.perm),
            q.topic_sys_flag.to_string(),
        ]);
    }
    let mut human = brokers.render();
    human.push('\n');
    human.push_str(&queues.render());
    if let Some(conf) = &route.order_topic_conf {
        let _ = writeln!(human, "\norderTopicConf: {conf}");
    }
    for (broker_addr, servers) in &route.filter_server_table {
        let _ = writeln!(human, "filter servers of {broker_addr}: {}", servers.join(", "));
    }
    if let Some(mappings) = route.topic_queue_mapping_by_broker.as_ref().filter(|m| !m.is_empty()) {
        let names: Vec<&str> = mappings.keys().map(String::as_str).collect();
        let _ = writeln!(human, "static topic: queue mappings on {} (see --json)", names.join(", "));
    }
    Ok(Report { human, json: document, notes, exit_code: EXIT_OK })
}

fn topic_list(ctx: &Ctx, cluster_model: bool) -> Result<Report, Failure> {
    if !cluster_model {
        let (namesrv, mut all, notes) =
            ctx.read(|conn| topics(conn, codes::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &[]))?;
        all.sort();
        all.dedup();
        let mut human = String::new();
        for topic in &all {
            let _ = writeln!(human, "{topic}");
        }
        return Ok(Report { human, json: json!({"namesrv": namesrv, "topics": all}), notes, exit_code: EXIT_OK });
    }
    // mqadmin asks for every topic's route to find its cluster; one GET_TOPICS_BY_CLUSTER per
    // cluster gives the same answer (every cluster a topic is on, not just the first) in a
    // number of requests that does not grow with the topics.
    let (namesrv, clusters_of, notes) = ctx.read(|conn| {
        let info = cluster_info(conn)?;
        let mut clusters_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for topic in topics(conn, codes::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &[])? {
            clusters_of.entry(topic).or_default();
        }
        for cluster in info.cluster_addr_table.keys() {
            for topic in topics(conn, codes::GET_TOPICS_BY_CLUSTER, &[("cluster", cluster)])? {
                clusters_of.entry(topic).or_default().insert(cluster.clone());
            }
        }
        clusters_of.retain(|topic, _| !GROUP_TOPIC_PREFIXES.iter().any(|p| topic.starts_with(p)));
        Ok(clusters_of)
    })?;
    let mut rows: Vec<(&str, &str)> = Vec::new();
    for (topic, clusters) in &clusters_of {
        if clusters.is_empty() {
            rows.push(("-", topic));
        }
        rows.extend(clusters.iter().map(|c| (c.as_str(), topic.as_str())));
    }
    rows.sort();
    let mut table = Table::new(&["#Cluster Name", "#Topic"]);
    for (cluster, topic) in rows {
        table.row(vec![cluster.to_string(), topic.to_string()]);
    }
    let topics: Vec<Value> =
        clusters_of.iter().map(|(topic, clusters)| json!({"topic": topic, "clusters": clusters})).collect();
    Ok(Report { human: table.render(), json: json!({"namesrv": namesrv, "topics": topics}), notes, exit_code: EXIT_OK })
}

fn get_kv_config(ctx: &Ctx, namespace: &str, key: &str) -> Result<Report, Failure> {
    let (namesrv, value, notes) = ctx.read(|conn| {
        let addr = conn.addr().to_string();
        let reply = conn.call(codes::GET_KV_CONFIG, &[("namespace", namespace), ("key", key)], b"")?;
        let reply = reply.success(&addr)?;
        match reply.header.ext("value") {
            Some(value) => Ok(value.to_string()),
            None => Err(Failure::unusable(&addr, "malformed answer: SUCCESS without a value field")),
        }
    })?;
    let mut table = Table::new(&["#Namespace", "#Key", "#Value"]);
    table.row(vec![namespace.to_string(), key.to_string(), value.clone()]);
    Ok(Report {
        human: table.render(),
        json: json!({"namesrv": namesrv, "namespace": namespace, "key": key, "value": value}),
        notes,
        exit_code: EXIT_OK,
    })
}

fn get_namesrv_config(ctx: &Ctx) -> Result<Report, Failure> {
    let (namesrv, body, notes) = ctx.read(|conn| {
        let addr = conn.addr().to_string();
        Ok(conn.call(codes::GET_NAMESRV_CONFIG, &[], b"")?.success(&addr)?.body)
    })?;
    // Java writes `key=value` lines without escaping (MixAll.properties2String), so the text
    // up to the first '=' is the key and the rest of the line the value, as the server holds it.
    let text = String::from_utf8_lossy(&body);
    let mut config = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        config.insert(key.to_string(), value.to_string());
    }
    let mut table = Table::new(&["#Key", "#Value"]);
    for (key, value) in &config {
        table.row(vec![key.clone(), value.clone()]);
    }
    Ok(Report { human: table.render(), json: json!({"namesrv": namesrv, "config": config}), notes, exit_code: EXIT_OK })
}

fn broker_status(ctx: &Ctx, broker_addr: Option<&str>, cluster: Option<&str>, probe: bool) -> Result<Report, Failure> {
    let (namesrv, info, mut notes) = ctx.read(cluster_info)?;
    let rows: Vec<BrokerEntry> = broker_entries(&info)
        .into_iter()
        .filter(|r| cluster.is_none_or(|c| r.cluster == c) && broker_addr.is_none_or(|a| r.addr == a))
        .collect();
    let mut exit_code = EXIT_OK;
    // The addresses to report: what the NameServer lists, or the one asked about.
    let mut entries: Vec<(Option<&BrokerEntry>, &str)> = rows.iter().map(|r| (Some(r), r.addr.as_str())).collect();
    if let (Some(addr), true) = (broker_addr, rows.is_empty()) {
        notes.push(format!(
            "NameServer {namesrv} does not list broker {addr}{} (it drops brokers silent for longer than their \
             expiry, 120 s by default)",
            cluster.map(|c| format!(" in cluster {c:?}")).unwrap_or_default()
        ));
        entries.push((None, addr));
        exit_code = EXIT_ANSWER_ERROR;
    }
    let probes: Vec<Option<Result<(), String>>> = if probe {
        let addrs: Vec<&str> = entries.iter().map(|(_, a)| *a).collect();
        probe_all(&addrs, ctx.timeout).into_iter().map(Some).collect()
    } else {
        vec![None; entries.len()]
    };
    let mut header = vec!["#Cluster Name", "#Broker Name", "#BID", "#Role", "#Addr", "#Status"];
    if probe {
        header.push("#Probe");
    }
    let mut table = Table::new(&header);
    let mut brokers = Vec::new();
    for ((row, addr), probed) in entries.iter().zip(&probes) {
        let mut cells = match row {
            Some(r) => vec![
                r.cluster.clone(),
                r.broker_name.clone(),
                r.broker_id.to_string(),
                r.role().to_string(),
                addr.to_string(),
                "registered".to_string(),
            ],
            None => vec!["-".into(), "-".into(), "-".into(), "-".into(), addr.to_string(), "NOT REGISTERED".into()],
        };
        let mut entry = match row {
            Some(r) => json!({
                "cluster": r.cluster, "brokerName": r.broker_name, "brokerId": r.broker_id,
                "role": r.role(), "addr": addr, "registered": true,
            }),
            None => json!({"addr": addr, "registered": false}),
        };
        match probed {
            Some(Ok(())) => {
                cells.push("reachable".to_string());
                entry["reachable"] = json!(true);
            }
            Some(Err(e)) => {
                cells.push(format!("unreachable ({e})"));
                entry["reachable"] = json!(false);
                entry["probeError"] = json!(e);
            }
            None => {}
        }
        table.row(cells);
        brokers.push(entry);
    }
    Ok(Report { human: table.render(), json: json!({"namesrv": namesrv, "brokers": brokers}), notes, exit_code })
}

/// routeDiff (src/route_diff): reads every address, compares, exits 0 / 4 / 3. `Err` is a
/// usage error.
fn route_diff(ctx: &Ctx, topics: Option<&[String]>, max_topics: usize) -> Result<Report, String> {
    use meridian_client::route_diff::fetch::{fetch_all, FetchOptions};
    if ctx.addrs.len() < 2 {
        return Err(format!("routeDiff compares NameServers: give at least two with -n (got {})", ctx.addrs.join(";")));
    }
    let options = FetchOptions {
        timeout: ctx.timeout,
        topics: topics.map(<[String]>::to_vec),
        max_topics,
        presence_only_above_max: false,
    };
    let fetched = fetch_all(&ctx.addrs, &options).map_err(|e| {
        format!(
            "{} topics (over all NameServers) exceed --max-topics {}; raise --max-topics or name them with --topics",
            e.topics, e.max
        )
    })?;
    let views: Vec<(&str, &meridian_client::route_diff::NamesrvView)> =
        fetched.views.iter().map(|(addr, view)| (addr.as_str(), view)).collect();
    let mut diff = meridian_client::route_diff::compare(&views);
    diff.unreadable = fetched.unreadable;
    diff.notes.extend(fetched.topics_nowhere.iter().map(|t| format!("topic {t} has a route on no NameServer")));
    let notes = diff.unreadable.iter().map(|u| format!("NameServer {}: {}", u.namesrv, u.error)).collect();
    let exit_code = if !diff.unreadable.is_empty() {
        EXIT_UNUSABLE
    } else if diff.difference_count > 0 {
        EXIT_DIFFERENT
    } else {
        EXIT_OK
    };
    let mut json = serde_json::to_value(&diff).expect("a report always serializes");
    json["agree"] = json!(diff.agree());
    Ok(Report { human: diff.render_human(), json, notes, exit_code })
}

/// Tries a TCP connect to every address, at most [`PROBE_PARALLEL_MAX`] at a time, each
/// bounded by `timeout`. Results are in the order of `addrs`.
fn probe_all(addrs: &[&str], timeout: Duration) -> Vec<Result<(), String>> {
    let mut results = Vec::with_capacity(addrs.len());
    for chunk in addrs.chunks(PROBE_PARALLEL_MAX) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|addr| scope.spawn(move || probe(addr, timeout))).collect();
            for handle in handles {
                results.push(handle.join().unwrap_or_else(|_| Err("probe thread panicked".to_string())));
            }
        });
    }
    results
}

fn probe(addr: &str, timeout: Duration) -> Result<(), String> {
    conn::connect(addr, timeout).map(drop)
}

// ---------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------

/// Columns aligned on their widest cell, two spaces apart; no trailing spaces.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "row {cells:?} for header {:?}", self.header);
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        let mut out = String::new();
        meridian_client::route_diff::render_table(&mut out, &header, &self.rows);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_addrs_are_split_checked_and_deduplicated() {
        let ok = |text: &str, expected: &[&str]| assert_eq!(parse_namesrv_addrs(text).unwrap(), expected, "{text:?}");
        ok("127.0.0.1:9876", &["127.0.0.1:9876"]);
        ok(" a:1 ; b:2;", &["a:1", "b:2"]);
        ok("a:1;a:1;b:2", &["a:1", "b:2"]);
        ok("[::1]:9876", &["[::1]:9876"]);
        for bad in ["", ";", "host", "host:", ":9876", "h:99999", "h:0", "h:x", "a:1;nope"] {
            assert!(parse_namesrv_addrs(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn properties_lines_read_back_as_written() {
        for (key, value) in [
            ("orderMessageEnable", "true"),
            ("a key=with:separators", " leading space, = and : kept"),
            ("#not a comment", "back\\slash\ttab\nnewline"),
            ("unicodeKey", "集群 é €"),
            ("empty", ""),
        ] {
            let line = properties_line(key, value);
            assert!(line.is_ascii(), "{line:?}");
            let read = java_properties::read(line.as_bytes()).unwrap();
            assert_eq!(read.get(key).map(String::as_str), Some(value), "{line:?}");
            assert_eq!(read.len(), 1, "{line:?}");
        }
        // Outside the BMP: a UTF-16 surrogate pair, as Java's Properties.load reads it.
        assert_eq!(properties_line("k", "😀"), "k=\\uD83D\\uDE00\n");
    }

    #[test]
    fn perm_names_every_bit() {
        assert_eq!(perm_text(6), "6 (READ|WRITE)");
        assert_eq!(perm_text(4), "4 (READ)");
        assert_eq!(perm_text(7), "7 (READ|WRITE|INHERIT)");
        assert_eq!(perm_text(0), "0 (none)");
    }

    #[test]
    fn tables_align_on_the_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(&["#A", "#Long Header", "#C"]);
        t.row(vec!["wide-cell".into(), "x".into(), "".into()]);
        t.row(vec!["集群".into(), "y".into(), "z".into()]);
        assert_eq!(t.render(), "#A         #Long Header  #C\nwide-cell  x\n集群         y             z\n");
    }

    #[test]
    fn failures_name_the_code_and_the_exit() {
        let answer = Failure::Answer { namesrv: "h:1".into(), code: 17, remark: Some("No topic".into()) };
        assert_eq!(answer.to_string(), "NameServer h:1 answered code 17 (TOPIC_NOT_EXIST): No topic");
        assert_eq!(answer.exit_code(), EXIT_ANSWER_ERROR);
        assert!(!answer.try_next());
        let go_away = Failure::Answer { namesrv: "h:1".into(), code: codes::GO_AWAY, remark: None };
        assert!(go_away.try_next());
        let none = Failure::NoneUsable(vec![Failure::unusable("a:1", "x"), Failure::unusable("b:2", "y")]);
        assert_eq!(none.to_string(), "no NameServer gave a usable answer; NameServer a:1: x; NameServer b:2: y");
        assert_eq!(none.exit_code(), EXIT_UNUSABLE);
    }
}
