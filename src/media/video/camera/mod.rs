//! Cameras (V4L2 on Linux): finding them ([`list_cameras`], [`find_camera`]), the mode to capture
//! in ([`choose_mode`], sans-IO, after the CPU ladder), and the [`CameraSource`] that streams
//! frames, converts them to I420 ([`super::pixel_format`]: YUYV, NV12, MJPEG) and stamps each
//! with the time the camera captured it ([`capture_time_us`]).
//!
//! Finding cameras reads `ROOT/sys/class/video4linux/videoN/name` and opens `ROOT/dev/videoN`, with
//! ROOT `/` in use and a fake tree in tests. The ioctls are hand-written over libc ([`v4l2`]): the
//! `v4l` crate generates its bindings with bindgen (libclang at build time), nokhwa brings far more
//! than a capture loop; eight calls do not need either.

mod source;
pub(crate) mod v4l2;

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Frame;
use super::clock::FrameRate;
use super::cpu_adaptation::{LADDER, VideoFormat};
use super::pixel_format::{self, PixelFormatError};
pub use source::CameraSource;

/// The frame formats taken from a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CameraFormat {
    /// Packed 4:2:2, what most USB cameras give uncompressed.
    #[serde(rename = "YUYV")]
    Yuyv,
    /// Semi-planar 4:2:0.
    #[serde(rename = "NV12")]
    Nv12,
    /// A JPEG per frame: large sizes at full rate over USB 2, at the cost of decoding.
    #[serde(rename = "MJPEG")]
    Mjpeg,
}

const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}

impl CameraFormat {
    /// The V4L2 code.
    pub fn fourcc(self) -> u32 {
        match self {
            CameraFormat::Yuyv => fourcc(b"YUYV"),
            CameraFormat::Nv12 => fourcc(b"NV12"),
            CameraFormat::Mjpeg => fourcc(b"MJPG"),
        }
    }

    /// The format of a V4L2 code, if it is one taken here (`JPEG` counts as MJPEG).
    pub fn from_fourcc(code: u32) -> Option<Self> {
        [CameraFormat::Yuyv, CameraFormat::Nv12, CameraFormat::Mjpeg]
            .into_iter()
            .find(|f| f.fourcc() == code)
            .or((code == fourcc(b"JPEG")).then_some(CameraFormat::Mjpeg))
    }

    /// Delivered uncompressed (no decoding to do).
    pub fn is_raw(self) -> bool {
        self != CameraFormat::Mjpeg
    }

    /// The bytes of one row as the converters take them (MJPEG has no rows).
    fn row_bytes(self, width: usize) -> Option<usize> {
        match self {
            CameraFormat::Yuyv => Some(width * 2),
            CameraFormat::Nv12 => Some(width),
            CameraFormat::Mjpeg => None,
        }
    }

    /// One frame of this format as I420.
    pub fn to_i420(self, bytes: &[u8], width: usize, height: usize) -> Result<Frame, PixelFormatError> {
        match self {
            CameraFormat::Yuyv => pixel_format::yuyv_to_i420(bytes, width, height),
            CameraFormat::Nv12 => pixel_format::nv12_to_i420(bytes, width, height),
            CameraFormat::Mjpeg => pixel_format::mjpeg_to_i420(bytes, width, height),
        }
    }

    /// One frame as the driver filled its buffer: rows `stride` bytes apart (a driver may pad each
    /// row past `width`; MJPEG has no rows and ignores it), as I420. A short or padded buffer is
    /// repacked row by row; what is missing is an error, never a panic.
    pub fn buffer_to_i420(self, bytes: &[u8], stride: usize, width: usize, height: usize) -> Result<Frame, PixelFormatError> {
        match self.row_bytes(width) {
            Some(row) if stride > row => {
                let rows = if self == CameraFormat::Nv12 { height + height / 2 } else { height };
                let packed: Vec<u8> = bytes.chunks(stride).take(rows).flat_map(|r| &r[..row.min(r.len())]).copied().collect();
                self.to_i420(&packed, width, height)
            }
            _ => self.to_i420(bytes, width, height),
        }
    }

