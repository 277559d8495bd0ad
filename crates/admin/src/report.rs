//! What a verb produces and how it is shown: the exit codes, `Failure` (why no usable
//! answer came), `Report` (a table for people, a JSON document for programs), aligned
//! tables, and writing to stdout / stderr.
//! Must not: talk to a NameServer.

use meridian_client::route_diff::fetch::TooManyTopics;
use meridian_protocol::codes;
use serde_json::{json, Value};
use std::fmt;
use std::io::{self, Write};

/// Success.
pub const EXIT_OK: i32 = 0;
/// A NameServer answered with an error code (or brokerStatus -b names a broker it does not list).
pub const EXIT_ANSWER_ERROR: i32 = 1;
/// Bad command line; clap exits with the same code for the errors it finds itself.
pub const EXIT_USAGE: i32 = 2;
/// No usable answer: cannot resolve or connect, timeout, connection closed, malformed answer.
pub const EXIT_UNUSABLE: i32 = 3;
/// routeDiff: every NameServer was read and they differ.
pub const EXIT_DIFFERENT: i32 = 4;

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
pub(crate) fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

pub(crate) fn print_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Why a verb got no answer it could use.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The NameServer answered with a non-zero code.
    Answer { namesrv: String, code: i32, remark: Option<String> },
    /// Cannot resolve or connect, timeout, closed connection, malformed answer.
    Unusable { namesrv: String, detail: String },
    /// A read verb tried every address and none gave a usable answer.
    NoneUsable(Vec<Failure>),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            Failure::Answer { .. } => EXIT_ANSWER_ERROR,
            Failure::Unusable { .. } | Failure::NoneUsable(_) => EXIT_UNUSABLE,
        }
    }

    /// A read verb asks the next address after this (as RocketMQ clients do); GO_AWAY means
    /// the NameServer is shutting down and wants its clients elsewhere.
    pub(crate) fn try_next(&self) -> bool {
        match self {
            Failure::Answer { code, .. } => *code == codes::GO_AWAY,
            Failure::Unusable { .. } | Failure::NoneUsable(_) => true,
        }
    }

    pub(crate) fn unusable(namesrv: &str, detail: impl Into<String>) -> Failure {
        Failure::Unusable { namesrv: namesrv.to_string(), detail: detail.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Answer { namesrv, code, remark } => {
                write!(f, "NameServer {namesrv} answered code {code}")?;
                if let Some(name) = codes::response_name(*code) {
                    write!(f, " ({name})")?;
                }
                match remark {
                    Some(remark) => write!(f, ": {remark}"),
                    None => f.write_str(" without a remark"),
                }
            }
            Failure::Unusable { namesrv, detail } => write!(f, "NameServer {namesrv}: {detail}"),
            Failure::NoneUsable(failures) => {
                f.write_str("no NameServer gave a usable answer")?;
                for failure in failures {
                    write!(f, "; {failure}")?;
                }
                Ok(())
            }
        }
    }
}

/// A command line that parses but cannot run; exits with [`EXIT_USAGE`].
#[derive(Debug)]
pub(crate) enum UsageError {
    /// routeDiff needs at least two NameServers.
    OneNamesrv { given: String },
    /// routeDiff would have to read more topics than `--max-topics`.
    TooManyTopics(TooManyTopics),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::OneNamesrv { given } => {
                write!(f, "routeDiff compares NameServers: give at least two with -n (got {given})")
            }
            UsageError::TooManyTopics(TooManyTopics { topics, max }) => write!(
                f,
                "{topics} topics (over all NameServers) exceed --max-topics {max}; raise --max-topics or name them \
                 with --topics"
            ),
        }
    }
}

/// What a verb prints: a table for people, one JSON document for programs.
pub(crate) struct Report {
    pub(crate) human: String,
    pub(crate) json: Value,
    /// Lines for stderr (e.g. an address that failed before another answered).
    pub(crate) notes: Vec<String>,
    pub(crate) exit_code: i32,
}

pub(crate) fn failure_label(failure: &Failure) -> String {
    match failure {
        Failure::Answer { code, .. } => match codes::response_name(*code) {
            Some(name) => format!("ERROR {code} ({name})"),
            None => format!("ERROR {code}"),
        },
        Failure::Unusable { .. } | Failure::NoneUsable(_) => "UNUSABLE".to_string(),
    }
}

pub(crate) fn failure_json(addr: &str, failure: &Failure) -> Value {
    match failure {
        Failure::Answer { code, remark, .. } => json!({"namesrv": addr, "ok": false, "code": code, "remark": remark}),
        other => json!({"namesrv": addr, "ok": false, "error": other.to_string()}),
    }
}

/// Columns aligned on their widest cell, two spaces apart; no trailing spaces.
pub(crate) struct Table {
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len(), "row {cells:?} for header {:?}", self.header);
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
        let mut out = String::new();
        meridian_client::table::render_table(&mut out, &header, &self.rows);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(&["#A", "#Long Header", "#C"]);
        t.row(vec!["wide-cell".into(), "x".into(), "".into()]);
        t.row(vec!["集群".into(), "y".into(), "z".into()]);
        assert_eq!(t.render(), "#A         #Long Header  #C\nwide-cell  x\n集群         y             z\n");
    }

    #[test]
    fn failures_name_the_code_and_the_exit() {
        let answer = Failure::Answer { namesrv: "h:1".into(), code: 17, remark: Some("No topic".into()) };
        assert_eq!(answer.to_string(), "NameServer h:1 answered code 17 (TOPIC_NOT_EXIST): No topic");
        assert_eq!(answer.exit_code(), EXIT_ANSWER_ERROR);
        assert!(!answer.try_next());
        let go_away = Failure::Answer { namesrv: "h:1".into(), code: codes::GO_AWAY, remark: None };
        assert!(go_away.try_next());
        let none = Failure::NoneUsable(vec![Failure::unusable("a:1", "x"), Failure::unusable("b:2", "y")]);
        assert_eq!(none.to_string(), "no NameServer gave a usable answer; NameServer a:1: x; NameServer b:2: y");
        assert_eq!(none.exit_code(), EXIT_UNUSABLE);
    }
}
