//! `hail call a b …`'s live view of a group call in a terminal: one screen redrawn in place with
//! the group's emoji, how its media flows, every participant (state, speaking, microphone, video,
//! what arrives from it) and our own state, and keys: `m` mute, `v` video, `q` or Esc leave (after
//! a `y`), Ctrl-C leave at once.
//!
//! [`GroupScreen`] is the view without IO, on the group as `status` and the events describe it
//! (`protocols/control-v1.md`, `group`); [`follow`] drives it as [`super::live::follow`] drives a
//! call's. Used only when stdout is a terminal and `--json` is not given; otherwise the group is
//! followed in plain lines ([`super::follow::group_call`]).

use std::process::ExitCode;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use hail::control::{Client, Command};
use hail::peer_text::{sanitize, strip_escapes};
use serde_json::Value;

use super::follow::{alone_after, describe};
use super::live::{Beside, KeyAction, REFRESH, Terminal};
use super::print::format_duration;

/// The live view of one group call.
#[derive(Debug, Clone)]
pub struct GroupScreen {
    group: Value,
    /// The last event, in words.
    notice: String,
    /// `q` was pressed: the next key confirms or cancels leaving.
    confirming: bool,
}

/// Who a participant is, for people: its contact name, else the start of its PeerId.
fn name_of(p: &Value) -> String {
    match p["name"].as_str() {
        Some(name) => sanitize(name),
        None => p["peer_id"].as_str().unwrap_or("?").chars().take(12).collect(),
    }
}

impl GroupScreen {
    /// The view of the group call as the daemon described it (a `GroupInfo` as JSON).
    pub fn new(group: Value) -> Self {
        GroupScreen { group, notice: String::new(), confirming: false }
    }

    /// The daemon's newer view of the group (its media figures kept when the new one has none).
    pub fn update(&mut self, group: Value) {
        let previous = std::mem::replace(&mut self.group, group);
        for figures in ["audio", "video"] {
            if self.group[figures].is_null() && !previous[figures].is_null() {
                self.group[figures] = previous[figures].clone();
            }
        }
    }

    /// An event about the group: the screen takes its group, and its line (who speaks changes
    /// too often to be the notice: the participants' lines show it).
    pub fn event(&mut self, event: &Value) {
        if event["group"].is_object() {
            self.update(event["group"].clone());
        }
        let kind = event["event"].as_str().unwrap_or_default();
        if !matches!(kind, "group.speaking" | "group.dominant")
            && let Some(line) = describe(event)
        {
            self.notice = line;
        }
    }

    /// A note of our own (a request the daemon refused, or why we leave).
    pub fn note(&mut self, text: String) {
        self.notice = text;
    }

    fn me(&self) -> Option<&Value> {
        self.group["participants"].as_array()?.iter().find(|p| p["me"] == true)
    }

    /// Our microphone is muted, our video is on.
    fn our_state(&self) -> (bool, bool) {
        self.me().map_or((false, false), |p| (p["muted"] == true, p["video"] == true))
    }

