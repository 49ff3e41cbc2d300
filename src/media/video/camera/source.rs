//! A camera as a [`VideoSource`]: opened in the mode [`choose_mode`] picks for the encoder's
//! format, streaming through mapped driver buffers; asked for a picture, it hands the newest
//! frame (older ones go back to the driver) with the camera's own capture time.

use std::path::{Path, PathBuf};

use super::v4l2::{self, Device, Mapped};
use super::{CameraError, CameraFormat, CameraMode, capture_time_us, choose_mode, find_camera, not_a_device};
use crate::media::video::clock::FrameRate;
use crate::media::video::cpu_adaptation::VideoFormat;
use crate::media::video::source::{CaptureRequest, Captured, VideoSource, VideoSourceError};

/// Driver buffers to stream through (one being read, the rest being filled).
const BUFFERS: u32 = 4;
/// Frames in a row that may fail to convert (a damaged MJPEG frame now and then is normal) before
/// the camera is given up on.
const MAX_BAD_FRAMES: u32 = 30;
/// The longest a request waits for a frame, ms (a frame interval at 10 fps).
const MAX_WAIT_MS: i32 = 100;

/// A streaming camera.
#[derive(Debug)]
pub struct CameraSource {
    path: PathBuf,
    mode: CameraMode,
    /// Bytes per row as the driver lays frames out (uncompressed formats may pad rows).
    stride: usize,
    bad_frames: u32,
    maps: Vec<Mapped>,
    device: Device,
}

impl CameraSource {
    /// Opens the camera `wanted` names (the first usable one for `None`) under `root` (`/` for
    /// this machine's), in the mode that best suits `target`.
    pub fn open(root: &Path, wanted: Option<&str>, target: VideoFormat) -> Result<Self, CameraError> {
        let info = find_camera(root, wanted)?;
        let failed = |why: String| CameraError::Device { path: info.path.clone(), why };
        let mode = choose_mode(&info.modes, target)
            .ok_or_else(|| failed("it offers none of the formats taken (YUYV, NV12, MJPEG)".into()))?;
        Self::start(&info.path, mode).map_err(failed)
    }

    /// Opens the device node at `path` and streams in `mode`.
    fn start(path: &Path, mode: CameraMode) -> Result<Self, String> {
        let device = Device::open(path).map_err(|e| format!("cannot open it: {e}"))?;
        let caps = device.caps().map_err(|e| not_a_device(&e))?;
        if !caps.streaming_capture {
            return Err("it is not a streaming video capture device".into());
        }
        let (code, width, height, stride) = device
            .set_format(mode.format.fourcc(), (mode.width, mode.height))
            .map_err(|e| format!("cannot set {mode}: {e}"))?;
        let format =
            CameraFormat::from_fourcc(code).ok_or_else(|| format!("asked for {mode}, it gave fourcc {code:#x}"))?;
        device.set_interval((mode.rate.den(), mode.rate.num()));
        let maps = device.start(BUFFERS).map_err(|e| format!("cannot start streaming: {e}"))?;
        let mode = CameraMode { format, width, height, ..mode };
        let stride = (stride as usize).max(format.row_bytes(width as usize).unwrap_or(0));
        tracing::info!(camera = %path.display(), %mode, "camera streaming");
        Ok(CameraSource { path: path.to_owned(), mode, stride, bad_frames: 0, maps, device })
    }

    /// The mode it streams in.
    pub fn mode(&self) -> CameraMode {
        self.mode
    }

    fn failed(&self, why: String) -> VideoSourceError {
        CameraError::Device { path: self.path.clone(), why }.into()
    }

    /// The newest filled buffer, waiting up to `wait_ms` for one; older ones go back to the driver.
    fn newest(&self, wait_ms: i32) -> std::io::Result<Option<v4l2::Dequeued>> {
        let mut newest: Option<v4l2::Dequeued> = None;
        let drained = (|| {
            while let Some(d) = self.device.dequeue()? {
                if let Some(old) = newest.replace(d) {
                    self.device.queue(old.index)?;
                }
            }
            if newest.is_none() && self.device.wait(wait_ms)? {
                newest = self.device.dequeue()?;
            }
            Ok(())
        })();
        match drained {
            Ok(()) => Ok(newest),
            Err(e) => {
                // A buffer already held goes back to the driver, or the stream would run short of one.
                if let Some(held) = newest {
                    let _ = self.device.queue(held.index);
                }
                Err(e)
            }
        }
    }

    /// A filled buffer as I420.
    fn convert(&self, d: &v4l2::Dequeued) -> Result<crate::media::video::Frame, String> {
        let map = self.maps.get(d.index).ok_or("the driver named a buffer it never gave")?;
        if d.flags & v4l2::BUF_FLAG_ERROR != 0 {
            return Err("the driver marked the frame damaged".into());
        }
        let (w, h) = (self.mode.width as usize, self.mode.height as usize);
        // SAFETY: `d` was just dequeued and is queued again only after this conversion.
        let bytes = unsafe { map.bytes(d.bytes) };
        self.mode.format.buffer_to_i420(bytes, self.stride, w, h).map_err(|e| e.to_string())
    }
}

impl VideoSource for CameraSource {
    fn frame_rate(&self) -> Option<FrameRate> {
        Some(self.mode.rate)
    }

    fn next_picture(&mut self, _request: &CaptureRequest) -> Result<Option<Captured>, VideoSourceError> {
        let interval_ms = (1000 / self.mode.rate.ceil_fps().max(1)) as i32;
        let Some(d) = self.newest(interval_ms.min(MAX_WAIT_MS)).map_err(|e| self.failed(e.to_string()))? else {
            return Ok(None);
        };
        let converted = self.convert(&d);
        self.device.queue(d.index).map_err(|e| self.failed(e.to_string()))?;
        match converted {
            Ok(picture) => {
                self.bad_frames = 0;
                let capture_us = capture_time_us(d.timestamp_us, monotonic_now_us(), crate::wall_clock::now_us());
                Ok(Some(Captured { picture, capture_us }))
            }
            Err(why) => {
                self.bad_frames += 1;
                tracing::debug!(camera = %self.path.display(), %why, "a camera frame dropped");
                if self.bad_frames >= MAX_BAD_FRAMES {
                    return Err(self.failed(format!("{MAX_BAD_FRAMES} frames in a row unusable: {why}")));
                }
                Ok(None)
            }
        }
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        self.device.stop();
    }
}

/// CLOCK_MONOTONIC, µs: the clock V4L2 stamps camera buffers with.
#[allow(clippy::useless_conversion)] // time_t and its nanoseconds are 32-bit on some targets
fn monotonic_now_us() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: one valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    i64::from(ts.tv_sec).saturating_mul(1_000_000).saturating_add(i64::from(ts.tv_nsec) / 1000)
}
