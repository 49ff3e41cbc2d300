//! A deterministic discrete-event simulator for the sans-IO media core: parties exchange datagrams
//! over seeded [`netem`] links in virtual time. No sockets, no threads, no clock: a minute of a
//! call runs in about two seconds, and the same seeds give the same run, packet for packet.
//!
//! A party is anything driven str0m-style: it takes datagrams and timeouts with `now`, and is
//! drained of transmits; it says when it next needs to run. [`AudioParty`] is a call's audio: the
//! daemon's own `MediaSession` (20 ms send and play ticks, a receiver report each second), driven
//! as the media task in `src/media/driver/mod.rs` drives it, over real Opus.
//!
//! [`CallParty`] is a whole call endpoint: the [`CallSession`] (invite, ringing, answer, keepalive,
//! hangup, idle timeout) over reliable transmits, and its audio once the call is active.
//!
//! What the simulator does not model: QUIC's congestion control. Datagrams (audio) are exact;
//! reliable transmits (signalling, the control stream) are retransmitted through the same lossy
//! link until a copy gets through (200 ms, doubling up to 2 s) and arrive in order; video streams
//! are not simulated yet.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

#[path = "netem.rs"]
pub mod netem;

use hail::call::signal::{ControlMessage, Invite, InviteReply};
use hail::call::{CallEvent, CallId, CallSession, CallState, EndReason, Input, Output, Timeouts, UserAction};
use hail::crypto::frame::FrameKeys;
use hail::crypto::sas::Sas;
use hail::media::audio::{ReceiveStats, SendStats, decode_playout};
use hail::media::codec::fake::{FakeVideoDecoder, FakeVideoEncoder};
use hail::media::codec::opus::{OpusDecoder, OpusEncoder};
use hail::media::io::{AudioSource, ToneSource};
use hail::media::jitter::Playout;
use hail::media::session::{self as media, MediaSession, Now};
use hail::media::video::cpu_adaptation::VideoFormat;
use hail::media::video::encoder::EncodeWorker;
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::receiver::{VideoReceiveStats, VideoReceiver};
use hail::media::video::sender::{SenderConfig, VideoSendStats, VideoSender};
use libp2p_identity::PeerId;
pub use netem::{Impairment, Netem, NetemStats};

/// What a party sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// To which party.
    pub to: usize,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Retransmitted until it arrives, in order with the link's other reliable transmits (a QUIC
    /// stream); else a datagram, lost when the link loses it.
    pub reliable: bool,
}

/// A sans-IO endpoint in the simulation.
pub trait Party {
    /// Bytes from party `from` arrived.
    fn handle_datagram(&mut self, now: Instant, from: usize, bytes: Vec<u8>);
    /// The time [`Party::poll_timeout`] named has come.
    fn handle_timeout(&mut self, now: Instant);
    /// The next thing to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// When the party next needs [`Party::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
}

/// What happens at a time on a link.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A datagram arrives.
    Datagram(Vec<u8>),
    /// A copy of reliable transmit `seq` arrives: delivered with every one before it that is in.
    Reliable(u64),
    /// Reliable transmit `seq` is sent again (attempt number, the wait after this one).
    Retransmit(u64, u32, Duration),
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Scheduled {
    at: Instant,
    order: u64,
    to: usize,
    from: usize,
    event: Event,
}

/// One direction's reliable transmits: numbered when sent, delivered in that order.
#[derive(Debug, Default)]
struct ReliableLink {
    next_seq: u64,
    next_delivered: u64,
    unsent: HashMap<u64, Vec<u8>>,
    arrived: std::collections::BTreeMap<u64, Vec<u8>>,
}

/// The simulation: parties, the links between them, the datagrams in flight, and virtual time.
pub struct Sim<P> {
    /// The parties, by index.
    pub parties: Vec<P>,
    start: Instant,
    now: Instant,
    links: HashMap<(usize, usize), (Impairment, Netem)>,
    in_flight: BinaryHeap<Reverse<Scheduled>>,
    order: u64,
    reliable: HashMap<(usize, usize), ReliableLink>,
}

/// The first retransmission of a reliable transmit, and the most the wait doubles to.
const RETRANSMIT: Duration = Duration::from_millis(200);
const MAX_RETRANSMIT: Duration = Duration::from_secs(2);
/// Attempts before a reliable transmit is given up (about two minutes of a dead link).
const MAX_ATTEMPTS: u32 = 64;

