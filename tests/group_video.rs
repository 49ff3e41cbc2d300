//! Video in a group call, with real daemons on loopback driven by the `hail` CLI (issue 13):
//! `hail call bob carol --video --video-out DIR/` and `hail answer --video-out DIR/`, each member
//! sending its own picture (a Y4M of the test pattern whose burned-in counters start at a number
//! of its own, so a picture tells who sent it) and writing one Y4M per other participant; `hail
//! video off` by one member stopping its frames at the others (status and `hail watch` say so);
//! a member added during the call getting everyone's video (a keyframe from each); and four
//! members with `--group-topology forward`, each sending its video to the forwarder alone and
//! seeing the three others' (through it), in two temporal layers, and the three seeing each other
//! still once the forwarder leaves.
//!
//! No wall-clock thresholds: the tests poll status until frames flow (the deadlines are generous),
//! and use one member's frames as the clock to tell that another's stopped.

mod common;
#[path = "common/group_daemons.rs"]
mod group_daemons;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestDaemon, read_y4m, wait_status};
use group_daemons::{all_settled, answer_group_invite_with, contacts_all, contacts_all_with, peer_id, watch};
use hail::media::video::clock::FrameRate;
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::y4m::Y4mWriter;
use serde_json::Value;

/// Pictures in each member's source file (looped): three seconds at 30 fps.
const SOURCE_FRAMES: u32 = 90;

/// The first counter of member `i`'s pattern: its pictures carry `base(i) .. base(i) + 90`.
fn base(i: usize) -> u32 {
    10_000 * (i as u32 + 1)
}

/// Member `i`'s source: the test pattern at 320x180, its counters from [`base`].
fn source_file(dir: &Path, i: usize) -> PathBuf {
    let path = dir.join(format!("source-{i}.y4m"));
    let mut w = Y4mWriter::create(&path, 320, 180, FrameRate::THIRTY).unwrap();
    for n in 0..SOURCE_FRAMES {
        w.write(&pattern::draw(320, 180, Stamp { counter: base(i) + n, capture_ms: 0 }).unwrap()).unwrap();
    }
    w.finish(FrameRate::THIRTY).unwrap();
    path
}

/// `member`'s video as `s` (a status) receives it.
fn video_of<'a>(s: &'a Value, member: &str) -> &'a Value {
    s["group"]["video"]["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["member"] == member))
        .unwrap_or(&Value::Null)
}

fn rendered(s: &Value, member: &str) -> u64 {
    video_of(s, member)["receive"]["frames_rendered"].as_u64().unwrap_or(0)
}

fn received(s: &Value, member: &str) -> u64 {
    video_of(s, member)["receive"]["frames_received"].as_u64().unwrap_or(0)
}

fn status(d: &TestDaemon) -> Value {
    d.hail(&["--json", "status"]).json()["ok"].clone()
}

/// `peer` in the group of status `s`.
fn participant<'a>(s: &'a Value, peer: &str) -> &'a Value {
    s["group"]["participants"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["peer_id"] == peer))
        .unwrap_or(&Value::Null)
}

