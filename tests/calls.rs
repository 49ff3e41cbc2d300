//! Calls between two (or three) real daemons on loopback, driven by the `hail` CLI.

mod common;

use common::{Background, TestDaemon, pair_of_contacts, wait_status};
use serde_json::Value;

fn call_state(s: &Value) -> &str {
    s["call"]["state"].as_str().unwrap_or("")
}

fn live(s: &Value, state: &str) -> bool {
    call_state(s) == state && s["call"]["end_reason"].is_null()
}

#[test]
fn a_call_rings_both_see_the_same_emoji_and_either_side_can_hang_up() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = pair_of_contacts(dir.path(), &[], &[]);

    for hang_up_by_callee in [true, false] {
        let caller = Background::start(&alice.home, &["call", "bob"]);
        let ringing =
            wait_status(&bob, "bob ringing with emoji", |s| live(s, "ringing") && s["call"]["sas_text"].is_string());
        assert_eq!(ringing["call"]["contact"], "alice");
        assert_eq!(ringing["call"]["unknown"], false);
        let caller_side = wait_status(&alice, "alice's emoji", |s| s["call"]["sas_text"].is_string());
        assert_eq!(caller_side["call"]["sas_text"], ringing["call"]["sas_text"], "both sides show the same four emoji");
        assert_eq!(ringing["call"]["sas"].as_array().unwrap().len(), 4);

        let answered = bob.hail(&["--json", "answer"]).json();
        assert_eq!(answered["ok"]["state"], "active");
        wait_status(&alice, "alice active", |s| live(s, "active"));
        let text = bob.hail(&["status"]).ok().to_owned();
        assert!(text.contains("active with alice") && text.contains("Emoji"), "{text}");

        let hanger = if hang_up_by_callee { &bob } else { &alice };
        hanger.hail(&["hangup"]).ok();
        let out = caller.finish();
        assert_eq!(out.status.code(), Some(0), "an answered call exits 0: {out:?}");
        assert!(out.stdout.contains("Emoji:"), "{}", out.stdout);
        let expected = if hang_up_by_callee { "the other side hung up" } else { "you hung up" };
        assert!(out.stdout.contains(&format!("Call ended: {expected}")), "{}", out.stdout);
        wait_status(&bob, "bob's call over", |s| s["call"]["end_reason"].is_object());
    }

    // Both calls are in both histories, newest first.
    for (d, direction) in [(&alice, "outgoing"), (&bob, "incoming")] {
        let history = d.hail(&["--json", "history"]).json();
        let calls = history["ok"].as_array().unwrap();
        assert_eq!(calls.len(), 2, "{history}");
        assert!(calls.iter().all(|c| c["outcome"]["kind"] == "completed" && c["direction"] == direction), "{history}");
    }
    let text = alice.hail(&["history"]).ok().to_owned();
    assert!(text.contains("bob") && text.contains("completed"), "{text}");
}

#[test]
fn a_declined_call_a_busy_callee_and_a_ring_timeout_end_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = pair_of_contacts(dir.path(), &[], &["--ring-timeout", "2"]);
    let carol = TestDaemon::start(&dir.path().join("carol"));
    let bob_card = bob.hail(&["--json", "id"]).json()["ok"]["card"].as_str().unwrap().to_owned();
    carol.hail(&["contacts", "add", "bob", &bob_card]).ok();

    // Declined.
    let caller = Background::start(&alice.home, &["call", "bob"]);
    wait_status(&bob, "ringing", |s| live(s, "ringing"));
    bob.hail(&["reject"]).ok();
    let out = caller.finish();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.contains("the call was declined"), "{}", out.stdout);

    // Busy: bob is in a call with alice when carol calls.
    wait_status(&bob, "previous call over", |s| !live(s, "ending"));
    let caller = Background::start(&alice.home, &["call", "bob"]);
    wait_status(&bob, "ringing", |s| live(s, "ringing"));
    bob.hail(&["answer"]).ok();
    wait_status(&alice, "active", |s| live(s, "active"));
    let busy = carol.hail(&["--json", "call", "bob"]);
    let reason = busy.fails_with(1).to_owned();
    assert!(reason.contains("busy"), "{reason}");
    assert_eq!(busy.json()["err"]["code"], "callee_busy");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));

    // Nobody answers: after bob's 2 s ring timeout both sides end it as unanswered.
    wait_status(&bob, "previous call over", |s| !live(s, "active") && !live(s, "ending"));
    let caller = Background::start(&alice.home, &["call", "bob"]);
    let out = caller.finish();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.contains("no answer"), "{}", out.stdout);
    let history = bob.hail(&["--json", "history", "--limit", "1"]).json();
    assert_eq!(history["ok"][0]["outcome"]["kind"], "missed", "{history}");
    let carol_history = carol.hail(&["--json", "history"]).json();
    assert_eq!(carol_history["ok"][0]["outcome"]["kind"], "busy", "{carol_history}");
}

