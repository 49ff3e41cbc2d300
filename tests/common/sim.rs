//! A deterministic discrete-event simulator for the sans-IO media core: parties exchange datagrams
//! over seeded [`netem`] links in virtual time. No sockets, no threads, no clock: a minute of a
//! call runs in a fraction of a second, and the same seeds give the same run, packet for packet.
//!
//! A party is anything driven str0m-style: it takes datagrams and timeouts with `now`, and is
//! drained of transmits; it says when it next needs to run. [`AudioParty`] is a call's audio as the
//! audio task drives it today (`src/media/pipeline.rs`: 20 ms send and play ticks, a receiver report
//! each second), over the real Opus codec; a `MediaSession` party replaces it when that exists.
//!
//! What the simulator does not model: QUIC (no congestion control, no retransmission); datagrams
//! are what audio uses, so audio is exact; streams (video) are not simulated yet.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

#[path = "netem.rs"]
pub mod netem;

use hail::crypto::frame::FrameKeys;
use hail::media::audio::{AudioReceiver, AudioSender, Received, ReceiveStats, SendStats};
use hail::media::io::{AudioSource, ToneSource};
use hail::media::jitter::FRAME;
pub use netem::{Impairment, Netem, NetemStats};

/// A sans-IO endpoint in the simulation.
pub trait Party {
    /// A datagram from party `from` arrived.
    fn handle_datagram(&mut self, now: Instant, from: usize, bytes: Vec<u8>);
    /// The time [`Party::poll_timeout`] named has come.
    fn handle_timeout(&mut self, now: Instant);
    /// The next datagram to send: to which party, and what.
    fn poll_transmit(&mut self) -> Option<(usize, Vec<u8>)>;
    /// When the party next needs [`Party::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    at: Instant,
    order: u64,
    to: usize,
    from: usize,
    bytes: Vec<u8>,
}

/// The simulation: parties, the links between them, the datagrams in flight, and virtual time.
pub struct Sim<P> {
    /// The parties, by index.
    pub parties: Vec<P>,
    start: Instant,
    now: Instant,
    links: HashMap<(usize, usize), (Impairment, Netem)>,
    in_flight: BinaryHeap<Reverse<Delivery>>,
    order: u64,
}

/// The most events at one instant before the simulator calls a party broken (a timeout that does
/// not move on).
const MAX_EVENTS_AT_ONE_INSTANT: usize = 100_000;

impl<P: Party> Sim<P> {
    /// A simulation of `parties` starting at `start`; every pair is joined by a clean link until
    /// [`Sim::link`] says otherwise.
    pub fn new(parties: Vec<P>, start: Instant) -> Self {
        Sim { parties, start, now: start, links: HashMap::new(), in_flight: BinaryHeap::new(), order: 0 }
    }

    /// What the link from `from` to `to` does, with its random choices seeded by `seed`.
    pub fn link(&mut self, from: usize, to: usize, impairment: Impairment, seed: u64) {
        self.links.insert((from, to), (impairment, Netem::new(seed)));
    }

    /// Changes what the link from `from` to `to` does, from the next packet on.
    pub fn set_impairment(&mut self, from: usize, to: usize, impairment: Impairment) {
        let seed = 0x5eed ^ ((from as u64) << 32 | to as u64);
        self.links.entry((from, to)).or_insert_with(|| (impairment, Netem::new(seed))).0 = impairment;
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
            let delivery = self.in_flight.peek().map(|Reverse(d)| d.at);
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
            while self.in_flight.peek().is_some_and(|Reverse(d)| d.at <= self.now) {
                let Reverse(d) = self.in_flight.pop().expect("peeked");
                self.parties[d.to].handle_datagram(self.now, d.from, d.bytes);
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
            while let Some((to, bytes)) = self.parties[from].poll_transmit() {
                let seed = 0x5eed ^ ((from as u64) << 32 | to as u64);
                let (imp, netem) = self.links.entry((from, to)).or_insert_with(|| (Impairment::clean(), Netem::new(seed)));
                for at in netem.send(imp, self.now, bytes.len()) {
                    self.order += 1;
                    self.in_flight.push(Reverse(Delivery { at, order: self.order, to, from, bytes: bytes.clone() }));
                }
            }
        }
    }
}

/// The frame keys of a two-party call, from `caller`'s or the callee's side.
pub fn call_keys(caller: bool) -> FrameKeys {
    FrameKeys::new([7; 32], [9; 32], caller, b"simulated handshake hash")
}

