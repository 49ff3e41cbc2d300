//! AV1: rav1e (pure Rust) to encode, dav1d to decode. Low-latency settings: no frame reordering,
//! speed 10, tiles from the resolution. libaom's realtime encoder (`super::aom`) implements the same trait.

use std::sync::Arc;

use rav1e::prelude::{
    ChromaSampling, Config, Context, EncoderConfig, EncoderStatus, FrameParameters, FrameType, FrameTypeOverride,
    Rational, SceneDetectionSpeed, SpeedSettings,
};

use crate::media::video::Frame;

/// A codec failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoCodecError {
    /// The encoder refused its configuration or failed.
    #[error("AV1 encoder: {0}")]
    Encoder(String),
    /// The data is not a decodable AV1 temporal unit.
    #[error("AV1 decoder: {0}")]
    Decoder(String),
    /// A frame of another size than the encoder's.
    #[error("frame is {got:?}, the encoder takes {want:?}")]
    Size {
        /// The frame's size.
        got: (usize, usize),
        /// The encoder's.
        want: (usize, usize),
    },
}

/// One encoded temporal unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The AV1 OBUs.
    pub data: Vec<u8>,
    /// A keyframe: decodable without anything before it.
    pub keyframe: bool,
    /// Its position in the stream, from 0.
    pub number: u64,
    /// Its AV1 temporal layer (`super::temporal`): 0, the base, unless the encoder was opened
    /// with more than one layer.
    pub temporal_layer: u8,
}

/// An AV1 encoder.
pub trait VideoEncoder: Send {
    /// Which implementation (for `hail status`).
    fn name(&self) -> &'static str;
    /// The picture size it takes.
    fn size(&self) -> (usize, usize);
    /// Encodes a frame (a keyframe if asked); returns the temporal units that are ready (an encoder
    /// may hold a few frames back).
    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Vec<EncodedFrame>, VideoCodecError>;
    /// Ends the stream: everything still held back.
    fn flush(&mut self) -> Result<Vec<EncodedFrame>, VideoCodecError>;
    /// The target bitrate now, bits per second.
    fn bitrate(&self) -> u32;
    /// Changes the target bitrate from the next frame on. Returns true when the encoder had to
    /// start a new stream for it: frames it held back are gone, its next unit is a keyframe, and
    /// its input numbering starts again at 0.
    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, VideoCodecError>;
}

/// Which AV1 encoder a call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// libaom in realtime mode (the default when built with the `libaom` feature: it sustains
    /// 640x360 at 30 fps on one core; see docs/performance.md).
    Libaom,
    /// rav1e at speed 10.
    Rav1e,
}

impl Default for EncoderKind {
    fn default() -> Self {
        if cfg!(feature = "libaom") { EncoderKind::Libaom } else { EncoderKind::Rav1e }
    }
}

impl std::fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncoderKind::Libaom => "libaom",
            EncoderKind::Rav1e => "rav1e",
        })
    }
}

/// Why a video encoder name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncoderKindError {
    /// libaom was named, but this build has no libaom.
    #[error("this hail was built without libaom (cargo feature `libaom`): use rav1e")]
    NotBuilt,
    /// Not an encoder hail knows.
    #[error("unknown video encoder {0:?}: expected libaom or rav1e")]
    Unknown(String),
}

impl std::str::FromStr for EncoderKind {
    type Err = EncoderKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "libaom" | "aom" if cfg!(feature = "libaom") => Ok(EncoderKind::Libaom),
            "libaom" | "aom" => Err(EncoderKindError::NotBuilt),
            "rav1e" => Ok(EncoderKind::Rav1e),
            other => Err(EncoderKindError::Unknown(other.to_owned())),
        }
    }
}

