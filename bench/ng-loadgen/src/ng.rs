//! NG control client: offer/answer/delete over UDP with retransmission.

use crate::bencode::{decode, Value};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

pub struct Ng {
    sock: UdpSocket,
    server: SocketAddr,
    cookie: u64,
}

impl Ng {
    pub fn new(server: SocketAddr) -> std::io::Result<Ng> {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(1000)))?;
        Ok(Ng { sock, server, cookie: std::process::id() as u64 * 1_000_000 })
    }

    pub fn request(&mut self, req: &Value) -> Result<Value, String> {
        self.cookie += 1;
        let cookie = format!("{:x}", self.cookie);
        let mut msg = format!("{cookie} ").into_bytes();
        req.encode(&mut msg);
        let mut buf = vec![0u8; 65536];
        for _attempt in 0..5 {
            self.sock.send_to(&msg, self.server).map_err(|e| e.to_string())?;
            loop {
                match self.sock.recv(&mut buf) {
                    Ok(n) => {
                        let reply = &buf[..n];
                        let sp = reply.iter().position(|&c| c == b' ').ok_or("NG reply without cookie")?;
                        if &reply[..sp] != cookie.as_bytes() {
                            continue; // a late reply to an earlier retransmission
                        }
                        let (v, _) = decode(&reply[sp + 1..])?;
                        return match v.get("result").and_then(Value::as_str) {
                            Some("ok") => Ok(v),
                            other => Err(format!(
                                "NG {other:?}: {:?}",
                                v.get("error-reason").and_then(Value::as_str)
                            )),
                        };
                    }
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        break
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Err("NG: no reply after 5 attempts".into())
    }
}

pub fn sdp(port: u16, session: u32) -> String {
    format!(
        "v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The (address, port) the SDP's first audio m-line points at.
pub fn media_target(sdp: &str) -> Option<SocketAddr> {
    let mut addr = None;
    let mut port = None;
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("c=IN IP4 ") {
            addr.get_or_insert(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            port = rest.split_whitespace().next().and_then(|p| p.parse::<u16>().ok());
            if let Some(rest) = sdp.split(line).nth(1) {
                // a media-level c= overrides the session one
                if let Some(c) = rest.lines().find_map(|l| l.strip_prefix("c=IN IP4 ")) {
                    addr = Some(c.trim().to_string());
                }
            }
            break;
        }
    }
    format!("{}:{}", addr?, port?).parse().ok()
}

pub fn offer(call_id: &str, sdp: &str) -> Value {
    Value::dict(&[
        ("command", Value::str("offer")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(&format!("{call_id}-a"))),
        ("sdp", Value::str(sdp)),
        ("replace", Value::List(vec![Value::str("origin"), Value::str("session-connection")])),
        ("ICE", Value::str("remove")),
    ])
}

pub fn answer(call_id: &str, sdp: &str) -> Value {
    let mut v = offer(call_id, sdp);
    if let Value::Dict(d) = &mut v {
        d.insert(b"command".to_vec(), Value::str("answer"));
        d.insert(b"to-tag".to_vec(), Value::str(&format!("{call_id}-b")));
    }
    v
}

pub fn delete(call_id: &str) -> Value {
    Value::dict(&[
        ("command", Value::str("delete")),
        ("call-id", Value::str(call_id)),
        ("from-tag", Value::str(&format!("{call_id}-a"))),
    ])
}
