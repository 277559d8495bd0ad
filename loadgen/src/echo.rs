//! `echo-server`: the trivial NameServer stand-in used to measure loadgen's own ceiling.
//! Every GET_ROUTEINFO_BY_TOPIC gets one fixed, pre-encoded route answer (a one-group
//! route, like Meridian's answer for a topic of `lookup`'s first broker); a REGISTER_BROKER
//! gets, once its whole frame is in, the CRC32 check of its body (hashed as the bytes
//! arrive, as Meridian does) and the answer Meridian gives a master: the registration
//! floor, the wire cost no NameServer can beat. Every other request gets a bare SUCCESS.
//! Oneway requests get nothing.
//!
//! It does the least a server can: find the opaque, copy bytes, hash a registration. Must
//! not: decode a body, or keep any state beyond its connections.

use crate::cli::EchoArgs;
use crate::net::{Conn, ReadBuf};
use crate::runtime::{self, Placement};
use crate::scenario::parse_targets;
use crate::wire;
use glommio::net::{TcpListener, TcpStream};
use meridian_protocol::body::{self, encode_topic_route, BrokerData, JsonFlavour, QueueData, TopicRouteView};
use meridian_protocol::frame::{self, SerializeType, HEADER_LEN_FIELD_MAX, HEADER_WORD_BYTES, LENGTH_PREFIX_BYTES};
use meridian_protocol::header::{Header, HeaderOut, FLAG_ONEWAY};
use meridian_protocol::{codes, perm};
use std::collections::BTreeMap;
use std::os::unix::io::{FromRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// JSON answer header up to the opaque value, and after it (HeaderOut::response shape).
const HEADER_HEAD: &[u8] = br#"{"code":0,"flag":1,"language":"JAVA","opaque":"#;
const HEADER_TAIL: &[u8] = br#","serializeTypeCurrentRPC":"JSON","version":479}"#;

/// The fixed route body: one broker group, one master, 8 queues (282 bytes of TopicRouteData).
pub fn route_body() -> Vec<u8> {
    let broker = BrokerData {
        cluster: "lg-cluster-0".into(),
        broker_name: "lg-broker-0".into(),
        broker_addrs: BTreeMap::from([(0, "127.1.0.0:10911".to_string())]),
        enable_acting_master: false,
        zone_name: None,
    };
    let queue = QueueData {
        broker_name: "lg-broker-0".into(),
        read_queue_nums: 8,
        write_queue_nums: 8,
        perm: perm::READ | perm::WRITE,
        topic_sys_flag: 0,
    };
    let view = TopicRouteView {
        broker_datas: &[&broker],
        queue_datas: &[&queue],
        filter_server_table: &[],
        order_topic_conf: None,
        topic_queue_mapping_by_broker: &[],
    };
    let mut out = Vec::new();
    encode_topic_route(&mut out, &view, JsonFlavour::Standard);
    out
}

/// Appends a SUCCESS answer with `body` for `opaque`, byte-identical to HeaderOut's.
fn push_answer(out: &mut Vec<u8>, opaque: i32, body: &[u8]) {
    let mut digits = itoa_buffer(opaque);
    let digits = digits.format();
    let header_len = HEADER_HEAD.len() + digits.len() + HEADER_TAIL.len();
    let total = HEADER_WORD_BYTES + header_len + body.len();
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(header_len as u32).to_be_bytes());
    out.extend_from_slice(HEADER_HEAD);
    out.extend_from_slice(digits.as_bytes());
    out.extend_from_slice(HEADER_TAIL);
    out.extend_from_slice(body);
}

/// Appends the answer to a REGISTER_BROKER whose body has CRC32 `body_crc32`: Meridian's
/// answer to a master (SUCCESS, `"extFields":{}`, no body) when the header's `bodyCrc32`
/// matches or is absent, else Meridian's refusal (SYSTEM_ERROR with the reason).
fn push_register_answer(out: &mut Vec<u8>, opaque: i32, serialize_type: SerializeType, header: &[u8], body_crc32: i32) {
    let expected = Header::decode(serialize_type, header)
        .ok()
        .and_then(|h| h.ext("bodyCrc32").and_then(|v| v.parse::<i32>().ok()))
        .unwrap_or(0);
    let refusal = body::check_body_crc32(expected, body_crc32).err().map(|e| e.to_string());
    let code = if refusal.is_some() { codes::SYSTEM_ERROR } else { codes::SUCCESS };
    let mut header_out = Vec::with_capacity(128);
    HeaderOut::response(code, opaque, refusal.as_deref(), Some(&[])).encode(SerializeType::Json, &mut header_out);
    frame::encode(out, SerializeType::Json, &header_out, &[]);
}