/// Waits (generously: three daemons encode and decode on a shared machine) until `d` has shown
/// `more` pictures from each of `from` beyond `before`.
#[track_caller]
fn pictures_flow(d: &TestDaemon, from: &[&str], before: &Value, more: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(d);
        if from.iter().all(|m| rendered(&s, m) >= rendered(before, m) + more) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "waited 60 s for {more} pictures from each of {from:?}: {}",
            s["group"]["video"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What member `receiver` wrote of member `sender`: its file in `dir` (named by the sender's
/// PeerId) holds the sender's own pattern, its counter advancing.
fn assert_shows(dir: &Path, receiver: &str, sender: usize, sender_id: &str) {
    let frames = read_y4m(&dir.join(format!("{sender_id}.y4m")));
    let stamps: Vec<Stamp> = frames.iter().filter_map(pattern::read).collect();
    assert!(
        stamps.len() * 10 >= frames.len() * 9,
        "{receiver}: most pictures carry a readable stamp ({} of {})",
        stamps.len(),
        frames.len()
    );
    let range = base(sender)..base(sender) + SOURCE_FRAMES;
    assert!(
        stamps.iter().all(|s| range.contains(&s.counter)),
        "{receiver}'s file of member {sender} shows only member {sender}'s pattern: {:?}",
        stamps.iter().map(|s| s.counter).collect::<Vec<_>>()
    );
    let distinct: std::collections::BTreeSet<u32> = stamps.iter().map(|s| s.counter).collect();
    let forward = stamps
        .windows(2)
        .filter(|w| w[1].counter > w[0].counter || w[1].counter < w[0].counter.saturating_sub(45))
        .count();
    assert!(distinct.len() >= 30, "{receiver}: member {sender}'s counter advances: {} distinct", distinct.len());
    assert!(
        forward * 10 >= stamps.len().saturating_sub(1) * 9,
        "{receiver}: member {sender}'s pictures go forward ({forward} of {})",
        stamps.len()
    );
}

#[test]
fn three_members_each_see_the_other_two_and_video_off_stops_one_at_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol"];
    let d = contacts_all(dir.path(), &names);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    let sources: Vec<PathBuf> = (0..3).map(|i| source_file(dir.path(), i)).collect();
    let outs: Vec<String> = names.iter().map(|n| format!("{}/seen-by-{n}/", dir.path().display())).collect();
    let watched: Vec<_> = d.iter().map(watch).collect();

    let started = d[0]
        .hail(&[
            "--json",
            "call",
            "bob",
            "carol",
            "--detach",
            "--video",
            "--audio-in",
            "tone:440",
            "--video-in",
            sources[0].to_str().unwrap(),
            "--video-out",
            &outs[0],
        ])
        .json();
    assert_eq!(started["ok"]["state"], "in_call", "{started}");
    for i in 1..3 {
        let tone = format!("tone:{}", 650 + 260 * i);
        answer_group_invite_with(
            &d[i],
            "alice",
            &["--audio-in", &tone, "--video-in", sources[i].to_str().unwrap(), "--video-out", &outs[i]],
        );
    }
    let all: Vec<&TestDaemon> = d.iter().collect();
    all_settled(&all, &ids);

    // Everyone sends (the invitation asked for video) and shows the two others' pictures.
    let mut refused_then = Vec::new();
    for (i, m) in d.iter().enumerate() {
        let others: Vec<&str> = ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, id)| id.as_str()).collect();
        let s = pictures_flow(m, &others, &Value::Null, 60);
        let v = &s["group"]["video"];
        assert_eq!(v["sending"], true, "{}: {v}", names[i]);
        assert_eq!(
            (v["send"]["width"].as_u64(), v["send"]["height"].as_u64()),
            (Some(320), Some(180)),
            "{}: {v}",
            names[i]
        );
        assert!(v["send"]["keyframes"].as_u64().unwrap() >= 1, "{v}");
        assert_eq!(participant(&s, &ids[i])["video"], true, "{}: our own video shows on: {s}", names[i]);
        for other in &others {
            assert_eq!(participant(&s, other)["video"], true, "{}: {other}'s video shows on: {s}", names[i]);
            let pv = video_of(&s, other);
            assert!(pv["on"] == true && pv["receive"]["keyframes"].as_u64().unwrap() >= 1, "{pv}");
            assert!(
                pv["receive"]["frames_decoded"].as_u64().unwrap() >= pv["receive"]["frames_rendered"].as_u64().unwrap(),
                "{pv}"
            );
        }
        // Records sealed under an epoch's new key before it reached us are refused (a brief gap
        // at each join, group-media-v1.md "Rekeying"); from here on, with everyone's keys in, none.
        refused_then.push(s.clone());
        // Audio goes on beside it: every other member's frames are in the mix.
        let audio = s["group"]["audio"]["participants"].as_array().unwrap();
        assert!(audio.iter().all(|p| p["jitter"]["received"].as_u64().unwrap() > 50), "{}", s["group"]["audio"]);
    }

    // Carol turns her video off: alice and bob are told (status and `hail watch`), and her
    // pictures stop there while bob's go on.
    let off = d[2].hail(&["--json", "video", "off"]).json();
    let me = off["ok"]["participants"].as_array().and_then(|ps| ps.iter().find(|p| p["me"] == true)).cloned();
    assert_eq!(me.map(|p| p["video"].clone()), Some(Value::Bool(false)), "{off}");
    for i in 0..2 {
        wait_status(&d[i], "carol's video off", |s| {
            participant(s, &ids[2])["video"] == false && video_of(s, &ids[2])["on"] == false
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while !watched[i]
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "group.video" && e["peer_id"] == ids[2].as_str() && e["on"] == false)
        {
            assert!(Instant::now() < deadline, "{} saw no group.video event for carol", names[i]);
            std::thread::sleep(Duration::from_millis(50));
        }
        let other = &ids[1 - i];
        // What was on its way when she turned it off has arrived after a second of the other's…
        let s = pictures_flow(&d[i], &[other], &status(&d[i]), 30);
        let carol_then = received(&s, &ids[2]);
        // …and nothing more of hers comes in the next second of the other's.
        let s = pictures_flow(&d[i], &[other], &s, 30);
        assert_eq!(received(&s, &ids[2]), carol_then, "{}: carol's frames stopped: {}", names[i], s["group"]["video"]);
    }
    for (i, m) in d.iter().enumerate() {
        let s = status(m);
        for other in ids.iter().filter(|id| **id != ids[i]) {
            assert_eq!(
                video_of(&s, other)["refused"],
                video_of(&refused_then[i], other)["refused"],
                "{}: no record of {other} refused once the group settled",
                names[i]
            );
        }
    }
    let s = status(&d[2]);
    assert_eq!(
        (s["group"]["video"]["sending"].clone(), s["group"]["video"]["send_fps"].clone()),
        (Value::Bool(false), Value::from(0)),
        "{}",
        s["group"]["video"]
    );

    // Everyone leaves: each member's directory holds a Y4M per other member, named by its
    // PeerId, showing that member's own pattern, its counter advancing.
    for m in &d {
        m.hail(&["leave"]).ok();
    }
    for (i, out) in outs.iter().enumerate() {
        let mut files: Vec<String> =
            std::fs::read_dir(out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let mut want: Vec<String> =
            ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, id)| format!("{id}.y4m")).collect();
        want.sort();
        assert_eq!(files, want, "{}: one file per other participant", names[i]);
        for (j, id) in ids.iter().enumerate().filter(|(j, _)| *j != i) {
            assert_shows(Path::new(out), names[i], j, id);
        }
    }
}

