//! One endpoint of a QUIC connection, modelled on what quinn does, sans-IO, for the simulator
//! (`sim.rs`): what it sends when, and what it makes of the packets that arrive. The simulator puts
//! each packet on a [`netem`](super::netem) link; nothing here reads a clock or draws a random
//! number.
//!
//! **What is modelled** (RFC 9000/9002 as quinn implements them, simplified):
//! - *Send order*: acknowledgements, then datagrams (audio), then stream resets, then stream bytes by
//!   priority (higher first; the control stream at 0 before video at -1), each stream's lost bytes
//!   before its new ones. Frames of all kinds share packets of up to [`MTU`] bytes.
//! - *Acknowledgements* are frames: they ride the next packet going the other way, or go alone
//!   (an ACK-only packet, neither congestion-controlled nor acknowledged) once two packets wait for
//!   one, a packet came out of order, or the oldest waited [`MAX_ACK_DELAY`]. They cross the
//!   reverse link like any packet (its bottleneck and its loss); each repeats the latest
//!   [`MAX_ACK_RANGES`] ranges received, so a lost one is made good by the next.
//! - *Congestion control*: NewReno under the daemon's floor (`transport::congestion`: the window
//!   never drops below [`FLOOR`], 48 KB, so random loss does not starve audio). The controller's
//!   window starts at [`INITIAL_WINDOW`] and grows by what is acknowledged (slow start up to the
//!   threshold, then one [`MTU`] per window), but not while the sender is application-limited; a
//!   loss halves it once per recovery period, never below [`MIN_WINDOW`]; losses spanning more than
//!   three probe timeouts (an outage) drop it to the minimum. At a call's rates the floor is what
//!   binds: the media's own rate loop, not the window, is what backs off. Packets go out paced
//!   (quinn's pacer: 5/4 of the window per RTT, in bursts of at least ten packets).
//! - *Loss detection*: a packet is lost when one sent three packets later, or 9/8 of an RTT later, is
//!   acknowledged; when nothing comes back, a probe timeout (RTT + 4 × its variance + 25 ms,
//!   doubling) sends up to two probes past the window, carrying the oldest unacknowledged data.
//!   Lost stream bytes are sent again; lost datagrams are not.
//! - *Streams*: bytes in order per stream, duplicates dropped. A reset drops the stream's bytes not
//!   yet sent and those not yet acknowledged (they are never sent again), and reaches the reader
//!   reliably; the reader drops what it held and hears no more of that stream.
//! - *Path stats*: [`QuicConnection::path`] is what quinn's `Connection::stats()` gives the rate
//!   loop: the smoothed RTT (which grows with the queue at a rate-limited bottleneck), the window,
//!   and the cumulative bytes sent (ACK-only packets included), declared lost, and acknowledged
//!   (what hail's congestion controller counts from quinn's `on_ack`).
//!
//! **Not modelled**: the handshake (the connection starts with one RTT sample, the link's base
//! RTT), flow control (its windows are far larger than a GOP), MTU discovery (quinn raises the MTU
//! on a clean path; here packets stay at 1200 bytes), ECN, Cubic (quinn's default; NewReno reacts to
//! loss the same way, a little harder, and under the floor neither binds).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use hail::media::rate::PathSample;
pub use hail::transport::congestion::MIN_WINDOW as FLOOR;

/// The largest packet, headers included (quinn's initial MTU).
pub const MTU: usize = 1200;
/// A packet's bytes that are not frames: header, packet number, AEAD tag.
const PACKET_OVERHEAD: usize = 30;
/// A frame's header: type, stream id, offset, length.
const FRAME_OVERHEAD: usize = 10;
/// The window of the controller under the floor at the start (quinn: ten packets).
pub const INITIAL_WINDOW: u64 = 10 * MTU as u64;
/// The least window of the controller under the floor (quinn: two packets).
pub const MIN_WINDOW: u64 = 2 * MTU as u64;
/// A packet is lost when one sent this many packets after it is acknowledged.
const PACKET_THRESHOLD: u64 = 3;
/// The most a receiver delays an acknowledgement.
pub const MAX_ACK_DELAY: Duration = Duration::from_millis(25);
/// The ranges of packet numbers an acknowledgement repeats, newest first.
pub const MAX_ACK_RANGES: usize = 32;
/// Losses spanning this many probe timeouts are persistent congestion.
const PERSISTENT_CONGESTION: u32 = 3;
/// Datagrams waiting to be sent at most (quinn's default send buffer); the oldest go first.
const DATAGRAM_BUFFER: usize = 1024 * 1024;
/// Probes sent when the probe timeout fires.
const PROBES: u32 = 2;
/// The pacer lets bursts of this many packets through at least, and this many at most.
const MIN_BURST: usize = 10;
const MAX_BURST: usize = 256;
/// The pacer's burst covers this much of an RTT's window (within the bounds above).
const BURST_INTERVAL: Duration = Duration::from_millis(2);

