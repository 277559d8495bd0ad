//! Vectors and round trips for the ACL signature. The whole-request vectors were computed
//! independently with Python's standard library, not with this code:
//!
//! ```text
//! import hmac, hashlib, base64
//! sig = lambda data, key: base64.b64encode(hmac.new(key.encode(), data, hashlib.sha1).digest()).decode()
//! content = "".join(v for k, v in sorted(fields.items(), key=lambda kv: kv[0].encode("utf-16-be"))
//!                   if k != "Signature").encode() + body
//! sig(content, secret_key)
//! ```

use super::*;

fn owned(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn javas_own_signer_vector() {
    // AclSignerTest: calSignature("RocketMQ", "12345678") == "IUc8rrO/0gDch8CjObLQsW2rsiA=".
    // With no ext fields the content is the body alone.
    let none: &[(&str, &str)] = &[];
    assert_eq!(signature(none, b"RocketMQ", "12345678"), "IUc8rrO/0gDch8CjObLQsW2rsiA=");
}

#[test]
fn whole_request_vectors() {
    let kv =
        [("namespace", "ORDER_TOPIC_CONFIG"), ("key", "TopicA"), ("value", "broker-a:4"), ("AccessKey", "rocketmq2")];
    assert_eq!(signature(&kv, b"", "12345678"), "BHyL2i6Jhheq2uJ+0fRvM6zcQfU=");
    // Non-ASCII values, key and body, with a SecurityToken.
    let unicode = [("topic", "主题-ü"), ("AccessKey", "ak-ü"), ("SecurityToken", "tok€n")];
    assert_eq!(signature(&unicode, "body ✓ 🚀".as_bytes(), "s€cret"), "vxsgOUPjFJY6Zi6UlJ+P64d7DnU=");
    // A stale Signature field is not signed.
    let stale = [("AccessKey", "AK"), ("Signature", "old"), ("brokerName", "broker-a")];
    assert_eq!(signature(&stale, br#"{"topicConfigTable":{}}"#, "SK"), "XJ/0aLYLtQ4gf5ByaQqN2sofACg=");
    // Java orders U+1F600 (a surrogate pair, 0xD83D...) before U+FF01; code point order would
    // give "nmmq+dYI9TS2ZMJUl4kdXAoec8k=".
    let order = [("\u{ff01}", "A"), ("\u{1F600}", "B"), ("AccessKey", "K")];
    assert_eq!(signature(&order, b"", "k"), "EMkpTJqE36E5o+PC9k7iM9UMeeQ=");
}

#[test]
fn sign_adds_the_fields_and_verify_accepts_them() {
    let mut fields = owned(&[("topic", "主题-ü")]);
    let mut credentials = Credentials::new("ak-ü", "s€cret");
    credentials.security_token = Some("tok€n".to_string());
    sign(&mut fields, "body ✓ 🚀".as_bytes(), &credentials);
    assert_eq!(field(&fields, SIGNATURE), Some("vxsgOUPjFJY6Zi6UlJ+P64d7DnU="));
    assert_eq!(field(&fields, SECURITY_TOKEN), Some("tok€n"));
    assert_eq!(access_key(&fields), Ok("ak-ü"));
    assert_eq!(verify(479, &fields, "body ✓ 🚀".as_bytes(), "s€cret"), Ok(()));
    // Signing again (a retry) replaces the fields instead of adding a second set.
    sign(&mut fields, "body ✓ 🚀".as_bytes(), &credentials);
    assert_eq!(fields.len(), 4);
    assert_eq!(verify(479, &fields, "body ✓ 🚀".as_bytes(), "s€cret"), Ok(()));
}

#[test]
fn verify_refuses_anything_changed() {
    let mut fields = owned(&[("namespace", "ns"), ("key", "k")]);
    sign(&mut fields, b"value", &Credentials::new("AK", "SK"));
    assert_eq!(verify(479, &fields, b"value", "SK"), Ok(()));
    assert_eq!(verify(479, &fields, b"valuf", "SK"), Err(AclError::SignatureMismatch));
    assert_eq!(verify(479, &fields, b"", "SK"), Err(AclError::SignatureMismatch));
    assert_eq!(verify(479, &fields, b"value", "SL"), Err(AclError::SignatureMismatch));
    let mut changed = fields.clone();
    changed[0].1 = "nt".to_string();
    assert_eq!(verify(479, &changed, b"value", "SK"), Err(AclError::SignatureMismatch));
    let mut added = fields.clone();
    added.push(("extra".to_string(), "x".to_string()));
    assert_eq!(verify(479, &added, b"value", "SK"), Err(AclError::SignatureMismatch));
    let mut truncated = fields.clone();
    truncated.last_mut().unwrap().1.pop();
    assert_eq!(verify(479, &truncated, b"value", "SK"), Err(AclError::SignatureMismatch));
    let no_signature: Vec<_> = fields.iter().filter(|(k, _)| k != SIGNATURE).cloned().collect();
    assert_eq!(verify(479, &no_signature, b"value", "SK"), Err(AclError::MissingSignature));
    let no_access_key: Vec<_> = fields.iter().filter(|(k, _)| k != ACCESS_KEY).cloned().collect();
    assert_eq!(verify(479, &no_access_key, b"value", "SK"), Err(AclError::MissingAccessKey));
    let none: &[(&str, &str)] = &[];
    assert_eq!(verify(479, none, b"", "SK"), Err(AclError::MissingAccessKey));
}

#[test]
fn old_clients_sign_without_the_unique_key_query_flag() {
    // Python: sig(b"AKT", "SK") (4.9.3 and older) and sig(b"AKtrueT", "SK") (newer).
    let old = [
        ("AccessKey", "AK"),
        ("_UNIQUE_KEY_QUERY", "true"),
        ("topic", "T"),
        ("Signature", "KUCQ7Ec5a0Z1UFtFQ5VEs/mE8XA="),
    ];
    assert_eq!(verify(UNIQUE_KEY_QUERY_UNSIGNED_VERSION_MAX, &old, b"", "SK"), Ok(()));
    assert_eq!(verify(UNIQUE_KEY_QUERY_UNSIGNED_VERSION_MAX + 1, &old, b"", "SK"), Err(AclError::SignatureMismatch));
    let new = [
        ("AccessKey", "AK"),
        ("_UNIQUE_KEY_QUERY", "true"),
        ("topic", "T"),
        ("Signature", "RYq77P5J4Rj8pCp0MfYLKCp2NQk="),
    ];
    assert_eq!(verify(UNIQUE_KEY_QUERY_UNSIGNED_VERSION_MAX + 1, &new, b"", "SK"), Ok(()));
}

#[test]
fn duplicate_keys_resolve_as_javas_map_does() {
    // A JSON header with a key twice decodes to the last value, in Java as here.
    let twice = [("AccessKey", "AK"), ("topic", "first"), ("topic", "T")];
    assert_eq!(signature(&twice, b"", "SK"), signature(&[("AccessKey", "AK"), ("topic", "T")], b"", "SK"));
}

#[test]
fn credentials_come_from_properties_in_either_spelling() {
    let tools = Credentials::from_properties("# tools\naccessKey = rocketmq2\nsecretKey=12345678 \n").unwrap();
    assert_eq!(tools, Credentials::new("rocketmq2", "12345678"));
    let key_file = Credentials::from_properties("AccessKey:AK\nSecretKey:SK\nSecurityToken=T\n").unwrap();
    assert_eq!(key_file.security_token.as_deref(), Some("T"));
    assert_eq!(Credentials::from_properties("accessKey=a\n"), Err("no secretKey".to_string()));
    assert_eq!(Credentials::from_properties("secretKey=s\naccessKey=  \n"), Err("no accessKey".to_string()));
    let shown = format!("{:?}", Credentials::from_properties("accessKey=a\nsecretKey=hush\n").unwrap());
    assert!(!shown.contains("hush"), "{shown}");
}
