//! Interop client for `make interop`: proves that the real rocketmq-rust 1.0.0 client works
//! against a NameServer (Meridian) with a real broker registered in it.
//!
//! It runs four phases in order, and each one fails the run with a message naming what was
//! missing and what to look at next:
//! 1. cluster info (GET_BROKER_CLUSTER_INFO, 106) through the admin API: at least one broker;
//! 2. topic route (GET_ROUTEINFO_BY_TOPIC, 105) through the admin API, creating the topic through
//!    the producer's `create_topic` (the broker then reports it to the NameServer) when the
//!    NameServer does not know it yet: at least one broker, one queue, and no queue whose broker
//!    is missing from the route;
//! 3. produce `message_count` messages with `DefaultMQProducer`, each with a unique key and body;
//! 4. consume them with `DefaultMQPushConsumer` until every key was seen with its own body.
//!
//! This program only talks to what the NameServer tells it about; it starts no processes. The
//! harness `interop/run.sh` starts Meridian and the broker and reads Meridian's log.
//!
//! Usage: `meridian-interop-client NAMESRV_ADDR TOPIC [MESSAGE_COUNT] [CONSUMER_GROUP]`.
//! Exit status: 0 when all messages came back, 1 on any failure, 2 on bad arguments.
//! Set `INTEROP_CLIENT_LOG` to a tracing filter (e.g. `info`) to see the client crate's logs.

// The client crate's futures are deeply nested; computing their layout exceeds the default
// query depth of 128 (the crate's own examples raise it the same way).
#![recursion_limit = "512"]

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use rocketmq_client_rust::ClientRuntime;
use rocketmq_client_rust::ClientRuntimeConfig;
use rocketmq_client_rust::ConsumeConcurrentlyContext;
use rocketmq_client_rust::ConsumeConcurrentlyStatus;
use rocketmq_client_rust::DefaultMQAdminExt;
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_client_rust::DefaultMQPushConsumer;
use rocketmq_client_rust::MQAdminReadExt;
use rocketmq_client_rust::MQPushConsumer;
use rocketmq_client_rust::SendStatus;
use rocketmq_client_rust::TelemetryHandle;
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_protocol::protocol::route::topic_route_data::TopicRouteData;
use rocketmq_runtime::RuntimeConfig;
use rocketmq_runtime::RuntimeOwner;

/// Messages produced and consumed when the caller gives no count.
const MESSAGE_COUNT_DEFAULT: usize = 100;
/// Upper bound on the count argument, so a typo cannot turn a smoke test into a soak test.
const MESSAGE_COUNT_MAX: usize = 100_000;
const CONSUMER_GROUP_DEFAULT: &str = "meridian-interop-consumer";
/// The broker's auto-create template topic; `create_topic` looks up its route to find brokers.
const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";
/// Queues asked for when this program creates the topic.
const TOPIC_QUEUE_COUNT: i32 = 4;

/// Timeout of each admin request to the NameServer.
const ADMIN_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// How long a route may take to appear after the topic was created: the broker reports new
/// topics at once (217) and in every registration (103, every 30 s), so 40 s covers one missed
/// report plus a full registration period.
const ROUTE_WAIT_MS_MAX: u64 = 40_000;
/// Pause between route polls while waiting for the topic to appear.
const ROUTE_POLL_INTERVAL_MS: u64 = 500;
/// Timeout of one send, including the producer's internal retries.
const SEND_TIMEOUT_MS: u64 = 5_000;
/// How long the push consumer may take to deliver every message. A healthy run needs about 2 s
/// (rebalance takes about 1 s); a message that fails once comes back by retry after about 10 s.
const CONSUME_WAIT_MS_MAX: u64 = 120_000;
/// Pause between checks of the consumed set.
const CONSUME_POLL_INTERVAL_MS: u64 = 200;
/// Shutdown of one client object; a hung shutdown must not turn a pass into a hang.
const SHUTDOWN_WAIT_MS_MAX: u64 = 15_000;
/// Queue depth of every blocking lane of the client runtime. The default is sized from the CPU
/// count (32 on two cores) and push-consumer callbacks run on that lane, so a burst of 100
/// messages overflows it and the overflow only comes back through retry ~10 s later.
const BLOCKING_LANE_QUEUE_DEPTH: usize = 4_096;
/// Missing keys printed on a consume timeout; the rest are counted, not listed.
const MISSING_KEYS_SHOWN_MAX: usize = 10;