/// A call's audio as the audio task drives it (`src/media/pipeline.rs`): a 440 Hz tone sent every
/// 20 ms, playout every 20 ms (10 ms after the sends), a receiver report every second; the peer's
/// reports set the sender's redundancy. The wall clock is virtual time from a fixed epoch.
pub struct AudioParty {
    peer: usize,
    sender: AudioSender,
    receiver: AudioReceiver,
    source: ToneSource,
    epoch: Instant,
    next_send: Instant,
    next_play: Instant,
    next_report: Instant,
    outbox: Vec<Vec<u8>>,
    stalled_until: Option<Instant>,
    /// Per playout tick: whether a frame was heard (decoded or recovered with FEC), or the tick was
    /// concealed or silent (a gap).
    pub played: Vec<bool>,
}

/// Microseconds since the Unix epoch at virtual time zero (2026-12-01).
const WALL_EPOCH_US: u64 = 1_796_083_200_000_000;

impl AudioParty {
    /// A party talking to party `peer`, from `caller`'s side of the call, starting at `start`.
    pub fn new(peer: usize, caller: bool, start: Instant) -> Self {
        let keys = call_keys(caller);
        AudioParty {
            peer,
            sender: AudioSender::new(&keys, 32_000).expect("Opus takes 32 kbps"),
            receiver: AudioReceiver::new(&keys).expect("Opus decoder"),
            source: ToneSource::new(if caller { 440.0 } else { 660.0 }),
            epoch: start,
            next_send: start,
            next_play: start + Duration::from_millis(10),
            next_report: start + Duration::from_secs(1),
            outbox: Vec::new(),
            stalled_until: None,
            played: Vec::new(),
        }
    }

    fn wall_us(&self, now: Instant) -> u64 {
        WALL_EPOCH_US + (now - self.epoch).as_micros() as u64
    }

    /// The playout clock stalls until `until` (a loaded machine): no playout tick runs, then the
    /// missed ones run at once, as tokio's `MissedTickBehavior::Burst` does in the audio task.
    /// Sending and receiving go on.
    pub fn stall_playout(&mut self, until: Instant) {
        self.stalled_until = Some(until);
    }

    fn play_due(&self) -> Instant {
        self.stalled_until.map_or(self.next_play, |s| self.next_play.max(s))
    }

    /// Ticks heard among the playout ticks in `range` (tick 0 is 10 ms after the start).
    pub fn heard_in(&self, range: std::ops::Range<usize>) -> usize {
        self.played.get(range).map_or(0, |p| p.iter().filter(|h| **h).count())
    }

    /// The sender's counters.
    pub fn send_stats(&self) -> SendStats {
        self.sender.stats()
    }

    /// The receiver's counters.
    pub fn receive_stats(&self) -> ReceiveStats {
        self.receiver.stats()
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
}

impl Party for AudioParty {
    fn handle_datagram(&mut self, now: Instant, _from: usize, bytes: Vec<u8>) {
        if let Ok(Received::Report(r)) = self.receiver.on_datagram(&bytes, now) {
            self.sender.on_peer_report(r);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        while self.next_send <= now {
            let pcm = self.source.next_frame();
            let capture = self.wall_us(self.next_send);
            if let Ok(datagram) = self.sender.frame(&pcm, capture) {
                self.outbox.push(datagram);
            }
            self.next_send += FRAME;
        }
        while self.next_play <= now && self.play_due() <= now {
            let concealed = self.receiver.stats().jitter.concealed;
            let pcm = self.receiver.pull(now, self.wall_us(now));
            // Heard: a frame decoded (or recovered with FEC). Not heard: concealment (Opus PLC
            // sustains a steady tone for seconds, so loudness would not tell) or silence.
            let heard = self.receiver.stats().jitter.concealed == concealed && pcm.iter().any(|s| *s != 0);
            self.played.push(heard);
            self.next_play += FRAME;
        }
        while self.next_report <= now {
            let report = self.receiver.report(0);
            self.outbox.push(self.sender.report(&report));
            self.next_report += Duration::from_secs(1);
        }
    }

    fn poll_transmit(&mut self) -> Option<(usize, Vec<u8>)> {
        if self.outbox.is_empty() {
            return None;
        }
        Some((self.peer, self.outbox.remove(0)))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_send.min(self.play_due()).min(self.next_report))
    }
}