    /// The name `hail devices` shows.
    pub fn name(self) -> &'static str {
        match self {
            CameraFormat::Yuyv => "YUYV",
            CameraFormat::Nv12 => "NV12",
            CameraFormat::Mjpeg => "MJPEG",
        }
    }
}

/// A format, size and rate a camera captures in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraMode {
    /// The frame format.
    pub format: CameraFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub rate: FrameRate,
}

impl CameraMode {
    /// Frames per second, rounded to two decimals (29.97).
    pub fn fps(&self) -> f64 {
        (f64::from(self.rate.num()) / f64::from(self.rate.den()) * 100.0).round() / 100.0
    }
}

impl std::fmt::Display for CameraMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}x{} @ {} fps", self.format.name(), self.width, self.height, self.fps())
    }
}

impl Serialize for CameraMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Mode {
            format: CameraFormat,
            width: u32,
            height: u32,
            fps: f64,
        }
        Mode { format: self.format, width: self.width, height: self.height, fps: self.fps() }.serialize(s)
    }
}

/// A camera as `hail devices` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraInfo {
    /// Its name (the driver's, from sysfs).
    pub name: String,
    /// Its device node.
    pub path: PathBuf,
    /// The modes it captures in that can be taken, by format (YUYV, NV12, MJPEG), larger and
    /// faster first.
    pub modes: Vec<CameraMode>,
    /// Why it cannot be used, if it cannot (not a V4L2 device, no permission, no format taken).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl CameraInfo {
    /// Its modes as `hail devices` prints them: one line per format and size, with its rates
    /// (`YUYV 640x480 @ 30, 15 fps`).
    pub fn mode_lines(&self) -> Vec<String> {
        let mut lines: Vec<(String, Vec<String>)> = Vec::new();
        for m in &self.modes {
            let head = format!("{} {}x{}", m.format.name(), m.width, m.height);
            let fps = m.fps().to_string();
            match lines.last_mut() {
                Some((h, rates)) if *h == head => rates.push(fps),
                _ => lines.push((head, vec![fps])),
            }
        }
        lines.into_iter().map(|(head, rates)| format!("{head} @ {} fps", rates.join(", "))).collect()
    }
}

/// Why a camera cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CameraError {
    /// There is no camera at all.
    #[error("no camera found: there is no video capture device (/dev/video*) on this machine")]
    NoCamera,
    /// None matches the name asked for.
    #[error("no camera matches {wanted:?} (`hail devices` lists the cameras)")]
    NoMatch {
        /// The name or path asked for.
        wanted: String,
    },
    /// The camera is there but cannot be used.
    #[error("camera {path}: {why}")]
    Device {
        /// Its device node.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The directory sysfs lists video devices in, under `root`.
fn class_dir(root: &Path) -> PathBuf {
    root.join("sys/class/video4linux")
}

/// The number in `videoN` (for ordering video2 before video10).
fn node_number(node: &str) -> u32 {
    node.trim_start_matches(|c: char| !c.is_ascii_digit()).parse().unwrap_or(u32::MAX)
}

/// The cameras under `root` (`/` for the machine's own), in device-number order; an empty list
/// when there are none. Nodes that are not capture nodes (a camera's metadata node) are left
/// out; a node that cannot be opened or queried is listed with its problem.
pub fn list_cameras(root: &Path) -> Vec<CameraInfo> {
    let Ok(entries) = std::fs::read_dir(class_dir(root)) else { return Vec::new() };
    let mut nodes: Vec<String> =
        entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("video")).collect();
    nodes.sort_by_key(|n| (node_number(n), n.clone()));
    nodes.into_iter().filter_map(|node| probe(root, &node)).collect()
}

