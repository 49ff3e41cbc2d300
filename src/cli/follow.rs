//! Commands that follow the daemon's events: `hail call` (until the call ends) and `hail watch`.
//! On a terminal, `hail call` shows the live view ([`super::live`]); with `--json` or when stdout
//! is not a terminal, it prints one line per event, as here. `hail call a b …` (a group call)
//! follows the group in lines until we are out of it.

use std::process::ExitCode;

use hail::control::{Client, Command};
use hail::node::{CallInfo, GroupInfo};
use serde_json::Value;

use super::out::{errln, jsonln, outln};
use super::print::{format_duration, who};
use hail::peer_text::sanitize;
use super::{EXIT_OTHER, EXIT_REFUSED};

/// One line for an event, for people.
pub fn describe(event: &Value) -> Option<String> {
    let kind = event["event"].as_str()?;
    if kind.starts_with("call.") {
        let call: CallInfo = serde_json::from_value(event["call"].clone()).ok()?;
        let peer = who(&call);
        return Some(match kind {
            "call.incoming" if call.group.is_some() => format!(
                "{peer}{} invites you to a group call with {} — `hail answer` or `hail reject`",
                if call.unknown { " (NOT A CONTACT)" } else { "" },
                call.group.as_ref().map(|g| sanitize(&g.with.join(", "))).unwrap_or_default()
            ),
            "call.incoming" => format!(
                "Incoming {}call from {peer}{} — `hail answer` or `hail reject`",
                if call.video { "video " } else { "" },
                if call.unknown { " (NOT A CONTACT)" } else { "" }
            ),
            "call.sas" => format!(
                "Emoji: {}\n  They must be the same on {peer}'s screen. If they are, run `hail sas confirm {} {}`; if not, hang up.",
                call.sas_text.clone().unwrap_or_default(),
                &call.call_id.to_string()[..8],
                call.sas.iter().flatten().map(|e| e.name.as_str()).collect::<Vec<_>>().join(" ")
            ),
            "call.media" => format!(
                "{peer}: microphone {}, video {}",
                if call.remote_muted { "muted" } else { "on" },
                if call.remote_video { "on" } else { "paused" }
            ),
            "call.ended" => format!(
                "Call ended: {}{}",
                hail::peer_text::sanitize(call.end_description.as_deref().unwrap_or_default()),
                if call.answered_at_ms.is_some() {
                    format!(" ({})", format_duration(call.duration_secs))
                } else {
                    String::new()
                }
            ),
            _ => match call.state {
                hail::call::CallState::Dialing => format!("Calling {peer}…"),
                hail::call::CallState::Ringing => format!("Ringing {peer}…"),
                hail::call::CallState::Connecting => "Answering…".to_owned(),
                hail::call::CallState::Active => format!("Connected with {peer}."),
                hail::call::CallState::Ending => "Hanging up…".to_owned(),
                hail::call::CallState::Ended => return None,
            },
        });
    }
    if kind.starts_with("group.") {
        let name = event["name"].as_str().map(str::to_owned).or_else(|| event["peer_id"].as_str().map(str::to_owned));
        let name = sanitize(&name.unwrap_or_else(|| "?".into()));
        return Some(match kind {
            "group.joined" => format!("{name} joined the group call"),
            "group.invite_failed" => {
                format!("{name} did not join: {}", sanitize(event["reason"].as_str().unwrap_or_default()))
            }
            "group.left" => format!("{name} {} the group call", if event["reason"] == "left" { "left" } else { "was removed from" }),
            "group.emoji" => format!(
                "Group emoji: {}  (the same for everyone in the call; they change when someone joins or leaves)",
                sanitize(event["group"]["emoji_text"].as_str().unwrap_or_default())
            ),
            "group.disputed" => {
                let who = |p: &Value| {
                    let id = p.as_str().unwrap_or("?");
                    let known = event["group"]["participants"].as_array().and_then(|ps| {
                        ps.iter().find(|x| x["peer_id"] == id).and_then(|x| x["name"].as_str().map(str::to_owned))
                    });
                    sanitize(&known.unwrap_or_else(|| id.to_owned()))
                };
                format!(
                    "WARNING: {} and {} do not agree on their connection (seen by {}): someone may be in the middle. Compare the group emoji aloud.",
                    who(&event["peer_ids"][0]),
                    who(&event["peer_ids"][1]),
                    who(&event["seen_by"])
                )
            }
            "group.forged" => {
                let by = event["delivered_by"].as_str().unwrap_or("?");
                let by = event["group"]["participants"]
                    .as_array()
                    .and_then(|ps| {
                        ps.iter().find(|x| x["peer_id"] == by).and_then(|x| x["name"].as_str().map(str::to_owned))
                    })
                    .unwrap_or_else(|| by.to_owned());
                let what = if event["reason"] == "authenticator" { "a signature" } else { "a frame (sound or picture)" };
                let action = if event["distrusted"] == true {
                    " No longer taking anyone's sound or pictures through it: sending and receiving directly."
                } else {
                    ""
                };
                format!(
                    "WARNING: forged {what} under {name}'s name, delivered by {}: {name} did not send it (it may have been played).{action}",
                    sanitize(&by)
                )
            }
            "group.muted" => {
                format!("{name} {} their microphone", if event["muted"] == true { "muted" } else { "unmuted" })
            }
            "group.video" => format!("{name} turned their video {}", if event["on"] == true { "on" } else { "off" }),
            "group.speaking" => format!("{name} {}", if event["speaking"] == true { "speaks" } else { "stopped speaking" }),
            "group.dominant" if event["peer_id"].is_null() => "Nobody speaks".to_owned(),
            "group.dominant" => format!("{name} is the main speaker"),
            "group.ended" => format!(
                "You are out of the group call ({})",
                event["group"]["end_reason"].as_str().unwrap_or("ended").replace('_', " ")
            ),
            other => other.to_owned(),
        });
    }
    let contact = event["contact"]["name"].as_str().unwrap_or("?");
    Some(match kind {
        "contact.added" => format!("Contact added: {contact}"),
        "contact.changed" => format!("Contact updated: {contact}"),
        "contact.renamed" => format!("Contact renamed: {} → {contact}", event["old_name"].as_str().unwrap_or("?")),
        "contact.removed" => format!("Contact removed: {contact}"),
        "identity.changed" => format!("Your name is now {}", event["identity"]["name"].as_str().unwrap_or("?")),
        "lagged" => format!("(missed {} events)", event["missed"]),
        other => other.to_string(),
    })
}

