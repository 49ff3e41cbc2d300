//! The call view's picture, sans-IO: the remote picture large (scaled to fit, letterboxed), our
//! own picture as an inset in the bottom-right corner (the self-view), and text on top — the
//! peer's name and the four emoji (written as their names: the built-in [`font`](super::font) has
//! no emoji, and the names are what people read to each other), our microphone and video state,
//! and a small stats line. `s` in a viewer swaps the big and the small picture
//! ([`Compositor::set_swapped`]).
//!
//! Pure: pictures and words in, a [`Frame`] out; no clock, no window. A window (or a test) shows
//! what it returns.

use super::{Frame, LUMA_BLACK as BLACK, LUMA_WHITE};
use super::font::{self, ADVANCE, GLYPH_HEIGHT, GLYPH_WIDTH, LINE_HEIGHT};

/// Text luma.
const TEXT: u8 = LUMA_WHITE;
/// The luma of the inset's frame.
const BORDER: u8 = LUMA_WHITE;

/// What is written over the pictures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Who the call is with.
    pub peer: String,
    /// The four emoji's names (empty before the handshake).
    pub emoji: Vec<String>,
    /// Our microphone is muted.
    pub muted: bool,
    /// Our video is on.
    pub video: bool,
    /// A short stats line ("640x360 30 fps rtt 12 ms").
    pub stats: String,
}

/// A rectangle in the composed picture, in pixels (even coordinates and sizes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: usize,
    /// Top edge.
    pub y: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

/// Composes the call view at one size.
#[derive(Debug, Clone)]
pub struct Compositor {
    width: usize,
    height: usize,
    swapped: bool,
}

fn even(n: usize) -> usize {
    n & !1
}

impl Compositor {
    /// A compositor for `width × height` pictures; `None` for a size a [`Frame`] cannot have, or
    /// one too small to hold an inset (below 64×36).
    pub fn new(width: usize, height: usize) -> Option<Self> {
        Frame::black(width, height)?;
        (width >= 64 && height >= 36).then_some(Compositor { width, height, swapped: false })
    }

    /// Our picture large and the peer's in the inset (`true`), or the other way round (the default).
    pub fn set_swapped(&mut self, swapped: bool) {
        self.swapped = swapped;
    }

    /// The size it composes, `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Whether the pictures are swapped.
    pub fn swapped(&self) -> bool {
        self.swapped
    }

    /// How large text is drawn: 1 up to 359 pixels high, then one more per 180.
    pub fn text_scale(&self) -> usize {
        (self.height / 180).max(1)
    }

    fn margin(&self) -> usize {
        even((self.width / 40).max(2))
    }

    /// Where the inset goes for a picture of `size` (a quarter of the width, the picture's own
    /// aspect, bottom-right, a margin from the edges), its 2-pixel frame excluded.
    pub fn inset(&self, size: (usize, usize)) -> Rect {
        let width = even(self.width / 4).max(2);
        let height = even((width * size.1 / size.0.max(1)).clamp(2, self.height / 2));
        let m = self.margin();
        Rect { x: even(self.width - width - m), y: even(self.height - height - m), width, height }
    }

    /// Where the large picture of `size` goes: as large as fits, centred (black bars around).
    pub fn main_area(&self, size: (usize, usize)) -> Rect {
        let (x, y, width, height) = super::fit_in((self.width, self.height), size);
        Rect { x, y, width, height }
    }

    /// The call view: `remote` large (black when it has none), `local` in the inset (none when
    /// there is none: our video is off), `overlay` on top; swapped, the other way round.
    pub fn compose(&self, remote: Option<&Frame>, local: Option<&Frame>, overlay: &Overlay) -> Frame {
        let mut out = Frame::black(self.width, self.height).expect("checked in new");
        let (large, small) = if self.swapped { (local, remote) } else { (remote, local) };
        if let Some(p) = large {
            let area = self.main_area((p.width, p.height));
            out.paste_scaled(p, (area.x, area.y, area.width, area.height));
        }
        if let Some(p) = small {
            let r = self.inset((p.width, p.height));
            fill(&mut out, Rect { x: r.x - 2, y: r.y - 2, width: r.width + 4, height: r.height + 4 }, BORDER);
            out.paste_scaled(p, (r.x, r.y, r.width, r.height));
        }
        self.draw_overlay(&mut out, overlay);
        out
    }

