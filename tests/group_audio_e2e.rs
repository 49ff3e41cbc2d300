//! What a user of a group call hears and sees, with real daemons on loopback driven by the
//! `hail` CLI (issue 13): each member's own `--audio-in`/`--audio-out` (on `hail call a b c` and
//! on `hail answer`), every member hearing exactly the others (spectral peaks of the WAV each
//! writes), who speaks, `hail mute` shown to every other member and silencing us in their mix,
//! and the call's `hail history` record.
//!
//! No wall-clock thresholds: the tests poll status until frames flow, then judge the WAVs.

mod common;
#[path = "common/group_daemons.rs"]
mod group_daemons;
#[path = "common/tones.rs"]
mod tones;

use std::path::Path;
use std::time::Duration;

use common::{TestDaemon, wait_status};
use group_daemons::{all_settled, answer_group_invite_with, contacts_all, peer_id, watch};
use serde_json::Value;
use tones::{heard, read_finished_wav, tone_db};

/// One tone per member, none a harmonic of another.
const TONES: [f64; 4] = [440.0, 650.0, 910.0, 1230.0];
/// The WAVs are judged in windows of this many samples (0.5 s at 48 kHz: a 2 Hz Goertzel bin).
const WINDOW: usize = 24_000;

/// Each of `peers`' audio frames as `d` has taken them into their jitter buffers.
fn received_from(d: &TestDaemon) -> Vec<(String, u64)> {
    let s = d.hail(&["--json", "status"]).json()["ok"].clone();
    s["group"]["audio"]["participants"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| (p["member"].as_str().unwrap_or("").to_owned(), p["jitter"]["received"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `d` has taken `more` frames from each of its `others` beyond `before`.
fn frames_flow(d: &TestDaemon, others: usize, before: &[(String, u64)], more: u64) {
    wait_status(d, "frames from every other member", |s| {
        let Some(ps) = s["group"]["audio"]["participants"].as_array() else { return false };
        ps.len() == others
            && ps.iter().all(|p| {
                let was = before.iter().find(|(m, _)| p["member"] == m.as_str()).map_or(0, |(_, n)| *n);
                p["jitter"]["received"].as_u64().unwrap_or(0) >= was + more
            })
    });
}

/// `peer` in the group object `g`.
fn member<'a>(g: &'a Value, peer: &str) -> &'a Value {
    g["participants"].as_array().and_then(|ps| ps.iter().find(|p| p["peer_id"] == peer)).unwrap_or(&Value::Null)
}

/// `peer` in status `s`'s group.
fn participant<'a>(s: &'a Value, peer: &str) -> &'a Value {
    member(&s["group"], peer)
}

fn events_of(seen: &std::sync::Mutex<Vec<Value>>, kind: &str) -> Vec<Value> {
    seen.lock().unwrap().iter().filter(|e| e["event"] == kind).cloned().collect()
}

