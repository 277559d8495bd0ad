//! How verbs reach NameServers: `Ctx` holds the addresses, the timeout and the credentials
//! requests are signed with (if any), reads from the first address that gives a usable
//! answer and writes to every one; `Connection` and `ReplyExt` turn the client's errors
//! into `Failure`s that name the NameServer.
//! Must not: format a verb's output beyond the write verbs' shared result table.

use crate::report::{failure_json, failure_label, Failure, Report, Table, EXIT_OK};
use meridian_client::conn::{self, ClusterInfo, Credentials, Reply, TopicList};
use meridian_protocol::codes;
use serde_json::json;
use std::time::Duration;

/// Whether a write verb's answer carries a count in an ext field (205/327).
#[derive(Clone, Copy)]
pub(crate) enum WriteCount {
    None,
    Ext { field: &'static str, title: &'static str },
}

pub(crate) struct Ctx {
    pub(crate) addrs: Vec<String>,
    pub(crate) timeout: Duration,
    /// Every request is signed with these when given.
    pub(crate) credentials: Option<Credentials>,
}

impl Ctx {
    /// Runs `ask` against the first address that gives a usable answer. Returns that
    /// address, `ask`'s value, and a note for each address that failed before it.
    pub(crate) fn read<T>(
        &self,
        mut ask: impl FnMut(&mut Connection) -> Result<T, Failure>,
    ) -> Result<(String, T, Vec<String>), Failure> {
        let mut failures = Vec::new();
        for addr in &self.addrs {
            match self.connect(addr).and_then(|mut conn| ask(&mut conn)) {
                Ok(value) => {
                    let notes = failures.iter().map(|f| format!("{f}; asked {addr} instead")).collect();
                    return Ok((addr.clone(), value, notes));
                }
                Err(failure) if failure.try_next() => failures.push(failure),
                Err(failure) => return Err(failure),
            }
        }
        if failures.len() == 1 {
            return Err(failures.pop().expect("one failure"));
        }
        Err(Failure::NoneUsable(failures))
    }

    /// A connection to `addr` that signs its requests when the context has credentials.
    pub(crate) fn connect(&self, addr: &str) -> Result<Connection, Failure> {
        conn::Conn::open(addr, self.timeout)
            .map(|conn| Connection(conn.with_credentials(self.credentials.clone())))
            .map_err(|e| Failure::unusable(addr, e.to_string()))
    }

    /// Sends one request to every address and reports each outcome.
    pub(crate) fn write(&self, count: WriteCount, code: i32, ext: &[(&str, &str)], body: &[u8]) -> Report {
        let mut header = vec!["#NameServer", "#Result"];
        if let WriteCount::Ext { title, .. } = count {
            header.push(title);
        }
        let mut table = Table::new(&header);
        let mut results = Vec::new();
        let mut notes = Vec::new();
        let mut exit_code = EXIT_OK;
        for addr in &self.addrs {
            let outcome = self
                .connect(addr)
                .and_then(|mut conn| conn.call(code, ext, body))
                .and_then(|reply| reply.success(addr))
                .and_then(|reply| match count {
                    WriteCount::None => Ok(None),
                    WriteCount::Ext { field, .. } => reply.ext_i64(addr, field).map(Some),
                });
            match outcome {
                Ok(counted) => {
                    let mut row = vec![addr.clone(), "OK".to_string()];
                    let mut result = json!({"namesrv": addr, "ok": true});
                    if let (WriteCount::Ext { field, .. }, Some(n)) = (count, counted) {
                        row.push(n.to_string());
                        result[field] = json!(n);
                    }
                    table.row(row);
                    results.push(result);
                }
                Err(failure) => {
                    let mut row = vec![addr.clone(), failure_label(&failure)];
                    if let WriteCount::Ext { .. } = count {
                        row.push("-".to_string());
                    }
                    table.row(row);
                    results.push(failure_json(addr, &failure));
                    exit_code = exit_code.max(failure.exit_code());
                    notes.push(failure.to_string());
                }
            }
        }
        Report { human: table.render(), json: json!({ "results": results }), notes, exit_code }
    }
}

/// A connection to one NameServer whose failures name the NameServer, as the verbs report them.
pub(crate) struct Connection(conn::Conn);

impl Connection {
    pub(crate) fn addr(&self) -> &str {
        self.0.addr()
    }

    /// Sends one request and reads its answer, all within the timeout.
    pub(crate) fn call(&mut self, code: i32, ext: &[(&str, &str)], body: &[u8]) -> Result<Reply, Failure> {
        self.0.call(code, ext, body).map_err(|e| Failure::unusable(self.0.addr(), e.to_string()))
    }
}

