//! The link to one remote peer: the candidate race and the secure channel's handshake
//! ([`channel::establish`]), then the QUIC connection it won and the control stream on it.
//!
//! A [`PeerLink`] is the handle the node keeps (one per remote peer); its [`LinkDriver`] is the
//! future that does the work. A link is set up for one call: the call id is in its stream headers
//! and bound into its handshake. [`PeerLink::connect`] only builds the two: nothing is spawned behind
//! the caller's back. The caller spawns the driver (its `JoinHandle` is the caller's to keep or drop:
//! the driver ends by itself; the node drops it) and hears from it through the bounded channel it
//! handed in ([`LinkEvent`]s, wrapped in the caller's own event type).
//!
//! ```text
//!   connect ──► setup: dial candidates, take inbound streams, relay addresses after RELAY_DELAY,
//!               one Noise handshake (bounded by LinkSetup::time_limit)
//!                 ├─ fails ──────────────────────────────► LinkEvent::Failed
//!                 └─ up ─────────────────────────────────► LinkEvent::Up
//!               control: frames in ─────────────────────► LinkEvent::Control
//!                        frames out ◄── send_control
//!                        the peer's side ends ───────────► LinkEvent::Closed
//!               close ──► our side finishes, the peer finishes (or 2 s), the connection closes
//! ```
//!
//! Streams the peer's connections bring, and our media relay addresses, may come before the link
//! exists (the peer may dial before our side has its candidates): a [`LinkInbox`] holds them from
//! the start of the call and is handed to [`PeerLink::connect`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{mpsc, oneshot};

use super::channel::{
    self, CLOSE_DONE, CLOSE_UNWANTED, CallStream, ChannelError, MAX_CONTROL_FRAME, SecureChannel, read_frame,
    write_frame,
};
use crate::call_id::CallId;
use crate::crypto::handshake::{Established, HandshakeParams, HandshakeRole};

/// Streams from the peer's connections that may wait for the link's setup.
const INBOUND_STREAMS: usize = 8;
/// Media relay addresses that may wait for the link's setup.
const RELAY_ADDRESSES: usize = 2;
/// Control frames (and the close) queued for the driver.
const CONTROL_QUEUE: usize = 32;
/// How long a closing link waits for the peer to finish its side of the control stream.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// What a link needs to come up.
pub struct LinkSetup {
    /// The call endpoint to dial from.
    pub endpoint: quinn::Endpoint,
    /// Our side of the handshake.
    pub role: HandshakeRole,
    /// The call the stream headers name (and the handshake binds).
    pub call_id: CallId,
    /// The peer's direct candidates, dialed at once.
    pub candidates: Vec<SocketAddr>,
    /// Our keys and the peer we expect.
    pub params: HandshakeParams,
    /// How long the whole setup may take before it fails.
    pub time_limit: Duration,
}

impl std::fmt::Debug for LinkSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The handshake parameters hold our secret key: not shown.
        f.debug_struct("LinkSetup")
            .field("role", &self.role)
            .field("call_id", &self.call_id)
            .field("candidates", &self.candidates)
            .field("time_limit", &self.time_limit)
            .finish_non_exhaustive()
    }
}

/// What a link tells its owner.
#[derive(Debug)]
pub enum LinkEvent {
    /// The secure channel is up: who answered, the SAS and the frame keys. The path's address is
    /// not here because it can change (QUIC migration): [`PeerLink::remote_address`] reads it live.
    Up(Box<Established>),
    /// A control frame's body arrived (the call layer decodes it).
    Control(Vec<u8>),
    /// The setup failed: nothing answered in time, or the handshake failed. The driver has ended.
    Failed(ChannelError),
    /// The peer's side of the control stream closed or broke.
    Closed(ChannelError),
}

/// Feeds a link's setup: streams from the peer's connections, and our media relay addresses.
#[derive(Debug, Clone)]
pub struct SetupFeed {
    streams: mpsc::Sender<CallStream>,
    relayed: mpsc::Sender<SocketAddr>,
}

impl SetupFeed {
    /// A stream from one of the peer's connections: taken while the link is setting up (closed if
    /// too many wait), refused once the setup is over.
    pub fn offer_stream(&self, stream: CallStream) {
        match self.streams.try_send(stream) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(s)) => s.conn.close(CLOSE_UNWANTED.into(), b"busy"),
            // The setup is over: the call has its channel.
            Err(mpsc::error::TrySendError::Closed(s)) => s.conn.close(CLOSE_UNWANTED.into(), b"no such call"),
        }
    }

    /// Our address on a media relay, dialed if no direct path comes up within
    /// [`channel::RELAY_DELAY`] (ignored once the setup is over).
    pub fn offer_relay(&self, address: SocketAddr) {
        let _ = self.relayed.try_send(address);
    }
}