#[test]
fn calling_an_offline_contact_fails_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestDaemon::start(&dir.path().join("alice"));
    // A contact whose card points at a port where nobody listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ghost = hail::identity::Card {
        peer_id: hail::identity::Identity::from_seed([9; 32]).peer_id(),
        name: hail::name::Name::parse("ghost").unwrap(),
        addresses: vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()],
    };
    alice.hail(&["contacts", "add", "ghost", &ghost.to_string()]).ok();
    let started = std::time::Instant::now();
    let out = alice.hail(&["--json", "call", "ghost"]);
    let reason = out.fails_with(1).to_owned();
    assert!(reason.contains("unreachable") && reason.contains("ghost"), "{reason}");
    assert_eq!(out.json()["err"]["code"], "peer_not_found");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "bounded");
    let history = alice.hail(&["--json", "history"]).json();
    assert_eq!(history["ok"][0]["outcome"]["kind"], "failed", "{history}");
}

#[test]
fn blocked_callers_are_refused_without_ringing_and_unknown_callers_ring_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = pair_of_contacts(dir.path(), &[], &[]);
    let stranger = TestDaemon::start(&dir.path().join("stranger"));
    let bob_card = bob.hail(&["--json", "id"]).json()["ok"]["card"].as_str().unwrap().to_owned();
    stranger.hail(&["contacts", "add", "bob", &bob_card]).ok();

    bob.hail(&["contacts", "block", "alice"]).ok();
    let out = alice.hail(&["call", "bob"]);
    let reason = out.fails_with(1).to_owned();
    assert!(reason.contains("not accepting calls"), "a blocked caller is not told it is blocked: {reason}");
    let bob_history = bob.hail(&["--json", "history"]).json();
    assert_eq!(bob_history["ok"][0]["outcome"]["kind"], "refused");
    assert!(bob.hail(&["--json", "status"]).json()["ok"]["call"].is_null(), "it never rang");

    // A stranger rings, marked unknown.
    let caller = Background::start(&stranger.home, &["call", "bob"]);
    let ringing = wait_status(&bob, "the stranger ringing", |s| live(s, "ringing"));
    assert_eq!(ringing["call"]["unknown"], true);
    assert!(ringing["call"]["contact"].is_null());
    bob.hail(&["reject"]).ok();
    assert_eq!(caller.finish().status.code(), Some(1));
    drop(bob);

    // With --refuse-unknown, strangers are refused.
    let picky = TestDaemon::start_with(&dir.path().join("picky"), &["--refuse-unknown"]);
    let picky_card = picky.hail(&["--json", "id"]).json()["ok"]["card"].as_str().unwrap().to_owned();
    stranger.hail(&["contacts", "add", "picky", &picky_card]).ok();
    let reason = stranger.hail(&["call", "picky"]).fails_with(1).to_owned();
    assert!(reason.contains("not accepting calls from people who are not contacts"), "{reason}");
}

