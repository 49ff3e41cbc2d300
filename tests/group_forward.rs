//! A group call forwarded by one of its members (an SFU-in-a-peer, issue 13), with real daemons on
//! loopback driven by the `hail` CLI, every daemon started with `--group-topology forward`: the
//! status of every member names the same forwarder; each other member sends its frames to the
//! forwarder only, and everyone hears the three others (spectral peaks of the WAV each writes);
//! every member but the forwarder signs its frames and verifies every frame the forwarder relayed
//! (none forged); the forwarder leaves and the call goes on, forwarded by another member, everyone
//! still hearing everyone left.
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
use group_daemons::{all_settled, answer_group_invite_with, contacts_all_with, peer_id};
use serde_json::Value;
use tones::{heard, read_finished_wav};

/// One tone per member, none a harmonic of another.
const TONES: [f64; 4] = [440.0, 650.0, 910.0, 1230.0];
/// The WAVs are judged in windows of this many samples (0.5 s at 48 kHz).
const WINDOW: usize = 24_000;

/// Daemons for `names` that sequence forwarded group calls, each with every other as a contact.
fn forwarding_daemons(dir: &Path, names: &[&str]) -> Vec<TestDaemon> {
    contacts_all_with(dir, names, &["--group-topology", "forward", "--group-uplink-kbps", "4000"])
}

fn status(d: &TestDaemon) -> Value {
    d.hail(&["--json", "status"]).json()["ok"].clone()
}

