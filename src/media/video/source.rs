//! Where a call's video comes from and goes to: the moving test pattern, Y4M files, a camera
//! ([`super::camera`]), or nothing.
//!
//! Sources carry their own clock: a source with a rate of its own (a file, a camera mode) says so
//! ([`VideoSource::frame_rate`]; the session then ticks no faster) and hands back, with each
//! picture, the time it was captured ([`Captured::capture_us`]): a 25 fps file plays at 25 fps
//! whatever the encoder's rate, and a camera gives its own timestamps there. A file sink
//! writes the rate the pictures came at, from their capture times.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Frame;
use super::camera::{CameraError, CameraSource};
use super::clock::{FrameRate, RateEstimate, SourceClock};
use super::cpu_adaptation::VideoFormat;
use super::pattern::{self, Stamp};
use super::receiver::Rendered;
use super::y4m::{Y4mError, Y4mReader, Y4mWriter};

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum VideoSourceSpec {
    /// The moving test pattern with the frame counter and capture time burned in (the default).
    Pattern,
    /// A Y4M file, looped.
    File(PathBuf),
    /// A camera: the first usable one (`camera`), or the one a name or device node picks
    /// (`camera:NAME`, `camera:/dev/video2`).
    Camera(Option<String>),
}

/// Where received video goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum VideoSinkSpec {
    /// Decoded and dropped (the default: stats only).
    Null,
    /// A Y4M file at the first picture's size (later pictures of other sizes are rescaled).
    File(PathBuf),
    /// A directory (a spec ending in `/`): in a group call one Y4M per participant,
    /// `DIR/<PeerId>.y4m` ([`VideoSinkSpec::for_participant`]); a 1:1 call writes `DIR/call.y4m`.
    Directory(PathBuf),
}

impl VideoSinkSpec {
    /// Where `participant`'s pictures go in a group call: `DIR/<participant>.y4m` for a
    /// directory, `NAME-<participant>.y4m` beside a file, nowhere for null.
    pub fn for_participant(&self, participant: &str) -> VideoSinkSpec {
        match self {
            VideoSinkSpec::Null => VideoSinkSpec::Null,
            VideoSinkSpec::Directory(dir) => VideoSinkSpec::File(dir.join(format!("{participant}.y4m"))),
            VideoSinkSpec::File(path) => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                VideoSinkSpec::File(path.with_file_name(format!("{stem}-{participant}.y4m")))
            }
        }
    }
}

/// A spec that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid video {what} {spec:?}: {why}")]
pub struct VideoSpecError {
    what: &'static str,
    spec: String,
    why: &'static str,
}

impl std::str::FromStr for VideoSourceSpec {
    type Err = VideoSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pattern" => Ok(VideoSourceSpec::Pattern),
            "camera" => Ok(VideoSourceSpec::Camera(None)),
            _ if s.starts_with("camera:") => match &s["camera:".len()..] {
                "" => Err(VideoSpecError { what: "input", spec: s.into(), why: "camera: needs a name or a device" }),
                name => Ok(VideoSourceSpec::Camera(Some(name.to_owned()))),
            },
            _ if s.to_ascii_lowercase().ends_with(".y4m") => Ok(VideoSourceSpec::File(PathBuf::from(s))),
            _ => Err(VideoSpecError {
                what: "input",
                spec: s.into(),
                why: "expected pattern, camera, camera:NAME or a .y4m file",
            }),
        }
    }
}

impl std::str::FromStr for VideoSinkSpec {
    type Err = VideoSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "null" => Ok(VideoSinkSpec::Null),
            _ if s.to_ascii_lowercase().ends_with(".y4m") => Ok(VideoSinkSpec::File(PathBuf::from(s))),
            _ if s.len() > 1 && s.ends_with('/') => Ok(VideoSinkSpec::Directory(PathBuf::from(s))),
            _ => Err(VideoSpecError {
                what: "output",
                spec: s.into(),
                why: "expected null, a .y4m file or a directory ending in /",
            }),
        }
    }
}

impl std::fmt::Display for VideoSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VideoSourceSpec::Pattern => f.write_str("pattern"),
            VideoSourceSpec::File(p) => write!(f, "{}", p.display()),
            VideoSourceSpec::Camera(None) => f.write_str("camera"),
            VideoSourceSpec::Camera(Some(name)) => write!(f, "camera:{name}"),
        }
    }
}

