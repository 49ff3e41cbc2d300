//! The secure channel of a call: the first bidirectional stream of a QUIC connection, opened by the
//! QUIC client with a header naming the call, then the Noise handshake, then control messages
//! (`protocols/handshake-v1.md`, `protocols/signaling-v1.md`).
//!
//! Both sides dial all of each other's candidates at once; every connection that comes up offers one
//! stream. The caller (the Noise initiator) picks the first stream it has, from either direction, and
//! sends message 1 there; the callee answers on whichever stream message 1 arrives. The other
//! connections are closed.

use std::net::SocketAddr;
use std::time::Duration;

use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::call::signal::{ControlMessage, MAX_CONTROL_MESSAGE};
use crate::call::{CallId, Role};
use crate::crypto::handshake::{EXPORTER_LABEL, Established, HandshakeError, HandshakeParams, Initiator, Responder};

/// The first bytes of a call stream.
pub const STREAM_MAGIC: &[u8; 4] = b"HAIL";
/// The stream header's version.
pub const STREAM_VERSION: u8 = 1;
/// How long a peer may take to send the stream header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
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
}

impl From<HandshakeError> for ChannelError {
    fn from(e: HandshakeError) -> Self {
        ChannelError::Security(Box::new(e))
    }
}

impl ChannelError {
    pub(crate) fn net(e: impl std::fmt::Display) -> Self {
        ChannelError::Network(e.to_string())
    }