struct Args {
    namesrv_addr: String,
    topic: String,
    message_count: usize,
    consumer_group: String,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("interop-client: {message}");
            eprintln!("usage: meridian-interop-client NAMESRV_ADDR TOPIC [MESSAGE_COUNT] [CONSUMER_GROUP]");
            return ExitCode::from(2);
        }
    };
    match run_with_runtime(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("interop-client: FAIL: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    if argv.len() < 2 || argv.len() > 4 {
        return Err(format!("expected 2 to 4 arguments, got {}", argv.len()));
    }
    let message_count = match argv.get(2) {
        None => MESSAGE_COUNT_DEFAULT,
        Some(text) => {
            text.parse::<usize>().map_err(|error| format!("MESSAGE_COUNT {text:?} is not a count: {error}"))?
        }
    };
    if message_count == 0 || message_count > MESSAGE_COUNT_MAX {
        return Err(format!("MESSAGE_COUNT {message_count} is outside 1..={MESSAGE_COUNT_MAX}"));
    }
    Ok(Args {
        namesrv_addr: argv[0].clone(),
        topic: argv[1].clone(),
        message_count,
        consumer_group: argv.get(3).cloned().unwrap_or_else(|| CONSUMER_GROUP_DEFAULT.to_string()),
    })
}

/// Builds the runtime the client crate requires (it never creates one itself), runs the
/// phases on it, and shuts everything down within a bound whatever the outcome.
fn run_with_runtime(args: &Args) -> Result<(), String> {
    let mut runtime_config =
        RuntimeConfig { thread_name: "meridian-interop-client".to_string(), ..RuntimeConfig::default() };
    let lanes = &mut runtime_config.blocking_lane_policies;
    for lane in [&mut lanes.storage_io, &mut lanes.metadata_io, &mut lanes.cpu_crypto] {
        lane.max_queue_depth = lane.max_queue_depth.max(BLOCKING_LANE_QUEUE_DEPTH);
    }
    let owner = RuntimeOwner::plan(runtime_config)
        .map_err(|error| format!("runtime configuration rejected: {error}"))?
        .build()
        .map_err(|error| format!("cannot build the client runtime: {error}"))?;

    // Logging is opt-in so the summary stays readable; the guard must outlive the clients.
    let telemetry_guard = match std::env::var("INTEROP_CLIENT_LOG") {
        Ok(filter) if !filter.trim().is_empty() => Some(install_logging(filter)?),
        _ => None,
    };
    let telemetry_handle = telemetry_guard.as_ref().map_or_else(TelemetryHandle::noop, |guard| guard.handle());

    let client_runtime = ClientRuntime::try_new(
        owner.root_context().component("interop-client"),
        ClientRuntimeConfig::default(),
        telemetry_handle,
    )
    .map_err(|error| format!("cannot create the client runtime: {error}"))?;

    let outcome = owner.block_on(async {
        let outcome = run(args, Arc::clone(&client_runtime)).await;
        let report = bounded("client runtime shutdown", client_runtime.shutdown()).await;
        if let Some(report) = report.filter(|report| !report.is_healthy()) {
            eprintln!("interop-client: warning: client runtime shutdown report: {}", report.to_json());
        }
        outcome
    });
    drop(client_runtime);
    // Background shutdown does not wait for Tokio's workers: the outcome is already known and a
    // straggling client task must not hold the process open.
    let _ = owner.shutdown_background();
    if let Some(guard) = telemetry_guard {
        let _ = guard.shutdown();
    }
    outcome
}

