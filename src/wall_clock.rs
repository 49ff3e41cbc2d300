//! The wall clock, as the numbers that cross the wire and land in records: milliseconds and
//! microseconds since the Unix epoch. For what people read and what peers compare (capture times,
//! call history), never for timers: those take an `Instant` handed in by the caller.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch at `t` (0 for a clock set before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Microseconds since the Unix epoch at `t` (0 for a clock set before 1970).
pub fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    unix_us(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_offsets_and_a_clock_before_1970() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!((unix_ms(t), unix_us(t)), (1_700_000_000_123, 1_700_000_000_123_456));
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!((unix_ms(before), unix_us(before)), (0, 0));
    }
}
