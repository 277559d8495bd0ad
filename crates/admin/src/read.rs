//! The read verbs: clusterList, topicRoute, topicList, getKVConfig, getNamesrvConfig,
//! brokerStatus and routeDiff. Each asks the first NameServer that answers usably (routeDiff
//! asks all of them) and builds a `Report`.
//! Must not: send a request with side effects.

use crate::ctx::{cluster_info, topics, Ctx, ReplyExt};
use crate::report::{Failure, Report, Table, UsageError, EXIT_ANSWER_ERROR, EXIT_DIFFERENT, EXIT_OK, EXIT_UNUSABLE};
use meridian_client::conn::{self, broker_entries, BrokerData, BrokerEntry, ClientError, QueueData, TopicRouteData};
use meridian_protocol::body::MASTER_ID;
use meridian_protocol::{codes, perm};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

/// brokerStatus --probe connects to at most this many brokers at once.
const PROBE_PARALLEL_MAX: usize = 64;
/// mqadmin's `topicList -c` leaves out consumer-group topics (MixAll's prefixes).
const GROUP_TOPIC_PREFIXES: [&str; 2] = ["%RETRY%", "%DLQ%"];

/// `6 (READ|WRITE)`.
fn perm_text(perm: i32) -> String {
    let names: Vec<&str> = perm::NAMES.iter().filter(|(bit, _)| perm & bit != 0).map(|(_, name)| *name).collect();
    if names.is_empty() {
        format!("{perm} (none)")
    } else {
        format!("{perm} ({})", names.join("|"))
    }
}

pub(crate) fn cluster_list(ctx: &Ctx, cluster: Option<&str>) -> Result<Report, Failure> {
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

pub(crate) fn topic_route(ctx: &Ctx, topic: &str) -> Result<Report, Failure> {
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
            let role = if *id == MASTER_ID { "MASTER" } else { "SLAVE" };
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

pub(crate) fn topic_list(ctx: &Ctx, cluster_model: bool) -> Result<Report, Failure> {
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

pub(crate) fn get_kv_config(ctx: &Ctx, namespace: &str, key: &str) -> Result<Report, Failure> {
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

pub(crate) fn get_namesrv_config(ctx: &Ctx) -> Result<Report, Failure> {
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

pub(crate) fn broker_status(
    ctx: &Ctx,
    broker_addr: Option<&str>,
    cluster: Option<&str>,
    probe: bool,
) -> Result<Report, Failure> {
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
    let probes: Vec<Option<Result<(), ClientError>>> = if probe {
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
                entry["probeError"] = json!(e.to_string());
            }
            None => {}
        }
        table.row(cells);
        brokers.push(entry);
    }
    Ok(Report { human: table.render(), json: json!({"namesrv": namesrv, "brokers": brokers}), notes, exit_code })
}

/// routeDiff (`meridian_client::route_diff`): reads every address, compares, exits 0 / 4 / 3.
pub(crate) fn route_diff(ctx: &Ctx, topics: Option<&[String]>, max_topics: usize) -> Result<Report, UsageError> {
    use meridian_client::route_diff::fetch::{fetch_all, FetchOptions};
    if ctx.addrs.len() < 2 {
        return Err(UsageError::OneNamesrv { given: ctx.addrs.join(";") });
    }
    let options = FetchOptions {
        timeout: ctx.timeout,
        topics: topics.map(<[String]>::to_vec),
        max_topics,
        presence_only_above_max: false,
        credentials: ctx.credentials.clone(),
    };
    let fetched = fetch_all(&ctx.addrs, &options).map_err(UsageError::TooManyTopics)?;
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
fn probe_all(addrs: &[&str], timeout: Duration) -> Vec<Result<(), ClientError>> {
    let mut results = Vec::with_capacity(addrs.len());
    for chunk in addrs.chunks(PROBE_PARALLEL_MAX) {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|addr| scope.spawn(move || probe(addr, timeout))).collect();
            for handle in handles {
                results
                    .push(handle.join().unwrap_or_else(|_| Err(ClientError::Io("probe thread panicked".to_string()))));
            }
        });
    }
    results
}

fn probe(addr: &str, timeout: Duration) -> Result<(), ClientError> {
    conn::connect(addr, timeout).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_names_every_bit() {
        assert_eq!(perm_text(6), "6 (READ|WRITE)");
        assert_eq!(perm_text(4), "4 (READ)");
        assert_eq!(perm_text(7), "7 (READ|WRITE|INHERIT)");
        assert_eq!(perm_text(0), "0 (none)");
    }
}
