//! Reads what NameServers serve, for [`super::compare`]: one blocking std connection per
//! NameServer, all NameServers at once (one thread each, so their views are taken as close
//! together in time as possible). Stock requests only: 106 (cluster info), 206 (every
//! topic; skipped when the topics are given) and 105 per topic, pipelined
//! ([`PIPELINE_WINDOW`] in flight, answers matched by opaque, so a NameServer that answers
//! out of order — Java's executors — is fine).
//!
//! Plus, for data versions, Meridian's MERIDIAN_BROKER_LIVE_TABLE (43702): a stock
//! NameServer answers it with an error (Java 3, rocketmq-rust 16) and nothing else happens.
//!
//! Must not: send QUERY_DATA_VERSION (322) or any other request with side effects (Java's
//! 322 refreshes the broker's heartbeat timestamp), or hold more than
//! `max_topics` topics' routes.

use super::{BrokerEntry, DataVersion, LiveKey, NamesrvView, QueueData, TopicRoute, Unreadable};
use crate::conn::{broker_entries, ClientError, ClusterInfo, Conn, Credentials, Reply, TopicList, TopicRouteData};
use meridian_protocol::body::decode_answer_json;
use meridian_protocol::codes;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Route requests in flight on one connection. Requests are ~200 bytes, so a window's worth
/// always fits the socket buffers and writing never waits for the NameServer to be read.
pub const PIPELINE_WINDOW: usize = 32;
/// Default bound on the topics whose routes are read (`--max-topics`).
pub const MAX_TOPICS_DEFAULT: usize = 100_000;

/// What to read.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Bound on connecting and on each answer.
    pub timeout: Duration,
    /// Only these topics (no 206); `None`: every topic any NameServer lists.
    pub topics: Option<Vec<String>>,
    /// More topics than this (over all NameServers) are not read route by route.
    pub max_topics: usize,
    /// Over `max_topics`: `true` compares presence only (from 206), `false` refuses.
    pub presence_only_above_max: bool,
    /// Signs every request with these when given (see `Conn::with_credentials`).
    pub credentials: Option<Credentials>,
}

/// More topics than the bound allows, and routes were required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyTopics {
    pub topics: usize,
    pub max: usize,
}

/// Views in the order of the addresses given; failed ones as [`Unreadable`].
#[derive(Debug, Default)]
pub struct Fetched {
    pub views: Vec<(String, NamesrvView)>,
    pub unreadable: Vec<Unreadable>,
    /// Distinct topics whose routes were asked for (0 when presence only).
    pub topics_asked: usize,
    /// Given topics no NameServer has a route for.
    pub topics_nowhere: Vec<String>,
}

/// Data versions by broker address (`None`: not served, a stock NameServer).
type DataVersions = Option<BTreeMap<LiveKey, DataVersion>>;

/// A NameServer after the first phase: its connection, brokers, data versions and listed topics.
type Started = (Conn, BTreeSet<BrokerEntry>, DataVersions, Vec<String>);

