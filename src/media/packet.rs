//! The media datagram format (`protocols/media-v1.md`).
//!
//! ```text
//! datagram  = kind (1) || counter (8, big-endian) || AEAD(ciphertext || tag 16), aad = kind || counter
//! audio     = seq (4) || capture_us (8) || flags (1) || count (1) || count × (back (1) || len (2) || opus)
//! report    = highest_seq (4) || received (4) || lost (4) || loss_permille (2) || jitter_us (4) || buffered_ms (2) || rtt_ms (2)
//!             || extension*
//! extension = type (1) || len (1) || value (len)
//! bursts    = type 0x01, len ≥ 10: bursts (2) || mean_centi (2) || max (2) || recent_mean_centi (2) || recent_p90 (2)
//! ```
//! Audio frame entries: the first is the frame `seq` itself (`back` = 0); the others are copies of
//! frames `seq - back` (loss-adaptive redundancy, spaced as the peer's bursts ask).
//!
//! Report extensions are sent only to a peer whose audio carries [`FLAG_REPORT_EXTENSIONS`]: a
//! parser from before them refuses a report with bytes after `rtt_ms`.

use crate::crypto::frame::{FrameError, FrameOpener, FrameSealer};

/// Datagram kind: audio frames.
pub const KIND_AUDIO: u8 = 0x01;
/// Datagram kind: receiver report.
pub const KIND_REPORT: u8 = 0x02;
/// kind + counter.
pub const HEADER_LEN: usize = 9;
/// The AEAD tag.
pub const TAG_LEN: usize = 16;
/// Most frames in one audio datagram (the frame and three older copies).
pub const MAX_FRAMES: usize = 4;
/// Largest Opus frame accepted.
pub const MAX_OPUS_FRAME: usize = 1275;
/// Flag: the sender's microphone is muted.
pub const FLAG_MUTED: u8 = 0x01;
/// Flag: the sender parses receiver-report extensions (reports to it may carry them).
pub const FLAG_REPORT_EXTENSIONS: u8 = 0x02;
/// Flag (group calls, `protocols/group-media-v1.md`): the sender takes group receiver reports
/// and adapts to them; a member that does not say so gets none (an older one would refuse them).
pub const FLAG_GROUP_REPORTS: u8 = 0x04;
/// Receiver-report extension type: burst statistics ([`BurstReport`]).
pub const EXTENSION_BURSTS: u8 = 0x01;
/// The base receiver report, without extensions.
pub const REPORT_LEN: usize = 22;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than its fields say.
    #[error("truncated media packet")]
    Truncated,
    /// An unknown datagram kind.
    #[error("unknown media datagram kind {0:#04x}")]
    UnknownKind(u8),
    /// A field is out of range.
    #[error("malformed media packet")]
    Malformed,
    /// Replayed, too old, or not authentic.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// One audio datagram's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// The newest frame's sequence number.
    pub seq: u32,
    /// When the newest frame was captured, µs since the Unix epoch, by the sender's clock.
    pub capture_us: u64,
    /// [`FLAG_MUTED`], …
    pub flags: u8,
    /// `(sequence number, Opus bytes)`, newest first.
    pub frames: Vec<(u32, Vec<u8>)>,
}

impl AudioPacket {
    /// The plaintext.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.frames.iter().map(|f| 3 + f.1.len()).sum::<usize>());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.capture_us.to_be_bytes());
        out.push(self.flags);
        let frames: Vec<_> = self.frames.iter().take(MAX_FRAMES).collect();
        out.push(frames.len() as u8);
        for (seq, data) in frames {
            out.push(self.seq.wrapping_sub(*seq).min(255) as u8);
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    /// Parses a plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, PacketError> {
        let mut r = Reader(bytes);
        let seq = r.u32()?;
        let capture_us = r.u64()?;
        let flags = r.u8()?;
        let count = r.u8()? as usize;
        if count == 0 || count > MAX_FRAMES {
            return Err(PacketError::Malformed);
        }
        let mut frames = Vec::with_capacity(count);
        for _ in 0..count {
            let back = r.u8()? as u32;
            let len = r.u16()? as usize;
            if len > MAX_OPUS_FRAME {
                return Err(PacketError::Malformed);
            }
            let seq_of = seq.checked_sub(back).ok_or(PacketError::Malformed)?;
            frames.push((seq_of, r.take(len)?.to_vec()));
        }
        if !r.0.is_empty() || frames[0].0 != seq {
            return Err(PacketError::Malformed);
        }
        Ok(AudioPacket { seq, capture_us, flags, frames })
    }
}

