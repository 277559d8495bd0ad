//! The write verbs: updateKvConfig, deleteKvConfig, wipeWritePerm, addWritePerm,
//! deleteTopic and updateNamesrvConfig. Each goes to every NameServer, as mqadmin does, and
//! reports every outcome; the exit code is the worst one.
//! Must not: stop at the first failing address.

use crate::ctx::{Ctx, WriteCount};
use crate::report::Report;
use meridian_protocol::codes;
use std::fmt::Write as _;

pub(crate) fn update_kv_config(ctx: &Ctx, namespace: &str, key: &str, value: &str) -> Report {
    let ext = [("namespace", namespace), ("key", key), ("value", value)];
    ctx.write(WriteCount::None, codes::PUT_KV_CONFIG, &ext, b"")
}

pub(crate) fn delete_kv_config(ctx: &Ctx, namespace: &str, key: &str) -> Report {
    ctx.write(WriteCount::None, codes::DELETE_KV_CONFIG, &[("namespace", namespace), ("key", key)], b"")
}

pub(crate) fn wipe_write_perm(ctx: &Ctx, broker_name: &str) -> Report {
    let count = WriteCount::Ext { field: "wipeTopicCount", title: "#Wiped Topics" };
    ctx.write(count, codes::WIPE_WRITE_PERM_OF_BROKER, &[("brokerName", broker_name)], b"")
}

pub(crate) fn add_write_perm(ctx: &Ctx, broker_name: &str) -> Report {
    let count = WriteCount::Ext { field: "addTopicCount", title: "#Added Topics" };
    ctx.write(count, codes::ADD_WRITE_PERM_OF_BROKER, &[("brokerName", broker_name)], b"")
}

pub(crate) fn delete_topic(ctx: &Ctx, topic: &str, cluster: Option<&str>) -> Report {
    let mut ext = vec![("topic", topic)];
    if let Some(cluster) = cluster {
        ext.push(("clusterName", cluster));
    }
    ctx.write(WriteCount::None, codes::DELETE_TOPIC_IN_NAMESRV, &ext, b"")
}

pub(crate) fn update_namesrv_config(ctx: &Ctx, key: &str, value: &str) -> Report {
    let body = properties_line(key, value);
    ctx.write(WriteCount::None, codes::UPDATE_NAMESRV_CONFIG, &[], body.as_bytes())
}

/// One `key=value` line of Java properties text with everything escaped that
/// `Properties.load` would otherwise read differently; non-ASCII as `\uXXXX`, so the bytes
/// mean the same whatever charset the NameServer reads them in (Java: UTF-8).
pub fn properties_line(key: &str, value: &str) -> String {
    let mut line = String::with_capacity(key.len() + value.len() + 2);
    push_properties_escaped(&mut line, key, true);
    line.push('=');
    push_properties_escaped(&mut line, value, false);
    line.push('\n');
    line
}

fn push_properties_escaped(out: &mut String, text: &str, is_key: bool) {
    for (index, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            // A key ends at the first unescaped separator; a value only loses leading spaces.
            ' ' if is_key || index == 0 => out.push_str("\\ "),
            '=' | ':' if is_key => {
                out.push('\\');
                out.push(c);
            }
            // A leading # or ! would make the line a comment.
            '#' | '!' if is_key && index == 0 => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_lines_read_back_as_written() {
        for (key, value) in [
            ("orderMessageEnable", "true"),
            ("a key=with:separators", " leading space, = and : kept"),
            ("#not a comment", "back\\slash\ttab\nnewline"),
            ("unicodeKey", "集群 é €"),
            ("empty", ""),
        ] {
            let line = properties_line(key, value);
            assert!(line.is_ascii(), "{line:?}");
            let read = java_properties::read(line.as_bytes()).unwrap();
            assert_eq!(read.get(key).map(String::as_str), Some(value), "{line:?}");
            assert_eq!(read.len(), 1, "{line:?}");
        }
        // Outside the BMP: a UTF-16 surrogate pair, as Java's Properties.load reads it.
        assert_eq!(properties_line("k", "😀"), "k=\\uD83D\\uDE00\n");
    }
}
