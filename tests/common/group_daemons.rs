//! Group calls between real daemons, as the tests drive them: daemons that are each other's
//! contacts, their event streams, answering a group invitation, and waiting until every member
//! shows the same settled group.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use crate::common::{TestDaemon, wait_status};

/// Daemons named `names`, each with every other as a contact.
pub fn contacts_all(dir: &std::path::Path, names: &[&str]) -> Vec<TestDaemon> {
    contacts_all_with(dir, names, &[])
}

/// [`contacts_all`], each daemon started with the `hail daemon` flags `flags` too.
pub fn contacts_all_with(dir: &std::path::Path, names: &[&str], flags: &[&str]) -> Vec<TestDaemon> {
    let daemons: Vec<TestDaemon> = names.iter().map(|n| TestDaemon::start_with(&dir.join(n), flags)).collect();
    let cards: Vec<String> = daemons
        .iter()
        .zip(names)
        .map(|(d, n)| d.hail(&["--json", "id", "--name", n]).json()["ok"]["card"].as_str().unwrap().to_owned())
        .collect();
    for (i, d) in daemons.iter().enumerate() {
        for (j, n) in names.iter().enumerate() {
            if i != j {
                d.hail(&["contacts", "add", n, &cards[j]]).ok();
            }
        }
    }
    daemons
}

/// Subscribes to `d`'s events (what `hail watch` prints); they collect in the background.
pub fn watch(d: &TestDaemon) -> std::sync::Arc<std::sync::Mutex<Vec<Value>>> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(d.home.join("control.sock")).unwrap();
    stream.write_all(b"{\"id\":1,\"cmd\":\"subscribe\"}\n").unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v["event"].is_string() => sink.lock().unwrap().push(v),
                _ => {}
            }
        }
    });
    seen
}

pub fn peer_id(d: &TestDaemon) -> String {
    d.hail(&["--json", "id"]).json()["ok"]["peer_id"].as_str().unwrap().to_owned()
}

/// Waits (up to `secs`) for an event in `events` (from [`watch`]) that `pred` takes; returns it.
pub fn wait_event(
    events: &std::sync::Mutex<Vec<Value>>,
    secs: u64,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(e) = events.lock().unwrap().iter().find(|e| pred(e)) {
            return e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no {what} within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `d` rings with a group invitation; it answers.
pub fn answer_group_invite(d: &TestDaemon, from: &str) {
    answer_group_invite_with(d, from, &[]);
}

/// `d` rings with a group invitation; it answers with `flags` (`--audio-in …`).
pub fn answer_group_invite_with(d: &TestDaemon, from: &str, flags: &[&str]) {
    let ringing = wait_status(d, "a group invitation rings", |s| {
        s["call"]["state"] == "ringing" && s["call"]["group"].is_object() && s["call"]["end_reason"].is_null()
    });
    assert_eq!(ringing["call"]["contact"], from, "{ringing}");
    d.hail(&[&["answer"][..], flags].concat()).ok();
}

/// Whether `s` shows a group call in progress with exactly `peers`, all connected, with emoji.
pub fn settled(s: &Value, peers: &[String]) -> bool {
    let g = &s["group"];
    let Some(list) = g["participants"].as_array() else { return false };
    let mut got: Vec<&str> = list.iter().filter_map(|p| p["peer_id"].as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = peers.iter().map(String::as_str).collect();
    want.sort();
    g["state"] == "in_call"
        && got == want
        && list.iter().all(|p| p["state"] == "me" || p["state"] == "connected")
        && list.iter().all(|p| p["sender_index"].is_u64())
        && g["emoji_text"].is_string()
        && g["emoji_epoch"] == g["epoch"]
}

/// Waits until every daemon shows the group settled with `peers` and the same emoji and epoch;
/// returns (emoji, epoch).
pub fn all_settled(daemons: &[&TestDaemon], peers: &[String]) -> (Value, u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let statuses: Vec<Value> = daemons.iter().map(|d| d.hail(&["--json", "status"]).json()["ok"].clone()).collect();
        let first = &statuses[0]["group"];
        let agree = statuses.iter().all(|s| {
            settled(s, peers) && s["group"]["emoji"] == first["emoji"] && s["group"]["epoch"] == first["epoch"]
        });
        if agree {
            // Everyone's view of who is who agrees too: the same sender index for each peer.
            for s in &statuses {
                for p in s["group"]["participants"].as_array().unwrap() {
                    let same = first["participants"].as_array().unwrap().iter().find(|q| q["peer_id"] == p["peer_id"]);
                    assert_eq!(same.unwrap()["sender_index"], p["sender_index"], "{statuses:?}");
                }
            }
            assert_eq!(first["emoji"].as_array().unwrap().len(), 4);
            // The fields are the spec's (protocols/control-v1.md, vectors `group_status`).
            let spec: Value = serde_json::from_str(include_str!("../../protocols/vectors/control-v1.json")).unwrap();
            let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<std::collections::BTreeSet<_>>();
            // `audio` and `video` are the media plane's counters (media::group_call::GroupAudioStats,
            // GroupVideoStats).
            let mut live = keys(first);
            assert!(live.remove("audio"), "the group's audio runs: {first}");
            assert!(live.remove("video"), "the group's video half runs: {first}");
            assert_eq!(live, keys(&spec["group_status"]), "{first}");
            let me = first["participants"].as_array().unwrap().iter().find(|p| p["me"] == true).unwrap();
            assert_eq!(keys(me), keys(&spec["group_status"]["participants"][0]), "{me}");
            return (first["emoji"].clone(), first["epoch"].as_u64().unwrap());
        }
        if std::time::Instant::now() >= deadline {
            // What each member's group control plane said, to find out why.
            for (i, d) in daemons.iter().enumerate() {
                let log = d.log_text();
                let lines: Vec<&str> = log.lines().filter(|l| l.contains("group") || l.contains("emoji")).collect();
                eprintln!("--- daemon {i}: {} group lines\n{}", lines.len(), lines.join("\n"));
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the group never settled on the same emoji: {:#?}",
            statuses.iter().map(|s| s["group"].clone()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