/// The stream that carries messages (signalling, keyframe requests): reliable, in order, before
/// any video.
pub const CONTROL_STREAM: u64 = u64::MAX;
/// The control stream's priority (video streams are below it).
pub const CONTROL_PRIORITY: i32 = 0;

/// What a party hands its connection to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A datagram: lost when its packet is.
    Datagram(Vec<u8>),
    /// A message on the control stream: it arrives, whole and in order with the others.
    Message(Vec<u8>),
    /// Bytes on unidirectional stream `id`, which its first bytes open at `priority` (higher goes
    /// first).
    Stream {
        /// The stream.
        id: u64,
        /// Its priority.
        priority: i32,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Stream `id` is reset: its bytes not yet sent or acknowledged are dropped, and its reader is
    /// told.
    ResetStream {
        /// The stream.
        id: u64,
    },
}

/// Packets received: ranges of packet numbers, newest first, and how long the newest waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFrame {
    /// Inclusive ranges, newest first.
    pub ranges: Vec<(u64, u64)>,
    /// Time between the newest packet's arrival and this frame's sending.
    pub delay: Duration,
}

/// What a packet carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Packets the sender of this one received.
    Ack(AckFrame),
    /// An unreliable datagram.
    Datagram(Vec<u8>),
    /// Bytes of stream `id` from `offset` on.
    Stream {
        /// The stream.
        id: u64,
        /// Where in the stream they go.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Stream `id` was reset by its sender.
    Reset {
        /// The stream.
        id: u64,
    },
    /// Nothing but a request for an acknowledgement (a probe with nothing to carry).
    Ping,
}

impl Frame {
    /// Bytes on the wire.
    fn len(&self) -> usize {
        match self {
            Frame::Ack(a) => FRAME_OVERHEAD + 4 * a.ranges.len(),
            Frame::Datagram(b) | Frame::Stream { bytes: b, .. } => FRAME_OVERHEAD + b.len(),
            Frame::Reset { .. } => FRAME_OVERHEAD,
            Frame::Ping => 1,
        }
    }
}

/// A packet on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Its number (never reused).
    pub number: u64,
    /// Its size, headers included: what the link carries.
    pub len: usize,
    /// What it carries.
    pub frames: Vec<Frame>,
}

impl Packet {
    /// Anything but acknowledgements: the receiver acknowledges it, the sender waits for that.
    fn ack_eliciting(&self) -> bool {
        self.frames.iter().any(|f| !matches!(f, Frame::Ack(_)))
    }
}

/// What a party hears from its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A datagram.
    Datagram(Vec<u8>),
    /// A whole message from the control stream, in order.
    Message(Vec<u8>),
    /// Something on the peer's stream `id`.
    Stream {
        /// The stream.
        id: u64,
        /// What.
        event: StreamEvent,
    },
}

/// What happens on a stream, as its reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The next bytes, in order.
    Data(Vec<u8>),
    /// The sender reset it: nothing more comes.
    Reset,
}

/// What a packet carried that is sent again if it is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    Stream { id: u64, offset: u64, end: u64 },
    Reset(u64),
}

/// A packet sent and neither acknowledged nor declared lost.
#[derive(Debug)]
struct Sent {
    time: Instant,
    len: usize,
    resend: Vec<Resend>,
}

/// One stream's sending side.
#[derive(Debug)]
struct SendStream {
    priority: i32,
    /// Every byte written, from offset 0 (a video stream lives for one GOP).
    data: Vec<u8>,
    /// The offset of the first byte never sent.
    unsent: u64,
    /// Ranges to send again (lost, or probed), by start: sent before new bytes, lowest first.
    resend: BTreeMap<u64, u64>,
}

impl SendStream {
    fn has_data(&self) -> bool {
        !self.resend.is_empty() || self.unsent < self.data.len() as u64
    }

    fn add_resend(&mut self, offset: u64, end: u64) {
        let e = self.resend.entry(offset).or_insert(end);
        *e = (*e).max(end);
    }

    /// Up to `room` bytes to send next: where they go, and what they are.
    fn take(&mut self, room: usize) -> Option<(u64, Vec<u8>)> {
        let (offset, end, again) = match self.resend.pop_first() {
            Some((offset, end)) => (offset, end, true),
            None if self.unsent < self.data.len() as u64 => (self.unsent, self.data.len() as u64, false),
            None => return None,
        };
        let n = (end - offset).min(room as u64);
        if again && offset + n < end {
            self.add_resend(offset + n, end);
        }
        // New bytes: what does not fit stays unsent.
        self.unsent = self.unsent.max(offset + n);
        Some((offset, self.data[offset as usize..(offset + n) as usize].to_vec()))
    }
}