/// The verbs' view of an answer: failures name the NameServer.
pub(crate) trait ReplyExt: Sized {
    fn success(self, addr: &str) -> Result<Reply, Failure>;
    fn ext_i64(&self, addr: &str, field: &str) -> Result<i64, Failure>;
    fn json_of<T: serde::de::DeserializeOwned>(&self, addr: &str, body_name: &'static str) -> Result<T, Failure>;
}

impl ReplyExt for Reply {
    /// The reply if its code is SUCCESS, else the NameServer's error.
    fn success(self, addr: &str) -> Result<Reply, Failure> {
        if self.header.code == codes::SUCCESS {
            return Ok(self);
        }
        Err(Failure::Answer { namesrv: addr.to_string(), code: self.header.code, remark: self.header.remark })
    }

    fn ext_i64(&self, addr: &str, field: &str) -> Result<i64, Failure> {
        let text = self.header.ext(field).ok_or_else(|| Failure::unusable(addr, format!("answer lacks {field}")))?;
        text.trim()
            .parse()
            .map_err(|_| Failure::unusable(addr, format!("answer field {field}={text:?} is not a number")))
    }

    /// [`Reply::json`], failing as `addr`'s.
    fn json_of<T: serde::de::DeserializeOwned>(&self, addr: &str, body_name: &'static str) -> Result<T, Failure> {
        self.json(body_name).map_err(|e| Failure::unusable(addr, e.to_string()))
    }
}

pub(crate) fn cluster_info(conn: &mut Connection) -> Result<ClusterInfo, Failure> {
    let addr = conn.addr().to_string();
    conn.call(codes::GET_BROKER_CLUSTER_INFO, &[], b"")?.success(&addr)?.json_of(&addr, "ClusterInfo")
}

pub(crate) fn topics(conn: &mut Connection, code: i32, ext: &[(&str, &str)]) -> Result<Vec<String>, Failure> {
    let addr = conn.addr().to_string();
    let list: TopicList = conn.call(code, ext, b"")?.success(&addr)?.json_of(&addr, "TopicList")?;
    Ok(list.topic_list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_protocol::acl;
    use meridian_protocol::frame::{self, SerializeType};
    use meridian_protocol::header::{Header, HeaderOut};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// What the stand-in received: ext fields, body and header version.
    type Received = (Vec<(String, String)>, Vec<u8>, i32);

    /// A NameServer stand-in that reads one request, answers it SUCCESS, and returns what
    /// it received.
    fn one_answer_server() -> (String, std::thread::JoinHandle<Received>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut prefix = [0u8; frame::LENGTH_PREFIX_BYTES];
            stream.read_exact(&mut prefix).unwrap();
            let len = frame::peek_frame_len(&prefix, 1 << 20).unwrap();
            let mut whole = prefix.to_vec();
            whole.resize(len, 0);
            stream.read_exact(&mut whole[prefix.len()..]).unwrap();
            let parts = frame::split(&whole, len);
            let header = Header::decode(parts.serialize_type, &whole[parts.header]).unwrap();
            let mut answer = Vec::new();
            HeaderOut::response(codes::SUCCESS, header.opaque, None, None).encode_frame(
                SerializeType::Json,
                b"",
                &mut answer,
            );
            stream.write_all(&answer).unwrap();
            (header.ext_fields.unwrap_or_default(), whole[parts.body].to_vec(), header.version)
        });
        (addr, handle)
    }

    fn update_kv(credentials: Option<Credentials>) -> (Report, Vec<(String, String)>, Vec<u8>, i32) {
        let (addr, server) = one_answer_server();
        let ctx = Ctx { addrs: vec![addr], timeout: Duration::from_secs(5), credentials };
        let report = ctx.write(WriteCount::None, codes::PUT_KV_CONFIG, &[("namespace", "ns"), ("key", "k")], b"v");
        let (fields, body, version) = server.join().unwrap();
        (report, fields, body, version)
    }

    #[test]
    fn write_verbs_sign_when_given_credentials() {
        let (report, fields, body, version) = update_kv(Some(Credentials::new("admin", "s3cret")));
        assert_eq!(report.exit_code, EXIT_OK, "{}", report.human);
        assert_eq!(acl::access_key(&fields), Ok("admin"));
        assert_eq!(acl::verify(version, &fields, &body, "s3cret"), Ok(()));
    }

    #[test]
    fn without_credentials_nothing_is_added() {
        let (report, fields, _, _) = update_kv(None);
        assert_eq!(report.exit_code, EXIT_OK, "{}", report.human);
        let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["namespace", "key"]);
    }
}