#[test]
fn four_members_each_hear_the_other_three_see_them_speak_and_keep_the_call_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol", "dave"];
    let d = contacts_all(dir.path(), &names);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    let wavs: Vec<String> =
        names.iter().map(|n| dir.path().join(format!("heard-by-{n}.wav")).to_str().unwrap().to_owned()).collect();
    let tones: Vec<String> = TONES.iter().map(|f| format!("tone:{f}")).collect();
    let watched: Vec<_> = d.iter().map(watch).collect();

    // Alice calls the three with her own tone and sink; each answers with its own.
    let started =
        d[0].hail(&["--json", "call", "bob", "carol", "dave", "--detach", "--audio-in", &tones[0], "--audio-out", &wavs[0]]).json();
    assert_eq!(started["ok"]["state"], "in_call", "{started}");
    for i in 1..4 {
        answer_group_invite_with(&d[i], "alice", &["--audio-in", &tones[i], "--audio-out", &wavs[i]]);
    }
    let all: Vec<&TestDaemon> = d.iter().collect();
    all_settled(&all, &ids);
    // Each member's status says which source and sink its group audio uses: its own.
    for (i, m) in d.iter().enumerate() {
        let s = m.hail(&["--json", "status"]).json()["ok"].clone();
        assert_eq!(s["group"]["audio"]["input"], tones[i].as_str(), "{}", s["group"]["audio"]);
    }
    // From here on all four are in the mesh: three seconds of everyone's frames at everyone.
    let before: Vec<_> = d.iter().map(received_from).collect();
    for (m, before) in d.iter().zip(&before) {
        frames_flow(m, 3, before, 150);
    }
    // Everyone saw the three others start speaking and someone become the dominant speaker, in
    // `hail watch` and in status.
    for (i, seen) in watched.iter().enumerate() {
        let speaking = events_of(seen, "group.speaking");
        for (j, id) in ids.iter().enumerate() {
            let spoke = speaking.iter().any(|e| e["peer_id"] == id.as_str() && e["speaking"] == true);
            assert_eq!(spoke, i != j, "{} saw {} speak: {speaking:?}", names[i], names[j]);
        }
        let dominant = events_of(seen, "group.dominant");
        let first = dominant.iter().find_map(|e| e["peer_id"].as_str()).unwrap_or_else(|| panic!("{dominant:?}"));
        assert!(first != ids[i] && ids.iter().any(|id| id == first), "{}: {dominant:?}", names[i]);
        // Only changes are told: no two events in a row say the same of the same member.
        for pair in speaking.windows(2) {
            assert!(
                pair[0]["peer_id"] != pair[1]["peer_id"] || pair[0]["speaking"] != pair[1]["speaking"],
                "{}: a repeated speaking event: {pair:?}",
                names[i]
            );
        }
        let s = d[i].hail(&["--json", "status"]).json()["ok"].clone();
        assert!(s["group"]["dominant"].is_string() || s["group"]["dominant"].is_null(), "{s}");
        assert_eq!(participant(&s, &ids[i])["speaking"], false, "we never hear ourselves: {s}");
    }

    // Everyone leaves; each WAV is finished when its member leaves.
    for m in &d {
        m.hail(&["leave"]).ok();
    }
    for (i, wav) in wavs.iter().enumerate() {
        let x = read_finished_wav(Path::new(wav));
        let others: Vec<f64> = TONES.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, f)| *f).collect();
        let mut all_three = 0;
        for w in x.chunks_exact(WINDOW) {
            let own = tone_db(w, TONES[i]);
            let levels: Vec<String> = TONES.iter().map(|f| format!("{f} Hz {:.1} dB", tone_db(w, *f))).collect();
            // Never ourselves, in any half second (30 dB under what plays, or nothing at all).
            let loudest = others.iter().map(|f| tone_db(w, *f)).fold(f64::MIN, f64::max);
            assert!(own < (loudest - 30.0).max(-60.0), "{} hears itself: {levels:?}", names[i]);
            if heard(w, &TONES) == others {
                all_three += 1;
            }
        }
        // The three seconds all four were in: at least two whole windows of it... and more.
        assert!(all_three >= 4, "{} heard the three others together in only {all_three} half seconds", names[i]);
    }

    // The call is in everyone's history: who was in it, for how long, who started it.
    for (i, m) in d.iter().enumerate() {
        let history = m.hail(&["--json", "history"]).json();
        let record = &history["ok"][0];
        let mut with: Vec<&str> = record["group"].as_array().unwrap_or_else(|| panic!("{history}")).iter().map(|p| p["peer_id"].as_str().unwrap()).collect();
        with.sort();
        let mut want: Vec<&str> = ids.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, id)| id.as_str()).collect();
        want.sort();
        assert_eq!(with, want, "{} {record}", names[i]);
        assert!(record["group"].as_array().unwrap().iter().all(|p| p["contact"].is_string()), "{record}");
        assert_eq!(record["direction"], if i == 0 { "outgoing" } else { "incoming" }, "{record}");
        if i > 0 {
            assert_eq!(record["peer_id"], ids[0].as_str(), "invited by alice: {record}");
        }
        assert_eq!(record["outcome"]["kind"], "completed", "{record}");
        let (answered, ended) = (record["answered_at_ms"].as_u64().unwrap(), record["ended_at_ms"].as_u64().unwrap());
        assert!(answered >= record["started_at_ms"].as_u64().unwrap() && ended > answered, "{record}");
        assert_eq!(history["ok"].as_array().unwrap().len(), 1, "the legs leave no records: {history}");
        let text = m.hail(&["history"]).ok().to_owned();
        assert!(text.contains("group: ") && text.contains("completed"), "{text}");
    }
}