/// The RTT estimate (RFC 9002 §5).
#[derive(Debug, Clone, Copy)]
struct Rtt {
    smoothed: Duration,
    var: Duration,
    latest: Duration,
    min: Duration,
}

impl Rtt {
    /// After the handshake, whose round trip took `first`.
    fn new(first: Duration) -> Self {
        Rtt { smoothed: first, var: first / 2, latest: first, min: first }
    }

    /// A sample `latest` long, of which the peer held the acknowledgement `ack_delay`.
    fn update(&mut self, latest: Duration, ack_delay: Duration) {
        self.latest = latest;
        self.min = self.min.min(latest);
        let ack_delay = ack_delay.min(MAX_ACK_DELAY);
        let sample = if latest >= self.min + ack_delay { latest - ack_delay } else { latest };
        let diff = if self.smoothed > sample { self.smoothed - sample } else { sample - self.smoothed };
        self.var = (self.var * 3 + diff) / 4;
        self.smoothed = (self.smoothed * 7 + sample) / 8;
    }

    /// The probe timeout before backing off.
    fn pto(&self) -> Duration {
        self.smoothed + (self.var * 4).max(Duration::from_millis(1)) + MAX_ACK_DELAY
    }
}

/// The quinn pacer: tokens at 5/4 of the window per RTT, a bucket of at least [`MIN_BURST`]
/// packets.
#[derive(Debug)]
struct Pacer {
    tokens: f64,
    last: Option<Instant>,
}

impl Pacer {
    fn rate(window: u64, rtt: Duration) -> f64 {
        1.25 * window as f64 / rtt.as_secs_f64().max(0.001)
    }

    fn capacity(window: u64, rtt: Duration) -> f64 {
        let burst = window as f64 * BURST_INTERVAL.as_secs_f64() / rtt.as_secs_f64().max(0.001);
        burst.clamp((MIN_BURST * MTU) as f64, (MAX_BURST * MTU) as f64)
    }

    /// How long until a full packet may go, after refilling up to `now`.
    fn wait(&mut self, now: Instant, window: u64, rtt: Duration) -> Option<Duration> {
        let cap = Self::capacity(window, rtt);
        let elapsed = self.last.map_or(f64::INFINITY, |l| now.saturating_duration_since(l).as_secs_f64());
        self.tokens = (self.tokens + elapsed * Self::rate(window, rtt)).min(cap);
        self.last = Some(now);
        let short = MTU as f64 - self.tokens;
        (short > 0.0).then(|| Duration::from_secs_f64(short / Self::rate(window, rtt)) + Duration::from_micros(1))
    }
}

/// What a connection did, for tests to look at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Packets sent (probes and ACK-only packets included).
    pub packets: u64,
    /// ACK-only packets among them.
    pub ack_only: u64,
    /// Packets declared lost.
    pub lost_packets: u64,
    /// Times the controller's window was cut for loss (once per recovery period).
    pub congestion_events: u64,
    /// Times losses spanned an outage and the controller's window fell to its minimum.
    pub persistent_congestion: u64,
    /// Probe timeouts that fired.
    pub probe_timeouts: u64,
    /// Datagrams dropped: too large for a packet, or pushed out of a full buffer.
    pub datagrams_dropped: u64,
    /// Streams reset.
    pub resets: u64,
}

/// The sending side: what waits to go, what is in flight, the window and the timers.
#[derive(Debug)]
struct Sending {
    datagrams: VecDeque<Vec<u8>>,
    datagram_bytes: usize,
    resets: VecDeque<u64>,
    streams: BTreeMap<u64, SendStream>,
    sent: BTreeMap<u64, Sent>,
    next_number: u64,
    in_flight: u64,
    window: u64,
    ssthresh: u64,
    recovery_start: Option<Instant>,
    rtt: Rtt,
    largest_acked: Option<u64>,
    loss_time: Option<Instant>,
    last_sent: Option<Instant>,
    pto_count: u32,
    probes: u32,
    pacer: Pacer,
    pace_until: Option<Instant>,
    app_limited: bool,
    sent_bytes: u64,
    lost_bytes: u64,
    acked_bytes: u64,
    stats: ConnectionStats,
}

/// One stream's receiving side: bytes put back in order.
#[derive(Debug, Default)]
struct RecvStream {
    next: u64,
    ahead: BTreeMap<u64, Vec<u8>>,
}

impl RecvStream {
    /// The bytes at `offset`: what is now in order.
    fn push(&mut self, offset: u64, bytes: Vec<u8>) -> Vec<u8> {
        let end = offset + bytes.len() as u64;
        if end <= self.next {
            return Vec::new();
        }
        if offset > self.next {
            let e = self.ahead.entry(offset).or_default();
            if bytes.len() > e.len() {
                *e = bytes;
            }
            return Vec::new();
        }
        let mut out = bytes[(self.next - offset) as usize..].to_vec();
        self.next = end;
        while let Some(entry) = self.ahead.first_entry() {
            let at = *entry.key();
            if at > self.next {
                break;
            }
            let b = entry.remove();
            let e = at + b.len() as u64;
            if e > self.next {
                out.extend_from_slice(&b[(self.next - at) as usize..]);
                self.next = e;
            }
        }
        out
    }
}

