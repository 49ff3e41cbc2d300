//! The `hail` binary against a real daemon process on a real home.

mod common;

use common::{TestDaemon, card, hail, peer_id, temp_home};

#[test]
fn contacts_survive_add_rename_block_remove_and_a_restart() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);

    let added = daemon.hail(&["contacts", "add", "bob", &card(2, "Bob")]);
    assert!(added.ok().contains("Added bob"));
    daemon.hail(&["contacts", "add", "carol", &peer_id(3)]).ok();

    let list = daemon.hail(&["--json", "contacts", "list"]).json();
    let names: Vec<&str> = list["ok"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bob", "carol"]);
    assert_eq!(list["ok"][0]["display_name"], "Bob");
    assert_eq!(list["ok"][0]["peer_id"], peer_id(2));

    assert!(daemon.hail(&["contacts", "rename", "bob", "robert"]).ok().contains("Renamed bob to robert"));
    daemon.hail(&["contacts", "block", "carol"]).ok();
    daemon.hail(&["contacts", "remove", "robert"]).ok();

    assert!(daemon.terminate().success(), "SIGTERM is a clean exit");
    assert!(!home.join("control.sock").exists(), "the socket is removed on shutdown");

    let daemon = TestDaemon::start(&home);
    let list = daemon.hail(&["--json", "contacts", "list"]).json();
    let contacts = list["ok"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "{list}");
    assert_eq!(contacts[0]["name"], "carol");
    assert_eq!(contacts[0]["blocked"], true);
    let text = daemon.hail(&["contacts", "list"]).ok().to_owned();
    assert!(text.contains("carol") && text.contains(&peer_id(3)), "{text}");

    daemon.hail(&["contacts", "unblock", "carol"]).ok();
    assert_eq!(daemon.hail(&["--json", "contacts", "list"]).json()["ok"][0]["blocked"], false);
}

#[test]
fn a_second_daemon_on_the_same_home_is_refused_and_names_the_first() {
    let (_dir, home) = temp_home();
    let first = TestDaemon::start(&home);
    let second = hail(&home, &["daemon"]);
    let reason = second.fails_with(4);
    assert!(reason.contains("already runs") && reason.contains(&first.pid().to_string()), "{reason}");
    // The first one is unharmed.
    first.hail(&["status"]).ok();
}

#[test]
fn without_a_daemon_commands_say_how_to_start_one() {
    let (_dir, home) = temp_home();
    let out = hail(&home, &["contacts", "list"]);
    let reason = out.fails_with(3);
    assert!(reason.contains("no daemon is running") && reason.contains("hail daemon --home"), "{reason}");
}

#[test]
fn id_prints_peer_id_and_a_card_that_decodes_to_it() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let id = daemon.hail(&["--json", "id", "--name", "alice"]).json();
    let peer = id["ok"]["peer_id"].as_str().unwrap();
    let card: hail::identity::Card = id["ok"]["card"].as_str().unwrap().parse().unwrap();
    assert_eq!(card.peer_id.to_base58(), peer);
    assert_eq!(card.name.as_str(), "alice");

    let text = daemon.hail(&["id", "--qr"]).ok().to_owned();
    assert!(text.contains(peer) && text.contains("hail1"), "{text}");
    assert!(text.contains('█'), "the QR code is drawn: {text}");

    // The name persists across restarts; the identity too.
    drop(daemon);
    let daemon = TestDaemon::start(&home);
    let again = daemon.hail(&["--json", "id"]).json();
    assert_eq!(again["ok"]["peer_id"], peer);
    assert_eq!(again["ok"]["name"], "alice");
}

#[test]
fn a_closed_stdout_ends_a_command_quietly_like_a_unix_filter() {
    use std::os::unix::process::ExitStatusExt;
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    daemon.hail(&["contacts", "add", "bob", &card(2, "Bob")]).ok();
    for args in [&["id", "--qr"][..], &["--json", "id"], &["contacts", "list"], &["status"], &["history"]] {
        // The reader is gone before the command writes a byte (`hail id --qr | head -0`).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(common::HAIL)
            .arg("--home")
            .arg(&home)
            .args(args)
            .env_remove("HAIL_HOME")
            .env("RUST_BACKTRACE", "1")
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked") && stderr.is_empty(), "{args:?}: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: ended by SIGPIPE, as `cat` would: {:?}",
            out.status
        );
    }
    // The daemon is unharmed.
    daemon.hail(&["status"]).ok();
}

