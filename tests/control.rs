//! The control protocol on the wire, against a real daemon: every command, every error path,
//! hostile lines and rude clients. The daemon must keep serving everyone else throughout.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{TestDaemon, card, peer_id, temp_home};
use serde_json::{Value, json};

/// A raw protocol connection.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Conn {
    fn open(daemon: &TestDaemon) -> (Conn, Value) {
        let stream = UnixStream::connect(daemon.home.join("control.sock")).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = Conn { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
        let hello = conn.read();
        (conn, hello)
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("a line within 10 s");
        assert!(n > 0, "daemon closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("daemon sent non-JSON ({e}): {line:?}"))
    }

    fn ask(&mut self, line: &str) -> Value {
        self.send_raw(line.as_bytes());
        self.send_raw(b"\n");
        self.read()
    }
}

/// `actual` matches `expected` when every key of `expected` is in `actual` with a matching value;
/// the string "*" matches anything.
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(s), _) if s == "*" => true,
        (Value::Object(e), Value::Object(a)) => e.iter().all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av))),
        (Value::Array(e), Value::Array(a)) => e.len() == a.len() && e.iter().zip(a).all(|(x, y)| matches(x, y)),
        _ => expected == actual,
    }
}

fn substitute(text: &str, own: &str) -> String {
    text.replace("{bob_card}", &card(2, "Bob")).replace("{bob}", &peer_id(2)).replace("{own}", own)
}

#[test]
fn the_example_transcript_from_the_spec_replays_exactly() {
    let vectors: Value =
        serde_json::from_str(include_str!("../protocols/vectors/control-v1.json")).expect("vector file is JSON");
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let own = daemon.hail(&["--json", "id"]).json()["ok"]["peer_id"].as_str().unwrap().to_owned();

    let (mut conn, hello) = Conn::open(&daemon);
    let expected_hello: Value = serde_json::from_str(&substitute(&vectors["hello"].to_string(), &own)).unwrap();
    assert!(matches(&expected_hello, &hello), "hello {hello} does not match {expected_hello}");

    for step in vectors["transcript"].as_array().unwrap() {
        let send = substitute(step["send"].as_str().unwrap(), &own);
        let expect: Value = serde_json::from_str(&substitute(&step["expect"].to_string(), &own)).unwrap();
        let reply = conn.ask(&send);
        assert!(matches(&expect, &reply), "sent {send}\n got {reply}\nwant {expect}");
    }
}