/// The receiving side: the peer's streams, and what to acknowledge.
#[derive(Debug, Default)]
struct Receiving {
    streams: BTreeMap<u64, RecvStream>,
    reset: BTreeSet<u64>,
    control: Vec<u8>,
    /// Packet numbers received, as inclusive ranges by start (the newest [`MAX_ACK_RANGES`] × 2).
    received: BTreeMap<u64, u64>,
    /// The newest packet received, and when.
    largest: Option<(u64, Instant)>,
    /// Ack-eliciting packets received since the last acknowledgement went out.
    unacked: u32,
    /// An acknowledgement must go at once (two packets wait, or one came out of order).
    ack_now: bool,
    /// When the oldest unacknowledged packet has waited long enough.
    ack_deadline: Option<Instant>,
}

impl Receiving {
    fn contains(&self, n: u64) -> bool {
        self.received.range(..=n).next_back().is_some_and(|(_, &end)| n <= end)
    }

    /// Notes packet `n`; false if it came before (a duplicate).
    fn insert(&mut self, n: u64) -> bool {
        if self.contains(n) {
            return false;
        }
        let before = self.received.range(..n).next_back().map(|(&s, &e)| (s, e));
        let (mut start, mut end) = (n, n);
        if let Some((s, e)) = before.filter(|(_, e)| e + 1 == n) {
            self.received.remove(&s);
            (start, end) = (s, e.max(n));
        }
        if let Some(e) = self.received.remove(&(n + 1)) {
            end = e;
        }
        self.received.insert(start, end);
        while self.received.len() > 2 * MAX_ACK_RANGES {
            self.received.pop_first();
        }
        true
    }

    /// The acknowledgement to send at `now`, if one is owed.
    fn ack_frame(&self, now: Instant) -> Option<AckFrame> {
        if self.unacked == 0 {
            return None;
        }
        let (_, at) = self.largest?;
        let ranges = self.received.iter().rev().take(MAX_ACK_RANGES).map(|(&s, &e)| (s, e)).collect();
        Some(AckFrame { ranges, delay: now.saturating_duration_since(at) })
    }

    fn ack_sent(&mut self) {
        self.unacked = 0;
        self.ack_now = false;
        self.ack_deadline = None;
    }

    fn ack_due(&self, now: Instant) -> bool {
        self.unacked > 0 && (self.ack_now || self.ack_deadline.is_some_and(|t| t <= now))
    }
}

/// One endpoint of a QUIC connection (see the module docs).
#[derive(Debug)]
pub struct QuicConnection {
    tx: Sending,
    rx: Receiving,
}

impl QuicConnection {
    /// An endpoint whose handshake measured a round trip of `rtt`.
    pub fn new(rtt: Duration) -> Self {
        let tx = Sending {
            datagrams: VecDeque::new(),
            datagram_bytes: 0,
            resets: VecDeque::new(),
            streams: BTreeMap::new(),
            sent: BTreeMap::new(),
            next_number: 0,
            in_flight: 0,
            window: INITIAL_WINDOW,
            ssthresh: u64::MAX,
            recovery_start: None,
            rtt: Rtt::new(rtt.max(Duration::from_millis(1))),
            largest_acked: None,
            loss_time: None,
            last_sent: None,
            pto_count: 0,
            probes: 0,
            pacer: Pacer { tokens: 0.0, last: None },
            pace_until: None,
            app_limited: true,
            sent_bytes: 0,
            lost_bytes: 0,
            acked_bytes: 0,
            stats: ConnectionStats::default(),
        };
        QuicConnection { tx, rx: Receiving::default() }
    }

    /// The congestion window: the controller's, or the floor.
    pub fn window(&self) -> u64 {
        self.tx.window.max(FLOOR)
    }

    /// The path as quinn's stats give it to the rate loop.
    pub fn path(&self) -> PathSample {
        PathSample {
            rtt: self.tx.rtt.smoothed,
            cwnd: self.window(),
            sent_bytes: self.tx.sent_bytes,
            lost_bytes: self.tx.lost_bytes,
            acked_bytes: Some(self.tx.acked_bytes),
        }
    }

    /// What the connection did.
    pub fn stats(&self) -> ConnectionStats {
        self.tx.stats
    }

