//! Who is speaking in a group call, and who holds the floor, sans-IO: fed each sender's 20 ms of
//! decoded audio per playout tick.
//!
//! - **Speech level**: a sender's energy over the last [`LEVEL_WINDOW`] frames (300 ms), in dBFS.
//! - **Noise floor**: follows the level down at once and up by [`FLOOR_RISE_DB`] a frame (3 dB a
//!   second), so it settles on the quiet between words and a constant hum is not speech.
//! - **Speaking**: the level at least [`SPEAKING_ON_DB`] over the floor (and over
//!   [`MIN_SPEECH_DBFS`]); it stops under [`SPEAKING_OFF_DB`]: hysteresis, so a level near the
//!   threshold does not flicker.
//! - **Dominant speaker** (the layout's big tile): the first to speak; then another takes over
//!   only once it has been speaking and louder than the dominant by [`SWITCH_MARGIN_DB`] for
//!   [`SWITCH_AFTER_FRAMES`] frames in a row (1 s): a "yeah" or a cough under someone's talk does
//!   not move the layout, and silence does not take it away.
//!
//! The shape follows Jitsi's dominant speaker identification (jitsi-utils
//! `org/jitsi/utils/dsi/DominantSpeakerIdentification.java`, after Volfin and Cohen, "Dominant
//! speaker identification for multipoint videoconferencing", 2013): a per-speaker minimum level
//! as the noise floor (there over a 15 s window), activity measured over immediate (one frame),
//! medium (5 frames) and long (10 medium blocks) intervals, and a challenger replacing the
//! dominant speaker only when its activity beats the dominant's over all of them by set margins
//! (`C1`, `C2`, `C3`), decided every 300 ms. Here the medium interval is the 300 ms level, the
//! long one the 1 s a challenge must last, and the margin is in dB over the dominant's level;
//! the decision runs every tick, which the simulator and tests replay exactly.

use std::collections::BTreeMap;

use crate::crypto::sender_key::SenderIndex;

/// Frames (20 ms each) the speech level is measured over: 300 ms.
pub const LEVEL_WINDOW: usize = 15;
/// The level of digital silence, dBFS (the floor of every measure here).
pub const SILENCE_DBFS: f64 = -96.0;
/// Below this a sender is not speaking whatever its noise floor, dBFS.
pub const MIN_SPEECH_DBFS: f64 = -55.0;
/// How far the noise floor rises per frame while the level is above it, dB (3 dB a second).
pub const FLOOR_RISE_DB: f64 = 0.06;
/// Speaking starts this far above the noise floor, dB.
pub const SPEAKING_ON_DB: f64 = 12.0;
/// Speaking stops under this far above the noise floor, dB.
pub const SPEAKING_OFF_DB: f64 = 8.0;
/// How much louder than the dominant speaker a challenger must be, dB.
pub const SWITCH_MARGIN_DB: f64 = 6.0;
/// For how many frames in a row a challenger must be louder before it takes over: 1 s.
pub const SWITCH_AFTER_FRAMES: u32 = 50;

/// The energy of 16-bit samples relative to full scale, dBFS (a full-scale square wave: 0).
pub fn energy_dbfs(mean_square: f64) -> f64 {
    if mean_square <= 0.0 {
        return SILENCE_DBFS;
    }
    (10.0 * (mean_square / (32_768.0 * 32_768.0)).log10()).max(SILENCE_DBFS)
}

/// The mean square of a frame's samples.
pub fn mean_square(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / pcm.len() as f64
}

/// One sender's speech measure.
#[derive(Debug, Clone)]
struct SpeechLevel {
    /// The last frames' mean squares, newest last.
    energies: std::collections::VecDeque<f64>,
    level_dbfs: f64,
    floor_dbfs: f64,
    speaking: bool,
}

impl SpeechLevel {
    fn new() -> Self {
        SpeechLevel {
            energies: std::collections::VecDeque::with_capacity(LEVEL_WINDOW),
            level_dbfs: SILENCE_DBFS,
            floor_dbfs: SILENCE_DBFS,
            speaking: false,
        }
    }

    fn push(&mut self, pcm: &[i16]) {
        if self.energies.len() == LEVEL_WINDOW {
            self.energies.pop_front();
        }
        self.energies.push_back(mean_square(pcm));
        let mean = self.energies.iter().sum::<f64>() / self.energies.len() as f64;
        self.level_dbfs = energy_dbfs(mean);
        self.floor_dbfs =
            if self.level_dbfs < self.floor_dbfs { self.level_dbfs } else { self.floor_dbfs + FLOOR_RISE_DB };
        let above = self.level_dbfs - self.floor_dbfs;
        self.speaking = self.level_dbfs >= MIN_SPEECH_DBFS
            && if self.speaking { above >= SPEAKING_OFF_DB } else { above >= SPEAKING_ON_DB };
    }
}

/// What changed on a tick, for status and `hail watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeakerEvent {
    /// A sender started (`true`) or stopped speaking.
    Speaking(SenderIndex, bool),
    /// The dominant speaker is now this sender (`None`: nobody, the last one left the mix).
    Dominant(Option<SenderIndex>),
}