    /// What `key` asks.
    pub fn key(&mut self, key: KeyEvent) -> KeyAction {
        if key.kind == KeyEventKind::Release {
            return KeyAction::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, KeyCode::Char('c' | 'C')) {
            return KeyAction::Request(Command::GroupLeave);
        }
        if std::mem::take(&mut self.confirming) {
            return match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => KeyAction::Request(Command::GroupLeave),
                _ => KeyAction::None,
            };
        }
        let (muted, video) = self.our_state();
        match key.code {
            KeyCode::Char('m' | 'M') => KeyAction::Request(if muted { Command::Unmute } else { Command::Mute }),
            KeyCode::Char('v' | 'V') => KeyAction::Request(Command::Video { on: !video }),
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => {
                self.confirming = true;
                KeyAction::None
            }
            _ => KeyAction::None,
        }
    }

    /// The screen at `now_ms` (ms since the Unix epoch, for the duration), one string a line,
    /// escape sequences and controls removed.
    pub fn lines(&self, now_ms: u64) -> Vec<String> {
        let g = &self.group;
        let participants = g["participants"].as_array().cloned().unwrap_or_default();
        let others: Vec<&Value> = participants.iter().filter(|p| p["me"] != true).collect();
        let since = g["started_at_ms"].as_u64().map(|t| format!("  {}", format_duration(now_ms.saturating_sub(t) / 1000)));
        let mut lines = vec![format!(
            "hail — group call with {}{}",
            if others.is_empty() { "nobody yet".to_owned() } else { others.iter().map(|p| name_of(p)).collect::<Vec<_>>().join(", ") },
            since.unwrap_or_default()
        )];
        let state = g["state"].as_str().unwrap_or("?").replace('_', " ");
        lines.push(format!("State     {state}{}", g["epoch"].as_u64().map(|e| format!(" (epoch {e})")).unwrap_or_default()));
        lines.push(match (g["emoji_text"].as_str(), g["emoji_failure"].as_str()) {
            (Some(emoji), _) => format!("Emoji     {emoji}  (the same for everyone; new at every join and leave)"),
            (None, Some(failure)) => format!("Emoji     none: {failure}"),
            (None, None) => "Emoji     (once everyone has revealed)".to_owned(),
        });
        let forwarder = g["forwarder"].as_str().and_then(|f| participants.iter().find(|p| p["peer_id"] == f));
        let distrusted = g["audio"]["distrusted_forwarder"].as_str();
        lines.push(match forwarder {
            Some(f) if f["me"] == true => "Media     forwarded by you".to_owned(),
            Some(f) if f["peer_id"].as_str() == distrusted => format!(
                "Media     forwarded by {}: NOT TRUSTED, it delivered a forged frame; we send to and hear everyone directly",
                name_of(f)
            ),
            Some(f) => format!("Media     forwarded by {}", name_of(f)),
            None => "Media     mesh (everyone sends to everyone)".to_owned(),
        });
        lines.push(String::new());
        let audio_of = |id: &Value| {
            g["audio"]["participants"].as_array().and_then(|a| a.iter().find(|x| x["member"] == *id)).cloned()
        };
        let video_of = |id: &Value| {
            g["video"]["participants"].as_array().and_then(|a| a.iter().find(|x| x["member"] == *id)).cloned()
        };
        for p in &others {
            let mut parts = vec![format!("{:<12}", name_of(p)), p["state"].as_str().unwrap_or("?").to_owned()];
            if p["speaking"] == true {
                parts.push("SPEAKING".into());
            }
            parts.push(if p["muted"] == true { "mic muted".into() } else { "mic on".into() });
            parts.push(if p["video"] == true { "video on".into() } else { "video off".into() });
            if let Some(a) = audio_of(&p["peer_id"]) {
                let j = &a["jitter"];
                parts.push(format!(
                    "audio: jitter {:.1} ms, lost {}, concealed {}",
                    j["jitter_ms"].as_f64().unwrap_or(0.0),
                    j["lost"].as_u64().unwrap_or(0),
                    j["concealed"].as_u64().unwrap_or(0)
                ));
            }
            if let Some(v) = video_of(&p["peer_id"]).filter(|v| v["on"] == true) {
                parts.push(format!("video {} fps", v["fps"].as_u64().unwrap_or(0)));
            }
            // Frames the forwarder relayed that this member's signed lists say it never sent.
            let forged = audio_of(&p["peer_id"]).and_then(|a| a["authenticity"]["forged"].as_u64()).unwrap_or(0);
            if forged > 0 {
                parts.push(format!("{forged} FORGED FRAMES"));
            }
            lines.push(format!("  {}", parts.join("  ")));
        }
        let (muted, video) = self.our_state();
        lines.push(format!(
            "You       microphone {}, video {}",
            if muted { "muted" } else { "on" },
            if video { "on" } else { "off" }
        ));
        lines.push(String::new());
        lines.extend(self.notice.lines().map(str::to_owned));
        lines.push(String::new());
        lines.push(if self.confirming {
            "Leave the group call? [y] yes  [any other key] no".to_owned()
        } else {
            format!(
                "[m] {}  [v] video {}  [q] leave",
                if muted { "unmute" } else { "mute" },
                if video { "off" } else { "on" }
            )
        });
        lines.iter().map(|l| strip_escapes(l)).collect()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Follows the group call `group` (as `hail call` started it), on the live view in `term`, until
/// we are out of it: `client` is subscribed to the daemon's events. As the plain-line follower
/// does, it leaves once nobody else is in the call or invited. Exit 0 when anyone joined, else 1.
pub async fn follow(mut client: Client, group: Value, term: Terminal) -> ExitCode {
    let call_id = group["call_id"].as_str().unwrap_or_default().to_owned();
    let (mut beside, term) = match Beside::start(&client, term).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let mut screen = GroupScreen::new(group);
    let mut refresh = tokio::time::interval(REFRESH);
    let (mut leaving, mut anyone_joined) = (false, false);
    let ended: Result<Value, String> = loop {
        let _ = term.draw(&screen.lines(now_ms()));
        tokio::select! {
            event = client.next_event() => match event {
                Ok(event) if event["group"]["call_id"].as_str() == Some(call_id.as_str()) => {
                    screen.event(&event);
                    anyone_joined |= event["event"] == "group.joined";
                    if event["event"] == "group.ended" {
                        break Ok(event);
                    }
                    if !leaving && alone_after(&event) {
                        leaving = true;
                        screen.note(if anyone_joined { "Everyone else left; leaving." } else { "Nobody joined; leaving." }.into());
                        let _ = beside.control.request(&Command::GroupLeave).await;
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(format!("hail: lost the daemon: {e}")),
            },
            Some(key) = beside.keys.recv() => {
                let Event::Key(key) = key else { continue };
                if let KeyAction::Request(request) = screen.key(key) {
                    leaving |= request == Command::GroupLeave;
                    if let Err(e) = beside.control.request(&request).await {
                        screen.note(format!("hail: {e}"));
                    }
                }
            }
            _ = refresh.tick() => {
                if let Ok(status) = beside.control.request(&Command::Status).await
                    && status["group"]["call_id"].as_str() == Some(call_id.as_str())
                {
                    screen.update(status["group"].clone());
                }
            }
            _ = tokio::signal::ctrl_c(), if !leaving => {
                leaving = true;
                let _ = beside.control.request(&Command::GroupLeave).await;
            }
        }
    };
    beside.end(term, ended, |_| anyone_joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Value {
        serde_json::json!({
            "call_id": "00112233445566778899aabbccddeeff",
            "state": "in_call",
            "epoch": 3,
            "started_at_ms": 1_000,
            "emoji_text": "🛸 ufo  🎳 bowling  🪁 kite  🏉 rugby",
            "topology": "forward",
            "forwarder": "12D3carol",
            "participants": [
                {"peer_id": "12D3alice", "me": true, "muted": false, "video": true, "state": "me"},
                {"peer_id": "12D3bob", "name": "bob", "state": "connected", "speaking": true, "video": true},
                {"peer_id": "12D3carol", "name": "carol", "state": "connected", "muted": true},
                {"peer_id": "12D3KooWdavewithoutaname", "state": "invited"}
            ],
            "audio": {"participants": [
                {"member": "12D3bob", "jitter": {"jitter_ms": 3.24, "lost": 2, "concealed": 5}}
            ]},
            "video": {"participants": [{"member": "12D3bob", "on": true, "fps": 29}]}
        })
    }

    fn press(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn the_screen_shows_the_emoji_the_media_and_every_participant() {
        let text = GroupScreen::new(group()).lines(126_000).join("\n");
        for want in [
            "group call with bob, carol, 12D3KooWdave  2m 05s",
            "State     in call (epoch 3)",
            "Emoji     🛸 ufo  🎳 bowling",
            "Media     forwarded by carol",
            "bob           connected  SPEAKING  mic on  video on  audio: jitter 3.2 ms, lost 2, concealed 5  video 29 fps",
            "carol         connected  mic muted  video off",
            "12D3KooWdave  invited",
            "You       microphone on, video on",
            "[m] mute  [v] video off  [q] leave",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        // Figures an event's group lacks are kept; who speaks is not the notice.
        let mut s = GroupScreen::new(group());
        let mut newer = group();
        newer["audio"] = Value::Null;
        s.event(&serde_json::json!({"event": "group.speaking", "group": newer, "peer_id": "12D3bob", "name": "bob", "speaking": true}));
        assert!(s.lines(0).join("\n").contains("jitter 3.2 ms"));
        assert!(!s.lines(0).join("\n").contains("bob speaks"));
        s.event(&serde_json::json!({"event": "group.left", "group": group(), "peer_id": "12D3carol", "name": "carol", "reason": "left"}));
        assert!(s.lines(0).join("\n").contains("carol left the group call"));
        // A forgery: the count beside the member it was made in, and the forwarder not trusted.
        let mut forged = group();
        forged["audio"]["participants"][0]["authenticity"] = serde_json::json!({"verified": 90, "forged": 1, "unverified": 0});
        forged["audio"]["distrusted_forwarder"] = "12D3carol".into();
        let text = GroupScreen::new(forged).lines(0).join("\n");
        assert!(text.contains("video 29 fps  1 FORGED FRAMES"), "{text}");
        assert!(text.contains("Media     forwarded by carol: NOT TRUSTED"), "{text}");
    }

    #[test]
    fn keys_mute_switch_video_and_leave_only_after_a_confirm() {
        let mut s = GroupScreen::new(group());
        assert_eq!(s.key(press('m')), KeyAction::Request(Command::Mute));
        assert_eq!(s.key(press('v')), KeyAction::Request(Command::Video { on: false }));
        let mut muted = group();
        muted["participants"][0]["muted"] = true.into();
        muted["participants"][0]["video"] = false.into();
        s.update(muted);
        assert_eq!(s.key(press('m')), KeyAction::Request(Command::Unmute));
        assert_eq!(s.key(press('v')), KeyAction::Request(Command::Video { on: true }));
        assert_eq!(s.key(press('q')), KeyAction::None);
        assert!(s.lines(0).last().unwrap().starts_with("Leave the group call?"));
        assert_eq!(s.key(press('n')), KeyAction::None);
        assert_eq!(s.key(press('q')), KeyAction::None);
        assert_eq!(s.key(press('y')), KeyAction::Request(Command::GroupLeave));
        assert_eq!(s.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), KeyAction::Request(Command::GroupLeave));
    }

    #[test]
    fn peer_text_cannot_drive_the_terminal() {
        let mut g = group();
        g["participants"][1]["name"] = "bob\u{1b}[2J\u{7}".into();
        let text = GroupScreen::new(g).lines(0).join("\n");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
    }
}