impl std::fmt::Display for VideoSinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VideoSinkSpec::Null => f.write_str("null"),
            VideoSinkSpec::File(p) => write!(f, "{}", p.display()),
            VideoSinkSpec::Directory(p) => {
                let p = p.display().to_string();
                if p.ends_with('/') { f.write_str(&p) } else { write!(f, "{p}/") }
            }
        }
    }
}

impl From<VideoSourceSpec> for String {
    fn from(s: VideoSourceSpec) -> String {
        s.to_string()
    }
}
impl From<VideoSinkSpec> for String {
    fn from(s: VideoSinkSpec) -> String {
        s.to_string()
    }
}
impl TryFrom<String> for VideoSourceSpec {
    type Error = VideoSpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}
impl TryFrom<String> for VideoSinkSpec {
    type Error = VideoSpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What the session asks a source for ([`Output::CaptureVideo`]).
///
/// [`Output::CaptureVideo`]: crate::media::session::Output::CaptureVideo
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureRequest {
    /// The size to deliver, ideally (the sender rescales others).
    pub format: VideoFormat,
    /// What a drawing source burns into the picture.
    pub stamp: Stamp,
    /// Now, µs since the Unix epoch: the capture time of a source without a clock of its own.
    pub now_us: u64,
}

/// A picture from a source, with the time it was captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The picture.
    pub picture: Frame,
    /// When it was captured, µs since the Unix epoch, by the source's clock (a file's frame
    /// times, a camera's timestamps) or the request's `now_us`.
    pub capture_us: u64,
}

/// Why a source gave no picture.
#[derive(Debug, thiserror::Error)]
pub enum VideoSourceError {
    /// A Y4M file failed.
    #[error(transparent)]
    File(#[from] Y4mError),
    /// A camera failed, or there is none.
    #[error(transparent)]
    Camera(#[from] CameraError),
}

/// A source of pictures.
pub trait VideoSource: Send {
    /// The source's own frame rate, if it has one; `None`: it makes a picture whenever asked.
    fn frame_rate(&self) -> Option<FrameRate> {
        None
    }

    /// The picture due at `request.now_us`, or `None`: nothing new this time (a source with its
    /// own rate, asked faster than that).
    fn next_picture(&mut self, request: &CaptureRequest) -> Result<Option<Captured>, VideoSourceError>;
}

/// The test pattern.
#[derive(Debug, Default)]
pub struct PatternSource;

impl VideoSource for PatternSource {
    fn next_picture(&mut self, request: &CaptureRequest) -> Result<Option<Captured>, VideoSourceError> {
        let CaptureRequest { format, stamp, now_us } = *request;
        Ok(pattern::draw(format.width, format.height, stamp).map(|picture| Captured { picture, capture_us: now_us }))
    }
}

/// A Y4M file at its own frame rate, from the start again at its end.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    reader: Y4mReader,
    clock: SourceClock,
}

impl FileSource {
    /// Opens the file and reads its header.
    pub fn open(path: &std::path::Path) -> Result<Self, Y4mError> {
        let reader = Y4mReader::open(path)?;
        Ok(FileSource { path: path.to_owned(), clock: SourceClock::new(reader.frame_rate()), reader })
    }

    /// The next frame of the file, looping at its end.
    fn next_frame(&mut self) -> Result<Option<Frame>, Y4mError> {
        if let Some(f) = self.reader.next_frame()? {
            return Ok(Some(f));
        }
        self.reader = Y4mReader::open(&self.path)?;
        self.reader.next_frame()
    }
}

impl VideoSource for FileSource {
    fn frame_rate(&self) -> Option<FrameRate> {
        Some(self.clock.rate())
    }

