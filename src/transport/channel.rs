//! The secure channel of a call: the first bidirectional stream of a QUIC connection, opened by the
//! QUIC client with a header naming the call, then the Noise handshake, then control messages
//! (`protocols/handshake-v1.md`, `protocols/signaling-v1.md`).
//!
//! Both sides dial all of each other's candidates at once; every connection that comes up offers one
//! stream. The caller (the Noise initiator) picks the first stream it has, from either direction, and
//! sends message 1 there; the callee answers on whichever stream message 1 arrives. The other
//! connections are closed.
//!
//! This file is the wire and the setup ([`establish`]); [`super::link::PeerLink`] runs it for the
//! node and then carries the control frames.

use std::net::SocketAddr;
use std::time::Duration;

use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::call_id::CallId;
use crate::crypto::handshake::HandshakeRole;
use crate::crypto::handshake::{EXPORTER_LABEL, Established, HandshakeError, HandshakeParams, Initiator, Responder};

/// The first bytes of a call stream.
pub const STREAM_MAGIC: &[u8; 4] = b"HAIL";
/// The stream header's version.
pub const STREAM_VERSION: u8 = 1;
/// How long a peer may take to send the stream header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one handshake message may take to arrive once the previous one was sent (message 1:
/// once the stream exists).
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC application close code: the call is over.
pub const CLOSE_DONE: u32 = 0;
/// QUIC application close code: no such call here, or a duplicate connection.
pub const CLOSE_UNWANTED: u32 = 1;

/// Why a channel could not be set up or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The network failed (no candidate answered, a stream broke, a timeout).
    #[error("{0}")]
    Network(String),
    /// The handshake failed: a wrong identity, a bad commitment, a tampered message.
    #[error(transparent)]
    Security(Box<HandshakeError>),
    /// A second handshake arrived for a call that already answered one. Only a man in the middle
    /// trying to grind the emoji (one message 2 per try) has a reason to do that, so the call fails.
    #[error("a second handshake arrived for this call: someone may be trying to guess the emoji (a man in the middle)")]
    SecondHandshake,
}

impl From<HandshakeError> for ChannelError {
    fn from(e: HandshakeError) -> Self {
        ChannelError::Security(Box::new(e))
    }
}

impl ChannelError {
    /// A network error. Its text can carry the peer's words (a QUIC close reason), so it is
    /// sanitized: no escape sequences or invisible characters reach a terminal.
    pub(crate) fn net(e: impl std::fmt::Display) -> Self {
        ChannelError::Network(crate::peer_text::sanitize(&e.to_string()))
    }

    /// Whether this is a security failure (as opposed to a network one).
    pub fn is_security(&self) -> bool {
        matches!(self, ChannelError::Security(_) | ChannelError::SecondHandshake)
    }
}

/// A QUIC connection with the call's stream, ready for the handshake.
#[derive(Debug)]
pub struct CallStream {
    /// The connection.
    pub conn: Connection,
    /// Our half of the stream.
    pub send: SendStream,
    /// Their half.
    pub recv: RecvStream,
}

/// Writes the stream header.
pub async fn write_header(send: &mut SendStream, call_id: CallId) -> Result<(), ChannelError> {
    let header = [&STREAM_MAGIC[..], &[STREAM_VERSION], &call_id.0[..]].concat();
    send.write_all(&header).await.map_err(ChannelError::net)
}

/// What the first stream of an incoming connection asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamRequest {
    /// A call's channel.
    Call(CallId),
    /// A reflect request (`super::reflect`), with its nonce.
    Reflect([u8; 16]),
}

/// Reads the stream header; returns the call it names.
pub async fn read_header(recv: &mut RecvStream) -> Result<CallId, ChannelError> {
    match read_request(recv).await? {
        StreamRequest::Call(id) => Ok(id),
        StreamRequest::Reflect(_) => Err(ChannelError::Network("a reflect request, not a call stream".into())),
    }
}

/// Reads the stream header: a call, or a reflect request.
pub async fn read_request(recv: &mut RecvStream) -> Result<StreamRequest, ChannelError> {
    let mut header = [0u8; 21];
    recv.read_exact(&mut header).await.map_err(ChannelError::net)?;
    if &header[..4] != STREAM_MAGIC {
        return Err(ChannelError::Network("not a hail call stream".into()));
    }
    if header[4] == super::reflect::REFLECT_TYPE {
        return Ok(StreamRequest::Reflect(header[5..].try_into().expect("16 bytes")));
    }
    if header[4] != STREAM_VERSION {
        return Err(ChannelError::Network(format!(
            "call stream version {} (this hail speaks {STREAM_VERSION})",
            header[4]
        )));
    }
    Ok(StreamRequest::Call(CallId(header[5..].try_into().expect("16 bytes"))))
}