/// Reads every NameServer in `addrs` (in parallel). A NameServer that fails any request is
/// [`Unreadable`]; the others are still read.
pub fn fetch_all(addrs: &[String], options: &FetchOptions) -> Result<Fetched, TooManyTopics> {
    // Phase 1: cluster info and topic list, everywhere at once.
    let first: Vec<Result<Started, FetchError>> = in_parallel(&mut addrs.to_vec(), |addr| {
        let mut conn = Conn::open(addr, options.timeout)?.with_credentials(options.credentials.clone());
        let brokers = cluster_info(&mut conn)?;
        let data_versions = live_table(&mut conn)?;
        let listed = match options.topics {
            Some(_) => Vec::new(),
            None => topic_list(&mut conn)?,
        };
        Ok((conn, brokers, data_versions, listed))
    });
    let topics: BTreeSet<String> = match &options.topics {
        Some(given) => given.iter().cloned().collect(),
        None => first.iter().flatten().flat_map(|(_, _, _, listed)| listed.iter().cloned()).collect(),
    };
    let presence_only = topics.len() > options.max_topics;
    if presence_only && !(options.presence_only_above_max && options.topics.is_none()) {
        return Err(TooManyTopics { topics: topics.len(), max: options.max_topics });
    }
    let topics: Vec<String> = topics.into_iter().collect();
    // Phase 2: every topic's route, on the same connections, everywhere at once.
    let mut work: Vec<(String, Result<Started, FetchError>)> = addrs.iter().cloned().zip(first).collect();
    let second: Vec<Result<NamesrvView, FetchError>> = in_parallel(&mut work, |(_, state)| {
        let (conn, brokers, data_versions, listed) = match state {
            Ok(s) => s,
            Err(e) => return Err(e.clone()),
        };
        let topics = if presence_only {
            listed.iter().map(|t| (t.clone(), None)).collect()
        } else {
            routes(conn, &topics)?.into_iter().map(|(t, r)| (t, Some(r))).collect()
        };
        Ok(NamesrvView { brokers: std::mem::take(brokers), data_versions: data_versions.take(), topics })
    });
    let mut fetched = Fetched { topics_asked: if presence_only { 0 } else { topics.len() }, ..Fetched::default() };
    for ((addr, _), result) in work.into_iter().zip(second) {
        match result {
            Ok(view) => fetched.views.push((addr, view)),
            Err(error) => fetched.unreadable.push(Unreadable { namesrv: addr, error: error.to_string() }),
        }
    }
    if options.topics.is_some() && !fetched.views.is_empty() {
        fetched.topics_nowhere =
            topics.into_iter().filter(|t| fetched.views.iter().all(|(_, v)| !v.topics.contains_key(t))).collect();
    }
    Ok(fetched)
}