    /// Whether this is a security failure (as opposed to a network one).
    pub fn is_security(&self) -> bool {
        matches!(self, ChannelError::Security(_))
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
    mut params: HandshakeParams,
) -> Result<SecureChannel, ChannelError> {
    params.tls_exporter = exporter(&stream.conn, call_id)?;
    let mut nonce = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let (initiator, msg1) = Initiator::start(params, nonce)?;
    write_frame(&mut stream.send, &msg1).await?;
    let msg2 = read_frame(&mut stream.recv, crate::crypto::handshake::MAX_MESSAGE).await?;
    let (msg3, established) = initiator.read_message_2(&msg2)?;
    write_frame(&mut stream.send, &msg3).await?;
    Ok(SecureChannel { conn: stream.conn, send: stream.send, recv: stream.recv, established })
}

/// Runs the responder's handshake on `stream` (waits for message 1 as long as it takes).
pub async fn respond(
    mut stream: CallStream,
    call_id: CallId,
    mut params: HandshakeParams,
) -> Result<SecureChannel, ChannelError> {
    params.tls_exporter = exporter(&stream.conn, call_id)?;
    let mut responder = Responder::new(params)?;
    let msg1 = read_frame(&mut stream.recv, crate::crypto::handshake::MAX_MESSAGE).await?;
    let msg2 = responder.read_message_1(&msg1)?;
    write_frame(&mut stream.send, &msg2).await?;
    let msg3 = read_frame(&mut stream.recv, crate::crypto::handshake::MAX_MESSAGE).await?;
    let established = responder.read_message_3(&msg3)?;
    Ok(SecureChannel { conn: stream.conn, send: stream.send, recv: stream.recv, established })
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
pub async fn establish(
    endpoint: quinn::Endpoint,
    role: Role,
    call_id: CallId,
    candidates: Vec<SocketAddr>,
    params: HandshakeParams,
    mut inbound: mpsc::Receiver<CallStream>,
    mut relayed: mpsc::Receiver<SocketAddr>,
) -> Result<SecureChannel, ChannelError> {
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

    let mut handshakes: JoinSet<Result<SecureChannel, ChannelError>> = JoinSet::new();
    let mut last_error = ChannelError::Network("no candidate could be reached".into());
    let (mut dialing, mut inbound_open) = (true, true);
    let result = loop {
        tokio::select! {
            addr = relayed.recv(), if relay_ready.is_some() => match addr {
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
            },
            stream = ready_rx.recv(), if dialing => match stream {
                Some(stream) => start_handshake(&mut handshakes, role, call_id, &params, stream),
                None => dialing = false,
            },
            stream = inbound.recv(), if inbound_open => match stream {
                Some(stream) => start_handshake(&mut handshakes, role, call_id, &params, stream),
                None => inbound_open = false,
            },
            Some(done) = handshakes.join_next(), if !handshakes.is_empty() => match done {
                Ok(Ok(channel)) => break Ok(channel),
                Ok(Err(e)) if e.is_security() => break Err(e),
                Ok(Err(e)) => last_error = e,
                Err(_) => {}
            },
            else => break Err(last_error.clone()),
        }
    };
    dials.abort_all();
    handshakes.abort_all();
    // Duplicates that are still arriving are refused politely.
    while let Ok(extra) = ready_rx.try_recv() {
        extra.conn.close(CLOSE_UNWANTED.into(), b"duplicate");
    }
    result
}

fn start_handshake(
    handshakes: &mut JoinSet<Result<SecureChannel, ChannelError>>,
    role: Role,
    call_id: CallId,
    params: &HandshakeParams,
    stream: CallStream,
) {
    let params = params.clone();
    match role {
        Role::Caller => {
            // The caller sends message 1 on one stream only; later ones wait their turn.
            if handshakes.is_empty() {
                handshakes.spawn(initiate(stream, call_id, params));
            } else {
                stream.conn.close(CLOSE_UNWANTED.into(), b"duplicate");
            }
        }
        Role::Callee => {
            handshakes.spawn(respond(stream, call_id, params));
        }
    }
}

/// What a running channel reports to the node.
#[derive(Debug)]
pub enum ChannelEvent {
    /// A control message arrived.
    Control(ControlMessage),
    /// The peer's side of the channel closed or broke.
    Closed(String),
}

/// What the node asks of a running channel.
#[derive(Debug)]
pub enum ChannelCommand {
    /// Send this.
    Send(ControlMessage),
    /// Flush, then close (the peer or a short linger closes the connection).
    Close,
}

/// Runs the control stream of an established channel until it closes or is told to. Reports what
/// arrives on `events` and takes commands from `commands`.
///
/// Closing is graceful: on [`ChannelCommand::Close`] our stream is finished and the connection
/// stays open until the peer finishes its stream too (it has read everything we sent by then), or
/// for at most two seconds.
pub async fn run_control(
    channel: SecureChannel,
    mut commands: mpsc::Receiver<ChannelCommand>,
    events: mpsc::Sender<ChannelEvent>,
) {
    let SecureChannel { conn, mut send, mut recv, .. } = channel;
    let (eof_tx, mut eof_rx) = tokio::sync::oneshot::channel::<String>();
    let reader_events = events.clone();
    let reader = tokio::spawn(async move {
        let reason = loop {
            match read_frame(&mut recv, MAX_CONTROL_MESSAGE).await {
                Ok(body) => match ControlMessage::decode(&body) {
                    Ok(msg) => {
                        if reader_events.send(ChannelEvent::Control(msg)).await.is_err() {
                            break "the node stopped".to_owned();
                        }
                    }
                    // A malformed message from an authenticated peer: note it, keep the call.
                    Err(e) => tracing::warn!(error = %e, "ignored a malformed control message"),
                },
                Err(e) => break e.to_string(),
            }
        };
        let _ = eof_tx.send(reason);
    });
    let mut peer_done = false;
    loop {
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(ChannelCommand::Send(msg)) => {
                    if send.write_all(&msg.encode()).await.is_err() {
                        break;
                    }
                }
                Some(ChannelCommand::Close) | None => break,
            },
            reason = &mut eof_rx, if !peer_done => {
                peer_done = true;
                let reason = reason.unwrap_or_else(|_| "closed".into());
                let _ = events.send(ChannelEvent::Closed(reason)).await;
            }
        }
    }
    let _ = send.finish();
    if !peer_done {
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut eof_rx).await;
    }
    conn.close(CLOSE_DONE.into(), b"call over");
    reader.abort();
}

/// Accepts an incoming connection and its call stream; returns the call the header names. Bounded by
/// [`HEADER_TIMEOUT`] after the QUIC handshake. A reflect request is answered here (and `None`
/// returned): any node's call endpoint tells a peer which address its packets come from.
pub async fn accept_call_stream(incoming: quinn::Incoming) -> Result<Option<(CallId, CallStream)>, ChannelError> {
    let conn = incoming.await.map_err(ChannelError::net)?;
    let accept = async {
        let (send, mut recv) = conn.accept_bi().await.map_err(ChannelError::net)?;
        let request = read_request(&mut recv).await?;
        Ok::<_, ChannelError>((request, send, recv))
    };
    match tokio::time::timeout(HEADER_TIMEOUT, accept).await {
        Ok(Ok((StreamRequest::Reflect(nonce), send, _))) => {
            super::reflect::answer(conn, send, nonce).await;
            Ok(None)
        }
        Ok(Ok((StreamRequest::Call(call_id), send, recv))) => Ok(Some((call_id, CallStream { conn, send, recv }))),
        Ok(Err(e)) => {
            conn.close(CLOSE_UNWANTED.into(), b"bad call stream");
            Err(e)
        }
        Err(_) => {
            conn.close(CLOSE_UNWANTED.into(), b"no call stream");
            Err(ChannelError::Network("no call stream header in time".into()))
        }
    }
}