#[test]
fn subscribers_see_changes_made_by_other_clients() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let (mut watcher, _) = Conn::open(&daemon);
    assert_eq!(watcher.ask(r#"{"id":1,"cmd":"subscribe"}"#)["ok"]["subscribed"], true);

    daemon.hail(&["contacts", "add", "bob", &peer_id(2)]).ok();
    daemon.hail(&["contacts", "rename", "bob", "robert"]).ok();
    daemon.hail(&["contacts", "block", "robert"]).ok();
    daemon.hail(&["contacts", "remove", "robert"]).ok();

    let events: Vec<Value> = (0..4).map(|_| watcher.read()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["contact.added", "contact.renamed", "contact.changed", "contact.removed"]);
    assert_eq!(events[1]["old_name"], "bob");
    assert_eq!(events[2]["contact"]["blocked"], true);
    assert_eq!(events[3]["contact"]["peer_id"], peer_id(2));
}

#[test]
fn hostile_lines_get_error_replies_and_the_connection_stays_usable() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let (mut conn, _) = Conn::open(&daemon);

    let cases = [
        ("{", json!(null), "malformed"),
        ("[1,2,3]", json!(null), "malformed"),
        ("42", json!(null), "malformed"),
        (r#"{"cmd":"status"}"#, json!(null), "malformed"),
        (r#"{"id":"one","cmd":"status"}"#, json!(null), "malformed"),
        (r#"{"id":-3,"cmd":"status"}"#, json!(null), "malformed"),
        (r#"{"id":1.5,"cmd":"status"}"#, json!(null), "malformed"),
        (r#"{"id":2}"#, json!(2), "malformed"),
        (r#"{"id":3,"cmd":null}"#, json!(3), "malformed"),
        (r#"{"id":4,"cmd":"launch"}"#, json!(4), "unknown_command"),
        (r#"{"id":5,"cmd":"contacts.add","name":"x"}"#, json!(5), "invalid_arguments"),
        (r#"{"id":6,"cmd":"contacts.add","name":7,"contact":"x"}"#, json!(6), "invalid_arguments"),
        (r#"{"id":7,"cmd":"contacts.add","name":"x","contact":"garbage"}"#, json!(7), "invalid_contact"),
        (r#"{"id":8,"cmd":"contacts.add","name":"a\u0000b","contact":"garbage"}"#, json!(8), "invalid_name"),
        (r#"{"id":9,"cmd":"contacts.block","name":"ghost"}"#, json!(9), "not_found"),
    ];
    for (line, id, code) in cases {
        let reply = conn.ask(line);
        assert_eq!(reply["id"], id, "{line} -> {reply}");
        assert_eq!(reply["err"]["code"], code, "{line} -> {reply}");
        assert!(!reply["err"]["message"].as_str().unwrap().is_empty());
    }

    // Invalid UTF-8 and NUL bytes.
    conn.send_raw(b"\xff\xfe\x00{\n");
    assert_eq!(conn.read()["err"]["code"], "malformed");

    // An oversized line (1 MiB, far over the 64 KiB cap) is refused as a whole...
    let mut huge = br#"{"id":99,"cmd":"contacts.add","name":"x","contact":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b"\"}\n");
    conn.send_raw(&huge);
    let reply = conn.read();
    assert_eq!(reply["err"]["code"], "line_too_long", "{reply}");
    // ...and the very next line on the same connection works.
    assert!(conn.ask(r#"{"id":100,"cmd":"status"}"#)["ok"]["peer_id"].is_string());
    // Blank lines are ignored, not answered.
    assert_eq!(conn.ask("\n\n{\"id\":101,\"cmd\":\"status\"}")["id"], 101);
}

#[test]
fn rude_clients_harm_nothing() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let socket = daemon.home.join("control.sock");

    // Connect and leave without a word; leave halfway through a line; send a request and leave
    // before the answer; send a mutation and leave before the answer.
    drop(UnixStream::connect(&socket).unwrap());
    let mut half = UnixStream::connect(&socket).unwrap();
    half.write_all(br#"{"id":1,"cmd":"contacts.add","name":"bob","#).unwrap();
    drop(half);
    let mut gone = UnixStream::connect(&socket).unwrap();
    gone.write_all(b"{\"id\":1,\"cmd\":\"status\"}\n").unwrap();
    drop(gone);
    let mut leaver = UnixStream::connect(&socket).unwrap();
    leaver
        .write_all(
            format!("{{\"id\":1,\"cmd\":\"contacts.add\",\"name\":\"carol\",\"contact\":\"{}\"}}\n", peer_id(3))
                .as_bytes(),
        )
        .unwrap();
    drop(leaver);

    // Meanwhile a well-behaved client is served, and sees exactly the complete request's effect.
    let (mut conn, hello) = Conn::open(&daemon);
    assert_eq!(hello["hello"]["protocol"], "hail-control");
    let mut names = Vec::new();
    for attempt in 0..200 {
        let list = conn.ask(&format!(r#"{{"id":{attempt},"cmd":"contacts.list"}}"#));
        names = list["ok"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect();
        if !names.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(names, ["carol"], "the completed request took effect, the half line did not");
    daemon.hail(&["status"]).ok();
}

#[test]
fn connections_are_bounded_and_freed_when_clients_leave() {
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let max = hail::control::server::MAX_CONNECTIONS;
    let held: Vec<(Conn, Value)> = (0..max).map(|_| Conn::open(&daemon)).collect();
    assert!(held.iter().all(|(_, hello)| hello["hello"].is_object()));

    let (_, refused) = Conn::open(&daemon);
    assert_eq!(refused["err"]["code"], "busy", "{refused}");

    drop(held);
    // Slots come back as the daemon notices the closed connections.
    let mut hello = Value::Null;
    for _ in 0..200 {
        hello = Conn::open(&daemon).1;
        if hello["hello"].is_object() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(hello["hello"].is_object(), "{hello}");
}

#[test]
fn the_socket_is_private_to_the_daemons_user() {
    let (dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let socket = daemon.home.join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let home_mode = std::fs::metadata(&home).unwrap().permissions().mode() & 0o777;
    assert_eq!(home_mode, 0o700);

    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root to act as another user (CI runs as root)");
    let as_nobody = || {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(common::HAIL)
            .args(["--home", home.to_str().unwrap(), "status"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    // The file modes alone keep another user out...
    let out = as_nobody();
    assert!(!out.status.success());
    // ...and when they are opened up, the peer-credential check still refuses.
    for p in [dir.path(), home.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("only serves the user running the daemon"), "{stderr}");
    daemon.hail(&["status"]).ok();
}

#[test]
fn the_view_feature_is_announced_and_view_answers_as_the_vectors_say() {
    let vectors: Value =
        serde_json::from_str(include_str!("../protocols/vectors/control-view-v1.json")).expect("vector file is JSON");
    let (_dir, home) = temp_home();
    let daemon = TestDaemon::start(&home);
    let (mut conn, hello) = Conn::open(&daemon);
    assert_eq!(hello["hello"]["features"], vectors["hello_features"], "{hello}");
    let reply = conn.ask(vectors["request"].as_str().unwrap());
    assert_eq!(reply, vectors["reply"]);
    // Without a call no picture comes; the connection still answers requests.
    let reply = conn.ask(r#"{"id":10,"cmd":"contacts.list"}"#);
    assert_eq!(reply, json!({"id":10,"ok":[]}));
}

/// The group call's status object and events (`protocols/control-v1.md`, "Group calls"): the
/// vectors read into the daemon's types and serialize back to exactly the same JSON.
#[test]
fn group_status_and_events_are_exactly_the_vectors() {
    let vectors: Value =
        serde_json::from_str(include_str!("../protocols/vectors/control-v1.json")).expect("vector file is JSON");
    let status = vectors["group_status"].clone();
    let group: hail::node::GroupInfo = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(serde_json::to_value(&group).unwrap(), status);
    for raw in vectors["group_events"].as_array().unwrap() {
        let mut want = raw.clone();
        want["group"] = status.clone();
        let peer = || raw["peer_id"].as_str().unwrap().parse().unwrap();
        let name = || Some(hail::name::Name::parse(raw["name"].as_str().unwrap()).unwrap());
        let who = || hail::node::GroupPeerChange {
            peer_id: peer(),
            name: name(),
            reason: raw["reason"].as_str().unwrap().into(),
        };
        let event = match raw["event"].as_str().unwrap() {
            "group.joined" => hail::node::NodeEvent::GroupJoined { group: group.clone(), peer_id: peer(), name: name() },
            "group.left" => hail::node::NodeEvent::GroupLeft { group: group.clone(), who: who() },
            "group.invite_failed" => hail::node::NodeEvent::GroupInviteFailed { group: group.clone(), who: who() },
            "group.emoji" => hail::node::NodeEvent::GroupEmoji { group: group.clone() },
            "group.ended" => hail::node::NodeEvent::GroupEnded { group: group.clone() },
            "group.speaking" => hail::node::NodeEvent::GroupSpeaking {
                group: group.clone(),
                peer_id: peer(),
                name: name(),
                speaking: raw["speaking"].as_bool().unwrap(),
            },
            "group.dominant" => hail::node::NodeEvent::GroupDominant {
                group: group.clone(),
                peer_id: raw["peer_id"].as_str().map(str::to_owned),
                name: raw["name"].as_str().map(|n| hail::name::Name::parse(n).unwrap()),
            },
            "group.muted" => hail::node::NodeEvent::GroupMuted {
                group: group.clone(),
                peer_id: peer(),
                name: name(),
                muted: raw["muted"].as_bool().unwrap(),
            },
            "group.video" => hail::node::NodeEvent::GroupVideo {
                group: group.clone(),
                peer_id: peer(),
                name: name(),
                on: raw["on"].as_bool().unwrap(),
            },
            "group.disputed" => hail::node::NodeEvent::GroupDisputed {
                group: group.clone(),
                peer_ids: [0, 1].map(|i| raw["peer_ids"][i].as_str().unwrap().to_owned()),
                seen_by: raw["seen_by"].as_str().unwrap().to_owned(),
            },
            "group.forged" => hail::node::NodeEvent::GroupForged {
                group: group.clone(),
                peer_id: raw["peer_id"].as_str().map(str::to_owned),
                name: raw["name"].as_str().map(|n| hail::name::Name::parse(n).unwrap()),
                delivered_by: raw["delivered_by"].as_str().unwrap().to_owned(),
                counter: raw["counter"].as_u64(),
                reason: raw["reason"].as_str().unwrap().to_owned(),
                distrusted: raw["distrusted"].as_bool().unwrap(),
            },
            other => panic!("unknown event {other}"),
        };
        assert_eq!(serde_json::to_value(&event).unwrap(), want);
    }
}

/// `history` records (`protocols/control-v1.md`, "CallRecord"): a 1:1 record as written before
/// group calls were kept reads (no `group`), a group call's record names who was in it; both
/// serialize back exactly.
#[test]
fn call_records_old_and_group_are_exactly_the_vectors() {
    let vectors: Value =
        serde_json::from_str(include_str!("../protocols/vectors/control-v1.json")).expect("vector file is JSON");
    let records = vectors["call_records"].as_array().unwrap();
    let old: hail::store::CallRecord = serde_json::from_value(records[0].clone()).unwrap();
    assert_eq!(old.group, None);
    let group: hail::store::CallRecord = serde_json::from_value(records[1].clone()).unwrap();
    let peers = group.group.as_ref().expect("a group call's record");
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[0].contact.as_ref().map(|n| n.as_str()), Some("bob"));
    for (record, raw) in [old, group].iter().zip(records) {
        assert_eq!(&serde_json::to_value(record).unwrap(), raw);
    }
}