fn show(event: &Value, json: bool) {
    if json {
        jsonln!("{event}");
    } else if let Some(line) = describe(event) {
        outln!("{line}");
    }
}

/// Subscribes to events, then sends `request` (printing its reply with `json`): the reply as a
/// `T`, or the exit code to return.
async fn start<T: serde::de::DeserializeOwned>(client: &mut Client, json: bool, request: &Command) -> Result<T, ExitCode> {
    if let Err(e) = client.subscribe().await {
        errln!("hail: {e}");
        return Err(ExitCode::from(EXIT_OTHER));
    }
    match super::send(client, request, json).await.map(serde_json::from_value) {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => {
            errln!("hail: unexpected reply from the daemon: {e}");
            Err(ExitCode::from(EXIT_OTHER))
        }
        Err(code) => Err(code),
    }
}

/// The next event about the call (`of`: `call`) or group call (`of`: `group`) `call_id`, or the
/// exit code once the daemon is gone.
async fn next_event(client: &mut Client, of: &str, call_id: &str) -> Result<Value, ExitCode> {
    loop {
        let event = client.next_event().await.map_err(|e| {
            errln!("hail: lost the daemon: {e}");
            ExitCode::from(EXIT_OTHER)
        })?;
        if event[of]["call_id"].as_str() == Some(call_id) {
            return Ok(event);
        }
    }
}

/// Asks the daemon for `command` on a connection of its own (the first one is busy following).
async fn on_the_side(socket: &std::path::Path, command: Command) {
    if let Ok(mut other) = Client::connect(socket).await {
        let _ = other.request(&command).await;
    }
}

/// `hail call`: places the call and follows it until it ends, on the live view when stdout is a
/// terminal and `json` is off, else in lines. Ctrl-C hangs up.
pub async fn call(mut client: Client, json: bool, request: Command) -> ExitCode {
    let info: CallInfo = match start(&mut client, json, &request).await {
        Ok(info) => info,
        Err(code) => return code,
    };
    if !json && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        match super::live::Terminal::enter() {
            Ok(term) => return super::live::follow(client, info, term).await,
            Err(e) => errln!("hail: no live view ({e}); following the call in lines"),
        }
    }
    let call_id = info.call_id.to_string();
    let socket = client.socket_path().to_owned();
    let mut interrupted = false;
    loop {
        tokio::select! {
            event = next_event(&mut client, "call", &call_id) => {
                let event = match event {
                    Ok(e) => e,
                    Err(code) => return code,
                };
                show(&event, json);
                if event["event"] == "call.ended" {
                    let answered = event["call"]["answered_at_ms"].is_u64();
                    return if answered { ExitCode::SUCCESS } else { ExitCode::from(EXIT_REFUSED) };
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                on_the_side(&socket, Command::Hangup).await;
            }
        }
    }
}

/// Whether, after `event`, nobody but us is in the group call or on their way into it: every
/// invitation failed, or everyone else left. The group an event carries may still list the one
/// who left, or whose invitation failed, when the event is about them.
pub(super) fn alone_after(event: &Value) -> bool {
    let Ok(group) = serde_json::from_value::<GroupInfo>(event["group"].clone()) else { return false };
    let gone = match event["event"].as_str() {
        Some("group.left" | "group.invite_failed") => event["peer_id"].as_str(),
        _ => None,
    };
    group.participants.iter().all(|p| p.me || Some(p.peer_id.to_string().as_str()) == gone)
}

