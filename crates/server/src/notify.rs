//! Outbound NOTIFY_MIN_BROKER_ID_CHANGE (905): the only request a NameServer sends.
//!
//! Java sends it one-way, with a 300 ms send timeout, over a client connection to each
//! target broker's address, only when `notifyMinBrokerIdChanged=true`. This thread does the
//! same from a bounded queue the writer feeds, keeping one connection per broker address and
//! dropping it on any error, so a slow or dead broker never holds up the writer.

use crate::route::table::MinIdNotification;
use meridian_protocol::codes;
use meridian_protocol::frame::{self, SerializeType};
use meridian_protocol::header::{HeaderOut, FLAG_ONEWAY};
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Java's send timeout for this one-way request.
const SEND_TIMEOUT: Duration = Duration::from_millis(300);
/// Notifications waiting for the thread; the writer drops (and logs) past this.
pub const NOTIFY_QUEUE_LEN_MAX: usize = 1024;
/// Cached connections to brokers; the oldest is closed past this.
const CONNECTIONS_MAX: usize = 1024;

/// Encodes one 905 request frame (JSON header, no body).
pub fn encode_notification(n: &MinIdNotification, opaque: i32, out: &mut Vec<u8>) {
    let min_id = n.min_broker_id.to_string();
    let mut ext: Vec<(&str, &str)> = vec![("minBrokerId", &min_id), ("minBrokerAddr", &n.min_broker_addr)];
    if let Some(a) = &n.offline_broker_addr {
        ext.push(("offlineBrokerAddr", a));
    }
    if let Some(a) = &n.ha_broker_addr {
        ext.push(("haBrokerAddr", a));
    }
    let header = HeaderOut {
        code: codes::NOTIFY_MIN_BROKER_ID_CHANGE,
        language: 0,
        version: codes::VERSION_CURRENT,
        opaque,
        flag: FLAG_ONEWAY,
        remark: None,
        ext_fields: Some(&ext),
    };
    let mut header_bytes = Vec::new();
    header.encode(SerializeType::Json, &mut header_bytes);
    frame::encode(out, SerializeType::Json, &header_bytes, &[]);
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let target: SocketAddr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "address resolves to nothing"))?;
    let stream = TcpStream::connect_timeout(&target, SEND_TIMEOUT)?;
    stream.set_write_timeout(Some(SEND_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub fn spawn(queue: flume::Receiver<MinIdNotification>) -> std::io::Result<()> {
    std::thread::Builder::new().name("meridian-notify".into()).spawn(move || run(queue)).map(|_| ())
}

fn run(queue: flume::Receiver<MinIdNotification>) {
    let mut connections: HashMap<String, TcpStream> = HashMap::new();
    let mut opaque: i32 = 0;
    let mut out = Vec::new();
    while let Ok(n) = queue.recv() {
        for target in &n.targets {
            opaque = opaque.wrapping_add(1);
            out.clear();
            encode_notification(&n, opaque, &mut out);
            if !connections.contains_key(target) {
                if connections.len() >= CONNECTIONS_MAX {
                    connections.clear();
                }
                match connect(target) {
                    Ok(s) => {
                        connections.insert(target.clone(), s);
                    }
                    Err(e) => {
                        tracing::warn!("NOTIFY_MIN_BROKER_ID_CHANGE to {target} not sent: connect failed: {e}");
                        continue;
                    }
                }
            }
            let stream = connections.get_mut(target).expect("inserted above");
            if let Err(e) = stream.write_all(&out) {
                tracing::warn!("NOTIFY_MIN_BROKER_ID_CHANGE to {target} not sent: {e}");
                connections.remove(target);
            } else {
                tracing::info!(
                    "NOTIFY_MIN_BROKER_ID_CHANGE sent to {target}: minBrokerId {} at {}",
                    n.min_broker_id,
                    n.min_broker_addr
                );
            }
        }
    }
}
