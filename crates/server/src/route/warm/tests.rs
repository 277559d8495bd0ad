//! Warm-restart file round trips, corruption handling and provisional loading.

use super::format::{HEADER_BYTES, MAGIC};
use super::*;
use crate::route::table::TableImage;
use crate::route::table::{RegisterBroker, TableLimits};
use crate::route::ConnId;
use meridian_protocol::body::{DataVersion, QueueData, TopicQueueMappingInfo};
use meridian_protocol::body::{RegisterBrokerBody, TopicConfig};
use std::collections::BTreeMap;

const LIMITS: TableLimits = TableLimits { topics_max: 10_000, brokers_max: 100, broker_timeout_default_ms: 120_000 };

fn topic(name: &str, queue_nums: i32) -> TopicConfig {
    let mut t = TopicConfig::new(name);
    t.read_queue_nums = queue_nums;
    t.write_queue_nums = queue_nums;
    t
}

fn reg(cluster: &str, name: &str, id: i64, addr: &str, topics: &[TopicConfig]) -> RegisterBroker {
    RegisterBroker {
        cluster_name: cluster.into(),
        broker_addr: addr.into(),
        broker_name: name.into(),
        broker_id: id,
        ha_server_addr: format!("ha-{addr}"),
        heartbeat_timeout_ms: Some(30_000 + id as u64),
        enable_acting_master: Some(id == 0),
        zone_name: (id == 1).then(|| "zone-b".to_string()),
        body: RegisterBrokerBody {
            data_version: DataVersion { counter: 7, state_version: 2, timestamp: 1_700_000_000_123 },
            topic_configs: topics.to_vec().into(),
            filter_server_list: Some(if id == 0 { vec!["10.9.9.9:1".into()] } else { Vec::new() }),
            topic_queue_mapping_infos: vec![(
                "Static".into(),
                TopicQueueMappingInfo {
                    topic: "Static".into(),
                    bname: name.into(),
                    scope: "__global__".into(),
                    total_queues: 8,
                    epoch: 99,
                    dirty: true,
                    curr_id_map: BTreeMap::from([(0, 3), (1, 4)]),
                },
            )],
        },
        topics_unchanged: false,
        body_fingerprint: 0,
        prints_token: None,
        delta: None,
    }
}

/// Two clusters, a master/slave group, a wiped write perm, a registered topic,
/// filter servers and a static mapping.
fn table() -> RouteTable {
    let mut t = RouteTable::new(LIMITS);
    let many: Vec<TopicConfig> = (0..50).map(|i| topic(&format!("Topic{i:03}"), 4)).collect();
    t.register_broker(reg("c1", "broker-a", 0, "10.0.0.1:10911", &many), ConnId(1), 100);
    t.register_broker(reg("c1", "broker-a", 1, "10.0.0.2:10911", &many), ConnId(2), 200);
    t.register_broker(reg("c2", "broker-b", 0, "10.0.1.1:10911", &[topic("T1", 2), topic("Bee", 1)]), ConnId(3), 300);
    t.operate_write_perm("broker-b", true);
    let qd = QueueData {
        broker_name: Arc::from("broker-b"),
        read_queue_nums: 3,
        write_queue_nums: 3,
        perm: 6,
        topic_sys_flag: 1,
    };
    t.register_topic("Registered", vec![qd]).unwrap();
    t
}

/// Everything a restart must reproduce, in a comparable form.
fn contents(t: &RouteTable) -> String {
    let mut topics: Vec<String> =
        t.topic_entries().map(|(name, queues)| format!("{name}={:?}", queues.values().collect::<Vec<_>>())).collect();
    topics.sort();
    let mut live: Vec<String> = t
        .live_entries()
        .iter()
        .map(|(k, l)| format!("{k:?} {} {:?} {}", l.timeout_ms, l.data_version, l.ha_server_addr))
        .collect();
    live.sort();
    let mut filters: Vec<String> = t.filter_server_entries().iter().map(|e| format!("{e:?}")).collect();
    filters.sort();
    let mut mappings: Vec<String> = t.mapping_entries().iter().map(|e| format!("{e:?}")).collect();
    mappings.sort();
    format!("{:?}\n{:?}\n{topics:?}\n{live:?}\n{filters:?}\n{mappings:?}", t.clusters(), t.brokers())
}

fn restored(bytes: &[u8]) -> RouteTable {
    let decoded = decode(bytes).expect("a valid file");
    let mut t = RouteTable::new(LIMITS);
    t.restore_provisional(decoded.image, 1_000_000).expect("restores");
    t
}

