//! The tidy test: architecture rules that `make test` enforces on the repository itself, in
//! the spirit of rust-analyzer's tidy tests and TigerBeetle's `tidy.zig`. Each rule states
//! what is allowed as a const table next to its check, and every exception is listed with a
//! reason. Modules:
//!
//! - `crate_deps`: which workspace crate may depend on which (Cargo.toml).
//! - `module_graph`: which module may use which inside a crate, and no import cycles.
//! - `paths`: no absolute or machine-specific path in tracked files.
//! - `sizes`: files of at most 800 lines and functions of at most 100 lines outside tests;
//!   ARCHITECTURE.md of at most 150 lines.
//!
//! A failure says what is wrong, where, and how to fix or justify it. Must not: change the
//! tree, need the network, or depend on anything but the repository and `git`.

mod crate_deps;
mod lex;
mod module_graph;
mod paths;
mod sizes;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root: this crate lives at crates/testkit.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root exists")
}

/// Every file git tracks (relative paths with `/`), or, outside a git checkout (a source
/// tarball), every file under the root except build outputs.
pub fn tracked_files() -> Vec<String> {
    let root = repo_root();
    let output = Command::new("git").arg("-C").arg(&root).args(["ls-files", "-z"]).output();
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|p| !p.is_empty() && root.join(p).is_file())
            .map(str::to_string)
            .collect(),
        _ => {
            let mut files = Vec::new();
            walk(&root, &root, &mut files);
            files
        }
    }
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// A tracked file's text; `None` for binary files.
pub fn read(rel: &str) -> Option<String> {
    std::fs::read(repo_root().join(rel)).ok().and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Tracked Rust files that are test code as a whole: the files of `#[cfg(test)] mod name;`
/// declarations, and everything under them.
pub fn test_only_files(tracked: &[String]) -> BTreeSet<String> {
    let mut prefixes = Vec::new();
    for rel in tracked.iter().filter(|f| f.ends_with(".rs")) {
        let Some(text) = read(rel) else { continue };
        let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
        let stem = file.trim_end_matches(".rs");
        // A module's children live beside `mod.rs`/`lib.rs`/`main.rs`, or in a directory
        // named after the module's file.
        let base = if matches!(stem, "mod" | "lib" | "main") { dir.to_string() } else { format!("{dir}/{stem}") };
        for name in lex::test_only_module_files(&lex::strip(&text)) {
            prefixes.push((format!("{base}/{name}.rs"), format!("{base}/{name}/")));
        }
    }
    tracked
        .iter()
        .filter(|f| prefixes.iter().any(|(file, dir)| *f == file || f.starts_with(dir.as_str())))
        .cloned()
        .collect()
}

/// Panics with every problem, one per paragraph, if there is any.
pub fn report(rule: &str, problems: &[String]) {
    assert!(problems.is_empty(), "tidy: {rule}: {} problem(s)\n\n{}\n", problems.len(), problems.join("\n\n"));
}
