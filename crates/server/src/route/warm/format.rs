//! The warm-restart file format (version 1; the layout is in the parent module's doc):
//! `encode` a table to bytes, `decode` and `read_file` back, validating magic, version,
//! length and CRC, and never allocating more than the bytes present can hold.
//! Must not: touch the table beyond reading it, or write files.

use crate::error::WarmFileError;
use crate::route::table::{BrokerAddrKey, FastMap, RouteTable, SavedLive, TableImage};
use meridian_protocol::body::{BrokerData, DataVersion, QueueData, TopicQueueMappingInfo};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Largest warm-restart file read at start; a larger one is ignored (start cold). 1M
/// topic-on-broker entries take ~40 MB.
pub const WARM_FILE_BYTES_MAX: u64 = 1 << 30;
/// The format this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
pub(super) const MAGIC: [u8; 8] = *b"MRDNWARM";
pub(super) const HEADER_BYTES: usize = 8 + 4 + 8 + 4;

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
/// `timeout_default_ms` (`brokerTimeoutDefaultMs`) is marked as the default.
pub fn encode(table: &RouteTable, now_ms: u64, saved_at_unix_ms: u64, timeout_default_ms: u64) -> Vec<u8> {
    let mut out = Out(Vec::with_capacity(HEADER_BYTES + 64 + table.topic_broker_entries() * 48));
    out.0.resize(HEADER_BYTES, 0);
    out.u64(saved_at_unix_ms);
    out.str(concat!("meridian ", env!("CARGO_PKG_VERSION")));

    out.groups(table, now_ms, timeout_default_ms);
    out.topics(table);
    out.mappings(table);

    let mut bytes = out.0;
    let payload_len = (bytes.len() - HEADER_BYTES) as u64;
    let crc = crc32fast::hash(&bytes[HEADER_BYTES..]);
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&payload_len.to_le_bytes());
    bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// The payload's sections, in file order.
impl Out {
    /// Clusters, broker groups, liveness and filter servers.
    fn groups(&mut self, table: &RouteTable, now_ms: u64, timeout_default_ms: u64) {
        let out = self;
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
    }

    fn topics(&mut self, table: &RouteTable) {
        let out = self;
        let topics = table.topic_entries();
        out.count(table.topic_count());
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
    }