    fn next_picture(&mut self, request: &CaptureRequest) -> Result<Option<Captured>, VideoSourceError> {
        let Some(due) = self.clock.due(request.now_us) else { return Ok(None) };
        // Asked slower than the file's rate (the CPU ladder's 15 fps): the frames between are read
        // past, so the file still plays in real time. A long stall skips at most a few seconds.
        for _ in 0..due.skip.min(u64::from(self.clock.rate().ceil_fps()) * 4) {
            self.next_frame()?;
        }
        Ok(self.next_frame()?.map(|picture| Captured { picture, capture_us: due.capture_us }))
    }
}

/// Opens a source; `format` is what the encoder starts at (a camera picks its mode for it).
pub fn open_source(spec: &VideoSourceSpec, format: VideoFormat) -> Result<Box<dyn VideoSource>, VideoSourceError> {
    Ok(match spec {
        VideoSourceSpec::Pattern => Box::new(PatternSource),
        VideoSourceSpec::File(path) => Box::new(FileSource::open(path)?),
        VideoSourceSpec::Camera(name) => Box::new(CameraSource::open(Path::new("/"), name.as_deref(), format)?),
    })
}

/// Checks, before a call starts, that `spec` can be opened as far as that can be told without
/// streaming: a camera must exist and be usable (the call set-up fails with the reason when it
/// is not); other sources are checked when opened.
pub fn check_source(spec: &VideoSourceSpec) -> Result<(), VideoSourceError> {
    match spec {
        VideoSourceSpec::Camera(name) => {
            super::camera::find_camera(Path::new("/"), name.as_deref()).map(drop).map_err(Into::into)
        }
        VideoSourceSpec::Pattern | VideoSourceSpec::File(_) => Ok(()),
    }
}

/// Where rendered pictures go.
#[derive(Debug)]
pub enum VideoSink {
    /// Dropped.
    Null,
    /// A Y4M file, created at the first picture; its header gets the rate the pictures came at
    /// when it is completed.
    File {
        /// The file.
        path: PathBuf,
        /// The writer, once the size is known.
        writer: Option<Y4mWriter>,
        /// The rate, from the pictures' capture times.
        rate: RateEstimate,
    },
}

impl VideoSink {
    /// A sink for `spec` (files are created at the first picture).
    pub fn open(spec: &VideoSinkSpec) -> Self {
        match spec {
            VideoSinkSpec::Null => VideoSink::Null,
            VideoSinkSpec::File(path) => {
                VideoSink::File { path: path.clone(), writer: None, rate: RateEstimate::default() }
            }
            VideoSinkSpec::Directory(dir) => {
                VideoSink::File { path: dir.join("call.y4m"), writer: None, rate: RateEstimate::default() }
            }
        }
    }

    /// Writes a shown picture (rescaled to the file's size if needed).
    pub fn write(&mut self, shown: &Rendered) -> Result<(), Y4mError> {
        let VideoSink::File { path, writer, rate } = self else { return Ok(()) };
        let picture = &shown.picture;
        rate.push(shown.capture_us);
        let w = match writer {
            Some(w) => w,
            None => writer.insert(Y4mWriter::create(path, picture.width, picture.height, DEFAULT_RATE)?),
        };
        let (width, height) = w.size();
        if (picture.width, picture.height) == (width, height) {
            w.write(picture)
        } else {
            let scaled = picture.scaled(width, height).expect("the file's size is valid");
            w.write(&scaled)
        }
    }