#[test]
fn the_daemon_keeps_serving_when_its_stdout_and_stderr_are_closed_pipes() {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let (_dir, home) = temp_home();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut daemon = Kill(
        Command::new(common::HAIL)
            .arg("--home")
            .arg(&home)
            .args(["daemon", "--log", "hail=debug", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--media-listen", "127.0.0.1:0", "--audio-in", "silence", "--audio-out", "null"])
            .env_remove("HAIL_HOME")
            .stdin(Stdio::null())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !hail(&home, &["status"]).status.success() {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!("the daemon died of its closed log: {status}");
        }
        assert!(Instant::now() < deadline, "the daemon is not answering");
        std::thread::sleep(Duration::from_millis(25));
    }
    // Requests that log, each write failing.
    hail(&home, &["contacts", "add", "bob", &card(2, "Bob")]).ok();
    hail(&home, &["status"]).ok();
    assert!(daemon.0.try_wait().unwrap().is_none(), "still running");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    assert!(daemon.0.wait().unwrap().success(), "a clean exit on SIGTERM, its last words lost");
}

#[test]
fn bad_input_gets_specific_errors_and_the_daemon_keeps_serving() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    daemon.hail(&["contacts", "add", "bob", &peer_id(2)]).ok();
    let own = daemon.hail(&["--json", "id"]).json()["ok"]["peer_id"].as_str().unwrap().to_owned();

    let mut typo_card = card(4, "dave");
    let i = typo_card.len() - 5;
    let c = if &typo_card[i..=i] == "a" { "b" } else { "a" };
    typo_card.replace_range(i..=i, c);
    let mut typo_peer = peer_id(5);
    typo_peer.pop();

    let cases: &[(&[&str], &str, &str)] = &[
        (&["contacts", "add", "dave", &typo_card], "invalid_contact", "checksum"),
        (&["contacts", "add", "eve", &typo_peer], "invalid_contact", "PeerId"),
        (&["contacts", "add", "eve", "not-a-peer"], "invalid_contact", "PeerId"),
        (&["contacts", "add", "bob", &peer_id(6)], "name_taken", "already exists"),
        (&["contacts", "add", "bobby", &peer_id(2)], "already_contact", "already your contact 'bob'"),
        (&["contacts", "add", "me", &own], "self_contact", "own PeerId"),
        (&["contacts", "add", "", &peer_id(7)], "invalid_name", "empty"),
        (&["contacts", "add", "bad\u{7}name", &peer_id(7)], "invalid_name", "control characters"),
        (&["contacts", "add", &"x".repeat(65), &peer_id(7)], "invalid_name", "at most 64"),
        (&["contacts", "remove", "nobody"], "not_found", "no contact named 'nobody'"),
        (&["contacts", "rename", "nobody", "x"], "not_found", "no contact named"),
        (&["contacts", "block", "nobody"], "not_found", "no contact named"),
    ];
    for (args, code, text) in cases {
        daemon.refuses(args, code, text);
    }
    // Everything refused changed nothing.
    let list = daemon.hail(&["--json", "contacts", "list"]).json();
    assert_eq!(list["ok"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_usage_exits_2_before_touching_the_daemon() {
    let (_dir, home) = temp_home();
    let out = hail(&home, &["contacts", "add", "onlyaname"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = hail(&home, &["video", "sideways"]);
    assert_eq!(out.status.code(), Some(2), "video takes on or off: {out:?}");
    let out = hail(&home, &["screenshare", "on"]);
    assert_eq!(out.status.code(), Some(2), "commands that do not exist are not offered: {out:?}");
}

#[test]
fn a_damaged_database_or_key_stops_the_daemon_with_a_clear_error() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    daemon.hail(&["contacts", "add", "bob", &peer_id(2)]).ok();
    assert!(daemon.terminate().success());

    std::fs::write(home.join("db.seal"), "999999\n").unwrap();
    let out = hail(&home, &["daemon"]);
    let reason = out.fails_with(4);
    assert!(reason.contains("damaged") && reason.contains("left untouched"), "{reason}");
    assert!(!out.stderr.contains("panicked"));
    std::fs::write(home.join("db.seal"), "1\n").unwrap();

    let key = home.join("identity.key");
    let original = std::fs::read(&key).unwrap();
    std::fs::write(&key, "ed25519-seed:not-hex\n").unwrap();
    let reason = hail(&home, &["daemon"]).fails_with(4).to_owned();
    assert!(reason.contains("identity key") && reason.contains("damaged"), "{reason}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "ed25519-seed:not-hex\n");

    std::fs::write(&key, original).unwrap();
    let daemon = TestDaemon::start(&home);
    assert_eq!(daemon.hail(&["--json", "contacts", "list"]).json()["ok"][0]["name"], "bob");
}