/// Writes one frame: 2-byte big-endian length, then the bytes.
pub async fn write_frame(send: &mut SendStream, bytes: &[u8]) -> Result<(), ChannelError> {
    let len = u16::try_from(bytes.len()).map_err(|_| ChannelError::Network("frame too large".into()))?;
    send.write_all(&len.to_be_bytes()).await.map_err(ChannelError::net)?;
    send.write_all(bytes).await.map_err(ChannelError::net)
}

/// Reads one frame of at most `max` bytes.
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, ChannelError> {
    let mut len = [0u8; 2];
    recv.read_exact(&mut len).await.map_err(ChannelError::net)?;
    let len = u16::from_be_bytes(len) as usize;
    if len > max {
        return Err(ChannelError::Network(format!("frame of {len} bytes exceeds {max}")));
    }
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf).await.map_err(ChannelError::net)?;
    Ok(buf)
}

fn exporter(conn: &Connection, call_id: CallId) -> Result<[u8; 32], ChannelError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, &call_id.0)
        .map_err(|_| ChannelError::Network("cannot export TLS keying material".into()))?;
    Ok(out)
}

/// A call's secure channel: the QUIC connection, its control stream, and the handshake's result.
#[derive(Debug)]
pub struct SecureChannel {
    /// The connection (media datagrams and streams ride on it later).
    pub conn: Connection,
    /// Control messages out.
    pub send: SendStream,
    /// Control messages in.
    pub recv: RecvStream,
    /// Who, the SAS, and the frame keys.
    pub established: Established,
}

/// Runs the initiator's handshake on `stream`.
pub async fn initiate(
    mut stream: CallStream,
    call_id: CallId,
    params: HandshakeParams,
) -> Result<SecureChannel, ChannelError> {
    let params = params.with_tls_exporter(exporter(&stream.conn, call_id)?);
    let mut nonce = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let (initiator, msg1) = Initiator::start(params, nonce)?;
    write_frame(&mut stream.send, &msg1).await?;
    let msg2 = read_message(&mut stream.recv, "message 2").await?;
    let (msg3, established) = initiator.read_message_2(&msg2)?;
    write_frame(&mut stream.send, &msg3).await?;
    Ok(SecureChannel { conn: stream.conn, send: stream.send, recv: stream.recv, established })
}

/// Reads one handshake message, within [`MESSAGE_TIMEOUT`].
async fn read_message(recv: &mut RecvStream, which: &str) -> Result<Vec<u8>, ChannelError> {
    match tokio::time::timeout(MESSAGE_TIMEOUT, read_frame(recv, crate::crypto::handshake::MAX_MESSAGE)).await {
        Ok(result) => result,
        Err(_) => Err(ChannelError::Network(format!("the peer did not send handshake {which} in time"))),
    }
}

/// A stream on which the initiator's message 1 arrived, not yet answered.
#[derive(Debug)]
pub struct Message1 {
    stream: CallStream,
    msg1: Vec<u8>,
}

/// Waits for message 1 on `stream` (within [`MESSAGE_TIMEOUT`]). Nothing is answered yet: the
/// caller of this decides whether this is the one message 1 of the call that gets a message 2.
pub async fn await_message_1(mut stream: CallStream) -> Result<Message1, ChannelError> {
    let msg1 = read_message(&mut stream.recv, "message 1").await?;
    Ok(Message1 { stream, msg1 })
}

/// Runs the responder's side of the handshake from a message 1 (sends message 2, reads message 3).
/// Call it once per call: every message 2 shows a man in the middle one more SAS.
pub async fn answer(
    first: Message1,
    call_id: CallId,
    params: HandshakeParams,
) -> Result<SecureChannel, ChannelError> {
    let Message1 { mut stream, msg1 } = first;
    let params = params.with_tls_exporter(exporter(&stream.conn, call_id)?);
    let mut responder = Responder::new(params)?;
    let msg2 = responder.read_message_1(&msg1)?;
    write_frame(&mut stream.send, &msg2).await?;
    let msg3 = read_message(&mut stream.recv, "message 3").await?;
    let established = responder.read_message_3(&msg3)?;
    Ok(SecureChannel { conn: stream.conn, send: stream.send, recv: stream.recv, established })
}

