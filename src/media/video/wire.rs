//! The video wire format (`protocols/media-v1.md`, "Video"): each GOP on its own QUIC
//! unidirectional stream, which starts with a header naming the GOP and then carries one sealed
//! record per AV1 temporal unit.
//!
//! ```text
//! stream header = 0x03 || gop (4)
//! record        = len (4) || counter (8) || ciphertext || tag (16)      len = 8 + ciphertext + 16
//! aad           = 0x03 || gop (4) || counter (8)
//! plaintext     = frame (4) || capture_us (8) || flags (1) || width (2) || height (2) || av1 (≥ 1)
//! ```
//!
//! Binding the GOP into the AAD means a record cannot be moved to another stream.

use crate::crypto::frame::{FrameError, FrameOpener, FrameSealer};

/// The first byte of a video stream (and of each record's AAD).
pub const KIND_VIDEO: u8 = 0x03;
/// The stream header's length.
pub const STREAM_HEADER_LEN: usize = 5;
/// The plaintext header's length (before the AV1 bytes).
pub const FRAME_HEADER_LEN: usize = 17;
/// The largest record (a 4K keyframe fits in far less); a longer length prefix kills the stream.
pub const MAX_RECORD: usize = 2 * 1024 * 1024;
/// Flag: the temporal unit is a keyframe.
pub const FLAG_KEYFRAME: u8 = 0x01;

/// Why video bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoWireError {
    /// Not a video stream.
    #[error("not a video stream (first byte {0:#04x})")]
    NotVideo(u8),
    /// Fewer bytes than the structure needs.
    #[error("truncated video record")]
    Truncated,
    /// A length prefix over [`MAX_RECORD`].
    #[error("video record of {0} bytes is over the limit")]
    TooLarge(usize),
    /// Fields that break the rules (zero size, odd size, empty AV1 payload).
    #[error("malformed video frame: {0}")]
    Malformed(&'static str),
    /// Replayed, too old, or failed authentication.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// One video frame's plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// The sender's frame number: +1 per frame sent since its video started, across GOPs (in a
    /// group call's layered stream, +1 per base-layer frame; an enhancement frame carries its base
    /// frame's number: `protocols/group-media-v1.md`, "Temporal layers").
    pub frame: u32,
    /// Capture time at the sender, µs since the Unix epoch (its clock).
    pub capture_us: u64,
    /// [`FLAG_KEYFRAME`].
    pub flags: u8,
    /// Picture width.
    pub width: u16,
    /// Picture height.
    pub height: u16,
    /// The AV1 temporal unit.
    pub av1: Vec<u8>,
}

impl VideoFrame {
    /// Whether it is a keyframe.
    pub fn keyframe(&self) -> bool {
        self.flags & FLAG_KEYFRAME != 0
    }

    /// The plaintext bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + self.av1.len());
        out.extend_from_slice(&self.frame.to_be_bytes());
        out.extend_from_slice(&self.capture_us.to_be_bytes());
        out.push(self.flags);
        out.extend_from_slice(&self.width.to_be_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.av1);
        out
    }

    /// Parses a plaintext.
    pub fn decode(b: &[u8]) -> Result<Self, VideoWireError> {
        if b.len() < FRAME_HEADER_LEN {
            return Err(VideoWireError::Truncated);
        }
        let be16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let f = VideoFrame {
            frame: u32::from_be_bytes(b[0..4].try_into().expect("4 bytes")),
            capture_us: u64::from_be_bytes(b[4..12].try_into().expect("8 bytes")),
            flags: b[12],
            width: be16(13),
            height: be16(15),
            av1: b[FRAME_HEADER_LEN..].to_vec(),
        };
        if f.width == 0 || f.height == 0 || f.width % 2 != 0 || f.height % 2 != 0 {
            return Err(VideoWireError::Malformed("picture size must be even and non-zero"));
        }
        if f.av1.is_empty() {
            return Err(VideoWireError::Malformed("no AV1 data"));
        }
        Ok(f)
    }
}

/// The header that opens a GOP's stream.
pub fn stream_header(gop: u32) -> [u8; STREAM_HEADER_LEN] {
    stream_header_of(KIND_VIDEO, gop)
}

/// The header that opens a GOP's stream of `kind` (a group call's video streams have their own,
/// `protocols/group-media-v1.md`).
pub fn stream_header_of(kind: u8, gop: u32) -> [u8; STREAM_HEADER_LEN] {
    let mut h = [kind, 0, 0, 0, 0];
    h[1..].copy_from_slice(&gop.to_be_bytes());
    h
}