#[test]
fn matching_emoji_verify_the_contact_and_safety_numbers_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = pair_of_contacts(dir.path(), &[], &["--auto-answer"]);
    let number_a = alice.hail(&["--json", "contacts", "verify", "bob"]).json()["ok"]["safety_number"].clone();
    let number_b = bob.hail(&["--json", "contacts", "verify", "alice"]).json()["ok"]["safety_number"].clone();
    assert_eq!(number_a, number_b, "the same safety number on both sides");
    assert_eq!(number_a.as_str().unwrap().split(' ').count(), 12);

    // Auto-answer (contacts only) makes the call active by itself.
    let caller = Background::start(&alice.home, &["call", "bob"]);
    let status = wait_status(&alice, "active", |s| live(s, "active"));
    let call = &status["call"];
    let call_id = call["call_id"].as_str().unwrap().to_owned();
    let names: Vec<String> =
        call["sas"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
    let mut args = vec!["sas", "confirm", &call_id[..8]];
    args.extend(names.iter().map(String::as_str));

    // A confirmation that names another call, or emoji that are not this call's, verifies nothing.
    let mut wrong_call = args.clone();
    wrong_call[2] = if call_id.starts_with("00") { "11111111" } else { "00000000" };
    alice.refuses(&wrong_call, "call_changed", "not");
    let mut wrong_emoji = args.clone();
    wrong_emoji.swap(3, 4);
    if wrong_emoji != args {
        alice.refuses(&wrong_emoji, "sas_mismatch", "not this call's emoji");
    }
    assert_eq!(alice.hail(&["--json", "contacts", "list"]).json()["ok"][0]["verification"], "unverified");

    assert!(alice.hail(&args).ok().contains("bob is marked verified"));
    let contacts = alice.hail(&["--json", "contacts", "list"]).json();
    assert_eq!(contacts["ok"][0]["verification"], "sas");
    alice.hail(&["hangup"]).ok();
    assert_eq!(caller.finish().status.code(), Some(0));

    // Confirming the safety number marks the other side verified too (but never downgrades).
    let confirmed = bob.hail(&["--json", "contacts", "verify", "alice", "--confirm"]).json();
    assert_eq!(confirmed["ok"]["verification"], "safety_number");
    let again = alice.hail(&["--json", "contacts", "verify", "bob", "--confirm"]).json();
    assert_eq!(again["ok"]["verification"], "sas");
}

#[test]
fn call_commands_without_a_call_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let alice = TestDaemon::start(&dir.path().join("alice"));
    for (args, code) in [
        (&["answer"][..], "no_call"),
        (&["reject"], "no_call"),
        (&["hangup"], "no_call"),
        (&["sas", "confirm", "3fa2c1d0", "fox", "cactus", "rocket", "anchor"], "no_call"),
        (&["call", "nobody"], "not_found"),
    ] {
        alice.refuses(args, code, "");
    }
    let own = alice.hail(&["--json", "id"]).json()["ok"]["peer_id"].as_str().unwrap().to_owned();
    assert_eq!(alice.hail(&["--json", "call", &own]).json()["err"]["code"], "self_contact");
}

#[test]
fn a_daemon_stopped_by_sigterm_mid_call_hangs_up_tells_the_peer_and_keeps_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = pair_of_contacts(dir.path(), &[], &[]);
    let caller = Background::start(&alice.home, &["call", "bob"]);
    wait_status(&bob, "bob ringing", |s| live(s, "ringing"));
    bob.hail(&["answer"]).ok();
    wait_status(&alice, "alice active", |s| live(s, "active"));

    // What `systemctl --user stop hail` does to bob's daemon.
    let bob_home = bob.home.clone();
    assert!(bob.terminate().success(), "SIGTERM mid-call is a clean exit");

    // Alice hears a hang-up, not a lost connection (which would take the idle timeout to notice).
    let out = caller.finish();
    assert!(out.stdout.contains("Call ended: the other side hung up"), "{}", out.stdout);
    let ended = wait_status(&alice, "alice's call over", |s| s["call"]["end_reason"].is_object());
    assert_eq!(ended["call"]["end_reason"]["kind"], "hung_up", "{ended}");

    // Bob's side wrote the call to its history before it exited: it is there after a restart.
    let bob = TestDaemon::start(&bob_home);
    let history = bob.hail(&["--json", "history"]).json();
    let calls = history["ok"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{history}");
    assert_eq!(calls[0]["outcome"]["kind"], "completed", "{history}");
    assert_eq!(calls[0]["direction"], "incoming", "{history}");
}