    fn draw_overlay(&self, out: &mut Frame, overlay: &Overlay) {
        let (s, m) = (self.text_scale(), self.margin());
        let line = LINE_HEIGHT * s;
        let mut top = vec![overlay.peer.clone()];
        if !overlay.emoji.is_empty() {
            top.push(overlay.emoji.join("  "));
        }
        let full = self.width - 2 * m;
        for (i, text) in top.iter().enumerate() {
            draw_text(out, m, m + i * line, text, s, full);
        }
        // Bottom left, clear of the inset.
        let left_of_inset = self.width - self.width / 4 - 3 * m;
        let mut state = Vec::new();
        if overlay.muted {
            state.push("MIC OFF");
        }
        if !overlay.video {
            state.push("VIDEO OFF");
        }
        let bottom: Vec<String> =
            [state.join("  "), overlay.stats.clone()].into_iter().filter(|t| !t.is_empty()).collect();
        for (i, text) in bottom.iter().enumerate() {
            let y = self.height - m - (bottom.len() - i) * line;
            draw_text(out, m, y, text, s, left_of_inset);
        }
    }
}

/// One picture of a group call's view: a member's (or ours), with its name.
#[derive(Debug, Clone, Copy)]
pub struct Tile<'a> {
    /// The picture (`None`: its video is off, or none came yet: the tile stays black).
    pub picture: Option<&'a Frame>,
    /// Its name, written at the tile's bottom left.
    pub label: &'a str,
}

impl Compositor {
    /// Where each of `n` tiles goes in a group call's view. With a dominant speaker (`large`) and
    /// three tiles or more: that tile large over the whole width, the others in a strip below it
    /// (a quarter of the height; each at most a quarter of the width, centred). Otherwise a grid
    /// of equal cells, as square as fits `n` (2: side by side; 3–4: two by two; up to 9: three by
    /// three), filled row by row.
    pub fn group_layout(&self, n: usize, large: Option<usize>) -> Vec<Rect> {
        if n == 0 {
            return Vec::new();
        }
        if let Some(big) = large.filter(|&i| i < n && n >= 3) {
            let strip_h = even(self.height / 4);
            let tile_w = even((self.width / (n - 1)).min(self.width / 4));
            let left = even((self.width - tile_w * (n - 1)) / 2);
            let mut strip = (0..n - 1).map(|k| Rect { x: left + k * tile_w, y: self.height - strip_h, width: tile_w, height: strip_h });
            return (0..n)
                .map(|i| {
                    if i == big {
                        Rect { x: 0, y: 0, width: self.width, height: self.height - strip_h }
                    } else {
                        strip.next().expect("n - 1 strip cells")
                    }
                })
                .collect();
        }
        let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
        let rows = n.div_ceil(cols);
        let (cw, ch) = (even(self.width / cols), even(self.height / rows));
        (0..n).map(|i| Rect { x: (i % cols) * cw, y: (i / cols) * ch, width: cw, height: ch }).collect()
    }