/// The forwarder every one of `daemons` shows once they agree on one (a PeerId).
fn agreed_forwarder(daemons: &[&TestDaemon]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let statuses: Vec<Value> = daemons.iter().map(|d| status(d)).collect();
        let first = statuses[0]["group"]["forwarder"].clone();
        if first.is_string()
            && statuses.iter().all(|s| s["group"]["topology"] == "forward" && s["group"]["forwarder"] == first)
        {
            return first.as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no agreed forwarder: {statuses:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Each other member's audio frames `d` has taken into its jitter buffers, by PeerId.
fn received(d: &TestDaemon) -> Vec<(String, u64)> {
    let s = status(d);
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
fn frames_flow(d: &TestDaemon, others: usize, before: &[(String, u64)], more: u64) -> Value {
    wait_status(d, "frames from every other member", |s| {
        let Some(ps) = s["group"]["audio"]["participants"].as_array() else { return false };
        ps.len() == others
            && ps.iter().all(|p| {
                let was = before.iter().find(|(m, _)| p["member"] == m.as_str()).map_or(0, |(_, n)| *n);
                p["jitter"]["received"].as_u64().unwrap_or(0) >= was + more
            })
    })
}

/// What `d` has sent on each other member's link (bytes), by PeerId.
fn sent_bytes(s: &Value) -> Vec<(String, u64)> {
    s["group"]["audio"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["member"].as_str().unwrap().to_owned(), p["sent_bytes"].as_u64().unwrap()))
        .collect()
}

#[test]
fn four_members_forwarded_by_one_hear_each_other_and_the_call_goes_on_when_the_forwarder_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["alice", "bob", "carol", "dave"];
    let d = forwarding_daemons(dir.path(), &names);
    let ids: Vec<String> = d.iter().map(peer_id).collect();
    let wavs: Vec<String> =
        names.iter().map(|n| dir.path().join(format!("heard-by-{n}.wav")).to_str().unwrap().to_owned()).collect();
    let tones: Vec<String> = TONES.iter().map(|f| format!("tone:{f}")).collect();

    let started =
        d[0].hail(&["--json", "call", "bob", "carol", "dave", "--detach", "--audio-in", &tones[0], "--audio-out", &wavs[0]]).json();
    assert_eq!(started["ok"]["state"], "in_call", "{started}");
    for i in 1..4 {
        answer_group_invite_with(&d[i], "alice", &["--audio-in", &tones[i], "--audio-out", &wavs[i]]);
    }
    let all: Vec<&TestDaemon> = d.iter().collect();
    all_settled(&all, &ids);
    let forwarder = agreed_forwarder(&all);
    let f = ids.iter().position(|id| *id == forwarder).expect("the forwarder is a member");

    // Everyone hears the three others, through the forwarder. What each sends is counted from
    // once frames flow in this epoch: before, the group was smaller (a mesh at two, and at three
    // maybe forwarded by another member, the first in member order then).
    let start: Vec<_> = d.iter().map(received).collect();
    for (m, start) in d.iter().zip(&start) {
        frames_flow(m, 3, start, 25);
    }
    let sent_before: Vec<Vec<(String, u64)>> = d.iter().map(|m| sent_bytes(&status(m))).collect();
    let forwarded_before: Vec<u64> =
        d.iter().map(|m| status(m)["group"]["audio"]["send"]["forwarded_frames"].as_u64().unwrap()).collect();
    let forwarder_signed = status(&d[f])["group"]["audio"]["send"]["authenticators"].clone();
    let before: Vec<_> = d.iter().map(received).collect();
    let mut flowing = Vec::new();
    for (m, before) in d.iter().zip(&before) {
        flowing.push(frames_flow(m, 3, before, 150));
    }
    for (i, s) in flowing.iter().enumerate() {
        let g = &s["group"];
        // Status says who forwards, and each member's uplink as reported.
        let ps = g["participants"].as_array().unwrap();
        assert_eq!(ps.iter().filter(|p| p["forwarder"] == true).count(), 1, "{g}");
        assert!(ps.iter().any(|p| p["forwarder"] == true && p["peer_id"] == forwarder.as_str()), "{g}");
        let me = ps.iter().find(|p| p["me"] == true).unwrap();
        assert_eq!(me["uplink_kbps"], 4000, "{}: {me}", names[i]);
        let sent: Vec<(String, u64)> = sent_bytes(s)
            .into_iter()
            .map(|(p, b)| {
                let was = sent_before[i].iter().find(|(q, _)| *q == p).map_or(0, |(_, b)| *b);
                (p, b - was)
            })
            .collect();
        if i == f {
            // The forwarder sends its own frames to all three, and forwards the others'.
            assert!(sent.iter().all(|(_, b)| *b > 0), "{sent:?}");
            let forwarded = g["audio"]["send"]["forwarded_frames"].as_u64().unwrap() - forwarded_before[i];
            assert!(forwarded > 300, "{}", g["audio"]["send"]);
        } else {
            // Others send their frames to the forwarder only: the other links carry receiver
            // reports alone (one a second), the forwarder's link 50 frames a second.
            let to_forwarder = sent.iter().find(|(p, _)| *p == forwarder).unwrap().1;
            for (p, b) in sent.iter().filter(|(p, _)| *p != forwarder) {
                assert!(*b * 10 < to_forwarder, "{} sent {b} bytes to {p}, {to_forwarder} to the forwarder", names[i]);
            }
            assert_eq!(g["audio"]["send"]["forwarded_frames"], forwarded_before[i], "{} forwards nothing", names[i]);
        }
        let text = d[i].hail(&["status"]).ok().to_owned();
        assert!(text.contains("Topology  forwarded by"), "{text}");
    }

    // Frame authenticators (group-media-v1): every member that sends through the forwarder signs
    // its frames, and every member checks what the forwarder relayed: verified, none forged, the
    // forwarder trusted. (The forwarder's own frames come on its own link: nothing to check.)
    for (i, m) in d.iter().enumerate().filter(|(i, _)| *i != f) {
        let s = wait_status(m, "relayed frames verified by their senders' lists", |s| {
            let Some(ps) = s["group"]["audio"]["participants"].as_array() else { return false };
            ps.iter()
                .filter(|p| p["member"] != forwarder.as_str())
                .all(|p| p["authenticity"]["verified"].as_u64().unwrap_or(0) > 0)
        });
        let audio = &s["group"]["audio"];
        assert!(audio["send"]["authenticators"].as_u64().unwrap() > 0, "{} signs: {}", names[i], audio["send"]);
        assert_eq!(audio["send"]["sign_failures"], 0, "{}", audio["send"]);
        assert_eq!(audio["distrusted_forwarder"], Value::Null, "{}", names[i]);
        for p in audio["participants"].as_array().unwrap() {
            assert_eq!(p["authenticity"]["forged"], 0, "{} on {}: {}", names[i], p["member"], p["authenticity"]);
            if p["member"] == forwarder.as_str() {
                assert_eq!(p["authenticity"]["verified"], 0, "{}", p["authenticity"]);
            }
        }
        let text = m.hail(&["status"]).ok().to_owned();
        assert!(text.contains("relayed frames") && !text.contains("FORGED") && !text.contains("NOT TRUSTED"), "{text}");
    }
    // (It may have signed at three members, when another member forwarded.)
    let at_forwarder = status(&d[f]);
    assert_eq!(at_forwarder["group"]["audio"]["send"]["authenticators"], forwarder_signed, "the forwarder does not sign");

    // The forwarder leaves: the call goes on among the three, forwarded by one of them.
    d[f].hail(&["leave"]).ok();
    let stays: Vec<usize> = (0..4).filter(|i| *i != f).collect();
    let stay_ids: Vec<String> = stays.iter().map(|i| ids[*i].clone()).collect();
    let remaining: Vec<&TestDaemon> = stays.iter().map(|i| &d[*i]).collect();
    all_settled(&remaining, &stay_ids);
    let next = agreed_forwarder(&remaining);
    assert_ne!(next, forwarder);
    let before: Vec<_> = remaining.iter().map(|m| received(m)).collect();
    for (m, before) in remaining.iter().zip(&before) {
        frames_flow(m, 2, before, 150);
    }
    for m in &remaining {
        m.hail(&["leave"]).ok();
    }

    // The WAVs: everyone heard the three others while all four were in, and the ones who stayed
    // heard the other two after the forwarder left.
    for (i, wav) in wavs.iter().enumerate() {
        let x = read_finished_wav(Path::new(wav));
        let others: Vec<f64> = TONES.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, f)| *f).collect();
        let windows: Vec<Vec<f64>> = x.chunks_exact(WINDOW).map(|w| heard(w, &TONES)).collect();
        let all_three = windows.iter().filter(|h| **h == others).count();
        assert!(all_three >= 4, "{} heard the three others together in only {all_three} half seconds", names[i]);
        if i != f {
            let two: Vec<f64> = others.iter().copied().filter(|t| *t != TONES[f]).collect();
            let after = windows.iter().filter(|h| **h == two).count();
            assert!(
                after >= 4,
                "{} heard the two others after the forwarder left in only {after} half seconds",
                names[i]
            );
        }
    }
}