#[test]
fn a_member_added_with_hail_add_gets_everyones_video_and_they_get_its() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol", "dave"];
    let d = contacts_all(dir.path(), &names);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    let sources: Vec<PathBuf> = (0..4).map(|i| source_file(dir.path(), i)).collect();
    let outs: Vec<String> = names.iter().map(|n| format!("{}/seen-by-{n}/", dir.path().display())).collect();

    d[0].hail(&[
        "call",
        "bob",
        "carol",
        "--detach",
        "--video",
        "--video-in",
        sources[0].to_str().unwrap(),
        "--video-out",
        &outs[0],
    ])
    .ok();
    for i in 1..3 {
        answer_group_invite_with(
            &d[i],
            "alice",
            &["--video-in", sources[i].to_str().unwrap(), "--video-out", &outs[i]],
        );
    }
    all_settled(&[&d[0], &d[1], &d[2]], &ids[..3]);
    pictures_flow(&d[0], &[&ids[1], &ids[2]], &Value::Null, 30);
    // Dave is added during the call: each of the three sends him a keyframe (his streams can
    // only start with one), and he sends his (the invitation asked for video).
    d[0].hail(&["add", "dave"]).ok();
    answer_group_invite_with(&d[3], "alice", &["--video-in", sources[3].to_str().unwrap(), "--video-out", &outs[3]]);
    let all: Vec<&TestDaemon> = d.iter().collect();
    all_settled(&all, &ids);
    let s = pictures_flow(&d[3], &[&ids[0], &ids[1], &ids[2]], &Value::Null, 30);
    for id in &ids[..3] {
        assert!(video_of(&s, id)["receive"]["keyframes"].as_u64().unwrap() >= 1, "{}", s["group"]["video"]);
        assert_eq!(participant(&s, id)["video"], true, "{s}");
    }
    for m in &d[..3] {
        pictures_flow(m, &[&ids[3]], &Value::Null, 30);
    }
    for m in &d {
        m.hail(&["leave"]).ok();
    }
    for (j, id) in ids[..3].iter().enumerate() {
        assert_shows(Path::new(&outs[3]), "dave", j, id);
    }
}