/// What reaches a link before it connects: streams the peer's connections bring and our media relay
/// addresses. Make one when the call starts; [`PeerLink::connect`] takes it over.
#[derive(Debug)]
pub struct LinkInbox {
    feed: SetupFeed,
    streams: mpsc::Receiver<CallStream>,
    relayed: mpsc::Receiver<SocketAddr>,
}

impl Default for LinkInbox {
    fn default() -> Self {
        let (streams_tx, streams) = mpsc::channel(INBOUND_STREAMS);
        let (relayed_tx, relayed) = mpsc::channel(RELAY_ADDRESSES);
        LinkInbox { feed: SetupFeed { streams: streams_tx, relayed: relayed_tx }, streams, relayed }
    }
}

impl LinkInbox {
    /// Where streams and relay addresses go until the link connects.
    pub fn setup_feed(&self) -> &SetupFeed {
        &self.feed
    }
}

/// What the handle asks of the driver.
#[derive(Debug)]
enum Command {
    Send(Vec<u8>),
    Close,
}

/// The control stream's queue is full (or the link is gone): the frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the link's control queue is full or closed")]
pub struct ControlQueueFull;

/// The link is gone: the frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the link is closed")]
pub struct LinkClosed;

/// The link to one remote peer, as its owner holds it. Built with [`PeerLink::connect`]; dropping
/// it closes the link like [`PeerLink::close`] once every [`ControlSender`] is gone too.
#[derive(Debug)]
pub struct PeerLink {
    call_id: CallId,
    feed: SetupFeed,
    commands: mpsc::Sender<Command>,
    connection: Arc<OnceLock<Connection>>,
}

/// The future that runs a link: spawn it (`tokio::spawn(driver)`); the `JoinHandle` is the caller's
/// to await, abort or drop. It ends by itself once the setup failed or the link closed; aborting it
/// stops the setup or the control stream at once.
pub struct LinkDriver {
    run: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for LinkDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkDriver").finish_non_exhaustive()
    }
}

impl Future for LinkDriver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.run.as_mut().poll(cx)
    }
}

impl PeerLink {
    /// Builds a link and its driver. The driver races the candidates and the inbox's streams for
    /// the call's one handshake ([`channel::establish`]: one message 1 per call, the relay after
    /// [`channel::RELAY_DELAY`]), within `setup.time_limit`, then runs the control stream. It reports
    /// on `events`, each [`LinkEvent`] passed through `wrap` with the link's call id.
    pub fn connect<E: Send + 'static>(
        setup: LinkSetup,
        inbox: LinkInbox,
        events: mpsc::Sender<E>,
        wrap: fn(CallId, LinkEvent) -> E,
    ) -> (PeerLink, LinkDriver) {
        let (commands_tx, commands) = mpsc::channel(CONTROL_QUEUE);
        let connection = Arc::new(OnceLock::new());
        let LinkInbox { feed, streams, relayed } = inbox;
        let link = PeerLink { call_id: setup.call_id, feed, commands: commands_tx, connection: connection.clone() };
        let reporter = Reporter { call_id: setup.call_id, events, wrap };
        let run = drive(setup, streams, relayed, commands, connection, reporter);
        (link, LinkDriver { run: Box::pin(run) })
    }

    /// The call this link was set up for.
    pub fn call_id(&self) -> CallId {
        self.call_id
    }

    /// Where streams from the peer's connections and our relay addresses go (its inbox's feed).
    pub fn setup_feed(&self) -> &SetupFeed {
        &self.feed
    }

    /// Queues a control frame body (at most [`MAX_CONTROL_FRAME`] bytes) without waiting. Frames
    /// queued before [`LinkEvent::Up`] are dropped.
    pub fn send_control(&self, body: Vec<u8>) -> Result<(), ControlQueueFull> {
        self.commands.try_send(Command::Send(body)).map_err(|_| ControlQueueFull)
    }

    /// A handle that sends control frames, waiting for room (for a task that forwards requests).
    pub fn control_sender(&self) -> ControlSender {
        ControlSender { commands: self.commands.clone() }
    }

    /// Closes the link. During setup it stops at once; once up it is graceful: what was queued is
    /// sent, our side of the control stream finishes, and the connection closes when the peer has
    /// finished its side (it has read everything by then) or after two seconds.
    pub fn close(self) {
        let _ = self.commands.try_send(Command::Close);
    }

    /// The QUIC connection, once the link is up (its path and close reason; media takes its share
    /// through [`PeerLink::media`]).
    pub fn connection(&self) -> Option<quinn::Connection> {
        self.connection.get().cloned()
    }

    /// The media's share of the link (its datagrams and one-way streams), once up.
    pub fn media(&self) -> Option<std::sync::Arc<dyn crate::media_link::MediaLink>> {
        let conn = self.connection.get()?.clone();
        Some(std::sync::Arc::new(super::media_port::QuicMediaPort::new(conn)))
    }

    /// The peer's address on the link's path, once up (it follows QUIC migration).
    pub fn remote_address(&self) -> Option<SocketAddr> {
        self.connection.get().map(Connection::remote_address)
    }

    /// QUIC's round-trip time on the link's path, once up.
    pub fn rtt(&self) -> Option<Duration> {
        self.connection.get().map(Connection::rtt)
    }
}