/// The speaking flags and the dominant speaker of a group call's senders.
#[derive(Debug, Clone, Default)]
pub struct ActiveSpeakers {
    senders: BTreeMap<SenderIndex, SpeechLevel>,
    dominant: Option<SenderIndex>,
    /// Who is challenging the dominant speaker, and for how many frames in a row.
    challenge: Option<(SenderIndex, u32)>,
    events: Vec<SpeakerEvent>,
}

impl ActiveSpeakers {
    /// Nobody measured yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// This tick's 20 ms of `sender`'s decoded audio (concealment included: it is what is heard).
    pub fn on_frame(&mut self, sender: SenderIndex, pcm: &[i16]) {
        let level = self.senders.entry(sender).or_insert_with(SpeechLevel::new);
        let was = level.speaking;
        level.push(pcm);
        if level.speaking != was {
            self.events.push(SpeakerEvent::Speaking(sender, level.speaking));
        }
    }

    /// `sender` left the mix: it is not speaking, and no longer dominant.
    pub fn remove(&mut self, sender: SenderIndex) {
        if self.senders.remove(&sender).is_some_and(|l| l.speaking) {
            self.events.push(SpeakerEvent::Speaking(sender, false));
        }
        if self.challenge.is_some_and(|(c, _)| c == sender) {
            self.challenge = None;
        }
        if self.dominant == Some(sender) {
            self.dominant = None;
            self.events.push(SpeakerEvent::Dominant(None));
        }
    }

    /// The tick's frames are all in: decide the dominant speaker. Returns what changed since the
    /// last call.
    pub fn decide(&mut self) -> Vec<SpeakerEvent> {
        let loudest_speaking = |except: Option<SenderIndex>| {
            self.senders
                .iter()
                .filter(|(s, l)| l.speaking && Some(**s) != except)
                .max_by(|a, b| a.1.level_dbfs.total_cmp(&b.1.level_dbfs).then(b.0.cmp(a.0)))
                .map(|(s, l)| (*s, l.level_dbfs))
        };
        match self.dominant {
            None => {
                if let Some((first, _)) = loudest_speaking(None) {
                    self.dominant = Some(first);
                    self.events.push(SpeakerEvent::Dominant(Some(first)));
                }
            }
            Some(dominant) => {
                let dominant_level = self.senders.get(&dominant).map_or(SILENCE_DBFS, |l| l.level_dbfs);
                match loudest_speaking(Some(dominant)) {
                    Some((challenger, level)) if level >= dominant_level + SWITCH_MARGIN_DB => {
                        let frames = match self.challenge {
                            Some((c, n)) if c == challenger => n + 1,
                            _ => 1,
                        };
                        if frames >= SWITCH_AFTER_FRAMES {
                            self.dominant = Some(challenger);
                            self.challenge = None;
                            self.events.push(SpeakerEvent::Dominant(Some(challenger)));
                        } else {
                            self.challenge = Some((challenger, frames));
                        }
                    }
                    _ => self.challenge = None,
                }
            }
        }
        std::mem::take(&mut self.events)
    }

    /// The dominant speaker.
    pub fn dominant(&self) -> Option<SenderIndex> {
        self.dominant
    }

    /// Whether `sender` is speaking.
    pub fn speaking(&self, sender: SenderIndex) -> bool {
        self.senders.get(&sender).is_some_and(|l| l.speaking)
    }

    /// `sender`'s speech level over the last 300 ms, dBFS ([`SILENCE_DBFS`] if unknown).
    pub fn level_dbfs(&self, sender: SenderIndex) -> f64 {
        self.senders.get(&sender).map_or(SILENCE_DBFS, |l| l.level_dbfs)
    }

    /// `sender`'s noise floor, dBFS ([`SILENCE_DBFS`] if unknown).
    pub fn floor_dbfs(&self, sender: SenderIndex) -> f64 {
        self.senders.get(&sender).map_or(SILENCE_DBFS, |l| l.floor_dbfs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(amplitude: f64, n: usize) -> Vec<i16> {
        (0..960).map(|i| (amplitude * ((n * 960 + i) as f64 * 0.05).sin()) as i16).collect()
    }

    #[test]
    fn levels_are_dbfs() {
        assert_eq!(energy_dbfs(0.0), SILENCE_DBFS);
        assert!((energy_dbfs(32_768.0 * 32_768.0) - 0.0).abs() < 1e-9);
        // A full-scale sine: −3 dBFS.
        assert!((energy_dbfs(mean_square(&frame(32_767.0, 0))) + 3.0).abs() < 0.1);
    }

    #[test]
    fn a_steady_hum_is_not_speech_but_talk_over_it_is() {
        let mut speakers = ActiveSpeakers::new();
        let s = SenderIndex(1);
        // A hum at −40 dBFS for 30 s: the floor climbs to it, and speaking stops.
        for n in 0..1500 {
            speakers.on_frame(s, &frame(450.0, n));
            speakers.decide();
        }
        assert!(!speakers.speaking(s), "a hum at {:.1} dBFS over a floor of {:.1}", speakers.level_dbfs(s), speakers.floor_dbfs(s));
        for n in 0..20 {
            speakers.on_frame(s, &frame(8000.0, n));
        }
        assert!(speakers.speaking(s));
    }
}
