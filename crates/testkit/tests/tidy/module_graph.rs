//! Rule: inside each crate, modules use each other only along the edges of that crate's
//! table below, and the module graph has no cycle. The graph is read from the sources:
//! every `crate::a::b`, `super::…` and `self::…` path (`use crate::{a, b::c}` groups
//! included) in non-test code is an edge from the file's module to the module it names.
//! A file's module is its first path component under src/ and, for a directory, the second
//! too (`route::table`); `lib.rs`/`main.rs` declare and re-export and are not nodes, and a
//! parent module declaring or re-exporting its own children is not an edge.
//!
//! The cycle check needs no table: it is the main guard. The tables are the intended
//! layering; extend them deliberately when a module is added (the failure prints the
//! module's current edges to start from).

use crate::lex::{strip, without_test_items};
use crate::{read, report, test_only_files, tracked_files};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A crate's table: module -> the modules it may use.
type Table = &'static [(&'static str, &'static [&'static str])];

/// Wire format only. Leaves: `acl` (request signatures), `codes`, `frame`, `perm`, `cursor`
/// (the JSON reader both scanners share). Inside `header` and `body`, `model` is the bottom (`registration`, the decoded
/// registration, sits on it); the scanners and the serde decoders read into them; `compress` unpacks into what `decode` reads.
const PROTOCOL_MODULES: Table = &[
    ("acl", &[]),
    ("answer", &["codes"]),
    ("body", &[]),
    ("body::compress", &["body::decode", "body::encode", "body::model", "body::registration"]),
    ("body::decode", &["body::model", "body::registration", "body::scan"]),
    ("body::encode", &["body::model", "body::registration"]),
    ("body::model", &["perm"]),
    ("body::registration", &["body::model"]),
    ("body::scan", &["body::model", "body::registration", "cursor"]),
    ("codes", &[]),
    ("cursor", &[]),
    ("frame", &[]),
    ("header", &["frame"]),
    ("header::binary", &["header::model"]),
    ("header::json", &["header::model"]),
    ("header::model", &["codes"]),
    ("header::scan", &["cursor", "header::model"]),
    ("perm", &[]),
];

/// `conn` is the bottom (one connection, the answer bodies); `table` renders text tables.
const CLIENT_MODULES: Table = &[
    ("conn", &[]),
    ("route_diff", &["conn"]),
    ("route_diff::fetch", &["conn", "route_diff"]),
    ("route_diff::render", &["route_diff", "table"]),
    ("table", &[]),
    ("watch", &["conn"]),
];

/// Data flows one way: net (accept, connection) -> request (dispatch -> lookup, register,
/// admin, watch; command and reply below them) -> shard::state -> route (writer -> table,
/// snapshot, events, kv, warm). Leaves: error, sys, metrics::counters, config, budget (and
/// auth, the access control shard::state holds, below it). Start-up (`server`) wires
/// everything; metrics::http reads counters and the peer watch only.
const SERVER_MODULES: Table = &[
    ("auth", &["auth::accounts", "error"]),
    ("auth::accounts", &["error"]),
    ("budget", &[]),
    ("config", &["auth", "error"]),
    ("error", &[]),
    ("logging", &["config", "error"]),
    ("metrics", &[]),
    ("metrics::counters", &[]),
    ("metrics::http", &["error", "metrics::counters", "peer_watch", "sys"]),
    ("net", &[]),
    (
        "net::accept",
        &[
            "auth",
            "budget",
            "config",
            "metrics::counters",
            "net::connection",
            "route",
            "route::snapshot",
            "route::writer",
            "shard::state",
            "sys",
        ],
    ),
    (
        "net::connection",
        &[
            "config",
            "error",
            "metrics::counters",
            "request::dispatch",
            "request::register",
            "route",
            "route::writer",
            "shard::state",
        ],
    ),
    ("notify", &["route::table"]),
    ("peer_watch", &["config", "error"]),
    ("persist", &["error"]),
    ("request", &[]),
    ("request::admin", &["request::command", "request::reply", "route::writer", "shard::state"]),
    ("request::command", &["route::table"]),
    (
        "request::dispatch",
        &[
            "request::admin",
            "request::command",
            "request::lookup",
            "request::register",
            "request::reply",
            "request::watch",
            "route",
            "route::table",
            "route::writer",
            "shard::state",
        ],
    ),
    ("request::lookup", &["route::snapshot", "shard::state"]),
    (
        "request::register",
        &["budget", "request::command", "request::reply", "route", "route::table", "route::writer", "shard::state"],
    ),
    ("request::reply", &[]),
    ("request::watch", &["request::command", "route::snapshot", "shard::state"]),
    ("route", &[]),
    ("route::events", &["route", "route::rounds", "route::table"]),
    ("route::kv", &["error", "persist"]),
    ("route::rounds", &["route::table"]),
    ("route::snapshot", &["route::table"]),
    ("route::table", &["error", "route"]),
    ("route::warm", &["config", "error", "persist", "route::table"]),
    (
        "route::writer",
        &[
            "config",
            "error",
            "logging",
            "metrics::counters",
            "persist",
            "route",
            "route::events",
            "route::kv",
            "route::rounds",
            "route::snapshot",
            "route::table",
            "route::warm",
        ],
    ),
    (
        "server",
        &[
            "auth",
            "auth::accounts",
            "budget",
            "config",
            "error",
            "metrics::counters",
            "metrics::http",
            "net::accept",
            "notify",
            "peer_watch",
            "persist",
            "route",
            "route::snapshot",
            "route::writer",
            "sys",
        ],
    ),
    ("shard", &[]),
    (
        "shard::state",
        &[
            "auth",
            "budget",
            "config",
            "logging",
            "metrics::counters",
            "route",
            "route::snapshot",
            "route::writer",
            "sys",
        ],
    ),
    ("sys", &[]),
];