    /// Takes what a party sends.
    pub fn send(&mut self, payload: Payload) {
        match payload {
            Payload::Datagram(bytes) => self.send_datagram(bytes),
            Payload::Message(bytes) => {
                let len = u32::try_from(bytes.len()).expect("a message under 4 GiB");
                self.write(CONTROL_STREAM, CONTROL_PRIORITY, &len.to_be_bytes());
                self.write(CONTROL_STREAM, CONTROL_PRIORITY, &bytes);
            }
            Payload::Stream { id, priority, bytes } => self.write(id, priority, &bytes),
            Payload::ResetStream { id } => {
                if self.tx.streams.remove(&id).is_some() {
                    self.tx.resets.push_back(id);
                    self.tx.stats.resets += 1;
                }
            }
        }
    }

    /// Queues a datagram (dropped if no packet can hold it; the oldest waiting one is dropped when
    /// the buffer is full).
    fn send_datagram(&mut self, bytes: Vec<u8>) {
        let tx = &mut self.tx;
        if bytes.len() + FRAME_OVERHEAD > MTU - PACKET_OVERHEAD {
            tx.stats.datagrams_dropped += 1;
            return;
        }
        tx.datagram_bytes += bytes.len();
        tx.datagrams.push_back(bytes);
        while tx.datagram_bytes > DATAGRAM_BUFFER {
            let old = tx.datagrams.pop_front().expect("bytes are held");
            tx.datagram_bytes -= old.len();
            tx.stats.datagrams_dropped += 1;
        }
    }

    /// Writes `bytes` on stream `id` (opened by its first bytes at `priority`).
    fn write(&mut self, id: u64, priority: i32, bytes: &[u8]) {
        let stream = self.tx.streams.entry(id).or_insert_with(|| SendStream {
            priority,
            data: Vec::new(),
            unsent: 0,
            resend: BTreeMap::new(),
        });
        stream.data.extend_from_slice(bytes);
    }

    fn has_pending(&self) -> bool {
        let tx = &self.tx;
        !tx.datagrams.is_empty() || !tx.resets.is_empty() || tx.streams.values().any(SendStream::has_data)
    }