/// The most events at one instant before the simulator calls a party broken (a timeout that does
/// not move on).
const MAX_EVENTS_AT_ONE_INSTANT: usize = 100_000;

impl<P: Party> Sim<P> {
    /// A simulation of `parties` starting at `start`; every pair is joined by a clean link until
    /// [`Sim::link`] says otherwise.
    pub fn new(parties: Vec<P>, start: Instant) -> Self {
        Sim {
            parties,
            start,
            now: start,
            links: HashMap::new(),
            in_flight: BinaryHeap::new(),
            order: 0,
            reliable: HashMap::new(),
        }
    }

    /// What the link from `from` to `to` does, with its random choices seeded by `seed`.
    pub fn link(&mut self, from: usize, to: usize, impairment: Impairment, seed: u64) {
        self.links.insert((from, to), (impairment, Netem::new(seed)));
    }

    /// Two parties, 0 and 1, joined both ways by `impairment` (each direction seeded by one of
    /// `seeds`), starting at `start`.
    pub fn pair(a: P, b: P, start: Instant, impairment: Impairment, seeds: (u64, u64)) -> Self {
        let mut sim = Sim::new(vec![a, b], start);
        sim.link(0, 1, impairment, seeds.0);
        sim.link(1, 0, impairment, seeds.1);
        sim
    }

    /// Changes what both directions between parties 0 and 1 do, from the next packet on.
    pub fn set_impairment_both_ways(&mut self, impairment: Impairment) {
        self.set_impairment(0, 1, impairment);
        self.set_impairment(1, 0, impairment);
    }

    /// Changes what the link from `from` to `to` does, from the next packet on.
    pub fn set_impairment(&mut self, from: usize, to: usize, impairment: Impairment) {
        self.links.entry((from, to)).or_insert_with(|| (impairment, Netem::new(default_seed(from, to)))).0 = impairment;
    }

    /// What the link from `from` to `to` did.
    pub fn link_stats(&self, from: usize, to: usize) -> NetemStats {
        self.links.get(&(from, to)).map(|(_, n)| n.stats()).unwrap_or_default()
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

    /// Runs until virtual time `end`: delivers datagrams and fires timeouts in time order (at one
    /// instant: deliveries first, then parties by index).
    pub fn run_until(&mut self, end: Instant) {
        let mut events_now = 0;
        loop {
            self.flush();
            let delivery = self.in_flight.peek().map(|Reverse(e)| e.at);
            let timer = self.parties.iter().filter_map(Party::poll_timeout).min();
            let Some(next) = [delivery, timer].into_iter().flatten().min() else { break };
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
                let link = (e.from, e.to);
                match e.event {
                    Event::Datagram(bytes) => self.parties[e.to].handle_datagram(self.now, e.from, bytes),
                    Event::Reliable(_) => {
                        let r = self.reliable.entry(link).or_default();
                        let mut ready = Vec::new();
                        while let Some(bytes) = r.arrived.remove(&r.next_delivered) {
                            ready.push(bytes);
                            r.next_delivered += 1;
                        }
                        for bytes in ready {
                            self.parties[e.to].handle_datagram(self.now, e.from, bytes);
                        }
                    }
                    Event::Retransmit(seq, attempt, wait) => self.send_reliable(link, seq, attempt, wait),
                }
            }
            for p in &mut self.parties {
                if p.poll_timeout().is_some_and(|t| t <= self.now) {
                    p.handle_timeout(self.now);
                }
            }
        }
        self.now = self.now.max(end);
    }

    /// Takes every party's transmits and puts them on their links.
    fn flush(&mut self) {
        for from in 0..self.parties.len() {
            while let Some(Transmit { to, bytes, reliable }) = self.parties[from].poll_transmit() {
                if reliable {
                    let r = self.reliable.entry((from, to)).or_default();
                    let seq = r.next_seq;
                    r.next_seq += 1;
                    r.unsent.insert(seq, bytes);
                    self.send_reliable((from, to), seq, 0, RETRANSMIT);
                    continue;
                }
                for at in self.link_now((from, to)).send_now(bytes.len()) {
                    self.schedule(at, (from, to), Event::Datagram(bytes.clone()));
                }
            }
        }
    }