/// `meridian admin`: args and report at the bottom, ctx (connections, failures), the verbs.
const ADMIN_MODULES: Table = &[
    ("args", &[]),
    ("ctx", &["report"]),
    ("read", &["ctx", "report"]),
    ("report", &[]),
    ("write", &["ctx", "report"]),
];
const MERIDIAN_MODULES: Table = &[];
const TESTKIT_MODULES: Table = &[
    ("client", &["wire"]),
    ("golden", &[]),
    ("log", &[]),
    ("server", &["client", "log", "temp"]),
    ("temp", &[]),
    ("topics", &[]),
    ("wire", &[]),
];
const BENCH_PLOT_MODULES: Table = &[];
/// One binary. Bottom up: rng, cpu, runtime, stats, wire; net, workload, ctx; the roles
/// (broker, client, probe, propagation); output and cli; scenario; echo.
const LOADGEN_MODULES: Table = &[
    ("broker", &["ctx", "net", "split", "stats", "wire", "workload"]),
    ("cli", &["broker", "rng", "workload"]),
    ("client", &["ctx", "net", "rng", "stats", "wire", "workload"]),
    ("cpu", &[]),
    ("ctx", &["stats"]),
    ("echo", &["cli", "net", "runtime", "scenario", "wire"]),
    ("net", &["wire"]),
    ("output", &["cpu", "split", "stats"]),
    ("probe", &["ctx", "net", "wire"]),
    ("propagation", &["ctx", "net", "rng", "stats", "wire"]),
    ("rng", &[]),
    ("runtime", &[]),
    ("scenario", &["cli"]),
    (
        "scenario::monitor",
        &["cli", "cpu", "ctx", "output", "propagation", "runtime", "scenario::plan", "scenario::scale", "stats"],
    ),
    ("scenario::plan", &["broker", "cli", "client", "output", "propagation", "rng", "runtime", "wire", "workload"]),
    (
        "scenario::scale",
        &[
            "broker",
            "client",
            "cpu",
            "ctx",
            "output",
            "probe",
            "scenario::plan",
            "scenario::workers",
            "spread",
            "stats",
        ],
    ),
    (
        "scenario::workers",
        &["broker", "cli", "client", "ctx", "net", "probe", "propagation", "scenario::plan", "stats", "workload"],
    ),
    ("split", &["workload"]),
    ("spread", &["rng"]),
    ("stats", &[]),
    ("wire", &[]),
    ("workload", &["rng", "spread"]),
];

/// Crate directory -> its table.
const TABLES: &[(&str, Table)] = &[
    ("crates/protocol", PROTOCOL_MODULES),
    ("crates/client", CLIENT_MODULES),
    ("crates/server", SERVER_MODULES),
    ("crates/admin", ADMIN_MODULES),
    ("crates/meridian", MERIDIAN_MODULES),
    ("crates/testkit", TESTKIT_MODULES),
    ("loadgen", LOADGEN_MODULES),
    ("bench/plot", BENCH_PLOT_MODULES),
];

/// module -> (module it uses -> first place it does, as `file:line`).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// One source file: its module path under src/ (`["route", "table"]`) and its graph node.
struct SourceFile {
    rel: String,
    path: Vec<String>,
    node: String,
}

