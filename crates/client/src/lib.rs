//! Meridian's blocking NameServer client, for tools (never a shard): `meridian admin`, the
//! route-watch client, routeDiff and the server's peer watch. Speaks only the wire format of
//! `meridian-protocol`; links nothing of the server.
//!
//! - [`conn`]: one `std::net::TcpStream` per NameServer, bounded answers, the answer bodies.
//! - [`watch`]: [`watch::RouteWatcher`], the route-watch (43701) client.
//! - [`route_diff`]: reads several NameServers ([`route_diff::fetch`]) and compares them.
//! - [`table`]: aligned plain-text tables, for routeDiff and `meridian admin`.

pub mod conn;
pub mod route_diff;
pub mod table;
pub mod watch;

/// Where RocketMQ tools look when neither `-n` nor `NAMESRV_ADDR` says otherwise.
pub const NAMESRV_ADDR_DEFAULT: &str = "127.0.0.1:9876";
/// The environment variable RocketMQ's tools read the NameServer list from.
pub const NAMESRV_ADDR_ENV: &str = "NAMESRV_ADDR";
/// Default bound on connecting and on each request (Java clients use 3 s for route queries).
pub const TIMEOUT_MS_DEFAULT: u64 = 3000;

/// Why a NAMESRV_ADDR list was refused; the user's fault, named with the text they gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrListError {
    /// An entry is not `host:port` with a port in 1..=65535.
    NotHostPort { addr: String },
    /// The list holds no address at all.
    Empty { text: String },
}

impl std::fmt::Display for AddrListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrListError::NotHostPort { addr } => {
                write!(f, "NameServer address {addr:?} is not host:port (expected e.g. 127.0.0.1:9876)")
            }
            AddrListError::Empty { text } => {
                write!(f, "no NameServer address in {text:?} (expected host:port;host:port)")
            }
        }
    }
}

impl std::error::Error for AddrListError {}

/// Splits a NAMESRV_ADDR list (`host:port;host:port`), dropping empty entries and repeats.
pub fn parse_namesrv_addrs(text: &str) -> Result<Vec<String>, AddrListError> {
    let mut addrs: Vec<String> = Vec::new();
    for addr in text.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        let valid = addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
        if !valid {
            return Err(AddrListError::NotHostPort { addr: addr.to_string() });
        }
        if !addrs.iter().any(|a| a == addr) {
            addrs.push(addr.to_string());
        }
    }
    if addrs.is_empty() {
        return Err(AddrListError::Empty { text: text.to_string() });
    }
    Ok(addrs)
}

/// The credentials a tool signs with, from `--access-key`/`--secret-key` or a `--credentials`
/// properties file (`accessKey=`, `secretKey=`, optional `securityToken=`, as RocketMQ's tools
/// read it); `None` when no option asks for signing. Errors name the options or the file.
pub fn credentials_from_options(
    access_key: Option<&str>,
    secret_key: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<conn::Credentials>, String> {
    if let Some(path) = file {
        if access_key.is_some() || secret_key.is_some() {
            return Err("give either --credentials or --access-key with --secret-key, not both".to_string());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        let credentials = conn::Credentials::from_properties(&text)
            .map_err(|e| format!("credentials file {}: {e}", path.display()))?;
        return Ok(Some(credentials));
    }
    match (access_key, secret_key) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Ok(Some(conn::Credentials::new(a, s))),
        (None, None) => Ok(None),
        _ => Err("--access-key and --secret-key go together, both non-empty (or use --credentials FILE)".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_addrs_are_split_checked_and_deduplicated() {
        let ok = |text: &str, expected: &[&str]| assert_eq!(parse_namesrv_addrs(text).unwrap(), expected, "{text:?}");
        ok("127.0.0.1:9876", &["127.0.0.1:9876"]);
        ok(" a:1 ; b:2;", &["a:1", "b:2"]);
        ok("a:1;a:1;b:2", &["a:1", "b:2"]);
        ok("[::1]:9876", &["[::1]:9876"]);
        for bad in ["", ";", "host", "host:", ":9876", "h:99999", "h:0", "h:x", "a:1;nope"] {
            assert!(parse_namesrv_addrs(bad).is_err(), "{bad:?} accepted");
        }
    }
}