/// The body CRC32 of the REGISTER_BROKER frame at the front of a connection's read buffer,
/// hashed as its bytes arrive (as Meridian's connection does), so the check costs nothing
/// after the frame's last byte. Offsets are from the front of the unread bytes, which a
/// buffer compaction keeps.
#[derive(Default)]
struct FrontCrc {
    /// The front frame's body range once its header is buffered and names REGISTER_BROKER.
    body: Option<std::ops::Range<usize>>,
    /// The front frame's header is buffered and names another request (or none).
    other: bool,
    /// (code, opaque, oneway) of the front frame once its header is buffered: read once.
    fields: Option<(i32, i32, bool)>,
    hasher: crc32fast::Hasher,
    /// Body bytes hashed so far end here.
    done: usize,
}

impl FrontCrc {
    /// Hashes what arrived of the front frame's body since the last call; `unread` starts
    /// with that frame.
    fn update(&mut self, unread: &[u8]) {
        if self.other {
            return;
        }
        let body = match &self.body {
            Some(body) => body.clone(),
            None => {
                if unread.len() < LENGTH_PREFIX_BYTES + HEADER_WORD_BYTES {
                    return;
                }
                let frame_bytes =
                    u32::from_be_bytes([unread[0], unread[1], unread[2], unread[3]]) as usize + LENGTH_PREFIX_BYTES;
                let word = u32::from_be_bytes([unread[4], unread[5], unread[6], unread[7]]);
                let header_start = LENGTH_PREFIX_BYTES + HEADER_WORD_BYTES;
                let header_end = header_start + (word & HEADER_LEN_FIELD_MAX) as usize;
                if header_end > frame_bytes {
                    self.other = true; // malformed: wire::next_frame refuses it
                    return;
                }
                if unread.len() < header_end {
                    return;
                }
                let serialize_type = if word >> 24 == 0 { SerializeType::Json } else { SerializeType::RocketMq };
                self.fields = request_fields(serialize_type, &unread[header_start..header_end]);
                match self.fields {
                    Some((codes::REGISTER_BROKER, _, _)) => {
                        self.done = header_end;
                        self.body.insert(header_end..frame_bytes).clone()
                    }
                    _ => {
                        self.other = true;
                        return;
                    }
                }
            }
        };
        let end = unread.len().min(body.end);
        if self.done < end {
            self.hasher.update(&unread[self.done..end]);
            self.done = end;
        }
    }

    /// The CRC32 of a REGISTER_BROKER body hashed whole, as `bodyCrc32` carries it.
    fn finish(self) -> i32 {
        body::crc32_field(self.hasher.finalize())
    }
}

/// A tiny integer formatter (no allocation).
struct Digits {
    bytes: [u8; 12],
    start: usize,
}

impl Digits {
    fn format(&mut self) -> &str {
        std::str::from_utf8(&self.bytes[self.start..]).expect("ASCII digits")
    }
}