    fn mappings(&mut self, table: &RouteTable) {
        let out = self;
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
    }
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

struct In<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WarmFileError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(WarmFileError::Truncated { needed: n, offset: self.pos });
        };
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WarmFileError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    fn u8(&mut self) -> Result<u8, WarmFileError> {
        Ok(self.array::<1>()?[0])
    }
    fn bool(&mut self) -> Result<bool, WarmFileError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(WarmFileError::InvalidFlag { value, offset: self.pos - 1 }),
        }
    }
    fn u32(&mut self) -> Result<u32, WarmFileError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WarmFileError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, WarmFileError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, WarmFileError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A count of elements of at least `min_bytes` each: never more than the rest can hold,
    /// so a corrupt count cannot make a large allocation.
    fn count(&mut self, min_bytes: usize) -> Result<usize, WarmFileError> {
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.pos;
        if n.saturating_mul(min_bytes) > left {
            return Err(WarmFileError::CountTooLarge { count: n, offset: self.pos - 4, left });
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String, WarmFileError> {
        let n = self.count(1)?;
        let at = self.pos;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WarmFileError::InvalidUtf8 { offset: at })
    }
    fn opt_str(&mut self) -> Result<Option<String>, WarmFileError> {
        Ok(if self.bool()? { Some(self.str()?) } else { None })
    }
    fn key(&mut self) -> Result<BrokerAddrKey, WarmFileError> {
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
pub fn decode(bytes: &[u8]) -> Result<Decoded, WarmFileError> {
    if bytes.len() < HEADER_BYTES {
        return Err(WarmFileError::ShortHeader { bytes: bytes.len(), header_bytes: HEADER_BYTES });
    }
    if bytes[0..8] != MAGIC {
        return Err(WarmFileError::BadMagic);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(WarmFileError::Version { found: version, supported: FORMAT_VERSION });
    }
    let payload_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let payload = &bytes[HEADER_BYTES..];
    if payload_len != payload.len() as u64 {
        return Err(WarmFileError::PayloadLength { declared: payload_len, found: payload.len() });
    }
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    if crc32fast::hash(payload) != crc {
        return Err(WarmFileError::Crc);
    }
    let mut r = In { bytes: payload, pos: 0 };
    let saved_at_unix_ms = r.u64()?;
    let writer = r.str()?;
    let mut image = TableImage::default();
    r.clusters(&mut image)?;
    r.brokers(&mut image)?;
    r.live(&mut image)?;
    r.filter_servers(&mut image)?;
    r.topics(&mut image)?;
    r.mappings(&mut image)?;
    if r.pos != payload.len() {
        return Err(WarmFileError::TrailingBytes { bytes: payload.len() - r.pos });
    }
    Ok(Decoded { image, saved_at_unix_ms, writer })
}

/// The payload's sections, in file order.
impl In<'_> {
    fn clusters(&mut self, image: &mut TableImage) -> Result<(), WarmFileError> {
        for _ in 0..self.count(8)? {
            let cluster = self.str()?;
            let names = (0..self.count(4)?).map(|_| self.str()).collect::<Result<Vec<_>, _>>()?;
            image.clusters.push((cluster, names));
        }
        Ok(())
    }

    fn brokers(&mut self, image: &mut TableImage) -> Result<(), WarmFileError> {
        for _ in 0..self.count(13)? {
            let cluster = self.str()?;
            let broker_name = self.str()?;
            let enable_acting_master = self.bool()?;
            let zone_name = self.opt_str()?;
            let mut broker_addrs = BTreeMap::new();
            for _ in 0..self.count(12)? {
                let id = self.i64()?;
                broker_addrs.insert(id, self.str()?);
            }
            image.brokers.push(BrokerData { cluster, broker_name, broker_addrs, enable_acting_master, zone_name });
        }
        Ok(())
    }

    fn live(&mut self, image: &mut TableImage) -> Result<(), WarmFileError> {
        for _ in 0..self.count(54)? {
            let key = self.key()?;
            let timeout_ms = self.u64()?;
            let timeout_default = self.bool()?;
            let data_version = DataVersion { counter: self.i64()?, state_version: self.i64()?, timestamp: self.i64()? };
            let ha_server_addr = self.str()?;
            let provisional = self.bool()?;
            let silent_ms = self.u64()?;
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
        Ok(())
    }

    fn filter_servers(&mut self, image: &mut TableImage) -> Result<(), WarmFileError> {
        for _ in 0..self.count(12)? {
            let key = self.key()?;
            let list = (0..self.count(4)?).map(|_| self.str()).collect::<Result<Vec<_>, _>>()?;
            image.filter_servers.push((key, list));
        }
        Ok(())
    }

    fn topics(&mut self, image: &mut TableImage) -> Result<(), WarmFileError> {
        let mut names: Vec<Arc<str>> = Vec::new();
        let topic_count = self.count(8)?;
        image.topics.reserve(topic_count);
        for _ in 0..topic_count {
            let topic = self.str()?;
            let queue_count = self.count(20)?;
            let mut queues = Vec::with_capacity(queue_count);
            for _ in 0..queue_count {
                let at = self.pos;
                let index = self.u32()? as usize;
                if index == names.len() {
                    names.push(Arc::from(self.str()?));
                } else if index > names.len() {
                    return Err(WarmFileError::NameReference { index, offset: at, names: names.len() });
                }
                queues.push(QueueData {
                    broker_name: names[index].clone(),
                    read_queue_nums: self.i32()?,
                    write_queue_nums: self.i32()?,
                    perm: self.i32()?,
                    topic_sys_flag: self.i32()?,
                });
            }
            image.topics.push((topic, queues));
        }
        Ok(())
    }

    fn mappings(&mut self, image: &mut TableImage) -> Result<(), WarmFileError> {
        for _ in 0..self.count(8)? {
            let topic = self.str()?;
            let mut per_broker = Vec::new();
            for _ in 0..self.count(37)? {
                let name = self.str()?;
                let topic = self.str()?;
                let bname = self.str()?;
                let scope = self.str()?;
                let total_queues = self.i32()?;
                let epoch = self.i64()?;
                let dirty = self.bool()?;
                let mut curr_id_map = BTreeMap::new();
                for _ in 0..self.count(8)? {
                    let logical = self.i32()?;
                    curr_id_map.insert(logical, self.i32()?);
                }
                let info = TopicQueueMappingInfo { topic, bname, scope, total_queues, epoch, dirty, curr_id_map };
                per_broker.push((name, info));
            }
            image.mappings.push((topic, per_broker));
        }
        Ok(())
    }
}

/// Reads and decodes `path`: `Ok(None)` if there is no file, `Err` (why) if it cannot be
/// used. Reads at most `WARM_FILE_BYTES_MAX + 1` bytes whatever the file claims.
pub fn read_file(path: &Path) -> Result<Option<Decoded>, WarmFileError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WarmFileError::Open(e)),
    };
    let mut bytes = Vec::new();
    file.take(WARM_FILE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(WarmFileError::Read)?;
    if bytes.len() as u64 > WARM_FILE_BYTES_MAX {
        return Err(WarmFileError::TooLarge { bytes_max: WARM_FILE_BYTES_MAX });
    }
    decode(&bytes).map(Some)
}