    /// Sends reliable transmit `seq` on `link` now: the first copy that gets through arrives;
    /// if none does, it is sent again after `wait`, which doubles up to [`MAX_RETRANSMIT`].
    fn send_reliable(&mut self, link: (usize, usize), seq: u64, attempt: u32, wait: Duration) {
        let len = self.reliable.get(&link).and_then(|r| r.unsent.get(&seq)).map_or(0, Vec::len);
        match self.link_now(link).send_now(len).into_iter().min() {
            Some(at) => {
                let r = self.reliable.entry(link).or_default();
                if let Some(bytes) = r.unsent.remove(&seq) {
                    r.arrived.insert(seq, bytes);
                }
                self.schedule(at, link, Event::Reliable(seq));
            }
            None if attempt + 1 < MAX_ATTEMPTS => {
                let next = (wait * 2).min(MAX_RETRANSMIT);
                self.schedule(self.now + wait, link, Event::Retransmit(seq, attempt + 1, next));
            }
            // Given up, as QUIC would close the connection: nothing after it is delivered either.
            None => {}
        }
    }

    fn schedule(&mut self, at: Instant, (from, to): (usize, usize), event: Event) {
        self.order += 1;
        self.in_flight.push(Reverse(Scheduled { at, order: self.order, to, from, event }));
    }

    fn link_now(&mut self, (from, to): (usize, usize)) -> LinkNow<'_> {
        let (imp, netem) =
            self.links.entry((from, to)).or_insert_with(|| (Impairment::clean(), Netem::new(default_seed(from, to))));
        LinkNow { imp: *imp, netem, now: self.now }
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

/// A link, at the simulation's present.
struct LinkNow<'a> {
    imp: Impairment,
    netem: &'a mut Netem,
    now: Instant,
}