/// The forwarder every one of `daemons` shows once they agree on one (a PeerId).
fn agreed_forwarder(daemons: &[&TestDaemon]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<Value> = daemons.iter().map(|d| status(d)).collect();
        let first = statuses[0]["group"]["forwarder"].clone();
        if first.is_string() && statuses.iter().all(|s| s["group"]["forwarder"] == first) {
            return first.as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no agreed forwarder: {statuses:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The records of ours `s` (a status) let through to `member`, base and enhancement.
fn sent_to(s: &Value, member: &str) -> (u64, u64) {
    let t = &video_of(s, member)["thinning"];
    (t["base_sent"].as_u64().unwrap_or(0), t["enhancement_sent"].as_u64().unwrap_or(0))
}

#[test]
fn four_members_through_a_forwarder_each_send_it_their_video_alone_see_the_three_others_and_go_on_when_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol", "dave"];
    let d = contacts_all_with(dir.path(), &names, &["--group-topology", "forward", "--group-uplink-kbps", "4000"]);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    let sources: Vec<PathBuf> = (0..4).map(|i| source_file(dir.path(), i)).collect();
    let outs: Vec<String> = names.iter().map(|n| format!("{}/seen-by-{n}/", dir.path().display())).collect();

    let started = d[0]
        .hail(&[
            "--json",
            "call",
            "bob",
            "carol",
            "dave",
            "--detach",
            "--video",
            "--video-in",
            sources[0].to_str().unwrap(),
            "--video-out",
            &outs[0],
        ])
        .json();
    assert_eq!(started["ok"]["state"], "in_call", "{started}");
    for i in 1..4 {
        answer_group_invite_with(&d[i], "alice", &["--video-in", sources[i].to_str().unwrap(), "--video-out", &outs[i]]);
    }
    let all: Vec<&TestDaemon> = d.iter().collect();
    all_settled(&all, &ids);
    let forwarder = agreed_forwarder(&all);
    let f = ids.iter().position(|id| *id == forwarder).expect("the forwarder is a member");

    // Everyone shows the three others' pictures, advancing; counted from once the four settled.
    let before: Vec<Value> = d.iter().map(status).collect();
    let mut flowing = Vec::new();
    for (i, m) in d.iter().enumerate() {
        let others: Vec<&str> = ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, id)| id.as_str()).collect();
        flowing.push(pictures_flow(m, &others, &before[i], 60));
    }
    for (i, s) in flowing.iter().enumerate() {
        let v = &s["group"]["video"];
        // Counted from once the four settled: at three, another member may have forwarded.
        let forwarded = v["forwarded_records"].as_u64().unwrap_or(0)
            - before[i]["group"]["video"]["forwarded_records"].as_u64().unwrap_or(0);
        for (j, other) in ids.iter().enumerate().filter(|(j, _)| *j != i) {
            let (base, enhancement) = sent_to(s, other);
            let (base_then, enhancement_then) = sent_to(&before[i], other);
            if i == f || j == f {
                // To every member from the forwarder, to the forwarder from everyone: both layers
                // (loopback keeps up).
                assert!(base > base_then && enhancement > enhancement_then, "{} to {other}: {v}", names[i]);
            } else {
                // Not member to member: through the forwarder.
                assert_eq!((base, enhancement), (base_then, enhancement_then), "{} to {other}: {v}", names[i]);
            }
            // Both layers come in, none refused (the forwarder's link delivers the others').
            let pv = video_of(s, other);
            assert!(pv["receive"]["enhancement_received"].as_u64().unwrap_or(0) > 0, "{}: {pv}", names[i]);
            assert_eq!(pv["refused"], video_of(&before[i], other)["refused"], "{}: {pv}", names[i]);
        }
        if i == f {
            // Three members' records, each to two others.
            assert!(forwarded >= 3 * 2 * 60, "{v}");
            assert_eq!(v["forward_refused"], before[i]["group"]["video"]["forward_refused"], "{v}");
        } else {
            assert_eq!(forwarded, 0, "{} forwards nothing: {v}", names[i]);
            // The relayed video is judged by its senders' lists with their audio (one counter,
            // one list): nothing forged, the forwarder still trusted, and more judged than the
            // audio alone accounts for.
            let audio = &s["group"]["audio"];
            assert_eq!(audio["distrusted_forwarder"], Value::Null, "{}: {audio}", names[i]);
            for p in audio["participants"].as_array().unwrap().iter().filter(|p| p["member"] != forwarder.as_str()) {
                let a = &p["authenticity"];
                assert_eq!(a["forged"], 0, "{} on {}: {a}", names[i], p["member"]);
                let heard = p["jitter"]["received"].as_u64().unwrap_or(0);
                assert!(a["verified"].as_u64().unwrap_or(0) > heard, "{} on {}: {a} for {heard} audio frames", names[i], p["member"]);
            }
        }
    }

    // The forwarder leaves: the three others go on seeing each other (a mesh, or forwarded by
    // one of them: each starts a new GOP on its new route).
    d[f].hail(&["leave"]).ok();
    let stays: Vec<usize> = (0..4).filter(|i| *i != f).collect();
    let stay_ids: Vec<String> = stays.iter().map(|i| ids[*i].clone()).collect();
    let remaining: Vec<&TestDaemon> = stays.iter().map(|i| &d[*i]).collect();
    all_settled(&remaining, &stay_ids);
    for &i in &stays {
        let others: Vec<&str> = stays.iter().filter(|j| **j != i).map(|j| ids[*j].as_str()).collect();
        pictures_flow(&d[i], &others, &status(&d[i]), 60);
    }
    for &i in &stays {
        d[i].hail(&["leave"]).ok();
    }
    for (i, out) in outs.iter().enumerate() {
        for (j, id) in ids.iter().enumerate().filter(|(j, _)| *j != i) {
            assert_shows(Path::new(out), names[i], j, id);
        }
    }
}
