//! libaom's AV1 encoder in realtime mode (Debian libaom-dev through `aom-sys`), behind the same
//! [`VideoEncoder`] trait as rav1e. Realtime usage, cpu-used 10 (9 where the library caps lower),
//! CBR, no lag, cyclic-refresh AQ; the target bitrate can change between any two frames.
//!
//! With two temporal layers ([`AomEncoder::with_temporal_layers`]; a group call's) it encodes
//! L1T2 as libaom's `examples/svc_encoder_rtc.c` does: `AV1E_SET_SVC_PARAMS` (two layers, the base
//! at half the frame rate and 60 % of the bitrate), and before each picture `AV1E_SET_SVC_LAYER_ID`
//! and `AV1E_SET_SVC_REF_FRAME_CONFIG`: a base picture references and refreshes slot 0 (`LAST`),
//! an enhancement picture references slot 0 and refreshes nothing, so no picture ever depends on
//! an enhancement one ([`super::temporal`]).

use std::ffi::CStr;
use std::mem::MaybeUninit;

use aom_sys as sys;

use super::av1::{EncodedFrame, VideoCodecError, VideoEncoder};
use super::temporal::TemporalPattern;
use crate::media::video::Frame;

/// The most a keyframe may spend, in percent of a frame's share of the target bitrate
/// (`AOME_SET_MAX_INTRA_BITRATE_PCT`; WebRTC's libaom encoder sets the same).
pub const MAX_INTRA_BITRATE_PERCENT: i32 = 300;

/// libaom, realtime.
pub struct AomEncoder {
    // Boxed: libaom keeps pointers into the context, which must not move.
    ctx: Box<sys::aom_codec_ctx_t>,
    cfg: sys::aom_codec_enc_cfg_t,
    width: usize,
    height: usize,
    next_pts: i64,
    // The picture handed to libaom: I420, planes back to back.
    buf: Vec<u8>,
    pattern: TemporalPattern,
    /// The layer of the picture being encoded (what its temporal unit carries).
    layer: u8,
}

// SAFETY: the context is owned by this value alone and libaom keeps no thread-affine state; `&mut self`
// serialises every call into it.
unsafe impl Send for AomEncoder {}

impl std::fmt::Debug for AomEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AomEncoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bitrate", &self.cfg.rc_target_bitrate)
            .finish()
    }
}

fn check(ctx: *mut sys::aom_codec_ctx_t, what: &str, r: sys::aom_codec_err_t::Type) -> Result<(), VideoCodecError> {
    if r == sys::aom_codec_err_t::AOM_CODEC_OK {
        return Ok(());
    }
    // SAFETY: aom_codec_error accepts any context (even a failed one) and returns a static string.
    let text = unsafe { CStr::from_ptr(sys::aom_codec_error(ctx)) }.to_string_lossy().into_owned();
    Err(VideoCodecError::Encoder(format!("libaom {what}: {text}")))
}

impl AomEncoder {
    /// An encoder for `width × height` at `fps`, aiming at `bitrate` bits per second, on `threads`.
    pub fn new(width: usize, height: usize, fps: u64, bitrate: u32, threads: usize) -> Result<Self, VideoCodecError> {
        Self::with_temporal_layers(width, height, fps, bitrate, threads, 1)
    }

