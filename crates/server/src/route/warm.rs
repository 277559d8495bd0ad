//! Warm restart (off by default; `warm_restart`): the writer saves the route table to
//! `warm_restart_path` (default `<data_dir>/routes.warm`) every
//! `warm_restart_save_interval_ms` when it changed, and once more at a graceful stop; at
//! start a valid file younger than `warm_restart_max_age_ms` is loaded *provisionally*
//! (`RouteTable::restore_provisional`): every saved broker address is served like a live
//! one until it registers (its registration replaces what was loaded), heartbeats, or its
//! heartbeat timeout passes. Without it a restarted NameServer answers TOPIC_NOT_EXIST
//! until brokers re-register (up to 30 s); with it, a broker that died during the restart
//! is served for up to its heartbeat timeout (120 s by default).
//!
//! The file is written like the KV config (temp file, fsync, rename, directory fsync:
//! `persist::replace_atomic`), so a crash leaves the old or the new content. Encoding runs
//! on the writer thread (it needs the table); the write and its fsyncs run on the
//! `meridian-warm-save` thread, so disk latency never holds up registrations. A missing,
//! oversized, truncated, corrupt, unknown-version or too old file is ignored with one log
//! line and the server starts cold: it never stops a start.
//!
//! File format, version 1 (integers little-endian):
//! ```text
//! header  magic "MRDNWARM" (8) | version u32 | payload length u64 | CRC32 of the payload u32
//! payload saved_at_unix_ms u64 | writer str ("meridian X.Y.Z")
//!         clusters   [cluster str, [broker name str]]
//!         brokers    [cluster str, broker name str, enable_acting_master u8, zone opt-str,
//!                     [broker id i64, address str]]
//!         live       [cluster str, address str, timeout_ms u64, timeout_default u8,
//!                     data version (counter i64, state_version i64, timestamp i64),
//!                     HA address str, provisional u8, silent_ms u64]
//!         filters    [cluster str, address str, [filter server str]]
//!         topics     [topic str, [broker name ref, readQueueNums i32, writeQueueNums i32,
//!                     perm i32, topicSysFlag i32]]
//!         mappings   [topic str, [broker name str, topic str, bname str, scope str,
//!                     totalQueues i32, epoch i64, dirty u8, [logical i32, physical i32]]]
//! str = u32 byte length + UTF-8; opt-str = u8 0 | u8 1 + str; [x] = u32 count + x...;
//! broker name ref = u32 index into the names met so far in `topics`, the next index being
//! followed by the new name (str). The payload must end exactly after `mappings`.
//! ```