fn install_logging(filter: String) -> Result<rocketmq_observability::TelemetryRuntimeGuard, String> {
    let mut config = rocketmq_observability::TelemetryBootstrapConfig::default();
    config.logging.filter = filter;
    config.logging.console.ansi = false;
    rocketmq_observability::install_global(&config).map_err(|error| format!("cannot install logging: {error}"))
}

/// Awaits `future` for at most `SHUTDOWN_WAIT_MS_MAX`, warning (not failing) on expiry.
async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> Option<T> {
    match tokio::time::timeout(Duration::from_millis(SHUTDOWN_WAIT_MS_MAX), future).await {
        Ok(value) => Some(value),
        Err(_) => {
            eprintln!("interop-client: warning: {what} did not finish within {SHUTDOWN_WAIT_MS_MAX} ms");
            None
        }
    }
}

/// Runs the four phases; every client object started here is shut down before returning.
async fn run(args: &Args, client_runtime: Arc<ClientRuntime>) -> Result<(), String> {
    let run_start = Instant::now();
    // Keys carry a per-run id so messages from an earlier run on the same topic are ignored.
    let run_id = format!(
        "{}-{}",
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis()),
        std::process::id()
    );
    println!(
        "interop-client: namesrv={} topic={} messages={} consumer_group={} run_id={run_id}",
        args.namesrv_addr, args.topic, args.message_count, args.consumer_group
    );

    let mut admin =
        DefaultMQAdminExt::with_timeout(Arc::clone(&client_runtime), Duration::from_millis(ADMIN_REQUEST_TIMEOUT_MS));
    admin.set_namesrv_addr(args.namesrv_addr.as_str());
    admin.start().await.map_err(|error| format!("admin start: {error}"))?;

    let mut producer = DefaultMQProducer::builder(Arc::clone(&client_runtime))
        .producer_group(format!("meridian-interop-producer-{run_id}"))
        .name_server_addr(args.namesrv_addr.as_str())
        .send_msg_timeout(SEND_TIMEOUT_MS as u32)
        .build();
    if let Err(error) = producer.start().await {
        bounded("admin shutdown", admin.shutdown()).await;
        return Err(format!("producer start: {error}"));
    }

    let routed = async {
        let broker_count = check_cluster(&admin).await?;
        let route = wait_for_route(&admin, &mut producer, &args.topic).await?;
        Ok::<_, String>((broker_count, route))
    }
    .await;
    bounded("admin shutdown", admin.shutdown()).await;
    let (broker_count, route) = match routed {
        Ok(value) => value,
        Err(message) => {
            bounded("producer shutdown", producer.shutdown()).await;
            return Err(message);
        }
    };

    let produced = produce(&producer, args, &run_id).await;
    bounded("producer shutdown", producer.shutdown()).await;
    let (produce_ms, queue_counts) = produced?;

    let consumed = consume(Arc::clone(&client_runtime), args, &run_id).await?;

    println!(
        "interop-client: PASS brokers={broker_count} route_queues={} produced={} in {produce_ms} ms \
         (per queue {queue_counts:?}) consumed={} distinct in {} ms (deliveries {}, duplicates {}) total {} ms",
        route.queue_summary,
        args.message_count,
        consumed.distinct_count,
        consumed.wait_ms,
        consumed.delivery_count,
        consumed.delivery_count - consumed.distinct_count,
        run_start.elapsed().as_millis()
    );
    Ok(())
}

