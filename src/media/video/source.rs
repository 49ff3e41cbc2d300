//! Where a call's video comes from and goes to: the moving test pattern, Y4M files, or nothing.
//! (This machine class has no cameras; a camera source would join [`VideoSourceSpec`].)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Frame;
use super::cpu_adaptation::VideoFormat;
use super::pattern::{self, Stamp};
use super::y4m::{Y4mError, Y4mReader, Y4mWriter};

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum VideoSourceSpec {
    /// The moving test pattern with the frame counter and capture time burned in (the default).
    Pattern,
    /// A Y4M file, looped.
    File(PathBuf),
}

/// Where received video goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum VideoSinkSpec {
    /// Decoded and dropped (the default: stats only).
    Null,
    /// A Y4M file at the first picture's size (later pictures of other sizes are rescaled).
    File(PathBuf),
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
            _ if s.to_ascii_lowercase().ends_with(".y4m") => Ok(VideoSourceSpec::File(PathBuf::from(s))),
            _ => Err(VideoSpecError { what: "input", spec: s.into(), why: "expected pattern or a .y4m file" }),
        }
    }
}

impl std::str::FromStr for VideoSinkSpec {
    type Err = VideoSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "null" => Ok(VideoSinkSpec::Null),
            _ if s.to_ascii_lowercase().ends_with(".y4m") => Ok(VideoSinkSpec::File(PathBuf::from(s))),
            _ => Err(VideoSpecError { what: "output", spec: s.into(), why: "expected null or a .y4m file" }),
        }
    }
}

impl std::fmt::Display for VideoSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VideoSourceSpec::Pattern => f.write_str("pattern"),
            VideoSourceSpec::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl std::fmt::Display for VideoSinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VideoSinkSpec::Null => f.write_str("null"),
            VideoSinkSpec::File(p) => write!(f, "{}", p.display()),
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

/// A source of pictures.
pub trait VideoSource: Send {
    /// The next picture, ideally at `format`'s size (the sender rescales others), stamped (when the
    /// source draws) with `stamp`. `None`: nothing this time.
    fn next_picture(&mut self, format: VideoFormat, stamp: Stamp) -> Result<Option<Frame>, Y4mError>;
}

/// The test pattern.
#[derive(Debug, Default)]
pub struct PatternSource;

impl VideoSource for PatternSource {
    fn next_picture(&mut self, format: VideoFormat, stamp: Stamp) -> Result<Option<Frame>, Y4mError> {
        Ok(pattern::draw(format.width, format.height, stamp))
    }
}

/// A Y4M file, from the start again at its end.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    reader: Y4mReader,
}

impl VideoSource for FileSource {
    fn next_picture(&mut self, _format: VideoFormat, _stamp: Stamp) -> Result<Option<Frame>, Y4mError> {
        if let Some(f) = self.reader.next_frame()? {
            return Ok(Some(f));
        }
        self.reader = Y4mReader::open(&self.path)?;
        self.reader.next_frame()
    }
}

/// Opens a source.
pub fn open_source(spec: &VideoSourceSpec) -> Result<Box<dyn VideoSource>, Y4mError> {
    Ok(match spec {
        VideoSourceSpec::Pattern => Box::new(PatternSource),
        VideoSourceSpec::File(path) => Box::new(FileSource { path: path.clone(), reader: Y4mReader::open(path)? }),
    })
}

/// Where rendered pictures go.
#[derive(Debug)]
pub enum VideoSink {
    /// Dropped.
    Null,
    /// A Y4M file, created at the first picture.
    File {
        /// The file.
        path: PathBuf,
        /// The writer, once the size is known.
        writer: Option<Y4mWriter>,
    },
}

impl VideoSink {
    /// A sink for `spec` (files are created at the first picture).
    pub fn open(spec: &VideoSinkSpec) -> Self {
        match spec {
            VideoSinkSpec::Null => VideoSink::Null,
            VideoSinkSpec::File(path) => VideoSink::File { path: path.clone(), writer: None },
        }
    }

    /// Writes a picture (rescaled to the file's size if needed).
    pub fn write(&mut self, picture: &Frame, fps: u32) -> Result<(), Y4mError> {
        let VideoSink::File { path, writer } = self else { return Ok(()) };
        if writer.is_none() {
            *writer = Some(Y4mWriter::create(path, picture.width, picture.height, fps)?);
        }
        let w = writer.as_mut().expect("created above");
        let (width, height) = w.size();
        if (picture.width, picture.height) == (width, height) {
            w.write(picture)
        } else {
            let scaled = picture.scaled(width, height).expect("the file's size is valid");
            w.write(&scaled)
        }
    }

    /// Completes the file.
    pub fn finish(&mut self) -> Result<(), Y4mError> {
        match self {
            VideoSink::File { writer, .. } => writer.take().map_or(Ok(()), Y4mWriter::finish),
            VideoSink::Null => Ok(()),
        }
    }
}

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
        assert!("camera".parse::<VideoSourceSpec>().is_err());
        assert!("out.mp4".parse::<VideoSinkSpec>().is_err());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.y4m");
        let mut sink = VideoSink::open(&VideoSinkSpec::File(path.clone()));
        let big = pattern::draw(640, 360, Stamp { counter: 1, capture_ms: 2 }).unwrap();
        let small = pattern::draw(320, 180, Stamp { counter: 2, capture_ms: 3 }).unwrap();
        sink.write(&big, 30).unwrap();
        sink.write(&small, 30).unwrap();
        sink.finish().unwrap();
        let mut r = Y4mReader::open(&path).unwrap();
        assert_eq!(r.size(), (640, 360));
        assert_eq!(pattern::read(&r.next_frame().unwrap().unwrap()).unwrap().counter, 1);
        let upscaled = r.next_frame().unwrap().unwrap();
        assert_eq!(pattern::read(&upscaled).unwrap().counter, 2, "the stamp survives rescaling");

        let mut src = open_source(&VideoSourceSpec::File(path.clone())).unwrap();
        let f = crate::media::video::cpu_adaptation::LADDER[0];
        for _ in 0..3 {
            assert!(src.next_picture(f, Stamp { counter: 0, capture_ms: 0 }).unwrap().is_some(), "loops");
        }
        assert!(open_source(&VideoSourceSpec::File(dir.path().join("missing.y4m"))).is_err());
    }
}
