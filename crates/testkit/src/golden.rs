//! The vendored golden frames (testdata/golden, see its README.md): where they are and how to
//! read them. Must not: look anywhere outside the repository.

use std::path::{Path, PathBuf};

/// Where the golden frames live: vendored in the repo.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

/// Every line of a golden JSONL file, parsed.
pub fn golden_lines(file: &str) -> Vec<serde_json::Value> {
    let path = golden_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l:?}: {e}", path.display())))
        .collect()
}

/// Hex digits (whitespace ignored) to bytes; panics on anything else.
pub fn hex_decode(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd hex length {}", digits.len());
    let nibble = |d: u8| (d as char).to_digit(16).unwrap_or_else(|| panic!("not a hex digit: {d}")) as u8;
    digits.chunks(2).map(|pair| (nibble(pair[0]) << 4) | nibble(pair[1])).collect()
}