use super::table::{BrokerAddrKey, FastMap, RouteTable, SavedLive, TableImage};
use crate::config::Config;
use crate::persist;
use meridian_protocol::body::{BrokerData, DataVersion, QueueData, TopicQueueMappingInfo};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest warm-restart file read at start; a larger one is ignored (start cold). 1M
/// topic-on-broker entries take ~40 MB.
pub const WARM_FILE_BYTES_MAX: u64 = 1 << 30;
/// The format this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: [u8; 8] = *b"MRDNWARM";
const HEADER_BYTES: usize = 8 + 4 + 8 + 4;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Every count and string here came through a frame of at most 2 GiB.
    fn count(&mut self, n: usize) {
        self.u32(n as u32);
    }
    fn str(&mut self, s: &str) {
        self.count(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    fn key(&mut self, key: &BrokerAddrKey) {
        self.str(&key.cluster);
        self.str(&key.addr);
    }
}

/// The whole file for `table` as of `now_ms` (the writer's clock, for how long each broker
/// has been silent), stamped `saved_at_unix_ms`. A live entry whose timeout equals
/// `timeout_default_ms` (`broker_timeout_default_ms`) is marked as the default.
pub fn encode(table: &RouteTable, now_ms: u64, saved_at_unix_ms: u64, timeout_default_ms: u64) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(HEADER_BYTES + 64 + table.topic_broker_entries() * 48));
    out.0.resize(HEADER_BYTES, 0);
    out.u64(saved_at_unix_ms);
    out.str(concat!("meridian ", env!("CARGO_PKG_VERSION")));

    out.count(table.clusters().len());
    for (cluster, names) in table.clusters() {
        out.str(cluster);
        out.count(names.len());
        for name in names {
            out.str(name);
        }
    }
    out.count(table.brokers().len());
    for bd in table.brokers().values() {
        out.str(&bd.cluster);
        out.str(&bd.broker_name);
        out.u8(u8::from(bd.enable_acting_master));
        out.opt_str(bd.zone_name.as_deref());
        out.count(bd.broker_addrs.len());
        for (id, addr) in &bd.broker_addrs {
            out.i64(*id);
            out.str(addr);
        }
    }
    out.count(table.live_entries().len());
    for (key, live) in table.live_entries() {
        out.key(key);
        out.u64(live.timeout_ms);
        out.u8(u8::from(live.timeout_ms == timeout_default_ms));
        out.i64(live.data_version.counter);
        out.i64(live.data_version.state_version);
        out.i64(live.data_version.timestamp);
        out.str(&live.ha_server_addr);
        out.u8(u8::from(live.provisional));
        out.u64(now_ms.saturating_sub(live.last_update_ms));
    }
    out.count(table.filter_server_entries().len());
    for (key, list) in table.filter_server_entries() {
        out.key(key);
        out.count(list.len());
        for server in list {
            out.str(server);
        }
    }
    let topics = table.topic_entries();
    out.count(topics.len());
    // Broker names by first appearance. Queue data share one name `Arc` per registration of
    // a broker, so the few distinct pointers are looked up first (no string hashing).
    let mut names: FastMap<&str, u32> = FastMap::default();
    let mut by_ptr: FastMap<*const u8, u32> = FastMap::default();
    for (topic, queues) in topics {
        out.str(topic);
        out.count(queues.len());
        for qd in queues.values() {
            let ptr = qd.broker_name.as_ptr();
            match by_ptr.get(&ptr) {
                Some(index) => out.u32(*index),
                None => {
                    let next = names.len() as u32;
                    let index = *names.entry(&qd.broker_name).or_insert(next);
                    by_ptr.insert(ptr, index);
                    out.u32(index);
                    if index == next {
                        out.str(&qd.broker_name);
                    }
                }
            }
            out.i32(qd.read_queue_nums);
            out.i32(qd.write_queue_nums);
            out.i32(qd.perm);
            out.i32(qd.topic_sys_flag);
        }
    }
    out.count(table.mapping_entries().len());
    for (topic, per_broker) in table.mapping_entries() {
        out.str(topic);
        out.count(per_broker.len());
        for (name, info) in per_broker {
            out.str(name);
            out.str(&info.topic);
            out.str(&info.bname);
            out.str(&info.scope);
            out.i32(info.total_queues);
            out.i64(info.epoch);
            out.u8(u8::from(info.dirty));
            out.count(info.curr_id_map.len());
            for (logical, physical) in &info.curr_id_map {
                out.i32(*logical);
                out.i32(*physical);
            }
        }
    }

    let mut bytes = out.0;
    let payload_len = (bytes.len() - HEADER_BYTES) as u64;
    let crc = crc32fast::hash(&bytes[HEADER_BYTES..]);
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&payload_len.to_le_bytes());
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    bytes
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

struct In<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("truncated payload: {n} bytes needed at offset {}", self.pos));
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn bool(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("invalid flag {other} at offset {}", self.pos - 1)),
        }
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A count of elements of at least `min_bytes` each: never more than the rest can hold,
    /// so a corrupt count cannot make a large allocation.
    fn count(&mut self, min_bytes: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.pos;
        if n.saturating_mul(min_bytes) > left {
            return Err(format!("count {n} at offset {} exceeds the {left} bytes left", self.pos - 4));
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String, String> {
        let n = self.count(1)?;
        let at = self.pos;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("invalid UTF-8 at offset {at}"))
    }
    fn opt_str(&mut self) -> Result<Option<String>, String> {
        Ok(if self.bool()? { Some(self.str()?) } else { None })
    }
    fn key(&mut self) -> Result<BrokerAddrKey, String> {
        Ok(BrokerAddrKey { cluster: self.str()?, addr: self.str()? })
    }
}

/// What a valid file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub image: TableImage,
    pub saved_at_unix_ms: u64,
    /// Who wrote it (`meridian X.Y.Z`).
    pub writer: String,
}

