//! `hail view` under Xvfb, between two real daemons in a video call with the test pattern: the
//! peer's burned-in counter advances on screen, the self-view sits in its inset, `p` makes the
//! window small in the screen's corner and back, `s` swaps, and closing the viewer leaves the call
//! running. Without a display: a clear error, never a panic.

mod common;
#[path = "common/x11.rs"]
mod x11;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{HAIL, TestDaemon, pair_of_contacts, wait_status};
use hail::media::video::compositor::Compositor;
use hail::media::video::clock::FrameRate;
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::y4m::Y4mWriter;
use x11::{Geometry, SCREEN, Viewer, Xvfb, stamp_in};

/// Alice's own pictures carry counters from here up (a stamped file), bob's live pattern counts
/// from 0: which side a picture on screen is from reads off its counter.
const OURS: u32 = 1_000_000;

/// A video call between alice and bob at 320x180: alice sends a looped file of stamped pictures
/// (counters from [`OURS`]), bob the live pattern.
fn video_call(dir: &std::path::Path) -> (TestDaemon, TestDaemon, common::Background) {
    let rate = FrameRate::new(30, 1).unwrap();
    let input = dir.join("ours.y4m");
    let mut w = Y4mWriter::create(&input, 320, 180, rate).unwrap();
    for n in 0..60 {
        w.write(&pattern::draw(320, 180, Stamp { counter: OURS + n, capture_ms: 0 }).unwrap()).unwrap();
    }
    w.finish(rate).unwrap();
    let small = ["--video-max-size", "320x180"];
    let (alice, bob) = pair_of_contacts(dir, &small, &small);
    let caller = common::Background::start(
        &alice.home,
        &["call", "bob", "--video", "--audio-in", "tone:440", "--video-in", input.to_str().unwrap()],
    );
    wait_status(&bob, "ringing", |s| s["call"]["state"] == "ringing");
    bob.hail(&["answer", "--audio-in", "tone:660"]).ok();
    wait_status(&alice, "receiving video", |s| {
        s["call"]["state"] == "active" && s["call"]["video_stats"]["receive"]["frames_decoded"].as_u64() > Some(5)
    });
    (alice, bob, caller)
}

fn theirs(s: Stamp) -> bool {
    s.counter < OURS
}

fn ours(s: Stamp) -> bool {
    s.counter >= OURS
}

fn call_of(d: &TestDaemon) -> serde_json::Value {
    d.hail(&["--json", "status"]).json()["ok"]["call"].clone()
}

