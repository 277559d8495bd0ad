//! A `meridian` child's stderr, captured line by line by a reader thread, and waits on it
//! with deadlines. Must not: block a test past its deadline.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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
    pub(crate) fn drain(source: impl Read + Send + 'static) -> Arc<Log> {
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
    pub(crate) fn wait_closed(&self, deadline: Duration) -> bool {
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