/// One node's listing; `None` for a node that is not a capture node.
fn probe(root: &Path, node: &str) -> Option<CameraInfo> {
    let name = std::fs::read_to_string(class_dir(root).join(node).join("name"))
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|_| node.to_owned());
    let path = root.join("dev").join(node);
    let mut info = CameraInfo { name, path, modes: Vec::new(), problem: None };
    let device = match v4l2::Device::open(&info.path) {
        Ok(d) => d,
        Err(e) => {
            info.problem = Some(format!("cannot open it: {e}"));
            return Some(info);
        }
    };
    match device.caps() {
        Err(e) => info.problem = Some(not_a_device(&e)),
        Ok(caps) if !caps.streaming_capture => return None,
        Ok(_) => {
            info.modes = modes_of(&device);
            if info.modes.is_empty() {
                info.problem = Some("it offers none of the formats taken (YUYV, NV12, MJPEG)".into());
            }
        }
    }
    Some(info)
}

fn not_a_device(e: &std::io::Error) -> String {
    format!("not a V4L2 video device ({e})")
}

/// The sizes tried within a driver's size range: the ladder's and the usual camera sizes.
const USUAL_SIZES: [(u32, u32); 4] = [(640, 480), (1280, 720), (1920, 1080), (320, 240)];

/// The sizes to offer from one of a driver's size answers: a discrete size itself; within a
/// range, the ladder's sizes, the usual camera sizes and the largest.
fn sizes_in(range: v4l2::Range<(u32, u32)>) -> Vec<(u32, u32)> {
    match range {
        v4l2::Range::Discrete(size) => vec![size],
        v4l2::Range::Stepwise { min, max } => {
            let ladder = LADDER.iter().map(|f| (f.width as u32, f.height as u32));
            let inside = |&(w, h): &(u32, u32)| (min.0..=max.0).contains(&w) && (min.1..=max.1).contains(&h);
            let mut sizes = Vec::new();
            for size in ladder.chain(USUAL_SIZES).chain([max]).filter(inside) {
                if !sizes.contains(&size) {
                    sizes.push(size);
                }
            }
            sizes
        }
    }
}

/// The rates to offer from one of a driver's frame-interval answers (seconds as `(numerator,
/// denominator)`): a discrete interval's rate; within a range, its fastest rate and 30 and 15 fps
/// when they lie inside it. Zero intervals give nothing.
fn rates_in(range: v4l2::Range<(u32, u32)>) -> Vec<FrameRate> {
    // An interval of n/d seconds is d/n frames per second.
    let rate = |(n, d): (u32, u32)| FrameRate::new(d, n);
    match range {
        v4l2::Range::Discrete(interval) => rate(interval).into_iter().collect(),
        v4l2::Range::Stepwise { min, max } => {
            let Some(fastest) = rate(min) else { return Vec::new() };
            let slowest = rate(max).map_or(1, |r| r.ceil_fps());
            let whole = fastest.num() / fastest.den();
            let usual =
                [30, 15].into_iter().filter(|f| (slowest..whole).contains(f)).filter_map(|f| FrameRate::new(f, 1));
            std::iter::once(fastest).chain(usual).collect()
        }
    }
}

/// The modes a device advertises in the formats taken, by format (YUYV, NV12, MJPEG), larger and
/// faster first.
fn modes_of(device: &v4l2::Device) -> Vec<CameraMode> {
    let mut modes = Vec::new();
    for format in device.formats().into_iter().filter_map(CameraFormat::from_fourcc) {
        let code = format.fourcc();
        for size in device.sizes(code).into_iter().flat_map(sizes_in) {
            let mut rates: Vec<FrameRate> = device.intervals(code, size).into_iter().flat_map(rates_in).collect();
            if rates.is_empty() {
                // A driver that does not list rates gives its own; most give 30.
                rates.push(FrameRate::THIRTY);
            }
            modes.extend(rates.into_iter().map(|rate| CameraMode { format, width: size.0, height: size.1, rate }));
        }
    }
    modes.sort_by_key(|m| (m.format, std::cmp::Reverse((u64::from(m.width) * u64::from(m.height), (m.fps() * 100.0) as u32))));
    modes.dedup();
    modes
}

