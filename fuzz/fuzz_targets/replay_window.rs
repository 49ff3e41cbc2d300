//! The media replay window (`src/crypto/frame.rs`, `ReplayWindow`): the counters of frames that
//! authenticated come from the peer, in any order and of any value.
//!
//! Input: a list of counters, each one byte `b`: below 0xc0 a step of `b - 64` from the previous
//! counter, else the next 8 bytes (big-endian). Each counter is checked and, when the window allows
//! it, accepted (as an authentic frame would be). Checks: the window agrees with a model that
//! remembers every accepted counter (new → accepted, already seen → replay, more than 1024 below
//! the highest, or 2^64 − 1 → too old).
#![no_main]

use std::collections::BTreeSet;

use hail::crypto::frame::{FrameError, ReplayWindow};
use hail_fuzz::Input;
use libfuzzer_sys::fuzz_target;

const WINDOW: u64 = hail::crypto::frame::REPLAY_WINDOW;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut window = ReplayWindow::default();
    let mut seen = BTreeSet::new();
    let mut top: Option<u64> = None;
    let mut counter = 0u64;
    for _ in 0..4096 {
        if input.is_empty() {
            break;
        }
        let b = input.u8();
        counter = if b < 0xc0 { counter.wrapping_add(b as u64).wrapping_sub(64) } else { input.u64() };
        let expected = match top {
            _ if counter == u64::MAX => Err(FrameError::TooOld),
            Some(t) if counter <= t && t - counter >= WINDOW => Err(FrameError::TooOld),
            _ if seen.contains(&counter) => Err(FrameError::Replay),
            _ => Ok(()),
        };
        assert_eq!(window.check(counter), expected, "counter {counter}, highest {top:?}");
        if expected.is_ok() {
            window.accept(counter);
            seen.insert(counter);
            top = top.max(Some(counter));
        }
    }
});
