//! Sound a person can stand: echo cancellation, noise suppression and automatic gain on what the
//! microphone captured, before it is encoded. Sans-IO: [`AudioProcessor`] is fed, in order, the
//! far end (what the speaker played: the echo's source) and the near end (what the microphone
//! captured), in 10 ms frames, and changes the near end in place.
//!
//! The echo canceller is hail's own (crates/kalman-echo): linear and cubic filters over the far
//! end, adapted by a frequency-domain Kalman filter that keeps learning while both talk, and a
//! gate on what they leave. The rest is `sonora`, a pure Rust port of WebRTC's audio processing
//! module: its high-pass filter, noise suppressor and AGC2. WebRTC's echo canceller, AEC3, is
//! there too, for comparison ([`tuned_aec3_config`], through hail's copy of `sonora` in
//! vendor/sonora, which takes a config): on the bench's room it takes the near end down with the
//! echo whenever both talk (docs/performance.md, "Echo cancellation").
//!
//! Whether a call uses it is [`AudioProcessingMode`]: on by default when the microphone is a
//! sound device, off for files, tones and silence (a file is a recording, not a room) unless asked.

use kalman_echo::KalmanEchoCanceller;
use serde::{Deserialize, Serialize};
use sonora::config::{AdaptiveDigital, EchoCanceller, EchoCanceller3Config, GainController2, HighPassFilter, NoiseSuppression};
use sonora::{AudioProcessing, Config, StreamConfig};

use super::codec::opus::{FRAME_SAMPLES, Pcm, SAMPLE_RATE};
use super::io::{PlayedAudio, SourceSpec};

/// Samples in the engine's 10 ms frame at 48 kHz.
pub const FRAME_10MS: usize = SAMPLE_RATE as usize / 100;

/// Whether a call's captured audio is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum AudioProcessingMode {
    /// On when the microphone is a sound device, off otherwise (the default).
    #[default]
    Auto,
    /// Always on.
    On,
    /// Always off.
    Off,
}

/// A mode that is not `auto`, `on` or `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid audio processing mode {0:?}: expected auto, on or off")]
pub struct AudioProcessingModeError(pub String);

impl std::str::FromStr for AudioProcessingMode {
    type Err = AudioProcessingModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AudioProcessingMode::Auto),
            "on" => Ok(AudioProcessingMode::On),
            "off" => Ok(AudioProcessingMode::Off),
            other => Err(AudioProcessingModeError(other.to_owned())),
        }
    }
}

impl std::fmt::Display for AudioProcessingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AudioProcessingMode::Auto => "auto",
            AudioProcessingMode::On => "on",
            AudioProcessingMode::Off => "off",
        })
    }
}

