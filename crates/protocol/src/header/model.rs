//! The RemotingCommand header as a value: the decoded `Header`, the `HeaderOut` we send,
//! the flag bits and the language names. Shared by the JSON, binary and scanner modules.
//! Must not: decode or encode bytes (the sibling modules do), or touch route state.

use crate::codes::VERSION_CURRENT;
use std::fmt;

/// Flag bit 0: the frame is a response.
pub const FLAG_RESPONSE: i32 = 0x1;
/// Flag bit 1: the requester will not read an answer.
pub const FLAG_ONEWAY: i32 = 0x2;

/// Language names by code, indexed as Java's `LanguageCode` enum ordinals.
const LANGUAGES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST",
    "NODE_JS",
];

/// A decoded header. Ext field values are always text on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub code: i32,
    /// Language code (`LanguageCode` ordinal); `None` when absent or unknown, as Java decodes it.
    pub language: Option<u8>,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    /// `None` when the header had no extFields at all.
    pub ext_fields: Option<Vec<(String, String)>>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct HeaderError(pub String);

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Header {
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// The value of an ext field; an empty value counts as absent only in binary headers,
    /// where the decoder already dropped it.
    pub fn ext(&self, key: &str) -> Option<&str> {
        self.ext_fields.as_ref()?.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Java's `Boolean.parseBoolean`: only case-insensitive `true` is true.
pub fn parse_java_bool(value: &str) -> bool {
    value.eq_ignore_ascii_case("true")
}

pub fn language_code(name: &str) -> Option<u8> {
    LANGUAGES.iter().position(|l| *l == name).map(|i| i as u8)
}

pub fn language_name(code: u8) -> Option<&'static str> {
    LANGUAGES.get(code as usize).copied()
}

/// What we put in a header we send. Java answers always come in JSON.
pub struct HeaderOut<'a> {
    pub code: i32,
    pub language: u8,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<&'a str>,
    /// `None` omits the key; `Some(&[])` writes `"extFields":{}` as Java does for typed
    /// response headers that end up empty.
    pub ext_fields: Option<&'a [(&'a str, &'a str)]>,
}

impl<'a> HeaderOut<'a> {
    /// A response header as the Java NameServer writes it.
    pub fn response(
        code: i32,
        opaque: i32,
        remark: Option<&'a str>,
        ext_fields: Option<&'a [(&'a str, &'a str)]>,
    ) -> Self {
        HeaderOut { code, language: 0, version: VERSION_CURRENT, opaque, flag: FLAG_RESPONSE, remark, ext_fields }
    }
}
