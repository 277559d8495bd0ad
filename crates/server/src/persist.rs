//! Durable state: the KV config file, in Java's `kvConfig.json` format, and the config
//! file UPDATE_NAMESRV_CONFIG rewrites (and, through `replace_atomic`, the warm-restart
//! route file, whose format lives in `route::warm`).
//!
//! Every write goes to `<file>.tmp`, is fsynced, renamed over the file, and the directory
//! is fsynced, so a crash leaves either the old or the new content, never a torn file; the
//! caller acknowledges a write only after `write_atomic` returned. Like Java, the previous
//! content is kept as `<file>.bak` for operators. Must not: run on a lookup path.

use crate::error::KvLoadError;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// namespace -> key -> value.
pub type KvTable = BTreeMap<String, BTreeMap<String, String>>;

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Test hook: with `MERIDIAN_TEST_CRASH_AT_WRITE_STEP=N` in the environment the process
/// aborts at step N of the next `write_atomic` (1: temp file written, not synced; 2: synced,
/// not renamed; 3: renamed, directory not synced), so tests can kill the server between the
/// steps and check that no acknowledged write is lost and no file is torn.
pub const CRASH_STEP_ENV: &str = "MERIDIAN_TEST_CRASH_AT_WRITE_STEP";

fn crash_point(step: u32) {
    if std::env::var(CRASH_STEP_ENV).ok().and_then(|v| v.parse::<u32>().ok()) == Some(step) {
        tracing::error!("{CRASH_STEP_ENV}={step}: aborting on purpose");
        std::process::abort();
    }
}

/// Replaces `path` with `bytes` crash-safely (write temp, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if path.exists() {
        // Best effort, as Java's MixAll.string2File keeps a .bak; the .bak is not the
        // durability mechanism, the rename is.
        let _ = fs::copy(path, sibling(path, ".bak"));
    }
    replace_atomic(path, bytes)
}

/// `write_atomic` without the `.bak` copy, for files nobody restores by hand (the
/// warm-restart route file, rewritten every few seconds).
pub fn replace_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = sibling(path, ".tmp");
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
        crash_point(1);
        f.sync_all()?;
    }
    crash_point(2);
    fs::rename(&tmp, path)?;
    crash_point(3);
    sync_dir(path)
}

/// Java's file content: `{"configTable":{"ns":{"k":"v"}}}` on one line.
pub fn encode_kv_file(table: &KvTable) -> Vec<u8> {
    let wrapper = serde_json::json!({ "configTable": table });
    serde_json::to_vec(&wrapper).expect("a map of strings always serialises")
}

/// Loads the KV file; a missing file is an empty table (as in Java). A file that exists
/// but cannot be parsed is an error: starting empty would lose it at the next write.
pub fn load_kv(path: &Path) -> Result<KvTable, KvLoadError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(KvTable::new()),
        Err(cause) => return Err(KvLoadError::Unreadable { path: path.to_path_buf(), cause }),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(KvTable::new());
    }
    /// Java may write nulls at any level; they are skipped.
    type NullableTable = BTreeMap<String, Option<BTreeMap<String, Option<String>>>>;
    #[derive(serde::Deserialize)]
    struct Wrapper {
        #[serde(rename = "configTable", default)]
        config_table: Option<NullableTable>,
    }
    let w: Wrapper =
        serde_json::from_slice(&bytes).map_err(|cause| KvLoadError::Invalid { path: path.to_path_buf(), cause })?;
    Ok(w.config_table
        .unwrap_or_default()
        .into_iter()
        .map(|(ns, kv)| (ns, kv.unwrap_or_default().into_iter().filter_map(|(k, v)| Some((k, v?))).collect()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("meridian-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn kv_round_trips_in_java_format() {
        let dir = temp_dir("kv");
        let path = dir.join("kvConfig.json");
        assert_eq!(load_kv(&path).unwrap(), KvTable::new());
        let mut t = KvTable::new();
        t.entry("ORDER_TOPIC_CONFIG".into()).or_default().insert("TopicOrder".into(), "broker-a:4;broker-b:4".into());
        write_atomic(&path, &encode_kv_file(&t)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"TopicOrder":"broker-a:4;broker-b:4"}}}"#
        );
        assert_eq!(load_kv(&path).unwrap(), t);
        // A second write keeps the previous content as .bak and leaves no temp file.
        t.clear();
        write_atomic(&path, &encode_kv_file(&t)).unwrap();
        assert!(sibling(&path, ".bak").exists());
        assert!(!sibling(&path, ".tmp").exists());
        assert_eq!(load_kv(&path).unwrap(), KvTable::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_kv_file_is_an_error_not_an_empty_table() {
        let dir = temp_dir("bad");
        let path = dir.join("kvConfig.json");
        fs::write(&path, "{not json").unwrap();
        assert!(load_kv(&path).unwrap_err().to_string().contains("not valid kvConfig.json"));
        fs::write(&path, r#"{"configTable":{"ns":{"k":"v","n":null},"empty":null}}"#).unwrap();
        let t = load_kv(&path).unwrap();
        assert_eq!(t["ns"].len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
