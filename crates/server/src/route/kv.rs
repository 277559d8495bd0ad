//! The KV config (Java's KVConfigManager): namespaces of key → value, owned by the route
//! writer and written to disk (write, fsync, rename) before a change is acknowledged; a
//! change that cannot be made durable is rolled back. Must not: build answers or read the
//! clock.

use crate::error::{PersistError, PersistTarget};
use crate::persist::{self, KvTable};
use std::collections::BTreeMap;
use std::path::Path;

/// The KV namespace the NameServer itself interprets: topic → order config, merged into
/// routes when `orderMessageEnable` is on (Java's NamesrvUtil.NAMESPACE_ORDER_TOPIC_CONFIG).
pub const NAMESPACE_ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

/// The KV config's bounds (`kvEntriesMax`, `kvValueBytesMax`, `kvBytesMax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    pub entries_max: usize,
    pub value_bytes_max: usize,
    /// Namespace names, keys and values together: what the file holds, about.
    pub bytes_max: u64,
}

/// Why a put was not made.
#[derive(Debug)]
pub enum KvPutError {
    /// Over a bound; the text names its key. Nothing changed.
    Limit(String),
    NotPersisted(PersistError),
}

/// The KV table; every change is persisted to the path the caller passes (the current
/// `kvConfigPath`, which UPDATE_NAMESRV_CONFIG may change).
#[derive(Debug, Default)]
pub struct KvStore {
    table: KvTable,
}

impl KvStore {
    pub fn new(table: KvTable) -> KvStore {
        KvStore { table }
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&String> {
        self.table.get(namespace).and_then(|ns| ns.get(key))
    }

    pub fn namespace(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table.get(namespace)
    }

    /// Entries and bytes held now (namespace names counted once each).
    fn usage(&self) -> (usize, u64) {
        let mut entries = 0;
        let mut bytes = 0u64;
        for (ns, table) in &self.table {
            entries += table.len();
            bytes += ns.len() as u64 + table.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
        }
        (entries, bytes)
    }

    /// Refuses a put that would pass a bound, before anything changes.
    fn check(&self, limits: KvLimits, namespace: &str, key: &str, value: &str) -> Result<(), String> {
        if value.len() > limits.value_bytes_max {
            return Err(format!("value of {} bytes > kvValueBytesMax {}", value.len(), limits.value_bytes_max));
        }
        let (entries, bytes) = self.usage();
        let ns = self.table.get(namespace);
        let previous = ns.and_then(|t| t.get(key));
        if previous.is_none() && entries >= limits.entries_max {
            return Err(format!("{entries} entries held, kvEntriesMax {} reached", limits.entries_max));
        }
        let removed = previous.map_or(0, |v| (key.len() + v.len()) as u64);
        let added = (key.len() + value.len()) as u64 + if ns.is_none() { namespace.len() as u64 } else { 0 };
        let after = bytes - removed + added;
        if after > limits.bytes_max {
            return Err(format!("{after} bytes would be held > kvBytesMax {}", limits.bytes_max));
        }
        Ok(())
    }

    /// PUT_KV_CONFIG: checked against `limits`, applied only once it is on disk.
    pub fn put(
        &mut self,
        path: &Path,
        limits: KvLimits,
        namespace: String,
        key: String,
        value: String,
    ) -> Result<(), KvPutError> {
        self.check(limits, &namespace, &key, &value)
            .map_err(|why| KvPutError::Limit(format!("PUT_KV_CONFIG refused: {why}")))?;
        let namespace_existed = self.table.contains_key(&namespace);
        let previous = self.table.entry(namespace.clone()).or_default().insert(key.clone(), value);
        let persisted = self.persist(path);
        if persisted.is_err() {
            let ns = self.table.get_mut(&namespace).expect("just inserted");
            match previous {
                Some(v) => {
                    ns.insert(key, v);
                }
                None => {
                    ns.remove(&key);
                    if !namespace_existed {
                        self.table.remove(&namespace);
                    }
                }
            }
        }
        persisted.map_err(KvPutError::NotPersisted)
    }

    /// DELETE_KV_CONFIG. Java (KVConfigManager.deleteKVConfig) keeps a namespace once
    /// emptied: GET_KVLIST_BY_NAMESPACE then answers an empty table and the file keeps
    /// `"ns":{}`. Java also rewrites the file when nothing was removed.
    pub fn delete(&mut self, path: &Path, namespace: String, key: String) -> Result<(), PersistError> {
        let removed = self.table.get_mut(&namespace).and_then(|ns| ns.remove(&key));
        let persisted = self.persist(path);
        if persisted.is_err() {
            if let Some(v) = removed {
                self.table.entry(namespace).or_default().insert(key, v);
            }
        }
        persisted
    }

    fn persist(&self, path: &Path) -> Result<(), PersistError> {
        persist::write_atomic(path, &persist::encode_kv_file(&self.table)).map_err(|cause| {
            tracing::error!("cannot persist KV config to {}: {cause}; the change was not applied", path.display());
            PersistError { target: PersistTarget::KvConfig, path: path.to_path_buf(), cause }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: KvLimits = KvLimits { entries_max: 2, value_bytes_max: 8, bytes_max: 12 };

    #[test]
    fn puts_over_a_bound_are_refused_naming_it_and_change_nothing() {
        let dir = std::env::temp_dir().join(format!("meridian-kv-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kv.json");
        let mut kv = KvStore::default();
        let put = |kv: &mut KvStore, ns: &str, k: &str, v: &str| kv.put(&path, LIMITS, ns.into(), k.into(), v.into());
        let refused = |r: Result<(), KvPutError>| match r {
            Err(KvPutError::Limit(why)) => why,
            other => panic!("not refused: {other:?}"),
        };
        assert!(refused(put(&mut kv, "ns", "k", "123456789")).contains("kvValueBytesMax 8"));
        assert!(!path.exists(), "nothing written");
        put(&mut kv, "ns", "a", "12345678").unwrap(); // ns + a + value: 11 bytes
        put(&mut kv, "ns", "a", "1").unwrap(); // replacing is not a new entry
        put(&mut kv, "ns", "b", "1234").unwrap(); // 9 bytes now
        assert!(refused(put(&mut kv, "ns", "c", "1")).contains("kvEntriesMax 2"));
        let before = std::fs::read(&path).unwrap();
        assert!(refused(put(&mut kv, "ns", "b", "12345678")).contains("kvBytesMax 12")); // 13 bytes
        assert_eq!(std::fs::read(&path).unwrap(), before, "file unchanged");
        assert_eq!(kv.get("ns", "b").map(String::as_str), Some("1234"), "memory unchanged");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