/// Phase 1: the NameServer's cluster view must contain at least one broker.
async fn check_cluster(admin: &DefaultMQAdminExt) -> Result<usize, String> {
    let cluster = admin
        .examine_broker_cluster_info()
        .await
        .map_err(|error| format!("GET_BROKER_CLUSTER_INFO (106) failed: {error}"))?;
    let brokers = cluster.broker_addr_table.unwrap_or_default();
    let clusters = cluster.cluster_addr_table.unwrap_or_default();
    if brokers.is_empty() {
        return Err("GET_BROKER_CLUSTER_INFO (106) returned no brokers: is the broker registered?".to_string());
    }
    for (broker_name, broker) in &brokers {
        let addrs: BTreeMap<_, _> = broker.broker_addrs().iter().collect();
        println!("interop-client: cluster {} broker {broker_name} addrs {addrs:?}", broker.cluster());
    }
    for (cluster_name, broker_names) in &clusters {
        println!("interop-client: cluster {cluster_name} has brokers {broker_names:?}");
    }
    Ok(brokers.len())
}

struct RouteSummary {
    queue_summary: String,
}

/// Phase 2: looks the topic up; creates it once through the producer if the NameServer does not
/// know it, then polls until the route is complete or `ROUTE_WAIT_MS_MAX` passes.
async fn wait_for_route(
    admin: &DefaultMQAdminExt,
    producer: &mut DefaultMQProducer,
    topic: &str,
) -> Result<RouteSummary, String> {
    let deadline = Instant::now() + Duration::from_millis(ROUTE_WAIT_MS_MAX);
    let mut create_attempted = false;
    let mut last_problem;
    loop {
        match admin.examine_topic_route_info(topic.into()).await {
            Ok(Some(route)) => {
                let json = serde_json::to_string(&route).unwrap_or_else(|error| format!("<unprintable: {error}>"));
                match check_route(&route) {
                    Ok(summary) => {
                        println!("interop-client: route {topic}: {json}");
                        return Ok(summary);
                    }
                    Err(problem) => last_problem = format!("route is incomplete: {problem}; route: {json}"),
                }
            }
            Ok(None) => last_problem = "GET_ROUTEINFO_BY_TOPIC (105) returned no route".to_string(),
            Err(error) => last_problem = format!("GET_ROUTEINFO_BY_TOPIC (105) failed: {error}"),
        }
        if !create_attempted {
            create_attempted = true;
            println!("interop-client: topic {topic} not routable yet ({last_problem}); creating it via {AUTO_CREATE_TOPIC_KEY}");
            if let Err(error) =
                producer.create_topic(AUTO_CREATE_TOPIC_KEY, topic, TOPIC_QUEUE_COUNT, HashMap::new()).await
            {
                // The route poll below still decides; creation may have reached the broker.
                println!("interop-client: create_topic reported: {error} (the route of {AUTO_CREATE_TOPIC_KEY} comes from the NameServer)");
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no complete route for {topic} within {ROUTE_WAIT_MS_MAX} ms: {last_problem} \
                 (check the NameServer log for REGISTER_TOPIC_IN_NAMESRV 217 / REGISTER_BROKER 103)"
            ));
        }
        tokio::time::sleep(Duration::from_millis(ROUTE_POLL_INTERVAL_MS)).await;
    }
}

fn check_route(route: &TopicRouteData) -> Result<RouteSummary, String> {
    if route.broker_datas.is_empty() {
        return Err("no brokerDatas".to_string());
    }
    if route.queue_datas.is_empty() {
        return Err("no queueDatas".to_string());
    }
    let broker_names: HashSet<&str> = route.broker_datas.iter().map(|broker| broker.broker_name().as_str()).collect();
    for broker in &route.broker_datas {
        // Broker id 0 is the master; without it nobody can be written to.
        if !broker.broker_addrs().contains_key(&0) {
            return Err(format!("broker {} has no master (id 0) address", broker.broker_name()));
        }
    }
    let mut write_queue_count = 0;
    let mut read_queue_count = 0;
    for queue in &route.queue_datas {
        if !broker_names.contains(queue.broker_name.as_str()) {
            return Err(format!("queueData names broker {} absent from brokerDatas", queue.broker_name));
        }
        write_queue_count += queue.write_queue_nums;
        read_queue_count += queue.read_queue_nums;
    }
    if write_queue_count == 0 || read_queue_count == 0 {
        return Err(format!("{write_queue_count} write and {read_queue_count} read queues"));
    }
    Ok(RouteSummary { queue_summary: format!("{write_queue_count}w/{read_queue_count}r") })
}

