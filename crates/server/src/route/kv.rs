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

    /// PUT_KV_CONFIG: applied only once it is on disk.
    pub fn put(&mut self, path: &Path, namespace: String, key: String, value: String) -> Result<(), PersistError> {
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
        persisted
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
