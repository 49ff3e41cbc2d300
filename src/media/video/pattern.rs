//! The moving test pattern: a scrolling gradient and a bouncing box (so every frame differs and the
//! encoder has motion to code), with a strip along the top that carries the frame counter and the
//! capture time as black and white cells. The strip scales with the picture (80 cells across), so it
//! reads back after the encoder lowered the resolution, and it survives lossy coding: each cell is a
//! flat block whose mean is far from the threshold.

use super::{Frame, LUMA_BLACK as BLACK, LUMA_WHITE as WHITE};

/// Cells across the width (72 used: 32 counter bits, 32 time bits, 8 checksum bits).
const CELLS_ACROSS: usize = 80;
const BITS: usize = 72;

/// What the strip says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The frame's number, from 0.
    pub counter: u32,
    /// The capture time, ms since the Unix epoch, low 32 bits (wraps every 49 days; latency is a
    /// difference, so that is enough).
    pub capture_ms: u32,
}

fn checksum(counter: u32, capture_ms: u32) -> u8 {
    let mut x: u8 = 0x5A;
    for b in counter.to_be_bytes().iter().chain(capture_ms.to_be_bytes().iter()) {
        x = x.rotate_left(3) ^ b;
    }
    x
}

fn bits(stamp: Stamp) -> [bool; BITS] {
    let word = ((stamp.counter as u128) << 40)
        | ((stamp.capture_ms as u128) << 8)
        | checksum(stamp.counter, stamp.capture_ms) as u128;
    std::array::from_fn(|i| (word >> (BITS - 1 - i)) & 1 == 1)
}

/// Draws frame `stamp.counter` of the pattern at `width × height`.
pub fn draw(width: usize, height: usize, stamp: Stamp) -> Option<Frame> {
    let mut f = Frame::black(width, height)?;
    let cell = (width / CELLS_ACROSS).max(2);
    let n = stamp.counter as usize;
    // Scrolling diagonal gradient.
    for row in 0..height {
        for col in 0..width {
            f.y[row * width + col] = (40 + ((col + row + n * 4) % 160)) as u8;
        }
    }
    for row in 0..height / 2 {
        for col in 0..width / 2 {
            let i = row * (width / 2) + col;
            f.u[i] = (96 + (col * 64 / (width / 2).max(1))) as u8;
            f.v[i] = (96 + (row * 64 / (height / 2).max(1))) as u8;
        }
    }
    // A box bouncing across the lower part.
    let side = (height / 6).max(4);
    let span = width.saturating_sub(side).max(1);
    let x = (n * 6) % (2 * span);
    let x = if x < span { x } else { 2 * span - x };
    let y0 = height / 2;
    for row in y0..(y0 + side).min(height) {
        for col in x..(x + side).min(width) {
            f.y[row * width + col] = WHITE;
        }
    }
    // The strip: a black band, then one cell per bit.
    for row in 0..(cell * 2).min(height) {
        f.y[row * width..(row + 1) * width].fill(BLACK);
    }
    for (i, bit) in bits(stamp).iter().enumerate() {
        let x0 = (i + 4) * cell;
        for row in cell / 2..cell / 2 + cell {
            for col in x0..(x0 + cell).min(width) {
                f.y[row * width + col] = if *bit { WHITE } else { BLACK };
            }
        }
    }
    Some(f)
}

/// Reads the strip back; `None` when it is not there or its checksum fails (a damaged picture).
pub fn read(frame: &Frame) -> Option<Stamp> {
    let width = frame.width;
    let cell = (width / CELLS_ACROSS).max(2);
    if frame.height < cell * 2 || (BITS + 4) * cell > width {
        return None;
    }
    let mut word: u128 = 0;
    for i in 0..BITS {
        let x0 = (i + 4) * cell;
        // The middle of the cell: away from edges that coding blurs.
        let (c0, c1) = (x0 + cell / 4, x0 + cell - cell / 4);
        let (r0, r1) = (cell / 2 + cell / 4, cell / 2 + cell - cell / 4);
        let mut sum = 0u32;
        let mut count = 0u32;
        for row in r0..r1.max(r0 + 1) {
            for col in c0..c1.max(c0 + 1) {
                sum += frame.y[row * width + col] as u32;
                count += 1;
            }
        }
        word = (word << 1) | ((sum / count.max(1)) > 126) as u128;
    }
    let counter = (word >> 40) as u32;
    let capture_ms = (word >> 8) as u32;
    (checksum(counter, capture_ms) == word as u8).then_some(Stamp { counter, capture_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_reads_back_at_every_resolution_and_through_noise() {
        for (w, h) in [(640, 360), (480, 270), (320, 180)] {
            for counter in [0u32, 1, 29, 12_345, u32::MAX] {
                let stamp = Stamp { counter, capture_ms: 0xDEAD_BEEF ^ counter };
                let mut f = draw(w, h, stamp).unwrap();
                assert_eq!(read(&f), Some(stamp), "{w}x{h} #{counter}");
                // Coding noise of ±40 on every pixel does not flip a cell.
                for (i, p) in f.y.iter_mut().enumerate() {
                    let noise = ((i * 2654435761) % 81) as i32 - 40;
                    *p = (*p as i32 + noise).clamp(0, 255) as u8;
                }
                assert_eq!(read(&f), Some(stamp), "{w}x{h} #{counter} with noise");
            }
        }
    }

    #[test]
    fn frames_move_and_garbage_is_not_read_as_a_stamp() {
        let a = draw(640, 360, Stamp { counter: 1, capture_ms: 5 }).unwrap();
        let b = draw(640, 360, Stamp { counter: 2, capture_ms: 38 }).unwrap();
        assert!(a.psnr(&b).unwrap() < 30.0, "consecutive frames differ");
        assert_eq!(a.psnr(&a), Some(99.0));
        assert_eq!(read(&Frame::black(640, 360).unwrap()), None, "an all-black picture has no valid stamp");
        let mut flipped = a.clone();
        let cell = 640 / CELLS_ACROSS;
        for row in cell / 2..cell / 2 + cell {
            for col in 10 * cell..11 * cell {
                flipped.y[row * 640 + col] = 255 - flipped.y[row * 640 + col];
            }
        }
        assert_eq!(read(&flipped), None, "one flipped cell fails the checksum");
        assert!(draw(641, 360, Stamp { counter: 0, capture_ms: 0 }).is_none(), "odd sizes are refused");
    }
}
