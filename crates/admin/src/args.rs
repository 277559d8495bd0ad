//! The command line of `meridian admin`: the options every verb takes and one subcommand
//! per verb, named (with option letters) like Apache RocketMQ's `mqadmin`.
//! Must not: talk to a NameServer or print anything; `lib.rs` runs what is parsed here.

use clap::{Args, Subcommand};
use meridian_client::TIMEOUT_MS_DEFAULT;

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