/// Checks magic, version, length and CRC, then decodes the payload. Any error means the
/// file must be treated as absent.
pub fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!("truncated: {} bytes, shorter than the {HEADER_BYTES}-byte header", bytes.len()));
    }
    if bytes[0..8] != MAGIC {
        return Err("not a warm-restart route file (bad magic)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}, this build reads only version {FORMAT_VERSION}"));
    }
    let payload_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_BYTES..];
    if payload_len != payload.len() as u64 {
        return Err(format!("truncated or padded: header says {payload_len} payload bytes, found {}", payload.len()));
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if crc32fast::hash(payload) != crc {
        return Err("CRC mismatch: the payload is corrupt".into());
    }
    let mut r = In { bytes: payload, pos: 0 };
    let saved_at_unix_ms = r.u64()?;
    let writer = r.str()?;
    let mut image = TableImage::default();

    for _ in 0..r.count(8)? {
        let cluster = r.str()?;
        let names = (0..r.count(4)?).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
        image.clusters.push((cluster, names));
    }
    for _ in 0..r.count(13)? {
        let cluster = r.str()?;
        let broker_name = r.str()?;
        let enable_acting_master = r.bool()?;
        let zone_name = r.opt_str()?;
        let mut broker_addrs = BTreeMap::new();
        for _ in 0..r.count(12)? {
            let id = r.i64()?;
            broker_addrs.insert(id, r.str()?);
        }
        image.brokers.push(BrokerData { cluster, broker_name, broker_addrs, enable_acting_master, zone_name });
    }
    for _ in 0..r.count(54)? {
        let key = r.key()?;
        let timeout_ms = r.u64()?;
        let timeout_default = r.bool()?;
        let data_version = DataVersion { counter: r.i64()?, state_version: r.i64()?, timestamp: r.i64()? };
        let ha_server_addr = r.str()?;
        let provisional = r.bool()?;
        let silent_ms = r.u64()?;
        image.live.push(SavedLive {
            key,
            timeout_ms,
            timeout_default,
            data_version,
            ha_server_addr,
            provisional,
            silent_ms,
        });
    }
    for _ in 0..r.count(12)? {
        let key = r.key()?;
        let list = (0..r.count(4)?).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
        image.filter_servers.push((key, list));
    }
    let mut names: Vec<Arc<str>> = Vec::new();
    let topic_count = r.count(8)?;
    image.topics.reserve(topic_count);
    for _ in 0..topic_count {
        let topic = r.str()?;
        let queue_count = r.count(20)?;
        let mut queues = Vec::with_capacity(queue_count);
        for _ in 0..queue_count {
            let at = r.pos;
            let index = r.u32()? as usize;
            if index == names.len() {
                names.push(Arc::from(r.str()?));
            } else if index > names.len() {
                return Err(format!(
                    "broker name reference {index} at offset {at} is ahead of the {} names read",
                    names.len()
                ));
            }
            queues.push(QueueData {
                broker_name: names[index].clone(),
                read_queue_nums: r.i32()?,
                write_queue_nums: r.i32()?,
                perm: r.i32()?,
                topic_sys_flag: r.i32()?,
            });
        }
        image.topics.push((topic, queues));
    }
    for _ in 0..r.count(8)? {
        let topic = r.str()?;
        let mut per_broker = Vec::new();
        for _ in 0..r.count(37)? {
            let name = r.str()?;
            let topic = r.str()?;
            let bname = r.str()?;
            let scope = r.str()?;
            let total_queues = r.i32()?;
            let epoch = r.i64()?;
            let dirty = r.bool()?;
            let mut curr_id_map = BTreeMap::new();
            for _ in 0..r.count(8)? {
                let logical = r.i32()?;
                curr_id_map.insert(logical, r.i32()?);
            }
            per_broker
                .push((name, TopicQueueMappingInfo { topic, bname, scope, total_queues, epoch, dirty, curr_id_map }));
        }
        image.mappings.push((topic, per_broker));
    }
    if r.pos != payload.len() {
        return Err(format!("{} unexpected bytes after the payload", payload.len() - r.pos));
    }
    Ok(Decoded { image, saved_at_unix_ms, writer })
}

