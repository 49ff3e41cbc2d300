//! `hail call`'s live view in a terminal: one screen redrawn in place with the call's emoji, state,
//! duration, path, RTT, audio and video figures and both sides' microphone and video, and keys
//! for them: `m` mute, `v` video, `q` or Esc hang up (after a `y`), Ctrl-C hang up at once.
//!
//! [`CallScreen`] is the view itself, without IO: what it shows ([`CallScreen::lines`]) and what a
//! key asks of the daemon ([`CallScreen::key`]). [`follow`] is its driver: the terminal (raw mode,
//! the alternate screen, given back on every way out), the call's events, a status poll each second
//! for the figures, and the keys. Used only when stdout is a terminal and `--json` is not given;
//! otherwise `hail call` prints the plain lines scripts read ([`super::follow`]).

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, style, terminal};
use hail::control::{Client, Command};
use hail::node::CallInfo;
use hail::peer_text::{sanitize, strip_escapes};
use serde_json::Value;

use super::follow::describe;
use super::out::{errln, outln};
use super::print::{format_duration, state_label, verification_label, who};
use super::{EXIT_OTHER, EXIT_REFUSED};

/// How often the figures are fetched.
pub(super) const REFRESH: Duration = Duration::from_secs(1);
/// How often the key thread looks whether the view is still open.
const KEY_POLL: Duration = Duration::from_millis(100);
/// Keys waiting for the view (a held key repeats; more than this is dropped).
const KEY_QUEUE: usize = 32;

/// The live view of one call: what it shows and what its keys ask.
#[derive(Debug, Clone)]
pub struct CallScreen {
    info: CallInfo,
    /// The last event, in words (may be several lines).
    notice: String,
    /// `q` was pressed: the next key confirms or cancels the hang-up.
    confirming: bool,
}

/// What a key asks.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyAction {
    /// Nothing (the screen may have changed: a prompt opened or closed).
    None,
    /// Send this to the daemon.
    Request(Command),
}

impl CallScreen {
    /// The view of a call as the daemon described it.
    pub fn new(info: CallInfo) -> Self {
        CallScreen { info, notice: String::new(), confirming: false }
    }

    /// The call as last described.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// The daemon's newer view of the call (from an event or a status poll; figures missing
    /// from it are kept).
    pub fn update(&mut self, info: CallInfo) {
        let previous = std::mem::replace(&mut self.info, info);
        let i = &mut self.info;
        i.audio = i.audio.take().or(previous.audio);
        i.video_stats = i.video_stats.take().or(previous.video_stats);
        i.path = i.path.take().or(previous.path);
    }

    /// An event about the call: the screen takes its call and its line.
    pub fn event(&mut self, event: &Value) {
        if let Ok(info) = serde_json::from_value::<CallInfo>(event["call"].clone()) {
            self.update(info);
        }
        if let Some(line) = describe(event) {
            self.notice = line;
        }
    }

    /// A note of our own (a request the daemon refused).
    pub fn note(&mut self, text: String) {
        self.notice = text;
    }

    /// What `key` asks.
    pub fn key(&mut self, key: KeyEvent) -> KeyAction {
        if key.kind == KeyEventKind::Release {
            return KeyAction::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && matches!(key.code, KeyCode::Char('c' | 'C')) {
            return KeyAction::Request(Command::Hangup);
        }
        if std::mem::take(&mut self.confirming) {
            return match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => KeyAction::Request(Command::Hangup),
                _ => KeyAction::None,
            };
        }
        match key.code {
            KeyCode::Char('m' | 'M') => {
                KeyAction::Request(if self.info.muted { Command::Unmute } else { Command::Mute })
            }
            KeyCode::Char('v' | 'V') => KeyAction::Request(Command::Video { on: !self.info.video }),
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => {
                self.confirming = true;
                KeyAction::None
            }
            _ => KeyAction::None,
        }
    }