impl LinkNow<'_> {
    fn send_now(&mut self, len: usize) -> Vec<Instant> {
        self.netem.send(&self.imp, self.now, len)
    }
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
    source: ToneSource,
    encoder: OpusEncoder,
    decoder: OpusDecoder,
    epoch: Instant,
    outbox: std::collections::VecDeque<Vec<u8>>,
    stalled_until: Option<Instant>,
    /// Per playout tick: whether a frame was heard (decoded, or recovered with FEC), or the tick
    /// was concealed or silent (a gap).
    pub played: Vec<bool>,
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
            source: ToneSource::new(if caller { 440.0 } else { 660.0 }),
            encoder: OpusEncoder::new(32_000).expect("Opus takes 32 kbps"),
            decoder: OpusDecoder::new().expect("Opus decoder"),
            epoch: start,
            outbox: Default::default(),
            stalled_until: None,
            played: Vec::new(),
        }
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
                    let _pcm = decode_playout(&mut self.decoder, &playout);
                    self.played.push(matches!(playout, Playout::Frame { .. } | Playout::Fec { .. }));
                }
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

    fn handle_timeout(&mut self, now: Instant) {
        if self.stalled_until.is_some_and(|s| now < s) {
            return;
        }
        self.session.handle_timeout(self.now(now));
        self.drain(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        let bytes = self.outbox.pop_front()?;
        Some(Transmit { to: self.peer, bytes, reliable: false })
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
        self.outbox.push_back(Transmit { to: self.peer, bytes, reliable: true });
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
        let mut bytes = vec![tag::MEDIA];
        bytes.extend(t.bytes);
        Some(Transmit { bytes, ..t })
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

/// What a [`VideoParty`] puts in front of what it sends.
mod video_tag {
    /// A record on a GOP stream: GOP number (4 bytes), then the record with its length prefix.
    pub const RECORD: u8 = 0x10;
    /// The receiver asks for a keyframe.
    pub const KEYFRAME_REQUEST: u8 = 0x11;
}

/// A call's video in one direction pair: the sans-IO [`VideoSender`] and [`VideoReceiver`] with the
/// fake AV1 codec (`media::codec::fake`: the test pattern's stamp travels in the unit, so what is
/// shown can be checked), sending the pattern at 30 fps at a fixed bitrate. Records go as reliable
/// transmits (a GOP's stream: retransmitted, in order); keyframe requests go back the same way.
/// Not modelled: the stream reset at a new GOP, congestion control and the bitrate controller.
pub struct VideoParty {
    peer: usize,
    sender: VideoSender,
    worker: EncodeWorker,
    receiver: VideoReceiver,
    decoder: FakeVideoDecoder,
    sending: bool,
    epoch: Instant,
    next_frame: Instant,
    next_check: Instant,
    counter: u32,
    outbox: std::collections::VecDeque<Transmit>,
    /// Every picture shown: when, and the pattern's frame counter read back from it.
    pub shown: Vec<(Instant, u32)>,
    /// Keyframe requests sent.
    pub keyframe_requests: u32,
}

/// The video frame rate of a [`VideoParty`], and how often it looks for pictures due and stalls.
const VIDEO_CHECK: Duration = Duration::from_millis(10);

impl VideoParty {
    /// A party at 320x180, 30 fps, `bitrate` bps, talking to party `peer`; it sends when `sending`.
    pub fn new(peer: usize, caller: bool, sending: bool, bitrate: u32, start: Instant) -> Self {
        let keys = call_keys(caller);
        let format = VideoFormat { width: 320, height: 180, fps: 30 };
        let mut sender = VideoSender::new(&keys, SenderConfig { max_format: format, ..Default::default() });
        sender.set_target_bitrate(bitrate);
        let mut receiver = VideoReceiver::with_external_decoder(&keys);
        receiver.set_remote_sending(true, start);
        VideoParty {
            peer,
            sender,
            worker: EncodeWorker::with_opener(FakeVideoEncoder::open),
            receiver,
            decoder: FakeVideoDecoder::new(),
            sending,
            epoch: start,
            next_frame: start,
            next_check: start,
            counter: 0,
            outbox: Default::default(),
            shown: Vec::new(),
            keyframe_requests: 0,
        }
    }

    fn wall_us(&self, at: Instant) -> u64 {
        virtual_wall_us(self.epoch, at)
    }

    /// The receiver's counters.
    pub fn receive_stats(&self) -> VideoReceiveStats {
        self.receiver.stats()
    }

    /// The sender's counters.
    pub fn send_stats(&self) -> VideoSendStats {
        self.sender.stats()
    }

    /// Pictures shown in `[from, to)`.
    pub fn shown_between(&self, from: Instant, to: Instant) -> usize {
        self.shown.iter().filter(|(t, _)| *t >= from && *t < to).count()
    }

    fn send_frame(&mut self, now: Instant) {
        let capture_us = self.wall_us(now);
        let stamp = Stamp { counter: self.counter, capture_ms: (capture_us / 1000) as u32 };
        self.counter += 1;
        let format = self.sender.format();
        let Some(picture) = pattern::draw(format.width, format.height, stamp) else { return };
        let job = self.sender.begin(now, picture, capture_us);
        let encoded = self.worker.encode(&job);
        for out in self.sender.finish(now, &job, encoded) {
            let mut bytes = vec![video_tag::RECORD];
            bytes.extend_from_slice(&out.gop.to_be_bytes());
            bytes.extend(out.record);
            self.outbox.push_back(Transmit { to: self.peer, bytes, reliable: true });
        }
    }

    fn check(&mut self, now: Instant) {
        let wall = self.wall_us(now);
        while let Some(r) = self.receiver.poll_render(now, wall, None) {
            let counter = pattern::read(&r.picture).map_or(u32::MAX, |s| s.counter);
            self.shown.push((now, counter));
        }
        if self.receiver.poll_keyframe_request(now) {
            self.keyframe_requests += 1;
            self.outbox.push_back(Transmit { to: self.peer, bytes: vec![video_tag::KEYFRAME_REQUEST], reliable: true });
        }
    }
}

impl Party for VideoParty {
    fn handle_datagram(&mut self, now: Instant, _from: usize, bytes: Vec<u8>) {
        match bytes.split_first() {
            Some((&video_tag::RECORD, rest)) if rest.len() >= 8 => {
                let gop = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                // The record's body follows its 4-byte length prefix.
                let body = &rest[8..];
                if let Ok(Some(job)) = self.receiver.accept_record(now, self.wall_us(now), gop, body) {
                    let pictures = self.decoder.decode(&job.av1);
                    self.receiver.on_decoded(now, &job, pictures);
                }
                self.check(now);
            }
            Some((&video_tag::KEYFRAME_REQUEST, _)) => self.sender.on_keyframe_request(now),
            _ => {}
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while self.sending && self.next_frame <= now {
            self.send_frame(now);
            self.next_frame += self.sender.format().interval();
        }
        if self.next_check <= now {
            self.check(now);
            self.next_check = now + VIDEO_CHECK;
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let check = Some(self.next_check);
        let frame = self.sending.then_some(self.next_frame);
        [check, frame].into_iter().flatten().min()
    }
}