#[test]
fn encode_decode_round_trip_rebuilds_the_table_exactly() {
    let t = table();
    let bytes = encode(&t, 1_000, 1_700_000_000_000, 120_000);
    let decoded = decode(&bytes).unwrap();
    assert_eq!(decoded.saved_at_unix_ms, 1_700_000_000_000);
    assert!(decoded.writer.starts_with("meridian "), "{}", decoded.writer);
    assert_eq!(decoded.image.topics.len(), t.topic_count());
    let silent: Vec<u64> = {
        let mut v: Vec<u64> = decoded.image.live.iter().map(|l| l.silent_ms).collect();
        v.sort();
        v
    };
    assert_eq!(silent, vec![700, 800, 900]);
    let back = restored(&bytes);
    assert_eq!(contents(&back), contents(&t));
    assert_eq!(back.provisional_count(), 3);
    assert_eq!(back.topic_queue_datas("Bee").unwrap().get("broker-b").unwrap().perm, 4, "wiped perm kept");
    assert!(back.topic_queue_datas("Registered").is_some());
    // One name allocation per broker group, as registrations share it.
    let a: Vec<&Arc<str>> = back
        .topic_entries()
        .flat_map(|(_, q)| q.values().map(|qd| &qd.broker_name))
        .filter(|n| &***n == "broker-a")
        .collect();
    assert!(a.len() == 50 && a.windows(2).all(|w| Arc::ptr_eq(w[0], w[1])));
    // Saved again, the restored table gives the same content.
    assert_eq!(contents(&restored(&encode(&back, 1_000_000, 1, 120_000))), contents(&t));
    // A broker without a timeout of its own takes the loading server's default.
    let mut t = table();
    let mut c = reg("c3", "broker-c", 0, "10.0.2.1:10911", &[topic("C1", 1), topic("C2", 1)]);
    c.heartbeat_timeout_ms = None;
    t.register_broker(c, ConnId(4), 0);
    let decoded = decode(&encode(&t, 0, 1, 120_000)).unwrap();
    let mut back = RouteTable::new(TableLimits { broker_timeout_default_ms: 500, ..LIMITS });
    back.restore_provisional(decoded.image, 0).unwrap();
    assert_eq!(back.live_info("c3", "10.0.2.1:10911").unwrap().timeout_ms, 500);
    assert_eq!(back.live_info("c1", "10.0.0.2:10911").unwrap().timeout_ms, 30_001);
    // An empty table round-trips too.
    let empty = encode(&RouteTable::new(LIMITS), 0, 5, 120_000);
    assert_eq!(decode(&empty).unwrap().image, TableImage::default());
}

#[test]
fn every_truncation_and_flipped_byte_is_refused() {
    let bytes = encode(&table(), 1_000, 1_700_000_000_000, 120_000);
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "truncated to {len} bytes was accepted");
    }
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        assert!(decode(&bad).is_err(), "flipped byte {i} was accepted");
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(decode(&padded).unwrap_err().to_string().contains("truncated or padded"));
}

