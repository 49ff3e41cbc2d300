//! The encoder's side of sending video: an [`EncodeWorker`] owns a [`VideoEncoder`] and carries
//! out the [`EncodeJob`]s the sans-IO [`VideoSender`](super::sender::VideoSender) decides on. It
//! does the heavy work (scaling, encoding) and it alone reads the clock: how long an encode took is
//! what the sender's CPU adaptation needs, and the worker hands that back in [`Encoded::took`].
//!
//! A driver runs it on a thread of its own; [`VideoSender::send`](super::sender::VideoSender::send)
//! runs one inline.

use std::time::{Duration, Instant};

use super::Frame;
use super::cpu_adaptation::VideoFormat;
use crate::media::codec::av1::{EncodedFrame, EncoderKind, VideoCodecError, VideoEncoder};

/// What to encode, as the sender decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeJob {
    /// The picture (any size: the worker scales it to `format`).
    pub picture: Frame,
    /// When it was captured, µs since the Unix epoch (sender's clock).
    pub capture_us: u64,
    /// The format to encode at.
    pub format: VideoFormat,
    /// The target bitrate, bps.
    pub bitrate: u32,
    /// Make this picture a keyframe.
    pub keyframe: bool,
    /// Open a new encoder first (the first picture, a new format, after a pause or a failure).
    pub restart: bool,
}

/// What a worker made of an [`EncodeJob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The temporal units the encoder gave back (an encoder may hold pictures back, and return
    /// them with a later job).
    pub units: Vec<EncodedFrame>,
    /// The encoder began a new stream with this picture (opened anew, or restarted for a new
    /// bitrate): what it held back is gone, and its input numbering starts again at 0.
    pub restarted: bool,
    /// How long the encoder took over the picture.
    pub took: Duration,
}

/// Opens an encoder for a format at a bitrate.
pub type EncoderOpener = Box<dyn FnMut(VideoFormat, u32) -> Result<Box<dyn VideoEncoder>, VideoCodecError> + Send>;

/// Owns the encoder and applies jobs to it.
pub struct EncodeWorker {
    open: EncoderOpener,
    encoder: Option<Box<dyn VideoEncoder>>,
    /// The bitrate last given to the encoder.
    bitrate: u32,
}

impl std::fmt::Debug for EncodeWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeWorker")
            .field("encoder", &self.encoder.as_ref().map(|e| e.name()))
            .field("bitrate", &self.bitrate)
            .finish_non_exhaustive()
    }
}

impl EncodeWorker {
    /// A worker opening encoders of `kind` on `threads` threads (none is open until the first job).
    pub fn new(kind: EncoderKind, threads: usize) -> Self {
        Self::layered(kind, threads, 1)
    }

    /// [`EncodeWorker::new`] with encoders of `layers` temporal layers (where the encoder has
    /// them: libaom; rav1e's units are all on the base layer).
    pub fn layered(kind: EncoderKind, threads: usize, layers: u8) -> Self {
        Self::with_opener(move |f: VideoFormat, bitrate| {
            kind.open_layered(f.width, f.height, u64::from(f.fps), bitrate, threads, layers)
        })
    }

    /// A worker opening its encoders with `open` (a fake encoder in tests and the simulator).
    pub fn with_opener(
        open: impl FnMut(VideoFormat, u32) -> Result<Box<dyn VideoEncoder>, VideoCodecError> + Send + 'static,
    ) -> Self {
        EncodeWorker { open: Box::new(open), encoder: None, bitrate: 0 }
    }

    /// Drops the encoder (video off: its memory and threads go); the next job opens a new one.
    pub fn release(&mut self) {
        self.encoder = None;
    }

    /// Encodes the job's picture. On an error the encoder is dropped: the next job opens a new one.
    pub fn encode(&mut self, job: &EncodeJob) -> Result<Encoded, VideoCodecError> {
        let result = self.try_encode(job);
        if result.is_err() {
            self.encoder = None;
        }
        result
    }

