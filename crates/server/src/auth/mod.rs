//! Opt-in access control (off by default): which requests need RocketMQ's ACL signature
//! (`AccessKey` + `Signature`, checked with `meridian_protocol::acl::verify` against the
//! account's secret key), and which peer addresses may send write or broker requests
//! (CIDR allow-lists). Owns the `auth*` / `*AllowedCidrs` keys (`AuthConfig`), the request
//! classes and `AccessControl::check`, which a shard runs before anything reaches the
//! writer. Must not: build answers, log, count, or change state; none of its keys is ever
//! remotely writable.

pub mod accounts;

use self::accounts::AccountsCell;
use crate::error::ConfigError;
use meridian_protocol::{acl, codes};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// Codes that change the KV config, topics, permissions or the config: signed when
/// `authEnabled`, and sent only from `writeAllowedCidrs`.
pub const WRITE_CODES: [i32; 7] = [
    codes::PUT_KV_CONFIG,
    codes::DELETE_KV_CONFIG,
    codes::WIPE_WRITE_PERM_OF_BROKER,
    codes::DELETE_TOPIC_IN_NAMESRV,
    codes::REGISTER_TOPIC_IN_NAMESRV,
    codes::UPDATE_NAMESRV_CONFIG,
    codes::ADD_WRITE_PERM_OF_BROKER,
];

/// Broker registration, unregistration and heartbeat: signed when `authBrokerRequests`,
/// and sent only from `brokerAllowedCidrs`.
pub const BROKER_CODES: [i32; 3] = [codes::REGISTER_BROKER, codes::UNREGISTER_BROKER, codes::BROKER_HEARTBEAT];

/// Every key this module owns; none may be changed by UPDATE_NAMESRV_CONFIG.
pub const KEYS: [&str; 6] = [
    "authEnabled",
    "authBrokerRequests",
    "authReadRequests",
    "authAccountsFile",
    "brokerAllowedCidrs",
    "writeAllowedCidrs",
];

/// What a request is, for access control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Write,
    Broker,
    /// Everything else: lookups, lists, config reads, watches.
    Read,
}

pub fn class(code: i32) -> Class {
    if WRITE_CODES.contains(&code) {
        Class::Write
    } else if BROKER_CODES.contains(&code) {
        Class::Broker
    } else {
        Class::Read
    }
}

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr.parse().map_err(|e| format!("{text:?}: {e}"))?;
        let bits = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= bits).ok_or(format!("{text:?}: prefix must be 0..={bits}"))?
            }
        };
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is in the network; an IPv4-mapped IPv6 peer counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    let shift = bits - prefix;
    shift == bits || (a >> shift) == (b >> shift)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

fn parse_cidrs(key: &str, value: &str) -> Result<Vec<Cidr>, ConfigError> {
    value
        .split([';', ','])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| Cidr::parse(c).map_err(|why| invalid(key, value, why)))
        .collect()
}

fn invalid(key: &str, value: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), value: value.to_string(), why: why.to_string() }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}

/// The access-control keys. Defaults: everything open, as Java's NameServer is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `authEnabled`: write codes must be signed by an account of `authAccountsFile`.
    pub enabled: bool,
    /// `authBrokerRequests`: with `authEnabled`, broker (un)registration and heartbeats too.
    pub broker_requests: bool,
    /// `authReadRequests`: with `authEnabled`, every other request too (lookups included).
    pub read_requests: bool,
    /// `authAccountsFile`: `accessKey=secretKey` lines, or a JSON object of the same.
    pub accounts_file: Option<PathBuf>,
    /// `brokerAllowedCidrs`: peers that may send broker codes; empty = any.
    pub broker_cidrs: Vec<Cidr>,
    /// `writeAllowedCidrs`: peers that may send write codes; empty = any.
    pub write_cidrs: Vec<Cidr>,
}

