//! Rule: the repository stands alone and runs anywhere. No tracked file names a path on one
//! machine (a home or work directory, a Windows drive) or a directory beside the repository
//! (`../shared`); say the fact in the file, or point at a file inside the repository.
//! System paths that a deployment or a tuning script legitimately touches are allowed.

use crate::{read, report, tracked_files};

/// Files of these kinds are checked (by extension, or by whole name).
const CHECKED_EXTENSIONS: &[&str] =
    &["rs", "toml", "py", "sh", "md", "yml", "yaml", "properties", "service", "txt", "cfg", "conf", "json"];
const CHECKED_NAMES: &[&str] = &["Makefile", "Dockerfile"];

/// First components of absolute paths that are fine anywhere: the Linux system directories
/// (deploy/ installs to /usr, /etc, /var; tuning/ reads /proc, /sys and /dev; tests use
/// /tmp and /dev/null), and two documentation placeholders.
const ALLOWED_ROOTS: &[&str] = &[
    "bin",
    "boot",
    "dev",
    "etc",
    "lib",
    "lib64",
    "proc",
    "run",
    "sbin",
    "sys",
    "tmp",
    "usr",
    "var",
    // `/path/to/file` in usage texts.
    "path",
    // A path that must not exist, in tests of error messages.
    "nonexistent",
];

/// Always wrong, wherever they appear.
const FORBIDDEN_TEXTS: &[(&str, &str)] = &[
    ("../shared", "a directory beside the repository, which a clone does not have"),
    ("C:\\", "a Windows drive"),
    ("~/work", "a home directory on one machine"),
];

/// Tracked files that may name machine paths, and why.
const SKIPPED: &[(&str, &str)] = &[
    ("bench/results/", "recorded bench runs quote the command lines of the machine that ran them"),
    ("testdata/", "vendored captures, byte for byte"),
    ("fuzz/corpus/", "fuzzer inputs"),
    (".gitignore", "its leading `/` anchors a pattern at the repository root"),
    ("crates/testkit/tests/tidy/", "the rule itself names what it forbids"),
];

fn checked(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let ext_ok = name.rsplit_once('.').is_some_and(|(_, ext)| CHECKED_EXTENSIONS.contains(&ext));
    (ext_ok || CHECKED_NAMES.contains(&name)) && !SKIPPED.iter().any(|(prefix, _)| rel.starts_with(prefix))
}

/// Absolute paths in `line` whose first component is not allowed: `/home/x/…`, `/work/…`.
/// A path needs two components (`/a/b`) and must start a token, so URL paths of one
/// component (`/metrics`), `a/b/c` and `$DIR/sub` are not paths here.
fn machine_paths(line: &str) -> Vec<String> {
    let b = line.as_bytes();
    let mut found = Vec::new();
    for (i, _) in line.match_indices('/') {
        let before = if i == 0 { b' ' } else { b[i - 1] };
        let token_start = before.is_ascii_whitespace() || b"\"'`=(,[:<".contains(&before);
        // `"$DIR"/x` and `${x}/y` continue a shell word.
        let shell_word =
            i >= 2 && (before == b'"' || before == b'\'') && (b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'}');
        if !token_start || shell_word || (before == b':' && line[..i].ends_with("://")) {
            continue;
        }
        let rest = &line[i + 1..];
        let first: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).collect();
        let two_components = rest[first.len()..].starts_with('/') && !first.is_empty();
        if two_components && !ALLOWED_ROOTS.contains(&first.as_str()) {
            found.push(
                rest.split(|c: char| c.is_whitespace() || "\"'`)],".contains(c)).next().unwrap_or("").to_string(),
            );
        }
    }
    found.into_iter().map(|p| format!("/{p}")).collect()
}

#[test]
fn no_absolute_or_machine_specific_paths() {
    let mut problems = Vec::new();
    for rel in tracked_files().iter().filter(|f| checked(f)) {
        let Some(text) = read(rel) else { continue };
        for (number, line) in text.lines().enumerate() {
            let mut bad: Vec<(String, &str)> = machine_paths(line)
                .into_iter()
                .map(|p| (p, "an absolute path outside the system directories"))
                .collect();
            bad.extend(FORBIDDEN_TEXTS.iter().filter(|(t, _)| line.contains(t)).map(|(t, why)| (t.to_string(), *why)));
            for (text, why) in bad {
                problems.push(format!(
                    "{rel}:{}: `{text}` is {why}.\n  Fix: make it relative to the repository (or to a directory the \
                     code is given), or state the fact here instead of pointing elsewhere. A system path this \
                     check does not know goes into ALLOWED_ROOTS in crates/testkit/tests/tidy/paths.rs, with a reason.",
                    number + 1
                ));
            }
        }
    }
    report("paths", &problems);
}

#[test]
fn machine_paths_are_found_and_system_paths_allowed() {
    assert_eq!(
        machine_paths("see /home/alice/x.txt and \"/work/main/target\""),
        ["/home/alice/x.txt", "/work/main/target"]
    );
    assert_eq!(machine_paths("ExecStart=/usr/bin/meridian -c /etc/meridian/m.properties"), Vec::<String>::new());
    assert_eq!(
        machine_paths("GET /metrics, http://host/a/b, target/release/x, \"$SYSFS\"/class/net"),
        Vec::<String>::new()
    );
    assert_eq!(machine_paths("cd /Users/bob/src"), ["/Users/bob/src"]);
}
