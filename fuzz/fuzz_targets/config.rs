//! The configuration file (`src/config.rs`): `HOME/config.toml`, read at start.
//!
//! The bytes are written to a file and loaded as the daemon does; every section that loads is then
//! checked into settings. Checks: a syntax error is one line (it goes to stderr as one) and names
//! the file; loading the same file twice gives the same result.
#![no_main]

use hail::config::{ConfigFile, ConfigFileError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = hail_fuzz::scratch_file("config.toml", data);
    match ConfigFile::load(&path) {
        Ok(config) => {
            assert_eq!(ConfigFile::load(&path).unwrap(), config);
            let _ = config.network.apply();
            let audio = config.audio.apply(&Default::default());
            let video = config.video.apply(&Default::default());
            if let (Ok(audio), Ok(video)) = (audio, video) {
                let _ = config.calls.apply(audio, video);
            }
        }
        Err(ConfigFileError::Syntax { path: p, message }) => {
            assert_eq!(p, path);
            assert!(!message.contains('\n'), "{message}");
            assert!(std::str::from_utf8(data).is_ok());
        }
        Err(ConfigFileError::Io { .. }) => assert!(std::str::from_utf8(data).is_err()),
    }
});
