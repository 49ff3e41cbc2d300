//! `hail view` on screen: how many of the peer's pictures a person sees per second, and how old a
//! picture is when it is on screen (its capture stamp → the screenshot that shows it), read back
//! from the burned-in pattern stamps in screenshots of the viewer's window under Xvfb, between two
//! real daemons on loopback (320x180 video, the pattern source). The daemon's own render latency
//! (`glass_to_glass_ms`, stamp → handed to the sink) is printed beside it: the difference is what
//! the viewer adds (the control socket, the compositor, the blit, the X server).
//!
//! `group` instead: three daemons in a group call with video, the dominant speaker's tile large
//! and another's in the strip, each tile's rate and age read the same way.
//!
//! Usage: `cargo bench --bench window [-- [group] SECONDS]` (default 10). Under `cargo test` (no
//! `--bench`) it measures 2 seconds of the call as a smoke test. Needs Xvfb, xwd and xdotool (scripts/deps.sh installs
//! them). Prints one JSON object.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/x11.rs"]
mod x11;
#[path = "../tests/common/group_daemons.rs"]
mod group_daemons;
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

/// What the screenshots showed of one picture's area: its stamps' counters in order, their ages
/// on screen, and the shots where no stamp could be read.
#[derive(Default)]
struct Track {
    counters: Vec<u32>,
    ages: Vec<f64>,
    unreadable: u32,
}

impl Track {
    /// The figures of the rate and age shown, over `elapsed` seconds.
    fn summary(&self, elapsed: f64) -> serde_json::Value {
        let mut distinct = self.counters.clone();
        distinct.dedup();
        let advanced = match (self.counters.first(), self.counters.last()) {
            (Some(a), Some(b)) => b.saturating_sub(*a),
            _ => 0,
        };
        let mut ages = self.ages.clone();
        ages.sort_by(f64::total_cmp);
        serde_json::json!({
            "unreadable": self.unreadable,
            // Distinct pictures caught on screen per second: a floor for the rate shown (a
            // picture shown between two screenshots is missed).
            "distinct_pictures_per_s": round(distinct.len() as f64 / elapsed),
            // How fast the counter on screen advanced: the sender's pictures per second that
            // reached the screen, skipped ones included.
            "counter_advance_per_s": round(f64::from(advanced) / elapsed),
            "on_screen_age_ms": {
                "median": round(percentile(&ages, 0.5)),
                "p90": round(percentile(&ages, 0.9)),
                "min": round(percentile(&ages, 0.0)),
            },
        })
    }
}

/// Screenshots of window `id` for `seconds`, the stamp read in each of `areas` (window pixels:
/// x, y, width, height; `None`: the whole window). Returns a track per area, the shots, their
/// durations (ms) and the time taken.
fn measure(x: &x11::Xvfb, id: &str, areas: &[Option<(usize, usize, usize, usize)>], seconds: f64) -> (Vec<Track>, u32, Vec<f64>, f64) {
    let start = Instant::now();
    let (mut shots, mut shot_ms) = (0u32, Vec::new());
    let mut tracks: Vec<Track> = areas.iter().map(|_| Track::default()).collect();
    while start.elapsed().as_secs_f64() < seconds {
        let before = hail::wall_clock::now_us();
        let t = Instant::now();
        let shot = x.window_shot(id);
        let after = hail::wall_clock::now_us();
        shot_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        shots += 1;
        // The picture was grabbed somewhere during xwd's run: take its middle (both machines'
        // clocks are this one's).
        let grabbed_ms = ((before + after) / 2 / 1000) as u32;
        for (area, track) in areas.iter().zip(&mut tracks) {
            let stamp = match area {
                None => pattern::read(&shot),
                Some(r) => shot.cropped(*r).and_then(|c| pattern::read(&c)),
            };
            let Some(stamp) = stamp else {
                track.unreadable += 1;
                continue;
            };
            track.counters.push(stamp.counter);
            track.ages.push(f64::from(grabbed_ms.wrapping_sub(stamp.capture_ms) as i32));
        }
    }
    shot_ms.sort_by(f64::total_cmp);
    (tracks, shots, shot_ms, start.elapsed().as_secs_f64())
}