    /// [`AomEncoder::new`] with `layers` temporal layers (1 or 2; more are clamped to 2).
    pub fn with_temporal_layers(
        width: usize,
        height: usize,
        fps: u64,
        bitrate: u32,
        threads: usize,
        layers: u8,
    ) -> Result<Self, VideoCodecError> {
        if width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 || width > 8192 || height > 8192 {
            return Err(VideoCodecError::Encoder(format!("libaom: unsupported picture size {width}x{height}")));
        }
        // SAFETY: plain C structs that libaom fills in; zero is a valid "unset" for all their fields.
        let mut cfg: sys::aom_codec_enc_cfg_t = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut ctx: Box<sys::aom_codec_ctx_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: the interface is a static; cfg is a valid out-pointer.
        let r =
            unsafe { sys::aom_codec_enc_config_default(sys::aom_codec_av1_cx(), &mut cfg, sys::AOM_USAGE_REALTIME) };
        check(&mut *ctx, "default config", r)?;
        cfg.g_usage = sys::AOM_USAGE_REALTIME;
        cfg.g_w = width as u32;
        cfg.g_h = height as u32;
        cfg.g_threads = threads.clamp(1, 64) as u32;
        cfg.g_timebase = sys::aom_rational { num: 1, den: fps.clamp(1, 240) as i32 };
        cfg.g_lag_in_frames = 0; // nothing held back: a frame in, a temporal unit out
        cfg.g_error_resilient = 0;
        cfg.rc_end_usage = sys::aom_rc_mode::AOM_CBR;
        cfg.rc_target_bitrate = (bitrate / 1000).max(10);
        cfg.rc_dropframe_thresh = 0; // the sender's adaptation drops frames, not the encoder
        cfg.rc_undershoot_pct = 50;
        cfg.rc_overshoot_pct = 50;
        cfg.rc_buf_sz = 1000;
        cfg.rc_buf_initial_sz = 600;
        cfg.rc_buf_optimal_sz = 600;
        cfg.rc_min_quantizer = 2;
        cfg.rc_max_quantizer = 52;
        // Keyframes only when asked (as WebRTC's libaom wrapper): the receiver asks when it loses
        // step (over the reliable control stream). A keyframe of libaom's own every 10 s was a
        // burst of three frames' worth that a policed link dropped: each one cost a loss cut and
        // a frozen picture (docs/performance.md, "Policed link"). With temporal layers, one libaom
        // chose could also fall on an enhancement picture, which a forwarder may drop.
        cfg.kf_mode = sys::aom_kf_mode::AOM_KF_DISABLED;
        // SAFETY: ctx and cfg are valid; the ABI version is the header's.
        let r = unsafe {
            sys::aom_codec_enc_init_ver(
                &mut *ctx,
                sys::aom_codec_av1_cx(),
                &cfg,
                0,
                sys::AOM_ENCODER_ABI_VERSION as i32,
            )
        };
        if r != sys::aom_codec_err_t::AOM_CODEC_OK {
            // A failed init leaves nothing to destroy.
            return Err(check(&mut *ctx, "init", r).unwrap_err());
        }
        let pattern = TemporalPattern::new(layers);
        let mut enc = AomEncoder {
            ctx,
            cfg,
            width,
            height,
            next_pts: 0,
            buf: vec![0; width * height * 3 / 2],
            pattern,
            layer: 0,
        };
        // cpu-used 10 needs libaom ≥ 3.5 in realtime mode; 9 otherwise.
        if enc.control(sys::aome_enc_control_id::AOME_SET_CPUUSED, 10).is_err() {
            enc.control(sys::aome_enc_control_id::AOME_SET_CPUUSED, 9)?;
        }
        // log2 tile columns: two tiles from 640 wide so both cores can work on one frame.
        enc.control(sys::aome_enc_control_id::AV1E_SET_TILE_COLUMNS, i32::from(width >= 640))?;
        enc.control(sys::aome_enc_control_id::AV1E_SET_AQ_MODE, 3)?; // cyclic refresh, the realtime AQ
        // A keyframe may take at most three frames' worth of the bitrate, as WebRTC's libaom
        // encoder sets it. Uncapped, a keyframe asked for mid-stream took 4.1 frames' worth even
        // of the test pattern (640x360, 200 kbps: 3445 B; capped 2304 B), more of natural
        // content: on a narrow path that burst overruns the link (a policer drops it, a queue
        // delays every picture behind it), and the losses cut the estimate and ask for the next
        // keyframe.
        enc.control(sys::aome_enc_control_id::AOME_SET_MAX_INTRA_BITRATE_PCT, MAX_INTRA_BITRATE_PERCENT)?;
        enc.set_svc_params()?;
        Ok(enc)
    }