/// Runs the responder's handshake on `stream` (messages 1 to 3, each within [`MESSAGE_TIMEOUT`]).
pub async fn respond(
    stream: CallStream,
    call_id: CallId,
    params: HandshakeParams,
) -> Result<SecureChannel, ChannelError> {
    answer(await_message_1(stream).await?, call_id, params).await
}

/// Dials `addr`, opens the call stream and writes its header.
pub async fn dial(endpoint: &quinn::Endpoint, addr: SocketAddr, call_id: CallId) -> Result<CallStream, ChannelError> {
    let conn = endpoint.connect(addr, "hail").map_err(ChannelError::net)?.await.map_err(ChannelError::net)?;
    let (mut send, recv) = conn.open_bi().await.map_err(ChannelError::net)?;
    write_header(&mut send, call_id).await?;
    Ok(CallStream { conn, send, recv })
}

/// How long direct candidates have before a media relay path is dialed too.
pub const RELAY_DELAY: Duration = Duration::from_secs(3);

/// Sets up a call's secure channel: dials every candidate while taking the streams the peer's
/// connections bring (`inbound`), and runs the handshake for `role`. Addresses on a media relay
/// (`relayed`, as they become known) are dialed only once [`RELAY_DELAY`] has passed without a
/// channel: a direct path is preferred. Returns when one channel is established (every other
/// connection closed) or everything failed; the caller bounds it in time.
///
/// **One handshake per call.** The caller sends message 1 once, on the first stream it has; the
/// callee answers the first message 1 that arrives and nothing else. A second message 1 for the
/// call fails it with [`ChannelError::SecondHandshake`]: each message 2 carries a fresh ephemeral
/// key, hence a fresh SAS, so answering k of them would give a man in the middle k tries at
/// matching the emoji (`protocols/sas-v1.md`). For the same reason a caller whose one handshake
/// failed does not start another on a later stream: the call fails.
pub async fn establish(
    endpoint: quinn::Endpoint,
    role: impl Into<HandshakeRole>,
    call_id: CallId,
    candidates: Vec<SocketAddr>,
    params: HandshakeParams,
    mut inbound: mpsc::Receiver<CallStream>,
    mut relayed: mpsc::Receiver<SocketAddr>,
) -> Result<SecureChannel, ChannelError> {
    let role = role.into();
    let started = tokio::time::Instant::now();
    let (ready_tx, mut ready_rx) = mpsc::channel::<CallStream>(16);
    let mut relay_ready = Some(ready_tx.clone());
    let mut dials = JoinSet::new();
    for addr in candidates {
        let (endpoint, ready_tx) = (endpoint.clone(), ready_tx.clone());
        dials.spawn(async move {
            match dial(&endpoint, addr, call_id).await {
                Ok(stream) => {
                    let _ = ready_tx.send(stream).await;
                }
                Err(e) => tracing::debug!(%addr, error = %e, "call candidate failed"),
            }
        });
    }
    drop(ready_tx);

    let mut steps: JoinSet<Step> = JoinSet::new();
    let mut handshake = HandshakeSlot::default();
    let mut last_error = ChannelError::Network("no candidate could be reached".into());
    let (mut dialing, mut inbound_open) = (true, true);
    let result = loop {
        let stream = tokio::select! {
            addr = relayed.recv(), if relay_ready.is_some() => {
                match addr {
                    Some(addr) => {
                        let (endpoint, ready_tx) = (endpoint.clone(), relay_ready.clone().expect("checked"));
                        dials.spawn(async move {
                            tokio::time::sleep_until(started + RELAY_DELAY).await;
                            tracing::info!(%addr, "no direct path yet: dialing through the media relay");
                            match dial(&endpoint, addr, call_id).await {
                                Ok(stream) => {
                                    let _ = ready_tx.send(stream).await;
                                }
                                Err(e) => tracing::debug!(%addr, error = %e, "relay candidate failed"),
                            }
                        });
                    }
                    None => relay_ready = None,
                }
                continue;
            }
            stream = ready_rx.recv(), if dialing => match stream {
                Some(stream) => stream,
                None => {
                    dialing = false;
                    continue;
                }
            },
            stream = inbound.recv(), if inbound_open => match stream {
                Some(stream) => stream,
                None => {
                    inbound_open = false;
                    continue;
                }
            },
            Some(done) = steps.join_next(), if !steps.is_empty() => {
                match done {
                    Ok(Step::Message1(first)) => match handshake.message_1() {
                        Ok(()) => {
                            let params = params.clone();
                            steps.spawn(async move { Step::Handshake(answer(first, call_id, params).await) });
                        }
                        Err(e) => {
                            first.stream.conn.close(CLOSE_UNWANTED.into(), b"second handshake");
                            tracing::warn!(%call_id, "a second handshake message 1 arrived for this call: ending it");
                            break Err(e);
                        }
                    },
                    // The call's one handshake finished, well or not: there is no second try.
                    Ok(Step::Handshake(result)) => break result,
                    // A stream that never brought message 1 (the caller picked another, or a probe).
                    Ok(Step::NoMessage1(e)) => last_error = e,
                    Err(_) => {}
                }
                continue;
            }
            else => break Err(last_error.clone()),
        };
        match role {
            HandshakeRole::Initiator => match handshake.message_1() {
                Ok(()) => {
                    let params = params.clone();
                    steps.spawn(async move { Step::Handshake(initiate(stream, call_id, params).await) });
                }
                // The caller sends message 1 on one stream only; later ones are refused.
                Err(_) => stream.conn.close(CLOSE_UNWANTED.into(), b"duplicate"),
            },
            HandshakeRole::Responder => {
                steps.spawn(async move {
                    match await_message_1(stream).await {
                        Ok(first) => Step::Message1(first),
                        Err(e) => Step::NoMessage1(e),
                    }
                });
            }
        }
    };
    dials.abort_all();
    steps.abort_all();
    // Duplicates that are still arriving are refused politely.
    while let Ok(extra) = ready_rx.try_recv() {
        extra.conn.close(CLOSE_UNWANTED.into(), b"duplicate");
    }
    result
}

