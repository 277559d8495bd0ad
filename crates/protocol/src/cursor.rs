//! A forward-only JSON cursor for the scanners in `header::scan` and `body::scan`: the
//! generic readers (objects, strings without escapes, integers, string lists and maps) and
//! an iterative value skipper. Every reader gives up with `Fallback` on what it does not
//! handle exactly, so the serde path decides.
//! Must not: recurse (nesting costs a byte of a fixed array, not a stack frame), or know
//! what a header or a registration is.

/// Container depth the skipper follows; deeper input goes to the serde path (limit 128).
pub(crate) const DEPTH_MAX: usize = 64;
/// Longest integer the scanner converts itself (always fits an i64).
const INT_DIGITS_MAX: usize = 18;

/// The scanner does not handle this input; the serde path must decide.
#[derive(Debug, PartialEq, Eq)]
pub struct Fallback;

pub(crate) type Scan<T> = Result<T, Fallback>;

/// Stores a field's value, refusing a second occurrence (serde's derive rejects it).
pub(crate) fn set_once<T>(slot: &mut Option<T>, value: T) -> Scan<()> {
    if slot.is_some() {
        return Err(Fallback);
    }
    *slot = Some(value);
    Ok(())
}

/// End of the run of bytes from `at` that need no attention inside a string: printable
/// ASCII other than `"` and `\`. Eight bytes per step (SWAR), since names are most of a body.
#[inline]
fn plain_ascii_run(b: &[u8], mut at: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes of `v` below `n` (n <= 128) get their high bit set (exact when v's bytes < 128).
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    while let Some(chunk) = b.get(at..at + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let special = (v & HIGH)
            | below(v, 0x20)
            | below(v ^ (ONES * u64::from(b'"')), 1)
            | below(v ^ (ONES * u64::from(b'\\')), 1);
        if special != 0 {
            break;
        }
        at += 8;
    }
    at
}

pub(crate) struct Cursor<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, i: 0 }
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
    }

    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    pub(crate) fn eat(&mut self, c: u8) -> Scan<()> {
        if self.peek() != Some(c) {
            return Err(Fallback);
        }
        self.i += 1;
        Ok(())
    }

    /// Only whitespace may follow the body.
    pub(crate) fn end(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Fallback),
        }
    }

    /// After a member or element: `true` on a comma (more follow), `false` on `close`.
    #[inline]
    pub(crate) fn comma_or_close(&mut self, close: u8) -> Scan<bool> {
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Fallback),
        }
    }

    /// A string without escapes or control characters, valid UTF-8: its raw bytes.
    /// Names and keys are short, so a byte loop beats a memchr call here.
    #[inline]
    pub(crate) fn plain_str(&mut self) -> Scan<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        self.i = plain_ascii_run(self.b, self.i);
        let mut ascii = true;
        loop {
            let c = *self.b.get(self.i).ok_or(Fallback)?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return Err(Fallback);
            }
            ascii &= c < 0x80;
            self.i += 1;
        }
        let s = &self.b[start..self.i];
        self.i += 1;
        if !ascii && std::str::from_utf8(s).is_err() {
            return Err(Fallback);
        }
        Ok(s)
    }

    #[inline]
    pub(crate) fn plain_string(&mut self) -> Scan<String> {
        Ok(self.plain_utf8()?.to_owned())
    }

    /// `plain_str` as `&str`.
    #[inline]
    pub(crate) fn plain_utf8(&mut self) -> Scan<&'a str> {
        let s = self.plain_str()?;
        std::str::from_utf8(s).map_err(|_| Fallback)
    }

    /// An object key (valid UTF-8, as serde requires) followed by its colon.
    #[inline]
    pub(crate) fn key(&mut self) -> Scan<&'a [u8]> {
        let key = self.plain_str()?;
        if key == b"$ref" {
            return Err(Fallback); // fastjson references: the serde path resolves them
        }
        self.eat(b':')?;
        Ok(key)
    }

    /// Calls `member` for each key of an object (positioned after the colon).
    pub(crate) fn object(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Scan<()>) -> Scan<()> {
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.key()?;
            member(self, key)?;
            if !self.comma_or_close(b'}')? {
                return Ok(());
            }
        }
    }

    #[inline]
    pub(crate) fn null(&mut self) -> Scan<bool> {
        if self.peek() == Some(b'n') {
            if !self.b[self.i..].starts_with(b"null") {
                return Err(Fallback);
            }
            self.i += 4;
            return Ok(true);
        }
        Ok(false)
    }

    /// `null` → None, else the value read by `read`.
    #[inline]
    pub(crate) fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Scan<T>) -> Scan<Option<T>> {
        if self.null()? {
            return Ok(None);
        }
        read(self).map(Some)
    }

    #[inline]
    pub(crate) fn int(&mut self) -> Scan<i64> {
        self.ws();
        let negative = self.b.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut value: i64 = 0;
        while let Some(&c) = self.b.get(self.i) {
            if !c.is_ascii_digit() {
                break;
            }
            value = value * 10 + i64::from(c - b'0');
            self.i += 1;
            if self.i - start > INT_DIGITS_MAX {
                return Err(Fallback);
            }
        }
        let digits = self.i - start;
        // serde_json reads `-0` as a float, which an integer field refuses.
        if digits == 0 || (self.b[start] == b'0' && (digits > 1 || negative)) {
            return Err(Fallback);
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return Err(Fallback); // a float: serde refuses it for an integer field
        }
        Ok(if negative { -value } else { value })
    }

    pub(crate) fn i32(&mut self) -> Scan<i32> {
        i32::try_from(self.int()?).map_err(|_| Fallback)
    }

    pub(crate) fn bool(&mut self) -> Scan<bool> {
        self.ws();
        let rest = &self.b[self.i..];
        if rest.starts_with(b"true") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Ok(false)
        } else {
            Err(Fallback)
        }
    }

    /// `[]` or an array of strings and nulls (nulls dropped, as the serde path does).
    pub(crate) fn str_list(&mut self) -> Scan<Vec<String>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(out);
        }
        loop {
            if let Some(s) = self.nullable(Cursor::plain_string)? {
                out.push(s);
            }
            if !self.comma_or_close(b']')? {
                return Ok(out);
            }
        }
    }

    /// `{}` or string → string (other value types go to the serde path).
    pub(crate) fn attributes(&mut self) -> Scan<Vec<(String, String)>> {
        let mut out = Vec::new();
        self.object(|c, key| {
            let key = String::from_utf8_lossy(key).into_owned();
            if let Some(value) = c.nullable(Cursor::plain_string)? {
                out.push((key, value));
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Skips one JSON value of any kind, checking it as strictly as serde_json does when it
    /// ignores a value. Iterative: nesting costs a byte of `open`, not a stack frame.
    pub(crate) fn skip_value(&mut self) -> Scan<()> {
        // true = object, false = array.
        let mut open = [false; DEPTH_MAX];
        let mut depth = 0;
        loop {
            // A value.
            match self.peek().ok_or(Fallback)? {
                open_char @ (b'{' | b'[') => {
                    self.i += 1;
                    if depth == DEPTH_MAX {
                        return Err(Fallback);
                    }
                    let is_object = open_char == b'{';
                    open[depth] = is_object;
                    depth += 1;
                    let close = if is_object { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                        depth -= 1;
                    } else {
                        if is_object {
                            self.skip_str()?;
                            self.eat(b':')?;
                        }
                        continue;
                    }
                }
                b'"' => self.skip_str()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return Err(Fallback),
            }
            // After a value: close what ends here, then the next member or element.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let is_object = open[depth - 1];
                if self.comma_or_close(if is_object { b'}' } else { b']' })? {
                    if is_object {
                        self.skip_str()?;
                        self.eat(b':')?;
                    }
                    break;
                }
                depth -= 1;
            }
        }
    }

    pub(crate) fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if !self.b[self.i..].starts_with(word) {
            return Err(Fallback);
        }
        self.i += word.len();
        Ok(())
    }

    /// Any string: escapes are checked for shape only, as serde_json does when ignoring.
    pub(crate) fn skip_str(&mut self) -> Scan<()> {
        self.eat(b'"')?;
        loop {
            let rest = &self.b[self.i..];
            let at = memchr::memchr2(b'"', b'\\', rest).ok_or(Fallback)?;
            if rest[..at].iter().any(|&c| c < 0x20) {
                return Err(Fallback);
            }
            self.i += at + 1;
            if rest[at] == b'"' {
                return Ok(());
            }
            match self.b.get(self.i) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                Some(b'u') => {
                    let hex = self.b.get(self.i + 1..self.i + 5).ok_or(Fallback)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Fallback);
                    }
                    self.i += 5;
                }
                _ => return Err(Fallback),
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    pub(crate) fn skip_number(&mut self) -> Scan<()> {
        let digits = |c: &mut Self| {
            let start = c.i;
            while c.b.get(c.i).is_some_and(u8::is_ascii_digit) {
                c.i += 1;
            }
            c.i - start
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            return Err(Fallback);
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(Fallback);
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(Fallback);
            }
        }
        Ok(())
    }
}
