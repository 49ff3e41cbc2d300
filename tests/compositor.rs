//! The call view's compositor against a golden picture: a fixed scene (the peer's pattern large,
//! ours as the inset, the name, the four emoji's names, the muted state and a stats line) is
//! composed, written to a Y4M file, read back, and compared by PSNR with the reference committed
//! in `tests/golden/` (PSNR, not bytes: a change in scaling rounding is not a regression, a moved
//! inset or missing text is). `HAIL_BLESS_GOLDEN=1` writes the reference anew (look at it first:
//! `convert -size 320x180 -depth 8 gray:… view.png` on its luma, or any Y4M player).

use std::path::{Path, PathBuf};

use hail::media::video::Frame;
use hail::media::video::clock::FrameRate;
use hail::media::video::compositor::{Compositor, Overlay};
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::y4m::{Y4mReader, Y4mWriter};

const GOLDEN: &str = "tests/golden/call-view-320x180.y4m";

fn scene(swapped: bool, overlay: &Overlay) -> Frame {
    let remote = pattern::draw(640, 360, Stamp { counter: 7, capture_ms: 1234 }).unwrap();
    let local = pattern::draw(320, 180, Stamp { counter: 99, capture_ms: 5678 }).unwrap();
    let mut c = Compositor::new(320, 180).unwrap();
    c.set_swapped(swapped);
    c.compose(Some(&remote), Some(&local), overlay)
}

fn overlay() -> Overlay {
    Overlay {
        peer: "bob".into(),
        emoji: ["compass", "trophy", "badger", "ice cube"].map(String::from).to_vec(),
        muted: true,
        video: true,
        stats: "640x360 30 fps rtt 12 ms".into(),
    }
}

fn write(path: &Path, f: &Frame) {
    let mut w = Y4mWriter::create(path, f.width, f.height, FrameRate::THIRTY).unwrap();
    w.write(f).unwrap();
    w.finish(FrameRate::THIRTY).unwrap();
}

fn read(path: &Path) -> Frame {
    let mut r = Y4mReader::open(path).unwrap_or_else(|e| panic!("{e} (HAIL_BLESS_GOLDEN=1 writes it)"));
    r.next_frame().unwrap().expect("one picture")
}

#[test]
fn the_call_view_matches_its_golden_picture_and_a_changed_view_does_not() {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let view = scene(false, &overlay());
    if std::env::var_os("HAIL_BLESS_GOLDEN").is_some() {
        write(&golden, &view);
    }
    // Written and read back, as a viewer or a screenshot would have it.
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("call-view-320x180.y4m");
    write(&out, &view);
    let written = read(&out);
    let reference = read(&golden);
    let psnr = written.psnr(&reference).unwrap();
    assert!(psnr >= 45.0, "{} differs from {GOLDEN}: {psnr:.1} dB", out.display());

    // The comparison tells a different view apart: pictures swapped, the text gone, one emoji name
    // changed.
    let swapped = scene(true, &overlay()).psnr(&reference).unwrap();
    assert!(swapped < 20.0, "swapped: {swapped:.1} dB");
    let bare = scene(false, &Overlay { video: true, ..Overlay::default() }).psnr(&reference).unwrap();
    assert!(bare < 30.0, "without the overlay: {bare:.1} dB");
    let mut other = overlay();
    other.emoji[0] = "anchor".into();
    let renamed = scene(false, &other).psnr(&reference).unwrap();
    assert!(renamed < 45.0, "one emoji name changed: {renamed:.1} dB");
    eprintln!("golden {psnr:.1} dB; swapped {swapped:.1}, bare {bare:.1}, renamed {renamed:.1} dB");
}