/// What one task of [`establish`] finished with.
enum Step {
    /// Message 1 arrived on a stream (callee).
    Message1(Message1),
    /// A stream closed or timed out without message 1 (callee): not the handshake's failure.
    NoMessage1(ChannelError),
    /// The call's one handshake finished.
    Handshake(Result<SecureChannel, ChannelError>),
}

/// The rule "one message 1 per call", for either role: the caller sends one, the callee answers
/// one. Sans-IO, so the rule is tested on its own.
#[derive(Debug, Default)]
pub struct HandshakeSlot {
    taken: bool,
}

impl HandshakeSlot {
    /// A message 1 is about to be sent (caller) or answered (callee): `Ok` the first time, then
    /// [`ChannelError::SecondHandshake`].
    pub fn message_1(&mut self) -> Result<(), ChannelError> {
        if std::mem::replace(&mut self.taken, true) {
            return Err(ChannelError::SecondHandshake);
        }
        Ok(())
    }

    /// Whether the call's handshake has started.
    pub fn started(&self) -> bool {
        self.taken
    }
}

/// The largest control frame body the channel carries (`protocols/signaling-v1.md`: the call layer's
/// largest control message).
pub const MAX_CONTROL_FRAME: usize = 4096;

/// Accepts an incoming connection and its call stream; returns the call the header names. The
/// whole accept (QUIC handshake and header) is bounded by [`super::accept::ACCEPT_TIMEOUT`]. A
/// reflect request is answered here (and `None` returned): any node's call endpoint tells a peer
/// which address its packets come from. The daemon uses [`super::accept::accept_calls`], which adds
/// the slot and reflect budgets.
pub async fn accept_call_stream(incoming: quinn::Incoming) -> Result<Option<(CallId, CallStream)>, ChannelError> {
    match tokio::time::timeout(super::accept::ACCEPT_TIMEOUT, super::accept::accept_request(incoming)).await {
        Ok(Ok((StreamRequest::Reflect(nonce), stream))) => {
            super::reflect::answer(stream.conn, stream.send, nonce).await;
            Ok(None)
        }
        Ok(Ok((StreamRequest::Call(call_id), stream))) => Ok(Some((call_id, stream))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ChannelError::Network("no call stream header in time".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_close_reason_reaches_the_user_without_escape_sequences() {
        // What quinn shows for a peer's close: the reason bytes the peer chose.
        let shown = ChannelError::net("closed by peer: 1: \u{1b}[2J\u{1b}[32mVERIFIED\u{1b}[0m\u{202e}evil").to_string();
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{202e}'), "{shown:?}");
        assert!(shown.contains("VERIFIED"), "the words stay, the escapes go: {shown:?}");
    }
}