impl AuthConfig {
    /// Sets one of `KEYS`; `Ok(false)` for any other key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "authEnabled" => self.enabled = parse_bool(key, value)?,
            "authBrokerRequests" => self.broker_requests = parse_bool(key, value)?,
            "authReadRequests" => self.read_requests = parse_bool(key, value)?,
            "authAccountsFile" => self.accounts_file = Some(value.trim()).filter(|v| !v.is_empty()).map(PathBuf::from),
            "brokerAllowedCidrs" => self.broker_cidrs = parse_cidrs(key, value)?,
            "writeAllowedCidrs" => self.write_cidrs = parse_cidrs(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn properties(&self) -> Vec<(String, String)> {
        let list = |c: &[Cidr]| c.iter().map(Cidr::to_string).collect::<Vec<_>>().join(";");
        let file = self.accounts_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        vec![
            ("authEnabled".into(), self.enabled.to_string()),
            ("authBrokerRequests".into(), self.broker_requests.to_string()),
            ("authReadRequests".into(), self.read_requests.to_string()),
            ("authAccountsFile".into(), file),
            ("brokerAllowedCidrs".into(), list(&self.broker_cidrs)),
            ("writeAllowedCidrs".into(), list(&self.write_cidrs)),
        ]
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.accounts_file.is_none() {
            return Err(ConfigError::Conflict("authEnabled=true needs authAccountsFile (the accounts)".into()));
        }
        Ok(())
    }

    /// Whether requests of `class` must carry a valid signature.
    pub fn needs_signature(&self, class: Class) -> bool {
        self.enabled
            && match class {
                Class::Write => true,
                Class::Broker => self.broker_requests,
                Class::Read => self.read_requests,
            }
    }
}

/// Why a request was refused; `label` is the metric's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The peer's address is outside the allow-list for the request's class.
    Address,
    /// No `AccessKey` or no `Signature`.
    Unsigned,
    /// An `AccessKey` no account has.
    UnknownAccount,
    /// The signature does not match the request.
    Signature,
}

impl Reason {
    pub const ALL: [Reason; 4] = [Reason::Address, Reason::Unsigned, Reason::UnknownAccount, Reason::Signature];

    pub fn label(self) -> &'static str {
        match self {
            Reason::Address => "address",
            Reason::Unsigned => "unsigned",
            Reason::UnknownAccount => "unknown_account",
            Reason::Signature => "signature",
        }
    }
}

/// A refused request: answered NO_PERMISSION with `remark`, nothing else happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub remark: String,
}

/// The process-wide access control the shards share: the keys and the current accounts.
pub struct AccessControl {
    pub config: AuthConfig,
    pub accounts: AccountsCell,
}

impl AccessControl {
    pub fn new(config: AuthConfig, accounts: AccountsCell) -> AccessControl {
        AccessControl { config, accounts }
    }

    /// Whether the request may go on. `peer`: the connection's remote address (`None`
    /// when unknown, which no allow-list admits).
    pub fn check(
        &self,
        code: i32,
        version: i32,
        ext_fields: Option<&[(String, String)]>,
        body: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        let class = class(code);
        let cidrs = match class {
            Class::Write => Some((&self.config.write_cidrs, "writeAllowedCidrs")),
            Class::Broker => Some((&self.config.broker_cidrs, "brokerAllowedCidrs")),
            Class::Read => None,
        };
        if let Some((cidrs, key)) = cidrs.filter(|(c, _)| !c.is_empty()) {
            if !peer.is_some_and(|ip| cidrs.iter().any(|c| c.contains(ip))) {
                let who = peer.map_or_else(|| "unknown peer".to_string(), |ip| ip.to_string());
                let remark = format!("request code {code} from {who} refused: address not in {key}");
                return Err(Refusal { reason: Reason::Address, remark });
            }
        }
        if !self.config.needs_signature(class) {
            return Ok(());
        }
        let ext = ext_fields.unwrap_or(&[]);
        let refuse = |reason, why: &dyn fmt::Display| {
            Err(Refusal { reason, remark: format!("request code {code} refused: {why} (authEnabled)") })
        };
        let access_key = match acl::access_key(ext) {
            Ok(k) => k,
            Err(e) => return refuse(Reason::Unsigned, &e),
        };
        let accounts = self.accounts.load();
        let Some(secret_key) = accounts.secret_key(access_key) else {
            return refuse(Reason::UnknownAccount, &format_args!("no account with AccessKey {access_key:?}"));
        };
        match acl::verify(version, ext, body, secret_key) {
            Ok(()) => Ok(()),
            Err(e @ acl::AclError::MissingSignature) => refuse(Reason::Unsigned, &e),
            Err(e) => refuse(Reason::Signature, &e),
        }
    }
}

#[cfg(test)]
mod tests;
