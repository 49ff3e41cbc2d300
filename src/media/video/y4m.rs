//! Y4M (YUV4MPEG2) files, 4:2:0 8-bit: the headless twin of a camera (source) and of a window
//! (sink).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::Frame;
use super::clock::FrameRate;

/// Why a Y4M file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    /// Reading or writing failed.
    #[error("video file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Not a Y4M file, or a kind this reader does not take.
    #[error("video file {path}: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Reads frames from a Y4M file.
#[derive(Debug)]
pub struct Y4mReader {
    path: PathBuf,
    input: BufReader<File>,
    width: usize,
    height: usize,
    rate: FrameRate,
}

impl Y4mReader {
    /// Opens a file and reads its header.
    pub fn open(path: &Path) -> Result<Self, Y4mError> {
        let io = |source| Y4mError::Io { path: path.to_owned(), source };
        let bad = |why: &str| Y4mError::Format { path: path.to_owned(), why: why.to_owned() };
        let mut input = BufReader::new(File::open(path).map_err(io)?);
        let mut header = Vec::new();
        input.by_ref().take(1024).read_until(b'\n', &mut header).map_err(io)?;
        let header = String::from_utf8(header).map_err(|_| bad("the header is not text"))?;
        let mut fields = header.trim_end().split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(bad("not a YUV4MPEG2 file"));
        }
        let (mut width, mut height, mut rate) = (0, 0, FrameRate::THIRTY);
        for f in fields {
            let (tag, value) = f.split_at(f.chars().next().map_or(0, char::len_utf8));
            match tag {
                "W" => width = value.parse().map_err(|_| bad("bad width"))?,
                "H" => height = value.parse().map_err(|_| bad("bad height"))?,
                "F" => {
                    let (n, d) = value.split_once(':').ok_or_else(|| bad("bad frame rate"))?;
                    let (n, d) =
                        (n.parse().map_err(|_| bad("bad frame rate"))?, d.parse().map_err(|_| bad("bad frame rate"))?);
                    rate = FrameRate::new(n, d).ok_or_else(|| bad("bad frame rate"))?;
                }
                "C" if !value.starts_with("420") || value.contains("p10") || value.contains("p12") => {
                    return Err(bad("only 8-bit 4:2:0 is supported"));
                }
                "I" if value != "p" && value != "?" => return Err(bad("only progressive video is supported")),
                _ => {}
            }
        }
        if Frame::black(width, height).is_none() {
            return Err(bad("width and height must be even and at most 7680x4320"));
        }
        Ok(Y4mReader { path: path.to_owned(), input, width, height, rate })
    }

    /// Picture size.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// The frame rate in the header (30 fps when it names none).
    pub fn frame_rate(&self) -> FrameRate {
        self.rate
    }

    /// The next frame, or `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Y4mError> {
        let io = |source| Y4mError::Io { path: self.path.clone(), source };
        let mut line = Vec::new();
        let n = self.input.by_ref().take(256).read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            return Ok(None);
        }
        if !line.starts_with(b"FRAME") || line.last() != Some(&b'\n') {
            return Err(Y4mError::Format { path: self.path.clone(), why: "a frame header is damaged".into() });
        }
        let mut frame = Frame::black(self.width, self.height).expect("checked at open");
        let io = |source| Y4mError::Io { path: self.path.clone(), source };
        for plane in [&mut frame.y, &mut frame.u, &mut frame.v] {
            self.input.read_exact(plane).map_err(io)?;
        }
        Ok(Some(frame))
    }
}

/// Writes frames to a Y4M file.
#[derive(Debug)]
pub struct Y4mWriter {
    path: PathBuf,
    out: BufWriter<File>,
    width: usize,
    height: usize,
}

/// The header's length: the rate is written again when the file is completed, in the same bytes
/// (an `X` comment field pads it; readers skip `X` fields).
const HEADER_LEN: usize = 80;

fn header(width: usize, height: usize, rate: FrameRate) -> Vec<u8> {
    let mut h = format!("YUV4MPEG2 W{width} H{height} F{rate} Ip A1:1 C420jpeg X");
    while h.len() < HEADER_LEN - 1 {
        h.push('.');
    }
    h.push('\n');
    h.into_bytes()
}

impl Y4mWriter {
    /// Creates the file for `width × height` at `rate` (until [`Y4mWriter::finish`] says
    /// otherwise).
    pub fn create(path: &Path, width: usize, height: usize, rate: FrameRate) -> Result<Self, Y4mError> {
        let io = |source| Y4mError::Io { path: path.to_owned(), source };
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        out.write_all(&header(width, height, rate)).map_err(io)?;
        Ok(Y4mWriter { path: path.to_owned(), out, width, height })
    }

    /// The file's picture size.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Appends a frame (of the file's size).
    pub fn write(&mut self, frame: &Frame) -> Result<(), Y4mError> {
        if (frame.width, frame.height) != (self.width, self.height) {
            return Err(Y4mError::Format {
                path: self.path.clone(),
                why: format!("frame is {}x{}, the file {}x{}", frame.width, frame.height, self.width, self.height),
            });
        }
        let io = |source| Y4mError::Io { path: self.path.clone(), source };
        self.out.write_all(b"FRAME\n").map_err(io)?;
        for plane in [&frame.y, &frame.u, &frame.v] {
            self.out.write_all(plane).map_err(io)?;
        }
        Ok(())
    }

    /// Writes `rate` into the header and flushes to disk.
    pub fn finish(mut self, rate: FrameRate) -> Result<(), Y4mError> {
        let failed = |source| Y4mError::Io { path: self.path.clone(), source };
        self.out.flush().map_err(failed)?;
        let file = self.out.get_mut();
        file.seek(io::SeekFrom::Start(0)).map_err(failed)?;
        file.write_all(&header(self.width, self.height, rate)).map_err(failed)?;
        file.flush().map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::pattern::{self, Stamp};

    #[test]
    fn frames_round_trip_through_a_file_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.y4m");
        let mut w = Y4mWriter::create(&path, 320, 180, FrameRate::THIRTY).unwrap();
        let frames: Vec<_> =
            (0..5).map(|n| pattern::draw(320, 180, Stamp { counter: n, capture_ms: n * 33 }).unwrap()).collect();
        for f in &frames {
            w.write(f).unwrap();
        }
        assert!(w.write(&Frame::black(640, 360).unwrap()).is_err(), "a frame of another size");
        let pal = FrameRate::new(25, 1).unwrap();
        w.finish(pal).unwrap();
        let mut r = Y4mReader::open(&path).unwrap();
        assert_eq!((r.size(), r.frame_rate()), ((320, 180), pal), "the rate is written at the end");
        for (n, f) in frames.iter().enumerate() {
            let got = r.next_frame().unwrap().unwrap();
            assert_eq!(&got, f);
            assert_eq!(pattern::read(&got).unwrap().counter, n as u32);
        }
        assert!(r.next_frame().unwrap().is_none());

        // A truncated file, a wrong magic, an unsupported chroma format.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let mut r = Y4mReader::open(&path).unwrap();
        let results: Vec<_> = std::iter::from_fn(|| Some(r.next_frame())).take(5).collect();
        assert!(results.iter().any(Result::is_err), "the cut frame is an error, not a panic");
        for header in
            ["NOTY4M W2 H2\n", "YUV4MPEG2 W320 H180 C444\n", "YUV4MPEG2 W321 H180\n", "YUV4MPEG2 W320 H180 F0:1\n"]
        {
            std::fs::write(&path, header).unwrap();
            assert!(matches!(Y4mReader::open(&path), Err(Y4mError::Format { .. })), "{header}");
        }
    }
}