    fn try_encode(&mut self, job: &EncodeJob) -> Result<Encoded, VideoCodecError> {
        let format = job.format;
        let scaled;
        let picture = if (job.picture.width, job.picture.height) == (format.width, format.height) {
            &job.picture
        } else {
            // Scaled to fit, keeping its shape: a 4:3 camera or a 2.35:1 film is not stretched to 16:9.
            scaled = job.picture.fitted(format.width, format.height).ok_or_else(|| {
                VideoCodecError::Encoder(format!("cannot scale to {}x{}", format.width, format.height))
            })?;
            &scaled
        };
        let mut restarted = false;
        if job.restart {
            self.encoder = None;
        }
        let encoder = match self.encoder.take() {
            Some(mut encoder) if job.bitrate != self.bitrate => match encoder.set_bitrate(job.bitrate) {
                Ok(restart) => {
                    restarted = restart;
                    encoder
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the encoder refused a bitrate; starting a new one");
                    restarted = true;
                    (self.open)(format, job.bitrate)?
                }
            },
            Some(encoder) => encoder,
            None => {
                restarted = true;
                (self.open)(format, job.bitrate)?
            }
        };
        self.bitrate = job.bitrate;
        let encoder = self.encoder.insert(encoder);
        // A new stream starts with a keyframe, whatever the job says.
        let keyframe = job.keyframe || restarted;
        let started = Instant::now();
        let units = encoder.encode(picture, keyframe)?;
        Ok(Encoded { units, restarted, took: started.elapsed() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::fake::FakeVideoEncoder;

    /// A fake encoder that, like rav1e, must start a new stream for a large bitrate change.
    struct Restarting(FakeVideoEncoder);

    impl VideoEncoder for Restarting {
        fn name(&self) -> &'static str {
            "restarting"
        }
        fn size(&self) -> (usize, usize) {
            self.0.size()
        }
        fn encode(&mut self, frame: &Frame, keyframe: bool) -> Result<Vec<EncodedFrame>, VideoCodecError> {
            self.0.encode(frame, keyframe)
        }
        fn flush(&mut self) -> Result<Vec<EncodedFrame>, VideoCodecError> {
            self.0.flush()
        }
        fn bitrate(&self) -> u32 {
            self.0.bitrate()
        }
        fn set_bitrate(&mut self, bitrate: u32) -> Result<bool, VideoCodecError> {
            let format = VideoFormat { width: self.size().0, height: self.size().1, fps: 30 };
            self.0 = FakeVideoEncoder::new(format, bitrate);
            Ok(true)
        }
    }

    fn job(bitrate: u32, keyframe: bool, restart: bool) -> EncodeJob {
        let format = VideoFormat { width: 320, height: 180, fps: 30 };
        EncodeJob { picture: Frame::black(640, 360).unwrap(), capture_us: 0, format, bitrate, keyframe, restart }
    }

    #[test]
    fn the_worker_opens_scales_follows_the_bitrate_and_reports_restarts() {
        let mut opened = 0;
        let mut w = EncodeWorker::with_opener(move |f, b| {
            opened += 1;
            assert!(opened <= 2, "opened once at the start and once after the error");
            Ok(Box::new(Restarting(FakeVideoEncoder::new(f, b))) as Box<dyn VideoEncoder>)
        });
        let first = w.encode(&job(300_000, true, true)).unwrap();
        assert!(first.restarted && first.units[0].keyframe, "a new encoder, scaled to 320x180");
        let same = w.encode(&job(300_000, false, false)).unwrap();
        assert!(!same.restarted && !same.units[0].keyframe && same.units[0].number == 1);
        let new_rate = w.encode(&job(100_000, false, false)).unwrap();
        assert!(new_rate.restarted && new_rate.units[0].keyframe, "a new stream starts with a keyframe");
        assert_eq!(new_rate.units[0].number, 0);
        let bad = EncodeJob { format: VideoFormat { width: 3, height: 3, fps: 30 }, ..job(100_000, false, false) };
        assert!(w.encode(&bad).is_err());
        assert!(w.encode(&job(100_000, false, false)).unwrap().restarted, "after an error: a new encoder");
    }
}
