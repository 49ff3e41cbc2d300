//! Stand-ins for Opus and AV1, for tests and the deterministic simulator. **Not codecs**: they
//! compress nothing worth hearing or seeing, and nothing a peer sends is ever decoded with them.
//! They exist so that the sans-IO media cores (`media::audio`, `media::video::sender`,
//! `media::video::receiver`) can be driven without libopus, rav1e, libaom or dav1d: fast, and the
//! same on every run.
//!
//! - [`FakeVideoEncoder`] implements [`VideoEncoder`]: one unit per picture, at once, a keyframe
//!   when asked and at the start of its stream. A unit carries the picture's size and the test
//!   pattern's stamp (when the picture has one), padded to what the bitrate allows per frame (three
//!   times that for a keyframe), so a simulated link sees realistic sizes.
//! - [`FakeVideoDecoder`] turns those units back into pictures (the test pattern, redrawn from the
//!   stamp), and refuses anything else, and deltas before its first keyframe, as a decoder would.
//! - [`FakeOpusEncoder`] / [`FakeOpusDecoder`]: a coarse copy of each 20 ms frame (every 20th
//!   sample) plus a coarse copy of the frame before it (the "in-band FEC"); concealment repeats the
//!   last frame at half the level.

use super::av1::{EncodedFrame, VideoCodecError, VideoEncoder};
use super::opus::{AudioDecoder, FRAME_SAMPLES, Pcm};
use super::temporal::TemporalPattern;
use crate::media::video::Frame;
use crate::media::video::cpu_adaptation::VideoFormat;
use crate::media::video::pattern::{self, Stamp};

const VIDEO_MAGIC: &[u8; 4] = b"FAV1";
const FLAG_KEY: u8 = 1;
const FLAG_STAMP: u8 = 2;
/// Magic (4), flags (1), width (2), height (2), counter (4), capture ms (4).
const VIDEO_HEADER: usize = 17;

/// A fake AV1 encoder (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVideoEncoder {
    format: VideoFormat,
    bitrate: u32,
    next: u64,
    pattern: TemporalPattern,
}

impl FakeVideoEncoder {
    /// An encoder for pictures of `format`, aiming at `bitrate` bits per second.
    pub fn new(format: VideoFormat, bitrate: u32) -> Self {
        FakeVideoEncoder { format, bitrate, next: 0, pattern: TemporalPattern::new(1) }
    }

    /// [`FakeVideoEncoder::new`] labelling its units with `layers` temporal layers' pattern, as
    /// libaom's L1T2 does.
    pub fn layered(format: VideoFormat, bitrate: u32, layers: u8) -> Self {
        FakeVideoEncoder { pattern: TemporalPattern::new(layers), ..Self::new(format, bitrate) }
    }

    /// [`FakeVideoEncoder::new`], boxed the way an encode worker opens its encoders.
    pub fn open(format: VideoFormat, bitrate: u32) -> Result<Box<dyn VideoEncoder>, VideoCodecError> {
        Ok(Box::new(Self::new(format, bitrate)))
    }

    /// [`FakeVideoEncoder::layered`] with two layers, boxed.
    pub fn open_two_layers(format: VideoFormat, bitrate: u32) -> Result<Box<dyn VideoEncoder>, VideoCodecError> {
        Ok(Box::new(Self::layered(format, bitrate, 2)))
    }
}

impl VideoEncoder for FakeVideoEncoder {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn size(&self) -> (usize, usize) {
        (self.format.width, self.format.height)
    }

    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        if (frame.width, frame.height) != self.size() {
            return Err(VideoCodecError::Size { got: (frame.width, frame.height), want: self.size() });
        }
        let keyframe = keyframe || self.next == 0;
        let stamp = pattern::read(frame);
        let mut data = Vec::with_capacity(VIDEO_HEADER);
        data.extend_from_slice(VIDEO_MAGIC);
        data.push((if keyframe { FLAG_KEY } else { 0 }) | (if stamp.is_some() { FLAG_STAMP } else { 0 }));
        data.extend_from_slice(&(frame.width as u16).to_be_bytes());
        data.extend_from_slice(&(frame.height as u16).to_be_bytes());
        let stamp = stamp.unwrap_or(Stamp { counter: 0, capture_ms: 0 });
        data.extend_from_slice(&stamp.counter.to_be_bytes());
        data.extend_from_slice(&stamp.capture_ms.to_be_bytes());
        let per_frame = self.bitrate as usize / 8 / (self.format.fps.max(1) as usize);
        data.resize(VIDEO_HEADER.max(if keyframe { 3 * per_frame } else { per_frame }), 0);
        let number = self.next;
        self.next += 1;
        let temporal_layer = self.pattern.next(keyframe);
        Ok(vec![EncodedFrame { data, keyframe, number, temporal_layer }])
    }

    fn flush(&mut self) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        Ok(Vec::new())
    }

    fn bitrate(&self) -> u32 {
        self.bitrate
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, VideoCodecError> {
        self.bitrate = bitrate;
        Ok(false)
    }
}

/// A fake AV1 decoder for [`FakeVideoEncoder`]'s units (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeVideoDecoder {
    had_keyframe: bool,
}

