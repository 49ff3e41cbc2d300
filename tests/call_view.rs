//! `hail call`'s live view, in a real pseudo-terminal (a tmux pane) between two real daemons: it
//! shows the emoji and the state, `m` mutes, `q` and a confirm hang up; likewise for a group call
//! between three. Without a terminal the same command prints plain lines.

mod common;
#[path = "common/group_daemons.rs"]
mod group_daemons;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Background, HAIL, TestDaemon, pair_of_contacts, wait_status};

/// A tmux server of this test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached 140x30 pane.
    fn start(command: &str) -> Tmux {
        // One server per test: tests of this file run at once.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("hail-test-{}-{n}", std::process::id());
        let tmux = Tmux { socket };
        tmux.run(&["-u", "new-session", "-d", "-s", "view", "-x", "140", "-y", "30", command]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("tmux is installed (the test set-up installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "view"])
    }

    fn keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "view", "-l", keys]);
    }

    /// Waits (at most 15 s) until the screen shows `text`.
    #[track_caller]
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline, "waited 15 s for {text:?} on the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn call_state(d: &TestDaemon) -> serde_json::Value {
    d.hail(&["--json", "status"]).json()["ok"]["call"].clone()
}

#[test]
fn on_a_terminal_the_call_is_a_live_view_that_mutes_and_hangs_up_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = pair_of_contacts(dir.path(), &[], &[]);
    // The pane keeps the last screen and the exit status once `hail call` is done.
    let command = format!(
        "{} --home {} call bob --audio-in tone:440; echo \"exit status $?\"; sleep 60",
        shell_quote(Path::new(HAIL)),
        shell_quote(&alice.home)
    );
    let tmux = Tmux::start(&command);
    wait_status(&bob, "ringing", |s| s["call"]["state"] == "ringing");
    bob.hail(&["answer"]).ok();
    let active = wait_status(&alice, "active with emoji", |s| {
        s["call"]["state"] == "active" && s["call"]["sas_text"].is_string()
    });
    let sas = active["call"]["sas_text"].as_str().unwrap().to_owned();

    let screen = tmux.wait_for("State     active");
    tmux.wait_for(&sas);
    assert!(screen.contains("call with bob"), "{screen}");
    assert!(screen.contains("You       microphone on"), "{screen}");
    assert!(!screen.contains("Calling bob…\n"), "redrawn in place, not printed line by line:\n{screen}");

    tmux.keys("m");
    let screen = tmux.wait_for("You       microphone muted");
    assert!(screen.contains("[m] unmute"), "{screen}");
    assert_eq!(call_state(&alice)["muted"], true, "the daemon muted the call");
    wait_status(&bob, "bob sees alice muted", |s| s["call"]["remote_muted"] == true);

    // q asks first; n keeps the call.
    tmux.keys("q");
    tmux.wait_for("Hang up? [y] yes");
    tmux.keys("n");
    tmux.wait_for("[q] hang up");
    assert_eq!(call_state(&alice)["state"], "active", "no means no");
    tmux.keys("q");
    tmux.wait_for("Hang up? [y] yes");
    tmux.keys("y");
    let screen = tmux.wait_for("exit status");
    assert!(screen.contains("Call ended"), "the last line is the plain one:\n{screen}");
    assert!(screen.contains("exit status 0"), "{screen}");
    let bobs = call_state(&bob);
    assert_eq!(
        (&bobs["state"], &bobs["end_reason"]["by_peer"]),
        (&"ended".into(), &true.into()),
        "bob's call ended too: {bobs}"
    );
}

#[test]
fn without_a_terminal_the_call_prints_plain_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = pair_of_contacts(dir.path(), &[], &[]);
    let caller = Background::start(&alice.home, &["call", "bob", "--audio-in", "tone:440"]);
    wait_status(&bob, "ringing", |s| s["call"]["state"] == "ringing");
    bob.hail(&["answer"]).ok();
    wait_status(&alice, "active", |s| s["call"]["state"] == "active");
    alice.hail(&["mute"]).ok();
    wait_status(&alice, "muted", |s| s["call"]["muted"] == true);
    bob.hail(&["hangup"]).ok();
    let out = caller.finish();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.starts_with("Calling bob…\n"), "{}", out.stdout);
    assert!(out.stdout.contains("\nConnected with bob.\n"), "{}", out.stdout);
    assert!(out.stdout.contains("\nCall ended: "), "{}", out.stdout);
    assert!(!out.stdout.contains('\u{1b}'), "no terminal codes in plain output: {:?}", out.stdout);
    assert!(!out.stdout.contains("[m] mute"), "no live view: {}", out.stdout);
}

/// A group call on a terminal: `hail call bob carol` is a live view of the group (who is in it,
/// the group's emoji, how the media flows), `m` mutes in the group, and `q` then `y` leaves it
/// (the call goes on for the others).
#[test]
fn on_a_terminal_a_group_call_is_a_live_view_that_mutes_and_leaves_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = group_daemons::contacts_all(dir.path(), &["alice", "bob", "carol"]);
    let (alice, bob, carol) = (&d[0], &d[1], &d[2]);
    let ids: Vec<String> = d.iter().map(group_daemons::peer_id).collect();
    let command = format!(
        "{} --home {} call bob carol --audio-in tone:440; echo \"exit status $?\"; sleep 60",
        shell_quote(Path::new(HAIL)),
        shell_quote(&alice.home)
    );
    let tmux = Tmux::start(&command);
    group_daemons::answer_group_invite(bob, "alice");
    group_daemons::answer_group_invite(carol, "alice");
    let (_, epoch) = group_daemons::all_settled(&[alice, bob, carol], &ids);
    let emoji = alice.hail(&["--json", "status"]).json()["ok"]["group"]["emoji_text"].as_str().unwrap().to_owned();

    let screen = tmux.wait_for(&format!("State     in call (epoch {epoch})"));
    tmux.wait_for(&emoji);
    assert!(screen.contains("group call with bob, carol") || screen.contains("group call with carol, bob"), "{screen}");
    tmux.wait_for("Media     mesh");
    let screen = tmux.wait_for("audio: jitter");
    for who in ["bob", "carol"] {
        assert!(screen.lines().any(|l| l.trim_start().starts_with(who) && l.contains("connected")), "{who}:\n{screen}");
    }

    tmux.keys("m");
    let screen = tmux.wait_for("You       microphone muted");
    assert!(screen.contains("[m] unmute"), "{screen}");
    wait_status(bob, "bob sees alice muted", |s| {
        s["group"]["participants"].as_array().is_some_and(|p| p.iter().any(|p| p["peer_id"] == ids[0].as_str() && p["muted"] == true))
    });

    tmux.keys("q");
    tmux.wait_for("Leave the group call? [y] yes");
    tmux.keys("n");
    tmux.wait_for("[q] leave");
    assert_eq!(alice.hail(&["--json", "status"]).json()["ok"]["group"]["state"], "in_call", "no means no");
    tmux.keys("q");
    tmux.wait_for("Leave the group call? [y] yes");
    tmux.keys("y");
    let screen = tmux.wait_for("exit status");
    assert!(screen.contains("You are out of the group call (left)"), "the last line is the plain one:\n{screen}");
    assert!(screen.contains("exit status 0"), "{screen}");
    group_daemons::all_settled(&[bob, carol], &ids[1..]);
}
