//! routeDiff's report for people: a summary line, then one table per kind of difference,
//! each row naming the NameServer(s) on each side. `--json` serializes `DiffReport` instead.
//! Must not: compare anything (that is `compare` in the parent module).

use super::{BrokerAddrs, BrokerNameRollup, BrokerPresence, DataVersionDiff, DiffReport, QueueData, ValueDiff};
use crate::table::render_table;
use meridian_protocol::perm;
use std::fmt::Write as _;

/// Rows of each kind the human report prints; `--json` (or `/routediff`) lists every one.
pub const HUMAN_ROWS_PER_KIND_MAX: usize = 100;

/// perm bits in the order they are printed; READ and WRITE shortened so a cell stays narrow.
const PERM_BITS: [(i32, &str); 4] =
    [(perm::READ, "R"), (perm::WRITE, "W"), (perm::INHERIT, "INHERIT"), (perm::PRIORITY, "PRIORITY")];

/// `6(R|W)`: no spaces, so a table cell stays one word.
fn perm_text(perm: i32) -> String {
    let names: Vec<&str> = PERM_BITS.iter().filter(|(bit, _)| perm & bit != 0).map(|(_, name)| *name).collect();
    if names.is_empty() {
        format!("{perm}(none)")
    } else {
        format!("{perm}({})", names.join("|"))
    }
}

fn addrs_text(addrs: &BrokerAddrs) -> String {
    if addrs.is_empty() {
        return "(none)".to_string();
    }
    addrs.iter().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One section per kind of difference: a title, a table of at most
/// [`HUMAN_ROWS_PER_KIND_MAX`] differences, and how many were left out.
fn section<T>(
    out: &mut String,
    title: &str,
    header: &[&str],
    items: &[T],
    rows_of: impl Fn(&T, &mut Vec<Vec<String>>),
) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({}):", items.len());
    let mut rows = Vec::new();
    for item in items.iter().take(HUMAN_ROWS_PER_KIND_MAX) {
        rows_of(item, &mut rows);
    }
    render_table(out, header, &rows);
    if items.len() > HUMAN_ROWS_PER_KIND_MAX {
        let _ = writeln!(out, "... and {} more (--json lists every one)", items.len() - HUMAN_ROWS_PER_KIND_MAX);
    }
}

impl DiffReport {
    /// One line: `3 differences (1 broker, 1 topic, 1 queue data)` or `no differences`.
    pub fn summary(&self) -> String {
        if self.difference_count == 0 {
            return "no differences".to_string();
        }
        let mut kinds = Vec::new();
        for (n, one, many) in [
            (self.brokers.len(), "broker", "brokers"),
            (self.topics.len(), "topic", "topics"),
            (self.queue_data.len(), "queue data", "queue data"),
            (self.broker_addrs.len(), "broker addresses", "broker addresses"),
            (self.data_versions.len(), "data version", "data versions"),
        ] {
            if n > 0 {
                kinds.push(plural(n, one, many));
            }
        }
        format!("{} ({})", plural(self.difference_count, "difference", "differences"), kinds.join(", "))
    }