    /// The screen, one string a line, escape sequences and controls removed (peer text cannot
    /// drive the terminal).
    pub fn lines(&self) -> Vec<String> {
        let c = &self.info;
        let mut lines = vec![format!("hail — call with {}", who(c))];
        let duration =
            if c.answered_at_ms.is_some() { format!("  {}", format_duration(c.duration_secs)) } else { String::new() };
        lines.push(format!("State     {}{duration}", state_label(c)));
        match &c.sas_text {
            Some(sas) => lines.push(format!("Emoji     {sas}  (verified: {})", verification_label(c.verification))),
            None => lines.push("Emoji     (after the handshake)".to_owned()),
        }
        if let Some(p) = &c.path {
            lines.push(format!(
                "Path      {} via {}, rtt {:.0} ms",
                p.kind.replace('_', " "),
                sanitize(&p.remote),
                p.rtt_ms
            ));
        }
        if let Some(a) = &c.audio {
            let j = &a.receive.jitter;
            lines.push(format!(
                "Audio     sent {} kbps, received {} kbps; rtt {:.0} ms, jitter {:.1} ms, lost {}, concealed {}",
                a.send_bitrate / 1000,
                a.receive_bitrate / 1000,
                a.rtt_ms,
                j.jitter_ms,
                j.lost,
                j.concealed
            ));
        }
        if let Some(v) = &c.video_stats {
            let ours =
                if v.sending { format!("{}x{} {} fps", v.send.width, v.send.height, v.send_fps) } else { "off".into() };
            let theirs = if v.remote_sending && v.remote_paused_for_bandwidth {
                "paused by the peer (no bandwidth)".into()
            } else if v.remote_sending {
                format!("{}x{} {} fps, freezes {}", v.receive.width, v.receive.height, v.receive_fps, v.receive.freezes)
            } else {
                "paused".into()
            };
            lines.push(format!("Video     sent {ours}; received {theirs}"));
        }
        let on = |b: bool| if b { "on" } else { "off" };
        lines.push(format!("You       microphone {}, video {}", if c.muted { "muted" } else { "on" }, on(c.video)));
        lines.push(format!(
            "Peer      microphone {}, video {}",
            if c.remote_muted { "muted" } else { "on" },
            if c.remote_video { "on" } else { "paused" }
        ));
        lines.push(String::new());
        lines.extend(self.notice.lines().map(str::to_owned));
        lines.push(String::new());
        lines.push(if self.confirming {
            "Hang up? [y] yes  [any other key] no".to_owned()
        } else {
            let mute = if c.muted { "unmute" } else { "mute" };
            format!("[m] {mute}  [v] video {}  [q] hang up", if c.video { "off" } else { "on" })
        });
        lines.iter().map(|l| strip_escapes(l)).collect()
    }
}

/// The terminal in raw mode on the alternate screen, given back when dropped (also on a panic).
pub struct Terminal;

impl Terminal {
    /// Takes the terminal over (raw mode, the alternate screen, no cursor).
    pub fn enter() -> io::Result<Terminal> {
        terminal::enable_raw_mode()?;
        let t = Terminal;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(t)
    }