    /// Completes the file, with the rate the pictures came at in its header.
    pub fn finish(&mut self) -> Result<(), Y4mError> {
        match self {
            VideoSink::File { writer, rate, .. } => match writer.take() {
                Some(w) => w.finish(rate.rate().unwrap_or(DEFAULT_RATE)),
                None => Ok(()),
            },
            VideoSink::Null => Ok(()),
        }
    }
}

/// A file sink's rate until the pictures say otherwise (one picture alone has no rate).
const DEFAULT_RATE: FrameRate = FrameRate::THIRTY;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back_and_the_file_sink_rescales() {
        for s in ["pattern", "/tmp/in.y4m"] {
            assert_eq!(s.parse::<VideoSourceSpec>().unwrap().to_string(), s);
        }
        for s in ["null", "out.Y4M"] {
            assert_eq!(s.parse::<VideoSinkSpec>().unwrap().to_string(), s);
        }
        for s in ["camera", "camera:Integrated Webcam", "camera:/dev/video2"] {
            assert_eq!(s.parse::<VideoSourceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("camera:/dev/video2".parse(), Ok(VideoSourceSpec::Camera(Some("/dev/video2".into()))));
        assert!("camera:".parse::<VideoSourceSpec>().is_err());
        assert!("webcam".parse::<VideoSourceSpec>().is_err());
        assert!("out.mp4".parse::<VideoSinkSpec>().is_err());
        let dir_spec: VideoSinkSpec = "seen/".parse().unwrap();
        assert_eq!(dir_spec.to_string(), "seen/");
        assert_eq!(dir_spec.for_participant("12D3Koo"), VideoSinkSpec::File("seen/12D3Koo.y4m".into()));
        assert_eq!(
            "a/b.y4m".parse::<VideoSinkSpec>().unwrap().for_participant("x"),
            VideoSinkSpec::File("a/b-x.y4m".into())
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.y4m");
        let mut sink = VideoSink::open(&VideoSinkSpec::File(path.clone()));
        let big = pattern::draw(640, 360, Stamp { counter: 1, capture_ms: 2 }).unwrap();
        let small = pattern::draw(320, 180, Stamp { counter: 2, capture_ms: 3 }).unwrap();
        sink.write(&Rendered { picture: big, frame: 1, capture_us: 2000 }).unwrap();
        sink.write(&Rendered { picture: small, frame: 2, capture_us: 3000 }).unwrap();
        sink.finish().unwrap();
        let mut r = Y4mReader::open(&path).unwrap();
        assert_eq!(r.size(), (640, 360));
        assert_eq!(pattern::read(&r.next_frame().unwrap().unwrap()).unwrap().counter, 1);
        let upscaled = r.next_frame().unwrap().unwrap();
        assert_eq!(pattern::read(&upscaled).unwrap().counter, 2, "the stamp survives rescaling");

        let format = crate::media::video::cpu_adaptation::LADDER[0];
        let mut src = open_source(&VideoSourceSpec::File(path.clone()), format).unwrap();
        let rate = src.frame_rate().unwrap();
        for n in 0..3 {
            let now_us = rate.frame_time_us(n);
            let request = CaptureRequest { format, stamp: Stamp { counter: 0, capture_ms: 0 }, now_us };
            assert!(src.next_picture(&request).unwrap().is_some(), "loops");
        }
        assert!(open_source(&VideoSourceSpec::File(dir.path().join("missing.y4m")), format).is_err());
    }

    /// Writes `frames` pattern pictures at `rate` into `path`.
    fn pattern_file(path: &std::path::Path, frames: u32, rate: FrameRate) {
        let mut w = Y4mWriter::create(path, 320, 180, rate).unwrap();
        for n in 0..frames {
            w.write(&pattern::draw(320, 180, Stamp { counter: n, capture_ms: 0 }).unwrap()).unwrap();
        }
        w.finish(rate).unwrap();
    }

    #[test]
    fn a_25_fps_file_asked_at_30_fps_plays_at_25_fps_and_a_sink_writes_the_rate_it_came_at() {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.y4m"), dir.path().join("out.y4m"));
        let pal = FrameRate::new(25, 1).unwrap();
        pattern_file(&input, 20, pal);
        let format = crate::media::video::cpu_adaptation::LADDER[2];
        let mut src = open_source(&VideoSourceSpec::File(input), format).unwrap();
        assert_eq!(src.frame_rate(), Some(pal));
        let mut sink = VideoSink::open(&VideoSinkSpec::File(output.clone()));
        let start_us = 1_700_000_000_000_000;
        let mut shown = Vec::new();
        // Two seconds of the encoder's 30 fps ticks.
        for tick in 0..60u64 {
            let now_us = start_us + tick * 1_000_000 / 30;
            let request = CaptureRequest { format, stamp: Stamp { counter: 0, capture_ms: 0 }, now_us };
            if let Some(c) = src.next_picture(&request).unwrap() {
                let counter = pattern::read(&c.picture).unwrap().counter;
                sink.write(&Rendered { picture: c.picture, frame: shown.len() as u32, capture_us: c.capture_us }).unwrap();
                shown.push((counter, c.capture_us - start_us));
            }
        }
        sink.finish().unwrap();
        assert_eq!(shown.len(), 50, "two seconds of a 25 fps file are 50 pictures");
        for (n, &(counter, at)) in shown.iter().enumerate() {
            assert_eq!(counter, n as u32 % 20, "in order, looping after 20");
            assert_eq!(at, n as u64 * 40_000, "each at the file's own time");
        }
        let r = Y4mReader::open(&output).unwrap();
        assert_eq!(r.frame_rate(), pal, "the sink writes the rate the pictures came at");
    }
}