/// Reads and decodes `path`: `Ok(None)` if there is no file, `Err` (why) if it cannot be
/// used. Reads at most `WARM_FILE_BYTES_MAX + 1` bytes whatever the file claims.
pub fn read_file(path: &Path) -> Result<Option<Decoded>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let mut bytes = Vec::new();
    file.take(WARM_FILE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > WARM_FILE_BYTES_MAX {
        return Err(format!("larger than WARM_FILE_BYTES_MAX ({WARM_FILE_BYTES_MAX} bytes)"));
    }
    decode(&bytes).map(Some)
}

// ---------------------------------------------------------------------------------------
// The writer's side: load at start, periodic and final saves
// ---------------------------------------------------------------------------------------

/// One file write for the save thread; `ack` gets the outcome (the final save waits for it).
struct SaveJob {
    bytes: Vec<u8>,
    ack: Option<flume::Sender<Result<(), String>>>,
}

/// What was last handed to the save thread: the published snapshot generation (routes and
/// cluster info) and a digest of the live entries (data versions, timeouts, HA addresses,
/// provisional flags), which a snapshot does not show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SavedState {
    generation: u64,
    live_digest: u64,
}

/// Order-independent digest of everything saved per live entry.
fn live_digest(table: &RouteTable) -> u64 {
    table.live_entries().iter().fold(0u64, |acc, (key, live)| {
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        (live.timeout_ms, live.data_version.counter, live.data_version.state_version, live.data_version.timestamp)
            .hash(&mut h);
        live.ha_server_addr.hash(&mut h);
        live.provisional.hash(&mut h);
        acc.wrapping_add(h.finish())
    })
}

/// Owned by the writer when `warm_restart` is on.
pub struct WarmRestart {
    path: PathBuf,
    /// `broker_timeout_default_ms`, to mark the brokers that sent no timeout of their own.
    timeout_default_ms: u64,
    interval: Duration,
    /// A file whose content did not change is still rewritten this often, so that after a
    /// crash the file of a quiet table is younger than `warm_restart_max_age_ms`.
    refresh: Duration,
    next_save: Instant,
    saved: Option<(SavedState, Instant)>,
    jobs: Option<flume::Sender<SaveJob>>,
    /// The last write failed (the save thread says so); the next tick saves again.
    failed: Arc<AtomicBool>,
    /// Provisional brokers at the last count; only ever goes down, so once 0 nobody counts.
    provisional: Cell<usize>,
}

