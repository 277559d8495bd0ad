//! Running `meridian admin …` as the built binary, bounded in time, for the suites that test
//! the CLI (admin_cli, route_diff).

use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A CLI run that takes longer than this is killed and the test fails (its own timeouts
/// are far shorter).
pub const ADMIN_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two checks of whether the CLI has exited.
const WAIT_PAUSE: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------
// Running the CLI
// ---------------------------------------------------------------------------------------

/// How one `meridian admin …` run ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` document on stdout.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }

    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code; {self:?}");
        self
    }
}

/// `meridian admin ARGS`, without any inherited NAMESRV_ADDR.
pub fn admin(args: &[&str]) -> Run {
    admin_with_env(args, &[])
}

pub fn admin_with_env(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut command = Command::new(super::MERIDIAN_BIN);
    command.arg("admin").args(args).env_remove("NAMESRV_ADDR").stdin(Stdio::null());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawning meridian admin");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let end = Instant::now() + ADMIN_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= end {
            // Child::kill signals this child's PID only.
            let _ = child.kill();
            let _ = child.wait();
            panic!("meridian admin {args:?} still running after {ADMIN_DEADLINE:?}");
        }
        std::thread::sleep(WAIT_PAUSE);
    };
    Run {
        code: status.code().unwrap_or_else(|| panic!("meridian admin {args:?} killed by a signal: {status:?}")),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// An address nothing listens on: a port the kernel handed out and that was closed again.
pub fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    let addr = listener.local_addr().expect("local_addr");
    drop(listener);
    addr.to_string()
}
