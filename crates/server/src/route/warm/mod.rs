//! Warm restart (off by default; `warmRestart`): the writer saves the route table to
//! `warmRestartPath` (default `<dataDir>/routes.warm`) every
//! `warmRestartSaveIntervalMs` when it changed, and once more at a graceful stop; at
//! start a valid file younger than `warmRestartMaxAgeMs` is loaded *provisionally*
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

mod format;
#[cfg(test)]
mod tests;

pub use format::{decode, encode, read_file, Decoded, FORMAT_VERSION, WARM_FILE_BYTES_MAX};

use super::table::RouteTable;
use crate::config::Config;
use crate::error::{WarmFileError, WarmSaveError};
use crate::persist;
use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------
// The writer's side: load at start, periodic and final saves
// ---------------------------------------------------------------------------------------

/// One file write for the save thread; `ack` gets the outcome (the final save waits for it).
struct SaveJob {
    bytes: Vec<u8>,
    ack: Option<flume::Sender<Result<(), WarmSaveError>>>,
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

/// Owned by the writer when `warmRestart` is on.
pub struct WarmRestart {
    path: PathBuf,
    /// `brokerTimeoutDefaultMs`, to mark the brokers that sent no timeout of their own.
    timeout_default_ms: u64,
    interval: Duration,
    /// A file whose content did not change is still rewritten this often, so that after a
    /// crash the file of a quiet table is younger than `warmRestartMaxAgeMs`.
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
    /// With `warmRestart` on: loads the file into the (empty) `table` if it is valid and
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
                    let why = WarmFileError::TooOld { age_ms, age_ms_max: config.warm_restart_max_age_ms };
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
    pub fn final_save(&mut self, table: &RouteTable, now_ms: u64, deadline: Instant) -> Result<(), WarmSaveError> {
        let Some(jobs) = &self.jobs else { return Err(WarmSaveError::NotRunning) };
        let bytes = encode(table, now_ms, unix_ms(), self.timeout_default_ms);
        let size = bytes.len();
        let (ack, done) = flume::bounded(1);
        let late = || WarmSaveError::Late { path: Some(self.path.clone()) };
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

fn warn_ignored(path: &Path, why: &WarmFileError) {
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
        let result = persist::replace_atomic(path, &job.bytes)
            .map_err(|cause| WarmSaveError::Write { path: path.to_path_buf(), cause });
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
