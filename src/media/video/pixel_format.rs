//! What cameras deliver, as the encoder wants it: packed YUYV (4:2:2), semi-planar NV12 (4:2:0)
//! and MJPEG (one JPEG per frame, decoded by zune-jpeg) converted to planar I420, sans-IO (bytes
//! in, a [`Frame`] out). The camera source ([`super::camera`]) hands its buffers here.
//!
//! Conversions check the buffer's length against the size and refuse odd sizes, so a driver that
//! hands a short or garbled buffer gets an error, never a panic; a corrupt JPEG is an error too.

use super::Frame;

/// Why a camera buffer could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PixelFormatError {
    /// Odd, zero or too large a size.
    #[error("unsupported picture size {width}x{height}")]
    Size {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
    },
    /// The buffer does not hold one picture of that size and format.
    #[error("a {format} picture of {width}x{height} needs {needed} bytes, got {got}")]
    Length {
        /// The format's name.
        format: &'static str,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Bytes one picture takes.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// A JPEG frame that does not decode, or decodes to another size than the camera's mode.
    #[error("a MJPEG frame that does not decode: {0}")]
    Jpeg(String),
}

fn blank(width: usize, height: usize) -> Result<Frame, PixelFormatError> {
    Frame::black(width, height).ok_or(PixelFormatError::Size { width, height })
}

fn check(format: &'static str, width: usize, height: usize, needed: usize, got: usize) -> Result<(), PixelFormatError> {
    if got < needed {
        return Err(PixelFormatError::Length { format, width, height, needed, got });
    }
    Ok(())
}

/// YUYV (YUY2): per two pixels `Y0 U Y1 V`, chroma at full height. I420's chroma rows are the
/// average of each pair of YUYV rows. Bytes past one picture (driver padding) are ignored.
pub fn yuyv_to_i420(bytes: &[u8], width: usize, height: usize) -> Result<Frame, PixelFormatError> {
    let mut f = blank(width, height)?;
    check("YUYV", width, height, width * height * 2, bytes.len())?;
    let stride = width * 2;
    for row in 0..height {
        let line = &bytes[row * stride..(row + 1) * stride];
        for (x, px) in f.y[row * width..(row + 1) * width].iter_mut().enumerate() {
            *px = line[x * 2];
        }
    }
    let cw = width / 2;
    for crow in 0..height / 2 {
        let (a, b) = (&bytes[2 * crow * stride..], &bytes[(2 * crow + 1) * stride..]);
        for cx in 0..cw {
            let avg = |i: usize| (u16::from(a[i]) + u16::from(b[i])).div_ceil(2) as u8;
            f.u[crow * cw + cx] = avg(cx * 4 + 1);
            f.v[crow * cw + cx] = avg(cx * 4 + 3);
        }
    }
    Ok(f)
}

/// NV12: the luma plane, then one plane of interleaved `U V` at half size in both directions.
/// Bytes past one picture are ignored.
pub fn nv12_to_i420(bytes: &[u8], width: usize, height: usize) -> Result<Frame, PixelFormatError> {
    let mut f = blank(width, height)?;
    let luma = width * height;
    check("NV12", width, height, luma + luma / 2, bytes.len())?;
    f.y.copy_from_slice(&bytes[..luma]);
    for (i, uv) in bytes[luma..luma + luma / 2].chunks_exact(2).enumerate() {
        f.u[i] = uv[0];
        f.v[i] = uv[1];
    }
    Ok(f)
}

/// The most a JPEG frame may claim (a 4K camera's frame; larger headers are refused before any
/// memory is taken for them).
const MAX_JPEG_SIDE: usize = 4096;

/// An APP0 segment saying "AVI1": the mark of a motion-JPEG frame.
const AVI1_MARKER: [u8; 9] = [0xFF, 0xE0, 0x00, 0x07, b'A', b'V', b'I', b'1', 0x00];