/// The camera `wanted` names (part of its name, any case, or its device node: `/dev/video0` or
/// `video0`), or the first usable one when `None`.
pub fn find_camera(root: &Path, wanted: Option<&str>) -> Result<CameraInfo, CameraError> {
    let cameras = list_cameras(root);
    if cameras.is_empty() {
        return Err(CameraError::NoCamera);
    }
    let usable = |c: CameraInfo| match &c.problem {
        None => Ok(c),
        Some(why) => Err(CameraError::Device { path: c.path.clone(), why: why.clone() }),
    };
    let Some(wanted) = wanted else {
        let first_problem = cameras[0].clone();
        return cameras.into_iter().find(|c| c.problem.is_none()).map_or_else(|| usable(first_problem), Ok);
    };
    let lower = wanted.to_lowercase();
    let node = |c: &CameraInfo| c.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let matches = |c: &CameraInfo| {
        Path::new(wanted) == c.path
            || root.join(wanted.trim_start_matches('/')) == c.path
            || node(c) == wanted
            || c.name.to_lowercase().contains(&lower)
    };
    match cameras.into_iter().find(matches) {
        Some(c) => usable(c),
        None => Err(CameraError::NoMatch { wanted: wanted.to_owned() }),
    }
}

/// The mode to capture in for the encoder's `target` (the CPU ladder's format at the start of the
/// call), among a camera's `modes`; `None` when it has none. In order of what matters most:
///
/// 1. a size that covers the target (no upscaling), else the largest there is;
/// 2. the target's frame rate, or as near below it as there is (a mode faster than the target only
///    when nothing reaches it: frames past the target's rate are read and dropped);
/// 3. not faster than the target (no frames captured for nothing);
/// 4. uncompressed (YUYV, NV12) over MJPEG, which costs a decode per frame; NV12 over YUYV;
/// 5. the smallest covering size (least to convert and scale).
pub fn choose_mode(modes: &[CameraMode], target: VideoFormat) -> Option<CameraMode> {
    let (tw, th) = (target.width as u64, target.height as u64);
    let target_fps = target.fps.max(1);
    modes.iter().copied().max_by_key(|m| {
        let (w, h) = (u64::from(m.width), u64::from(m.height));
        let covers = w >= tw && h >= th;
        let area = w * h;
        // 29.97 counts as 30.
        let fps = m.rate.ceil_fps();
        let format_rank = match m.format {
            CameraFormat::Nv12 => 2,
            CameraFormat::Yuyv => 1,
            CameraFormat::Mjpeg => 0,
        };
        (
            covers,
            if covers { 0 } else { area },
            fps.min(target_fps),
            fps <= target_fps,
            format_rank,
            std::cmp::Reverse(area),
        )
    })
}

/// The Unix time (µs) a frame stamped `buffer_us` on the monotonic clock was captured, when the
/// monotonic clock reads `monotonic_now_us` and the wall clock `unix_now_us`. A stamp that is
/// missing (0), in the future or older than [`STALE_STAMP_US`] is not trusted: the frame is
/// taken as captured now.
pub fn capture_time_us(buffer_us: i64, monotonic_now_us: i64, unix_now_us: u64) -> u64 {
    let age = monotonic_now_us.saturating_sub(buffer_us);
    if buffer_us <= 0 || !(0..=STALE_STAMP_US).contains(&age) {
        return unix_now_us;
    }
    unix_now_us.saturating_sub(age as u64)
}

/// A camera's stamp older than this (µs) is taken for another clock than the monotonic one.
pub const STALE_STAMP_US: i64 = 5_000_000;

#[cfg(test)]
mod tests;