fn key_prefix(run_id: &str) -> String {
    format!("meridian-interop-{run_id}-")
}

fn message_key(run_id: &str, index: usize) -> String {
    format!("{}{index}", key_prefix(run_id))
}

fn message_body(run_id: &str, index: usize) -> String {
    format!("meridian interop message {index} of run {run_id}")
}

/// Phase 3: sends every message synchronously; any send that is not SEND_OK fails the run.
async fn produce(
    producer: &DefaultMQProducer,
    args: &Args,
    run_id: &str,
) -> Result<(u128, BTreeMap<String, usize>), String> {
    let start = Instant::now();
    let mut queue_counts: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..args.message_count {
        let message = Message::builder()
            .topic(args.topic.as_str())
            .tags("interop")
            .key(message_key(run_id, index))
            .body_slice(message_body(run_id, index).as_bytes())
            .build_unchecked();
        let result = producer
            .send_with_timeout(message, SEND_TIMEOUT_MS)
            .await
            .map_err(|error| format!("send of message {index} failed: {error}"))?
            .ok_or_else(|| format!("send of message {index} returned no result"))?;
        if result.send_status != SendStatus::SendOk {
            return Err(format!("send of message {index} returned {:?}", result.send_status));
        }
        let queue = result
            .message_queue
            .map_or_else(|| "?".to_string(), |queue| format!("{}:{}", queue.broker_name(), queue.queue_id()));
        *queue_counts.entry(queue).or_default() += 1;
    }
    let produce_ms = start.elapsed().as_millis();
    println!("interop-client: produced {} messages in {produce_ms} ms", args.message_count);
    Ok((produce_ms, queue_counts))
}

struct Consumed {
    distinct_count: usize,
    delivery_count: usize,
    wait_ms: u128,
}