impl FakeVideoDecoder {
    /// A decoder that has seen no keyframe yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a unit into its picture: the test pattern redrawn from the unit's stamp, or a black
    /// picture when the encoded one had no stamp.
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<Frame>, VideoCodecError> {
        let refuse = |why: &str| VideoCodecError::Decoder(format!("fake decoder: {why}"));
        if data.len() < VIDEO_HEADER || &data[..4] != VIDEO_MAGIC {
            return Err(refuse("not a fake unit"));
        }
        let flags = data[4];
        if flags & FLAG_KEY != 0 {
            self.had_keyframe = true;
        } else if !self.had_keyframe {
            return Err(refuse("a delta before any keyframe"));
        }
        let u16_at = |i: usize| usize::from(u16::from_be_bytes([data[i], data[i + 1]]));
        let u32_at = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let (width, height) = (u16_at(5), u16_at(7));
        let picture = if flags & FLAG_STAMP != 0 {
            pattern::draw(width, height, Stamp { counter: u32_at(9), capture_ms: u32_at(13) })
        } else {
            Frame::black(width, height)
        };
        picture.map(|p| vec![p]).ok_or_else(|| refuse("bad picture size"))
    }
}

const OPUS_MAGIC: u8 = 0xFA;
/// Every this many samples one is kept.
const OPUS_STEP: usize = 20;
const OPUS_COARSE: usize = FRAME_SAMPLES / OPUS_STEP;

/// A fake Opus encoder (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeOpusEncoder {
    previous: Option<Vec<u8>>,
}

impl FakeOpusEncoder {
    /// An encoder at the start of its stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes one frame: a marker, its coarse copy, then the previous frame's (if any).
    pub fn encode(&mut self, pcm: &Pcm) -> Vec<u8> {
        let coarse: Vec<u8> = pcm.iter().step_by(OPUS_STEP).flat_map(|s| s.to_be_bytes()).collect();
        let mut out = vec![OPUS_MAGIC];
        out.extend_from_slice(&coarse);
        out.extend_from_slice(self.previous.as_deref().unwrap_or_default());
        self.previous = Some(coarse);
        out
    }
}

/// A fake Opus decoder for [`FakeOpusEncoder`]'s packets (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeOpusDecoder {
    last: Pcm,
}

impl Default for FakeOpusDecoder {
    fn default() -> Self {
        FakeOpusDecoder { last: [0; FRAME_SAMPLES] }
    }
}

impl FakeOpusDecoder {
    /// A decoder that has played nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a packet; one that is not a fake packet is concealed.
    pub fn decode(&mut self, packet: &[u8]) -> Pcm {
        self.expand(packet, 0)
    }

    /// Recovers the frame before `next_packet` from the copy it carries (concealed without one).
    pub fn decode_fec(&mut self, next_packet: &[u8]) -> Pcm {
        self.expand(next_packet, 1)
    }

    /// Repeats the last frame at half the level.
    pub fn conceal(&mut self) -> Pcm {
        self.last = self.last.map(|s| s / 2);
        self.last
    }

    fn expand(&mut self, packet: &[u8], part: usize) -> Pcm {
        let start = 1 + part * 2 * OPUS_COARSE;
        let Some(coarse) = packet.get(start..start + 2 * OPUS_COARSE).filter(|_| packet[0] == OPUS_MAGIC) else {
            return self.conceal();
        };
        self.last = std::array::from_fn(|i| {
            let k = 2 * (i / OPUS_STEP);
            i16::from_be_bytes([coarse[k], coarse[k + 1]])
        });
        self.last
    }
}

impl AudioDecoder for FakeOpusDecoder {
    fn decode(&mut self, packet: &[u8]) -> Pcm {
        FakeOpusDecoder::decode(self, packet)
    }
    fn decode_fec(&mut self, next_packet: &[u8]) -> Pcm {
        FakeOpusDecoder::decode_fec(self, next_packet)
    }
    fn conceal(&mut self) -> Pcm {
        FakeOpusDecoder::conceal(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_video_keeps_the_stamp_and_refuses_what_a_decoder_would() {
        let format = VideoFormat { width: 320, height: 180, fps: 30 };
        let mut enc = FakeVideoEncoder::new(format, 240_000);
        let mut dec = FakeVideoDecoder::new();
        let pic = |n| pattern::draw(320, 180, Stamp { counter: n, capture_ms: 7 * n }).unwrap();
        let first = enc.encode(&pic(0), false).unwrap().remove(0);
        let second = enc.encode(&pic(1), false).unwrap().remove(0);
        assert!(first.keyframe && !second.keyframe, "the stream starts with a keyframe");
        assert_eq!((first.data.len(), second.data.len()), (3000, 1000), "sized by the bitrate");
        assert!(dec.decode(&second.data).is_err(), "a delta before any keyframe");
        let shown = dec.decode(&first.data).unwrap();
        assert_eq!(pattern::read(&shown[0]), Some(Stamp { counter: 0, capture_ms: 0 }));
        assert_eq!(pattern::read(&dec.decode(&second.data).unwrap()[0]).map(|s| s.counter), Some(1));
        assert!(dec.decode(b"garbage that is long enough").is_err());
        assert!(enc.encode(&Frame::black(640, 360).unwrap(), false).is_err(), "wrong size");
    }

    #[test]
    fn fake_opus_carries_a_coarse_copy_and_the_previous_frame_for_fec() {
        let mut enc = FakeOpusEncoder::new();
        let mut dec = FakeOpusDecoder::new();
        let frames: Vec<Pcm> = (0..3).map(|k| std::array::from_fn(|i| (k * 1000 + i) as i16)).collect();
        let packets: Vec<Vec<u8>> = frames.iter().map(|f| enc.encode(f)).collect();
        assert_eq!(dec.decode(&packets[0])[40], frames[0][40]);
        assert_eq!(dec.decode_fec(&packets[2])[20], frames[1][20], "FEC gives back the frame before");
        assert_eq!(dec.conceal()[20], 510, "the last frame at half the level");
        assert_eq!(dec.decode_fec(&packets[0])[20], 255, "nothing before the first frame: concealed");
        assert_eq!(dec.decode(&[1, 2, 3])[20], 127, "garbage: concealed");
    }
}
