//! A tiny authoritative DNS server on loopback whose answers tests change while traffic
//! flows, to exercise the gateway's re-resolution like `docker compose --scale` does.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Names (lower-case, no trailing dot) to IPv4 addresses; a missing name is NXDOMAIN.
type Zone = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Zone,
    task: JoinHandle<()>,
}

impl DnsServer {
    pub async fn spawn() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("local addr");
        let zone: Zone = Arc::default();
        let task = tokio::spawn(answer(socket, Arc::clone(&zone)));
        Self { addr, zone, task }
    }

    /// Make `name` resolve to `ips` (an empty list still answers, with no records).
    pub fn set(&self, name: &str, ips: &[Ipv4Addr]) {
        self.zone
            .lock()
            .expect("zone lock")
            .insert(name.to_ascii_lowercase(), ips.to_vec());
    }

    /// Make `name` answer NXDOMAIN.
    pub fn remove(&self, name: &str) {
        self.zone
            .lock()
            .expect("zone lock")
            .remove(&name.to_ascii_lowercase());
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(socket: UdpSocket, zone: Zone) {
    let mut buf = vec![0u8; 1500];
    loop {
        let Ok((n, src)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let mut resp = Message::new();
        resp.set_id(query.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_authoritative(true)
            .set_recursion_desired(query.recursion_desired())
            .set_recursion_available(true);
        resp.add_queries(query.queries().to_vec());
        let mut code = ResponseCode::NoError;
        for q in query.queries() {
            let name = q
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            let ips = zone.lock().expect("zone lock").get(&name).cloned();
            match ips {
                None => code = ResponseCode::NXDomain,
                Some(ips) if q.query_type() == RecordType::A => {
                    for ip in ips {
                        resp.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(ip))));
                    }
                }
                Some(_) => {}
            }
        }
        resp.set_response_code(code);
        if let Ok(bytes) = resp.to_vec() {
            let _ = socket.send_to(&bytes, src).await;
        }
    }
}
