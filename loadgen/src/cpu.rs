//! CPU time of loadgen itself, of the target processes given with `--pid`, and of the whole
//! machine, so a run on one host shows who used the shared cores; and resident memory
//! (VmRSS of a target, loadgen's own peak).
//!
//! Must not: fail a run; a missing /proc entry just yields no figure.

use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    self_user_us: u64,
    self_sys_us: u64,
    /// (pid, utime + stime in clock ticks) when readable.
    targets: Vec<(u32, Option<u64>)>,
    /// (busy ticks, all ticks) over every CPU, from /proc/stat.
    machine: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetCpu {
    pub pid: u32,
    /// Cores used on average (1.0 = one core fully busy); `None` if /proc was unreadable.
    pub cores: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuUsage {
    pub wall_s: f64,
    pub loadgen_cores: f64,
    pub loadgen_user_cores: f64,
    pub loadgen_sys_cores: f64,
    pub targets: Vec<TargetCpu>,
    pub machine_busy_cores: Option<f64>,
    pub machine_cores: usize,
}

fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces or parentheses; fields restart after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')' come state (field 3) ...; utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let all: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((all.saturating_sub(idle), all))
}

pub fn sample(pids: &[u32]) -> CpuSample {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    CpuSample {
        at: Instant::now(),
        self_user_us: us(usage.ru_utime),
        self_sys_us: us(usage.ru_stime),
        targets: pids.iter().map(|&pid| (pid, process_ticks(pid))).collect(),
        machine: machine_ticks(),
    }
}

pub fn usage(from: &CpuSample, to: &CpuSample) -> CpuUsage {
    let wall_s = to.at.duration_since(from.at).as_secs_f64().max(1e-9);
    let ticks = clock_ticks_per_s() as f64;
    let round = |v: f64| (v * 100.0).round() / 100.0;
    let user = (to.self_user_us.saturating_sub(from.self_user_us)) as f64 / 1e6 / wall_s;
    let sys = (to.self_sys_us.saturating_sub(from.self_sys_us)) as f64 / 1e6 / wall_s;
    let targets = from
        .targets
        .iter()
        .zip(&to.targets)
        .map(|((pid, a), (_, b))| TargetCpu {
            pid: *pid,
            cores: match (a, b) {
                (Some(a), Some(b)) => Some(round(b.saturating_sub(*a) as f64 / ticks / wall_s)),
                _ => None,
            },
        })
        .collect();
    let machine_cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let machine_busy_cores = match (from.machine, to.machine) {
        (Some((busy_a, all_a)), Some((busy_b, all_b))) if all_b > all_a => {
            Some(round((busy_b - busy_a) as f64 / (all_b - all_a) as f64 * machine_cores as f64))
        }
        _ => None,
    };
    CpuUsage {
        wall_s: round(wall_s),
        loadgen_cores: round(user + sys),
        loadgen_user_cores: round(user),
        loadgen_sys_cores: round(sys),
        targets,
        machine_busy_cores,
        machine_cores,
    }
}

impl CpuUsage {
    /// `loadgen 0.93 cores (user 0.51, sys 0.42) | pid 123: 0.98 cores | machine 1.97/2 busy`
    pub fn describe(&self) -> String {
        let mut text = format!(
            "loadgen {:.2} cores (user {:.2}, sys {:.2})",
            self.loadgen_cores, self.loadgen_user_cores, self.loadgen_sys_cores
        );
        for target in &self.targets {
            match target.cores {
                Some(c) => text.push_str(&format!(" | pid {}: {c:.2} cores", target.pid)),
                None => text.push_str(&format!(" | pid {}: unreadable", target.pid)),
            }
        }
        if let Some(busy) = self.machine_busy_cores {
            text.push_str(&format!(" | machine {busy:.2}/{} cores busy", self.machine_cores));
        }
        text
    }
}

/// A `kB` field of /proc/<pid>/status (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
    line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(&format!("/proc/{pid}/status"), "VmRSS")
}

/// loadgen's own peak resident memory, in KiB.
pub fn self_hwm_kib() -> Option<u64> {
    status_kib("/proc/self/status", "VmHWM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable_and_time_moves() {
        let pid = std::process::id();
        let a = sample(&[pid, u32::MAX]);
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = sample(&[pid, u32::MAX]);
        let u = usage(&a, &b);
        assert!(u.targets[0].cores.is_some());
        assert!(u.targets[1].cores.is_none(), "no such pid");
        assert!(u.loadgen_cores >= 0.0);
        assert!(u.describe().contains("unreadable"));
        assert!(rss_kib(pid).is_some_and(|k| k > 0));
        assert!(self_hwm_kib().is_some_and(|k| k >= rss_kib(pid).unwrap_or(0) / 2));
        assert!(rss_kib(u32::MAX).is_none());
    }
}