impl EncoderKind {
    /// Opens an encoder of this kind.
    pub fn open(
        self,
        width: usize,
        height: usize,
        fps: u64,
        bitrate: u32,
        threads: usize,
    ) -> Result<Box<dyn VideoEncoder>, VideoCodecError> {
        self.open_layered(width, height, fps, bitrate, threads, 1)
    }

    /// [`EncoderKind::open`] with `layers` temporal layers where the encoder has them (libaom);
    /// rav1e has no temporal-layer control and encodes every picture on the base layer.
    pub fn open_layered(
        self,
        width: usize,
        height: usize,
        fps: u64,
        bitrate: u32,
        threads: usize,
        layers: u8,
    ) -> Result<Box<dyn VideoEncoder>, VideoCodecError> {
        let _ = layers;
        match self {
            #[cfg(feature = "libaom")]
            EncoderKind::Libaom => Ok(Box::new(super::aom::AomEncoder::with_temporal_layers(
                width, height, fps, bitrate, threads, layers,
            )?)),
            #[cfg(not(feature = "libaom"))]
            EncoderKind::Libaom => Err(VideoCodecError::Encoder("built without libaom".into())),
            EncoderKind::Rav1e => Ok(Box::new(Rav1eEncoder::new(width, height, fps, bitrate as i32, threads)?)),
        }
    }
}

/// rav1e at speed 10, low latency.
pub struct Rav1eEncoder {
    ctx: Context<u8>,
    width: usize,
    height: usize,
    fps: u64,
    bitrate: i32,
    threads: usize,
}

impl std::fmt::Debug for Rav1eEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rav1eEncoder").field("width", &self.width).field("height", &self.height).finish()
    }
}

impl Rav1eEncoder {
    /// An encoder for `width × height` at `fps`, aiming at `bitrate` bits per second, on `threads`.
    pub fn new(width: usize, height: usize, fps: u64, bitrate: i32, threads: usize) -> Result<Self, VideoCodecError> {
        let mut speed = SpeedSettings::from_preset(10);
        // Real time: no frames held back for lookahead or scene detection.
        speed.rdo_lookahead_frames = 1;
        speed.scene_detection_mode = SceneDetectionSpeed::None;
        let mut enc = EncoderConfig {
            width,
            height,
            time_base: Rational::new(1, fps.max(1)),
            bit_depth: 8,
            chroma_sampling: ChromaSampling::Cs420,
            speed_settings: speed,
            low_latency: true,
            bitrate,
            tiles: if width >= 640 { 2 } else { 1 },
            ..Default::default()
        };
        // Keyframes only when asked (0: rav1e's "never"), as with libaom.
        enc.set_key_frame_interval(0, 0);
        let ctx = Config::new()
            .with_encoder_config(enc)
            .with_threads(threads)
            .new_context()
            .map_err(|e| VideoCodecError::Encoder(e.to_string()))?;
        Ok(Rav1eEncoder { ctx, width, height, fps, bitrate, threads })
    }
}

impl VideoEncoder for Rav1eEncoder {
    fn name(&self) -> &'static str {
        "rav1e"
    }

    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(VideoCodecError::Size { got: (frame.width, frame.height), want: (self.width, self.height) });
        }
        let mut f = self.ctx.new_frame();
        let (w, h) = (frame.width, frame.height);
        f.planes[0].copy_from_raw_u8(&frame.y, w, 1);
        f.planes[1].copy_from_raw_u8(&frame.u, w / 2, 1);
        f.planes[2].copy_from_raw_u8(&frame.v, w / 2, 1);
        let _ = h;
        let params = FrameParameters {
            frame_type_override: if keyframe { FrameTypeOverride::Key } else { FrameTypeOverride::No },
            ..Default::default()
        };
        self.ctx.send_frame((Arc::new(f), params)).map_err(|e| VideoCodecError::Encoder(e.to_string()))?;
        self.drain()
    }

    fn flush(&mut self) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        self.ctx.flush();
        self.drain()
    }

    fn bitrate(&self) -> u32 {
        self.bitrate.max(0) as u32
    }

    /// rav1e fixes its rate control when the context is made: a new target needs a new context,
    /// whose first frame is a keyframe. So it only happens when the target falls under 3/4 of the
    /// current one (the path needs it) or rises over 3/2 of it.
    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, VideoCodecError> {
        let (old, new) = (f64::from(self.bitrate.max(1)), f64::from(bitrate));
        if new >= 0.75 * old && new <= 1.5 * old {
            return Ok(false);
        }
        *self = Rav1eEncoder::new(self.width, self.height, self.fps, bitrate as i32, self.threads)?;
        Ok(true)
    }
}