impl WarmRestart {
    /// With `warm_restart` on: loads the file into the (empty) `table` if it is valid and
    /// recent enough, logging one line either way, and starts the save thread. `None` when off.
    pub fn start(config: &Config, table: &mut RouteTable, now_ms: u64) -> Option<WarmRestart> {
        if !config.warm_restart {
            return None;
        }
        let path = config.warm_restart_path();
        let started = Instant::now();
        let provisional = match read_file(&path) {
            Ok(None) => {
                tracing::info!("warm restart: no route file at {}; starting cold", path.display());
                0
            }
            Err(why) => {
                warn_ignored(&path, &why);
                0
            }
            Ok(Some(decoded)) => {
                let now = unix_ms();
                let age_ms = now.saturating_sub(decoded.saved_at_unix_ms);
                if age_ms > config.warm_restart_max_age_ms {
                    let why = format!(
                        "saved {:.1} s ago, older than warm_restart_max_age_ms {}",
                        age_ms as f64 / 1000.0,
                        config.warm_restart_max_age_ms
                    );
                    warn_ignored(&path, &why);
                    0
                } else {
                    match table.restore_provisional(decoded.image, now_ms) {
                        Ok(r) => {
                            tracing::info!(
                                brokers = r.brokers,
                                topics = r.topics,
                                age_ms,
                                "warm restart: loaded provisionally: brokers {}, broker groups {}, clusters {}, \
                                 topics {}, from {} (saved {:.1} s ago by {}, read in {} ms); each broker is \
                                 served until it re-registers or its heartbeat timeout passes",
                                r.brokers,
                                r.broker_names,
                                r.clusters,
                                r.topics,
                                path.display(),
                                age_ms as f64 / 1000.0,
                                decoded.writer,
                                started.elapsed().as_millis()
                            );
                            r.brokers
                        }
                        Err(why) => {
                            warn_ignored(&path, &why);
                            0
                        }
                    }
                }
            }
        };
        let failed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = flume::bounded::<SaveJob>(1);
        let jobs = {
            let (path, failed) = (path.clone(), failed.clone());
            match std::thread::Builder::new()
                .name("meridian-warm-save".into())
                .spawn(move || save_loop(&path, rx, &failed))
            {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::error!("warm restart: cannot start the save thread ({e}); routes will not be saved");
                    None
                }
            }
        };
        let interval = Duration::from_millis(config.warm_restart_save_interval_ms);
        Some(WarmRestart {
            path,
            timeout_default_ms: config.broker_timeout_default_ms,
            interval,
            refresh: Duration::from_millis(config.warm_restart_max_age_ms / 2).max(interval),
            next_save: Instant::now() + interval,
            saved: None,
            jobs,
            failed,
            provisional: Cell::new(provisional),
        })
    }

    /// When the writer should next call `tick`.
    pub fn next_due(&self) -> Instant {
        self.next_save
    }

    /// Broker addresses still provisional (counted while there are any).
    pub fn provisional(&self, table: &RouteTable) -> usize {
        if self.provisional.get() > 0 {
            self.provisional.set(table.provisional_count());
        }
        self.provisional.get()
    }

    /// The periodic save: once the interval is over, hands the table to the save thread if
    /// it changed since the last save (or the last write failed, or the file is due a
    /// refresh). A save still being written defers this one to the next interval.
    pub fn tick(&mut self, table: &RouteTable, generation: u64, now_ms: u64) {
        let now = Instant::now();
        if now < self.next_save {
            return;
        }
        self.next_save = now + self.interval;
        let Some(jobs) = &self.jobs else { return };
        let state = SavedState { generation, live_digest: live_digest(table) };
        let unchanged = self.saved.is_some_and(|(saved, at)| saved == state && at.elapsed() < self.refresh);
        if (unchanged && !self.failed.load(Ordering::Acquire)) || jobs.is_full() {
            return;
        }
        let bytes = encode(table, now_ms, unix_ms(), self.timeout_default_ms);
        tracing::debug!(
            bytes = bytes.len(),
            encode_us = now.elapsed().as_micros() as u64,
            "warm restart: routes encoded"
        );
        if jobs.try_send(SaveJob { bytes, ack: None }).is_ok() {
            self.saved = Some((state, now));
        }
    }

    /// The save at a graceful stop: always written, waited for until `deadline`.
    pub fn final_save(&mut self, table: &RouteTable, now_ms: u64, deadline: Instant) -> Result<(), String> {
        let Some(jobs) = &self.jobs else { return Err("the save thread is not running".into()) };
        let bytes = encode(table, now_ms, unix_ms(), self.timeout_default_ms);
        let size = bytes.len();
        let (ack, done) = flume::bounded(1);
        let late = || format!("not written within shutdown_drain_ms to {}", self.path.display());
        jobs.send_deadline(SaveJob { bytes, ack: Some(ack) }, deadline).map_err(|_| late())?;
        done.recv_deadline(deadline).map_err(|_| late())??;
        tracing::info!(
            brokers = table.live_count(),
            topics = table.topic_count(),
            bytes = size,
            "warm restart: routes saved to {} for the next start",
            self.path.display()
        );
        Ok(())
    }
}

fn warn_ignored(path: &Path, why: &str) {
    tracing::warn!(
        "warm restart: ignoring {}: {why}; starting cold (routes appear as brokers re-register, within 30 s)",
        path.display()
    );
}

