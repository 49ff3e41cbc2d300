//! The call view's compositor: how long one picture takes to compose (the peer's 640x360 picture
//! scaled to the view, our 320x180 inset, the overlay text), per view size, on one core. Prints one
//! JSON object.
//!
//! Usage: `cargo bench --bench compositor [-- PICTURES]` (default 300). Under `cargo test` (no
//! `--bench`) it composes 3 pictures per size as a smoke test.

use std::time::Instant;

use hail::media::video::compositor::{Compositor, Overlay};
use hail::media::video::pattern::{self, Stamp};

#[path = "common/args.rs"]
mod args;

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let bench = args.bench;
    let pictures: u32 = args.number().unwrap_or(if bench { 300 } else { 3 });
    let local = pattern::draw(320, 180, Stamp { counter: 1, capture_ms: 0 }).unwrap();
    let overlay = Overlay {
        peer: "bob".into(),
        emoji: ["compass", "trophy", "badger", "ice cube"].map(String::from).to_vec(),
        muted: true,
        video: true,
        stats: "640x360 30 fps rtt 12 ms".into(),
    };
    let mut results = Vec::new();
    for (w, h) in [(640, 360), (1280, 720), (320, 180)] {
        let c = Compositor::new(w, h).unwrap();
        let remotes: Vec<_> =
            (0..8).map(|n| pattern::draw(640, 360, Stamp { counter: n, capture_ms: 0 }).unwrap()).collect();
        let start = Instant::now();
        let mut check = 0u64;
        for n in 0..pictures {
            let view = c.compose(Some(&remotes[n as usize % remotes.len()]), Some(&local), &overlay);
            check += u64::from(view.y[view.y.len() / 2]);
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(pictures.max(1));
        results.push(serde_json::json!({
            "view": format!("{w}x{h}"),
            "pictures": pictures,
            "ms_per_picture": (ms * 100.0).round() / 100.0,
            "checksum": check,
        }));
    }
    println!("{}", serde_json::json!({ "bench": "compositor", "results": results }));
}
