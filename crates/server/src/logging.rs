//! Logging: the subscriber (`logLevel`, `logFormat`, `RUST_LOG`) and a limiter that keeps
//! warnings about misbehaving peers from flooding the log.
//!
//! The subscriber is installed once the config is built (it decides the filter and the
//! format), so anything worth saying before that is collected and logged right after.
//! The limiter is thread-local state by construction: each shard (and the writer) owns one
//! and uses it from its own thread only, so it is a few `Cell`s, no lock.

use crate::config::{check_log_filter, Config, LogFormat};
use crate::error::ConfigError;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The environment variable that, when set and not empty, replaces `logLevel`.
pub const LOG_FILTER_ENV: &str = "RUST_LOG";

/// Warnings about misbehaving peers written per window by one shard (or the writer); the
/// rest of the window's are counted and reported in one line when it ends. Large enough
/// that single events (and the first lines of any burst) always show.
pub const PEER_WARNINGS_PER_WINDOW_MAX: u32 = 20;
/// Length of the limiter's window.
pub const PEER_WARNING_WINDOW_MS: u64 = 10_000;

/// The filter in force and where it came from: `RUST_LOG` when set and not empty (`env`),
/// else `logLevel`.
pub fn filter_directives(config: &Config, env: Option<String>) -> (String, &'static str) {
    match env.filter(|v| !v.trim().is_empty()) {
        Some(v) => (v, LOG_FILTER_ENV),
        None => (config.log_level.clone(), "logLevel"),
    }
}

/// Installs the process's log subscriber: stderr, no colours, `config.log_format`, filtered
/// by `RUST_LOG` or `config.log_level`. An unusable `RUST_LOG` is a configuration error.
pub fn init(config: &Config) -> Result<(), ConfigError> {
    let (directives, source) = filter_directives(config, std::env::var(LOG_FILTER_ENV).ok());
    let filter = check_log_filter(source, &directives)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        // One object per line: timestamp, level, target and `fields` (the message is the
        // field `message`). Meridian opens no spans, so none are listed.
        LogFormat::Json => builder.json().with_current_span(false).with_span_list(false).try_init(),
    };
    installed.map_err(|e| ConfigError::Logging { why: e.to_string() })
}

/// What the limiter says about one more warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write it.
    Log,
    /// Count it; `first`: the first one this window suppressed (the owner arranges for
    /// `flush` to run when the window ends).
    Suppressed { first: bool },
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// When the window began (its first warning); `None` = no window open.
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// At most `PEER_WARNINGS_PER_WINDOW_MAX` warnings per `PEER_WARNING_WINDOW_MS`, then one
/// line with the count of the suppressed ones. Fixed windows that start at the first
/// warning after a quiet spell. Single-threaded (`Cell`s): one per shard, one for the writer.
#[derive(Debug)]
pub struct WarnLimiter {
    /// Where the warnings come from, for the summary line ("shard 1", "route writer").
    scope: String,
    window: Cell<Window>,
}

impl WarnLimiter {
    pub fn new(scope: impl Into<String>) -> WarnLimiter {
        WarnLimiter { scope: scope.into(), window: Cell::new(Window::default()) }
    }

    fn window_len() -> Duration {
        Duration::from_millis(PEER_WARNING_WINDOW_MS)
    }

    /// Counts one warning at `now` and says whether to write it.
    pub fn admit(&self, now: Instant) -> Admit {
        self.flush(now);
        let mut w = self.window.get();
        w.started.get_or_insert(now);
        let admit = if w.logged < PEER_WARNINGS_PER_WINDOW_MAX {
            w.logged += 1;
            Admit::Log
        } else {
            w.suppressed += 1;
            Admit::Suppressed { first: w.suppressed == 1 }
        };
        self.window.set(w);
        admit
    }

    /// Ends the window if it is over, writing one line if it suppressed anything; returns
    /// how many it suppressed.
    pub fn flush(&self, now: Instant) -> u64 {
        let w = self.window.get();
        let Some(started) = w.started else { return 0 };
        let elapsed = now.saturating_duration_since(started);
        if elapsed < Self::window_len() {
            return 0;
        }
        self.window.set(Window::default());
        if w.suppressed > 0 {
            tracing::warn!(
                scope = ?self.scope,
                suppressed = w.suppressed,
                window_ms = elapsed.as_millis() as u64,
                "suppressed {} similar warnings about misbehaving peers on {} in the last {} s",
                w.suppressed,
                self.scope,
                elapsed.as_secs()
            );
        }
        w.suppressed
    }

    /// When the open window ends, if it has suppressed warnings to report.
    pub fn flush_due(&self) -> Option<Instant> {
        let w = self.window.get();
        w.started.filter(|_| w.suppressed > 0).map(|s| s + Self::window_len())
    }
}

/// On a shard's executor: whether a warning about a misbehaving peer may be written now.
/// The first one suppressed in a window starts a timer task that writes the summary line
/// when the window ends, so a flood that stops is still reported.
pub fn admit_on_shard(limiter: &Rc<WarnLimiter>) -> bool {
    match limiter.admit(Instant::now()) {
        Admit::Log => true,
        Admit::Suppressed { first } => {
            if let (true, Some(due)) = (first, limiter.flush_due()) {
                let limiter = limiter.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(due.saturating_duration_since(Instant::now())).await;
                    limiter.flush(Instant::now());
                })
                .detach();
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_shows_its_first_lines_then_one_count_per_window() {
        let l = WarnLimiter::new("shard 0");
        let t0 = Instant::now();
        for _ in 0..PEER_WARNINGS_PER_WINDOW_MAX {
            assert_eq!(l.admit(t0), Admit::Log);
        }
        assert_eq!(l.flush_due(), None, "nothing suppressed yet");
        assert_eq!(l.admit(t0), Admit::Suppressed { first: true });
        for _ in 0..9 {
            assert_eq!(l.admit(t0 + Duration::from_millis(5)), Admit::Suppressed { first: false });
        }
        let due = t0 + Duration::from_millis(PEER_WARNING_WINDOW_MS);
        assert_eq!(l.flush_due(), Some(due));
        assert_eq!(l.flush(due - Duration::from_millis(1)), 0, "window not over");
        assert_eq!(l.flush(due), 10);
        assert_eq!(l.flush(due), 0, "reported once");
        // The next window lets lines through again.
        assert_eq!(l.admit(due + Duration::from_secs(1)), Admit::Log);
    }

    #[test]
    fn a_late_warning_closes_the_previous_window() {
        let l = WarnLimiter::new("route writer");
        let t0 = Instant::now();
        for _ in 0..=PEER_WARNINGS_PER_WINDOW_MAX {
            l.admit(t0);
        }
        // No timer ran: the next warning after the window reports the count and is written.
        assert_eq!(l.admit(t0 + Duration::from_secs(11)), Admit::Log);
        assert_eq!(l.flush_due(), None);
    }

    #[test]
    fn rust_log_wins_only_when_set_and_not_empty() {
        let c = Config { log_level: "warn".into(), ..Config::default() };
        assert_eq!(filter_directives(&c, None), ("warn".to_string(), "logLevel"));
        assert_eq!(filter_directives(&c, Some(" ".into())), ("warn".to_string(), "logLevel"));
        assert_eq!(filter_directives(&c, Some("debug".into())), ("debug".to_string(), "RUST_LOG"));
    }
}