/// Sends control frames on a link, waiting for room in its queue.
#[derive(Debug, Clone)]
pub struct ControlSender {
    commands: mpsc::Sender<Command>,
}

impl ControlSender {
    /// Queues a control frame body, waiting while the queue is full.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), LinkClosed> {
        self.commands.send(Command::Send(body)).await.map_err(|_| LinkClosed)
    }
}

/// Delivers a link's events in its owner's type.
struct Reporter<E> {
    call_id: CallId,
    events: mpsc::Sender<E>,
    wrap: fn(CallId, LinkEvent) -> E,
}

impl<E> Reporter<E> {
    /// Reports `event`; `false` when the owner is gone.
    async fn report(&self, event: LinkEvent) -> bool {
        self.events.send((self.wrap)(self.call_id, event)).await.is_ok()
    }
}

/// The driver: setup, then the control stream.
async fn drive<E>(
    setup: LinkSetup,
    streams: mpsc::Receiver<CallStream>,
    relayed: mpsc::Receiver<SocketAddr>,
    mut commands: mpsc::Receiver<Command>,
    connection: Arc<OnceLock<Connection>>,
    reporter: Reporter<E>,
) {
    let LinkSetup { endpoint, role, call_id, candidates, params, time_limit } = setup;
    let attempt = tokio::time::timeout(
        time_limit,
        channel::establish(endpoint, role, call_id, candidates, params, streams, relayed),
    );
    tokio::pin!(attempt);
    let result = loop {
        tokio::select! {
            result = &mut attempt => {
                break result.unwrap_or_else(|_| Err(ChannelError::Network("no candidate answered in time".into())));
            }
            command = commands.recv() => match command {
                // Nothing is sent before the channel is up.
                Some(Command::Send(_)) => tracing::debug!(%call_id, "a control frame before the channel was up was dropped"),
                // Dropping the setup drops its dials and its connections.
                Some(Command::Close) | None => return,
            },
        }
    };
    let secure = match result {
        Ok(secure) => secure,
        Err(e) => {
            reporter.report(LinkEvent::Failed(e)).await;
            return;
        }
    };
    // The owner may have let go while the handshake finished.
    loop {
        match commands.try_recv() {
            Ok(Command::Send(_)) => {}
            Ok(Command::Close) | Err(mpsc::error::TryRecvError::Disconnected) => {
                secure.conn.close(CLOSE_UNWANTED.into(), b"call over");
                return;
            }
            Err(mpsc::error::TryRecvError::Empty) => break,
        }
    }
    let SecureChannel { conn, send, recv, established } = secure;
    let _ = connection.set(conn.clone());
    if !reporter.report(LinkEvent::Up(Box::new(established))).await {
        conn.close(CLOSE_UNWANTED.into(), b"call over");
        return;
    }
    run_control(conn, send, recv, commands, &reporter).await;
}

/// Runs the control stream of an established link until it closes or is told to: frames that
/// arrive are reported, queued ones are written. Reading and writing run side by side in this
/// task; neither waits for the other.
///
/// Closing is graceful: on [`Command::Close`] (or once every handle is gone) our stream is finished
/// and the connection stays open until the peer finishes its stream too, or for [`CLOSE_LINGER`].
async fn run_control<E>(
    conn: Connection,
    mut send: SendStream,
    mut recv: RecvStream,
    mut commands: mpsc::Receiver<Command>,
    reporter: &Reporter<E>,
) {
    let (eof_tx, mut eof_rx) = oneshot::channel::<ChannelError>();
    let reader = async {
        let reason = loop {
            match read_frame(&mut recv, MAX_CONTROL_FRAME).await {
                Ok(body) => {
                    if !reporter.report(LinkEvent::Control(body)).await {
                        break ChannelError::Network("the node stopped".into());
                    }
                }
                Err(e) => break e,
            }
        };
        let _ = eof_tx.send(reason);
        // Done reading; the writer decides when the link ends.
        std::future::pending::<()>().await;
    };
    let writer = async {
        let mut peer_done = false;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Send(body)) => {
                        if write_frame(&mut send, &body).await.is_err() {
                            break;
                        }
                    }
                    Some(Command::Close) | None => break,
                },
                reason = &mut eof_rx, if !peer_done => {
                    peer_done = true;
                    let reason = reason.unwrap_or_else(|_| ChannelError::Network("closed".into()));
                    reporter.report(LinkEvent::Closed(reason)).await;
                }
            }
        }
        let _ = send.finish();
        if !peer_done {
            let _ = tokio::time::timeout(CLOSE_LINGER, &mut eof_rx).await;
        }
        conn.close(CLOSE_DONE.into(), b"call over");
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}
