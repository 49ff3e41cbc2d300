//! Video pictures and their headless sources and sinks: I420 frames, Y4M files, and a moving test
//! pattern that burns a frame counter and a capture timestamp into the picture, so drops, freezes and
//! glass-to-glass latency can be measured from what arrives.
//!
//! Also the sans-IO halves of a call's video: the [`sender::VideoSender`] (encode jobs, GOPs, CPU
//! adaptation, sealing), the [`receiver::VideoReceiver`] (opening, decode jobs, keyframe requests,
//! freezes, rendering in step with the audio), the [`wire`] format between them, and the
//! [`record_reader::RecordReader`] that reassembles a stream's records within a memory budget. The
//! [`encoder::EncodeWorker`] carries out the sender's encode jobs; the AV1 codecs live in
//! `media::codec`. The call's session holds the sender and the receiver in its video half
//! ([`crate::media::session::video`]); the IO (the encode and decode threads, the GOP streams) is
//! the session's driver, [`crate::media::driver`].

pub mod camera;
pub mod clock;
pub mod compositor;
pub mod cpu_adaptation;
pub mod encoder;
pub mod font;
pub mod pacer;
pub mod pattern;
pub mod pixel_format;
pub mod receiver;
pub mod record_reader;
pub mod sender;
pub mod source;
pub mod wire;
pub mod y4m;

/// Black in video range (the luma of [`Frame::black`]).
pub const LUMA_BLACK: u8 = 16;
/// White in video range.
pub const LUMA_WHITE: u8 = 235;

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
///
/// A plain pixel buffer, on purpose the one media value whose fields other modules write: sources,
/// scalers and decoders fill the planes in place (copying pictures to go through setters would cost
/// what the codecs save). Its invariant, the plane sizes, is set by [`Frame::black`]; code that
/// fills the planes writes into them and never resizes them.
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

/// Where a picture of `size` goes in an `outer` one, scaled to fit keeping its shape and centred:
/// `(x, y, width, height)`, all even. The whole of `outer` when the shapes agree.
pub fn fit_in(outer: (usize, usize), size: (usize, usize)) -> (usize, usize, usize, usize) {
    let even = |n: usize| n & !1;
    let (ow, oh) = (outer.0.max(2), outer.1.max(2));
    let (w, h) = (size.0.max(1), size.1.max(1));
    let (width, height) =
        if ow * h <= oh * w { (ow, even(ow * h / w).clamp(2, oh)) } else { (even(oh * w / h).clamp(2, ow), oh) };
    (even((ow - width) / 2), even((oh - height) / 2), width, height)
}

