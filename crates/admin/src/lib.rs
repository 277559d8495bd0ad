//! `meridian admin <verb>`: an admin CLI that speaks the RocketMQ remoting protocol to any
//! NameServer (Meridian or Java's), with verbs and option letters named like Apache RocketMQ's
//! `mqadmin`, over the tools' blocking client ([`meridian_client::conn`]): one connection per
//! NameServer address, connecting and every request bounded by `--timeout`, every request
//! signed (RocketMQ ACL) when `--access-key`/`--secret-key` or `--credentials` is given.
//!
//! Read verbs ask the first address that gives a usable answer, as RocketMQ clients do;
//! write verbs go to every address and report each one, as mqadmin does. Exit codes are
//! [`EXIT_OK`], [`EXIT_ANSWER_ERROR`], [`EXIT_USAGE`] (clap's own) and [`EXIT_UNUSABLE`].
//! Must not: start a server, or use anything of Meridian's but `meridian-protocol` and
//! `meridian-client` (it is a client, like `loadgen`). The requests, headers and bodies are
//! those of Java's mqadmin (`MQAdminImpl`, `DefaultMQAdminExt`) against a NameServer.
//!
//! Modules: `args` (the command line), `report` (exit codes, failures, tables, output),
//! `ctx` (reaching NameServers), `read` and `write` (the verbs). This file only dispatches;
//! no module imports it.

mod args;
mod ctx;
mod read;
mod report;
mod write;

pub use args::{AdminArgs, CommonArgs, Verb};
pub use report::{EXIT_ANSWER_ERROR, EXIT_DIFFERENT, EXIT_OK, EXIT_UNUSABLE, EXIT_USAGE};
pub use write::properties_line;

use ctx::Ctx;
use meridian_client::{parse_namesrv_addrs, NAMESRV_ADDR_DEFAULT, NAMESRV_ADDR_ENV};
use report::{print_stderr, print_stdout, Failure, Report, UsageError};
use std::time::Duration;

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
    let credentials = match args.common.credentials() {
        Ok(credentials) => credentials,
        Err(e) => {
            print_stderr(&format!("meridian admin: {e}\n"));
            return EXIT_USAGE;
        }
    };
    let ctx = Ctx { addrs, timeout: Duration::from_millis(args.common.timeout_ms), credentials };
    let result = match dispatch(&ctx, &args.verb) {
        Ok(result) => result,
        Err(usage) => {
            print_stderr(&format!("meridian admin: {usage}\n"));
            return EXIT_USAGE;
        }
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

/// Runs one verb. The outer `Err` is a usage error found only once the verb runs.
fn dispatch(ctx: &Ctx, verb: &Verb) -> Result<Result<Report, Failure>, UsageError> {
    Ok(match verb {
        Verb::ClusterList { cluster } => read::cluster_list(ctx, cluster.as_deref()),
        Verb::TopicRoute { topic } => read::topic_route(ctx, topic),
        Verb::TopicList { cluster_model } => read::topic_list(ctx, *cluster_model),
        Verb::GetKvConfig { namespace, key } => read::get_kv_config(ctx, namespace, key),
        Verb::GetNamesrvConfig => read::get_namesrv_config(ctx),
        Verb::BrokerStatus { broker_addr, cluster, probe } => {
            read::broker_status(ctx, broker_addr.as_deref(), cluster.as_deref(), *probe)
        }
        Verb::RouteDiff { topics, max_topics } => Ok(read::route_diff(ctx, topics.as_deref(), *max_topics)?),
        Verb::UpdateKvConfig { namespace, key, value } => Ok(write::update_kv_config(ctx, namespace, key, value)),
        Verb::DeleteKvConfig { namespace, key } => Ok(write::delete_kv_config(ctx, namespace, key)),
        Verb::WipeWritePerm { broker_name } => Ok(write::wipe_write_perm(ctx, broker_name)),
        Verb::AddWritePerm { broker_name } => Ok(write::add_write_perm(ctx, broker_name)),
        Verb::DeleteTopic { topic, cluster } => Ok(write::delete_topic(ctx, topic, cluster.as_deref())),
        Verb::UpdateNamesrvConfig { key, value } => Ok(write::update_namesrv_config(ctx, key, value)),
    })
}