impl Rav1eEncoder {
    fn drain(&mut self) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        let mut out = Vec::new();
        loop {
            match self.ctx.receive_packet() {
                Ok(p) => out.push(EncodedFrame {
                    data: p.data,
                    keyframe: p.frame_type == FrameType::KEY,
                    number: p.input_frameno,
                    temporal_layer: 0,
                }),
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => break,
                Err(e) => return Err(VideoCodecError::Encoder(e.to_string())),
            }
        }
        Ok(out)
    }
}

/// dav1d.
pub struct Dav1dDecoder {
    inner: dav1d::Decoder,
}

impl std::fmt::Debug for Dav1dDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dav1dDecoder")
    }
}

impl Dav1dDecoder {
    /// A decoder on `threads` threads, for pictures up to 4K.
    pub fn new(threads: u32) -> Result<Self, VideoCodecError> {
        let mut s = dav1d::Settings::new();
        s.set_n_threads(threads);
        s.set_max_frame_delay(1);
        s.set_frame_size_limit(3840 * 2160);
        let inner = dav1d::Decoder::with_settings(&s).map_err(|e| VideoCodecError::Decoder(e.to_string()))?;
        Ok(Dav1dDecoder { inner })
    }

    /// Decodes a temporal unit; returns the pictures it yields (usually one).
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<Frame>, VideoCodecError> {
        let err = |e: dav1d::Error| VideoCodecError::Decoder(e.to_string());
        let mut out = Vec::new();
        let mut sent = self.inner.send_data(data.to_vec(), None, None, None);
        loop {
            match sent {
                Ok(()) => break,
                Err(dav1d::Error::Again) => {
                    self.drain(&mut out)?;
                    sent = self.inner.send_pending_data();
                }
                Err(e) => return Err(err(e)),
            }
        }
        self.drain(&mut out)?;
        Ok(out)
    }

    fn drain(&mut self, out: &mut Vec<Frame>) -> Result<(), VideoCodecError> {
        loop {
            match self.inner.get_picture() {
                Ok(p) => out.push(to_frame(&p)?),
                Err(dav1d::Error::Again) => return Ok(()),
                Err(e) => return Err(VideoCodecError::Decoder(e.to_string())),
            }
        }
    }
}

