//! The WAV reader (`src/media/io/wav.rs`): an audio file the user names as a call's source.
//!
//! The bytes are written to a file and read as a call would. Checks: a file that reads gives as
//! many 48 kHz samples as its frames last (its frame count × 48000 / its rate).
#![no_main]

use hail::media::io::read_wav_mono_48k;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = hail_fuzz::scratch_file("in.wav", data);
    let Ok(samples) = read_wav_mono_48k(&path) else { return };
    let reader = hound::WavReader::new(data).expect("the reader accepted it");
    let spec = reader.spec();
    let frames = (reader.len() as u64).div_ceil(spec.channels as u64);
    let expected = if spec.sample_rate == 48_000 { frames } else { frames * 48_000 / spec.sample_rate as u64 };
    assert_eq!(samples.len() as u64, expected, "{spec:?}, {frames} frames");
});