impl Frame {
    /// A black frame (luma 16, neutral chroma), or `None` for odd or zero sizes.
    pub fn black(width: usize, height: usize) -> Option<Self> {
        if width == 0 || height == 0 || width % 2 != 0 || height % 2 != 0 || width > 7680 || height > 4320 {
            return None;
        }
        let c = (width / 2) * (height / 2);
        Some(Frame { width, height, y: vec![LUMA_BLACK; width * height], u: vec![128; c], v: vec![128; c] })
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

    /// Where a picture of `size` goes in this one: [`fit_in`].
    pub fn fit(&self, size: (usize, usize)) -> (usize, usize, usize, usize) {
        fit_in((self.width, self.height), size)
    }

    /// Copies `p`, scaled to `width × height`, into this picture at `(x, y)` (even; the area must
    /// lie inside). Nothing is copied if `p` cannot be scaled to that size.
    pub fn paste_scaled(&mut self, p: &Frame, (x, y, width, height): (usize, usize, usize, usize)) {
        if x + width > self.width || y + height > self.height {
            return;
        }
        let scaled;
        let p = if (p.width, p.height) == (width, height) {
            p
        } else {
            match p.scaled(width, height) {
                Some(s) => {
                    scaled = s;
                    &scaled
                }
                None => return,
            }
        };
        for row in 0..height {
            let dst = (y + row) * self.width + x;
            self.y[dst..dst + width].copy_from_slice(&p.y[row * p.width..row * p.width + width]);
        }
        let (cw, ow) = (p.width / 2, self.width / 2);
        for row in 0..height / 2 {
            let dst = (y / 2 + row) * ow + x / 2;
            self.u[dst..dst + width / 2].copy_from_slice(&p.u[row * cw..row * cw + width / 2]);
            self.v[dst..dst + width / 2].copy_from_slice(&p.v[row * cw..row * cw + width / 2]);
        }
    }

    /// The `(x, y, width, height)` area of this picture (even numbers, inside it) as a picture of
    /// its own; `None` for an area outside it or of an invalid size.
    pub fn cropped(&self, (x, y, width, height): (usize, usize, usize, usize)) -> Option<Frame> {
        if !x.is_multiple_of(2) || !y.is_multiple_of(2) || x + width > self.width || y + height > self.height {
            return None;
        }
        let mut out = Frame::black(width, height)?;
        for row in 0..height {
            let src = (y + row) * self.width + x;
            out.y[row * width..(row + 1) * width].copy_from_slice(&self.y[src..src + width]);
        }
        let (cw, sw) = (width / 2, self.width / 2);
        for row in 0..height / 2 {
            let src = (y / 2 + row) * sw + x / 2;
            out.u[row * cw..(row + 1) * cw].copy_from_slice(&self.u[src..src + cw]);
            out.v[row * cw..(row + 1) * cw].copy_from_slice(&self.v[src..src + cw]);
        }
        Some(out)
    }

    /// This picture in a `width × height` one, scaled to fit keeping its shape, black bars where
    /// the shapes differ (a 4:3 camera or a 2.35:1 film sent as 16:9 is not stretched); `None` for
    /// an invalid size.
    pub fn fitted(&self, width: usize, height: usize) -> Option<Frame> {
        if (width, height) == (self.width, self.height) {
            return Some(self.clone());
        }
        let mut out = Frame::black(width, height)?;
        let area = out.fit((self.width, self.height));
        if (area.2, area.3) == (width, height) {
            return self.scaled(width, height);
        }
        out.paste_scaled(self, area);
        Some(out)
    }

    /// Structural similarity of the luma against `other` (same size): the mean of SSIM over 8x8
    /// windows on a 4-pixel grid (Wang et al. 2004, constants for 8-bit); 1.0 is identical. `None`
    /// when sizes differ or the picture is smaller than a window.
    pub fn ssim(&self, other: &Frame) -> Option<f64> {
        if (self.width, self.height) != (other.width, other.height) || self.width < 8 || self.height < 8 {
            return None;
        }
        const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
        const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
        let w = self.width;
        let (mut sum, mut n) = (0.0, 0u32);
        for y0 in (0..=self.height - 8).step_by(4) {
            for x0 in (0..=w - 8).step_by(4) {
                let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0u32, 0u32, 0u32, 0u32, 0u32);
                for y in y0..y0 + 8 {
                    for x in x0..x0 + 8 {
                        let (a, b) = (u32::from(self.y[y * w + x]), u32::from(other.y[y * w + x]));
                        (sa, sb, saa, sbb, sab) = (sa + a, sb + b, saa + a * a, sbb + b * b, sab + a * b);
                    }
                }
                let (ma, mb) = (f64::from(sa) / 64.0, f64::from(sb) / 64.0);
                let va = f64::from(saa) / 64.0 - ma * ma;
                let vb = f64::from(sbb) / 64.0 - mb * mb;
                let cov = f64::from(sab) / 64.0 - ma * mb;
                sum += ((2.0 * ma * mb + C1) * (2.0 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
                n += 1;
            }
        }
        Some(sum / f64::from(n))
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

#[cfg(test)]
mod tests {
    use super::pattern::{self, Stamp};
    use super::*;

    #[test]
    fn a_picture_of_another_shape_is_fitted_with_black_bars_not_stretched() {
        // A 2.35:1 film (640x272) into 640x360: letterboxed, the film's rows intact in the middle.
        let mut film = Frame::black(640, 272).unwrap();
        film.y.iter_mut().for_each(|p| *p = 200);
        let out = film.fitted(640, 360).unwrap();
        assert_eq!(out.fit((640, 272)), (0, 44, 640, 272));
        assert_eq!(out.cropped(out.fit((640, 272))), Some(film.clone()), "cut back out, the film itself");
        assert_eq!(out.cropped((1, 0, 2, 2)), None, "odd corner");
        assert_eq!(out.cropped((0, 0, 642, 2)), None, "outside");
        let row = |r: usize| &out.y[r * 640..(r + 1) * 640];
        assert!(row(0).iter().chain(row(43)).chain(row(316)).chain(row(359)).all(|p| *p == LUMA_BLACK), "bars");
        assert!(row(44).iter().chain(row(180)).chain(row(315)).all(|p| *p == 200), "the film, not stretched");
        // A 4:3 camera (640x480) into 640x360: pillarboxed.
        assert_eq!(fit_in((640, 360), (640, 480)), (80, 0, 480, 360));
        // The same shape: scaled as before, no bars.
        let f = pattern::draw(640, 360, Stamp { counter: 3, capture_ms: 9 }).unwrap();
        assert_eq!(f.fitted(320, 180), f.scaled(320, 180));
        assert_eq!(fit_in((320, 180), (640, 360)), (0, 0, 320, 180));
        assert_eq!(f.fitted(3, 3), None, "an invalid size");
        // Degenerate shapes never panic or leave the picture.
        for size in [(1, 5000), (5000, 1), (0, 0), (2, 2)] {
            let (x, y, w, h) = fit_in((320, 180), size);
            assert!(x + w <= 320 && y + h <= 180 && w >= 2 && h >= 2, "{size:?}");
        }
    }

    #[test]
    fn scaling_keeps_the_picture_and_the_quality_measures_tell_damage_apart() {
        let f = pattern::draw(640, 360, Stamp { counter: 3, capture_ms: 9 }).unwrap();
        assert_eq!(f.ssim(&f), Some(1.0));
        assert_eq!(f.psnr(&f), Some(99.0));
        let mut noisy = f.clone();
        for (i, p) in noisy.y.iter_mut().enumerate() {
            *p = p.saturating_add((i * 7919 % 3) as u8);
        }
        let other = pattern::draw(640, 360, Stamp { counter: 4, capture_ms: 9 }).unwrap();
        let (s_noisy, s_other) = (f.ssim(&noisy).unwrap(), f.ssim(&other).unwrap());
        assert!(s_noisy < 1.0 && s_noisy > s_other, "noise {s_noisy}, another frame {s_other}");
        assert!(f.ssim(&Frame::black(320, 180).unwrap()).is_none());
        // Down and back up: the stamp survives, the picture stays close.
        let small = f.scaled(320, 180).unwrap();
        assert_eq!((small.width, small.height), (320, 180));
        assert_eq!(pattern::read(&small).map(|s| s.counter), Some(3));
        let back = small.scaled(640, 360).unwrap();
        assert!(back.psnr(&f).unwrap() > 20.0);
        assert!(f.scaled(3, 3).is_none(), "odd sizes are refused");
    }
}