impl From<AudioProcessingMode> for String {
    fn from(m: AudioProcessingMode) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for AudioProcessingMode {
    type Error = AudioProcessingModeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl AudioProcessingMode {
    /// Whether a call whose microphone is `input` processes its captured audio.
    pub fn applies_to(self, input: &SourceSpec) -> bool {
        match self {
            AudioProcessingMode::On => true,
            AudioProcessingMode::Off => false,
            AudioProcessingMode::Auto => matches!(input, SourceSpec::DefaultDevice | SourceSpec::Device(_)),
        }
    }
}

/// What the engine says about the echo (WebRTC's statistics), for `hail status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EchoStats {
    /// Echo return loss enhancement, dB: how much quieter the echo is after the canceller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erle_db: Option<f64>,
    /// The delay the canceller found between what was played and its echo, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<i32>,
}

/// AEC3 as hail tuned it (calls ran it until hail's Kalman canceller replaced it; the bench's
/// anchor): WebRTC's defaults with three changes, for the headset case (the far end plays, nothing
/// of it reaches the microphone). With the defaults AEC3 cannot tell that case
/// from an echo it has not yet learnt, and damages the near end by 1.5 PESQ whenever both talk;
/// with these three, 0.6. Measured with `bench echo` (docs/performance.md, "Echo cancellation
/// and noise suppression", rows "WebRTC's defaults" against the others): far-end-only ERLE within
/// 0.2 dB (47.0 against 47.2 dB), double-talk ERLE and PESQ a little better (16.9 against 15.4 dB,
/// drop 2.85 against 2.87); tests/audio_processing.rs fails if a call stops running this.
pub fn tuned_aec3_config() -> EchoCanceller3Config {
    let mut config = EchoCanceller3Config::default();
    // AEC3 runs two linear filters on the far end, a slow refined one and a fast coarse one, and
    // subtracts the coarse one's output whenever its error is the lower. With no echo (a headset)
    // or while both talk, the fast filter fits the part of the near end that resembles the far end
    // and subtracts it from the near end. Without it: the headset's PESQ drop 1.50 -> 1.02 alone,
    // double-talk ERLE 15.4 -> 16.9 dB; the refined filter alone still takes the far-end-only echo
    // 47 dB down (with the noise suppressor).
    config.filter.enable_coarse_filter_output_usage = false;
    // Until the linear filter is "usable" (converged on a real echo, which with a headset never
    // happens) the suppressor models the echo as the far end's power times this gain squared: at
    // 1.0 (0 dB) it cuts every frequency bin where the far end is as loud as the microphone, the
    // near end's speech included. 0.1 (-20 dB): a speaker whose echo is louder than 20 dB below
    // what it plays is suppressed less at the start of a call, before the filter has converged
    // (after that the linear filter's estimate takes over: the bench's far-end-only ERLE, counted
    // from 2 s on, is unchanged by this alone). Alone: the headset's drop 1.50 -> 1.23.
    config.ep_strength.default_gain = 0.1;
    // In the same "no usable filter" mode the modelled echo gets a reverberation tail, which keeps
    // suppressing for a while after every far-end word: with no echo path that is near-end speech
    // cut for nothing. All three together: the headset's drop 0.60 (the first alone 1.02, the
    // second alone 1.23).
    config.echo_model.model_reverb_in_nonlinear_mode = false;
    config
}

/// AGC2's adaptive digital gain in a call: WebRTC's defaults, but starting at unity gain (0 dB, not
/// 15 dB). The gain adapts only while the near end talks (6 dB a second at most), so whatever it
/// starts at applies until the near end's first words; at 15 dB, a far end talking first hears
/// what the echo canceller left of its echo 15 dB louder (the bench's far-end-only ERLE, 34.9 dB
/// with the gain control starting at 0 dB, was 19.9 starting at 15). A quiet talker's first
/// second is quieter instead.
pub fn call_gain_control() -> AdaptiveDigital {
    AdaptiveDigital { initial_gain_db: 0.0, ..AdaptiveDigital::default() }
}

/// Echo cancellation, noise suppression and gain control on one call's microphone.
#[derive(Debug)]
pub struct AudioProcessor {
    /// The echo canceller, ahead of the engine: linear and cubic filters adapted by a Kalman filter
    /// (crates/kalman-echo), which take out the echo and keep the near end. None for the AEC3
    /// comparisons (the engine's own echo canceller then runs, if asked).
    canceller: Option<KalmanEchoCanceller>,
    engine: AudioProcessing,
    /// Far-end samples waiting to make a whole 10 ms frame.
    far: Vec<i16>,
    scratch: [i16; FRAME_10MS],
}

impl Default for AudioProcessor {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioProcessor {
    /// What a call runs: echo cancellation (hail's Kalman canceller), noise suppression
    /// (moderate), AGC2 with its adaptive digital gain, and the high-pass filter, on 48 kHz mono.
    pub fn new() -> Self {
        Self::with_parts(true, true, true)
    }

    /// Only the parts asked for (the bench measures each alone); the high-pass filter is always
    /// on, the echo canceller is hail's Kalman canceller.
    pub fn with_parts(echo: bool, noise: bool, gain: bool) -> Self {
        Self::with_echo_cancellers(echo, None, noise, gain)
    }

    /// As calls ran before hail's Kalman canceller, to compare: AEC3 tuned by `echo` (none: no
    /// echo canceller; WebRTC's defaults are `EchoCanceller3Config::default()`, hail's tuning
    /// [`tuned_aec3_config`]), and the gain control with WebRTC's defaults (starting at 15 dB).
    pub fn with_echo_canceller(echo: Option<EchoCanceller3Config>, noise: bool, gain: bool) -> Self {
        Self::build(false, echo, noise, gain.then(AdaptiveDigital::default))
    }

    /// Any combination: the Kalman canceller (`kalman`), then AEC3 tuned by `echo`, the noise
    /// suppressor, the gain control as a call runs it ([`call_gain_control`]).
    pub fn with_echo_cancellers(kalman: bool, echo: Option<EchoCanceller3Config>, noise: bool, gain: bool) -> Self {
        Self::build(kalman, echo, noise, gain.then(call_gain_control))
    }

    fn build(kalman: bool, echo: Option<EchoCanceller3Config>, noise: bool, gain: Option<AdaptiveDigital>) -> Self {
        const _: () = assert!(kalman_echo::BLOCK == FRAME_10MS);
        let config = Config {
            high_pass_filter: Some(HighPassFilter::default()),
            echo_canceller: echo.is_some().then(EchoCanceller::default),
            noise_suppression: noise.then(NoiseSuppression::default),
            gain_controller2: gain.map(|g| GainController2 { adaptive_digital: Some(g), ..Default::default() }),
            ..Default::default()
        };
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let mut builder = AudioProcessing::builder().config(config).capture_config(stream).render_config(stream);
        if let Some(echo) = echo {
            builder = builder.echo_canceller3_config(echo);
        }
        let engine = builder.build();
        AudioProcessor { canceller: kalman.then(KalmanEchoCanceller::new), engine, far: Vec::with_capacity(FRAME_10MS * 4), scratch: [0; FRAME_10MS] }
    }