fn to_frame(p: &dav1d::Picture) -> Result<Frame, VideoCodecError> {
    use dav1d::PlanarImageComponent::{U, V, Y};
    if p.bit_depth() != 8 || p.pixel_layout() != dav1d::PixelLayout::I420 {
        return Err(VideoCodecError::Decoder("only 8-bit 4:2:0 pictures are supported".into()));
    }
    let (w, h) = (p.width() as usize, p.height() as usize);
    let mut f = Frame::black(w, h).ok_or_else(|| VideoCodecError::Decoder(format!("odd picture size {w}x{h}")))?;
    for (component, dst, pw, ph) in [(Y, &mut f.y, w, h), (U, &mut f.u, w / 2, h / 2), (V, &mut f.v, w / 2, h / 2)] {
        let plane = p.plane(component);
        let stride = p.stride(component) as usize;
        for row in 0..ph {
            dst[row * pw..(row + 1) * pw].copy_from_slice(&plane[row * stride..row * stride + pw]);
        }
    }
    Ok(f)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::media::video::pattern::{self, Stamp};

    #[test]
    fn rav1e_streams_decode_with_dav1d_and_keep_the_stamp() {
        let (w, h) = (320, 180);
        let mut enc = Rav1eEncoder::new(w, h, 30, 300_000, 2).unwrap();
        let mut dec = Dav1dDecoder::new(2).unwrap();
        let mut decoded = Vec::new();
        let mut sources = Vec::new();
        let mut units = Vec::new();
        for n in 0..20u32 {
            let src = pattern::draw(w, h, Stamp { counter: n, capture_ms: n * 33 }).unwrap();
            units.extend(enc.encode(&src, n == 10).unwrap());
            sources.push(src);
        }
        let before_flush = units.len();
        assert!(before_flush >= 15, "the encoder holds at most a few frames back ({before_flush} of 20 out)");
        units.extend(enc.flush().unwrap());
        for unit in &units {
            assert_eq!(unit.keyframe, unit.number == 0 || unit.number == 10, "frame {}", unit.number);
            decoded.extend(dec.decode(&unit.data).unwrap());
        }
        assert_eq!(decoded.len(), 20, "every frame decodes");
        for pic in &decoded {
            let stamp = pattern::read(pic).expect("the stamp survives AV1 coding");
            let psnr = pic.psnr(&sources[stamp.counter as usize]).unwrap();
            assert!(psnr > 30.0, "frame {}: {psnr:.1} dB", stamp.counter);
        }
        assert!(enc.encode(&Frame::black(640, 360).unwrap(), false).is_err(), "wrong size is an error");
    }

    /// The numbers of the keyframes `enc` makes, unasked, over 12 s of 320x180 pictures at 2 fps
    /// (a 10 s keyframe interval, as both encoders had before, would put one at 20).
    pub(crate) fn keyframes_unasked(enc: &mut dyn VideoEncoder) -> Vec<u64> {
        let (w, h) = enc.size();
        let mut units = Vec::new();
        for n in 0..24u32 {
            let src = pattern::draw(w, h, Stamp { counter: n, capture_ms: n * 500 }).unwrap();
            units.extend(enc.encode(&src, false).unwrap());
        }
        units.extend(enc.flush().unwrap());
        units.iter().filter(|u| u.keyframe).map(|u| u.number).collect()
    }

    #[test]
    fn rav1e_makes_no_keyframe_unasked() {
        let mut enc = Rav1eEncoder::new(320, 180, 2, 30_000, 1).unwrap();
        assert_eq!(keyframes_unasked(&mut enc), vec![0], "only the first picture is a keyframe");
    }

    #[test]
    fn garbage_and_truncated_units_are_errors_not_panics() {
        let (w, h) = (320, 180);
        let mut enc = Rav1eEncoder::new(w, h, 30, 300_000, 1).unwrap();
        let mut units = enc.encode(&pattern::draw(w, h, Stamp { counter: 0, capture_ms: 0 }).unwrap(), true).unwrap();
        units.extend(enc.flush().unwrap());
        let unit = units.remove(0);
        let mut dec = Dav1dDecoder::new(1).unwrap();
        let half = &unit.data[..unit.data.len() / 2];
        let truncated = dec.decode(half);
        assert!(truncated.is_err() || truncated.unwrap().is_empty(), "half a keyframe yields no picture");
        for junk in [vec![0xff; 64], vec![0x12, 0x00, 0x0a, 0x0b], vec![]] {
            let mut dec = Dav1dDecoder::new(1).unwrap();
            let r = dec.decode(&junk);
            assert!(r.is_err() || r.unwrap().is_empty(), "{junk:?}");
        }
        // The decoder still works after garbage.
        let mut dec = Dav1dDecoder::new(1).unwrap();
        let _ = dec.decode(&[0xff; 64]);
        assert_eq!(dec.decode(&unit.data).unwrap().len(), 1);
    }
}