/// `hail call a b …`: starts the group call and follows it, one line per event of this group
/// (who joins, leaves or did not join, the group's emoji, mutes and video; not who speaks, which
/// changes too often for lines: `hail watch` and `hail status` show it), until we are out of it.
/// Once nobody else is in the call or invited, it leaves: nobody can hear us. Ctrl-C leaves.
/// Exit code 0 when anyone joined, else 1 (nobody came).
pub async fn group_call(mut client: Client, json: bool, request: Command) -> ExitCode {
    let info: GroupInfo = match start(&mut client, json, &request).await {
        Ok(info) => info,
        Err(code) => return code,
    };
    if !json && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        match (super::live::Terminal::enter(), serde_json::to_value(&info)) {
            (Ok(term), Ok(group)) => return super::live_group::follow(client, group, term).await,
            (Err(e), _) => errln!("hail: no live view ({e}); following the group call in lines"),
            (_, Err(e)) => errln!("hail: no live view ({e}); following the group call in lines"),
        }
    }
    if !json {
        let invited = match &request {
            Command::GroupCall { peers, .. } => sanitize(&peers.join(", ")),
            _ => String::new(),
        };
        outln!("Group call {}: inviting {invited}. Ctrl-C or `hail leave` to leave.", info.call_id);
    }
    let call_id = info.call_id.to_string();
    let socket = client.socket_path().to_owned();
    let mut anyone_joined = false;
    let mut leaving = false;
    loop {
        tokio::select! {
            event = next_event(&mut client, "group", &call_id) => {
                let event = match event {
                    Ok(e) => e,
                    Err(code) => return code,
                };
                let kind = event["event"].as_str().unwrap_or_default();
                if json || !matches!(kind, "group.speaking" | "group.dominant") {
                    show(&event, json);
                }
                if kind == "group.joined" {
                    anyone_joined = true;
                }
                if kind == "group.ended" {
                    return if anyone_joined { ExitCode::SUCCESS } else { ExitCode::from(EXIT_REFUSED) };
                }
                if !leaving && alone_after(&event) {
                    leaving = true;
                    if !json {
                        outln!("{}", if anyone_joined { "Everyone else left; leaving." } else { "Nobody joined; leaving." });
                    }
                    on_the_side(&socket, Command::GroupLeave).await;
                }
            }
            _ = tokio::signal::ctrl_c(), if !leaving => {
                leaving = true;
                on_the_side(&socket, Command::GroupLeave).await;
            }
        }
    }
}

/// `hail watch`: prints events until the daemon stops or Ctrl-C.
pub async fn watch(mut client: Client, json: bool) -> ExitCode {
    if let Err(e) = client.subscribe().await {
        errln!("hail: {e}");
        return ExitCode::from(EXIT_OTHER);
    }
    loop {
        tokio::select! {
            event = client.next_event() => match event {
                Ok(event) => show(&event, json),
                Err(e) => {
                    errln!("hail: the daemon went away: {e}");
                    return ExitCode::from(EXIT_OTHER);
                }
            },
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disputed_pair_is_named_by_contact_name_where_known() {
        let event = serde_json::json!({
            "event": "group.disputed",
            "peer_ids": ["12D3KooWA", "12D3KooWB"],
            "seen_by": "12D3KooWC",
            "group": { "participants": [{ "peer_id": "12D3KooWA", "name": "bob" }, { "peer_id": "12D3KooWC", "name": "carol\u{1b}[2J" }] },
        });
        let line = describe(&event).expect("a line for people");
        assert!(line.starts_with("WARNING: bob and 12D3KooWB do not agree"), "{line}");
        assert!(line.contains("seen by carol"), "{line}");
        assert!(!line.contains('\u{1b}'), "{line}");
    }

    #[test]
    fn a_forgery_is_a_warning_naming_the_member_and_the_forwarder() {
        let event = serde_json::json!({
            "event": "group.forged",
            "peer_id": "12D3KooWA",
            "name": "bob",
            "delivered_by": "12D3KooWC",
            "counter": 60,
            "reason": "digest",
            "distrusted": true,
            "group": { "participants": [{ "peer_id": "12D3KooWC", "name": "carol" }] },
        });
        let line = describe(&event).expect("a line for people");
        assert!(line.starts_with("WARNING: forged a frame (sound or picture) under bob's name, delivered by carol"), "{line}");
        assert!(line.contains("sending and receiving directly"), "{line}");
    }

    #[test]
    fn a_hostile_end_reason_is_shown_without_its_escape_sequences() {
        let event = serde_json::json!({
            "event": "call.ended",
            "call": {
                "call_id": "00112233445566778899aabbccddeeff",
                "direction": "outgoing",
                "peer_id": "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo",
                "unknown": false,
                "state": "ended",
                "verification": "unverified",
                "video": false,
                "remote_video": false,
                "remote_muted": false,
                "started_at_ms": 0,
                "duration_secs": 0,
                "muted": false,
                "end_description": "unavailable: \u{1b}[2J\u{1b}[H\u{1b}[1;32m\u{2705} verified\u{1b}[0m\u{202e}\u{7}",
            },
        });
        let line = describe(&event).expect("a line for people");
        assert_eq!(line, "Call ended: unavailable: \u{2705} verified");
    }
}