    /// What the speaker played, any length, in order: fed to the engine in whole 10 ms frames
    /// (the rest waits for the next call).
    pub fn far_end(&mut self, played: &[i16]) {
        if let Some(canceller) = &mut self.canceller {
            canceller.far_end(played);
        }
        self.far.extend_from_slice(played);
        let whole = self.far.len() / FRAME_10MS * FRAME_10MS;
        for frame in self.far[..whole].chunks_exact(FRAME_10MS) {
            // The render output is not used (the engine leaves it unchanged).
            let _ = self.engine.process_render_i16(frame, &mut self.scratch);
        }
        self.far.drain(..whole);
    }

    /// One 10 ms frame the microphone captured, processed in place.
    pub fn near_end_10ms(&mut self, frame: &mut [i16; FRAME_10MS]) {
        if let Some(canceller) = &mut self.canceller {
            canceller.process(frame);
        }
        if self.engine.process_capture_i16(frame, &mut self.scratch).is_ok() {
            frame.copy_from_slice(&self.scratch);
        }
    }

    /// One 20 ms frame the microphone captured (a call's frame), processed in place.
    pub fn near_end(&mut self, pcm: &mut Pcm) {
        const _: () = assert!(FRAME_SAMPLES == 2 * FRAME_10MS);
        for half in pcm.chunks_exact_mut(FRAME_10MS) {
            let half: &mut [i16; FRAME_10MS] = half.try_into().expect("chunks of FRAME_10MS");
            self.near_end_10ms(half);
        }
    }

    /// The echo canceller's own view of how it is doing.
    pub fn echo_stats(&mut self) -> EchoStats {
        if let Some(canceller) = &mut self.canceller {
            let delay_ms = (canceller.delay_samples() * 1000 / SAMPLE_RATE as usize) as i32;
            return EchoStats { erle_db: Some(f64::from(canceller.erle_db())), delay_ms: Some(delay_ms) };
        }
        let s = self.engine.statistics();
        EchoStats { erle_db: s.echo_return_loss_enhancement, delay_ms: s.delay_ms }
    }
}

/// A call's microphone processing and where its far end comes from: what the speaker reports it
/// played ([`PlayedAudio`], a sound device), or else what the call gave the sink (a file).
#[derive(Debug)]
pub struct CallAudioProcessing {
    processor: AudioProcessor,
    played: Option<PlayedAudio>,
    buffer: Vec<i16>,
    far_samples: u64,
}

impl CallAudioProcessing {
    /// Processing whose far end is `played`, or the frames given to [`Self::given_to_sink`].
    pub fn new(played: Option<PlayedAudio>) -> Self {
        CallAudioProcessing { processor: AudioProcessor::new(), played, buffer: Vec::new(), far_samples: 0 }
    }

    /// The call gave the sink `pcm` to play.
    pub fn given_to_sink(&mut self, pcm: &Pcm) {
        if self.played.is_none() {
            self.processor.far_end(pcm);
            self.far_samples += pcm.len() as u64;
        }
    }

    /// The microphone captured `pcm`: what the speaker played since the last frame goes to the
    /// canceller first, then `pcm` is processed in place.
    pub fn captured(&mut self, pcm: &mut Pcm) {
        if let Some(played) = &mut self.played {
            played.drain_into(&mut self.buffer);
            self.processor.far_end(&self.buffer);
            self.far_samples += self.buffer.len() as u64;
            self.buffer.clear();
        }
        self.processor.near_end(pcm);
    }

    /// Far-end samples given to the canceller so far.
    pub fn far_end_samples(&self) -> u64 {
        self.far_samples
    }

    /// The echo canceller's statistics.
    pub fn echo_stats(&mut self) -> EchoStats {
        self.processor.echo_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_print_back_and_follow_the_microphone() {
        for s in ["auto", "on", "off"] {
            assert_eq!(s.parse::<AudioProcessingMode>().unwrap().to_string(), s);
        }
        assert!("yes".parse::<AudioProcessingMode>().is_err());
        let (device, file) = (SourceSpec::DefaultDevice, SourceSpec::File("a.wav".into()));
        assert!(AudioProcessingMode::Auto.applies_to(&device));
        assert!(AudioProcessingMode::Auto.applies_to(&SourceSpec::Device("USB".into())));
        assert!(!AudioProcessingMode::Auto.applies_to(&file));
        assert!(!AudioProcessingMode::Auto.applies_to(&SourceSpec::Tone(440.0)));
        assert!(AudioProcessingMode::On.applies_to(&file));
        assert!(!AudioProcessingMode::Off.applies_to(&device));
    }

    #[test]
    fn far_end_of_any_length_is_fed_in_whole_frames() {
        let mut p = AudioProcessor::new();
        p.far_end(&[100; 700]);
        assert_eq!(p.far.len(), 700 - FRAME_10MS);
        p.far_end(&[100; 260]);
        assert!(p.far.is_empty());
        let mut pcm = [0i16; FRAME_SAMPLES];
        p.near_end(&mut pcm);
    }
}
