//! A deterministic discrete-event simulator for the sans-IO media core: parties exchange datagrams,
//! messages and streams over seeded [`netem`] links in virtual time. No sockets, no threads, no
//! clock: a minute of a call runs in about two seconds, and the same seeds give the same run,
//! packet for packet.
//!
//! A party is anything driven str0m-style: it takes what arrives and timeouts with `now`, and is
//! drained of transmits; it says when it next needs to run. [`AudioParty`] is a call's audio: the
//! daemon's own `MediaSession` (20 ms send and play ticks, a receiver report each second), driven
//! as the media task of `src/media/driver` drives it, over real Opus. [`MediaParty`] is a
//! call's audio and video over one connection, with the rate loop and lip sync (`media_party.rs`).
//!
//! [`CallParty`] is a whole call endpoint: the [`CallSession`] (invite, ringing, answer, keepalive,
//! hangup, idle timeout) over reliable transmits, and its audio once the call is active.
//!
//! What carries a direction's traffic is one of two transports:
//! - **plain** (the default): datagrams go straight onto the link, exact; messages are
//!   retransmitted through the same lossy link until a copy gets through (200 ms, doubling up to
//!   2 s) and arrive in order. No congestion control and no streams: the audio and signalling
//!   tests, whose numbers docs/performance.md quotes, run on it.
//! - **QUIC** ([`Sim::over_quic`]): a model of a quinn connection, one endpoint per party and
//!   peer ([`quic_model::QuicConnection`]: acknowledgements, congestion window, pacing, loss
//!   detection and retransmission, datagrams first, streams with reset), whose path stats each
//!   party gets before its timeouts, as the daemon's media task reads them from quinn.
#![allow(dead_code)]

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

#[path = "gop_streams.rs"]
pub mod gop_streams;
#[path = "media_party.rs"]
mod media_party;
#[path = "netem.rs"]
pub mod netem;
#[path = "quic_model.rs"]
pub mod quic_model;

use hail::call::signal::{ControlMessage, Invite, InviteReply};
use hail::call::{CallEvent, CallId, CallSession, CallState, EndReason, Input, Output, Timeouts, UserAction};
use hail::crypto::frame::FrameKeys;
use hail::crypto::sas::Sas;
use hail::media::audio::{ReceiveStats, SendStats, decode_playout};
use hail::media::codec::opus::{OpusDecoder, OpusEncoder};
use hail::media::io::{AudioSource, ToneSource};
use hail::media::jitter::Playout;
use hail::media::rate::PathSample;
use hail::media::session::{self as media, MediaSession, Now};
use libp2p_identity::PeerId;
#[allow(unused_imports)]
pub use media_party::{MediaParty, Shown};
pub use netem::{Impairment, Netem, NetemStats};
use quic_model::{ConnectionStats, Delivery, Packet, QuicConnection};
pub use quic_model::{Payload, StreamEvent};

/// What a party sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// To which party.
    pub to: usize,
    /// What.
    pub payload: Payload,
}

/// A sans-IO endpoint in the simulation.
pub trait Party {
    /// A datagram from party `from` arrived.
    fn handle_datagram(&mut self, now: Instant, from: usize, bytes: Vec<u8>);
    /// A message from party `from` arrived (in order with its other messages).
    fn handle_message(&mut self, now: Instant, from: usize, bytes: Vec<u8>);
    /// Something happened on party `from`'s stream `stream` (QUIC links only). A party that opens
    /// no streams hears of none.
    fn handle_stream(&mut self, _now: Instant, _from: usize, _stream: u64, _event: StreamEvent) {}
    /// The path to party `to` now, given just before [`Party::handle_timeout`] (QUIC links only).
    fn handle_path(&mut self, _now: Instant, _to: usize, _path: PathSample) {}
    /// The time [`Party::poll_timeout`] named has come.
    fn handle_timeout(&mut self, now: Instant);
    /// The next thing to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When the party next needs [`Party::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
}