#[test]
fn mute_in_a_group_call_shows_at_every_member_and_silences_us_in_their_mix() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol"];
    let d = contacts_all(dir.path(), &names);
    let (alice, bob, carol) = (&d[0], &d[1], &d[2]);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    let heard_by_alice = dir.path().join("heard-by-alice.wav");
    let carol_watch = watch(carol);

    alice.hail(&["call", "bob", "carol", "--detach", "--audio-in", "tone:440", "--audio-out", heard_by_alice.to_str().unwrap()]).ok();
    answer_group_invite_with(bob, "alice", &["--audio-in", "tone:650"]);
    answer_group_invite_with(carol, "alice", &["--audio-in", "tone:910"]);
    all_settled(&[alice, bob, carol], &ids);
    for m in &d {
        frames_flow(m, 2, &[], 50);
        let s = m.hail(&["--json", "status"]).json()["ok"].clone();
        assert!(s["group"]["participants"].as_array().unwrap().iter().all(|p| p["muted"] == false), "{s}");
    }

    // Bob mutes: his status says so, and every other member's shows him muted.
    let muted = bob.hail(&["--json", "mute"]).json();
    assert_eq!(member(&muted["ok"], &ids[1])["muted"], true, "{muted}");
    assert_eq!(muted["ok"]["audio"]["muted"], true, "{muted}");
    assert!(bob.hail(&["mute"]).ok().contains("Microphone muted (group call"));
    for m in [alice, carol] {
        let s = wait_status(m, "bob shown muted", |s| participant(s, &ids[1])["muted"] == true);
        assert_eq!(participant(&s, &ids[2])["muted"], false, "{s}");
        assert_eq!(participant(&s, &ids[0])["muted"], false, "{s}");
    }
    // Two seconds of carol's frames at alice after that, then alice leaves: the end of her mix
    // has carol's tone and not bob's.
    let before = received_from(alice);
    let from = |r: &[(String, u64)], who: &str| r.iter().find(|(m, _)| m == who).map_or(0, |(_, n)| *n);
    wait_status(alice, "carol's frames go on", |_| from(&received_from(alice), &ids[2]) >= from(&before, &ids[2]) + 100);
    alice.hail(&["leave"]).ok();
    let x = read_finished_wav(&heard_by_alice);
    let judged = &x[x.len() - WINDOW..];
    let (carol_db, bob_db) = (tone_db(judged, 910.0), tone_db(judged, 650.0));
    assert!(carol_db > -40.0, "alice hears carol: {carol_db:.1} dB");
    assert!(bob_db < carol_db - 30.0, "alice hears muted bob: {bob_db:.1} dB vs carol {carol_db:.1} dB");

    // Unmuting shows too; carol's `hail watch` saw both changes, once each.
    bob.hail(&["unmute"]).ok();
    wait_status(carol, "bob shown unmuted", |s| participant(s, &ids[1])["muted"] == false);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let changes = loop {
        let changes: Vec<Value> =
            events_of(&carol_watch, "group.muted").into_iter().filter(|e| e["peer_id"] == ids[1].as_str()).collect();
        if changes.len() >= 2 || std::time::Instant::now() > deadline {
            break changes;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let said: Vec<&Value> = changes.iter().map(|e| &e["muted"]).collect();
    assert_eq!(said, [&Value::Bool(true), &Value::Bool(false)], "{changes:?}");
    assert_eq!(changes[0]["name"], "bob");
    bob.hail(&["leave"]).ok();
    carol.hail(&["leave"]).ok();
}
