//! `hail view` on screen: how many of the peer's pictures a person sees per second, and how old a
//! picture is when it is on screen (its capture stamp → the screenshot that shows it), read back
//! from the burned-in pattern stamps in screenshots of the viewer's window under Xvfb, between two
//! real daemons on loopback (320x180 video, the pattern source). The daemon's own render latency
//! (`glass_to_glass_ms`, stamp → handed to the sink) is printed beside it: the difference is what
//! the viewer adds (the control socket, the compositor, the blit, the X server).
//!
//! Usage: `cargo bench --bench window [-- SECONDS]` (default 10). Under `cargo test` (no `--bench`)
//! it measures 2 seconds as a smoke test. Needs Xvfb, xwd and xdotool (scripts/deps.sh installs
//! them). Prints one JSON object.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/x11.rs"]
mod x11;
#[path = "common/args.rs"]
mod args;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Background, HAIL, pair_of_contacts, wait_status};
use hail::media::video::pattern;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let seconds: f64 = args.number().unwrap_or(if args.bench { 10.0 } else { 2.0 });
    let x = x11::Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let small = ["--video-max-size", "320x180"];
    let (alice, bob) = pair_of_contacts(dir.path(), &small, &small);
    let _caller = Background::start(&alice.home, &["call", "bob", "--video", "--audio-in", "tone:440"]);
    wait_status(&bob, "ringing", |s| s["call"]["state"] == "ringing");
    bob.hail(&["answer", "--audio-in", "tone:660"]).ok();
    wait_status(&alice, "receiving video", |s| {
        s["call"]["video_stats"]["receive"]["frames_decoded"].as_u64() > Some(30)
    });
    let mut viewer = Command::new(HAIL)
        .arg("--home")
        .arg(&alice.home)
        .arg("view")
        .env("DISPLAY", &x.display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn hail view");
    let id = x.wait_window("hail view");
    // Let it settle: the first pictures are on screen.
    std::thread::sleep(Duration::from_millis(500));

    let start = Instant::now();
    let (mut shots, mut unreadable, mut shot_ms) = (0u32, 0u32, Vec::new());
    let mut counters = Vec::new();
    let mut ages = Vec::new();
    while start.elapsed().as_secs_f64() < seconds {
        let before = hail::wall_clock::now_us();
        let t = Instant::now();
        let shot = x.window_shot(&id);
        let after = hail::wall_clock::now_us();
        shot_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        shots += 1;
        let Some(stamp) = pattern::read(&shot) else {
            unreadable += 1;
            continue;
        };
        counters.push(stamp.counter);
        // The picture was grabbed somewhere during xwd's run: take its middle (both machines'
        // clocks are this one's).
        let grabbed_ms = ((before + after) / 2 / 1000) as u32;
        ages.push(f64::from(grabbed_ms.wrapping_sub(stamp.capture_ms) as i32));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let status = alice.hail(&["--json", "status"]).json();
    let receive = &status["ok"]["call"]["video_stats"]["receive"];
    let _ = viewer.kill();
    let _ = viewer.wait();

    let mut distinct = counters.clone();
    distinct.dedup();
    let advanced = match (counters.first(), counters.last()) {
        (Some(a), Some(b)) => b.saturating_sub(*a),
        _ => 0,
    };
    ages.sort_by(f64::total_cmp);
    shot_ms.sort_by(f64::total_cmp);
    let daemon_ms = receive["glass_to_glass_ms"].as_f64().unwrap_or(f64::NAN);
    let result = serde_json::json!({
        "bench": "window",
        "seconds": round(elapsed),
        "video": "320x180 pattern, loopback",
        "window": "640x360",
        "screenshots": shots,
        "screenshots_per_s": round(f64::from(shots) / elapsed),
        "screenshot_ms_median": round(percentile(&shot_ms, 0.5)),
        "unreadable": unreadable,
        // Distinct pictures caught on screen per second: a floor for the rate shown (a picture
        // shown between two screenshots is missed).
        "distinct_pictures_per_s": round(distinct.len() as f64 / elapsed),
        // How fast the counter on screen advanced: the sender's pictures per second that reached
        // the screen, skipped ones included.
        "counter_advance_per_s": round(f64::from(advanced) / elapsed),
        "daemon_fps": receive["fps"].as_f64().or(status["ok"]["call"]["video_stats"]["receive_fps"].as_f64()),
        "on_screen_age_ms": {
            "median": round(percentile(&ages, 0.5)),
            "p90": round(percentile(&ages, 0.9)),
            "min": round(percentile(&ages, 0.0)),
        },
        "daemon_render_age_ms": round(daemon_ms),
        "added_by_viewer_ms_median": round(percentile(&ages, 0.5) - daemon_ms),
    });
    println!("{result}");
    assert!(!counters.is_empty(), "no readable picture on screen in {shots} screenshots");
}
