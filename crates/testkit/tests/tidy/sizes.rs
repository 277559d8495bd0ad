//! Rule: a file has at most `FILE_LINES_MAX` lines and a function at most `FN_LINES_MAX`
//! lines, outside test code, so each stays readable in one sitting. Test code does not
//! count: `#[cfg(test)]` items and the files of `#[cfg(test)] mod x;` are left out, and
//! functions in `tests/` directories are not checked. Files in `tests/` are: an end-to-end
//! suite is read like any module, so it is split by topic too. An exception names its file (`path`) or
//! function (`path::name`), its own limit, and why.

use crate::lex::{item_end, matching_brace, strip};
use crate::{read, report, test_only_files, tracked_files};

pub const FILE_LINES_MAX: usize = 800;
pub const FN_LINES_MAX: usize = 100;

/// Lasting exceptions: (path or path::fn, limit, why). Keep this short.
const SIZE_EXCEPTIONS: &[(&str, usize, &str)] = &[];

/// Tracked Rust files that are not checked, and why.
const SKIPPED: &[(&str, &str)] = &[("fuzz/corpus/", "fuzzer inputs, not code")];

/// One counted item: a file or a function.
#[derive(Debug)]
struct Measured {
    /// `path` or `path::fn`.
    key: String,
    /// Where it starts, `path:line`.
    at: String,
    lines: usize,
    limit: usize,
}

/// Lines of `stripped` inside `#[cfg(test)]` items.
fn test_lines(stripped: &str) -> usize {
    let b = stripped.as_bytes();
    let (mut lines, mut from) = (0, 0);
    while let Some(start) = stripped[from..].find("#[cfg(test)]").map(|p| from + p) {
        let end = item_end(b, start + "#[cfg(test)]".len());
        lines += stripped[start..end].matches('\n').count() + 1;
        from = end;
    }
    lines
}

/// Every `fn` with a body in `code` (stripped, test items blanked): (name, first line, lines).
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("fn ") {
        if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
            continue;
        }
        let name: String =
            code[at + 3..].trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if name.is_empty() {
            continue;
        }
        // The body is the first `{` outside the signature's parentheses and brackets; a `;`
        // there first means a declaration without a body.
        let mut depth = 0i32;
        let mut open = None;
        for (i, &c) in b.iter().enumerate().skip(at) {
            match c {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => break,
                b'{' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(close) = open.and_then(|open| matching_brace(b, open)) else { continue };
        let first = code[..at].matches('\n').count() + 1;
        found.push((name, first, code[at..close].matches('\n').count() + 1));
    }
    found
}

fn limit_of(key: &str, default: usize) -> usize {
    SIZE_EXCEPTIONS.iter().find(|(k, _, _)| *k == key).map_or(default, |(_, limit, _)| *limit)
}

fn measure_all() -> Vec<Measured> {
    let mut all = Vec::new();
    let files = tracked_files();
    let test_only = test_only_files(&files);
    let counted =
        |f: &&String| f.ends_with(".rs") && !test_only.contains(*f) && !SKIPPED.iter().any(|(p, _)| f.starts_with(p));
    for rel in files.iter().filter(counted) {
        let Some(text) = read(rel) else { continue };
        let stripped = strip(&text);
        let lines = text.lines().count() - test_lines(&stripped);
        all.push(Measured { key: rel.clone(), at: format!("{rel}:1"), lines, limit: limit_of(rel, FILE_LINES_MAX) });
        if rel.split('/').any(|c| c == "tests") {
            continue;
        }
        let code = crate::lex::without_test_items(&stripped);
        for (name, first, lines) in functions(&code) {
            let key = format!("{rel}::{name}");
            let limit = limit_of(&key, FN_LINES_MAX);
            all.push(Measured { key, at: format!("{rel}:{first}"), lines, limit });
        }
    }
    all
}

/// `TIDY_PRINT_SIZES=1 cargo test -p meridian-testkit --test tidy sizes -- --nocapture`
/// prints the largest production files and functions (tests not counted), against the limits.
fn print_largest(measured: &[Measured]) {
    for (what, is_file, limit) in [("files", true, FILE_LINES_MAX), ("functions", false, FN_LINES_MAX)] {
        let mut items: Vec<&Measured> = measured.iter().filter(|m| m.key.ends_with(".rs") == is_file).collect();
        items.sort_by_key(|m| std::cmp::Reverse(m.lines));
        println!("largest {what} (limit {limit}):");
        for m in items.iter().take(12) {
            println!("  {:5}  {}", m.lines, m.key);
        }
    }
}

#[test]
fn files_and_functions_stay_within_their_line_limits() {
    let measured = measure_all();
    if std::env::var_os("TIDY_PRINT_SIZES").is_some() {
        print_largest(&measured);
    }
    let mut problems = Vec::new();
    for m in measured.iter().filter(|m| m.lines > m.limit) {
        let (what, default) =
            if m.key.ends_with(".rs") { ("file", FILE_LINES_MAX) } else { ("function", FN_LINES_MAX) };
        let listed = m.limit != default;
        problems.push(format!(
            "{}: {what} `{}` has {} lines, over its limit of {}{}.\n  Fix: split it by responsibility (a \
             helper per step, a module per concern). Test code does not count: move tests into a \
             #[cfg(test)] module. If it truly cannot be split, add `(\"{}\", {}, \"why\")` to SIZE_EXCEPTIONS \
             in crates/testkit/tests/tidy/sizes.rs.",
            m.at,
            m.key,
            m.lines,
            m.limit,
            if listed { " (its listed exception)" } else { "" },
            m.key,
            m.lines
        ));
    }
    for (key, limit, why) in SIZE_EXCEPTIONS.iter() {
        let default = if key.ends_with(".rs") { FILE_LINES_MAX } else { FN_LINES_MAX };
        let largest = measured.iter().filter(|m| m.key == *key).map(|m| m.lines).max();
        match largest {
            None => problems.push(format!(
                "{key}: listed in crates/testkit/tests/tidy/sizes.rs (limit {limit}, {why}) but no such file or \
                 function exists any more.\n  Fix: delete the entry."
            )),
            Some(lines) if lines <= default => problems.push(format!(
                "{key}: listed in crates/testkit/tests/tidy/sizes.rs (limit {limit}, {why}) but has {lines} lines, \
                 within the default {default}.\n  Fix: delete the entry."
            )),
            Some(_) => {}
        }
    }
    report("sizes", &problems);
}

#[test]
fn functions_are_measured_from_fn_to_closing_brace() {
    let code = strip("fn a() -> [u8; 2] {\n    [1, 2]\n}\ntrait T { fn b(&self); }\nfn c() { let s = \"}\"; }\n");
    let found = functions(&code);
    assert_eq!(found, [("a".to_string(), 1, 3), ("c".to_string(), 5, 1)]);
}

/// ARCHITECTURE.md is read whole by a newcomer: it stays a page or two, and what does not
/// fit belongs in the module docs it points at.
const ARCHITECTURE_LINES_MAX: usize = 150;

#[test]
fn architecture_md_stays_within_its_line_limit() {
    let text = std::fs::read_to_string(crate::repo_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md exists");
    let lines = text.lines().count();
    assert!(
        lines <= ARCHITECTURE_LINES_MAX,
        "ARCHITECTURE.md has {lines} lines, over {ARCHITECTURE_LINES_MAX}: move detail into module docs"
    );
}
