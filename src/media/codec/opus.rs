//! Opus at 48 kHz mono, 20 ms frames (libopus, statically linked through the `opus` crate).

/// Samples per channel in a frame (20 ms at 48 kHz).
pub const FRAME_SAMPLES: usize = 960;
/// The sample rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// Lowest and highest bitrates used.
pub const MIN_BITRATE: i32 = 16_000;
/// Highest bitrate used.
pub const MAX_BITRATE: i32 = 64_000;
/// The default bitrate.
pub const DEFAULT_BITRATE: i32 = 32_000;

/// A 20 ms mono frame.
pub type Pcm = [i16; FRAME_SAMPLES];

/// A codec failure (libopus reported an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("opus: {0}")]
pub struct CodecError(String);

impl From<opus::Error> for CodecError {
    fn from(e: opus::Error) -> Self {
        CodecError(e.to_string())
    }
}

/// The encoder: VoIP mode, in-band FEC on, bitrate and expected loss adjustable per frame.
pub struct OpusEncoder {
    inner: opus::Encoder,
    bitrate: i32,
    loss_percent: i32,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").field("bitrate", &self.bitrate).field("loss_percent", &self.loss_percent).finish()
    }
}

impl OpusEncoder {
    /// An encoder at `bitrate` bits per second (clamped to 16–64 kbps).
    pub fn new(bitrate: i32) -> Result<Self, CodecError> {
        let mut inner = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_inband_fec(true)?;
        inner.set_vbr(true)?;
        inner.set_complexity(9)?;
        let mut e = OpusEncoder { inner, bitrate: 0, loss_percent: 0 };
        e.set_bitrate(bitrate)?;
        e.set_expected_loss(0)?;
        Ok(e)
    }

    /// Changes the bitrate (clamped to 16–64 kbps).
    pub fn set_bitrate(&mut self, bitrate: i32) -> Result<(), CodecError> {
        let bitrate = bitrate.clamp(MIN_BITRATE, MAX_BITRATE);
        if bitrate != self.bitrate {
            self.inner.set_bitrate(opus::Bitrate::Bits(bitrate))?;
            self.bitrate = bitrate;
        }
        Ok(())
    }

    /// The bitrate.
    pub fn bitrate(&self) -> i32 {
        self.bitrate
    }

    /// Tells the encoder how much loss to expect (it sizes its in-band FEC by it), 0–30 %.
    pub fn set_expected_loss(&mut self, percent: i32) -> Result<(), CodecError> {
        let percent = percent.clamp(0, 30);
        if percent != self.loss_percent {
            self.inner.set_packet_loss_perc(percent)?;
            self.loss_percent = percent;
        }
        Ok(())
    }

    /// Encodes one frame.
    pub fn encode(&mut self, pcm: &Pcm) -> Result<Vec<u8>, CodecError> {
        Ok(self.inner.encode_vec(pcm, 1275)?)
    }
}

/// What the playout asks of an Opus decoder: [`OpusDecoder`], or a fake in tests and the simulator.
pub trait AudioDecoder {
    /// Decodes a frame.
    fn decode(&mut self, packet: &[u8]) -> Pcm;
    /// Recovers the frame before `next_packet` from its in-band FEC.
    fn decode_fec(&mut self, next_packet: &[u8]) -> Pcm;
    /// Packet-loss concealment for one frame.
    fn conceal(&mut self) -> Pcm;
}

impl AudioDecoder for OpusDecoder {
    fn decode(&mut self, packet: &[u8]) -> Pcm {
        OpusDecoder::decode(self, packet)
    }
    fn decode_fec(&mut self, next_packet: &[u8]) -> Pcm {
        OpusDecoder::decode_fec(self, next_packet)
    }
    fn conceal(&mut self) -> Pcm {
        OpusDecoder::conceal(self)
    }
}

/// The decoder, with FEC and packet-loss concealment.
pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

impl OpusDecoder {
    /// A decoder.
    pub fn new() -> Result<Self, CodecError> {
        Ok(OpusDecoder { inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)? })
    }

    /// Decodes a frame. A packet that does not decode (garbage from an authenticated peer, a bug) is
    /// concealed instead.
    pub fn decode(&mut self, packet: &[u8]) -> Pcm {
        let mut out = [0i16; FRAME_SAMPLES];
        match self.inner.decode(packet, &mut out, false) {
            Ok(n) if n == FRAME_SAMPLES => out,
            _ => self.conceal(),
        }
    }

    /// Recovers the frame before `next_packet` from its in-band FEC.
    pub fn decode_fec(&mut self, next_packet: &[u8]) -> Pcm {
        let mut out = [0i16; FRAME_SAMPLES];
        match self.inner.decode(next_packet, &mut out, true) {
            Ok(n) if n == FRAME_SAMPLES => out,
            _ => self.conceal(),
        }
    }

    /// Packet-loss concealment for one frame.
    pub fn conceal(&mut self) -> Pcm {
        let mut out = [0i16; FRAME_SAMPLES];
        let _ = self.inner.decode(&[], &mut out, false);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frame: usize) -> Pcm {
        let mut pcm = [0i16; FRAME_SAMPLES];
        for (i, s) in pcm.iter_mut().enumerate() {
            let t = (frame * FRAME_SAMPLES + i) as f64 / SAMPLE_RATE as f64;
            *s = ((t * 440.0 * std::f64::consts::TAU).sin() * 8000.0) as i16;
        }
        pcm
    }

    #[test]
    fn a_tone_survives_encoding_and_fec_recovers_a_lost_frame() {
        let mut enc = OpusEncoder::new(DEFAULT_BITRATE).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let packets: Vec<_> = (0..50).map(|i| enc.encode(&tone(i)).unwrap()).collect();
        assert!(packets.iter().all(|p| !p.is_empty() && p.len() < 200), "~80 bytes at 32 kbps");
        let energy = |pcm: &Pcm| pcm.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / FRAME_SAMPLES as f64;
        for p in &packets[..40] {
            dec.decode(p);
        }
        let recovered = dec.decode_fec(&packets[41]);
        assert!(energy(&recovered) > 1e6, "FEC gives back a tone, not silence");
        let concealed = dec.conceal();
        assert!(concealed.len() == FRAME_SAMPLES);
        let garbage = dec.decode(&[0xff, 0x00, 0x13]);
        assert_eq!(garbage.len(), FRAME_SAMPLES, "garbage is concealed, never a panic");
    }
}
