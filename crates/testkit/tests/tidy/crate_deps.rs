//! Rule: the workspace crates depend on each other only along the edges below, so the
//! layering stays visible from the Cargo.toml files: protocol at the bottom, no I/O; client
//! and loadgen speak the protocol without the server; the binary only wires server and admin
//! together; testkit (a dev-dependency) never links the server.

use crate::{read, report};

/// Normal `[dependencies]` (and build/target dependencies) between workspace crates.
const CRATE_EDGES: &[(&str, &[&str])] = &[
    ("meridian-protocol", &[]),
    ("meridian-client", &["meridian-protocol"]),
    ("meridian-server", &["meridian-protocol", "meridian-client"]),
    ("meridian-admin", &["meridian-protocol", "meridian-client"]),
    ("meridian", &["meridian-server", "meridian-admin"]),
    ("meridian-loadgen", &["meridian-protocol", "meridian-client"]),
    ("meridian-testkit", &["meridian-protocol"]),
    ("meridian-bench-plot", &[]),
];

/// `[dev-dependencies]`: what tests, examples and benches may use on top of `CRATE_EDGES`.
const DEV_CRATE_EDGES: &[(&str, &[&str])] = &[
    ("meridian-protocol", &[]),
    ("meridian-client", &["meridian-testkit"]),
    // The benches drive the route table directly; the testkit gives them topic fixtures.
    ("meridian-server", &["meridian-testkit"]),
    ("meridian-admin", &["meridian-testkit"]),
    // The end-to-end tests check answers with the protocol's decoders and the client's watcher.
    ("meridian", &["meridian-protocol", "meridian-client", "meridian-testkit"]),
    ("meridian-loadgen", &["meridian-testkit"]),
    ("meridian-testkit", &[]),
    ("meridian-bench-plot", &[]),
];

/// Crate names of the workspace all start with this; other dependencies are not checked.
const WORKSPACE_PREFIX: &str = "meridian";

/// One member's manifest, as far as this rule needs it.
struct Manifest {
    path: String,
    name: String,
    /// (section, dependency) for every dependency in a non-dev section.
    deps: Vec<(String, String)>,
    dev_deps: Vec<String>,
}

/// The `members = [...]` of the root Cargo.toml.
fn members() -> Vec<String> {
    let root = read("Cargo.toml").expect("the root Cargo.toml");
    let start = root.find("members").expect("a members list");
    let list = &root[start..start + root[start..].find(']').expect("the members list ends")];
    list.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

fn manifest(dir: &str) -> Manifest {
    let path = format!("{dir}/Cargo.toml");
    let text = read(&path).unwrap_or_else(|| panic!("reading {path}"));
    let mut manifest = Manifest { path, name: String::new(), deps: Vec::new(), dev_deps: Vec::new() };
    let mut section = String::new();
    for line in text.lines().map(|l| l.split('#').next().unwrap_or("").trim()) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim().split('.').next().unwrap_or("").trim_matches('"').to_string();
        if section == "package" && key == "name" {
            manifest.name = value.trim().trim_matches('"').to_string();
        } else if section.ends_with("dev-dependencies") {
            manifest.dev_deps.push(key);
        } else if section.ends_with("dependencies") {
            manifest.deps.push((section.clone(), key));
        }
    }
    manifest
}

fn allowed(table: &[(&str, &'static [&'static str])], name: &str) -> Option<&'static [&'static str]> {
    table.iter().find(|(crate_name, _)| *crate_name == name).map(|(_, targets)| *targets)
}

#[test]
fn workspace_crates_depend_only_along_allowed_edges() {
    let mut problems = Vec::new();
    for dir in members() {
        let m = manifest(&dir);
        let (Some(normal), Some(dev)) = (allowed(CRATE_EDGES, &m.name), allowed(DEV_CRATE_EDGES, &m.name)) else {
            problems.push(format!(
                "{}: crate `{}` is not in the tidy tables.\n  Fix: add it to CRATE_EDGES and DEV_CRATE_EDGES in \
                 crates/testkit/tests/tidy/crate_deps.rs with the workspace crates it may use.",
                m.path, m.name
            ));
            continue;
        };
        for (section, dep) in m.deps.iter().filter(|(_, d)| d.starts_with(WORKSPACE_PREFIX)) {
            if !normal.contains(&dep.as_str()) {
                problems.push(format!(
                    "{}: forbidden crate edge {} -> {dep} (in [{section}]).\n  {} may depend on: {normal:?}.\n  Fix: \
                     move the code it needs down into a crate it may use (e.g. meridian-protocol), or, if the \
                     layering really changes, update CRATE_EDGES in crates/testkit/tests/tidy/crate_deps.rs and \
                     ARCHITECTURE.md.",
                    m.path, m.name, m.name
                ));
            }
        }
        for dep in m.dev_deps.iter().filter(|d| d.starts_with(WORKSPACE_PREFIX)) {
            if !normal.contains(&dep.as_str()) && !dev.contains(&dep.as_str()) {
                problems.push(format!(
                    "{}: forbidden dev-dependency {} -> {dep}.\n  Its tests may use: {:?}.\n  Fix: test through \
                     meridian-testkit or the binary, or update DEV_CRATE_EDGES in \
                     crates/testkit/tests/tidy/crate_deps.rs with a reason.",
                    m.path,
                    m.name,
                    [normal, dev].concat()
                ));
            }
        }
    }
    report("crate dependencies", &problems);
}