/// What the receiver of our audio tells us about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// Highest sequence number received.
    pub highest_seq: u32,
    /// Frames received so far.
    pub received: u32,
    /// Frames lost so far (never received by their turn).
    pub lost: u32,
    /// Loss over the last report interval, per mille (before redundancy and FEC).
    pub loss_permille: u16,
    /// Interarrival jitter, µs.
    pub jitter_us: u32,
    /// Jitter buffer delay, ms.
    pub buffered_ms: u16,
    /// Round-trip time the receiver's QUIC connection measures, ms.
    pub rtt_ms: u16,
    /// The bursts of loss the receiver measured (an extension: only to peers that parse them).
    pub bursts: Option<BurstReport>,
}

/// Runs of consecutive lost primaries as the receiver of our audio measured them (the report's
/// burst extension). Lengths are in datagrams (20 ms of audio each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BurstReport {
    /// Bursts that ended in the last report interval.
    pub bursts: u16,
    /// Their mean length, hundredths of a datagram (0: none).
    pub mean_centi: u16,
    /// The longest of them.
    pub max: u16,
    /// The mean length of the receiver's recent bursts (the last 32, across intervals),
    /// hundredths of a datagram.
    pub recent_mean_centi: u16,
    /// Their 90th percentile.
    pub recent_p90: u16,
}

impl BurstReport {
    const LEN: u8 = 10;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[EXTENSION_BURSTS, Self::LEN]);
        for v in [self.bursts, self.mean_centi, self.max, self.recent_mean_centi, self.recent_p90] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Parses an extension's value; bytes after the fields known here are for later versions.
    fn decode(value: &[u8]) -> Result<Self, PacketError> {
        let mut r = Reader(value);
        Ok(BurstReport {
            bursts: r.u16()?,
            mean_centi: r.u16()?,
            max: r.u16()?,
            recent_mean_centi: r.u16()?,
            recent_p90: r.u16()?,
        })
    }
}

impl ReceiverReport {
    /// The plaintext (22 bytes, and the extensions).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REPORT_LEN + 12);
        out.extend_from_slice(&self.highest_seq.to_be_bytes());
        out.extend_from_slice(&self.received.to_be_bytes());
        out.extend_from_slice(&self.lost.to_be_bytes());
        out.extend_from_slice(&self.loss_permille.to_be_bytes());
        out.extend_from_slice(&self.jitter_us.to_be_bytes());
        out.extend_from_slice(&self.buffered_ms.to_be_bytes());
        out.extend_from_slice(&self.rtt_ms.to_be_bytes());
        if let Some(bursts) = &self.bursts {
            bursts.encode(&mut out);
        }
        out
    }

    /// Parses a plaintext: the base report and its extensions (unknown types are skipped).
    pub fn decode(bytes: &[u8]) -> Result<Self, PacketError> {
        let mut r = Reader(bytes);
        let mut report = ReceiverReport {
            highest_seq: r.u32()?,
            received: r.u32()?,
            lost: r.u32()?,
            loss_permille: r.u16()?.min(1000),
            jitter_us: r.u32()?,
            buffered_ms: r.u16()?,
            rtt_ms: r.u16()?,
            bursts: None,
        };
        while !r.0.is_empty() {
            let kind = r.u8()?;
            let len = r.u8()? as usize;
            let value = r.take(len)?;
            if kind == EXTENSION_BURSTS {
                report.bursts = Some(BurstReport::decode(value)?);
            }
        }
        Ok(report)
    }
}

/// Seals `plaintext` as a datagram of `kind`.
pub fn seal(kind: u8, sealer: &mut FrameSealer, plaintext: &[u8]) -> Vec<u8> {
    let counter = sealer.next_counter();
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(kind);
    out.extend_from_slice(&counter.to_be_bytes());
    let (used, sealed) = sealer.seal(&out, plaintext);
    debug_assert_eq!(used, counter);
    out.extend_from_slice(&sealed);
    out
}

/// The kind of a datagram, without opening it.
pub fn kind(datagram: &[u8]) -> Result<u8, PacketError> {
    match datagram.first() {
        Some(&k @ (KIND_AUDIO | KIND_REPORT)) => Ok(k),
        Some(&k) => Err(PacketError::UnknownKind(k)),
        None => Err(PacketError::Truncated),
    }
}