/// MJPEG: one baseline JPEG (4:2:2 or 4:2:0, full-range YCbCr as JFIF has it; a camera's frame
/// may omit its Huffman tables, the decoder fills in the standard ones). Decoded to YCbCr, then
/// chroma averaged over each 2x2 block and all planes brought to video range (luma 16..235,
/// chroma 16..240), which is what I420 pictures carry here. The frame must be `width x height`.
pub fn mjpeg_to_i420(bytes: &[u8], width: usize, height: usize) -> Result<Frame, PixelFormatError> {
    use zune_jpeg::JpegDecoder;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let mut f = blank(width, height)?;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::YCbCr)
        .set_max_width(MAX_JPEG_SIDE)
        .set_max_height(MAX_JPEG_SIDE);
    // UVC cameras may leave out the Huffman tables; zune-jpeg fills in the standard ones for a
    // frame that says it is MJPEG (an APP0 "AVI1" segment), and keeps any the frame has.
    let mut marked = Vec::with_capacity(bytes.len() + AVI1_MARKER.len());
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xD8]) {
        marked.extend_from_slice(&[0xFF, 0xD8]);
        marked.extend_from_slice(&AVI1_MARKER);
        marked.extend_from_slice(rest);
    }
    let mut decoder = JpegDecoder::new_with_options(
        std::io::Cursor::new(if marked.is_empty() { bytes } else { &marked[..] }),
        options,
    );
    let bad = |why: String| PixelFormatError::Jpeg(why);
    decoder.decode_headers().map_err(|e| bad(e.to_string()))?;
    let info = decoder.info().ok_or_else(|| bad("no size in its header".into()))?;
    let (w, h) = (usize::from(info.width), usize::from(info.height));
    if (w, h) != (width, height) {
        return Err(bad(format!("it is {w}x{h}, the camera said {width}x{height}")));
    }
    if decoder.output_colorspace() != Some(ColorSpace::YCbCr) {
        return Err(bad("not a YCbCr picture".into()));
    }
    let ycc = decoder.decode().map_err(|e| bad(e.to_string()))?;
    check("MJPEG", width, height, width * height * 3, ycc.len())?;
    // Full range to video range: luma 0..255 to 16..235, chroma 0..255 to 16..240 around 128.
    let luma = |y: u8| (16 + (u32::from(y) * 219 + 127) / 255) as u8;
    let chroma = |sum: u32| (128 + ((sum as i32 - 4 * 128) * 224 / (4 * 255))) as u8;
    for (px, ycc) in f.y.iter_mut().zip(ycc.chunks_exact(3)) {
        *px = luma(ycc[0]);
    }
    let (cw, stride) = (width / 2, width * 3);
    for crow in 0..height / 2 {
        let (a, b) = (&ycc[2 * crow * stride..], &ycc[(2 * crow + 1) * stride..]);
        for cx in 0..cw {
            let sum = |c: usize| {
                let i = cx * 6 + c;
                u32::from(a[i]) + u32::from(a[i + 3]) + u32::from(b[i]) + u32::from(b[i + 3])
            };
            f.u[crow * cw + cx] = chroma(sum(1));
            f.v[crow * cw + cx] = chroma(sum(2));
        }
    }
    Ok(f)
}

/// Shows an I420 picture on a screen: into `out` as `0x00RRGGBB` words (what X11 and softbuffer
/// take), `stride` words per row (a buffer wider than the picture keeps its extra columns). BT.601
/// video range, in fixed point; each chroma sample serves its 2×2 pixels.
pub fn i420_to_xrgb(frame: &Frame, out: &mut [u32], stride: usize) -> Result<(), PixelFormatError> {
    let (width, height) = (frame.width, frame.height);
    if stride < width {
        return Err(PixelFormatError::Size { width: stride, height });
    }
    check("XRGB", width, height, stride * (height - 1) + width, out.len())?;
    let cw = width / 2;
    for row in 0..height {
        let (ys, crow) = (&frame.y[row * width..(row + 1) * width], row / 2);
        let (us, vs) = (&frame.u[crow * cw..(crow + 1) * cw], &frame.v[crow * cw..(crow + 1) * cw]);
        for (x, (px, &y)) in out[row * stride..row * stride + width].iter_mut().zip(ys).enumerate() {
            let c = 298 * (i32::from(y) - 16);
            let (d, e) = (i32::from(us[x / 2]) - 128, i32::from(vs[x / 2]) - 128);
            let clamp = |n: i32| ((n + 128) >> 8).clamp(0, 255) as u32;
            *px = clamp(c + 409 * e) << 16 | clamp(c - 100 * d - 208 * e) << 8 | clamp(c + 516 * d);
        }
    }
    Ok(())
}

