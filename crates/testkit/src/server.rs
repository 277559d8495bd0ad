//! Runs the real `meridian` binary as a child: on 127.0.0.1:0 with its own temporary data
//! dir by default, waits for its listening line, captures its log, and kills it (by PID) on
//! drop. Must not: link the server crate (the binary's path is passed in), or leave a process
//! or a directory behind.

use crate::client::{Client, IO_TIMEOUT};
use crate::log::Log;
use crate::temp::{poll_until, TempDir, POLL_DEADLINE};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// How long a server may take to print its listening line.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// What a server prints on stderr, followed by its address, once it accepts connections.
const LISTENING: &str = "meridian listening on ";

/// How to run one `meridian`: `ServerOptions::new(binary)` gives the defaults (127.0.0.1:0,
/// two shards, a fresh data dir, metrics on an ephemeral port); the setters and the public
/// fields change them.
pub struct ServerOptions {
    /// The `meridian` binary (`env!("CARGO_BIN_EXE_meridian")` in the crate that builds it, or
    /// a copy another user can reach).
    pub binary: PathBuf,
    /// `--listen`; port 0 lets the kernel choose.
    pub listen: String,
    pub shards: usize,
    /// `--set key=value` arguments.
    pub sets: Vec<String>,
    /// `--data-dir`; `None` creates a fresh temporary one.
    pub data_dir: Option<PathBuf>,
    /// RLIMIT_MEMLOCK (soft and hard) for the child, in bytes.
    pub memlock_bytes: Option<u64>,
    /// RLIMIT_NOFILE (soft, hard) for the server.
    pub nofile: Option<(u64, u64)>,
    /// Extra environment variables for the child (e.g. the persist crash hook).
    pub envs: Vec<(String, String)>,
    /// Extra command-line arguments, after the others (e.g. `-c FILE`).
    pub args: Vec<String>,
    /// Set RLIMIT_CORE to 0, for runs that abort on purpose.
    pub core_dump_disabled: bool,
    /// (uid, gid) the child switches to before exec (only possible when the tests run as root).
    pub run_as: Option<(u32, u32)>,
    /// Restrict the child to this one CPU (as `taskset -c CPU` would).
    pub cpu: Option<usize>,
}

