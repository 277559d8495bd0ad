//! The accounts of `authAccountsFile` (access key → secret key) and their reload: a thread
//! looks at the file's modification time and length every `RELOAD_POLL_INTERVAL` and, when
//! they changed, reads it again. A file that cannot be read or parsed keeps the last good
//! accounts, with one log line per change of the file. Must not: log a secret key.

use crate::error::ConfigError;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the reload thread looks at the accounts file (one `stat`).
pub const RELOAD_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The current accounts, shared by every shard; replaced whole on reload.
pub type AccountsCell = Arc<ArcSwap<Accounts>>;

#[derive(Default, Clone, PartialEq, Eq)]
pub struct Accounts {
    secret_keys: HashMap<String, String>,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.secret_keys.keys().collect();
        keys.sort();
        f.debug_struct("Accounts").field("access_keys", &keys).finish()
    }
}

impl Accounts {
    /// A JSON object `{"accessKey": "secretKey", ...}` when the text starts with `{`,
    /// otherwise properties lines `accessKey=secretKey`. Blank keys or secrets are refused.
    pub fn parse(text: &str) -> Result<Accounts, String> {
        let pairs: Vec<(String, String)> = if text.trim_start().starts_with('{') {
            let map: HashMap<String, String> =
                serde_json::from_str(text).map_err(|e| format!("not a JSON object of strings: {e}"))?;
            map.into_iter().collect()
        } else {
            let map = java_properties::read(text.as_bytes()).map_err(|e| format!("not a properties file: {e}"))?;
            map.into_iter().collect()
        };
        let mut secret_keys = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k.is_empty() || v.is_empty() {
                return Err(format!("account {k:?} has an empty access or secret key"));
            }
            secret_keys.insert(k, v);
        }
        Ok(Accounts { secret_keys })
    }

    pub fn load(path: &Path) -> Result<Accounts, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Accounts::parse(&text).map_err(|why| format!("{}: {why}", path.display()))
    }

    pub fn secret_key(&self, access_key: &str) -> Option<&str> {
        self.secret_keys.get(access_key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.secret_keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secret_keys.is_empty()
    }
}

/// The accounts at start: an unreadable file stops the start (there is no last good one).
pub fn load_at_start(path: Option<&Path>) -> Result<AccountsCell, ConfigError> {
    let accounts = match path {
        Some(p) => Accounts::load(p).map_err(|why| ConfigError::Invalid {
            key: "authAccountsFile".into(),
            value: p.display().to_string(),
            why,
        })?,
        None => Accounts::default(),
    };
    Ok(Arc::new(ArcSwap::from_pointee(accounts)))
}

/// What decides whether the file changed.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Re-reads the file when its stamp changed; returns the stamp now seen.
pub fn reload_if_changed(
    path: &Path,
    cell: &AccountsCell,
    seen: Option<(SystemTime, u64)>,
) -> Option<(SystemTime, u64)> {
    let now = stamp(path);
    if now == seen {
        return seen;
    }
    reload_now(path, cell);
    now
}

/// Re-reads the file now (SIGHUP, or a changed stamp); a file that does not parse leaves
/// the last good accounts in place.
pub fn reload_now(path: &Path, cell: &AccountsCell) {
    match Accounts::load(path) {
        Ok(accounts) => {
            tracing::info!("authAccountsFile {} reloaded: {} accounts", path.display(), accounts.len());
            cell.store(Arc::new(accounts));
        }
        Err(why) => tracing::error!("authAccountsFile not reloaded, keeping the last good accounts: {why}"),
    }
}

/// Starts the reload thread; it ends when `stopping` is set.
pub fn spawn_reloader(path: PathBuf, cell: AccountsCell, stopping: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut seen = stamp(&path);
    std::thread::Builder::new().name("meridian-accounts".into()).spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            std::thread::sleep(RELOAD_POLL_INTERVAL);
            seen = reload_if_changed(&path, &cell, seen);
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_and_json_files_parse() {
        let a = Accounts::parse("# ops\nalice = s3cret\nbob=other\n").unwrap();
        assert_eq!((a.secret_key("alice"), a.secret_key("bob"), a.len()), (Some("s3cret"), Some("other"), 2));
        let j = Accounts::parse(r#"{"alice": "s3cret"}"#).unwrap();
        assert_eq!(j.secret_key("alice"), Some("s3cret"));
        assert!(Accounts::parse("alice=\n").is_err());
        assert!(Accounts::parse("{\"alice\": 1}").is_err());
        assert!(!format!("{a:?}").contains("s3cret"), "Debug hides secrets");
    }

    #[test]
    fn a_broken_file_keeps_the_last_good_accounts() {
        let dir = std::env::temp_dir().join(format!("meridian-accounts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accounts.properties");
        std::fs::write(&path, "alice=one\n").unwrap();
        let cell = load_at_start(Some(&path)).unwrap();
        let seen = stamp(&path);
        std::fs::write(&path, "alice=two\nbob=three\n").unwrap();
        let seen = reload_if_changed(&path, &cell, seen);
        assert_eq!(cell.load().secret_key("bob"), Some("three"));
        std::fs::write(&path, "{ not json").unwrap();
        reload_if_changed(&path, &cell, seen);
        assert_eq!(cell.load().secret_key("alice"), Some("two"), "last good accounts kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