    /// The report for people, grouped by kind of difference, each row naming the
    /// NameServer(s) on each side (several joined by `,`).
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for u in &self.unreadable {
            let _ = writeln!(out, "CANNOT READ {}: {}", u.namesrv, u.error);
        }
        if self.namesrvs.len() < 2 {
            let _ = writeln!(
                out,
                "nothing compared: {} of {} NameServers could be read",
                self.namesrvs.len(),
                self.namesrvs.len() + self.unreadable.len()
            );
            return out;
        }
        let _ = writeln!(
            out,
            "{}: {} NameServers ({}), {}, {}{}",
            self.summary(),
            self.namesrvs.len(),
            self.namesrvs.join(", "),
            plural(self.brokers_compared, "broker address", "broker addresses"),
            plural(self.topics_compared, "topic", "topics"),
            if self.routes_compared { "" } else { " (presence only: routes not read)" }
        );
        section(
            &mut out,
            "By broker name (the tables below in short)",
            &["#Broker Name", "#Cluster Info Lacks It On", "#Topics", "#What Differs"],
            &self.by_broker_name,
            rollup_rows,
        );
        section(
            &mut out,
            "Brokers in the cluster info of some NameServers only",
            &["#Cluster", "#Broker Name", "#BID", "#Addr", "#Listed By", "#Missing On"],
            &self.brokers,
            broker_rows,
        );
        section(
            &mut out,
            "Topics with a route on some NameServers only",
            &["#Topic", "#Present On", "#Missing On"],
            &self.topics,
            |t, rows| rows.push(vec![t.topic.clone(), join(&t.present_on), join(&t.missing_on)]),
        );
        section(
            &mut out,
            "Queue data that differs",
            &["#Topic", "#Broker Name", "#NameServers", "#Read", "#Write", "#Perm", "#Sys Flag"],
            &self.queue_data,
            queue_data_rows,
        );
        section(
            &mut out,
            "Broker addresses that differ",
            &["#Topic", "#Broker Name", "#NameServers", "#Addrs (id=addr)"],
            &self.broker_addrs,
            broker_addr_rows,
        );
        section(
            &mut out,
            "Data versions that differ",
            &["#Cluster", "#Addr", "#NameServers", "#State Version", "#Timestamp", "#Counter"],
            &self.data_versions,
            data_version_rows,
        );
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

/// NameServers named in one cell.
fn join(namesrvs: &[String]) -> String {
    namesrvs.join(",")
}

fn rollup_rows(r: &BrokerNameRollup, rows: &mut Vec<Vec<String>>) {
    let missing = if r.missing_on.is_empty() { "-".to_string() } else { join(&r.missing_on) };
    rows.push(vec![r.broker_name.clone(), missing, r.topics.to_string(), r.differs.join(",")])
}

fn broker_rows(b: &BrokerPresence, rows: &mut Vec<Vec<String>>) {
    rows.push(vec![
        b.broker.cluster.clone(),
        b.broker.broker_name.clone(),
        b.broker.broker_id.to_string(),
        b.broker.addr.clone(),
        join(&b.present_on),
        join(&b.missing_on),
    ])
}

/// One row per group of NameServers that agree; the topic and broker name on the first only.
fn queue_data_rows(d: &ValueDiff<QueueData>, rows: &mut Vec<Vec<String>>) {
    for (i, g) in d.values.iter().enumerate() {
        let (topic, broker) = if i == 0 { (d.topic.clone(), d.broker_name.clone()) } else { ("".into(), "".into()) };
        let cells = match &g.value {
            Some(q) => vec![
                q.read_queue_nums.to_string(),
                q.write_queue_nums.to_string(),
                perm_text(q.perm),
                q.topic_sys_flag.to_string(),
            ],
            None => vec!["(absent)".into(), "".into(), "".into(), "".into()],
        };
        let mut row = vec![topic, broker, join(&g.namesrvs)];
        row.extend(cells);
        rows.push(row);
    }
}

fn broker_addr_rows(d: &ValueDiff<BrokerAddrs>, rows: &mut Vec<Vec<String>>) {
    for (i, g) in d.values.iter().enumerate() {
        let (topic, broker) = if i == 0 { (d.topic.clone(), d.broker_name.clone()) } else { ("".into(), "".into()) };
        let addrs = g.value.as_ref().map_or_else(|| "(absent)".to_string(), addrs_text);
        rows.push(vec![topic, broker, join(&g.namesrvs), addrs]);
    }
}

fn data_version_rows(d: &DataVersionDiff, rows: &mut Vec<Vec<String>>) {
    for (i, g) in d.values.iter().enumerate() {
        let (cluster, addr) = if i == 0 { (d.cluster.clone(), d.addr.clone()) } else { ("".into(), "".into()) };
        let v = g.value.expect("only live addresses are compared");
        rows.push(vec![
            cluster,
            addr,
            join(&g.namesrvs),
            v.state_version.to_string(),
            v.timestamp.to_string(),
            v.counter.to_string(),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn perm_and_addrs_render_as_one_word() {
        assert_eq!(perm_text(6), "6(R|W)");
        assert_eq!(perm_text(0), "0(none)");
        assert_eq!(addrs_text(&BTreeMap::new()), "(none)");
    }
}