impl ServerOptions {
    /// The defaults, running `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> ServerOptions {
        ServerOptions {
            binary: binary.into(),
            listen: "127.0.0.1:0".to_string(),
            // Two shards, so connections of one test land on different executors.
            shards: 2,
            sets: Vec::new(),
            data_dir: None,
            memlock_bytes: None,
            nofile: None,
            envs: Vec::new(),
            args: Vec::new(),
            core_dump_disabled: false,
            run_as: None,
            cpu: None,
        }
    }

    pub fn sets(mut self, sets: &[&str]) -> Self {
        self.sets.extend(sets.iter().map(|s| s.to_string()));
        self
    }

    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Runs on `dir`, which the caller owns (so it survives the server, e.g. for a restart).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// For a child that is expected to abort: no core file.
    pub fn without_core_dump(mut self) -> Self {
        self.core_dump_disabled = true;
        self
    }

    fn command(&self, data_dir: &Path) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--shards")
            .arg(self.shards.to_string())
            // Tests run side by side: each server's metrics on a port of its own (see
            // `Server::metrics_addr`); a test's own `metricsListen` comes later and wins.
            .arg("--set")
            .arg("metricsListen=127.0.0.1:0");
        for set in &self.sets {
            command.arg("--set").arg(set);
        }
        command.args(&self.args);
        // The tests read info and warn lines; an inherited RUST_LOG must not hide them.
        // MERIDIAN_TEST_RUST_LOG (e.g. `debug`) adds detail when diagnosing a failure; a
        // test's own `env("RUST_LOG", ..)` comes after and wins.
        let filter = std::env::var("MERIDIAN_TEST_RUST_LOG").unwrap_or_else(|_| "info".to_string());
        command.env("RUST_LOG", filter).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        let mut limits = Vec::new();
        if let Some(bytes) = self.memlock_bytes {
            limits.push((libc::RLIMIT_MEMLOCK, bytes as libc::rlim_t, bytes as libc::rlim_t));
        }
        if self.core_dump_disabled {
            limits.push((libc::RLIMIT_CORE, 0, 0));
        }
        if let Some((soft, hard)) = self.nofile {
            limits.push((libc::RLIMIT_NOFILE, soft as libc::rlim_t, hard as libc::rlim_t));
        }
        let run_as = self.run_as;
        let cpu = self.cpu;
        if !limits.is_empty() || run_as.is_some() || cpu.is_some() {
            use std::os::unix::process::CommandExt;
            // SAFETY: runs in the forked child before exec; setrlimit, sched_setaffinity,
            // setgroups, setgid and setuid are async-signal-safe, and the closure only reads
            // values moved into it.
            unsafe {
                command.pre_exec(move || {
                    for (resource, soft, hard) in &limits {
                        let limit = libc::rlimit { rlim_cur: *soft, rlim_max: *hard };
                        if libc::setrlimit(*resource, &limit) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    if let Some(cpu) = cpu {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(cpu, &mut set);
                        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    if let Some((uid, gid)) = run_as {
                        if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0
                        {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        command
    }
}

/// A running `meridian` child. Killed (by PID) and its data dir removed on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Log>,
    data_dir: PathBuf,
    _temp: Option<TempDir>,
}

/// A `meridian` run that was expected to refuse to start.
pub struct Exited {
    pub status: ExitStatus,
    pub log: String,
}

impl Server {
    /// Starts `meridian` with `options` and waits for its listening line.
    pub fn start_with(options: ServerOptions) -> Server {
        let temp = match options.data_dir {
            Some(_) => None,
            None => Some(TempDir::new("data")),
        };
        let data_dir = options.data_dir.clone().unwrap_or_else(|| temp.as_ref().expect("created above").path().into());
        let command = options.command(&data_dir);
        Server::start_command(command, LISTENING, data_dir, temp)
    }

    /// Spawns `command` (any server that prints `<needle><address>` on stderr once it
    /// listens, e.g. loadgen's echo server) with stderr captured, and waits for that line.
    /// `dataDir` is only reported by `dataDir()`; `temp` is removed when the server drops.
    pub fn start_command(mut command: Command, needle: &str, data_dir: PathBuf, temp: Option<TempDir>) -> Server {
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = spawn(&mut command);
        let log = Log::drain(child.stderr.take().expect("stderr is piped"));
        let mut server = Server { child, addr: "0.0.0.0:0".parse().expect("literal"), log, data_dir, _temp: temp };
        let Some(line) = server.log.wait_for(needle, START_DEADLINE) else {
            let status = server.child.try_wait().ok().flatten();
            panic!("{needle:?} not printed within {START_DEADLINE:?} (exit {status:?}); log:\n{}", server.log.text());
        };
        let after = &line[line.find(needle).expect("found above") + needle.len()..];
        let addr_text = after.split_whitespace().next().unwrap_or("");
        server.addr = addr_text.parse().unwrap_or_else(|e| panic!("listening line {line:?}: bad address: {e}"));
        server
    }

    /// Runs `meridian` with `options` and waits for it to exit, which it must do by itself
    /// within the start deadline (a refused start). Panics if it starts serving instead.
    pub fn run_expecting_exit(options: ServerOptions) -> Exited {
        let temp = TempDir::new("refused");
        let data_dir = options.data_dir.clone().unwrap_or_else(|| temp.path().into());
        let mut child = spawn(&mut options.command(&data_dir));
        let log = Log::drain(child.stderr.take().expect("stderr is piped"));
        let closed = log.wait_closed(START_DEADLINE);
        let status = if closed { poll_status(&mut child, START_DEADLINE) } else { None };
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("meridian was expected to refuse to start but kept running; log:\n{}", log.text());
        };
        Exited { status, log: log.text() }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where this server serves `/metrics`, from its start-up line.
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self.wait_for_log("metrics on http://", POLL_DEADLINE).expect("the metrics address is logged");
        let rest = &line[line.find("http://").expect("http://") + "http://".len()..];
        rest[..rest.find('/').expect("a path")].parse().expect("a socket address")
    }

    /// GET `path` from the metrics endpoint: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect_timeout(&self.metrics_addr(), IO_TIMEOUT).expect("connect to metrics");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set_read_timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read the response");
        let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn log_text(&self) -> String {
        self.log.text()
    }

    /// Waits for a log line containing `needle`; returns it, or `None` at the deadline.
    pub fn wait_for_log(&self, needle: &str, deadline: Duration) -> Option<String> {
        self.log.wait_for(needle, deadline)
    }

    /// Waits for a log line containing every one of `needles`, panicking with the log on a
    /// miss at the default deadline.
    pub fn expect_log_line(&self, needles: &[&str]) -> String {
        self.log.wait_for_line(|line| needles.iter().all(|n| line.contains(n)), POLL_DEADLINE).unwrap_or_else(|| {
            panic!("no log line containing all of {needles:?} within {POLL_DEADLINE:?}; log:\n{}", self.log_text())
        })
    }

    /// Like `wait_for_log` with the default deadline, panicking with the log on a miss.
    pub fn expect_log(&self, needle: &str) -> String {
        self.wait_for_log(needle, POLL_DEADLINE).unwrap_or_else(|| {
            panic!("no log line containing {needle:?} within {POLL_DEADLINE:?}; log:\n{}", self.log_text())
        })
    }

    /// The child is still running.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the child to exit by itself (e.g. an abort on purpose); `None` if it is
    /// still running at `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let start = std::time::Instant::now();
        let status = poll_status(&mut self.child, deadline)?;
        // The reader thread may still hold the last lines (seen under load: a test read the
        // log of an exited server without its final lines): wait for it to reach EOF.
        self.log.wait_closed(deadline.saturating_sub(start.elapsed()).max(Duration::from_secs(1)));
        Some(status)
    }

    /// SIGKILL now (by PID) and reap: the connections reset, the port is free again.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn poll_status(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let mut status = None;
    poll_until(deadline, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The harness shows a failing test's output: include what the server said.
            eprintln!("--- meridian log ({}) ---\n{}--- end of log ---", self.addr, self.log_text());
        }
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `command`, retrying while exec fails with ETXTBSY. A test that copies the binary
/// (to run it as another user) holds a write fd on the copy; a sibling test thread that
/// forks at that moment carries the fd into its child until that child execs, and an exec
/// of the copy in that window fails with "Text file busy". The window is milliseconds.
pub fn spawn(command: &mut Command) -> Child {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match command.spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawning {:?}: {e}", command.get_program()),
        }
    }
}