#[test]
fn wrong_magic_or_version_is_refused() {
    let bytes = encode(&table(), 1_000, 1, 120_000);
    let mut v2 = bytes.clone();
    v2[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert!(decode(&v2).unwrap_err().to_string().contains("format version 2"));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(decode(&magic).unwrap_err().to_string().contains("bad magic"));
    assert!(decode(b"{\"configTable\":{}}").is_err());
}

/// A payload with a valid CRC but nonsense inside (a bug, or a hand-made file): refused
/// without a large allocation or a panic.
#[test]
fn a_consistent_crc_over_garbage_is_refused_cleanly() {
    let seal = |payload: Vec<u8>| {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes
    };
    let mut huge_count = 5u64.to_le_bytes().to_vec();
    huge_count.extend_from_slice(&0u32.to_le_bytes());
    huge_count.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode(&seal(huge_count)).unwrap_err().to_string().contains("exceeds"));
    let mut bad_utf8 = 5u64.to_le_bytes().to_vec();
    bad_utf8.extend_from_slice(&2u32.to_le_bytes());
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    assert!(decode(&seal(bad_utf8)).unwrap_err().to_string().contains("UTF-8"));
    // A name reference ahead of the names read so far.
    let mut t = RouteTable::new(LIMITS);
    t.register_broker(reg("c1", "broker-a", 0, "10.0.0.1:10911", &[topic("A", 1), topic("B", 1)]), ConnId(1), 0);
    let good = encode(&t, 0, 0, 120_000);
    let payload = good[HEADER_BYTES..].to_vec();
    // The first queue data: name index 0, then the name itself.
    let at = payload.windows(16).position(|w| w == b"\0\0\0\0\x08\0\0\0broker-a").expect("a queue data");
    let mut ahead = payload.clone();
    ahead[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
    let err = decode(&seal(ahead)).unwrap_err().to_string();
    assert!(err.contains("ahead") || err.contains("truncated"), "{err}");
}

#[test]
fn files_that_are_missing_oversized_or_corrupt_are_reported_not_loaded() {
    let dir = std::env::temp_dir().join(format!("meridian-warm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("routes.warm");
    let _ = std::fs::remove_file(&path);
    assert!(read_file(&path).unwrap().is_none());
    persist::replace_atomic(&path, &encode(&table(), 0, 1, 120_000)).unwrap();
    assert!(read_file(&path).unwrap().is_some());
    std::fs::write(&path, b"garbage").unwrap();
    assert!(read_file(&path).unwrap_err().to_string().contains("truncated"));
    // Larger than the limit: refused from its size, whatever it holds (a sparse file).
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(WARM_FILE_BYTES_MAX + 1).unwrap();
    drop(f);
    assert!(read_file(&path).unwrap_err().to_string().contains("WARM_FILE_BYTES_MAX"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits (bounded) until the save thread took the last job off the queue.
fn taken(warm: &WarmRestart) {
    let end = Instant::now() + Duration::from_secs(20);
    while !warm.jobs.as_ref().unwrap().is_empty() {
        assert!(Instant::now() < end, "the save thread never took the job");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn periodic_saves_happen_only_when_something_changed() {
    let dir = std::env::temp_dir().join(format!("meridian-warm-tick-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config { warm_restart: true, data_dir: dir.clone(), ..Config::default() };
    let mut t = RouteTable::new(LIMITS);
    let mut warm = WarmRestart::start(&config, &mut t, 0).expect("on");
    let tick = |warm: &mut WarmRestart, t: &RouteTable, generation: u64| {
        taken(warm);
        warm.next_save = Instant::now(); // the interval is over
        warm.tick(t, generation, 0);
        assert!(warm.next_save > Instant::now(), "the next interval starts");
        warm.saved.map(|(_, at)| at)
    };
    // The first tick saves (there is no file of this run yet); the same state again does not.
    let first = tick(&mut warm, &t, 1).expect("saved");
    assert_eq!(tick(&mut warm, &t, 1), Some(first));
    // A new snapshot generation (routes changed): saved.
    let second = tick(&mut warm, &t, 2).expect("saved");
    assert!(second > first);
    // A live-entry change no snapshot shows (a data version): saved.
    t.register_broker(reg("c1", "broker-a", 0, "10.0.0.1:10911", &[topic("A", 1), topic("B", 1)]), ConnId(1), 0);
    let third = tick(&mut warm, &t, 2).expect("saved");
    assert!(third > second);
    let mut newer = reg("c1", "broker-a", 0, "10.0.0.1:10911", &[topic("A", 1), topic("B", 1)]);
    newer.body.data_version.counter += 1;
    t.register_broker(newer, ConnId(1), 5);
    let fourth = tick(&mut warm, &t, 2).expect("saved");
    assert!(fourth > third);
    assert_eq!(tick(&mut warm, &t, 2), Some(fourth), "only the liveness time changed");
    // A failed write is retried at the next tick.
    warm.failed.store(true, Ordering::Release);
    assert!(tick(&mut warm, &t, 2).expect("saved") > fourth);
    taken(&warm);
    let end = Instant::now() + Duration::from_secs(20);
    while read_file(&config.warm_restart_path()).ok().flatten().is_none_or(|d| d.image.live.len() != 1) {
        assert!(Instant::now() < end, "the file never showed the broker");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The retry's write may still be in flight (its temp file in `dir`); an acknowledged
    // save queued behind it means the thread is idle before the directory goes.
    warm.final_save(&t, 0, Instant::now() + Duration::from_secs(20)).expect("written");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_save_interval_at_or_above_the_max_age_is_refused() {
    let config = Config { warm_restart: true, warm_restart_save_interval_ms: 300_000, ..Config::default() };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("warmRestartSaveIntervalMs") && err.contains("warmRestartMaxAgeMs"), "{err}");
    Config { warm_restart: false, ..config }.validate().expect("only checked when on");
}

#[test]
fn start_loads_a_recent_file_and_ignores_an_old_one() {
    let dir = std::env::temp_dir().join(format!("meridian-warm-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = Config { warm_restart: true, data_dir: dir.clone(), ..Config::default() };
    persist::replace_atomic(&config.warm_restart_path(), &encode(&table(), 0, unix_ms(), 120_000)).unwrap();
    let mut t = RouteTable::new(LIMITS);
    let warm = WarmRestart::start(&config, &mut t, 0).expect("on");
    assert_eq!(warm.provisional(&t), 3);
    assert_eq!(contents(&t), contents(&table()));
    // Too old: ignored.
    let old = unix_ms() - config.warm_restart_max_age_ms - 1_000;
    persist::replace_atomic(&config.warm_restart_path(), &encode(&table(), 0, old, 120_000)).unwrap();
    let mut t = RouteTable::new(LIMITS);
    let warm = WarmRestart::start(&config, &mut t, 0).expect("on");
    assert_eq!((warm.provisional(&t), t.live_count()), (0, 0));
    // Off: nothing loaded, nothing started.
    let mut t = RouteTable::new(LIMITS);
    assert!(WarmRestart::start(&Config { warm_restart: false, ..config.clone() }, &mut t, 0).is_none());
    assert_eq!(t.live_count(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
