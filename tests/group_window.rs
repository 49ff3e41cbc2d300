//! `hail view` of a group call under Xvfb, between three real daemons with video (issues 13 and
//! 16): every other member's picture is a tile and ours is one too, the dominant speaker's tile is
//! large (who speaks drives the layout), a member's burned-in counter advances in its tile, and
//! the view follows a member who turns its video off. Which member a tile shows reads off its
//! counter: bob and carol send stamped files whose counters start at their own base, alice the
//! live pattern.

mod common;
#[path = "common/group_daemons.rs"]
mod group_daemons;
#[path = "common/x11.rs"]
mod x11;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestDaemon, wait_status};
use group_daemons::{all_settled, answer_group_invite_with, contacts_all, peer_id};
use hail::media::video::clock::FrameRate;
use hail::media::video::compositor::{Compositor, Rect};
use hail::media::video::fit_in;
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::y4m::Y4mWriter;
use serde_json::Value;
use x11::{Geometry, Viewer, Xvfb, stamp_in};

const BOB: u32 = 2_000_000;
const CAROL: u32 = 3_000_000;

/// 60 stamped 320x180 pictures counting from `base`, looped by the source.
fn stamped(dir: &Path, name: &str, base: u32) -> PathBuf {
    let rate = FrameRate::new(30, 1).unwrap();
    let path = dir.join(format!("{name}.y4m"));
    let mut w = Y4mWriter::create(&path, 320, 180, rate).unwrap();
    for n in 0..60 {
        w.write(&pattern::draw(320, 180, Stamp { counter: base + n, capture_ms: 0 }).unwrap()).unwrap();
    }
    w.finish(rate).unwrap();
    path
}

fn group_of(d: &TestDaemon) -> Value {
    d.hail(&["--json", "status"]).json()["ok"]["group"].clone()
}

/// Where tile `k` of `n` shows its 320x180 picture on screen, in a window at `window`.
fn tile_area(window: Geometry, n: usize, large: Option<usize>, k: usize) -> Geometry {
    let cell: Rect = Compositor::new(640, 360).unwrap().group_layout(n, large)[k];
    let (x, y, width, height) = fit_in((cell.width, cell.height), (320, 180));
    Geometry {
        x: window.x + (cell.x + x) as i32,
        y: window.y + (cell.y + y) as i32,
        width: width as i32,
        height: height as i32,
    }
}

fn of(base: u32) -> impl Fn(Stamp) -> bool {
    move |s| (base..base + 1_000_000).contains(&s.counter)
}

#[test]
fn the_viewer_shows_a_group_call_a_tile_each_with_the_speaker_large() {
    let x = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let (bob_file, carol_file) = (stamped(dir.path(), "bob", BOB), stamped(dir.path(), "carol", CAROL));
    let d = contacts_all(dir.path(), &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&d[0], &d[1], &d[2]);
    let ids: Vec<String> = d.iter().map(peer_id).collect();

    // Only bob makes a sound: he is the dominant speaker.
    alice.hail(&["call", "bob", "carol", "--detach", "--video", "--audio-in", "silence"]).ok();
    answer_group_invite_with(bob, "alice", &["--audio-in", "tone:440", "--video-in", bob_file.to_str().unwrap()]);
    answer_group_invite_with(carol, "alice", &["--audio-in", "silence", "--video-in", carol_file.to_str().unwrap()]);
    all_settled(&[alice, bob, carol], &ids);
    let group = wait_status(alice, "bob speaks, and both others' pictures are shown", |s| {
        s["group"]["dominant"] == ids[1].as_str()
            && s["group"]["video"]["participants"]
                .as_array()
                .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["receive"]["frames_decoded"].as_u64() > Some(5)))
    })["group"]
        .clone();
    // The tiles: the others in the status's order, then ours.
    let others: Vec<&str> =
        group["participants"].as_array().unwrap().iter().filter(|p| p["me"] != true).map(|p| p["peer_id"].as_str().unwrap()).collect();
    let tile_of = |id: &str| others.iter().position(|o| *o == id).unwrap();
    let (bob_tile, carol_tile, our_tile) = (tile_of(&ids[1]), tile_of(&ids[2]), 2);

    let _viewer = Viewer::start(alice, &x.display);
    let id = x.wait_window("hail view");
    let window = x.wait_geometry(&id, "its normal size", |g| (g.width, g.height) == (640, 360));

    // Bob large over a strip with carol and us; his counter advances.
    let big = tile_area(window, 3, Some(bob_tile), bob_tile);
    assert_eq!((big.width, big.height), (480, 270), "bob's tile is the large one");
    let first = stamp_in(&x, big, "bob's picture, large", of(BOB));
    stamp_in(&x, big, "bob's picture, a later one", |s| of(BOB)(s) && s.counter > first.counter);
    stamp_in(&x, tile_area(window, 3, Some(bob_tile), carol_tile), "carol's picture in the strip", of(CAROL));
    stamp_in(&x, tile_area(window, 3, Some(bob_tile), our_tile), "our picture in the strip", |s| s.counter < BOB);

    // Carol turns her video off: her tile goes black, bob's stays.
    carol.hail(&["video", "off"]).ok();
    wait_status(alice, "carol's video off at alice", |s| {
        s["group"]["participants"].as_array().is_some_and(|p| p.iter().any(|p| p["peer_id"] == ids[2].as_str() && p["video"] == false))
    });
    let carol_area = tile_area(window, 3, Some(bob_tile), carol_tile);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pattern::read(&x.screenshot(carol_area)).is_some_and(of(CAROL)) {
        assert!(std::time::Instant::now() < deadline, "carol's picture stays after her video went off");
        std::thread::sleep(Duration::from_millis(100));
    }
    stamp_in(&x, big, "bob's picture, still", of(BOB));
    assert_eq!(group_of(alice)["state"], "in_call");
}