/// The save thread: writes each job crash-safely, one at a time. Says once when saving
/// starts failing and once when it works again.
fn save_loop(path: &Path, jobs: flume::Receiver<SaveJob>, failed: &AtomicBool) {
    for job in jobs.iter() {
        let started = Instant::now();
        let result =
            persist::replace_atomic(path, &job.bytes).map_err(|e| format!("cannot write {}: {e}", path.display()));
        match &result {
            Ok(()) => {
                if failed.swap(false, Ordering::AcqRel) {
                    tracing::info!("warm restart: saving routes to {} works again", path.display());
                }
                tracing::debug!(
                    bytes = job.bytes.len(),
                    write_us = started.elapsed().as_micros() as u64,
                    "warm restart: routes saved"
                );
            }
            Err(e) => {
                if !failed.swap(true, Ordering::AcqRel) {
                    tracing::warn!("warm restart: {e}; retrying every save interval (a restart now starts from the last good file)");
                }
            }
        }
        if let Some(ack) = job.ack {
            let _ = ack.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::table::{RegisterBroker, TableLimits};
    use crate::route::ConnId;
    use meridian_protocol::body::{RegisterBrokerBody, TopicConfig};

    const LIMITS: TableLimits =
        TableLimits { topics_max: 10_000, brokers_max: 100, broker_timeout_default_ms: 120_000 };

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
                topic_configs: topics.to_vec(),
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
        }
    }

    /// Two clusters, a master/slave group, a wiped write perm, a registered topic,
    /// filter servers and a static mapping.
    fn table() -> RouteTable {
        let mut t = RouteTable::new(LIMITS);
        let many: Vec<TopicConfig> = (0..50).map(|i| topic(&format!("Topic{i:03}"), 4)).collect();
        t.register_broker(reg("c1", "broker-a", 0, "10.0.0.1:10911", &many), ConnId(1), 100);
        t.register_broker(reg("c1", "broker-a", 1, "10.0.0.2:10911", &many), ConnId(2), 200);
        t.register_broker(
            reg("c2", "broker-b", 0, "10.0.1.1:10911", &[topic("T1", 2), topic("Bee", 1)]),
            ConnId(3),
            300,
        );
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
        let mut topics: Vec<String> = t
            .topic_entries()
            .map(|(name, queues)| format!("{name}={:?}", queues.values().collect::<Vec<_>>()))
            .collect();
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
        assert!(decode(&padded).unwrap_err().contains("truncated or padded"));
    }

    #[test]
    fn wrong_magic_or_version_is_refused() {
        let bytes = encode(&table(), 1_000, 1, 120_000);
        let mut v2 = bytes.clone();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(decode(&v2).unwrap_err().contains("format version 2"));
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(decode(&magic).unwrap_err().contains("bad magic"));
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
        assert!(decode(&seal(huge_count)).unwrap_err().contains("exceeds"));
        let mut bad_utf8 = 5u64.to_le_bytes().to_vec();
        bad_utf8.extend_from_slice(&2u32.to_le_bytes());
        bad_utf8.extend_from_slice(&[0xff, 0xfe]);
        assert!(decode(&seal(bad_utf8)).unwrap_err().contains("UTF-8"));
        // A name reference ahead of the names read so far.
        let mut t = RouteTable::new(LIMITS);
        t.register_broker(reg("c1", "broker-a", 0, "10.0.0.1:10911", &[topic("A", 1), topic("B", 1)]), ConnId(1), 0);
        let good = encode(&t, 0, 0, 120_000);
        let payload = good[HEADER_BYTES..].to_vec();
        // The first queue data: name index 0, then the name itself.
        let at = payload.windows(16).position(|w| w == b"\0\0\0\0\x08\0\0\0broker-a").expect("a queue data");
        let mut ahead = payload.clone();
        ahead[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
        let err = decode(&seal(ahead)).unwrap_err();
        assert!(err.contains("ahead") || err.contains("truncated"), "{err}");
    }

    #[test]
    fn files_that_are_missing_oversized_or_corrupt_are_reported_not_loaded() {
        let dir = std::env::temp_dir().join(format!("meridian-warm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("routes.warm");
        let _ = std::fs::remove_file(&path);
        assert_eq!(read_file(&path), Ok(None));
        persist::replace_atomic(&path, &encode(&table(), 0, 1, 120_000)).unwrap();
        assert!(read_file(&path).unwrap().is_some());
        std::fs::write(&path, b"garbage").unwrap();
        assert!(read_file(&path).unwrap_err().contains("truncated"));
        // Larger than the limit: refused from its size, whatever it holds (a sparse file).
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(WARM_FILE_BYTES_MAX + 1).unwrap();
        drop(f);
        assert!(read_file(&path).unwrap_err().contains("WARM_FILE_BYTES_MAX"));
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
        assert!(err.contains("warm_restart_save_interval_ms") && err.contains("warm_restart_max_age_ms"), "{err}");
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
}