/// Reads a stream header: the GOP.
pub fn parse_stream_header(h: &[u8; STREAM_HEADER_LEN]) -> Result<u32, VideoWireError> {
    parse_stream_header_of(KIND_VIDEO, h)
}

/// Reads the header of a stream of `kind`: the GOP.
pub fn parse_stream_header_of(kind: u8, h: &[u8; STREAM_HEADER_LEN]) -> Result<u32, VideoWireError> {
    if h[0] != kind {
        return Err(VideoWireError::NotVideo(h[0]));
    }
    Ok(u32::from_be_bytes(h[1..].try_into().expect("4 bytes")))
}

fn aad(gop: u32, counter: u64) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[0] = KIND_VIDEO;
    a[1..5].copy_from_slice(&gop.to_be_bytes());
    a[5..].copy_from_slice(&counter.to_be_bytes());
    a
}

/// Seals a frame for the stream of `gop`: the whole record, length prefix included.
pub fn seal(sealer: &mut FrameSealer, gop: u32, frame: &VideoFrame) -> Vec<u8> {
    let counter = sealer.next_counter();
    let (used, sealed) = sealer.seal(&aad(gop, counter), &frame.encode());
    debug_assert_eq!(used, counter);
    let mut out = Vec::with_capacity(12 + sealed.len());
    out.extend_from_slice(&((8 + sealed.len()) as u32).to_be_bytes());
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(&sealed);
    out
}

/// Checks a record's length prefix: how many bytes follow it.
pub fn record_len(prefix: [u8; 4]) -> Result<usize, VideoWireError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_RECORD {
        return Err(VideoWireError::TooLarge(len));
    }
    if len < 8 + 16 {
        return Err(VideoWireError::Truncated);
    }
    Ok(len)
}

/// Opens a record's body (what follows the length prefix) from the stream of `gop`.
pub fn open(opener: &mut FrameOpener, gop: u32, body: &[u8]) -> Result<VideoFrame, VideoWireError> {
    if body.len() < 8 + 16 {
        return Err(VideoWireError::Truncated);
    }
    let counter = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
    let plain = opener.open(counter, &aad(gop, counter), &body[8..])?;
    VideoFrame::decode(&plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::frame::{FrameKeys, MediaKind};

    fn frame() -> VideoFrame {
        VideoFrame { frame: 7, capture_us: 99, flags: FLAG_KEYFRAME, width: 320, height: 180, av1: vec![0x12, 0, 0x0a] }
    }

    #[test]
    fn records_round_trip_and_are_bound_to_their_gop() {
        let a = FrameKeys::new([1; 32], [2; 32], true, b"h");
        let b = FrameKeys::new([1; 32], [2; 32], false, b"h");
        let (mut s, mut o) = (a.sealer(MediaKind::Video), b.opener(MediaKind::Video));
        let rec = seal(&mut s, 4, &frame());
        assert_eq!(record_len(rec[..4].try_into().unwrap()).unwrap(), rec.len() - 4);
        assert_eq!(open(&mut o, 4, &rec[4..]).unwrap(), frame());
        assert_eq!(open(&mut o, 4, &rec[4..]), Err(VideoWireError::Frame(FrameError::Replay)));
        let moved = seal(&mut s, 4, &frame());
        assert_eq!(open(&mut o, 5, &moved[4..]), Err(VideoWireError::Frame(FrameError::Auth)), "moved to gop 5");
        assert!(open(&mut o, 4, &moved[4..10]).is_err());
        assert_eq!(parse_stream_header(&stream_header(9)), Ok(9));
        assert_eq!(parse_stream_header(&[1, 0, 0, 0, 0]), Err(VideoWireError::NotVideo(1)));
        assert_eq!(record_len(u32::MAX.to_be_bytes()), Err(VideoWireError::TooLarge(u32::MAX as usize)));
    }

    #[test]
    fn malformed_plaintexts_are_refused() {
        assert_eq!(VideoFrame::decode(&[0; 5]), Err(VideoWireError::Truncated));
        let mut odd = frame();
        odd.width = 321;
        assert!(matches!(VideoFrame::decode(&odd.encode()), Err(VideoWireError::Malformed(_))));
        let mut empty = frame();
        empty.av1.clear();
        assert!(matches!(VideoFrame::decode(&empty.encode()), Err(VideoWireError::Malformed(_))));
        assert_eq!(VideoFrame::decode(&frame().encode()).unwrap(), frame());
    }
}