/// Phase 4: a fresh push consumer group reads from the first offset until every key of this run
/// arrived with its own body, or `CONSUME_WAIT_MS_MAX` passes.
async fn consume(client_runtime: Arc<ClientRuntime>, args: &Args, run_id: &str) -> Result<Consumed, String> {
    let start = Instant::now();
    let seen_keys: Arc<Mutex<HashSet<usize>>> = Arc::new(Mutex::new(HashSet::new()));
    let delivery_count = Arc::new(AtomicUsize::new(0));
    let wrong_bodies: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));

    let mut consumer = DefaultMQPushConsumer::builder(client_runtime)
        .consumer_group(args.consumer_group.as_str())
        .name_server_addr(args.namesrv_addr.as_str())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    consumer.subscribe(args.topic.as_str(), "*").await.map_err(|error| format!("consumer subscribe: {error}"))?;

    let key_prefix = key_prefix(run_id);
    let listener_run_id = run_id.to_string();
    let listener_seen = Arc::clone(&seen_keys);
    let listener_deliveries = Arc::clone(&delivery_count);
    let listener_wrong = Arc::clone(&wrong_bodies);
    consumer.register_message_listener_concurrently(
        move |messages: &[&MessageExt], _context: &ConsumeConcurrentlyContext| {
            for message in messages {
                let Some(index) =
                    message.message_inner().keys().unwrap_or_default().iter().find_map(|key| {
                        key.strip_prefix(key_prefix.as_str()).and_then(|rest| rest.parse::<usize>().ok())
                    })
                else {
                    continue; // Another run's message, or one without our key.
                };
                listener_deliveries.fetch_add(1, Ordering::Relaxed);
                let body = message.body().unwrap_or_default();
                if body.as_ref() == message_body(&listener_run_id, index).as_bytes() {
                    listener_seen.lock().expect("no listener panics while holding the lock").insert(index);
                } else {
                    listener_wrong
                        .lock()
                        .expect("no listener panics while holding the lock")
                        .push(format!("key index {index}: body {:?}", String::from_utf8_lossy(&body)));
                }
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    consumer.start().await.map_err(|error| format!("consumer start: {error}"))?;

    let deadline = start + Duration::from_millis(CONSUME_WAIT_MS_MAX);
    let outcome = loop {
        let distinct_count = seen_keys.lock().expect("no listener panics while holding the lock").len();
        let wrong = wrong_bodies.lock().expect("no listener panics while holding the lock").clone();
        if !wrong.is_empty() {
            break Err(format!("{} messages came back with the wrong body, first: {}", wrong.len(), wrong[0]));
        }
        if distinct_count == args.message_count {
            break Ok(Consumed {
                distinct_count,
                delivery_count: delivery_count.load(Ordering::Relaxed),
                wait_ms: start.elapsed().as_millis(),
            });
        }
        if Instant::now() >= deadline {
            let seen = seen_keys.lock().expect("no listener panics while holding the lock");
            let missing: Vec<String> = (0..args.message_count)
                .filter(|index| !seen.contains(index))
                .take(MISSING_KEYS_SHOWN_MAX)
                .map(|index| message_key(run_id, index))
                .collect();
            break Err(format!(
                "consumed {distinct_count} of {} distinct messages within {CONSUME_WAIT_MS_MAX} ms \
                 ({} deliveries); first missing keys: {missing:?} (a stuck rebalance usually means the \
                 route of %RETRY%{} or the topic is wrong in the NameServer)",
                args.message_count,
                delivery_count.load(Ordering::Relaxed),
                args.consumer_group
            ));
        }
        tokio::time::sleep(Duration::from_millis(CONSUME_POLL_INTERVAL_MS)).await;
    };
    bounded("consumer shutdown", consumer.shutdown()).await;
    let consumed = outcome?;
    println!("interop-client: consumed {} distinct messages in {} ms", consumed.distinct_count, consumed.wait_ms);
    Ok(consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_args(argv: &[&str], expected: Result<(usize, &str), ()>) {
        let parsed = parse_args(argv.iter().map(|arg| arg.to_string()).collect());
        match (parsed, expected) {
            (Ok(args), Ok((count, group))) => {
                assert_eq!(args.message_count, count);
                assert_eq!(args.consumer_group, group);
            }
            (Err(_), Err(())) => {}
            (Ok(_), Err(())) => panic!("{argv:?} parsed but should be rejected"),
            (Err(message), Ok(_)) => panic!("{argv:?} rejected: {message}"),
        }
    }

    #[test]
    fn args() {
        check_args(&["127.0.0.1:9876", "T"], Ok((MESSAGE_COUNT_DEFAULT, CONSUMER_GROUP_DEFAULT)));
        check_args(&["127.0.0.1:9876", "T", "7", "g"], Ok((7, "g")));
        check_args(&["127.0.0.1:9876"], Err(()));
        check_args(&["127.0.0.1:9876", "T", "0"], Err(()));
        check_args(&["127.0.0.1:9876", "T", "100001"], Err(()));
        check_args(&["127.0.0.1:9876", "T", "x"], Err(()));
        check_args(&["a", "b", "1", "g", "extra"], Err(()));
    }

    #[test]
    fn keys_are_distinct_and_prefix_parses_back() {
        let prefix = key_prefix("r");
        for index in [0, 1, 10, 99, 100] {
            let key = message_key("r", index);
            assert_eq!(key.strip_prefix(prefix.as_str()).and_then(|rest| rest.parse::<usize>().ok()), Some(index));
        }
    }
}