/// A screenshot (packed 8-bit RGB, as in a PPM) as I420: BT.601 video range, each chroma sample
/// the mean of its 2×2 pixels. The inverse of [`i420_to_xrgb`] up to rounding.
pub fn rgb24_to_i420(bytes: &[u8], width: usize, height: usize) -> Result<Frame, PixelFormatError> {
    let mut f = blank(width, height)?;
    check("RGB24", width, height, width * height * 3, bytes.len())?;
    let rgb = |i: usize| (i32::from(bytes[3 * i]), i32::from(bytes[3 * i + 1]), i32::from(bytes[3 * i + 2]));
    for (i, px) in f.y.iter_mut().enumerate() {
        let (r, g, b) = rgb(i);
        *px = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
    }
    let cw = width / 2;
    for crow in 0..height / 2 {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let p = rgb((2 * crow + dy) * width + 2 * cx + dx);
                (r, g, b) = (r + p.0, g + p.1, b + p.2);
            }
            let (r, g, b) = (r / 4, g / 4, b / 4);
            f.u[crow * cw + cx] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            f.v[crow * cw + cx] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        }
    }
    Ok(f)
}

/// A screenshot as `xwd` writes it (X Window Dump, 24/32-bit TrueColor, ZPixmap): `(width,
/// height, packed RGB)`. What the window tests read screenshots with; other layouts are refused.
pub fn xwd_to_rgb24(bytes: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let field = |i: usize| -> Result<u32, String> {
        bytes.get(4 * i..4 * i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok_or("a short xwd header".to_owned())
    };
    let (header, version, format) = (field(0)? as usize, field(1)?, field(2)?);
    let (width, height, byte_order, bpp, line) =
        (field(4)? as usize, field(5)? as usize, field(7)?, field(11)? as usize, field(12)? as usize);
    let (red, green, blue, colours) = (field(14)?, field(15)?, field(16)?, field(19)? as usize);
    if version != 7 || format != 2 || bpp != 32 || red == 0 || green == 0 || blue == 0 {
        return Err(format!("xwd version {version}, format {format}, {bpp} bits per pixel: not a 32-bit TrueColor dump"));
    }
    let start = header + 12 * colours;
    let needed = start + line * height;
    if bytes.len() < needed || line < width * 4 || width == 0 || height == 0 {
        return Err(format!("xwd of {width}x{height} needs {needed} bytes, has {}", bytes.len()));
    }
    let channel = |px: u32, mask: u32| ((px & mask) >> mask.trailing_zeros()) as u8;
    let mut rgb = Vec::with_capacity(width * height * 3);
    for row in 0..height {
        for p in bytes[start + row * line..start + row * line + width * 4].chunks_exact(4) {
            let px = if byte_order == 0 { u32::from_le_bytes([p[0], p[1], p[2], p[3]]) } else { u32::from_be_bytes([p[0], p[1], p[2], p[3]]) };
            rgb.extend([channel(px, red), channel(px, green), channel(px, blue)]);
        }
    }
    Ok((width, height, rgb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::pattern;

    #[test]
    fn yuyv_becomes_planar_with_its_chroma_rows_averaged() {
        // 4x2: two rows of two YUYV macropixels each.
        let bytes = [
            10, 100, 11, 200, 12, 102, 13, 202, // row 0
            20, 110, 21, 210, 22, 112, 23, 212, // row 1
        ];
        let f = yuyv_to_i420(&bytes, 4, 2).unwrap();
        assert_eq!(f.y, [10, 11, 12, 13, 20, 21, 22, 23]);
        assert_eq!(f.u, [105, 107]);
        assert_eq!(f.v, [205, 207]);
    }

    #[test]
    fn nv12_splits_its_interleaved_chroma() {
        let mut bytes: Vec<u8> = (0..8).collect();
        bytes.extend([50, 60, 51, 61]);
        let f = nv12_to_i420(&bytes, 4, 2).unwrap();
        assert_eq!(f.y, (0..8).collect::<Vec<u8>>());
        assert_eq!((f.u.as_slice(), f.v.as_slice()), (&[50, 51][..], &[60, 61][..]));
    }

    #[test]
    fn a_drawn_picture_survives_the_round_trip_through_both_formats() {
        use crate::media::video::pattern::{self, Stamp};
        let p = pattern::draw(64, 36, Stamp { counter: 7, capture_ms: 0 }).unwrap();
        // To NV12 and back: exact.
        let mut nv12 = p.y.clone();
        for (u, v) in p.u.iter().zip(&p.v) {
            nv12.extend([*u, *v]);
        }
        assert_eq!(nv12_to_i420(&nv12, 64, 36).unwrap(), p);
        // To YUYV (chroma repeated on both rows) and back: exact too.
        let mut yuyv = Vec::new();
        for row in 0..36 {
            for x in (0..64).step_by(2) {
                let c = (row / 2) * 32 + x / 2;
                yuyv.extend([p.y[row * 64 + x], p.u[c], p.y[row * 64 + x + 1], p.v[c]]);
            }
        }
        assert_eq!(yuyv_to_i420(&yuyv, 64, 36).unwrap(), p);
    }

    #[test]
    fn short_buffers_and_odd_sizes_are_errors_not_panics() {
        assert!(matches!(yuyv_to_i420(&[0; 15], 4, 2), Err(PixelFormatError::Length { needed: 16, got: 15, .. })));
        assert!(matches!(nv12_to_i420(&[0; 11], 4, 2), Err(PixelFormatError::Length { needed: 12, .. })));
        assert!(matches!(nv12_to_i420(&[0; 100], 3, 2), Err(PixelFormatError::Size { .. })));
        assert!(matches!(yuyv_to_i420(&[], 0, 0), Err(PixelFormatError::Size { .. })));
        // Padding past one picture is ignored.
        assert!(yuyv_to_i420(&[0; 40], 4, 2).is_ok());
        // Garbage of the right length converts to some picture (a camera's noise is a picture).
        let garbage: Vec<u8> = (0..16u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(yuyv_to_i420(&garbage, 4, 2).is_ok());
    }

    /// The recorded MJPEG frames: the test pattern at 320x180 (counter 42), made by ffmpeg as a
    /// camera would send it (the standard Huffman tables), 4:2:2 and 4:2:0.
    const MJPEG_422: &[u8] = include_bytes!("../../../tests/golden/camera-pattern-320x180-422.jpg");
    const MJPEG_420: &[u8] = include_bytes!("../../../tests/golden/camera-pattern-320x180-420.jpg");

    fn mjpeg_source() -> Frame {
        crate::media::video::pattern::draw(
            320,
            180,
            crate::media::video::pattern::Stamp { counter: 42, capture_ms: 1234 },
        )
        .unwrap()
    }

    /// Makes the recorded frames again (needs ffmpeg): `cargo test --lib pixel_format -- --ignored`.
    #[test]
    #[ignore = "regenerates tests/golden/camera-pattern-*.jpg with ffmpeg"]
    fn regenerate_the_recorded_mjpeg_frames() {
        let dir = tempfile::tempdir().unwrap();
        let y4m = dir.path().join("p.y4m");
        let rate = crate::media::video::clock::FrameRate::THIRTY;
        let mut w = crate::media::video::y4m::Y4mWriter::create(&y4m, 320, 180, rate).unwrap();
        w.write(&mjpeg_source()).unwrap();
        w.finish(rate).unwrap();
        for sub in ["422", "420"] {
            let out = format!("{}/tests/golden/camera-pattern-320x180-{sub}.jpg", env!("CARGO_MANIFEST_DIR"));
            let status = std::process::Command::new("ffmpeg")
                .args(["-y", "-loglevel", "error", "-i"])
                .arg(&y4m)
                .args(["-pix_fmt", &format!("yuvj{sub}p"), "-huffman", "default", "-q:v", "3", "-frames:v", "1", &out])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Drops the Huffman tables (DHT segments), as MJPEG cameras send their frames.
    fn without_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    #[test]
    fn recorded_mjpeg_frames_decode_to_the_picture_they_were_made_from() {
        let source = mjpeg_source();
        for (name, jpeg) in [("4:2:2", MJPEG_422), ("4:2:0", MJPEG_420)] {
            let f = mjpeg_to_i420(jpeg, 320, 180).unwrap();
            let psnr = f.psnr(&source).unwrap();
            assert!(psnr > 30.0, "{name}: {psnr} dB");
            assert_eq!(crate::media::video::pattern::read(&f).map(|s| s.counter), Some(42), "{name}: the stamp reads");
            // Video range kept: the pattern's black is 16, not the full-range 0.
            let dark = f.y.iter().min().unwrap();
            assert!((12..=20).contains(dark), "{name}: darkest luma {dark}");
            // Chroma is right too (not swapped or flat): close to the source's.
            let diff = |a: &[u8], b: &[u8]| {
                a.iter().zip(b).map(|(x, y)| u32::from(x.abs_diff(*y))).sum::<u32>() / a.len() as u32
            };
            assert!(diff(&f.u, &source.u) <= 3 && diff(&f.v, &source.v) <= 3, "{name}: chroma off");
        }
        // A camera's frame without its Huffman tables decodes the same (the standard ones).
        let bare = without_huffman_tables(MJPEG_422);
        assert!(bare.len() < MJPEG_422.len(), "the tables were there to drop");
        assert!(mjpeg_to_i420(&bare, 320, 180).unwrap() == mjpeg_to_i420(MJPEG_422, 320, 180).unwrap());
    }

    #[test]
    fn a_corrupt_or_mismatched_jpeg_is_an_error_not_a_panic() {
        let err = |bytes: &[u8], w, h| match mjpeg_to_i420(bytes, w, h) {
            Err(PixelFormatError::Jpeg(why)) => why,
            other => panic!("expected a JPEG error, got {:?}", other.map(|f| (f.width, f.height))),
        };
        assert!(err(MJPEG_422, 640, 360).contains("320x180"), "the size the camera claimed is checked");
        err(&[], 320, 180);
        err(&MJPEG_422[..200], 320, 180);
        err(b"not a jpeg at all", 320, 180);
        // Noise in the header: an error. Noise in the picture data: whatever it decodes to, no panic.
        let mut bad_header = MJPEG_422.to_vec();
        bad_header[2..40].iter_mut().for_each(|b| *b = 0xFF);
        err(&bad_header, 320, 180);
        let mut noisy = MJPEG_422.to_vec();
        let n = noisy.len();
        for (i, b) in noisy[n / 2..n - 2].iter_mut().enumerate() {
            *b = (i * 7919 % 251) as u8;
        }
        let _ = mjpeg_to_i420(&noisy, 320, 180);
        assert!(matches!(mjpeg_to_i420(MJPEG_422, 321, 180), Err(PixelFormatError::Size { .. })));
    }

    #[test]
    fn damaged_camera_frames_never_panic() {
        // A USB camera's frames get cut short and bit-flipped: 300 damaged copies of the recorded
        // frames (a few bytes overwritten anywhere, headers included, or cut at any length), each
        // a picture or an error.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut pictures, mut errors) = (0, 0);
        for round in 0..300 {
            let mut frame = if round % 2 == 0 { MJPEG_422 } else { MJPEG_420 }.to_vec();
            if round % 3 == 0 {
                frame.truncate(next() as usize % frame.len());
            } else {
                for _ in 0..1 + next() % 4 {
                    let at = next() as usize % frame.len();
                    frame[at] = next() as u8;
                }
            }
            match mjpeg_to_i420(&frame, 320, 180) {
                Ok(f) => {
                    assert_eq!((f.width, f.height), (320, 180));
                    pictures += 1;
                }
                Err(_) => errors += 1,
            }
        }
        assert!(pictures > 0 && errors > 0, "both happen: {pictures} pictures, {errors} errors");
    }

    #[test]
    fn i420_shows_as_xrgb_with_black_white_and_primaries_where_they_belong() {
        let mut f = Frame::black(4, 2).unwrap();
        f.y = vec![16, 235, 81, 16, 16, 235, 81, 16];
        // Chroma column 1 (pixels 2 and 3): pure red's U and V.
        f.u = vec![128, 90];
        f.v = vec![128, 240];
        let mut out = vec![0xdead_beef; 5 * 2];
        i420_to_xrgb(&f, &mut out, 5).unwrap();
        assert_eq!(&out[..2], &[0x00_00_00_00, 0x00_ff_ff_ff]);
        let red = out[2];
        assert!(red >> 16 & 0xff >= 250 && red >> 8 & 0xff <= 4 && red & 0xff <= 4, "{red:06x}");
        assert_eq!(out[4], 0xdead_beef, "the stride's extra column is left alone");
        assert_eq!(out[5], 0);
        // Too small a buffer or stride: errors.
        assert!(i420_to_xrgb(&f, &mut [0; 7], 4).is_err());
        assert!(i420_to_xrgb(&f, &mut [0; 8], 3).is_err());
    }

    #[test]
    fn a_picture_survives_the_screen_and_a_screenshot() {
        let drawn = pattern::draw(320, 180, pattern::Stamp { counter: 42, capture_ms: 777 }).unwrap();
        let mut shown = vec![0u32; 320 * 180];
        i420_to_xrgb(&drawn, &mut shown, 320).unwrap();
        let rgb: Vec<u8> = shown.iter().flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8]).collect();
        let back = rgb24_to_i420(&rgb, 320, 180).unwrap();
        // Saturated colours clip in RGB: close, not exact.
        assert!(back.psnr(&drawn).unwrap() > 35.0, "{:?}", back.psnr(&drawn));
        assert_eq!(pattern::read(&back).map(|s| s.counter), Some(42));
        assert!(rgb24_to_i420(&rgb[1..], 320, 180).is_err());
    }

    #[test]
    fn an_xwd_dump_reads_as_rgb_and_a_broken_one_is_an_error() {
        let (w, h) = (2usize, 1usize);
        let mut x = vec![0u8; 100];
        let mut put = |i: usize, v: u32| x[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
        for (i, v) in [(0, 100), (1, 7), (2, 2), (3, 24), (4, 2), (5, 1), (7, 0), (11, 32), (12, 8)] {
            put(i, v);
        }
        for (i, v) in [(14, 0xff0000), (15, 0xff00), (16, 0xff), (17, 8), (18, 256), (19, 0)] {
            put(i, v);
        }
        x.extend(0x0011_2233u32.to_le_bytes());
        x.extend(0x00ff_8001u32.to_le_bytes());
        assert_eq!(xwd_to_rgb24(&x), Ok((w, h, vec![0x11, 0x22, 0x33, 0xff, 0x80, 0x01])));
        assert!(xwd_to_rgb24(&x[..x.len() - 1]).is_err());
        assert!(xwd_to_rgb24(&x[..50]).is_err());
    }
}