/// `work` on every item, each on a thread of its own; results in the items' order.
fn in_parallel<S: Send, T: Send>(items: &mut [S], work: impl Fn(&mut S) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items.iter_mut().map(|item| scope.spawn(move || work(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

// ---------------------------------------------------------------------------------------
// Requests (the bodies other than 43702's are in `conn`)
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LiveTableWire {
    brokers: Vec<LiveBrokerWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiveBrokerWire {
    cluster: String,
    addr: String,
    data_version: DataVersion,
}

fn topic_route(wire: TopicRouteData) -> TopicRoute {
    TopicRoute {
        queue_datas: wire
            .queue_datas
            .into_iter()
            .map(|q| {
                let data = QueueData {
                    read_queue_nums: q.read_queue_nums,
                    write_queue_nums: q.write_queue_nums,
                    perm: q.perm,
                    topic_sys_flag: q.topic_sys_flag,
                };
                (q.broker_name.to_string(), data)
            })
            .collect(),
        broker_addrs: wire.broker_datas.into_iter().map(|b| (b.broker_name, b.broker_addrs)).collect(),
    }
}

/// Why one NameServer could not be read. Reported as text in [`Unreadable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No answer: connecting, sending or reading failed, or the bytes were no answer.
    Client(ClientError),
    /// A request was answered with an error code.
    Refused {
        /// The request, named with its code (and topic).
        request: String,
        code: i32,
        remark: Option<String>,
        /// What the user can do about it, when we know.
        hint: Option<&'static str>,
    },
    /// An answer body that is not what the request returns.
    Malformed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Client(e) => write!(f, "{e}"),
            FetchError::Refused { request, code, remark, hint } => {
                write!(f, "{request} answered code {code}: {}", remark.as_deref().unwrap_or("(no remark)"))?;
                match hint {
                    Some(hint) => write!(f, " ({hint})"),
                    None => Ok(()),
                }
            }
            FetchError::Malformed(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for FetchError {}

impl From<ClientError> for FetchError {
    fn from(e: ClientError) -> FetchError {
        FetchError::Client(e)
    }
}

fn failed(request: &str, answer: &Reply) -> FetchError {
    FetchError::Refused {
        request: request.to_string(),
        code: answer.header.code,
        remark: answer.header.remark.clone(),
        hint: None,
    }
}

fn cluster_info(conn: &mut Conn) -> Result<BTreeSet<BrokerEntry>, FetchError> {
    let answer = conn.call(codes::GET_BROKER_CLUSTER_INFO, &[], b"")?;
    if answer.header.code != codes::SUCCESS {
        return Err(failed("GET_BROKER_CLUSTER_INFO (106)", &answer));
    }
    let info: ClusterInfo = answer.json("ClusterInfo")?;
    Ok(broker_entries(&info).into_iter().collect())
}

/// Data versions from MERIDIAN_BROKER_LIVE_TABLE; `None` when any error code answers it
/// (a stock NameServer: the request is unknown there).
fn live_table(conn: &mut Conn) -> Result<DataVersions, FetchError> {
    let answer = conn.call(codes::MERIDIAN_BROKER_LIVE_TABLE, &[], b"")?;
    if answer.header.code != codes::SUCCESS {
        return Ok(None);
    }
    let table: LiveTableWire = serde_json::from_slice(&answer.body)
        .map_err(|e| FetchError::Malformed(format!("malformed broker live table: {e}")))?;
    Ok(Some(table.brokers.into_iter().map(|b| ((b.cluster, b.addr), b.data_version)).collect()))
}

fn topic_list(conn: &mut Conn) -> Result<Vec<String>, FetchError> {
    let answer = conn.call(codes::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &[], b"")?;
    if answer.header.code != codes::SUCCESS {
        let mut e = failed("GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206)", &answer);
        if let FetchError::Refused { hint, .. } = &mut e {
            *hint = Some("enableAllTopicList=false? name the topics with --topics");
        }
        return Err(e);
    }
    let list: TopicList = answer.json("TopicList")?;
    Ok(list.topic_list)
}

/// The routes of `topics` that exist here (TOPIC_NOT_EXIST leaves a topic out),
/// [`PIPELINE_WINDOW`] requests in flight; each answer within the timeout.
fn routes(conn: &mut Conn, topics: &[String]) -> Result<BTreeMap<String, TopicRoute>, FetchError> {
    let mut out = BTreeMap::new();
    let mut pending: HashMap<i32, usize> = HashMap::with_capacity(PIPELINE_WINDOW);
    let mut next = 0;
    let mut bytes = Vec::with_capacity(PIPELINE_WINDOW * 256);
    while next < topics.len() || !pending.is_empty() {
        bytes.clear();
        while next < topics.len() && pending.len() < PIPELINE_WINDOW {
            let opaque = conn.encode(&mut bytes, codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", &topics[next])], b"");
            pending.insert(opaque, next);
            next += 1;
        }
        if !bytes.is_empty() {
            conn.send(&bytes)?;
        }
        let answer = conn.read_reply(Instant::now() + conn.timeout())?;
        let Some(index) = pending.remove(&answer.header.opaque) else { continue };
        let topic = &topics[index];
        match answer.header.code {
            codes::SUCCESS => {
                let wire: TopicRouteData = decode_answer_json(&answer.body, "TopicRouteData")
                    .map_err(|e| FetchError::Malformed(format!("malformed route of {topic}: {e}")))?;
                out.insert(topic.clone(), topic_route(wire));
            }
            codes::TOPIC_NOT_EXIST => {}
            _ => return Err(failed(&format!("GET_ROUTEINFO_BY_TOPIC (105) of {topic}"), &answer)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_bodies_keep_queue_data_and_addresses_by_broker_name() {
        let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.3:10911"},"brokerName":"broker-a","cluster":"c1"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":8}]}"#;
        let route = topic_route(decode_answer_json(body, "TopicRouteData").unwrap());
        let q = route.queue_datas["broker-a"];
        assert_eq!((q.read_queue_nums, q.write_queue_nums, q.perm, q.topic_sys_flag), (4, 8, 6, 0));
        assert_eq!(route.broker_addrs["broker-a"].len(), 2);
    }

    #[test]
    fn an_address_nothing_listens_on_is_unreadable_and_the_bound_is_enforced() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = listener.local_addr().unwrap().to_string();
        drop(listener);
        let options = FetchOptions {
            timeout: Duration::from_secs(2),
            topics: Some(vec!["T".into()]),
            max_topics: 10,
            presence_only_above_max: false,
            credentials: None,
        };
        let fetched = fetch_all(std::slice::from_ref(&dead), &options).unwrap();
        assert!(fetched.views.is_empty());
        assert_eq!(fetched.unreadable.len(), 1);
        assert!(fetched.unreadable[0].error.starts_with("cannot connect"), "{:?}", fetched.unreadable);
        let too_many = FetchOptions { max_topics: 0, ..options };
        assert_eq!(fetch_all(&[dead], &too_many).unwrap_err(), TooManyTopics { topics: 1, max: 0 });
    }
}