fn itoa_buffer(value: i32) -> Digits {
    let mut bytes = [0u8; 12];
    let mut at = bytes.len();
    let negative = value < 0;
    let mut v = (value as i64).unsigned_abs();
    loop {
        at -= 1;
        bytes[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        bytes[at] = b'-';
    }
    Digits { bytes, start: at }
}

/// (code, opaque, oneway) of a request: a byte scan for JSON headers that look like ours or
/// Java's, the binary layout's fixed offsets, and Meridian's decoder for anything else.
fn request_fields(serialize_type: SerializeType, header: &[u8]) -> Option<(i32, i32, bool)> {
    if serialize_type == SerializeType::RocketMq && header.len() >= 13 {
        let code = i16::from_be_bytes([header[0], header[1]]) as i32;
        let opaque = i32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        let flag = i32::from_be_bytes([header[9], header[10], header[11], header[12]]);
        return Some((code, opaque, flag & FLAG_ONEWAY != 0));
    }
    let fast = (|| {
        let code = scan_int(header, b"\"code\":")?;
        let opaque = scan_int(header, b"\"opaque\":")?;
        let flag = scan_int(header, b"\"flag\":")?;
        Some((code, opaque, flag & FLAG_ONEWAY != 0))
    })();
    fast.or_else(|| {
        let h = Header::decode(serialize_type, header).ok()?;
        Some((h.code, h.opaque, h.is_oneway()))
    })
}

/// The integer right after the first `key` (a top-level key in every sender's headers we
/// know; ext values are strings, so `"opaque":` cannot appear inside them unescaped).
fn scan_int(header: &[u8], key: &[u8]) -> Option<i32> {
    let at = header.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &header[at..];
    let end = rest.iter().position(|b| !(b.is_ascii_digit() || *b == b'-')).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

async fn serve(stream: TcpStream, route: Arc<Vec<u8>>) {
    let peer = match stream.peer_addr() {
        Ok(peer) => peer,
        Err(_) => return,
    };
    let Ok(conn) = Conn::from_stream(stream, peer) else { return };
    let mut buf = ReadBuf::default();
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut front = FrontCrc::default();
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            front.update(buf.unread());
            let consumed = match wire::next_frame(buf.unread()) {
                Ok(Some((frame, frame_bytes))) => {
                    let fields = front.fields.or_else(|| request_fields(frame.serialize_type, frame.header));
                    let Some((code, opaque, oneway)) = fields else {
                        return;
                    };
                    let crc = std::mem::take(&mut front);
                    match (oneway, code) {
                        (true, _) => {}
                        (false, codes::REGISTER_BROKER) => {
                            push_register_answer(&mut out, opaque, frame.serialize_type, frame.header, crc.finish())
                        }
                        (false, codes::GET_ROUTEINFO_BY_TOPIC) => push_answer(&mut out, opaque, &route),
                        (false, _) => push_answer(&mut out, opaque, &[]),
                    }
                    frame_bytes
                }
                Ok(None) => break,
                Err(_) => return,
            };
            buf.consume(consumed);
        }
        if !out.is_empty() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

fn bind(addr: std::net::SocketAddr) -> Result<RawFd, String> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(|e| format!("socket: {e}"))?;
    socket.set_reuse_address(true).map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    socket.set_reuse_port(true).map_err(|e| format!("SO_REUSEPORT: {e}"))?;
    socket.bind(&SockAddr::from(addr)).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    socket.listen(1024).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok(socket.into_raw_fd())
}

pub fn run(args: EchoArgs) -> i32 {
    match serve_all(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("meridian-loadgen echo-server: {e}");
            2
        }
    }
}

