//! Shared helpers for the end-to-end tests: a `Server` that runs the built `meridian` binary
//! on an ephemeral port with its own data dir and captures its log, a blocking `Client`
//! that speaks the RocketMQ remoting frame format, and `poll_until`.
//!
//! The client encodes request headers itself (serde_json for the JSON form, a few lines for
//! the ROCKETMQ binary form) rather than with Meridian's encoder, so a codec bug cannot
//! cancel itself out between request and answer. Must not: sleep to synchronise (poll
//! with a deadline instead) or leave a process or a directory behind.

// Each test crate that includes this module uses a different subset of it.
#![allow(dead_code)]

pub mod builders;
pub mod cli;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a server may take to print its listening line.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// Socket read/write timeout of test clients: a test never hangs longer on one read.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for polls and log waits.
pub const POLL_DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two attempts of a poll.
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// Bytes of the frame's total-length prefix and of the header word.
const PREFIX_BYTES: usize = 4;
/// Largest answer a test accepts; a larger length prefix means the stream is garbage.
const REPLY_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Java's language names by code (framing.md §5).
const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST",
    "NODE_JS",
];

/// Calls `condition` until it returns true or `deadline` passes; returns its last answer.
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL_PAUSE);
    }
}

/// Where the golden frames live: vendored in the repo (testdata/golden/README.md).
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

/// Every line of a golden JSONL file, parsed.
pub fn golden_lines(file: &str) -> Vec<serde_json::Value> {
    let path = golden_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display())))
        .collect()
}

pub fn hex_decode(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex length {}", digits.len());
    let nibble = |d: u8| (d as char).to_digit(16).unwrap_or_else(|| panic!("not a hex digit: {d}")) as u8;
    digits.chunks(2).map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1])).collect()
}

// ---------------------------------------------------------------------------------------
// Temporary data directory
// ---------------------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let name =
            format!("meridian-test-{label}-{}-{}-{nanos}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------
// Captured log
// ---------------------------------------------------------------------------------------

/// The child's stderr, appended line by line by a reader thread.
#[derive(Default)]
struct LogState {
    text: String,
    /// The child closed stderr (it exited).
    closed: bool,
}

#[derive(Default)]
pub struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

impl Log {
    /// Starts a thread that drains `source` into a new log until EOF.
    fn drain(source: impl Read + Send + 'static) -> Arc<Log> {
        let log = Arc::new(Log::default());
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(source);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let mut state = sink.state.lock().expect("log lock");
                        state.text.push_str(&String::from_utf8_lossy(&line));
                        sink.changed.notify_all();
                    }
                }
            }
            sink.state.lock().expect("log lock").closed = true;
            sink.changed.notify_all();
        });
        log
    }

    pub fn text(&self) -> String {
        self.state.lock().expect("log lock").text.clone()
    }

    /// Waits until the log contains `needle`, the stream ends, or `deadline` passes.
    /// Returns the first line holding the needle.
    pub fn wait_for(&self, needle: &str, deadline: Duration) -> Option<String> {
        self.wait_for_line(|line| line.contains(needle), deadline)
    }

    /// Waits until a whole log line satisfies `matches`, the stream ends, or `deadline`
    /// passes. Returns the first such line.
    pub fn wait_for_line(&self, matches: impl Fn(&str) -> bool, deadline: Duration) -> Option<String> {
        let end = Instant::now() + deadline;
        let mut state = self.state.lock().expect("log lock");
        loop {
            if let Some(line) = state.text.lines().find(|line| matches(line)) {
                return Some(line.to_string());
            }
            let now = Instant::now();
            if state.closed || now >= end {
                return None;
            }
            state = self.changed.wait_timeout(state, end - now).expect("log lock").0;
        }
    }

    /// Waits until the stream ends (the child exited) or `deadline` passes.
    fn wait_closed(&self, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        let mut state = self.state.lock().expect("log lock");
        while !state.closed {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            state = self.changed.wait_timeout(state, end - now).expect("log lock").0;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

pub struct ServerOptions {
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
    /// The binary to run instead of the one cargo built (e.g. a copy another user can reach).
    pub binary: Option<PathBuf>,
    /// Restrict the child to this one CPU (as `taskset -c CPU` would).
    pub cpu: Option<usize>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
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
            binary: None,
            cpu: None,
        }
    }
}