fn source_files(crate_dir: &str, tracked: &[String]) -> Vec<SourceFile> {
    let src = format!("{crate_dir}/src/");
    let mut files: Vec<SourceFile> = tracked
        .iter()
        .filter(|f| f.starts_with(&src) && f.ends_with(".rs"))
        .map(|rel| {
            let inner = rel[src.len()..].trim_end_matches(".rs");
            let mut path: Vec<String> = inner.split('/').map(str::to_string).collect();
            if path.last().is_some_and(|last| last == "mod" || (path.len() == 1 && (last == "lib" || last == "main"))) {
                path.pop();
            }
            let node = path.iter().take(2).cloned().collect::<Vec<_>>().join("::");
            SourceFile { rel: rel.clone(), path, node }
        })
        .collect();
    // Files of `#[cfg(test)] mod x;` declarations are test code.
    let test_only = test_only_files(tracked);
    files.retain(|f| !test_only.contains(&f.rel));
    files
}

/// Every path after `crate::`, `super::` or `self::` in `code`, resolved to an absolute
/// module path, with its line; `use` groups are expanded.
fn referenced_paths(code: &str, file_path: &[String]) -> Vec<(Vec<String>, usize)> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'$');
        let rest = &code[i..];
        let base: Option<(Vec<String>, usize)> = if !boundary {
            None
        } else if rest.starts_with("crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with("self::") {
            Some((file_path.to_vec(), "self::".len()))
        } else if rest.starts_with("super::") {
            let mut base = file_path.to_vec();
            let mut len = 0;
            while code[i + len..].starts_with("super::") {
                base.pop();
                len += "super::".len();
            }
            Some((base, len))
        } else {
            None
        };
        match base {
            Some((base, len)) => {
                let line = code[..i].matches('\n').count() + 1;
                let (paths, end) = parse_path_tree(b, i + len);
                found.extend(paths.into_iter().map(|p| ([base.clone(), p].concat(), line)));
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    found
}

/// A path or `{…}` group at `i`: every leaf path (segments), and the index after it.
fn parse_path_tree(b: &[u8], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut prefix = Vec::new();
    loop {
        skip_ws(&mut i);
        if b.get(i) == Some(&b'{') {
            let mut leaves = Vec::new();
            i += 1;
            loop {
                skip_ws(&mut i);
                match b.get(i) {
                    None => return (leaves, i),
                    Some(b'}') => return (leaves, i + 1),
                    Some(b',') => i += 1,
                    _ => {
                        let (sub, end) = parse_path_tree(b, i);
                        leaves.extend(sub.into_iter().map(|s| [prefix.clone(), s].concat()));
                        // Skip what follows a leaf up to its separator (e.g. ` as Alias`).
                        i = end;
                        while i < b.len() && b[i] != b',' && b[i] != b'}' && b[i] != b'{' {
                            i += 1;
                        }
                    }
                }
            }
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i == start {
            return (vec![prefix], i);
        }
        prefix.push(String::from_utf8_lossy(&b[start..i]).into_owned());
        if b[i..].starts_with(b"::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The graph node a resolved path falls in, if it names a module of the crate.
fn node_of(path: &[String], nodes: &BTreeSet<String>) -> Option<String> {
    let two = path.iter().take(2).cloned().collect::<Vec<_>>().join("::");
    let one = path.first()?.clone();
    [two, one].into_iter().find(|n| nodes.contains(n))
}

fn module_graph(crate_dir: &str, tracked: &[String]) -> Graph {
    let files = source_files(crate_dir, tracked);
    let nodes: BTreeSet<String> = files.iter().map(|f| f.node.clone()).filter(|n| !n.is_empty()).collect();
    let mut graph: Graph = nodes.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
    for file in files.iter().filter(|f| !f.node.is_empty()) {
        let code = without_test_items(&strip(&read(&file.rel).unwrap_or_default()));
        for (path, line) in referenced_paths(&code, &file.path) {
            let Some(target) = node_of(&path, &nodes) else { continue };
            // A module's own children are its business (declaring, re-exporting).
            if target == file.node || target.starts_with(&format!("{}::", file.node)) {
                continue;
            }
            let edges = graph.get_mut(&file.node).expect("every file's node is in the graph");
            edges.entry(target).or_insert_with(|| format!("{}:{line}", file.rel));
        }
    }
    graph
}

/// One cycle through `start` inside `graph`, as a path ending at `start`, if any.
fn cycle_through(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([start.to_string()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).into_iter().flat_map(|e| e.keys()) {
            if next == start {
                let mut path = vec![start.to_string()];
                let mut at = node.clone();
                while at != start {
                    path.push(at.clone());
                    at = came_from[&at].clone();
                }
                path.push(start.to_string());
                let last = path.len() - 1;
                path[1..last].reverse();
                return Some(path);
            }
            if !came_from.contains_key(next) && next != start {
                came_from.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

/// Every cycle of `graph`, one per group of modules that reach each other.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        if seen.contains(node) {
            continue;
        }
        if let Some(cycle) = cycle_through(graph, node) {
            seen.extend(cycle.iter().cloned());
            found.push(cycle);
        }
    }
    found
}

/// Where an edge is made, for messages.
fn site(graph: &Graph, from: &str, to: &str) -> String {
    graph.get(from).and_then(|e| e.get(to)).cloned().unwrap_or_default()
}

fn crate_dirs() -> Vec<String> {
    let root = read("Cargo.toml").expect("the root Cargo.toml");
    let start = root.find("members").expect("a members list");
    let list = &root[start..start + root[start..].find(']').expect("the members list ends")];
    list.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// `TIDY_PRINT_GRAPH=1 cargo test -p meridian-testkit --test tidy -- --nocapture` prints
/// today's graph of every crate in the tables' syntax, to start a table from.
fn print_table(crate_dir: &str, graph: &Graph) {
    println!("// {crate_dir}");
    for (module, edges) in graph {
        println!("    (\"{module}\", &{:?}),", edges.keys().collect::<Vec<_>>());
    }
}

#[test]
fn modules_use_only_allowed_modules_and_form_no_cycle() {
    let tracked = tracked_files();
    let mut problems = Vec::new();
    for crate_dir in crate_dirs() {
        let graph = module_graph(&crate_dir, &tracked);
        if std::env::var_os("TIDY_PRINT_GRAPH").is_some() {
            print_table(&crate_dir, &graph);
        }
        let Some((_, table)) = TABLES.iter().find(|(dir, _)| *dir == crate_dir) else {
            problems.push(format!(
                "{crate_dir}: no module table.\n  Fix: add `(\"{crate_dir}\", NEW_MODULES)` to TABLES in \
                 crates/testkit/tests/tidy/module_graph.rs, with the edges allowed. Today's: {graph:?}"
            ));
            continue;
        };
        for (module, targets) in table.iter() {
            if let Some(gone) = std::iter::once(module).chain(targets.iter()).find(|m| !graph.contains_key(**m)) {
                problems.push(format!(
                    "{crate_dir}: the table row of `{module}` names `{gone}`, which is not a module of the crate \
                     any more.\n  Fix: update the row in crates/testkit/tests/tidy/module_graph.rs to the new \
                     layout (TIDY_PRINT_GRAPH=1 prints today's graph)."
                ));
            }
        }
        for (module, edges) in &graph {
            let Some((_, allowed)) = table.iter().find(|(m, _)| m == module) else {
                let targets: Vec<&String> = edges.keys().collect();
                problems.push(format!(
                    "{crate_dir}: module `{module}` is not in its table.\n  Fix: add `(\"{module}\", &{targets:?}),` \
                     (what it uses today) to the table of {crate_dir} in crates/testkit/tests/tidy/module_graph.rs, \
                     after checking that those edges belong to the intended layering."
                ));
                continue;
            };
            for (to, at) in edges.iter().filter(|(to, _)| !allowed.contains(&to.as_str())) {
                problems.push(format!(
                    "{at}: forbidden module edge {module} -> {to} in {crate_dir}.\n  `{module}` may use: \
                     {allowed:?}.\n  Fix: move what it needs into a module it may use, pass it in, or, if the \
                     layering really changes, add the edge to the table in \
                     crates/testkit/tests/tidy/module_graph.rs (and check that no cycle results)."
                ));
            }
        }
        for cycle in cycles(&graph) {
            let sites: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("    {} -> {}  at {}", w[0], w[1], site(&graph, &w[0], &w[1])))
                .collect();
            problems.push(format!(
                "{crate_dir}: import cycle {}\n{}\n  Fix: break it. Move the shared type down into a module \
                 both may use, or invert the dependency (pass a value or a callback in). There is no exception \
                 list for cycles.",
                cycle.join(" -> "),
                sites.join("\n")
            ));
        }
    }
    report("module graph", &problems);
}

#[test]
fn the_path_parser_expands_use_groups_and_resolves_super() {
    let code = "use crate::{a::X, b::{c, d as e}};\nfn f() { super::g::h(); self::k::m(); }";
    let here = vec!["p".to_string(), "q".to_string()];
    let paths: Vec<String> = referenced_paths(code, &here).into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(paths, ["a::X", "b::c", "b::d", "p::g::h", "p::q::k::m"]);
}

#[test]
fn a_cycle_is_reported_as_a_path() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(from.into()).or_default().insert(to.into(), String::new());
    }
    graph.entry("d".into()).or_default();
    assert_eq!(cycles(&graph), [["a", "b", "c", "a"]]);
}