/// What happens at a time on a link.
#[derive(Debug)]
enum Event {
    /// A datagram arrives (plain link).
    Datagram(Vec<u8>),
    /// A copy of message `seq` arrives: delivered with every one before it that is in (plain link).
    Reliable(u64),
    /// Message `seq` is sent again (attempt number, the wait after this one) (plain link).
    Retransmit(u64, u32, Duration),
    /// A packet arrives (QUIC link).
    Packet(Packet),
}

/// An event on link `(from, to)` at `at`; `order` breaks ties in the order they were scheduled.
#[derive(Debug)]
struct Scheduled {
    at: Instant,
    order: u64,
    to: usize,
    from: usize,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

/// One direction's messages on a plain link: numbered when sent, delivered in that order.
#[derive(Debug, Default)]
struct ReliableLink {
    next_seq: u64,
    next_delivered: u64,
    unsent: BTreeMap<u64, Vec<u8>>,
    arrived: BTreeMap<u64, Vec<u8>>,
}

/// What carries one direction's traffic (see the module docs): on a QUIC link from `a` to `b`,
/// `a`'s endpoint of the connection (it sends on this link and hears what comes on the other).
#[derive(Debug)]
enum Transport {
    Plain(ReliableLink),
    Quic(Box<QuicConnection>),
}

/// One direction between two parties: what the network does, and what carries the traffic.
#[derive(Debug)]
struct Link {
    imp: Impairment,
    netem: Netem,
    transport: Transport,
}

/// The simulation: parties, the links between them, what is in flight, and virtual time.
pub struct Sim<P> {
    /// The parties, by index.
    pub parties: Vec<P>,
    start: Instant,
    now: Instant,
    links: BTreeMap<(usize, usize), Link>,
    quic: bool,
    in_flight: BinaryHeap<Reverse<Scheduled>>,
    order: u64,
}

/// The first retransmission of a message on a plain link, and the most the wait doubles to.
const RETRANSMIT: Duration = Duration::from_millis(200);
const MAX_RETRANSMIT: Duration = Duration::from_secs(2);
/// Attempts before a message is given up (about two minutes of a dead link).
const MAX_ATTEMPTS: u32 = 64;

/// The most events at one instant before the simulator calls a party broken (a timeout that does
/// not move on).
const MAX_EVENTS_AT_ONE_INSTANT: usize = 100_000;

impl<P: Party> Sim<P> {
    /// A simulation of `parties` starting at `start`; every pair is joined by a clean plain link
    /// until [`Sim::link`] or [`Sim::over_quic`] says otherwise.
    pub fn new(parties: Vec<P>, start: Instant) -> Self {
        Sim { parties, start, now: start, links: BTreeMap::new(), quic: false, in_flight: BinaryHeap::new(), order: 0 }
    }

    /// What the link from `from` to `to` does, with its random choices seeded by `seed`.
    pub fn link(&mut self, from: usize, to: usize, impairment: Impairment, seed: u64) {
        let link = self.link_mut((from, to));
        link.imp = impairment;
        link.netem = Netem::new(seed);
    }

    /// Two parties, 0 and 1, joined both ways by `impairment` (each direction seeded by one of
    /// `seeds`), starting at `start`.
    pub fn pair(a: P, b: P, start: Instant, impairment: Impairment, seeds: (u64, u64)) -> Self {
        let mut sim = Sim::new(vec![a, b], start);
        sim.link(0, 1, impairment, seeds.0);
        sim.link(1, 0, impairment, seeds.1);
        sim
    }

    /// Every link, those set up so far and those to come, carries a modelled QUIC connection
    /// whose handshake measured the link's base RTT (the delays both ways).
    pub fn over_quic(mut self) -> Self {
        self.quic = true;
        let keys: Vec<(usize, usize)> = self.links.keys().copied().collect();
        for key in keys {
            let transport = self.new_transport(key);
            self.links.get_mut(&key).expect("listed").transport = transport;
        }
        self
    }

