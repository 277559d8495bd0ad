//! Every libc call and every `unsafe` block of the server, in one place, each with why it
//! is needed and why it is sound. The rest of the crate calls these safe wrappers.
//! Must not: hold policy (what to do on failure is the caller's choice).

use std::fs::File;
use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};

/// Takes an exclusive, non-blocking lock on `file` (flock), so two servers never share a
/// data directory. `false` if another process holds it.
pub fn try_lock_exclusive(file: &File) -> bool {
    // SAFETY: flock on a file descriptor we own (borrowed from `file` for the call); no
    // memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc == 0
}

/// The CPUs this process may run on (its affinity mask, so `taskset` and cgroup cpusets
/// are honoured), in ascending order; empty if the mask cannot be read.
pub fn affinity_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; an all-zero value is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most `size_of::<cpu_set_t>()` bytes into `set`.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    let mut cpus = Vec::new();
    if rc == 0 {
        for cpu in 0..libc::CPU_SETSIZE as usize {
            // SAFETY: `cpu` is below CPU_SETSIZE and `set` is initialised.
            if unsafe { libc::CPU_ISSET(cpu, &set) } {
                cpus.push(cpu);
            }
        }
    }
    cpus
}

/// Turns transparent huge pages off (or back on) for this process (prctl): io_uring
/// charges registered buffers to RLIMIT_MEMLOCK by whole compound page, so the shards
/// register theirs with THP off, and THP stays off unless configured (see
/// `server::start_shards`, `Config::transparent_huge_pages`).
pub fn set_thp_disabled(disabled: bool) {
    // SAFETY: prctl with integer arguments only; it changes this process's THP policy.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, disabled as libc::c_ulong, 0, 0, 0) };
}

/// The open-files limit (soft, hard), or `None` if it cannot be read.
pub fn open_files_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit on this process with a valid, writable rlimit struct.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur, limit.rlim_max))
}

/// Sets the soft open-files limit (setrlimit), keeping the hard one.
pub fn set_open_files_limit(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit on this process with a valid rlimit struct it only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ends a socket's I/O in both directions (shutdown) without closing its fd: a task
/// blocked on it wakes with an error or EOF and closes it itself.
///
/// The caller guarantees `fd` is an open socket it owns for the duration of the call:
/// the shards' listeners (open for the life of the process) and the fds a shard tracks for
/// its live connections (removed before the socket is dropped).
pub fn shutdown_socket(fd: RawFd) {
    // SAFETY: shutdown takes no memory; by the caller's guarantee `fd` is still open and
    // ours, so no unrelated file that reused the number is affected.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Adopts the listening socket the main thread created for a shard as a glommio listener.
///
/// The caller guarantees that `fd` is a bound, listening TCP socket handed over to this
/// shard alone: nothing else uses or closes it afterwards.
pub fn adopt_listener(fd: RawFd) -> glommio::net::TcpListener {
    // SAFETY: by the caller's guarantee the fd is a listening socket whose ownership moves
    // here, so the listener is its only owner.
    unsafe { glommio::net::TcpListener::from_raw_fd(fd) }
}

/// The memory page size and clock ticks per second (sysconf), for the process metrics.
pub fn page_bytes_and_clock_ticks() -> (u64, f64) {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    // SAFETY: as above.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (page, ticks)
}

/// Blocks SIGTERM, SIGINT (stop) and SIGHUP (reload the accounts file) in the calling thread
/// (pthread_sigmask) and returns the set. Called by `main` before any thread exists, so every
/// thread inherits the mask and only the thread calling `wait_for_signal` receives them.
pub fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// The reload signal, for `main` to tell it from the stop signals.
pub const SIGHUP: i32 = libc::SIGHUP;

/// Waits for one of the signals in `set` (sigwait) and returns it.
pub fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` is a valid, initialised sigset_t and `signal` a valid out pointer.
    let rc = unsafe { libc::sigwait(set, &mut signal) };
    assert_eq!(rc, 0, "sigwait on a valid set cannot fail");
    signal
}
