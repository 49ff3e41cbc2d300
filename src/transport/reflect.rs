//! Reflexive address discovery (`protocols/reflect-v1.md`): a node behind NAT asks a public hail
//! node which address its call endpoint's packets come from. The question travels over QUIC from
//! the call endpoint itself, so the answer is the very mapping the NAT made for that UDP socket:
//! the address a peer can punch towards.
//!
//! The request is a QUIC connection whose first bidirectional stream carries the header
//! `"HAIL" || 0x52 || nonce (16)` (the call-stream header's shape, with 0x52 in place of the
//! version); the answer is `nonce (16) || family (1: 4 or 6) || ip (4 or 16) || port (2)`, after
//! which the reflector closes the connection.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use quinn::{Connection, SendStream};

use super::channel::{CLOSE_DONE, ChannelError, STREAM_MAGIC};

/// The header's type byte for a reflect request.
pub const REFLECT_TYPE: u8 = 0x52;
/// How long a reflect request may take, end to end.
pub const REFLECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The request header.
pub fn request_header(nonce: &[u8; 16]) -> Vec<u8> {
    [&STREAM_MAGIC[..], &[REFLECT_TYPE], &nonce[..]].concat()
}

/// The answer for `observed`.
pub fn encode_answer(nonce: &[u8; 16], observed: SocketAddr) -> Vec<u8> {
    let mut out = nonce.to_vec();
    match observed.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&observed.port().to_be_bytes());
    out
}

/// Parses an answer to the request with `nonce`.
pub fn decode_answer(nonce: &[u8; 16], b: &[u8]) -> Result<SocketAddr, ChannelError> {
    let bad = |why: &str| ChannelError::Network(format!("bad reflect answer: {why}"));
    if b.len() < 17 || &b[..16] != nonce {
        return Err(bad("not the answer to our request"));
    }
    let ip: IpAddr = match (b[16], b.len()) {
        (4, 23) => IpAddr::from(<[u8; 4]>::try_from(&b[17..21]).expect("4 bytes")),
        (6, 35) => IpAddr::from(<[u8; 16]>::try_from(&b[17..33]).expect("16 bytes")),
        _ => return Err(bad("wrong family or length")),
    };
    let port = u16::from_be_bytes([b[b.len() - 2], b[b.len() - 1]]);
    if port == 0 || ip.is_unspecified() {
        return Err(bad("an unusable address"));
    }
    Ok(SocketAddr::new(ip, port))
}

/// Answers a reflect request on `conn` (the reflector side), then closes the connection.
pub async fn answer(conn: Connection, mut send: SendStream, nonce: [u8; 16]) {
    let observed = conn.remote_address();
    let _ = send.write_all(&encode_answer(&nonce, observed)).await;
    let _ = send.finish();
    // Give the answer a moment to be acknowledged before the close.
    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    conn.close(CLOSE_DONE.into(), b"reflected");
}

/// Asks the reflector at `reflector` which address `endpoint`'s packets come from.
pub async fn reflect(endpoint: &quinn::Endpoint, reflector: SocketAddr) -> Result<SocketAddr, ChannelError> {
    let nonce: [u8; 16] = rand::random();
    let ask = async {
        let conn = endpoint.connect(reflector, "hail").map_err(ChannelError::net)?.await.map_err(ChannelError::net)?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(ChannelError::net)?;
        send.write_all(&request_header(&nonce)).await.map_err(ChannelError::net)?;
        let _ = send.finish();
        let answer = recv.read_to_end(64).await.map_err(ChannelError::net)?;
        conn.close(CLOSE_DONE.into(), b"thanks");
        decode_answer(&nonce, &answer)
    };
    tokio::time::timeout(REFLECT_TIMEOUT, ask)
        .await
        .unwrap_or_else(|_| Err(ChannelError::Network(format!("the reflector {reflector} did not answer in time"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip_and_foreign_or_broken_ones_are_refused() {
        let nonce = [7u8; 16];
        for a in ["11.0.0.12:40000", "[2001:db8::1]:5"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(decode_answer(&nonce, &encode_answer(&nonce, a)).unwrap(), a);
        }
        let a: SocketAddr = "11.0.0.12:40000".parse().unwrap();
        let good = encode_answer(&nonce, a);
        assert!(decode_answer(&[8u8; 16], &good).is_err(), "another request's answer");
        assert!(decode_answer(&nonce, &good[..20]).is_err());
        let mut family = good.clone();
        family[16] = 9;
        assert!(decode_answer(&nonce, &family).is_err());
        assert!(decode_answer(&nonce, &encode_answer(&nonce, "0.0.0.0:1".parse().unwrap())).is_err());
        assert_eq!(request_header(&nonce).len(), 21, "the call-stream header's length");
    }
}