fn serve_all(args: EchoArgs) -> Result<(), String> {
    let (_, addrs) = parse_targets(&args.listen, args.allow_remote)
        .map_err(|e| e.replace("--namesrv", "--listen").replace("target", "listen address"))?;
    let cpus = args.cpus.as_deref().map(runtime::parse_cpu_list).transpose()?;
    let placement = Placement { threads: args.threads, cpus };
    placement.validate()?;
    // Bind every listener up front so port 0 resolves once and all threads share it.
    let first = bind(addrs[0])?;
    // SAFETY: `first` is a listening socket we just created and own.
    let local = unsafe { std::net::TcpListener::from_raw_fd(first) };
    let local_addr = local.local_addr().map_err(|e| format!("local address: {e}"))?;
    let mut fds = vec![local.into_raw_fd()];
    for _ in 1..args.threads {
        fds.push(bind(local_addr)?);
    }
    let route = Arc::new(route_body());
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    let deadline = Instant::now() + args.duration.0;
    let fds = Arc::new(fds);
    let workers = runtime::spawn("echo", &placement, {
        let (route, stop, fds) = (route.clone(), stop.clone(), fds.clone());
        move |id| {
            let (route, stop, fd) = (route.clone(), stop.clone(), fds[id]);
            async move {
                // SAFETY: the main thread created this listening socket for this worker
                // only and hands over ownership; nothing else closes it.
                let listener = unsafe { TcpListener::from_raw_fd(fd) };
                glommio::spawn_local(async move {
                    loop {
                        match listener.accept().await {
                            Ok(stream) => {
                                glommio::spawn_local(serve(stream, route.clone())).detach();
                            }
                            Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
                        }
                    }
                })
                .detach();
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })?;
    // Tests and scripts wait for this line (like Meridian's "listening on").
    eprintln!("echo-server listening on {local_addr} ({})", placement.describe());
    workers.join()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_protocol::header::HeaderOut;

    #[test]
    fn answers_match_meridians_encoder_byte_for_byte() {
        let body = route_body();
        assert!((200..400).contains(&body.len()), "{} bytes", body.len());
        for opaque in [0, 7, 123_456, i32::MAX, -3] {
            let mut mine = Vec::new();
            push_answer(&mut mine, opaque, &body);
            let mut header = Vec::new();
            HeaderOut::response(0, opaque, None, None).encode(SerializeType::Json, &mut header);
            let mut theirs = Vec::new();
            meridian_protocol::frame::encode(&mut theirs, SerializeType::Json, &header, &body);
            assert_eq!(mine, theirs, "opaque {opaque}");
        }
        assert!(wire::check_route(&body, ["lg-broker-0"]).is_ok());
    }

    /// A REGISTER_BROKER frame with `body`, its header claiming `crc`.
    fn register_frame(serialize_type: SerializeType, body: &[u8], crc: i32) -> Vec<u8> {
        let style = wire::RequestStyle { version: 479, serialize_type };
        let mut frame = Vec::new();
        let crc = crc.to_string();
        let ext = [("brokerName", "b"), ("bodyCrc32", crc.as_str())];
        wire::encode_request(&mut frame, style, codes::REGISTER_BROKER, 77, false, &ext, body);
        frame
    }

    #[test]
    fn a_registration_is_hashed_as_it_arrives_and_answered_like_meridian_does() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let crc = body::body_crc32(&body);
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let frame = register_frame(serialize_type, &body, crc);
            // Bytes arrive in pieces of every size, from 1 to 64 KiB.
            for piece in [1, 7, 1000, 65_536] {
                let mut front = FrontCrc::default();
                let mut arrived = 0;
                while wire::next_frame(&frame[..arrived]).unwrap().is_none() {
                    arrived = (arrived + piece).min(frame.len());
                    front.update(&frame[..arrived]);
                }
                assert_eq!(arrived, frame.len());
                assert_eq!(front.finish(), crc, "{serialize_type:?}, pieces of {piece}");
            }
            let header_end = frame.len() - body.len();
            let mut mine = Vec::new();
            push_register_answer(&mut mine, 77, serialize_type, &frame[8..header_end], crc);
            let mut header = Vec::new();
            HeaderOut::response(codes::SUCCESS, 77, None, Some(&[])).encode(SerializeType::Json, &mut header);
            let mut theirs = Vec::new();
            meridian_protocol::frame::encode(&mut theirs, SerializeType::Json, &header, &[]);
            assert_eq!(mine, theirs, "{serialize_type:?}");
            // A body that does not match its bodyCrc32 is refused, as Meridian refuses it.
            let mut refused = Vec::new();
            push_register_answer(&mut refused, 77, serialize_type, &frame[8..header_end], crc ^ 1);
            let (answer, _) = wire::next_frame(&refused).unwrap().unwrap();
            let h = Header::decode(answer.serialize_type, answer.header).unwrap();
            assert_eq!((h.code, h.opaque), (codes::SYSTEM_ERROR, 77));
            assert_eq!(h.remark.as_deref(), Some("crc32 not match"));
        }
        // Frames of other requests are not hashed.
        let mut front = FrontCrc::default();
        let mut lookup = Vec::new();
        let style = wire::RequestStyle { version: 479, serialize_type: SerializeType::Json };
        wire::encode_request(&mut lookup, style, 105, 1, false, &[("topic", "T")], b"xyz");
        front.update(&lookup);
        assert!(front.other && front.body.is_none());
    }

    #[test]
    fn request_fields_are_found_in_every_header_form() {
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let style = wire::RequestStyle { version: 479, serialize_type };
            let mut frame = Vec::new();
            wire::encode_request(&mut frame, style, 105, 42, false, &[("topic", "T")], b"");
            let header = &frame[8..];
            assert_eq!(request_fields(serialize_type, header), Some((105, 42, false)));
            let mut frame = Vec::new();
            wire::encode_request(&mut frame, style, 904, 43, true, &[], b"");
            assert_eq!(request_fields(serialize_type, &frame[8..]), Some((904, 43, true)));
        }
        // Go client order, through the fast scan.
        let go =
            br#"{"code":105,"language":"GO","version":317,"opaque":9,"flag":0,"remark":"","extFields":{"topic":"T"}}"#;
        assert_eq!(request_fields(SerializeType::Json, go), Some((105, 9, false)));
        assert_eq!(request_fields(SerializeType::Json, b"{nonsense"), None);
    }
}
