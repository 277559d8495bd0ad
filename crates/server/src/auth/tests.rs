use super::accounts::Accounts;
use super::*;
use arc_swap::ArcSwap;
use std::sync::Arc;

fn control(config: AuthConfig) -> AccessControl {
    let accounts = Accounts::parse("alice=s3cret\n").unwrap();
    AccessControl::new(config, Arc::new(ArcSwap::from_pointee(accounts)))
}

fn signed(code_body: &[u8], secret: &str) -> Vec<(String, String)> {
    let mut ext = vec![("namespace".to_string(), "ns".to_string()), ("key".to_string(), "k".to_string())];
    acl::sign(&mut ext, code_body, &acl::Credentials::new("alice", secret));
    ext
}

const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

#[test]
fn cidrs_parse_and_match() {
    let c = Cidr::parse("10.1.0.0/16").unwrap();
    assert!(c.contains("10.1.200.3".parse().unwrap()));
    assert!(!c.contains("10.2.0.1".parse().unwrap()));
    assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped peers match IPv4 networks");
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("192.0.2.1".parse().unwrap()));
    assert!(Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.1".parse().unwrap()));
    assert!(!Cidr::parse("127.0.0.1").unwrap().contains("127.0.0.2".parse().unwrap()));
    assert!(Cidr::parse("::1/128").unwrap().contains("::1".parse().unwrap()));
    assert!(Cidr::parse("10.0.0.0/33").is_err());
    assert!(Cidr::parse("nope/8").is_err());
    let mut a = AuthConfig::default();
    assert!(a.set("writeAllowedCidrs", "10.0.0.0/8; 127.0.0.1").unwrap());
    assert_eq!(a.properties()[5].1, "10.0.0.0/8;127.0.0.1/32");
    assert!(a.set("brokerAllowedCidrs", "10.0.0.0/99").unwrap_err().to_string().contains("brokerAllowedCidrs"));
}

#[test]
fn off_by_default_everything_passes() {
    let c = control(AuthConfig::default());
    for code in WRITE_CODES.iter().chain(&BROKER_CODES).chain(&[105, 106, 206]) {
        assert_eq!(c.check(*code, 0, None, b"", None), Ok(()));
    }
}

#[test]
fn signatures_are_required_for_write_codes_only_by_default() {
    let c = control(AuthConfig { enabled: true, accounts_file: Some("x".into()), ..AuthConfig::default() });
    assert_eq!(c.check(105, 0, None, b"", LOCAL), Ok(()), "reads stay open");
    assert_eq!(c.check(103, 0, None, b"", LOCAL), Ok(()), "brokers stay open");
    assert_eq!(c.check(100, 0, None, b"", LOCAL).unwrap_err().reason, Reason::Unsigned);
    let ext = signed(b"body", "s3cret");
    assert_eq!(c.check(100, 0, Some(&ext), b"body", LOCAL), Ok(()));
    assert_eq!(c.check(100, 0, Some(&ext), b"b0dy", LOCAL).unwrap_err().reason, Reason::Signature);
    let wrong = signed(b"body", "guess");
    assert_eq!(c.check(100, 0, Some(&wrong), b"body", LOCAL).unwrap_err().reason, Reason::Signature);
    let mut stranger = ext.clone();
    stranger.retain(|(k, _)| k != acl::ACCESS_KEY);
    stranger.push((acl::ACCESS_KEY.into(), "mallory".into()));
    let refusal = c.check(100, 0, Some(&stranger), b"body", LOCAL).unwrap_err();
    assert_eq!(refusal.reason, Reason::UnknownAccount);
    assert!(refusal.remark.contains("mallory"), "{}", refusal.remark);
    assert!(!refusal.remark.contains("s3cret"));
}

#[test]
fn switches_extend_signatures_to_brokers_and_reads() {
    let config = AuthConfig {
        enabled: true,
        broker_requests: true,
        read_requests: true,
        accounts_file: Some("x".into()),
        ..AuthConfig::default()
    };
    let c = control(config);
    assert_eq!(c.check(103, 0, None, b"", LOCAL).unwrap_err().reason, Reason::Unsigned);
    assert_eq!(c.check(105, 0, None, b"", LOCAL).unwrap_err().reason, Reason::Unsigned);
    let ext = signed(b"", "s3cret");
    assert_eq!(c.check(105, 0, Some(&ext), b"", LOCAL), Ok(()));
}

#[test]
fn address_allow_lists_apply_per_class() {
    let mut config = AuthConfig::default();
    config.set("writeAllowedCidrs", "127.0.0.1/32").unwrap();
    config.set("brokerAllowedCidrs", "10.0.0.0/8").unwrap();
    let c = control(config);
    let other = Some("127.0.0.2".parse().unwrap());
    assert_eq!(c.check(100, 0, None, b"", LOCAL), Ok(()));
    let refusal = c.check(100, 0, None, b"", other).unwrap_err();
    assert_eq!(refusal.reason, Reason::Address);
    assert!(refusal.remark.contains("127.0.0.2") && refusal.remark.contains("writeAllowedCidrs"), "{}", refusal.remark);
    assert_eq!(c.check(103, 0, None, b"", LOCAL).unwrap_err().reason, Reason::Address);
    assert_eq!(c.check(100, 0, None, b"", None).unwrap_err().reason, Reason::Address);
    assert_eq!(c.check(105, 0, None, b"", other), Ok(()), "reads have no allow-list");
}

#[test]
fn enabling_needs_an_accounts_file() {
    let a = AuthConfig { enabled: true, ..AuthConfig::default() };
    assert!(a.validate().unwrap_err().to_string().contains("authAccountsFile"));
    assert_eq!(KEYS.len(), AuthConfig::default().properties().len());
}