    /// The stream to take bytes from next: the highest priority, then the oldest.
    fn next_stream(&self) -> Option<u64> {
        self.tx
            .streams
            .iter()
            .filter(|(_, s)| s.has_data())
            .max_by_key(|(id, s)| (s.priority, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }

    /// The next packet to put on the link at `now`: data if the window and the pacer let it go
    /// (with an acknowledgement if one is owed), else an acknowledgement alone if one is due.
    pub fn poll_packet(&mut self, now: Instant) -> Option<Packet> {
        let ack = self.rx.ack_frame(now);
        if let Some(packet) = self.poll_data(now, ack.clone()) {
            if ack.is_some() {
                self.rx.ack_sent();
            }
            return Some(packet);
        }
        let ack = ack.filter(|_| self.rx.ack_due(now))?;
        self.rx.ack_sent();
        let frames = vec![Frame::Ack(ack)];
        let packet = self.number(frames);
        self.tx.sent_bytes += packet.len as u64;
        self.tx.stats.ack_only += 1;
        Some(packet)
    }

    fn number(&mut self, frames: Vec<Frame>) -> Packet {
        let len = PACKET_OVERHEAD + frames.iter().map(Frame::len).sum::<usize>();
        let number = self.tx.next_number;
        self.tx.next_number += 1;
        self.tx.stats.packets += 1;
        Packet { number, len, frames }
    }

    /// A packet of data, if the window and the pacer let one go now.
    fn poll_data(&mut self, now: Instant, ack: Option<AckFrame>) -> Option<Packet> {
        let probe = self.tx.probes > 0;
        if probe && !self.has_pending() {
            self.queue_probe();
        }
        if !self.has_pending() && !probe {
            self.tx.app_limited = true;
            return None;
        }
        if !probe {
            if self.tx.in_flight + MTU as u64 > self.window() {
                self.tx.app_limited = false;
                return None;
            }
            let (window, rtt) = (self.window(), self.tx.rtt.smoothed);
            if let Some(wait) = self.tx.pacer.wait(now, window, rtt) {
                self.tx.pace_until = Some(now + wait);
                return None;
            }
        }
        self.tx.probes = self.tx.probes.saturating_sub(1);
        let (mut frames, resend) = self.fill(ack);
        if !frames.iter().any(|f| !matches!(f, Frame::Ack(_))) {
            frames.push(Frame::Ping);
        }
        let packet = self.number(frames);
        let tx = &mut self.tx;
        tx.sent.insert(packet.number, Sent { time: now, len: packet.len, resend });
        tx.in_flight += packet.len as u64;
        tx.sent_bytes += packet.len as u64;
        tx.last_sent = Some(now);
        tx.pacer.tokens -= packet.len as f64;
        Some(packet)
    }

    /// Frames for one packet, in send order.
    fn fill(&mut self, ack: Option<AckFrame>) -> (Vec<Frame>, Vec<Resend>) {
        let mut room = MTU - PACKET_OVERHEAD;
        let (mut frames, mut resend) = (Vec::new(), Vec::new());
        if let Some(ack) = ack {
            let frame = Frame::Ack(ack);
            room -= frame.len();
            frames.push(frame);
        }
        let tx = &mut self.tx;
        while let Some(d) = tx.datagrams.front() {
            if d.len() + FRAME_OVERHEAD > room {
                break;
            }
            let d = tx.datagrams.pop_front().expect("peeked");
            room -= d.len() + FRAME_OVERHEAD;
            tx.datagram_bytes -= d.len();
            frames.push(Frame::Datagram(d));
        }
        while room >= FRAME_OVERHEAD {
            let Some(id) = tx.resets.pop_front() else { break };
            room -= FRAME_OVERHEAD;
            frames.push(Frame::Reset { id });
            resend.push(Resend::Reset(id));
        }
        while room > FRAME_OVERHEAD {
            let Some(id) = self.next_stream() else { break };
            let stream = self.tx.streams.get_mut(&id).expect("chosen from the map");
            let Some((offset, bytes)) = stream.take(room - FRAME_OVERHEAD) else { break };
            room -= FRAME_OVERHEAD + bytes.len();
            resend.push(Resend::Stream { id, offset, end: offset + bytes.len() as u64 });
            frames.push(Frame::Stream { id, offset, bytes });
        }
        (frames, resend)
    }

    /// A probe carries the oldest unacknowledged data again (the packet stays in flight).
    fn queue_probe(&mut self) {
        let Some(oldest) = self.tx.sent.values().next() else { return };
        for r in oldest.resend.clone() {
            self.requeue(r);
        }
    }

    fn requeue(&mut self, r: Resend) {
        match r {
            Resend::Stream { id, offset, end } => {
                if let Some(s) = self.tx.streams.get_mut(&id) {
                    s.add_resend(offset, end);
                }
            }
            Resend::Reset(id) => self.tx.resets.push_back(id),
        }
    }

    fn in_recovery(&self, sent: Instant) -> bool {
        self.tx.recovery_start.is_some_and(|r| sent <= r)
    }

    /// A packet from the peer arrived at `now`: what it delivers, in order. A duplicate delivers
    /// nothing.
    pub fn handle_packet(&mut self, now: Instant, packet: Packet) -> Vec<Delivery> {
        let rx = &mut self.rx;
        if !rx.insert(packet.number) {
            return Vec::new();
        }
        if packet.ack_eliciting() {
            let in_order = rx.largest.is_none_or(|(l, _)| packet.number == l + 1);
            rx.unacked += 1;
            rx.ack_now |= rx.unacked >= 2 || !in_order;
            rx.ack_deadline.get_or_insert(now + MAX_ACK_DELAY);
        }
        if rx.largest.is_none_or(|(l, _)| packet.number > l) {
            rx.largest = Some((packet.number, now));
        }
        let mut out = Vec::new();
        for frame in packet.frames {
            match frame {
                Frame::Ack(ack) => self.handle_ack(now, &ack),
                Frame::Datagram(d) => out.push(Delivery::Datagram(d)),
                Frame::Ping => {}
                Frame::Reset { id } => {
                    if self.rx.reset.insert(id) {
                        self.rx.streams.remove(&id);
                        out.push(Delivery::Stream { id, event: StreamEvent::Reset });
                    }
                }
                Frame::Stream { id, offset, bytes } => {
                    if self.rx.reset.contains(&id) {
                        continue;
                    }
                    let data = self.rx.streams.entry(id).or_default().push(offset, bytes);
                    if data.is_empty() {
                        continue;
                    }
                    if id != CONTROL_STREAM {
                        out.push(Delivery::Stream { id, event: StreamEvent::Data(data) });
                        continue;
                    }
                    let control = &mut self.rx.control;
                    control.extend(data);
                    while control.len() >= 4 {
                        let len = u32::from_be_bytes(control[..4].try_into().expect("4 bytes")) as usize;
                        if control.len() < 4 + len {
                            break;
                        }
                        out.push(Delivery::Message(control[4..4 + len].to_vec()));
                        control.drain(..4 + len);
                    }
                }
            }
        }
        out
    }

    /// The peer acknowledged what `ack` lists.
    fn handle_ack(&mut self, now: Instant, ack: &AckFrame) {
        let mut newly: Vec<u64> = Vec::new();
        for &(lo, hi) in &ack.ranges {
            newly.extend(self.tx.sent.range(lo..=hi).map(|(n, _)| *n));
        }
        let Some(&largest) = newly.iter().max() else { return };
        if self.tx.largest_acked.is_none_or(|l| largest > l) {
            self.tx.largest_acked = Some(largest);
            let sent = self.tx.sent[&largest].time;
            self.tx.rtt.update(now.saturating_duration_since(sent), ack.delay);
        }
        for n in newly {
            let p = self.tx.sent.remove(&n).expect("listed from the map");
            self.tx.in_flight -= p.len as u64;
            self.tx.acked_bytes += p.len as u64;
            if !self.in_recovery(p.time) && !self.tx.app_limited {
                let tx = &mut self.tx;
                if tx.window < tx.ssthresh {
                    tx.window += p.len as u64;
                } else {
                    tx.window += (MTU * p.len) as u64 / tx.window;
                }
            }
        }
        self.tx.pto_count = 0;
        self.detect_lost(now);
    }

    /// Declares lost what the acknowledgements so far say is (RFC 9002 §6.1).
    fn detect_lost(&mut self, now: Instant) {
        self.tx.loss_time = None;
        let Some(largest) = self.tx.largest_acked else { return };
        let rtt = self.tx.rtt;
        let delay = (rtt.latest.max(rtt.smoothed) * 9 / 8).max(Duration::from_millis(1));
        let mut lost = Vec::new();
        for (&n, p) in self.tx.sent.range(..largest) {
            if largest - n >= PACKET_THRESHOLD || p.time + delay <= now {
                lost.push(n);
            } else {
                let at = p.time + delay;
                self.tx.loss_time = Some(self.tx.loss_time.map_or(at, |t| t.min(at)));
            }
        }
        if lost.is_empty() {
            return;
        }
        // Persistent congestion: a run of consecutive packets, all lost, spanning three probe
        // timeouts.
        let span = rtt.pto() * PERSISTENT_CONGESTION;
        let (mut run, mut persistent, mut newest_lost): (Option<(u64, Instant)>, bool, Option<Instant>) =
            (None, false, None);
        for n in lost {
            let p = self.tx.sent.remove(&n).expect("listed from the map");
            self.tx.in_flight -= p.len as u64;
            self.tx.lost_bytes += p.len as u64;
            self.tx.stats.lost_packets += 1;
            newest_lost = Some(newest_lost.map_or(p.time, |t| t.max(p.time)));
            run = match run {
                Some((last, start)) if last + 1 == n => {
                    persistent |= p.time.saturating_duration_since(start) > span;
                    Some((n, start))
                }
                _ => Some((n, p.time)),
            };
            for r in p.resend {
                self.requeue(r);
            }
        }
        let tx = &mut self.tx;
        if newest_lost.is_some_and(|t| tx.recovery_start.is_none_or(|r| t > r)) {
            tx.recovery_start = Some(now);
            tx.window = (tx.window / 2).max(MIN_WINDOW);
            tx.ssthresh = tx.window;
            tx.stats.congestion_events += 1;
        }
        if persistent {
            tx.window = MIN_WINDOW;
            tx.stats.persistent_congestion += 1;
        }
    }

    /// When the probe timeout fires, if anything waits for an acknowledgement.
    fn pto_at(&self) -> Option<Instant> {
        if self.tx.loss_time.is_some() || self.tx.sent.is_empty() {
            return None;
        }
        Some(self.tx.last_sent? + self.tx.rtt.pto() * 2u32.pow(self.tx.pto_count.min(16)))
    }

    /// When [`QuicConnection::handle_timeout`] or [`QuicConnection::poll_packet`] is next due:
    /// loss detection, the probe timeout, the pacer letting a packet go, an acknowledgement owed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ack = self.rx.ack_deadline.filter(|_| self.rx.unacked > 0);
        [self.tx.loss_time, self.pto_at(), self.tx.pace_until, ack].into_iter().flatten().min()
    }

    /// The time [`QuicConnection::poll_timeout`] named has come (then poll packets).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.tx.pace_until.is_some_and(|t| t <= now) {
            self.tx.pace_until = None;
        }
        if self.tx.loss_time.is_some_and(|t| t <= now) {
            self.detect_lost(now);
        } else if self.pto_at().is_some_and(|t| t <= now) {
            self.tx.pto_count += 1;
            self.tx.probes = PROBES;
            self.tx.stats.probe_timeouts += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Everything `c` lets go at `now`.
    fn drain(c: &mut QuicConnection, now: Instant) -> Vec<Packet> {
        std::iter::from_fn(|| c.poll_packet(now)).collect()
    }

    /// Hands `packets` to `c` at `now`; returns what they delivered.
    fn arrive(c: &mut QuicConnection, now: Instant, packets: &[Packet]) -> Vec<Delivery> {
        packets.iter().flat_map(|p| c.handle_packet(now, p.clone())).collect()
    }

    fn stream_bytes(d: &[Delivery]) -> Vec<u8> {
        d.iter()
            .flat_map(|d| match d {
                Delivery::Stream { event: StreamEvent::Data(b), .. } => b.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn datagrams_go_before_stream_bytes_and_the_control_stream_before_video() {
        let (mut a, mut b) = (QuicConnection::new(40 * MS), QuicConnection::new(40 * MS));
        let t0 = Instant::now();
        a.send(Payload::Stream { id: 7, priority: -1, bytes: vec![1; 100] });
        a.send(Payload::Message(b"keyframe".to_vec()));
        a.send(Payload::Datagram(vec![9; 50]));
        let p = drain(&mut a, t0);
        assert_eq!(p.len(), 1);
        assert!(matches!(
            &p[0].frames[..],
            [Frame::Datagram(_), Frame::Stream { id: CONTROL_STREAM, .. }, Frame::Stream { id: 7, .. }]
        ));
        let d = arrive(&mut b, t0 + 20 * MS, &p);
        assert_eq!(d[1], Delivery::Message(b"keyframe".to_vec()));
        assert!(drain(&mut b, t0 + 20 * MS).is_empty(), "one packet waits up to 25 ms for company");
        let ack = drain(&mut b, t0 + 45 * MS);
        assert!(matches!(&ack[..], [Packet { frames, .. }] if matches!(frames[..], [Frame::Ack(_)])), "{ack:?}");
    }

    #[test]
    fn a_lost_packet_is_sent_again_once_three_later_ones_are_acknowledged() {
        let (mut a, mut b) = (QuicConnection::new(40 * MS), QuicConnection::new(40 * MS));
        let t0 = Instant::now();
        a.send(Payload::Stream { id: 1, priority: -1, bytes: vec![5; 6000] });
        let p = drain(&mut a, t0);
        assert_eq!(p.len(), 6, "6000 bytes: six packets");
        // The first is lost; the others arrive 20 ms later, and their acknowledgement 20 ms after.
        let mut got = arrive(&mut b, t0 + 20 * MS, &p[1..]);
        let acks = drain(&mut b, t0 + 20 * MS);
        arrive(&mut a, t0 + 40 * MS, &acks);
        assert_eq!(a.path().lost_bytes, p[0].len as u64, "three later packets acknowledged: lost");
        assert_eq!(a.stats().congestion_events, 1);
        let again = drain(&mut a, t0 + 40 * MS);
        assert!(matches!(again[0].frames[0], Frame::Stream { id: 1, offset: 0, .. }), "{again:?}");
        got.extend(arrive(&mut b, t0 + 60 * MS, &again));
        assert_eq!(stream_bytes(&got), vec![5; 6000], "in order once the hole is filled");
        assert_eq!(arrive(&mut b, t0 + 60 * MS, &again), Vec::new(), "a duplicate delivers nothing");
    }

    #[test]
    fn a_reset_stream_sends_nothing_more_and_its_reader_hears_of_it() {
        let (mut a, mut b) = (QuicConnection::new(40 * MS), QuicConnection::new(40 * MS));
        let t0 = Instant::now();
        a.send(Payload::Stream { id: 1, priority: -1, bytes: vec![1; 3000] });
        let first = a.poll_packet(t0).unwrap();
        a.send(Payload::ResetStream { id: 1 });
        a.send(Payload::Stream { id: 2, priority: -1, bytes: vec![2; 10] });
        let rest = drain(&mut a, t0);
        assert!(matches!(&rest[0].frames[..], [Frame::Reset { id: 1 }, Frame::Stream { id: 2, .. }]), "{rest:?}");
        // The first packet is lost: its bytes belong to a reset stream and are never sent again.
        arrive(&mut b, t0 + 20 * MS, &rest);
        let acks = drain(&mut b, t0 + 50 * MS);
        arrive(&mut a, t0 + 70 * MS, &acks);
        // One later packet acknowledged: the first is lost once 9/8 of an RTT has passed.
        let loss_time = a.poll_timeout().unwrap();
        a.handle_timeout(loss_time);
        assert_eq!(a.stats().lost_packets, 1);
        assert!(drain(&mut a, loss_time).is_empty());
        let mut b = QuicConnection::new(40 * MS);
        let d = arrive(&mut b, t0, &[first]);
        assert!(matches!(&d[..], [Delivery::Stream { id: 1, event: StreamEvent::Data(_) }]));
        let d = arrive(&mut b, t0, &rest[..1]);
        assert_eq!(d[0], Delivery::Stream { id: 1, event: StreamEvent::Reset });
    }

    #[test]
    fn nothing_acknowledged_fires_probes_that_back_off() {
        let mut a = QuicConnection::new(40 * MS);
        let t0 = Instant::now();
        a.send(Payload::Stream { id: 1, priority: -1, bytes: vec![1; 100] });
        drain(&mut a, t0);
        let first = a.poll_timeout().unwrap();
        a.handle_timeout(first);
        let probes = drain(&mut a, first);
        assert!(matches!(probes[0].frames[0], Frame::Stream { id: 1, offset: 0, .. }), "a probe carries the data again");
        let second = a.poll_timeout().unwrap();
        assert!(second - first > first - t0, "the next waits longer: {:?} then {:?}", first - t0, second - first);
    }
}