    /// Draws `lines` (a screen's, escapes removed) from the top, cut at the terminal's width.
    pub(super) fn draw(&self, lines: &[String]) -> io::Result<()> {
        let width = terminal::size().map_or(80, |(w, _)| usize::from(w).max(1));
        let mut out = io::stdout().lock();
        queue!(out, cursor::MoveTo(0, 0))?;
        for (row, line) in lines.iter().enumerate() {
            // Wide characters (the emoji) take two columns: cut by columns, roughly.
            let shown: String = line
                .chars()
                .scan(0, |cols, ch| {
                    *cols += if (ch as u32) >= 0x1100 { 2 } else { 1 };
                    (*cols <= width).then_some(ch)
                })
                .collect();
            let row = u16::try_from(row).unwrap_or(u16::MAX);
            queue!(
                out,
                cursor::MoveTo(0, row),
                style::Print(shown),
                terminal::Clear(terminal::ClearType::UntilNewLine)
            )?;
        }
        queue!(out, terminal::Clear(terminal::ClearType::FromCursorDown))?;
        out.flush()
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// Reads keys on a thread of its own (crossterm's reads block) until `open` goes false.
fn read_keys(open: Arc<AtomicBool>, keys: tokio::sync::mpsc::Sender<Event>) {
    while open.load(Ordering::Relaxed) {
        match crossterm::event::poll(KEY_POLL) {
            Ok(true) => match crossterm::event::read() {
                Ok(e) => {
                    let _ = keys.try_send(e);
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// What a live view runs beside its screen: a second connection to the daemon for its requests
/// and status polls (the first one carries the events), and the thread reading keys.
pub(super) struct Beside {
    /// For requests and status polls.
    pub control: Client,
    /// The keys pressed.
    pub keys: tokio::sync::mpsc::Receiver<Event>,
    open: Arc<AtomicBool>,
    reader: io::Result<std::thread::JoinHandle<()>>,
}

impl Beside {
    /// Connects again to `client`'s daemon and starts reading keys; on failure gives `term`
    /// back to the terminal, says why and returns the exit code.
    pub(super) async fn start(client: &Client, term: Terminal) -> Result<(Beside, Terminal), ExitCode> {
        let control = match Client::connect(client.socket_path()).await {
            Ok(c) => c,
            Err(e) => {
                drop(term);
                errln!("hail: {e}");
                return Err(ExitCode::from(EXIT_OTHER));
            }
        };
        let open = Arc::new(AtomicBool::new(true));
        let (key_tx, keys) = tokio::sync::mpsc::channel(KEY_QUEUE);
        let reader = {
            let open = open.clone();
            std::thread::Builder::new().name("hail-keys".into()).spawn(move || read_keys(open, key_tx))
        };
        Ok((Beside { control, keys, open, reader }, term))
    }

    /// The view is over (`ended`: the last event, or why it stopped): the keys stop, `term` goes
    /// back to the terminal, the last event's plain line is printed; 0 when `succeeded` says the
    /// call or group was joined, else 1 (2 for a lost daemon).
    pub(super) fn end(self, term: Terminal, ended: Result<Value, String>, succeeded: impl FnOnce(&Value) -> bool) -> ExitCode {
        self.open.store(false, Ordering::Relaxed);
        drop(term);
        if let Ok(handle) = self.reader {
            let _ = handle.join();
        }
        match ended {
            Ok(event) => {
                if let Some(line) = describe(&event) {
                    outln!("{line}");
                }
                if succeeded(&event) { ExitCode::SUCCESS } else { ExitCode::from(EXIT_REFUSED) }
            }
            Err(message) => {
                errln!("{message}");
                ExitCode::from(EXIT_OTHER)
            }
        }
    }
}

/// Follows the call `info` placed, on the live view in `term`, until it ends: `client` is
/// subscribed to the daemon's events.
pub async fn follow(mut client: Client, info: CallInfo, term: Terminal) -> ExitCode {
    let call_id = info.call_id.to_string();
    let (mut beside, term) = match Beside::start(&client, term).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let mut screen = CallScreen::new(info);
    let mut refresh = tokio::time::interval(REFRESH);
    let mut hanging_up = false;
    let ended: Result<Value, String> = loop {
        let _ = term.draw(&screen.lines());
        tokio::select! {
            event = client.next_event() => match event {
                Ok(event) if event["call"]["call_id"].as_str() == Some(call_id.as_str()) => {
                    screen.event(&event);
                    if event["event"] == "call.ended" {
                        break Ok(event);
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(format!("hail: lost the daemon: {e}")),
            },
            Some(key) = beside.keys.recv() => {
                let Event::Key(key) = key else { continue };
                if let KeyAction::Request(request) = screen.key(key) {
                    hanging_up |= request == Command::Hangup;
                    if let Err(e) = beside.control.request(&request).await {
                        screen.note(format!("hail: {e}"));
                    }
                }
            }
            _ = refresh.tick() => {
                if let Ok(status) = beside.control.status().await
                    && let Some(call) = status.call
                    && call.call_id.to_string() == call_id
                {
                    screen.update(call);
                }
            }
            _ = tokio::signal::ctrl_c(), if !hanging_up => {
                hanging_up = true;
                let _ = beside.control.request(&Command::Hangup).await;
            }
        }
    };
    let answered = screen.info().answered_at_ms.is_some();
    beside.end(term, ended, |event| answered || event["call"]["answered_at_ms"].is_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallInfo {
        serde_json::from_value(serde_json::json!({
            "call_id": "00112233445566778899aabbccddeeff",
            "direction": "outgoing",
            "peer_id": "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo",
            "contact": "bob",
            "unknown": false,
            "state": "active",
            "sas_text": "🐶 🍕 🚀 🎸",
            "verification": "unverified",
            "video": true,
            "remote_video": false,
            "remote_muted": false,
            "started_at_ms": 0,
            "answered_at_ms": 1000,
            "duration_secs": 125,
            "muted": false,
        }))
        .unwrap()
    }

    fn press(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    #[test]
    fn the_screen_shows_emoji_state_duration_and_both_sides_switches() {
        let text = CallScreen::new(call()).lines().join("\n");
        for want in [
            "call with bob",
            "active  2m 05s",
            "🐶 🍕 🚀 🎸  (verified: no)",
            "You       microphone on, video on",
            "Peer      microphone on, video paused",
            "[m] mute",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
    }

    #[test]
    fn keys_mute_switch_video_and_hang_up_only_after_a_confirm() {
        let mut s = CallScreen::new(call());
        assert_eq!(s.key(press('m')), KeyAction::Request(Command::Mute));
        assert_eq!(s.key(press('v')), KeyAction::Request(Command::Video { on: false }));
        s.update(CallInfo { muted: true, video: false, ..call() });
        assert_eq!(s.key(press('m')), KeyAction::Request(Command::Unmute));
        assert_eq!(s.key(press('v')), KeyAction::Request(Command::Video { on: true }));
        assert!(s.lines().join("\n").contains("microphone muted"));
        // q asks; anything but y cancels; q then y hangs up; Esc asks too.
        assert_eq!(s.key(press('q')), KeyAction::None);
        assert!(s.lines().last().unwrap().starts_with("Hang up?"));
        assert_eq!(s.key(press('n')), KeyAction::None);
        assert!(!s.lines().last().unwrap().starts_with("Hang up?"));
        assert_eq!(s.key(press('q')), KeyAction::None);
        assert_eq!(s.key(press('y')), KeyAction::Request(Command::Hangup));
        assert_eq!(s.key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)), KeyAction::None);
        assert_eq!(s.key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)), KeyAction::Request(Command::Hangup));
        assert_eq!(
            s.key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            KeyAction::Request(Command::Hangup)
        );
    }

    #[test]
    fn peer_text_cannot_drive_the_terminal() {
        let mut s = CallScreen::new(call());
        s.note("peer says \u{1b}[2J\u{1b}[Hhello\u{7}".into());
        let text = s.lines().join("\n");
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
        assert!(text.contains("hello"));
    }
}
