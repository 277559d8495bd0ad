//! The command line of `meridian admin`: the options every verb takes and one subcommand
//! per verb, named (with option letters) like Apache RocketMQ's `mqadmin`.
//! Reads the credentials file when asked. Must not: talk to a NameServer or print anything; `lib.rs` runs what is parsed here.

use clap::{Args, Subcommand};
use meridian_client::conn::Credentials;
use meridian_client::TIMEOUT_MS_DEFAULT;
use std::path::PathBuf;

const EXIT_CODES_HELP: &str = "\
Exit codes: 0 ok; 1 a NameServer answered an error (its code and remark are printed), or
brokerStatus -b names a broker the NameServer does not list; 2 usage error; 3 no usable
answer (cannot connect, timeout, malformed answer); 4 routeDiff: the NameServers differ.
Write verbs report every address and exit with the worst outcome (3 before 1).";

/// `meridian admin [-n ADDRS] [--json] [--timeout MS] [--access-key K --secret-key S | --credentials FILE] <verb>`.
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
    /// Sign every request with this account (RocketMQ ACL); needs --secret-key
    #[arg(long = "access-key", value_name = "KEY", value_parser = non_empty(), global = true)]
    pub access_key: Option<String>,
    /// The account's secret key; prefer --credentials, which keeps it off the command line
    #[arg(long = "secret-key", value_name = "KEY", value_parser = non_empty(), global = true)]
    pub secret_key: Option<String>,
    /// Sign every request with the account in this properties file (accessKey=, secretKey=, optional securityToken=)
    #[arg(long = "credentials", value_name = "FILE", global = true)]
    pub credentials: Option<PathBuf>,
}

impl CommonArgs {
    /// The credentials to sign with: from the command line or the file; `None` when neither
    /// is given (requests go unsigned). Errors name the file or the options. The pairing is
    /// checked here, not by clap: clap's `requires` misfires on global options given on
    /// both sides of the verb.
    pub fn credentials(&self) -> Result<Option<Credentials>, String> {
        meridian_client::credentials_from_options(
            self.access_key.as_deref(),
            self.secret_key.as_deref(),
            self.credentials.as_deref(),
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `meridian admin`'s arguments, as the binary flattens them.
    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        admin: AdminArgs,
    }

    fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("admin").chain(args.iter().copied())).map(|cli| cli.admin)
    }

    /// A file in the temp directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!("meridian-admin-{}-{name}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn no_credentials_means_unsigned() {
        assert_eq!(parse(&["clusterList"]).unwrap().common.credentials(), Ok(None));
    }

    #[test]
    fn keys_on_the_command_line_before_or_after_the_verb() {
        let expected = Some(Credentials::new("rocketmq2", "12345678"));
        for args in [
            &["--access-key", "rocketmq2", "--secret-key", "12345678", "clusterList"][..],
            &["clusterList", "--access-key", "rocketmq2", "--secret-key", "12345678"][..],
            &["--access-key=rocketmq2", "updateKvConfig", "-s", "ns", "-k", "k", "-v", "v", "--secret-key=12345678"][..],
        ] {
            assert_eq!(parse(args).unwrap().common.credentials(), Ok(expected.clone()), "{args:?}");
        }
    }

    #[test]
    fn half_a_key_pair_or_both_sources_is_a_usage_error() {
        assert!(parse(&["--access-key", "", "--secret-key", "s", "clusterList"]).is_err(), "empty key accepted");
        for args in [
            &["--access-key", "a", "clusterList"][..],
            &["clusterList", "--secret-key", "s"][..],
            &["--credentials", "f", "--access-key", "a", "--secret-key", "s", "clusterList"][..],
            &["--credentials", "f", "clusterList", "--secret-key", "s"][..],
        ] {
            let result = parse(args).unwrap().common.credentials();
            assert!(result.is_err(), "{args:?} gave {result:?}");
        }
    }

    #[test]
    fn credentials_file_keeps_the_secret_off_the_command_line() {
        let file = TempFile::new("tools.properties", "accessKey=rocketmq2\nsecretKey=12345678\nsecurityToken=t\n");
        let path = file.0.to_str().unwrap().to_string();
        let path = path.as_str();
        let credentials = parse(&["topicList", "--credentials", path]).unwrap().common.credentials().unwrap().unwrap();
        assert_eq!((credentials.access_key.as_str(), credentials.secret_key.as_str()), ("rocketmq2", "12345678"));
        assert_eq!(credentials.security_token.as_deref(), Some("t"));
        let incomplete = TempFile::new("incomplete.properties", "accessKey=rocketmq2\n");
        let error =
            parse(&["--credentials", incomplete.0.to_str().unwrap(), "topicList"]).unwrap().common.credentials();
        assert!(error.as_ref().is_err_and(|e| e.ends_with("no secretKey")), "{error:?}");
        drop(file);
        let error = parse(&["--credentials", path, "topicList"]).unwrap().common.credentials();
        assert!(error.as_ref().is_err_and(|e| e.starts_with("cannot read credentials file")), "{error:?}");
    }
}