impl ServerOptions {
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
        let mut command = Command::new(self.binary.as_deref().unwrap_or(Path::new(env!("CARGO_BIN_EXE_meridian"))));
        command
            .arg("--listen")
            .arg(&self.listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--shards")
            .arg(self.shards.to_string())
            // Tests run side by side: each server's metrics on a port of its own (see
            // `Server::metrics_addr`); a test's own `metrics_listen` comes later and wins.
            .arg("--set")
            .arg("metrics_listen=127.0.0.1:0");
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
    /// Starts a server with the default options plus `--set` arguments.
    pub fn start(sets: &[&str]) -> Server {
        Server::start_with(ServerOptions::default().sets(sets))
    }

    pub fn start_with(options: ServerOptions) -> Server {
        let temp = match options.data_dir {
            Some(_) => None,
            None => Some(TempDir::new("data")),
        };
        let data_dir = options.data_dir.clone().unwrap_or_else(|| temp.as_ref().expect("created above").path().into());
        let mut child = options.command(&data_dir).spawn().expect("spawning the meridian binary");
        let log = Log::drain(child.stderr.take().expect("stderr is piped"));
        let mut server = Server { child, addr: "0.0.0.0:0".parse().expect("literal"), log, data_dir, _temp: temp };
        let needle = "meridian listening on ";
        let Some(line) = server.log.wait_for(needle, START_DEADLINE) else {
            let status = server.child.try_wait().ok().flatten();
            panic!("meridian did not start within {START_DEADLINE:?} (exit {status:?}); log:\n{}", server.log.text());
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
        let mut child = options.command(&data_dir).spawn().expect("spawning the meridian binary");
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
        poll_status(&mut self.child, deadline)
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

// ---------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------

/// Serialize type byte of a JSON header.
pub const SERIALIZE_JSON: u8 = 0;
/// Serialize type byte of a ROCKETMQ binary header.
pub const SERIALIZE_ROCKETMQ: u8 = 1;

/// A whole frame: total length, header word, header, body (framing.md §1).
pub fn frame(serialize_type: u8, header: &[u8], body: &[u8]) -> Vec<u8> {
    assert!(header.len() <= 0x00FF_FFFF, "header {} bytes", header.len());
    let total_len = 4 + header.len() + body.len();
    let mut out = Vec::with_capacity(PREFIX_BYTES + total_len);
    out.extend_from_slice(&(total_len as u32).to_be_bytes());
    out.extend_from_slice(&(((serialize_type as u32) << 24) | header.len() as u32).to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

/// One request to send. Built with `Request::new(code)` and the setters below.
#[derive(Debug, Clone)]
pub struct Request {
    pub code: i32,
    pub language: u8,
    pub version: i32,
    /// `None` takes the client's next opaque.
    pub opaque: Option<i32>,
    pub flag: i32,
    pub remark: Option<String>,
    /// `None` omits extFields from the JSON header.
    pub ext: Option<Vec<(String, String)>>,
    pub body: Vec<u8>,
    /// Send a ROCKETMQ binary header instead of JSON.
    pub binary: bool,
}

/// Flag bit 1: the requester will not read an answer.
pub const FLAG_ONEWAY: i32 = 0x2;
/// Flag bit 0: the frame is a response.
pub const FLAG_RESPONSE: i32 = 0x1;

impl Request {
    pub fn new(code: i32) -> Request {
        Request {
            code,
            language: 0,
            version: 479,
            opaque: None,
            flag: 0,
            remark: None,
            ext: None,
            body: Vec::new(),
            binary: false,
        }
    }

    pub fn ext(mut self, key: &str, value: impl ToString) -> Request {
        self.ext.get_or_insert_with(Vec::new).push((key.to_string(), value.to_string()));
        self
    }

    pub fn version(mut self, version: i32) -> Request {
        self.version = version;
        self
    }

    pub fn opaque(mut self, opaque: i32) -> Request {
        self.opaque = Some(opaque);
        self
    }

    pub fn oneway(mut self) -> Request {
        self.flag |= FLAG_ONEWAY;
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    pub fn binary(mut self) -> Request {
        self.binary = true;
        self
    }

    pub fn language(mut self, language: u8) -> Request {
        self.language = language;
        self
    }

    /// The whole frame with `opaque`.
    pub fn encode(&self, opaque: i32) -> Vec<u8> {
        if self.binary {
            frame(SERIALIZE_ROCKETMQ, &self.binary_header(opaque), &self.body)
        } else {
            frame(SERIALIZE_JSON, &self.json_header(opaque), &self.body)
        }
    }

    /// Java's shape: alphabetical keys (serde_json's default map is sorted), nulls omitted.
    fn json_header(&self, opaque: i32) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        header.insert("code".into(), self.code.into());
        if let Some(ext) = &self.ext {
            let fields: serde_json::Map<String, serde_json::Value> =
                ext.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            header.insert("extFields".into(), fields.into());
        }
        header.insert("flag".into(), self.flag.into());
        if let Some(name) = LANGUAGES.get(self.language as usize) {
            header.insert("language".into(), (*name).into());
        }
        header.insert("opaque".into(), opaque.into());
        if let Some(remark) = &self.remark {
            header.insert("remark".into(), remark.clone().into());
        }
        header.insert("serializeTypeCurrentRPC".into(), "JSON".into());
        header.insert("version".into(), self.version.into());
        serde_json::to_vec(&header).expect("a map of strings and numbers serializes")
    }

    /// framing.md §2.2.
    fn binary_header(&self, opaque: i32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.code as i16).to_be_bytes());
        out.push(self.language);
        out.extend_from_slice(&(self.version as i16).to_be_bytes());
        out.extend_from_slice(&opaque.to_be_bytes());
        out.extend_from_slice(&self.flag.to_be_bytes());
        let remark = self.remark.as_deref().unwrap_or("");
        out.extend_from_slice(&(remark.len() as i32).to_be_bytes());
        out.extend_from_slice(remark.as_bytes());
        let mut ext = Vec::new();
        for (k, v) in self.ext.iter().flatten() {
            ext.extend_from_slice(&(k.len() as i16).to_be_bytes());
            ext.extend_from_slice(k.as_bytes());
            ext.extend_from_slice(&(v.len() as i32).to_be_bytes());
            ext.extend_from_slice(v.as_bytes());
        }
        out.extend_from_slice(&(ext.len() as i32).to_be_bytes());
        out.extend_from_slice(&ext);
        out
    }
}

/// One decoded answer frame.
#[derive(Debug, Clone)]
pub struct Reply {
    pub serialize_type: u8,
    /// The header as JSON (a binary header is converted to the JSON key names).
    pub header: serde_json::Value,
    /// The header bytes as received.
    pub header_bytes: Vec<u8>,
    pub body: Vec<u8>,
}

impl Reply {
    fn int(&self, key: &str) -> i64 {
        self.header[key].as_i64().unwrap_or_else(|| panic!("header {key} missing or not a number: {}", self.header))
    }

    pub fn code(&self) -> i32 {
        self.int("code") as i32
    }

    pub fn opaque(&self) -> i32 {
        self.int("opaque") as i32
    }

    pub fn flag(&self) -> i32 {
        self.int("flag") as i32
    }

    pub fn remark(&self) -> Option<&str> {
        self.header.get("remark").and_then(|r| r.as_str())
    }

    /// extFields, or `None` when the header has none.
    pub fn ext(&self) -> Option<BTreeMap<String, String>> {
        let fields = self.header.get("extFields")?.as_object()?;
        Some(
            fields.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect(),
        )
    }

    pub fn ext_field(&self, key: &str) -> Option<String> {
        self.ext().and_then(|e| e.get(key).cloned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The header without `opaque`, for comparing with a golden answer.
    pub fn header_without_opaque(&self) -> serde_json::Value {
        without_opaque(&self.header)
    }
}

pub fn without_opaque(header: &serde_json::Value) -> serde_json::Value {
    let mut header = header.clone();
    if let Some(map) = header.as_object_mut() {
        map.remove("opaque");
    }
    header
}

/// For fake NameServers: reads one request frame off `stream` and returns its opaque;
/// `None` when the stream ends or errs first.
pub fn read_request_opaque(stream: &mut TcpStream) -> Option<i64> {
    let mut prefix = [0u8; PREFIX_BYTES];
    stream.read_exact(&mut prefix).ok()?;
    let mut rest = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut rest).ok()?;
    let whole: Vec<u8> = prefix.iter().chain(&rest).copied().collect();
    let (serialize_type, header, _) = split_frame(&whole);
    header_json(serialize_type, &header)["opaque"].as_i64()
}

/// Splits a whole frame into (serialize type, header bytes, body).
pub fn split_frame(frame: &[u8]) -> (u8, Vec<u8>, Vec<u8>) {
    assert!(frame.len() >= 8, "frame of {} bytes", frame.len());
    let total_len = u32::from_be_bytes(frame[0..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(total_len + PREFIX_BYTES, frame.len(), "length prefix disagrees with the frame");
    let word = u32::from_be_bytes(frame[4..8].try_into().expect("4 bytes"));
    let header_len = (word & 0x00FF_FFFF) as usize;
    ((word >> 24) as u8, frame[8..8 + header_len].to_vec(), frame[8 + header_len..].to_vec())
}

/// Decodes a header of either serialize type into JSON.
pub fn header_json(serialize_type: u8, header: &[u8]) -> serde_json::Value {
    match serialize_type {
        SERIALIZE_JSON => serde_json::from_slice(header)
            .unwrap_or_else(|e| panic!("JSON header {:?}: {e}", String::from_utf8_lossy(header))),
        SERIALIZE_ROCKETMQ => {
            use meridian_protocol::frame::SerializeType;
            use meridian_protocol::header::Header;
            let h = Header::decode(SerializeType::RocketMq, header).unwrap_or_else(|e| panic!("binary header: {e}"));
            let mut map = serde_json::Map::new();
            map.insert("code".into(), h.code.into());
            if let Some(ext) = h.ext_fields {
                let fields: serde_json::Map<String, serde_json::Value> =
                    ext.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
                map.insert("extFields".into(), fields.into());
            }
            map.insert("flag".into(), h.flag.into());
            if let Some(name) = h.language.and_then(|l| LANGUAGES.get(l as usize)) {
                map.insert("language".into(), (*name).into());
            }
            map.insert("opaque".into(), h.opaque.into());
            if let Some(remark) = h.remark {
                map.insert("remark".into(), remark.into());
            }
            map.insert("version".into(), h.version.into());
            map.into()
        }
        other => panic!("unknown serialize type {other} in an answer"),
    }
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// How a read on a connection the server should have closed ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// EOF or a reset: the server closed the connection.
    Yes,
    /// The server sent this many bytes instead.
    SentData(usize),
    /// Nothing happened within the read timeout.
    TimedOut,
}

/// A blocking connection to a server, with read and write timeouts.
pub struct Client {
    stream: TcpStream,
    opaque_next: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("set_read_timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("set_write_timeout");
        stream.set_nodelay(true).expect("set_nodelay");
        Client { stream, opaque_next: 1 }
    }

    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("local_addr").port()
    }

    /// Writes the request; returns the opaque it carries.
    pub fn send(&mut self, request: &Request) -> i32 {
        self.try_send(request).unwrap_or_else(|e| panic!("writing a request with code {}: {e}", request.code))
    }

    pub fn try_send(&mut self, request: &Request) -> io::Result<i32> {
        let opaque = request.opaque.unwrap_or_else(|| {
            let o = self.opaque_next;
            self.opaque_next += 1;
            o
        });
        self.stream.write_all(&request.encode(opaque))?;
        Ok(opaque)
    }

    /// Sends a request and reads one answer, reporting I/O failures instead of panicking
    /// (for connections the server may have refused).
    pub fn try_call(&mut self, request: &Request) -> io::Result<Reply> {
        let opaque = self.try_send(request)?;
        let reply = self.read_reply()?;
        assert_eq!(reply.opaque(), opaque, "answer to code {} carries another opaque: {}", request.code, reply.header);
        Ok(reply)
    }

    /// Reads one whole frame.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut prefix = [0u8; PREFIX_BYTES];
        self.stream.read_exact(&mut prefix)?;
        let total_len = u32::from_be_bytes(prefix) as usize;
        if !(4..=REPLY_FRAME_BYTES_MAX).contains(&total_len) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("answer length prefix {total_len}")));
        }
        let mut rest = vec![0u8; total_len];
        self.stream.read_exact(&mut rest)?;
        let mut whole = prefix.to_vec();
        whole.extend_from_slice(&rest);
        let (serialize_type, header_bytes, body) = split_frame(&whole);
        Ok(Reply { serialize_type, header: header_json(serialize_type, &header_bytes), header_bytes, body })
    }

    /// Sends a request and reads its answer, checking the opaque and the response flag.
    pub fn call(&mut self, request: &Request) -> Reply {
        let opaque = self.send(request);
        let reply = self.read_reply().unwrap_or_else(|e| panic!("no answer to code {}: {e}", request.code));
        assert_eq!(reply.opaque(), opaque, "answer to code {} carries another opaque: {}", request.code, reply.header);
        assert_eq!(reply.flag() & FLAG_RESPONSE, FLAG_RESPONSE, "answer without the response flag: {}", reply.header);
        reply
    }

    /// Writes raw bytes; errors are returned (the server may already have closed).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads until the server closes the connection, it sends something, or the read
    /// timeout passes.
    pub fn read_until_closed(&mut self) -> Closed {
        let mut buf = [0u8; 4096];
        match self.stream.read(&mut buf) {
            Ok(0) => Closed::Yes,
            Ok(n) => Closed::SentData(n),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Closed::TimedOut,
            Err(_) => Closed::Yes,
        }
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).expect("set_read_timeout");
    }

    /// Stops sending; the server sees EOF once it has read what was sent.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
