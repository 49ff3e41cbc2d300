//! An acknowledged write survives `kill -9`.

mod common;

use common::{TestDaemon, peer_id, temp_home};

#[test]
fn an_acknowledged_add_survives_kill_9() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    for i in 0..5u8 {
        daemon.hail(&["contacts", "add", &format!("friend{i}"), &peer_id(10 + i)]).ok();
    }
    daemon.hail(&["contacts", "block", "friend4"]).ok();
    daemon.kill9();
    assert!(home.join("control.sock").exists(), "kill -9 leaves a stale socket behind");

    let daemon = TestDaemon::start(&home);
    let list = daemon.hail(&["--json", "contacts", "list"]).json();
    let contacts = list["ok"].as_array().unwrap();
    assert_eq!(contacts.len(), 5, "{list}");
    assert_eq!(contacts[4]["name"], "friend4");
    assert_eq!(contacts[4]["blocked"], true);
}
