//! Just enough of Rust's lexical structure for the tidy checks: blank out comments and the
//! contents of string and char literals (so braces and paths inside them are not code), and
//! blank out `#[cfg(test)]` items. Newlines are kept, so line numbers stay right. Must not:
//! try to parse Rust beyond that; the checks work on the blanked text.

/// `src` with every comment and every string/char literal body replaced by spaces.
pub fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for byte in &mut out[from..to.min(b.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    while i < b.len() {
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = block_comment_end(b, i);
                blank(&mut out, i, end);
                i = end;
            }
            b'r' | b'b' if !ident_before && raw_string_start(b, i).is_some() => {
                let (body, hashes) = raw_string_start(b, i).expect("checked");
                let closing: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                let end = find(b, body, &closing).map_or(b.len(), |p| p + closing.len());
                blank(&mut out, body, end - closing.len());
                i = end;
            }
            b'"' => {
                let end = string_end(b, i + 1);
                blank(&mut out, i + 1, end - 1);
                i = end;
            }
            b'\'' => i = char_or_lifetime(b, i, &mut out),
            _ => i += 1,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// After `/*` at `start`: the index just past the matching `*/` (block comments nest).
fn block_comment_end(b: &[u8], start: usize) -> usize {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// `r"`, `r#"`, `br"`, `br#"` at `i`: (index of the body, number of hashes).
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b[j] == b'b' {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    (b.get(j) == Some(&b'"')).then_some((j + 1, hashes))
}

/// From just after an opening `"`: the index just past the closing one.
fn string_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// At a `'`: blanks a char literal and returns the index past it, or steps over a lifetime.
fn char_or_lifetime(b: &[u8], i: usize, out: &mut [u8]) -> usize {
    let end = if b.get(i + 1) == Some(&b'\\') {
        // `'\''`, `'\n'`, `'\u{7f}'`: the escaped character never ends the literal.
        b.get(i + 3..).and_then(|rest| rest.iter().position(|&c| c == b'\'')).map(|p| i + 3 + p + 1)
    } else {
        // One UTF-8 character, then the closing quote.
        let len = b.get(i + 1).map_or(1, |&c| if c < 0x80 { 1 } else { c.leading_ones() as usize });
        (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + len + 2)
    };
    match end {
        Some(end) => {
            for byte in &mut out[i + 1..end - 1] {
                *byte = b' ';
            }
            end
        }
        None => i + 1,
    }
}

fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|p| from + p)
}

/// `stripped` (the output of `strip`) with every `#[cfg(test)]` item blanked: from the
/// attribute to the end of the item's brace-matched body, or to its `;`.
pub fn without_test_items(stripped: &str) -> String {
    let mut out = stripped.as_bytes().to_vec();
    let attr = b"#[cfg(test)]";
    let mut from = 0;
    while let Some(start) = find(&out, from, attr) {
        let end = item_end(&out, start + attr.len());
        for byte in &mut out[start..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        from = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// From after an item's attributes: the index past the item's `;` or its matching `}`.
pub fn item_end(b: &[u8], from: usize) -> usize {
    let Some(open) = b[from..].iter().position(|&c| c == b'{' || c == b';').map(|p| from + p) else {
        return b.len();
    };
    if b[open] == b';' {
        return open + 1;
    }
    matching_brace(b, open).map_or(b.len(), |close| close + 1)
}

/// The index of the `}` that closes the `{` at `open`.
pub fn matching_brace(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Names of the modules declared `#[cfg(test)] mod NAME;` (test-only files).
pub fn test_only_module_files(stripped: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = stripped;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item: Vec<&str> = rest.trim_start().splitn(3, char::is_whitespace).collect();
        if let [keyword, name, ..] = item[..] {
            if keyword == "mod" && name.ends_with(';') {
                names.push(name.trim_end_matches(';').to_string());
            }
        }
    }
    names
}

#[test]
fn strip_blanks_comments_strings_and_chars_but_keeps_lines_and_code() {
    let src = "let a = \"{ crate::x }\"; // crate::y {\nlet c = '{'; let q = '\\''; let l: &'a str = r#\"}\"#; /* { /* } */ */ f();\n";
    let out = strip(src);
    assert_eq!(out.len(), src.len());
    assert_eq!(out.lines().count(), 2);
    assert!(!out.contains("crate::") && !out.contains('{') && !out.contains('}'), "{out}");
    assert!(out.contains("&'a str") && out.contains("f();"), "{out}");
}

#[test]
fn test_items_are_blanked() {
    let src = strip("fn a() {}\n#[cfg(test)]\nmod tests {\n fn b() { {} }\n}\nfn c() {}\n");
    let out = without_test_items(&src);
    assert!(out.contains("fn a()") && out.contains("fn c()") && !out.contains("fn b()"), "{out}");
    assert_eq!(out.lines().count(), 6);
}