    fn new_transport(&self, (from, to): (usize, usize)) -> Transport {
        if !self.quic {
            return Transport::Plain(ReliableLink::default());
        }
        let delay = |k| self.links.get(&k).map_or(Duration::ZERO, |l: &Link| l.imp.delay);
        let rtt = delay((from, to)) + delay((to, from));
        Transport::Quic(Box::new(QuicConnection::new(rtt)))
    }

    /// Changes what both directions between parties 0 and 1 do, from the next packet on.
    pub fn set_impairment_both_ways(&mut self, impairment: Impairment) {
        self.set_impairment(0, 1, impairment);
        self.set_impairment(1, 0, impairment);
    }

    /// Changes what the link from `from` to `to` does, from the next packet on.
    pub fn set_impairment(&mut self, from: usize, to: usize, impairment: Impairment) {
        self.link_mut((from, to)).imp = impairment;
    }

    /// What the link from `from` to `to` did.
    pub fn link_stats(&self, from: usize, to: usize) -> NetemStats {
        self.links.get(&(from, to)).map(|l| l.netem.stats()).unwrap_or_default()
    }

    /// What `from`'s QUIC endpoint towards `to` did (`None` on a plain link).
    pub fn quic_stats(&self, from: usize, to: usize) -> Option<ConnectionStats> {
        match &self.links.get(&(from, to))?.transport {
            Transport::Quic(conn) => Some(conn.stats()),
            Transport::Plain(_) => None,
        }
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Runs until virtual time `end`: delivers what arrives and fires timeouts in time order (at
    /// one instant: deliveries first, then the QUIC endpoints' timers, then parties by index).
    pub fn run_until(&mut self, end: Instant) {
        let mut events_now = 0;
        loop {
            self.flush();
            let delivery = self.in_flight.peek().map(|Reverse(e)| e.at);
            let timer = self.parties.iter().filter_map(Party::poll_timeout).min();
            let quic = self.quic_endpoints().filter_map(|(_, c)| c.poll_timeout()).min();
            let Some(next) = [delivery, timer, quic].into_iter().flatten().min() else { break };
            if next > end {
                break;
            }
            if next > self.now {
                self.now = next;
                events_now = 0;
            }
            events_now += 1;
            assert!(events_now < MAX_EVENTS_AT_ONE_INSTANT, "a party keeps asking for {next:?} without moving on");
            while self.in_flight.peek().is_some_and(|Reverse(e)| e.at <= self.now) {
                let Reverse(e) = self.in_flight.pop().expect("peeked");
                self.deliver(e);
            }
            let now = self.now;
            for link in self.links.values_mut() {
                if let Transport::Quic(conn) = &mut link.transport {
                    if conn.poll_timeout().is_some_and(|t| t <= now) {
                        conn.handle_timeout(now);
                    }
                }
            }
            for (i, p) in self.parties.iter_mut().enumerate() {
                if p.poll_timeout().is_some_and(|t| t <= now) {
                    for (&(from, to), link) in &self.links {
                        if let (true, Transport::Quic(conn)) = (from == i, &link.transport) {
                            p.handle_path(now, to, conn.path());
                        }
                    }
                    p.handle_timeout(now);
                }
            }
        }
        self.now = self.now.max(end);
    }

    fn quic_endpoints(&self) -> impl Iterator<Item = (&(usize, usize), &QuicConnection)> {
        self.links.iter().filter_map(|(k, l)| match &l.transport {
            Transport::Quic(conn) => Some((k, &**conn)),
            Transport::Plain(_) => None,
        })
    }

    fn deliver(&mut self, e: Scheduled) {
        let link = (e.from, e.to);
        let now = self.now;
        match e.event {
            Event::Datagram(bytes) => self.parties[e.to].handle_datagram(now, e.from, bytes),
            Event::Reliable(_) => {
                let Transport::Plain(r) = &mut self.link_mut(link).transport else { return };
                let mut ready = Vec::new();
                while let Some(bytes) = r.arrived.remove(&r.next_delivered) {
                    ready.push(bytes);
                    r.next_delivered += 1;
                }
                for bytes in ready {
                    self.parties[e.to].handle_message(now, e.from, bytes);
                }
            }
            Event::Retransmit(seq, attempt, wait) => self.send_reliable(link, seq, attempt, wait),
            Event::Packet(packet) => {
                // The receiving party's endpoint is the one on the link back.
                let Transport::Quic(conn) = &mut self.link_mut((e.to, e.from)).transport else { return };
                for delivery in conn.handle_packet(now, packet) {
                    let party = &mut self.parties[e.to];
                    match delivery {
                        Delivery::Datagram(bytes) => party.handle_datagram(now, e.from, bytes),
                        Delivery::Message(bytes) => party.handle_message(now, e.from, bytes),
                        Delivery::Stream { id, event } => party.handle_stream(now, e.from, id, event),
                    }
                }
            }
        }
    }

    /// Takes every party's transmits and puts them on their links.
    fn flush(&mut self) {
        for from in 0..self.parties.len() {
            while let Some(Transmit { to, payload }) = self.parties[from].poll_transmit() {
                let now = self.now;
                let link = self.link_mut((from, to));
                match (&mut link.transport, payload) {
                    (Transport::Quic(conn), payload) => conn.send(payload),
                    (Transport::Plain(r), Payload::Message(bytes)) => {
                        let seq = r.next_seq;
                        r.next_seq += 1;
                        r.unsent.insert(seq, bytes);
                        self.send_reliable((from, to), seq, 0, RETRANSMIT);
                    }
                    (Transport::Plain(_), Payload::Datagram(bytes)) => {
                        for at in link.netem.send(&link.imp, now, bytes.len()) {
                            self.schedule(at, (from, to), Event::Datagram(bytes.clone()));
                        }
                    }
                    (Transport::Plain(_), payload) => panic!("{payload:?}: streams need QUIC links (Sim::over_quic)"),
                }
            }
        }
        let quic: Vec<(usize, usize)> = self.quic_endpoints().map(|(k, _)| *k).collect();
        for link in quic {
            self.send_packets(link);
        }
    }

    /// Puts on `link` every packet `from`'s QUIC endpoint lets go now (a duplicated copy is
    /// dropped by the receiving endpoint: same packet number).
    fn send_packets(&mut self, (from, to): (usize, usize)) {
        let now = self.now;
        loop {
            let link = self.links.get_mut(&(from, to)).expect("a QUIC link");
            let Transport::Quic(conn) = &mut link.transport else { return };
            let Some(packet) = conn.poll_packet(now) else { return };
            for at in link.netem.send(&link.imp, now, packet.len) {
                self.schedule(at, (from, to), Event::Packet(packet.clone()));
            }
        }
    }

    /// Sends message `seq` on plain `link` now: the first copy that gets through arrives; if none
    /// does, it is sent again after `wait`, which doubles up to [`MAX_RETRANSMIT`].
    fn send_reliable(&mut self, link: (usize, usize), seq: u64, attempt: u32, wait: Duration) {
        let now = self.now;
        let l = self.link_mut(link);
        let Transport::Plain(r) = &mut l.transport else { return };
        let len = r.unsent.get(&seq).map_or(0, Vec::len);
        match l.netem.send(&l.imp, now, len).into_iter().min() {
            Some(at) => {
                if let Some(bytes) = r.unsent.remove(&seq) {
                    r.arrived.insert(seq, bytes);
                }
                self.schedule(at, link, Event::Reliable(seq));
            }
            None if attempt + 1 < MAX_ATTEMPTS => {
                let next = (wait * 2).min(MAX_RETRANSMIT);
                self.schedule(now + wait, link, Event::Retransmit(seq, attempt + 1, next));
            }
            // Given up, as QUIC would close the connection: nothing after it is delivered either.
            None => {}
        }
    }

    fn schedule(&mut self, at: Instant, (from, to): (usize, usize), event: Event) {
        self.order += 1;
        self.in_flight.push(Reverse(Scheduled { at, order: self.order, to, from, event }));
    }

    /// The link from `from` to `to`; one nobody set up is clean, with a fixed seed.
    fn link_mut(&mut self, key: (usize, usize)) -> &mut Link {
        if !self.links.contains_key(&key) {
            let transport = self.new_transport(key);
            let link = Link { imp: Impairment::clean(), netem: Netem::new(default_seed(key.0, key.1)), transport };
            self.links.insert(key, link);
        }
        self.links.get_mut(&key).expect("inserted")
    }
}

/// The seed of a link nobody set up with [`Sim::link`]: fixed per direction, so runs repeat.
fn default_seed(from: usize, to: usize) -> u64 {
    0x5eed ^ ((from as u64) << 32 | to as u64)
}

/// The wall clock at virtual time `at` of a party that started at `epoch`, µs since the Unix epoch.
fn virtual_wall_us(epoch: Instant, at: Instant) -> u64 {
    WALL_EPOCH_US + (at - epoch).as_micros() as u64
}

/// The frame keys of a two-party call, from `caller`'s or the callee's side.
pub fn call_keys(caller: bool) -> FrameKeys {
    FrameKeys::new([7; 32], [9; 32], caller, b"simulated handshake hash")
}

/// A call's audio: the same [`MediaSession`] the daemon's media task drives
/// (`src/media/driver/mod.rs`), driven here the same way, over real Opus, with a tone for a
/// microphone. The wall clock is virtual time from a fixed epoch.
pub struct AudioParty {
    peer: usize,
    session: MediaSession,
    source: Box<dyn AudioSource>,
    encoder: OpusEncoder,
    decoder: OpusDecoder,
    epoch: Instant,
    outbox: std::collections::VecDeque<Vec<u8>>,
    stalled_until: Option<Instant>,
    /// Per playout tick: whether a frame was heard (decoded, or recovered with FEC), or the tick
    /// was concealed or silent (a gap).
    pub played: Vec<bool>,
    /// Every sample played, 20 ms a tick (what a speaker or a file would get: decoded,
    /// recovered, concealed or silent, and shortened where playout accelerated).
    pub heard_pcm: Vec<i16>,
}

/// Microseconds since the Unix epoch at virtual time zero (2026-12-01).
const WALL_EPOCH_US: u64 = 1_796_083_200_000_000;

impl AudioParty {
    /// A party talking to party `peer`, from `caller`'s side of the call, starting at `start`.
    pub fn new(peer: usize, caller: bool, start: Instant) -> Self {
        let keys = call_keys(caller);
        let now = Now { at: start, wall_us: WALL_EPOCH_US };
        AudioParty {
            peer,
            session: MediaSession::new(&keys, 32_000, false, now),
            source: Box::new(ToneSource::new(if caller { 440.0 } else { 660.0 })),
            encoder: OpusEncoder::new(32_000).expect("Opus takes 32 kbps"),
            decoder: OpusDecoder::new().expect("Opus decoder"),
            epoch: start,
            outbox: Default::default(),
            stalled_until: None,
            played: Vec::new(),
            heard_pcm: Vec::new(),
        }
    }

    /// Talks with `source` instead of the tone.
    pub fn with_source(mut self, source: Box<dyn AudioSource>) -> Self {
        self.source = source;
        self
    }

    fn now(&self, at: Instant) -> Now {
        Now { at, wall_us: virtual_wall_us(self.epoch, at) }
    }

    /// The media task stalls until `until` (a loaded machine): its timer does not fire, then it
    /// catches up every tick it missed at once. Datagrams are still taken in.
    pub fn stall_playout(&mut self, until: Instant) {
        self.stalled_until = Some(until);
    }

    /// Ticks heard among the playout ticks in `range` (tick 0 is 10 ms after the start).
    pub fn heard_in(&self, range: std::ops::Range<usize>) -> usize {
        self.played.get(range).map_or(0, |p| p.iter().filter(|h| **h).count())
    }

    /// The sender's counters.
    pub fn send_stats(&self) -> SendStats {
        self.session.send_stats()
    }

    /// The receiver's counters.
    pub fn receive_stats(&self) -> ReceiveStats {
        self.session.receive_stats()
    }

    /// The longest run of playout ticks not heard, between the first and the last heard one.
    pub fn longest_gap(&self) -> usize {
        let Some(first) = self.played.iter().position(|p| *p) else { return 0 };
        let last = self.played.iter().rposition(|p| *p).unwrap_or(first);
        let (mut longest, mut run) = (0, 0);
        for p in &self.played[first..=last] {
            run = if *p { 0 } else { run + 1 };
            longest = longest.max(run);
        }
        longest
    }

    /// Does what the session asks, as the media task does, until it waits for its timeout.
    fn drain(&mut self, at: Instant) {
        let now = self.now(at);
        loop {
            match self.session.poll_output() {
                media::Output::CaptureAudio { capture_us } => {
                    let pcm = Some(self.source.next_frame());
                    self.session.handle_input(now, media::Input::CapturedAudio { pcm, capture_us });
                }
                media::Output::EncodeAudio(job) => {
                    let opus = job.encode_with(&mut self.encoder);
                    self.session.handle_input(now, media::Input::EncodedAudio { job, opus });
                }
                media::Output::DecodeAudio(playout) => {
                    let pcm = decode_playout(&mut self.decoder, &playout);
                    self.played.push(matches!(playout, Playout::Frame { .. } | Playout::Fec { .. }));
                    self.session.handle_input(now, media::Input::DecodedAudio(pcm));
                }
                media::Output::PlayAudio(pcm) => self.heard_pcm.extend_from_slice(&pcm),
                media::Output::Transmit(datagram) => self.outbox.push_back(datagram),
                media::Output::Timeout(_) => return,
                other => unreachable!("an audio-only session asked for {other:?}"),
            }
        }
    }
}

impl Party for AudioParty {
    fn handle_datagram(&mut self, now: Instant, _from: usize, bytes: Vec<u8>) {
        self.session.handle_input(self.now(now), media::Input::Datagram(bytes));
        self.drain(now);
    }

    /// The audio sends no messages: none arrive.
    fn handle_message(&mut self, _now: Instant, _from: usize, _bytes: Vec<u8>) {}

    fn handle_timeout(&mut self, now: Instant) {
        if self.stalled_until.is_some_and(|s| now < s) {
            return;
        }
        self.session.handle_timeout(self.now(now));
        self.drain(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        let bytes = self.outbox.pop_front()?;
        Some(Transmit { to: self.peer, payload: Payload::Datagram(bytes) })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let due = self.session.poll_timeout();
        Some(self.stalled_until.map_or(due, |s| due.max(s)))
    }
}

/// What a [`CallParty`] puts in front of what it sends, to tell the kinds apart.
mod tag {
    pub const MEDIA: u8 = 0;
    pub const INVITE: u8 = 1;
    pub const INVITE_REPLY: u8 = 2;
    /// The caller's side of the secure channel's setup (QUIC + Noise, one round trip here).
    pub const CHANNEL_HELLO: u8 = 3;
    pub const CHANNEL_READY: u8 = 4;
    pub const CONTROL: u8 = 5;
}

/// The emoji both sides of a simulated call see.
pub const SIM_SAS: Sas = Sas([1, 2, 3, 4]);

/// A whole call endpoint: the [`CallSession`] (signalling: invite, ringing, answer, keepalive,
/// hangup, idle timeout) over reliable transmits, and the call's audio ([`AudioParty`]) while it
/// is active. The invite goes straight to the peer (discovery is not simulated); the secure channel
/// comes up after one round trip.
pub struct CallParty {
    peer: usize,
    caller: bool,
    me: PeerId,
    them: PeerId,
    session: Option<CallSession>,
    audio: Option<AudioParty>,
    outbox: std::collections::VecDeque<Transmit>,
    channel_wanted: bool,
    answer_after: Duration,
    answer_at: Option<Instant>,
    hangup_at: Option<Instant>,
    /// Every call event, with when it happened.
    pub events: Vec<(Instant, CallEvent)>,
    /// What the audio heard, kept when the call's media stops.
    pub heard: Vec<bool>,
}

fn sim_peer(n: u8) -> PeerId {
    libp2p_identity::Keypair::ed25519_from_bytes([n.wrapping_add(1); 32]).expect("32 bytes").public().to_peer_id()
}

impl CallParty {
    /// The caller, calling party `peer` at `now`.
    pub fn caller(peer: usize, now: Instant) -> Self {
        let mut p = Self::new(peer, true);
        let session = CallSession::outgoing(CallId([0x5a; 16]), p.them, false, Timeouts::default(), now);
        let invite = session.invite(vec!["192.0.2.1:4000".into()]);
        p.send(tag::INVITE, serde_json::to_vec(&invite).expect("an invite is plain data"));
        p.session = Some(session);
        p.drive(now);
        p
    }

    /// The callee, whose user answers `answer_after` the call starts ringing.
    pub fn callee(peer: usize, answer_after: Duration) -> Self {
        CallParty { answer_after, ..Self::new(peer, false) }
    }

    fn new(peer: usize, caller: bool) -> Self {
        let (me, them) = if caller { (sim_peer(0), sim_peer(1)) } else { (sim_peer(1), sim_peer(0)) };
        CallParty {
            peer,
            caller,
            me,
            them,
            session: None,
            audio: None,
            outbox: Default::default(),
            channel_wanted: false,
            answer_after: Duration::ZERO,
            answer_at: None,
            hangup_at: None,
            events: Vec::new(),
            heard: Vec::new(),
        }
    }

    /// The user hangs up at `at`.
    pub fn hang_up_at(&mut self, at: Instant) {
        self.hangup_at = Some(at);
    }

    /// Where the call is (`None` before an invite arrived).
    pub fn state(&self) -> Option<CallState> {
        self.session.as_ref().map(CallSession::state)
    }

    /// How the call ended, if it did.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.session.as_ref().and_then(|s| s.end_reason().cloned())
    }

    /// The states the call went through, in order.
    pub fn states(&self) -> Vec<CallState> {
        self.events.iter().filter_map(|(_, e)| if let CallEvent::State(s) = e { Some(*s) } else { None }).collect()
    }

    /// The call's audio, while it is active.
    pub fn audio(&self) -> Option<&AudioParty> {
        self.audio.as_ref()
    }

    fn send(&mut self, kind: u8, body: Vec<u8>) {
        let mut bytes = vec![kind];
        bytes.extend(body);
        self.outbox.push_back(Transmit { to: self.peer, payload: Payload::Message(bytes) });
    }

    /// Acts on what the session asks for.
    fn drive(&mut self, now: Instant) {
        while let Some(output) = self.session.as_mut().and_then(CallSession::poll_output) {
            match output {
                Output::OpenChannel { .. } if self.caller => self.send(tag::CHANNEL_HELLO, Vec::new()),
                Output::OpenChannel { .. } => self.channel_wanted = true,
                Output::Send(msg) => self.send(tag::CONTROL, msg.body()),
                Output::CloseChannel => self.stop_media(),
                Output::Event(event) => {
                    if event == CallEvent::State(CallState::Ringing) && !self.caller {
                        self.answer_at = Some(now + self.answer_after);
                    }
                    if event == CallEvent::State(CallState::Active) && self.audio.is_none() {
                        self.audio = Some(AudioParty::new(self.peer, self.caller, now));
                    }
                    if matches!(event, CallEvent::Ended(_)) {
                        self.stop_media();
                    }
                    self.events.push((now, event));
                }
            }
        }
    }

    fn stop_media(&mut self) {
        if let Some(audio) = self.audio.take() {
            self.heard.extend(audio.played);
        }
    }

    fn on_message(&mut self, now: Instant, kind: u8, body: &[u8]) {
        match kind {
            tag::INVITE if self.session.is_none() => {
                let Ok(invite) = serde_json::from_slice::<Invite>(body) else { return };
                let session = CallSession::incoming(
                    invite.call_id,
                    self.them,
                    invite.video,
                    invite.candidates.clone(),
                    invite.sas_table(),
                    Timeouts::default(),
                    now,
                );
                let reply = InviteReply::ringing(vec!["192.0.2.2:4000".into()], invite.sas_table());
                self.send(tag::INVITE_REPLY, serde_json::to_vec(&reply).expect("a reply is plain data"));
                self.session = Some(session);
            }
            tag::INVITE_REPLY => {
                if let (Some(s), Ok(reply)) = (self.session.as_mut(), serde_json::from_slice::<InviteReply>(body)) {
                    s.handle(Input::InviteReplied(reply), now);
                }
            }
            tag::CHANNEL_HELLO if self.channel_wanted => {
                self.channel_wanted = false;
                self.send(tag::CHANNEL_READY, Vec::new());
                if let Some(s) = self.session.as_mut() {
                    s.handle(Input::ChannelUp(SIM_SAS), now);
                }
            }
            tag::CHANNEL_READY => {
                if let Some(s) = self.session.as_mut() {
                    s.handle(Input::ChannelUp(SIM_SAS), now);
                }
            }
            tag::CONTROL => {
                if let (Some(s), Ok(msg)) = (self.session.as_mut(), ControlMessage::decode(body)) {
                    s.handle(Input::Control(msg), now);
                }
            }
            _ => {}
        }
        self.drive(now);
    }
}

impl Party for CallParty {
    fn handle_datagram(&mut self, now: Instant, from: usize, bytes: Vec<u8>) {
        let Some((&kind, body)) = bytes.split_first() else { return };
        if kind == tag::MEDIA {
            if let Some(audio) = self.audio.as_mut() {
                audio.handle_datagram(now, from, body.to_vec());
            }
            return;
        }
        self.on_message(now, kind, body);
    }

    /// Messages carry their kind in front, as datagrams do.
    fn handle_message(&mut self, now: Instant, from: usize, bytes: Vec<u8>) {
        self.handle_datagram(now, from, bytes);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.answer_at.is_some_and(|t| t <= now) {
            self.answer_at = None;
            if let Some(s) = self.session.as_mut() {
                let _ = s.user(UserAction::Answer, now);
            }
        }
        if self.hangup_at.is_some_and(|t| t <= now) {
            self.hangup_at = None;
            if let Some(s) = self.session.as_mut() {
                let _ = s.user(UserAction::Hangup, now);
            }
        }
        if let Some(s) = self.session.as_mut() {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        if let Some(audio) = self.audio.as_mut() {
            if audio.poll_timeout().is_some_and(|t| t <= now) {
                audio.handle_timeout(now);
            }
        }
        self.drive(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.outbox.pop_front() {
            return Some(t);
        }
        let t = self.audio.as_mut()?.poll_transmit()?;
        let Payload::Datagram(datagram) = t.payload else { return Some(t) };
        let mut bytes = vec![tag::MEDIA];
        bytes.extend(datagram);
        Some(Transmit { payload: Payload::Datagram(bytes), ..t })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.answer_at,
            self.hangup_at,
            self.session.as_ref().and_then(CallSession::poll_timeout),
            self.audio.as_ref().and_then(Party::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