fn open_viewer(x: &x11::Xvfb, home: &std::path::Path) -> (std::process::Child, String) {
    let viewer = Command::new(HAIL)
        .arg("--home")
        .arg(home)
        .arg("view")
        .env("DISPLAY", &x.display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn hail view");
    let id = x.wait_window("hail view");
    // Let it settle: the first pictures are on screen.
    std::thread::sleep(Duration::from_millis(500));
    (viewer, id)
}

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let seconds: f64 = args.number().unwrap_or(if args.bench { 10.0 } else { 2.0 });
    let x = x11::Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    if args.positional.iter().any(|a| a == "group") {
        return group(&x, dir.path(), seconds);
    }
    let small = ["--video-max-size", "320x180"];
    let (alice, bob) = pair_of_contacts(dir.path(), &small, &small);
    let _caller = Background::start(&alice.home, &["call", "bob", "--video", "--audio-in", "tone:440"]);
    wait_status(&bob, "ringing", |s| s["call"]["state"] == "ringing");
    bob.hail(&["answer", "--audio-in", "tone:660"]).ok();
    wait_status(&alice, "receiving video", |s| {
        s["call"]["video_stats"]["receive"]["frames_decoded"].as_u64() > Some(30)
    });
    let (mut viewer, id) = open_viewer(&x, &alice.home);
    let (tracks, shots, shot_ms, elapsed) = measure(&x, &id, &[None], seconds);
    let status = alice.hail(&["--json", "status"]).json();
    let receive = &status["ok"]["call"]["video_stats"]["receive"];
    let _ = viewer.kill();
    let _ = viewer.wait();

    let track = &tracks[0];
    let daemon_ms = receive["glass_to_glass_ms"].as_f64().unwrap_or(f64::NAN);
    let mut result = serde_json::json!({
        "bench": "window",
        "seconds": round(elapsed),
        "video": "320x180 pattern, loopback",
        "window": "640x360",
        "screenshots": shots,
        "screenshots_per_s": round(f64::from(shots) / elapsed),
        "screenshot_ms_median": round(percentile(&shot_ms, 0.5)),
        "daemon_fps": receive["fps"].as_f64().or(status["ok"]["call"]["video_stats"]["receive_fps"].as_f64()),
        "daemon_render_age_ms": round(daemon_ms),
    });
    let summary = track.summary(elapsed);
    for (k, v) in summary.as_object().unwrap() {
        result[k] = v.clone();
    }
    result["added_by_viewer_ms_median"] = round(summary["on_screen_age_ms"]["median"].as_f64().unwrap_or(f64::NAN) - daemon_ms).into();
    println!("{result}");
    assert!(!track.counters.is_empty(), "no readable picture on screen in {shots} screenshots");
}

/// The group scene: alice, bob and carol in a group call with video (320x180 pattern each); only
/// bob makes a sound, so he is the dominant speaker and his tile is the large one; `hail view` for
/// alice. Each tile's pictures per second and age on screen, beside what alice's daemon receives.
fn group(x: &x11::Xvfb, dir: &std::path::Path, seconds: f64) {
    use hail::media::video::compositor::Compositor;
    let d = group_daemons::contacts_all(dir, &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&d[0], &d[1], &d[2]);
    let ids: Vec<String> = d.iter().map(group_daemons::peer_id).collect();
    alice.hail(&["call", "bob", "carol", "--detach", "--video", "--audio-in", "silence"]).ok();
    group_daemons::answer_group_invite_with(bob, "alice", &["--audio-in", "tone:440"]);
    group_daemons::answer_group_invite_with(carol, "alice", &["--audio-in", "silence"]);
    let status = wait_status(alice, "bob speaks and both others' video is decoded", |s| {
        s["group"]["dominant"] == ids[1].as_str()
            && s["group"]["video"]["participants"]
                .as_array()
                .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["receive"]["frames_decoded"].as_u64() > Some(30)))
    });
    let others: Vec<String> = status["group"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["me"] != true)
        .map(|p| p["peer_id"].as_str().unwrap().to_owned())
        .collect();
    let tile = |id: &str| others.iter().position(|o| o == id).unwrap();
    let (bob_tile, carol_tile) = (tile(&ids[1]), tile(&ids[2]));
    let layout = Compositor::new(640, 360).unwrap().group_layout(3, Some(bob_tile));
    let shown = |k: usize| {
        let cell = layout[k];
        let (x, y, w, h) = hail::media::video::fit_in((cell.width, cell.height), (320, 180));
        Some((cell.x + x, cell.y + y, w, h))
    };
    let (mut viewer, id) = open_viewer(x, &alice.home);
    let (tracks, shots, shot_ms, elapsed) = measure(x, &id, &[shown(bob_tile), shown(carol_tile)], seconds);
    let status = alice.hail(&["--json", "status"]).json();
    let _ = viewer.kill();
    let _ = viewer.wait();
    let fps_of = |who: &str| {
        status["ok"]["group"]["video"]["participants"].as_array().and_then(|p| {
            p.iter().find(|p| p["member"] == who).and_then(|p| p["fps"].as_u64())
        })
    };
    let result = serde_json::json!({
        "bench": "window_group",
        "seconds": round(elapsed),
        "video": "3 members, 320x180 pattern each, loopback; bob speaks (large tile), carol in the strip",
        "window": "640x360",
        "screenshots": shots,
        "screenshots_per_s": round(f64::from(shots) / elapsed),
        "screenshot_ms_median": round(percentile(&shot_ms, 0.5)),
        "large_tile": {"tile": "480x270", "daemon_fps": fps_of(&ids[1]), "on_screen": tracks[0].summary(elapsed)},
        "strip_tile": {"tile": "160x90", "daemon_fps": fps_of(&ids[2]), "on_screen": tracks[1].summary(elapsed)},
    });
    println!("{result}");
    assert!(tracks.iter().all(|t| !t.counters.is_empty()), "a tile showed no readable picture in {shots} screenshots");
}
