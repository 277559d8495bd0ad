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

use super::{BrokerAddrs, BrokerEntry, DataVersion, LiveKey, NamesrvView, QueueData, TopicRoute, Unreadable};
use crate::admin_cli::encode_request;
use crate::protocol::body::decode_answer_json;
use crate::protocol::codes;
use crate::protocol::frame;
use crate::protocol::header::Header;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Route requests in flight on one connection. Requests are ~200 bytes, so a window's worth
/// always fits the socket buffers and writing never waits for the NameServer to be read.
pub const PIPELINE_WINDOW: usize = 32;
/// Largest answer frame accepted (as the admin CLI: a Java NameServer sends at most 16 MiB).
const ANSWER_FRAME_BYTES_MAX: u32 = 64 * 1024 * 1024;
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
    let first: Vec<Result<Started, String>> = parallel(addrs, |addr| {
        let mut conn = Conn::open(addr, options.timeout)?;
        let brokers = conn.cluster_info()?;
        let data_versions = conn.live_table()?;
        let listed = match options.topics {
            Some(_) => Vec::new(),
            None => conn.topic_list()?,
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
    let mut work: Vec<(String, Result<Started, String>)> = addrs.iter().cloned().zip(first).collect();
    let second: Vec<Result<NamesrvView, String>> = parallel_mut(&mut work, |(_, state)| {
        let (conn, brokers, data_versions, listed) = match state {
            Ok(s) => s,
            Err(e) => return Err(e.clone()),
        };
        let topics = if presence_only {
            listed.iter().map(|t| (t.clone(), None)).collect()
        } else {
            conn.routes(&topics)?.into_iter().map(|(t, r)| (t, Some(r))).collect()
        };
        Ok(NamesrvView { brokers: std::mem::take(brokers), data_versions: data_versions.take(), topics })
    });
    let mut fetched = Fetched { topics_asked: if presence_only { 0 } else { topics.len() }, ..Fetched::default() };
    for ((addr, _), result) in work.into_iter().zip(second) {
        match result {
            Ok(view) => fetched.views.push((addr, view)),
            Err(error) => fetched.unreadable.push(Unreadable { namesrv: addr, error }),
        }
    }
    if options.topics.is_some() && !fetched.views.is_empty() {
        fetched.topics_nowhere =
            topics.into_iter().filter(|t| fetched.views.iter().all(|(_, v)| !v.topics.contains_key(t))).collect();
    }
    Ok(fetched)
}

fn parallel<T: Send>(addrs: &[String], work: impl Fn(&str) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = addrs.iter().map(|addr| scope.spawn(move || work(addr))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

fn parallel_mut<S: Send, T: Send>(items: &mut [S], work: impl Fn(&mut S) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items.iter_mut().map(|item| scope.spawn(move || work(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

// ---------------------------------------------------------------------------------------
// Answer bodies (bodies.md §6–§8), read leniently: unknown keys ignored, missing ones empty
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ClusterInfoWire {
    broker_addr_table: BTreeMap<String, BrokerDataWire>,
    cluster_addr_table: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BrokerDataWire {
    cluster: String,
    broker_name: String,
    broker_addrs: BrokerAddrs,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct QueueDataWire {
    broker_name: String,
    read_queue_nums: i32,
    write_queue_nums: i32,
    perm: i32,
    topic_sys_flag: i32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TopicRouteWire {
    broker_datas: Vec<BrokerDataWire>,
    queue_datas: Vec<QueueDataWire>,
}

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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TopicListWire {
    topic_list: Vec<String>,
}

/// Every broker address of a cluster info, under each cluster that lists its name (brokers
/// no cluster lists under their own `cluster`).
fn broker_entries(info: &ClusterInfoWire) -> BTreeSet<BrokerEntry> {
    let mut out = BTreeSet::new();
    let mut push = |cluster: &str, b: &BrokerDataWire| {
        for (id, addr) in &b.broker_addrs {
            out.insert(BrokerEntry {
                cluster: cluster.to_string(),
                broker_name: b.broker_name.clone(),
                broker_id: *id,
                addr: addr.clone(),
            });
        }
    };
    let mut listed = BTreeSet::new();
    for (cluster, names) in &info.cluster_addr_table {
        for name in names {
            if let Some(b) = info.broker_addr_table.get(name) {
                listed.insert(name.as_str());
                push(cluster, b);
            }
        }
    }
    for (name, b) in &info.broker_addr_table {
        if !listed.contains(name.as_str()) {
            push(&b.cluster, b);
        }
    }
    out
}

fn topic_route(wire: TopicRouteWire) -> TopicRoute {
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
                (q.broker_name, data)
            })
            .collect(),
        broker_addrs: wire.broker_datas.into_iter().map(|b| (b.broker_name, b.broker_addrs)).collect(),
    }
}

// ---------------------------------------------------------------------------------------
// The connection
// ---------------------------------------------------------------------------------------

struct Conn {
    stream: TcpStream,
    timeout: Duration,
    opaque_next: i32,
}

struct Answer {
    header: Header,
    body: Vec<u8>,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Conn {
    fn open(addr: &str, timeout: Duration) -> Result<Conn, String> {
        let resolved: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve: {e}"))?.collect();
        let mut last_error = None;
        for socket_addr in &resolved {
            match TcpStream::connect_timeout(socket_addr, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    stream.set_write_timeout(Some(timeout)).map_err(|e| format!("socket: {e}"))?;
                    return Ok(Conn { stream, timeout, opaque_next: 1 });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(match last_error {
            Some(e) if is_timeout(&e) => format!("cannot connect within {} ms", timeout.as_millis()),
            Some(e) => format!("cannot connect: {e}"),
            None => "cannot resolve: no address".to_string(),
        })
    }

    /// Appends one request to `out`; returns its opaque.
    fn encode(&mut self, out: &mut Vec<u8>, code: i32, ext: &[(&str, &str)]) -> i32 {
        let opaque = self.opaque_next;
        self.opaque_next = self.opaque_next.wrapping_add(1);
        out.extend_from_slice(&encode_request(code, opaque, ext, b""));
        opaque
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| {
            if is_timeout(&e) {
                format!("request not taken within {} ms", self.timeout.as_millis())
            } else {
                format!("sending requests: {e}")
            }
        })
    }

    /// One request, its answer (matched by opaque; anything else is skipped).
    fn call(&mut self, code: i32, ext: &[(&str, &str)]) -> Result<Answer, String> {
        let mut bytes = Vec::new();
        let opaque = self.encode(&mut bytes, code, ext);
        self.send(&bytes)?;
        loop {
            let answer = self.read_answer()?;
            if answer.header.opaque == opaque {
                return Ok(answer);
            }
        }
    }

    /// The next answer frame, within the timeout.
    fn read_answer(&mut self) -> Result<Answer, String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut prefix = [0u8; frame::LENGTH_PREFIX_BYTES];
            self.read_exact_by(&mut prefix, deadline)?;
            let frame_bytes =
                frame::peek_frame_len(&prefix, ANSWER_FRAME_BYTES_MAX).map_err(|e| format!("malformed answer: {e}"))?;
            let mut whole = vec![0u8; frame_bytes];
            whole[..prefix.len()].copy_from_slice(&prefix);
            self.read_exact_by(&mut whole[prefix.len()..], deadline)?;
            frame::check(&whole, ANSWER_FRAME_BYTES_MAX, ANSWER_FRAME_BYTES_MAX)
                .map_err(|e| format!("malformed answer: {e}"))?;
            let parts = frame::split(&whole, frame_bytes);
            let header = Header::decode(parts.serialize_type, &whole[parts.header])
                .map_err(|e| format!("malformed answer header: {e}"))?;
            // A NameServer sends nothing but answers to a client; skip anything else.
            if header.is_response() {
                return Ok(Answer { header, body: whole[parts.body].to_vec() });
            }
        }
    }

    fn read_exact_by(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), String> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer within {} ms", self.timeout.as_millis()));
            }
            self.stream.set_read_timeout(Some(left)).map_err(|e| format!("socket: {e}"))?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) => return Err("connection closed before the answer was complete".to_string()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(format!("no answer within {} ms", self.timeout.as_millis())),
                Err(e) => return Err(format!("reading the answer: {e}")),
            }
        }
        Ok(())
    }

    fn failed(request: &str, answer: &Answer) -> String {
        format!(
            "{request} answered code {}: {}",
            answer.header.code,
            answer.header.remark.as_deref().unwrap_or("(no remark)")
        )
    }

    fn cluster_info(&mut self) -> Result<BTreeSet<BrokerEntry>, String> {
        let answer = self.call(codes::GET_BROKER_CLUSTER_INFO, &[])?;
        if answer.header.code != codes::SUCCESS {
            return Err(Conn::failed("GET_BROKER_CLUSTER_INFO (106)", &answer));
        }
        let info: ClusterInfoWire =
            decode_answer_json(&answer.body, "ClusterInfo").map_err(|e| format!("malformed answer: {e}"))?;
        Ok(broker_entries(&info))
    }

    /// Data versions from MERIDIAN_BROKER_LIVE_TABLE; `None` when any error code answers it
    /// (a stock NameServer: the request is unknown there).
    fn live_table(&mut self) -> Result<DataVersions, String> {
        let answer = self.call(codes::MERIDIAN_BROKER_LIVE_TABLE, &[])?;
        if answer.header.code != codes::SUCCESS {
            return Ok(None);
        }
        let table: LiveTableWire =
            serde_json::from_slice(&answer.body).map_err(|e| format!("malformed broker live table: {e}"))?;
        Ok(Some(table.brokers.into_iter().map(|b| ((b.cluster, b.addr), b.data_version)).collect()))
    }

    fn topic_list(&mut self) -> Result<Vec<String>, String> {
        let answer = self.call(codes::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &[])?;
        if answer.header.code != codes::SUCCESS {
            let mut e = Conn::failed("GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206)", &answer);
            e.push_str(" (enableAllTopicList=false? name the topics with --topics)");
            return Err(e);
        }
        let list: TopicListWire =
            decode_answer_json(&answer.body, "TopicList").map_err(|e| format!("malformed answer: {e}"))?;
        Ok(list.topic_list)
    }

    /// The routes of `topics` that exist here (TOPIC_NOT_EXIST leaves a topic out),
    /// [`PIPELINE_WINDOW`] requests in flight.
    fn routes(&mut self, topics: &[String]) -> Result<BTreeMap<String, TopicRoute>, String> {
        let mut out = BTreeMap::new();
        let mut pending: HashMap<i32, usize> = HashMap::with_capacity(PIPELINE_WINDOW);
        let mut next = 0;
        let mut bytes = Vec::with_capacity(PIPELINE_WINDOW * 256);
        while next < topics.len() || !pending.is_empty() {
            bytes.clear();
            while next < topics.len() && pending.len() < PIPELINE_WINDOW {
                let opaque = self.encode(&mut bytes, codes::GET_ROUTEINFO_BY_TOPIC, &[("topic", &topics[next])]);
                pending.insert(opaque, next);
                next += 1;
            }
            if !bytes.is_empty() {
                self.send(&bytes)?;
            }
            let answer = self.read_answer()?;
            let Some(index) = pending.remove(&answer.header.opaque) else { continue };
            let topic = &topics[index];
            match answer.header.code {
                codes::SUCCESS => {
                    let wire: TopicRouteWire = decode_answer_json(&answer.body, "TopicRouteData")
                        .map_err(|e| format!("malformed route of {topic}: {e}"))?;
                    out.insert(topic.clone(), topic_route(wire));
                }
                codes::TOPIC_NOT_EXIST => {}
                _ => return Err(Conn::failed(&format!("GET_ROUTEINFO_BY_TOPIC (105) of {topic}"), &answer)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_in_java_legacy_form_gives_every_address() {
        let body = br#"{"brokerAddrTable":{"broker-b":{"brokerAddrs":{0:"10.0.0.2:10911"},"brokerName":"broker-b","cluster":"c1"},"broker-a":{"brokerAddrs":{1:"10.0.0.3:10911",0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"c1"},"lost":{"brokerAddrs":{0:"10.0.0.9:10911"},"brokerName":"lost","cluster":"c9"}},"clusterAddrTable":{"c1":["broker-b","broker-a"]}}"#;
        let info: ClusterInfoWire = decode_answer_json(body, "ClusterInfo").unwrap();
        let entries: Vec<(String, String, i64, String)> =
            broker_entries(&info).into_iter().map(|b| (b.cluster, b.broker_name, b.broker_id, b.addr)).collect();
        let e = |c: &str, n: &str, id: i64, a: &str| (c.to_string(), n.to_string(), id, a.to_string());
        assert_eq!(
            entries,
            vec![
                e("c1", "broker-a", 0, "10.0.0.1:10911"),
                e("c1", "broker-a", 1, "10.0.0.3:10911"),
                e("c1", "broker-b", 0, "10.0.0.2:10911"),
                e("c9", "lost", 0, "10.0.0.9:10911"),
            ]
        );
    }

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
        };
        let fetched = fetch_all(std::slice::from_ref(&dead), &options).unwrap();
        assert!(fetched.views.is_empty());
        assert_eq!(fetched.unreadable.len(), 1);
        assert!(fetched.unreadable[0].error.starts_with("cannot connect"), "{:?}", fetched.unreadable);
        let too_many = FetchOptions { max_topics: 0, ..options };
        assert_eq!(fetch_all(&[dead], &too_many).unwrap_err(), TooManyTopics { topics: 1, max: 0 });
    }
}