    /// The temporal layers' parameters (nothing with one layer): per layer, the cumulative
    /// bitrate (base 60 %), the frame-rate divisor (base: every other picture) and the quantizers.
    fn set_svc_params(&mut self) -> Result<(), VideoCodecError> {
        let layers = self.pattern.layers();
        if layers < 2 {
            return Ok(());
        }
        // SAFETY: a plain C struct; zero is "unset" for every field.
        let mut p: sys::aom_svc_params_t = unsafe { MaybeUninit::zeroed().assume_init() };
        p.number_spatial_layers = 1;
        p.number_temporal_layers = i32::from(layers);
        p.scaling_factor_num[0] = 1;
        p.scaling_factor_den[0] = 1;
        let kbps = self.cfg.rc_target_bitrate as i32;
        for l in 0..usize::from(layers) {
            p.max_quantizers[l] = self.cfg.rc_max_quantizer as i32;
            p.min_quantizers[l] = self.cfg.rc_min_quantizer as i32;
            p.framerate_factor[l] = 1 << (usize::from(layers) - 1 - l);
            p.layer_target_bitrate[l] = if l + 1 == usize::from(layers) { kbps } else { (kbps * 6 / 10).max(1) };
        }
        // SAFETY: the control takes a pointer to aom_svc_params_t, alive for the call.
        let r = unsafe {
            sys::aom_codec_control(
                &mut *self.ctx,
                sys::aome_enc_control_id::AV1E_SET_SVC_PARAMS as i32,
                &mut p as *mut sys::aom_svc_params_t,
            )
        };
        check(&mut *self.ctx, "svc params", r)
    }

    /// Puts the next picture on its layer, with the references its layer allows.
    fn set_layer(&mut self, keyframe: bool) -> Result<(), VideoCodecError> {
        self.layer = self.pattern.next(keyframe);
        if self.pattern.layers() < 2 {
            return Ok(());
        }
        let mut id = sys::aom_svc_layer_id_t { spatial_layer_id: 0, temporal_layer_id: i32::from(self.layer) };
        // SAFETY: the control takes a pointer to aom_svc_layer_id_t, alive for the call.
        let r = unsafe {
            sys::aom_codec_control(
                &mut *self.ctx,
                sys::aome_enc_control_id::AV1E_SET_SVC_LAYER_ID as i32,
                &mut id as *mut sys::aom_svc_layer_id_t,
            )
        };
        check(&mut *self.ctx, "svc layer id", r)?;
        // Every reference name on its own slot; only LAST (slot 0, the last base picture) is used.
        let mut refs =
            sys::aom_svc_ref_frame_config_t { reference: [0; 7], ref_idx: [0, 1, 2, 3, 4, 5, 6], refresh: [0; 8] };
        refs.reference[0] = 1;
        if self.layer == 0 {
            refs.refresh[0] = 1;
        }
        // SAFETY: the control takes a pointer to aom_svc_ref_frame_config_t, alive for the call.
        let r = unsafe {
            sys::aom_codec_control(
                &mut *self.ctx,
                sys::aome_enc_control_id::AV1E_SET_SVC_REF_FRAME_CONFIG as i32,
                &mut refs as *mut sys::aom_svc_ref_frame_config_t,
            )
        };
        check(&mut *self.ctx, "svc references", r)
    }

    fn control(&mut self, id: u32, value: i32) -> Result<(), VideoCodecError> {
        // SAFETY: both controls used here take an int; the context is initialised.
        let r = unsafe { sys::aom_codec_control(&mut *self.ctx, id as i32, value as std::os::raw::c_int) };
        check(&mut *self.ctx, "control", r)
    }