#[test]
fn the_viewer_shows_the_call_and_goes_picture_in_picture_and_back() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, _caller) = video_call(dir.path());
    let viewer = Viewer::start(&alice, &x.display);
    let id = x.wait_window("hail view");
    let normal = x.wait_geometry(&id, "its normal size", |g| (g.width, g.height) == (640, 360));
    assert!(x.decorated(&id), "a normal window has its frame");

    // The peer's pattern fills the window and its counter advances between two shots.
    let first = stamp_in(&x, normal, "their picture", theirs);
    stamp_in(&x, normal, "their picture, a later one", |s| theirs(s) && s.counter > first.counter);

    // The self-view: a white-framed inset bottom right, with our own pictures in it.
    let inset = Compositor::new(640, 360).unwrap().inset((320, 180));
    let frame_above = |shot: &hail::media::video::Frame| {
        let row = (inset.y - 1) * 640 + inset.x;
        shot.y[row..row + inset.width].iter().all(|&p| p > 200)
    };
    assert!(frame_above(&x.screenshot(normal)), "a white frame above the inset");
    let inset_area = Geometry {
        x: normal.x + inset.x as i32,
        y: normal.y + inset.y as i32,
        width: inset.width as i32,
        height: inset.height as i32,
    };
    stamp_in(&x, inset_area, "our picture in the inset", ours);
    // s swaps: ours large, theirs inset; s again swaps back.
    x.key(&id, "s");
    stamp_in(&x, normal, "our picture, large", ours);
    stamp_in(&x, inset_area, "their picture, inset", theirs);
    x.key(&id, "s");
    stamp_in(&x, normal, "their picture, large again", theirs);

    // m mutes, v turns our video off (the self-view goes), and on again.
    x.key(&id, "m");
    wait_status(&alice, "muted by m", |s| s["call"]["muted"] == true);
    x.key(&id, "v");
    wait_status(&alice, "video off by v", |s| s["call"]["video"] == false);
    wait_status(&bob, "bob sees video paused", |s| s["call"]["remote_video"] == false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while frame_above(&x.screenshot(normal)) {
        assert!(Instant::now() < deadline, "the self-view stays with our video off");
        std::thread::sleep(Duration::from_millis(100));
    }
    x.key(&id, "v");
    wait_status(&alice, "video on by v", |s| s["call"]["video"] == true);
    stamp_in(&x, inset_area, "our picture back in the inset", ours);

    // p: small, in the bottom-right corner of the screen, still playing.
    x.key(&id, "p");
    let pip = x.wait_geometry(&id, "picture-in-picture", |g| (g.width, g.height) == (320, 180));
    assert!(pip.x + pip.width > SCREEN.0 - 64 && pip.y + pip.height > SCREEN.1 - 64, "in the corner: {pip:?}");
    assert!(!x.decorated(&id), "picture-in-picture is borderless");
    let a = stamp_in(&x, pip, "their picture, small", theirs);
    stamp_in(&x, pip, "their picture, small, a later one: it keeps playing", |s| theirs(s) && s.counter > a.counter);
    // p again: back where it was.
    x.key(&id, "p");
    let back = x.wait_geometry(&id, "its normal size again", |g| (g.width, g.height) == (640, 360));
    assert_eq!((back.x, back.y), (normal.x, normal.y));
    assert!(x.decorated(&id), "its frame is back");
    // And back from picture-in-picture with a double click.
    x.key(&id, "p");
    let pip = x.wait_geometry(&id, "picture-in-picture again", |g| (g.width, g.height) == (320, 180));
    let (cx, cy) = ((pip.x + pip.width / 2).to_string(), (pip.y + pip.height / 2).to_string());
    x.run("xdotool", &["mousemove", "--sync", &cx, &cy]).unwrap();
    x.run("xdotool", &["click", "--repeat", "2", "--delay", "80", "1"]).unwrap();
    let back = x.wait_geometry(&id, "its normal size after a double click", |g| (g.width, g.height) == (640, 360));
    assert_eq!((back.x, back.y), (normal.x, normal.y));

    // Closing the viewer leaves the call (and the daemon) running.
    drop(viewer);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(call_of(&alice)["state"], "active");

    // Two viewers at once; q asks first, n keeps the call, q and y hang up and close that viewer.
    let mut one = Viewer::start(&alice, &x.display);
    let mut two = Viewer::start(&alice, &x.display);
    let window_of = |v: &Viewer| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pid = v.0.id().to_string();
            let out = x.run("xdotool", &["search", "--all", "--onlyvisible", "--pid", &pid, "--name", "hail view"]);
            if let Some(id) = out.ok().and_then(|o| String::from_utf8_lossy(&o).lines().next().map(str::to_owned)) {
                return id;
            }
            assert!(Instant::now() < deadline, "viewer {pid} opened no window");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (id_one, id_two) = (window_of(&one), window_of(&two));
    assert_ne!(id_one, id_two);
    for id in [&id_one, &id_two] {
        stamp_in(&x, x.geometry(id), "their picture in each viewer", theirs);
    }
    x.key(&id_one, "q");
    std::thread::sleep(Duration::from_millis(300));
    x.key(&id_one, "n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(call_of(&alice)["state"], "active", "n keeps the call");
    x.key(&id_one, "Escape");
    std::thread::sleep(Duration::from_millis(300));
    x.key(&id_one, "y");
    wait_status(&alice, "hung up by Esc y", |s| s["call"]["state"] == "ended");
    wait_status(&bob, "bob's call ended", |s| s["call"]["state"] == "ended");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = one.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the viewer that hung up did not close");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The other viewer stays open, waiting for the next call.
    assert_eq!(two.0.try_wait().unwrap(), None);
}

#[test]
fn without_a_display_the_viewer_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestDaemon::start(&dir.path().join("alice"));
    for display in [None, Some(":917")] {
        let mut cmd = Command::new(HAIL);
        cmd.arg("--home").arg(&alice.home).arg("view").env_remove("DISPLAY");
        if let Some(d) = display {
            cmd.env("DISPLAY", d);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{display:?}: {stderr}");
        assert!(stderr.contains("cannot open a window") && stderr.contains("X11 display"), "{display:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
