//! Video pictures and their headless sources and sinks: I420 frames, Y4M files, and a moving test
//! pattern that burns a frame counter and a capture timestamp into the picture, so drops, freezes and
//! glass-to-glass latency can be measured from what arrives.
//!
//! Also the sender's CPU-overuse adaptation (sans-IO). The AV1 codecs live in `media::codec`; the
//! video transport is still to come.

pub mod cpu_adaptation;
pub mod pattern;
pub mod y4m;

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