/// Opens a datagram with the opener of its kind; returns the plaintext.
pub fn open(opener: &mut FrameOpener, datagram: &[u8]) -> Result<Vec<u8>, PacketError> {
    if datagram.len() < HEADER_LEN + TAG_LEN {
        return Err(PacketError::Truncated);
    }
    let (header, sealed) = datagram.split_at(HEADER_LEN);
    let counter = u64::from_be_bytes(header[1..].try_into().expect("8 bytes"));
    Ok(opener.open(counter, header, sealed)?)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        if self.0.len() < n {
            return Err(PacketError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, PacketError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PacketError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, PacketError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, PacketError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::frame::{FrameKeys, MediaKind};

    #[test]
    fn packets_round_trip_and_garbage_is_refused() {
        let p = AudioPacket {
            seq: 10,
            capture_us: 77,
            flags: FLAG_MUTED,
            frames: vec![(10, vec![1, 2]), (9, vec![3]), (8, vec![])],
        };
        assert_eq!(AudioPacket::decode(&p.encode()).unwrap(), p);
        let r = ReceiverReport {
            highest_seq: 9,
            received: 8,
            lost: 1,
            loss_permille: 111,
            jitter_us: 3000,
            buffered_ms: 60,
            rtt_ms: 12,
            bursts: None,
        };
        assert_eq!(ReceiverReport::decode(&r.encode()).unwrap(), r);
        assert_eq!(r.encode().len(), REPORT_LEN, "without extensions, what a parser before them reads");
        for junk in [&[][..], &[0; 13], &[0xff; 40], &p.encode()[..p.encode().len() - 1]] {
            assert!(AudioPacket::decode(junk).is_err());
        }
        let mut too_far = p.clone();
        too_far.frames[1].0 = 20;
        assert!(AudioPacket::decode(&too_far.encode()).is_err(), "a copy from the future");
    }

    #[test]
    fn report_extensions_round_trip_unknown_ones_are_skipped_and_broken_ones_refused() {
        let bursts = BurstReport { bursts: 2, mean_centi: 350, max: 5, recent_mean_centi: 290, recent_p90: 6 };
        let r = ReceiverReport { highest_seq: 9, loss_permille: 80, bursts: Some(bursts), ..Default::default() };
        let bytes = r.encode();
        assert_eq!(bytes.len(), REPORT_LEN + 12);
        assert_eq!(ReceiverReport::decode(&bytes).unwrap(), r);
        // A later version's extension (type 0x7f), and a longer burst extension: what is known is read.
        let mut later = ReceiverReport { bursts: None, ..r }.encode();
        later.extend_from_slice(&[0x7f, 3, 1, 2, 3, EXTENSION_BURSTS, 12]);
        later.extend_from_slice(&bytes[REPORT_LEN + 2..]);
        later.extend_from_slice(&[0xee, 0xee]);
        assert_eq!(ReceiverReport::decode(&later).unwrap(), r);
        // Cut anywhere inside the extensions: refused, never a panic.
        for cut in REPORT_LEN + 1..bytes.len() {
            assert!(ReceiverReport::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut short = ReceiverReport { bursts: None, ..r }.encode();
        short.extend_from_slice(&[EXTENSION_BURSTS, 2, 0, 1]);
        assert_eq!(ReceiverReport::decode(&short), Err(PacketError::Truncated), "a burst extension too short");
    }

    #[test]
    fn sealed_datagrams_refuse_replay_tamper_and_the_wrong_kind() {
        let a = FrameKeys::new([1; 32], [2; 32], true, b"h");
        let b = FrameKeys::new([1; 32], [2; 32], false, b"h");
        let mut seal_a = a.sealer(MediaKind::Audio);
        let mut open_b = b.opener(MediaKind::Audio);
        let d = seal(KIND_AUDIO, &mut seal_a, b"frame");
        assert_eq!(kind(&d), Ok(KIND_AUDIO));
        assert_eq!(open(&mut open_b, &d).unwrap(), b"frame");
        assert_eq!(open(&mut open_b, &d), Err(PacketError::Frame(FrameError::Replay)));
        let mut t = seal(KIND_AUDIO, &mut seal_a, b"frame");
        t[0] = KIND_REPORT;
        assert_eq!(open(&mut open_b, &t), Err(PacketError::Frame(FrameError::Auth)), "the kind is authenticated");
        assert_eq!(kind(&[0x7f, 0]), Err(PacketError::UnknownKind(0x7f)));
        assert_eq!(open(&mut open_b, &[1; 10]), Err(PacketError::Truncated));
    }
}
