//! RocketMQ's ACL request signature, as the stock Java client's ACL RPC hook computes it and
//! the 5.3.3 broker's authentication checks it: the client sets the `AccessKey` ext field
//! (and `SecurityToken` when it has one), concatenates the VALUES of all ext fields but
//! `Signature`, ordered by key the way Java orders strings (UTF-16 code units), as UTF-8,
//! appends the body, and sends the base64 (standard, padded) HMAC-SHA1 of that under the
//! secret key as the `Signature` ext field. The checking side rebuilds the same content,
//! except that for requests of version 4.9.3 or older it also leaves out
//! `_UNIQUE_KEY_QUERY` (those clients added it after signing).
//!
//! Owns the field names, signing, verification (constant-time) and the credentials a
//! client signs with. Must not: do I/O, know accounts or decide which codes need a
//! signature (the server does).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::cmp::Ordering;
use std::fmt;
use subtle::ConstantTimeEq;

/// Ext field naming the account (Java's `SessionCredentials.ACCESS_KEY`).
pub const ACCESS_KEY: &str = "AccessKey";
/// Ext field carrying the base64 HMAC-SHA1 (`SessionCredentials.SIGNATURE`).
pub const SIGNATURE: &str = "Signature";
/// Optional ext field with a session token; signed like any other field.
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// Ext field (Java's `MixAll.UNIQUE_MSG_QUERY_FLAG`) that clients of version
/// [`UNIQUE_KEY_QUERY_UNSIGNED_VERSION_MAX`] or older added after signing.
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";
/// Java's `MQVersion.Version.V4_9_3.ordinal()`: requests of this version or older are
/// checked without [`UNIQUE_KEY_QUERY`].
pub const UNIQUE_KEY_QUERY_UNSIGNED_VERSION_MAX: i32 = 399;

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclError {
    /// No `AccessKey` ext field (or an empty one).
    MissingAccessKey,
    /// An `AccessKey` but no `Signature` ext field.
    MissingSignature,
    /// The signature does not match the content under the account's secret key.
    SignatureMismatch,
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclError::MissingAccessKey => "no AccessKey in the request",
            AclError::MissingSignature => "no Signature in the request",
            AclError::SignatureMismatch => "check signature failed",
        })
    }
}

impl std::error::Error for AclError {}

/// What a client signs with (Java's `SessionCredentials`). `Debug` hides the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub security_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<hidden>")
            .field("security_token", &self.security_token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials { access_key: access_key.into(), secret_key: secret_key.into(), security_token: None }
    }

    /// Credentials from a Java properties text, as RocketMQ's tools read them: `accessKey`,
    /// `secretKey` and optional `securityToken` (the tools' spelling), or `AccessKey`,
    /// `SecretKey` and `SecurityToken` (the client key file's). Values are trimmed; an
    /// absent or blank access or secret key is an error naming it.
    pub fn from_properties(text: &str) -> Result<Credentials, String> {
        let props = java_properties::read(text.as_bytes()).map_err(|e| format!("not a properties file: {e}"))?;
        let get = |names: [&str; 2]| {
            names.iter().find_map(|n| props.get(*n)).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
        };
        let access_key = get(["accessKey", ACCESS_KEY]).ok_or("no accessKey")?;
        let secret_key = get(["secretKey", "SecretKey"]).ok_or("no secretKey")?;
        let security_token = get(["securityToken", SECURITY_TOKEN]);
        Ok(Credentials { access_key, secret_key, security_token })
    }
}

/// Java's `String.compareTo`: by UTF-16 code units, which differs from Rust's byte order
/// when a key mixes characters above U+FFFF with ones in U+E000..=U+FFFF.
fn java_order(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The signed fields in Java's order, duplicates resolved as Java's map does (the last
/// one wins), `Signature` and the fields `skip` names left out.
fn signed_values<K: AsRef<str>, V: AsRef<str>>(
    ext_fields: &[(K, V)],
    skip: impl Fn(&str) -> bool,
) -> impl Iterator<Item = &str> {
    let mut fields: Vec<(&str, &str)> = ext_fields.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    // Stable: among equal keys the original order stays, so the last of a run is the last sent.
    fields.sort_by(|a, b| java_order(a.0, b.0));
    let keep: Vec<bool> = (0..fields.len())
        .map(|i| {
            let key = fields[i].0;
            fields.get(i + 1).is_none_or(|next| next.0 != key) && key != SIGNATURE && !skip(key)
        })
        .collect();
    fields.into_iter().zip(keep).filter(|(_, keep)| *keep).map(|((_, v), _)| v)
}

fn mac_of<'a>(values: impl Iterator<Item = &'a str>, body: &[u8], secret_key: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()).expect("HMAC takes keys of any length");
    for value in values {
        mac.update(value.as_bytes());
    }
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `Signature` a Java client computes for a request with these ext fields (which must
/// already hold `AccessKey`, and `SecurityToken` if any) and body.
pub fn signature<K: AsRef<str>, V: AsRef<str>>(ext_fields: &[(K, V)], body: &[u8], secret_key: &str) -> String {
    mac_of(signed_values(ext_fields, |_| false), body, secret_key)
}

/// Sets (or replaces) `AccessKey`, `SecurityToken` when the credentials have one, and
/// `Signature` in `ext_fields`, as Java's ACL RPC hook does before a request is sent.
pub fn sign(ext_fields: &mut Vec<(String, String)>, body: &[u8], credentials: &Credentials) {
    fn set(fields: &mut Vec<(String, String)>, key: &str, value: &str) {
        fields.retain(|(k, _)| k != key);
        fields.push((key.to_string(), value.to_string()));
    }
    set(ext_fields, ACCESS_KEY, &credentials.access_key);
    if let Some(token) = &credentials.security_token {
        set(ext_fields, SECURITY_TOKEN, token);
    }
    let signature = signature(ext_fields, body, &credentials.secret_key);
    set(ext_fields, SIGNATURE, &signature);
}

/// The value of an ext field (the last one if sent twice, as Java's map keeps).
fn field<'a, K: AsRef<str>, V: AsRef<str>>(ext_fields: &'a [(K, V)], key: &str) -> Option<&'a str> {
    ext_fields.iter().rev().find(|(k, _)| k.as_ref() == key).map(|(_, v)| v.as_ref())
}

/// The account a request claims, to look its secret key up before [`verify`].
pub fn access_key<K: AsRef<str>, V: AsRef<str>>(ext_fields: &[(K, V)]) -> Result<&str, AclError> {
    field(ext_fields, ACCESS_KEY).filter(|v| !v.is_empty()).ok_or(AclError::MissingAccessKey)
}

/// Checks a request's `Signature` against `secret_key`, rebuilding the content as the
/// 5.3.3 broker does for a request of `version` (the header's version field). The
/// comparison of the base64 texts takes the same time wherever they differ.
pub fn verify<K: AsRef<str>, V: AsRef<str>>(
    version: i32,
    ext_fields: &[(K, V)],
    body: &[u8],
    secret_key: &str,
) -> Result<(), AclError> {
    access_key(ext_fields)?;
    let sent = field(ext_fields, SIGNATURE).ok_or(AclError::MissingSignature)?;
    let old_client = version <= UNIQUE_KEY_QUERY_UNSIGNED_VERSION_MAX;
    let expected = mac_of(signed_values(ext_fields, |k| old_client && k == UNIQUE_KEY_QUERY), body, secret_key);
    if bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
        Ok(())
    } else {
        Err(AclError::SignatureMismatch)
    }
}

#[cfg(test)]
mod tests;