    /// The target bitrate now, in bits per second.
    pub fn target_bitrate(&self) -> u32 {
        self.cfg.rc_target_bitrate * 1000
    }

    /// Changes the target bitrate; it applies from the next frame.
    pub fn set_target_bitrate(&mut self, bitrate: u32) -> Result<(), VideoCodecError> {
        self.cfg.rc_target_bitrate = (bitrate / 1000).max(10);
        // SAFETY: the context is initialised and cfg is the one it was made with, changed only in rate.
        let r = unsafe { sys::aom_codec_enc_config_set(&mut *self.ctx, &self.cfg) };
        check(&mut *self.ctx, "set bitrate", r)?;
        // The layers' shares follow the new total.
        self.set_svc_params()
    }

    fn encode_image(
        &mut self,
        img: Option<&sys::aom_image_t>,
        flags: u32,
    ) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        let pts = self.next_pts;
        let ptr = img.map_or(std::ptr::null(), |i| i as *const _);
        // SAFETY: the image (when given) wraps self.buf, alive for the call; null flushes.
        let r = unsafe { sys::aom_codec_encode(&mut *self.ctx, ptr, pts, 1, flags as sys::aom_enc_frame_flags_t) };
        check(&mut *self.ctx, "encode", r)?;
        let mut out = Vec::new();
        let mut iter: sys::aom_codec_iter_t = std::ptr::null();
        loop {
            // SAFETY: iter starts null and is advanced only by libaom; packets live until the next encode.
            let pkt = unsafe { sys::aom_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if pkt.is_null() {
                break;
            }
            // SAFETY: non-null packets point to a valid aom_codec_cx_pkt.
            let pkt = unsafe { &*pkt };
            if pkt.kind != sys::aom_codec_cx_pkt_kind::AOM_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: frame packets carry the `frame` variant: buf/sz describe the coded bytes.
            let f = unsafe { pkt.data.frame };
            let data = if f.sz == 0 || f.buf.is_null() {
                Vec::new()
            } else {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts(f.buf as *const u8, f.sz) }.to_vec()
            };
            out.push(EncodedFrame {
                data,
                keyframe: f.flags & sys::AOM_FRAME_IS_KEY != 0,
                number: f.pts.max(0) as u64,
                temporal_layer: self.layer,
            });
        }
        Ok(out)
    }
}

impl VideoEncoder for AomEncoder {
    fn name(&self) -> &'static str {
        "libaom"
    }

    fn bitrate(&self) -> u32 {
        self.target_bitrate()
    }

    fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, VideoCodecError> {
        self.set_target_bitrate(bitrate).map(|()| false)
    }

    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(VideoCodecError::Size { got: (frame.width, frame.height), want: (self.width, self.height) });
        }
        let (ys, cs) = (frame.y.len(), frame.u.len());
        self.buf[..ys].copy_from_slice(&frame.y);
        self.buf[ys..ys + cs].copy_from_slice(&frame.u);
        self.buf[ys + cs..].copy_from_slice(&frame.v);
        // SAFETY: zeroed is a valid empty image; aom_img_wrap fills it to point into self.buf, which
        // holds exactly width*height*3/2 bytes (align 1: strides width and width/2).
        let mut img: sys::aom_image_t = unsafe { MaybeUninit::zeroed().assume_init() };
        let wrapped = unsafe {
            sys::aom_img_wrap(
                &mut img,
                sys::aom_img_fmt::AOM_IMG_FMT_I420,
                self.width as u32,
                self.height as u32,
                1,
                self.buf.as_mut_ptr(),
            )
        };
        if wrapped.is_null() {
            return Err(VideoCodecError::Encoder("libaom: could not wrap the picture".into()));
        }
        let flags = if keyframe { sys::AOM_EFLAG_FORCE_KF } else { 0 };
        // The first picture is a keyframe whatever is asked: on the base layer.
        let first = self.next_pts == 0;
        self.set_layer(keyframe || first)?;
        let out = self.encode_image(Some(&img), flags);
        self.next_pts += 1;
        out
    }

    fn flush(&mut self) -> Result<Vec<EncodedFrame>, VideoCodecError> {
        self.encode_image(None, 0)
    }
}

