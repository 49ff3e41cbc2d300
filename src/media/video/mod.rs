//! Video pictures and their headless sources and sinks: I420 frames, Y4M files, and a moving test
//! pattern that burns a frame counter and a capture timestamp into the picture, so drops, freezes and
//! glass-to-glass latency can be measured from what arrives.
//!
//! Also the sans-IO halves of a call's video: the [`sender::VideoSender`] (encoder, GOPs, CPU
//! adaptation, sealing), the [`receiver::VideoReceiver`] (opening, decoding, keyframe requests,
//! freezes, rendering in step with the audio), and the [`wire`] format between them. The AV1 codecs
//! live in `media::codec`; the IO (threads, QUIC streams) in `media::video_pipeline`.

pub mod cpu_adaptation;
pub mod pattern;
pub mod receiver;
pub mod sender;
pub mod source;
pub mod wire;
pub mod y4m;

/// Bilinear resampling of one plane, in 8.8 fixed point (pixel centres aligned).
fn resample(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    let pos = |i: usize, s: usize, d: usize| -> (usize, usize, u32) {
        let x = ((2 * i + 1) * s * 256 / (2 * d)).saturating_sub(128);
        let (x0, frac) = (x / 256, (x % 256) as u32);
        (x0.min(s - 1), (x0 + 1).min(s - 1), frac)
    };
    let cols: Vec<(usize, usize, u32)> = (0..dw).map(|x| pos(x, sw, dw)).collect();
    for y in 0..dh {
        let (y0, y1, fy) = pos(y, sh, dh);
        let (r0, r1) = (&src[y0 * sw..(y0 + 1) * sw], &src[y1 * sw..(y1 + 1) * sw]);
        let row = &mut dst[y * dw..(y + 1) * dw];
        for (out, &(x0, x1, fx)) in row.iter_mut().zip(&cols) {
            let top = u32::from(r0[x0]) * (256 - fx) + u32::from(r0[x1]) * fx;
            let bottom = u32::from(r1[x0]) * (256 - fx) + u32::from(r1[x1]) * fx;
            *out = ((top * (256 - fy) + bottom * fy + (1 << 15)) >> 16) as u8;
        }
    }
}

/// A picture in I420 (YUV 4:2:0, 8-bit): a full-size luma plane, and two quarter-size chroma planes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Luma, `width × height`.
    pub y: Vec<u8>,
    /// Blue-difference chroma, `width/2 × height/2`.
    pub u: Vec<u8>,
    /// Red-difference chroma, `width/2 × height/2`.
    pub v: Vec<u8>,
}

impl Frame {
    /// A black frame (luma 16, neutral chroma), or `None` for odd or zero sizes.
    pub fn black(width: usize, height: usize) -> Option<Self> {
        if width == 0 || height == 0 || width % 2 != 0 || height % 2 != 0 || width > 7680 || height > 4320 {
            return None;
        }
        let c = (width / 2) * (height / 2);
        Some(Frame { width, height, y: vec![16; width * height], u: vec![128; c], v: vec![128; c] })
    }

    /// The size of the three planes together.
    pub fn byte_len(width: usize, height: usize) -> usize {
        width * height + 2 * (width / 2) * (height / 2)
    }

    /// This picture resampled (bilinear) to `width × height`; `None` for an invalid size.
    pub fn scaled(&self, width: usize, height: usize) -> Option<Frame> {
        let mut out = Frame::black(width, height)?;
        if (width, height) == (self.width, self.height) {
            return Some(self.clone());
        }
        resample(&self.y, self.width, self.height, &mut out.y, width, height);
        let (cw, ch, ow, oh) = (self.width / 2, self.height / 2, width / 2, height / 2);
        resample(&self.u, cw, ch, &mut out.u, ow, oh);
        resample(&self.v, cw, ch, &mut out.v, ow, oh);
        Some(out)
    }

    /// Peak signal-to-noise ratio of the luma against `other` (same size), dB; `None` when sizes differ.
    pub fn psnr(&self, other: &Frame) -> Option<f64> {
        if (self.width, self.height) != (other.width, other.height) {
            return None;
        }
        let mse = self.y.iter().zip(&other.y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>()
            / self.y.len() as f64;
        Some(if mse == 0.0 { 99.0 } else { 10.0 * (255.0f64 * 255.0 / mse).log10() })
    }
}