    /// A group call's view: `tiles` as [`Compositor::group_layout`] places them (`large`: the
    /// dominant speaker's), each picture as large as fits its cell (black bars around), its name
    /// at the cell's bottom left; the overlay's lines (who, the group's emoji, our state and the
    /// stats) at the top.
    pub fn compose_group(&self, tiles: &[Tile<'_>], large: Option<usize>, overlay: &Overlay) -> Frame {
        let mut out = Frame::black(self.width, self.height).expect("checked in new");
        let s = self.text_scale();
        for (tile, cell) in tiles.iter().zip(self.group_layout(tiles.len(), large)) {
            if let Some(p) = tile.picture {
                let (x, y, width, height) = super::fit_in((cell.width, cell.height), (p.width, p.height));
                out.paste_scaled(p, (cell.x + x, cell.y + y, width, height));
            }
            let line = LINE_HEIGHT * s;
            if cell.height > line + 2 * s {
                draw_text(&mut out, cell.x + 2 * s, cell.y + cell.height - line, tile.label, s, cell.width.saturating_sub(4 * s));
            }
        }
        let (m, line) = (self.margin(), LINE_HEIGHT * s);
        let mut state = Vec::new();
        if overlay.muted {
            state.push("MIC OFF");
        }
        if !overlay.video {
            state.push("VIDEO OFF");
        }
        let lines: Vec<String> = [overlay.peer.clone(), overlay.emoji.join("  "), state.join("  "), overlay.stats.clone()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect();
        for (i, text) in lines.iter().enumerate() {
            draw_text(&mut out, m, m + i * line, text, s, self.width - 2 * m);
        }
        out
    }
}

/// Paints `r` (clipped to the picture) in grey `luma`.
fn fill(out: &mut Frame, r: Rect, luma: u8) {
    let (x1, y1) = ((r.x + r.width).min(out.width), (r.y + r.height).min(out.height));
    for row in r.y..y1 {
        out.y[row * out.width + r.x..row * out.width + x1].fill(luma);
    }
    let ow = out.width / 2;
    for row in r.y / 2..y1 / 2 {
        out.u[row * ow + r.x / 2..row * ow + x1 / 2].fill(128);
        out.v[row * ow + r.x / 2..row * ow + x1 / 2].fill(128);
    }
}

/// Writes `text` at (`x`, `y`) at `scale`, on a darkened band so it reads on any picture; cut at
/// `max_width` pixels.
fn draw_text(out: &mut Frame, x: usize, y: usize, text: &str, scale: usize, max_width: usize) {
    let fits = (max_width / (ADVANCE * scale)).min(text.chars().count());
    if fits == 0 || y + LINE_HEIGHT * scale > out.height {
        return;
    }
    // The band: the picture under it at a third of its brightness, its colour faded.
    let (bx, by) = (x.saturating_sub(scale), y.saturating_sub(scale));
    let (bx1, by1) = ((x + fits * ADVANCE * scale + scale).min(out.width), (y + LINE_HEIGHT * scale).min(out.height));
    for row in by..by1 {
        for p in &mut out.y[row * out.width + bx..row * out.width + bx1] {
            *p = BLACK + (p.saturating_sub(BLACK)) / 3;
        }
    }
    let ow = out.width / 2;
    for row in by / 2..by1.div_ceil(2).min(out.height / 2) {
        for plane in [&mut out.u, &mut out.v] {
            for p in &mut plane[row * ow + bx / 2..row * ow + bx1.div_ceil(2).min(ow)] {
                *p = (128 + (i32::from(*p) - 128) / 3) as u8;
            }
        }
    }
    for (i, ch) in text.chars().take(fits).enumerate() {
        let rows = font::glyph(ch);
        let x0 = x + i * ADVANCE * scale;
        for (gy, bits) in rows.iter().enumerate().take(GLYPH_HEIGHT) {
            for gx in 0..GLYPH_WIDTH {
                if bits >> (GLYPH_WIDTH - 1 - gx) & 1 == 1 {
                    for dy in 0..scale {
                        let row = (y + gy * scale + dy) * out.width;
                        out.y[row + x0 + gx * scale..row + x0 + (gx + 1) * scale].fill(TEXT);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::pattern::{self, Stamp};

    fn remote() -> Frame {
        pattern::draw(640, 360, Stamp { counter: 7, capture_ms: 1234 }).unwrap()
    }

    fn local() -> Frame {
        pattern::draw(320, 180, Stamp { counter: 99, capture_ms: 5678 }).unwrap()
    }

    /// The luma of `f` inside `r` (the measures and the stamp look at luma only).
    fn crop(f: &Frame, r: Rect) -> Frame {
        f.cropped((r.x, r.y, r.width, r.height)).expect("an area inside the picture")
    }

    #[test]
    fn the_remote_fills_the_view_and_the_self_view_sits_bottom_right_with_its_stamp_readable() {
        let c = Compositor::new(640, 360).unwrap();
        let view = c.compose(Some(&remote()), Some(&local()), &Overlay::default());
        let inset = c.inset((320, 180));
        assert_eq!(inset, Rect { x: 464, y: 254, width: 160, height: 90 });
        // Inside the inset: our own picture (its stamp reads back at the inset's size).
        let small = crop(&view, inset);
        assert!(small.psnr(&local().scaled(160, 90).unwrap()).unwrap() > 40.0);
        assert_eq!(pattern::read(&small).map(|s| s.counter), Some(99));
        // The rest: the remote picture, untouched (no overlay text with an empty overlay but the
        // video-off state, which is written at the bottom left).
        let top = Rect { x: 0, y: 0, width: 640, height: 200 };
        assert_eq!(crop(&view, top).psnr(&crop(&remote(), top)), Some(99.0));
        assert_eq!(pattern::read(&view).map(|s| s.counter), Some(7));

        // Swapped: ours large, theirs small.
        let mut c = c;
        c.set_swapped(true);
        let view = c.compose(Some(&remote()), Some(&local()), &Overlay::default());
        assert_eq!(pattern::read(&view).map(|s| s.counter), Some(99));
        let inset = c.inset((640, 360));
        assert_eq!(pattern::read(&crop(&view, inset)).map(|s| s.counter), Some(7));
    }

    #[test]
    fn a_group_is_a_grid_or_its_speaker_large_over_a_strip_and_every_tile_reads_back() {
        let c = Compositor::new(640, 360).unwrap();
        // Grids: 2 side by side, 3 and 4 two by two, 5 three by two.
        assert_eq!(c.group_layout(2, None), [Rect { x: 0, y: 0, width: 320, height: 360 }, Rect { x: 320, y: 0, width: 320, height: 360 }]);
        let four = c.group_layout(4, None);
        assert_eq!(four[3], Rect { x: 320, y: 180, width: 320, height: 180 });
        assert_eq!(c.group_layout(3, None)[..], four[..3]);
        assert_eq!(c.group_layout(5, None)[4], Rect { x: 212, y: 180, width: 212, height: 180 });
        // A dominant speaker among 4: large on top, the 3 others in a strip of quarter-width cells.
        let speaker = c.group_layout(4, Some(2));
        assert_eq!(speaker[2], Rect { x: 0, y: 0, width: 640, height: 270 });
        assert_eq!(speaker[0], Rect { x: 80, y: 270, width: 160, height: 90 });
        assert_eq!(speaker[3], Rect { x: 400, y: 270, width: 160, height: 90 });
        // Two tiles: side by side even with a speaker; an index out of range is no speaker.
        assert_eq!(c.group_layout(2, Some(0)), c.group_layout(2, None));
        assert_eq!(c.group_layout(3, Some(7)), c.group_layout(3, None));
        assert!(c.group_layout(0, None).is_empty());
        for n in 1..=9 {
            for large in [None, Some(0)] {
                for r in c.group_layout(n, large) {
                    assert!(r.x + r.width <= 640 && r.y + r.height <= 360 && r.width > 0 && r.height > 0, "{n} {r:?}");
                }
            }
        }

        // Composed: each member's stamp reads back from its cell (at strip size too), the one
        // without a picture stays black, and its name is written.
        let pictures: Vec<Frame> =
            (0..3).map(|k| pattern::draw(320, 180, Stamp { counter: 10 + k, capture_ms: 0 }).unwrap()).collect();
        let tiles = [
            Tile { picture: Some(&pictures[0]), label: "BOB" },
            Tile { picture: Some(&pictures[1]), label: "CAROL" },
            Tile { picture: None, label: "DAVE" },
            Tile { picture: Some(&pictures[2]), label: "YOU" },
        ];
        for large in [None, Some(1)] {
            let view = c.compose_group(&tiles, large, &Overlay { video: true, ..Overlay::default() });
            let cells = c.group_layout(4, large);
            for (k, counter) in [(0, 10), (1, 11), (3, 12)] {
                let cell = cells[k];
                let (x, y, width, height) = crate::media::video::fit_in((cell.width, cell.height), (320, 180));
                let shown = Rect { x: cell.x + x, y: cell.y + y, width, height };
                assert_eq!(pattern::read(&crop(&view, shown)).map(|s| s.counter), Some(counter), "tile {k} {large:?}");
            }
            let dave = crop(&view, Rect { height: even(cells[2].height / 2), ..cells[2] });
            assert!(dave.y.iter().all(|&p| p == BLACK), "no picture: black");
        }
        // The speaker's cell holds the speaker's picture as large as fits.
        let view = c.compose_group(&tiles, Some(1), &Overlay::default());
        let big = Rect { x: 80, y: 0, width: 480, height: 270 };
        assert_eq!(c.group_layout(4, Some(1))[1], Rect { x: 0, y: 0, width: 640, height: 270 });
        assert!(crop(&view, Rect { y: 40, height: 180, ..big }).psnr(&crop(&pictures[1].scaled(480, 270).unwrap(), Rect { x: 0, y: 40, width: 480, height: 180 })).unwrap() > 40.0);
    }

    #[test]
    fn a_picture_of_another_shape_is_letterboxed_and_no_picture_is_black() {
        let c = Compositor::new(640, 360).unwrap();
        let square = pattern::draw(200, 200, Stamp { counter: 3, capture_ms: 0 }).unwrap();
        assert_eq!(c.main_area((200, 200)), Rect { x: 140, y: 0, width: 360, height: 360 });
        let view = c.compose(Some(&square), None, &Overlay { video: true, ..Overlay::default() });
        assert!(view.y[180 * 640..180 * 640 + 140].iter().all(|&p| p == BLACK), "black bars at the sides");
        let view = c.compose(None, None, &Overlay { video: true, ..Overlay::default() });
        assert!(view.y.iter().all(|&p| p == BLACK));
        assert!(Compositor::new(641, 360).is_none() && Compositor::new(32, 18).is_none());
    }

    #[test]
    fn text_is_drawn_white_on_a_dark_band_and_cut_where_it_would_run_off() {
        let c = Compositor::new(320, 180).unwrap();
        let grey = {
            let mut f = Frame::black(320, 180).unwrap();
            f.y.fill(128);
            f
        };
        let overlay = Overlay { peer: "BOB".into(), video: true, ..Overlay::default() };
        let view = c.compose(Some(&grey), None, &overlay);
        let m = c.margin();
        // "B" at (m, m): its top row is 11110.
        let row = &view.y[m * 320 + m..m * 320 + m + 5];
        assert_eq!(row, [TEXT, TEXT, TEXT, TEXT, 16 + (128 - 16) / 3]);
        // A long line stops short of the right edge instead of wrapping or panicking.
        let long =
            Overlay { peer: "X".repeat(500), stats: "Y".repeat(500), video: false, muted: true, ..Overlay::default() };
        let view = c.compose(Some(&grey), None, &long);
        assert!(view.y[(m + 1) * 320 + 320 - m / 2..(m + 1) * 320 + 320].iter().all(|&p| p == 128));
    }
}