impl Drop for AomEncoder {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` (a failed init never builds an AomEncoder); destroyed once.
        unsafe { sys::aom_codec_destroy(&mut *self.ctx) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::av1::Dav1dDecoder;
    use crate::media::video::pattern::{self, Stamp};

    #[test]
    fn libaom_streams_decode_with_dav1d_and_keep_the_stamp() {
        let (w, h) = (320, 180);
        let mut enc = AomEncoder::new(w, h, 30, 300_000, 2).unwrap();
        let mut dec = Dav1dDecoder::new(2).unwrap();
        let mut sources = Vec::new();
        let mut decoded = Vec::new();
        for n in 0..20u32 {
            let src = pattern::draw(w, h, Stamp { counter: n, capture_ms: 1000 + n * 33 }).unwrap();
            // No lag: every frame in gives its temporal unit at once.
            let units = enc.encode(&src, false).unwrap();
            assert_eq!(units.len(), 1, "frame {n}");
            assert_eq!(units[0].keyframe, n == 0, "frame {n}");
            for u in units {
                decoded.extend(dec.decode(&u.data).unwrap());
            }
            sources.push(src);
        }
        assert_eq!(decoded.len(), 20);
        for (n, (src, got)) in sources.iter().zip(&decoded).enumerate() {
            assert_eq!(pattern::read(got).map(|s| s.counter), Some(n as u32), "frame {n}");
            let psnr = src.psnr(got).unwrap();
            assert!(psnr > 30.0, "frame {n}: PSNR {psnr:.1} dB");
        }
    }

    #[test]
    fn keyframes_on_demand_and_bitrate_changes_take_effect() {
        let (w, h) = (320, 180);
        let mut enc = AomEncoder::new(w, h, 30, 600_000, 2).unwrap();
        let bytes_at = |enc: &mut AomEncoder, from: u32, frames: u32, key_at: Option<u32>| -> (usize, Vec<bool>) {
            let mut total = 0;
            let mut keys = Vec::new();
            for n in from..from + frames {
                let src = pattern::draw(w, h, Stamp { counter: n, capture_ms: n * 33 }).unwrap();
                for u in enc.encode(&src, key_at == Some(n)).unwrap() {
                    total += u.data.len();
                    keys.push(u.keyframe);
                }
            }
            (total, keys)
        };
        let (_, keys) = bytes_at(&mut enc, 0, 30, Some(10));
        let key_positions: Vec<usize> = keys.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect();
        assert_eq!(key_positions, vec![0, 10], "the first frame and the requested one");
        let (high, _) = bytes_at(&mut enc, 30, 60, None);
        enc.set_bitrate(100_000).unwrap();
        assert_eq!(enc.bitrate(), 100_000);
        let (_, _) = bytes_at(&mut enc, 90, 30, None); // let the rate control settle
        let (low, _) = bytes_at(&mut enc, 120, 60, None);
        assert!(low * 2 < high, "600 kbps gave {high} B, 100 kbps gave {low} B over 2 s");
    }

    #[test]
    fn no_keyframe_comes_unasked() {
        let mut enc = AomEncoder::new(320, 180, 2, 200_000, 1).unwrap();
        let keys = crate::media::codec::av1::tests::keyframes_unasked(&mut enc);
        assert_eq!(keys, vec![0], "only the first picture is a keyframe");
    }

    #[test]
    fn a_keyframe_asked_for_mid_stream_stays_within_three_frames_of_the_bitrate() {
        // 640x360 at 200 kbps, 30 fps: a frame's share is 833 B.
        let (w, h, bitrate) = (640, 360, 200_000);
        let mut enc = AomEncoder::new(w, h, 30, bitrate, 2).unwrap();
        let mut sizes = Vec::new();
        for n in 0..61u32 {
            let src = pattern::draw(w, h, Stamp { counter: n, capture_ms: n * 33 }).unwrap();
            let units = enc.encode(&src, n == 60).unwrap();
            assert_eq!(units.iter().any(|u| u.keyframe), n == 0 || n == 60, "frame {n}");
            sizes.push(units.iter().map(|u| u.data.len()).sum::<usize>());
        }
        let share = bitrate as usize / 8 / 30;
        let key = sizes[60];
        // The cap is the rate control's target; allow it a frame's share of overshoot.
        let cap = share * MAX_INTRA_BITRATE_PERCENT as usize / 100 + share;
        assert!(key <= cap, "keyframe {key} B, a frame's share {share} B, cap {cap} B; frames 30..60 {:?}", &sizes[30..60]);
    }

    #[test]
    fn two_temporal_layers_alternate_and_the_base_alone_decodes_at_half_the_rate() {
        let (w, h) = (320, 180);
        let mut enc = AomEncoder::with_temporal_layers(w, h, 30, 300_000, 2, 2).unwrap();
        let (mut all, mut base_only) = (Dav1dDecoder::new(1).unwrap(), Dav1dDecoder::new(1).unwrap());
        let (mut layers, mut from_all, mut from_base) = (Vec::new(), Vec::new(), Vec::new());
        let mut base_bytes = 0;
        let mut enhancement_bytes = 0;
        for n in 0..60u32 {
            let src = pattern::draw(w, h, Stamp { counter: n, capture_ms: n * 33 }).unwrap();
            // A keyframe asked for on picture 31 (an enhancement one by the pattern): it goes on
            // the base layer and the pattern starts again.
            let units = enc.encode(&src, n == 31).unwrap();
            assert_eq!(units.len(), 1, "frame {n}");
            let u = &units[0];
            layers.push(u.temporal_layer);
            assert_eq!(u.keyframe, n == 0 || n == 31, "frame {n}");
            from_all.extend(all.decode(&u.data).unwrap().iter().map(|p| pattern::read(p).map(|s| s.counter)));
            if u.temporal_layer == 0 {
                base_bytes += u.data.len();
                from_base
                    .extend(base_only.decode(&u.data).unwrap().iter().map(|p| pattern::read(p).map(|s| s.counter)));
            } else {
                enhancement_bytes += u.data.len();
            }
        }
        let want: Vec<u8> = (0..60u32).map(|n| if n < 31 { (n % 2) as u8 } else { ((n - 31) % 2) as u8 }).collect();
        assert_eq!(layers, want, "L1T2: base, enhancement, ...; a keyframe restarts on the base");
        assert_eq!(from_all, (0..60).map(Some).collect::<Vec<_>>(), "every picture decodes from the whole stream");
        let base: Vec<Option<u32>> = (0..60u32).filter(|n| want[*n as usize] == 0).map(Some).collect();
        assert_eq!(base.len(), 31, "half the frame rate (30, and picture 30 then the keyframe 31)");
        assert_eq!(from_base, base, "every base picture decodes without a single enhancement one");
        assert!(
            enhancement_bytes > 0 && base_bytes > enhancement_bytes,
            "{base_bytes} B base, {enhancement_bytes} B enhancement"
        );
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(AomEncoder::new(321, 180, 30, 300_000, 1).is_err());
        assert!(AomEncoder::new(0, 0, 30, 300_000, 1).is_err());
        let mut enc = AomEncoder::new(320, 180, 30, 300_000, 1).unwrap();
        let other = Frame::black(160, 90).unwrap();
        assert!(matches!(enc.encode(&other, false), Err(VideoCodecError::Size { .. })));
    }
}
