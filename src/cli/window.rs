//! `hail view`: the call in a native window (winit + softbuffer, X11). The daemon decodes; this
//! viewer takes the pictures over the control socket (`view`, with the group call's members'
//! pictures), composes the call view with the sans-IO [`Compositor`], converts it to XRGB and
//! blits it. In a group call every other member's picture is a tile, ours too while our video is
//! on, and the dominant speaker's is large ([`group_view`]). Keys: `p` picture-in-picture, `v`
//! video, `m` mute, `s` swap (1:1), `q`/Esc hang up (in a group: leave) after a `y` confirm.
//! Closing the window only closes the viewer.
//!
//! What a key does is decided by [`Keys`] (sans-IO, unit-tested); the window only carries it out.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hail::control::{Client, Command};
use hail::home::Home;
use hail::media::video::Frame;
use hail::media::video::compositor::{Compositor, Overlay, Tile};
use hail::media::video::pixel_format::i420_to_xrgb;
use hail::media::view::PictureRole;
use serde_json::Value;
use tokio::sync::mpsc;
use winit::application::ApplicationHandler;
use winit::dpi::{PhysicalPosition, PhysicalSize};
use winit::event::{ElementState, MouseButton, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Window, WindowId, WindowLevel};

use super::out::errln;
use super::{EXIT_OTHER, connect};

/// The window's size at start and when back from picture-in-picture.
pub const NORMAL_SIZE: (u32, u32) = (640, 360);
/// The picture-in-picture window's size.
pub const PIP_SIZE: (u32, u32) = (320, 180);
/// How far from the screen's corner the picture-in-picture window sits.
const PIP_MARGIN: i32 = 16;
/// How often the overlay (emoji, state, stats) is refreshed from the daemon.
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// Two clicks closer than this are a double click.
const DOUBLE_CLICK: Duration = Duration::from_millis(400);

/// What the user asked for, as the window carries it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Into or out of picture-in-picture.
    TogglePip,
    /// Our video on (`true`) or off.
    Video(bool),
    /// Our microphone muted (`true`) or not.
    Mute(bool),
    /// Swap the large and the small picture.
    Swap,
    /// Ask "hang up?" on screen.
    AskHangup,
    /// The user confirmed: hang up and close.
    Hangup,
    /// The question is withdrawn.
    Cancel,
}

/// The keys' meaning, sans-IO: a key and the call's state in, an action out.
#[derive(Debug, Default)]
pub struct Keys {
    confirming: bool,
}

impl Keys {
    /// Whether "hang up?" is on screen.
    pub fn confirming(&self) -> bool {
        self.confirming
    }

    /// What `key` (a lower-case letter, or `"escape"`) does, given whether we are muted and send
    /// video now.
    pub fn press(&mut self, key: &str, muted: bool, video: bool) -> Option<Action> {
        if self.confirming {
            self.confirming = false;
            return Some(if key == "y" { Action::Hangup } else { Action::Cancel });
        }
        match key {
            "p" => Some(Action::TogglePip),
            "v" => Some(Action::Video(!video)),
            "m" => Some(Action::Mute(!muted)),
            "s" => Some(Action::Swap),
            "q" | "escape" => {
                self.confirming = true;
                Some(Action::AskHangup)
            }
            _ => None,
        }
    }
}

/// The overlay for the call in `status` (the `call` member of a `status` reply), with the
/// viewer's own frame rate.
pub fn overlay(call: &Value, remote: Option<(usize, usize)>, shown_fps: f64) -> Overlay {
    let peer = call["contact"].as_str().or_else(|| call["peer_id"].as_str()).unwrap_or("").to_owned();
    let emoji = call["sas"]
        .as_array()
        .map(|sas| sas.iter().filter_map(|e| e["name"].as_str().map(str::to_uppercase)).collect())
        .unwrap_or_default();
    let mut stats = Vec::new();
    if let Some((w, h)) = remote {
        stats.push(format!("{w}x{h}"));
    }
    stats.push(format!("{shown_fps:.0} fps"));
    if let Some(rtt) = call["audio"]["rtt_ms"].as_f64() {
        stats.push(format!("rtt {rtt:.0} ms"));
    }
    if let Some(state) = call["state"].as_str().filter(|s| *s != "active") {
        stats.push(state.to_uppercase());
    }
    Overlay {
        peer: peer.to_uppercase(),
        emoji,
        muted: call["muted"].as_bool().unwrap_or(false),
        video: call["video"].as_bool().unwrap_or(false),
        stats: stats.join(" ").to_uppercase(),
    }
}

/// Whether `group` (the `group` member of a `status` reply) is a group call we are in or joining.
fn in_group(group: &Value) -> bool {
    matches!(group["state"].as_str(), Some("in_call" | "joining"))
}

/// Who a tile of a group call's view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileOf {
    /// A member (its PeerId, as the pictures name it).
    Member(String),
    /// A member whose video is off: no picture.
    Off(String),
    /// Us (the self-view).
    Me,
}

/// A group call's view, from `group` (the `group` member of a `status` reply): a tile for every
/// other participant, in the status's order, then ours while our video is on; which tile is large
/// (the dominant speaker's); and the overlay (who, the group's emoji, our state, the stats with
/// `shown_fps`, the pictures per second per member shown).
pub fn group_view(group: &Value, shown_fps: f64) -> (Vec<(TileOf, String)>, Option<usize>, Overlay) {
    let participants = group["participants"].as_array().cloned().unwrap_or_default();
    let me = participants.iter().find(|p| p["me"] == true);
    let (muted, video) = me.map_or((false, false), |p| (p["muted"] == true, p["video"] == true));
    let mut tiles: Vec<(TileOf, String)> = participants
        .iter()
        .filter(|p| p["me"] != true)
        .map(|p| {
            let id = p["peer_id"].as_str().unwrap_or_default().to_owned();
            let name = p["name"].as_str().map(str::to_owned).unwrap_or_else(|| id.chars().take(10).collect());
            let label = match (p["state"].as_str(), p["muted"] == true) {
                (Some("invited" | "connecting"), _) => format!("{name} ..."),
                (_, true) => format!("{name} MIC OFF"),
                _ => name,
            };
            // Its video off: the tile stays black (not its last picture).
            let of = if p["video"] == true { TileOf::Member(id) } else { TileOf::Off(id) };
            (of, label.to_uppercase())
        })
        .collect();
    if video {
        tiles.push((TileOf::Me, "YOU".into()));
    }
    let large = group["dominant"].as_str().and_then(|d| {
        tiles.iter().position(|(t, _)| matches!(t, TileOf::Member(p) | TileOf::Off(p) if p == d))
    });
    let others = tiles.iter().filter(|(t, _)| *t != TileOf::Me).count();
    let mut stats = vec![format!("{shown_fps:.0} FPS")];
    if group["state"] == "joining" {
        stats.push("JOINING".into());
    }
    let emoji = group["emoji"]
        .as_array()
        .map(|sas| sas.iter().filter_map(|e| e["name"].as_str().map(str::to_uppercase)).collect())
        .unwrap_or_default();
    let overlay = Overlay {
        peer: format!("GROUP CALL, {} MORE", others),
        emoji,
        muted,
        video,
        stats: stats.join(" "),
    };
    (tiles, large, overlay)
}

/// What the network tasks hand the window.
#[derive(Debug, Default)]
struct Shared {
    // Behind Arcs: the window takes a reference out under the lock and composes after it, so the
    // task receiving pictures never waits for a composition.
    remote: Option<Arc<Frame>>,
    local: Option<Arc<Frame>>,
    /// A group call's members' pictures, by PeerId.
    members: BTreeMap<String, Arc<Frame>>,
    call: Value,
    /// The group call (`status`'s `group`), when there is one.
    group: Value,
    /// When the last remote pictures (in a group: any member's) arrived, for the frame rate shown.
    arrivals: std::collections::VecDeque<Instant>,
}

impl Shared {
    fn fps(&self) -> f64 {
        match (self.arrivals.front(), self.arrivals.back()) {
            (Some(a), Some(b)) if self.arrivals.len() > 1 && b > a => {
                (self.arrivals.len() - 1) as f64 / (*b - *a).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[derive(Debug)]
enum Wake {
    Redraw,
    /// The hangup the user confirmed is done: close.
    HungUp,
    Gone(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why no window could be opened, for people.
fn no_display(reason: &str) -> String {
    format!("hail view: cannot open a window: {reason} (hail view needs an X11 display; check DISPLAY)")
}

/// Runs `hail view` against the home's daemon until the window is closed.
pub fn run(runtime: &tokio::runtime::Runtime, home: &Home) -> ExitCode {
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        errln!("{}", no_display("DISPLAY is not set"));
        return ExitCode::from(EXIT_OTHER);
    }
    let event_loop = match std::panic::catch_unwind(|| EventLoop::<Wake>::with_user_event().build()) {
        Ok(Ok(event_loop)) => event_loop,
        Ok(Err(e)) => {
            errln!("{}", no_display(&e.to_string()));
            return ExitCode::from(EXIT_OTHER);
        }
        Err(_) => {
            errln!("{}", no_display("the windowing library failed to start"));
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let (mut pictures, commands) = match runtime.block_on(async { Ok::<_, ExitCode>((connect(home).await?, connect(home).await?)) }) {
        Ok(clients) => clients,
        Err(code) => return code,
    };
    if let Err(e) = runtime.block_on(pictures.view(true)) {
        errln!("hail view: {e}");
        return ExitCode::from(EXIT_OTHER);
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let proxy = event_loop.create_proxy();
    let (actions, actions_rx) = mpsc::unbounded_channel();
    runtime.spawn(receive_pictures(pictures, shared.clone(), proxy.clone()));
    runtime.spawn(drive_call(commands, actions_rx, shared.clone(), proxy));
    let mut app = App {
        shared,
        actions,
        keys: Keys::default(),
        window: None,
        surface: None,
        compositor: None,
        pip: None,
        last_click: None,
        failure: None,
    };
    if let Err(e) = event_loop.run_app(&mut app) {
        errln!("hail view: the window failed: {e}");
        return ExitCode::from(EXIT_OTHER);
    }
    match app.failure {
        Some(reason) => {
            errln!("hail view: {reason}");
            ExitCode::from(EXIT_OTHER)
        }
        None => ExitCode::SUCCESS,
    }
}

async fn receive_pictures(mut client: Client, shared: Arc<Mutex<Shared>>, proxy: EventLoopProxy<Wake>) {
    loop {
        match client.next_picture().await {
            Ok((header, frame)) => {
                let mut s = lock(&shared);
                let shown = match header.role {
                    PictureRole::Remote => {
                        s.remote = Some(Arc::new(frame));
                        true
                    }
                    PictureRole::Member => {
                        let Some(peer) = header.peer_id.clone() else { continue };
                        s.members.insert(peer, Arc::new(frame));
                        true
                    }
                    PictureRole::Local => {
                        s.local = Some(Arc::new(frame));
                        false
                    }
                };
                if shown {
                    let now = Instant::now();
                    s.arrivals.push_back(now);
                    while s.arrivals.len() > 2 && now - s.arrivals[0] > Duration::from_secs(1) {
                        s.arrivals.pop_front();
                    }
                }
                drop(s);
                if proxy.send_event(Wake::Redraw).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = proxy.send_event(Wake::Gone(format!("the daemon's picture stream ended: {e}")));
                return;
            }
        }
    }
}

async fn drive_call(
    mut client: Client,
    mut actions: mpsc::UnboundedReceiver<Action>,
    shared: Arc<Mutex<Shared>>,
    proxy: EventLoopProxy<Wake>,
) {
    let mut tick = tokio::time::interval(STATUS_EVERY);
    loop {
        let command = tokio::select! {
            action = actions.recv() => match action {
                Some(Action::Video(on)) => Command::Video { on },
                Some(Action::Mute(true)) => Command::Mute,
                Some(Action::Mute(false)) => Command::Unmute,
                Some(Action::Hangup) => Command::Hangup,
                Some(_) => continue,
                None => return,
            },
            _ = tick.tick() => Command::Status,
        };
        let result = client.request(&command).await;
        if command == Command::Hangup {
            // Done (or there was no call left to hang up): the window closes either way.
            let _ = proxy.send_event(Wake::HungUp);
            return;
        }
        match result {
            Ok(value) => {
                {
                    let mut s = lock(&shared);
                    if command == Command::Status {
                        s.group = value["group"].clone();
                        let members: Vec<String> = s.group["participants"]
                            .as_array()
                            .map(|p| p.iter().filter_map(|p| p["peer_id"].as_str().map(str::to_owned)).collect())
                            .unwrap_or_default();
                        // Who left takes its picture along.
                        s.members.retain(|peer, _| members.contains(peer));
                    }
                    // A group call's mute and video replies are the group, not a call.
                    if command == Command::Status || value.get("participants").is_none() {
                        let call = if command == Command::Status { value["call"].clone() } else { value };
                        let ended = call["state"].as_str() == Some("ended");
                        s.call = call;
                        if ended && !in_group(&s.group) {
                            s.remote = None;
                            s.local = None;
                        }
                    }
                }
                let _ = proxy.send_event(Wake::Redraw);
            }
            // A refused command (no call to mute) is not the viewer's end.
            Err(hail::control::ClientError::Remote(e)) => tracing::debug!(error = %e.message, "refused"),
            Err(e) => {
                let _ = proxy.send_event(Wake::Gone(format!("lost the daemon: {e}")));
                return;
            }
        }
    }
}

/// Where the window was before picture-in-picture.
#[derive(Debug, Clone, Copy)]
struct Normal {
    size: PhysicalSize<u32>,
    position: Option<PhysicalPosition<i32>>,
}

struct App {
    shared: Arc<Mutex<Shared>>,
    actions: mpsc::UnboundedSender<Action>,
    keys: Keys,
    window: Option<Rc<Window>>,
    surface: Option<softbuffer::Surface<Rc<Window>, Rc<Window>>>,
    compositor: Option<Compositor>,
    /// In picture-in-picture: where to go back to.
    pip: Option<Normal>,
    last_click: Option<Instant>,
    failure: Option<String>,
}

impl App {
    fn toggle_pip(&mut self) {
        let Some(window) = self.window.clone() else { return };
        match self.pip.take() {
            Some(normal) => {
                window.set_window_level(WindowLevel::Normal);
                window.set_decorations(true);
                let _ = window.request_inner_size(normal.size);
                if let Some(p) = normal.position {
                    window.set_outer_position(p);
                }
            }
            None => {
                self.pip = Some(Normal { size: window.inner_size(), position: window.outer_position().ok() });
                window.set_decorations(false);
                window.set_window_level(WindowLevel::AlwaysOnTop);
                let _ = window.request_inner_size(PhysicalSize::new(PIP_SIZE.0, PIP_SIZE.1));
                if let Some(monitor) = window.current_monitor().or_else(|| window.primary_monitor()) {
                    let (origin, size) = (monitor.position(), monitor.size());
                    let x = origin.x + size.width as i32 - PIP_SIZE.0 as i32 - PIP_MARGIN;
                    let y = origin.y + size.height as i32 - PIP_SIZE.1 as i32 - PIP_MARGIN;
                    window.set_outer_position(PhysicalPosition::new(x, y));
                }
            }
        }
        window.request_redraw();
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::TogglePip => self.toggle_pip(),
            Action::Swap => {
                if let Some(c) = self.compositor.as_mut() {
                    c.set_swapped(!c.swapped());
                }
            }
            Action::AskHangup | Action::Cancel => {}
            Action::Video(_) | Action::Mute(_) | Action::Hangup => {
                let _ = self.actions.send(action);
            }
        }
        if let Some(w) = &self.window {
            w.request_redraw();
        }
    }

    fn draw(&mut self) {
        let (Some(window), Some(surface)) = (&self.window, self.surface.as_mut()) else { return };
        let size = window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else { return };
        if surface.resize(w, h).is_err() {
            return;
        }
        let Ok(mut buffer) = surface.buffer_mut() else { return };
        buffer.fill(0);
        let (cw, ch) = ((size.width & !1) as usize, (size.height & !1) as usize);
        let swapped = self.compositor.as_ref().is_some_and(Compositor::swapped);
        if self.compositor.as_ref().is_none_or(|c| c.size() != (cw, ch)) {
            self.compositor = Compositor::new(cw, ch);
            if let Some(c) = self.compositor.as_mut() {
                c.set_swapped(swapped);
            }
        }
        if let Some(compositor) = &self.compositor
            && in_group(&lock(&self.shared).group)
        {
            let s = lock(&self.shared);
            let members = s.members.len().max(1) as f64;
            let (tiles, large, mut overlay) = group_view(&s.group, s.fps() / members);
            let pictures: Vec<Option<Arc<Frame>>> = tiles
                .iter()
                .map(|(of, _)| match of {
                    TileOf::Member(peer) => s.members.get(peer).cloned(),
                    TileOf::Off(_) => None,
                    TileOf::Me => s.local.clone(),
                })
                .collect();
            drop(s);
            if self.keys.confirming() {
                overlay.stats = "LEAVE? Y TO CONFIRM".into();
            }
            let tiles: Vec<Tile<'_>> =
                tiles.iter().zip(&pictures).map(|((_, label), p)| Tile { picture: p.as_deref(), label }).collect();
            let view = compositor.compose_group(&tiles, large, &overlay);
            let _ = i420_to_xrgb(&view, &mut buffer, size.width as usize);
        } else if let Some(compositor) = &self.compositor {
            let s = lock(&self.shared);
            let mut overlay = overlay(&s.call, s.remote.as_ref().map(|f| (f.width, f.height)), s.fps());
            let (remote, local) = (s.remote.clone(), s.local.clone());
            drop(s);
            if self.keys.confirming() {
                overlay.stats = "HANG UP? Y TO CONFIRM".into();
            }
            // Our video off: no self-view.
            let local = local.filter(|_| overlay.video);
            let view = compositor.compose(remote.as_deref(), local.as_deref(), &overlay);
            let _ = i420_to_xrgb(&view, &mut buffer, size.width as usize);
        }
        let _ = buffer.present();
    }
}

impl ApplicationHandler<Wake> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let attributes = Window::default_attributes()
            .with_title("hail view")
            .with_inner_size(PhysicalSize::new(NORMAL_SIZE.0, NORMAL_SIZE.1));
        let window = match event_loop.create_window(attributes) {
            Ok(w) => Rc::new(w),
            Err(e) => {
                self.failure = Some(format!("cannot open a window: {e}"));
                event_loop.exit();
                return;
            }
        };
        let surface = softbuffer::Context::new(window.clone())
            .and_then(|context| softbuffer::Surface::new(&context, window.clone()));
        match surface {
            Ok(surface) => self.surface = Some(surface),
            Err(e) => {
                self.failure = Some(format!("cannot draw in the window: {e}"));
                event_loop.exit();
                return;
            }
        }
        window.request_redraw();
        self.window = Some(window);
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, event: Wake) {
        match event {
            Wake::Redraw => {
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            Wake::HungUp => event_loop.exit(),
            Wake::Gone(reason) => {
                self.failure = Some(reason);
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::RedrawRequested => self.draw(),
            WindowEvent::Resized(_) => {
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed && !event.repeat => {
                let key = match &event.logical_key {
                    Key::Character(c) => c.to_lowercase(),
                    Key::Named(NamedKey::Escape) => "escape".into(),
                    _ => return,
                };
                let (muted, video) = {
                    let s = lock(&self.shared);
                    if in_group(&s.group) {
                        let (_, _, o) = group_view(&s.group, 0.0);
                        (o.muted, o.video)
                    } else {
                        (s.call["muted"].as_bool().unwrap_or(false), s.call["video"].as_bool().unwrap_or(false))
                    }
                };
                if let Some(action) = self.keys.press(&key, muted, video) {
                    // A confirmed hangup closes the window once the daemon has done it (HungUp).
                    self.act(action);
                }
            }
            WindowEvent::MouseInput { state: ElementState::Pressed, button: MouseButton::Left, .. } => {
                let now = Instant::now();
                let double = self.last_click.is_some_and(|t| now - t < DOUBLE_CLICK);
                self.last_click = if double { None } else { Some(now) };
                if double && self.pip.is_some() {
                    self.toggle_pip();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_toggle_and_hang_up_only_after_a_confirm() {
        let mut keys = Keys::default();
        assert_eq!(keys.press("p", false, true), Some(Action::TogglePip));
        assert_eq!(keys.press("m", false, true), Some(Action::Mute(true)));
        assert_eq!(keys.press("m", true, true), Some(Action::Mute(false)));
        assert_eq!(keys.press("v", false, true), Some(Action::Video(false)));
        assert_eq!(keys.press("s", false, true), Some(Action::Swap));
        assert_eq!(keys.press("x", false, true), None);
        // q asks; anything but y withdraws the question.
        assert_eq!(keys.press("q", false, true), Some(Action::AskHangup));
        assert!(keys.confirming());
        assert_eq!(keys.press("p", false, true), Some(Action::Cancel));
        assert!(!keys.confirming());
        assert_eq!(keys.press("escape", false, true), Some(Action::AskHangup));
        assert_eq!(keys.press("y", false, true), Some(Action::Hangup));
    }

    #[test]
    fn a_group_call_is_a_tile_per_other_member_and_ours_with_the_dominant_speaker_large() {
        let group = serde_json::json!({
            "state": "in_call", "dominant": "12D3carol",
            "emoji": [{"emoji":"🧭","name":"compass"},{"emoji":"🏆","name":"trophy"}],
            "participants": [
                {"peer_id": "12D3alice", "me": true, "muted": true, "video": true, "state": "me"},
                {"peer_id": "12D3bob", "name": "bob", "state": "connected"},
                {"peer_id": "12D3carol", "name": "carol", "state": "connected", "muted": true, "video": true},
                {"peer_id": "12D3KooWdavewithoutaname", "state": "invited"}
            ]
        });
        let (tiles, large, o) = group_view(&group, 24.6);
        let member = |p: &str| TileOf::Member(p.into());
        assert_eq!(
            tiles,
            [
                (TileOf::Off("12D3bob".into()), "BOB".into()),
                (member("12D3carol"), "CAROL MIC OFF".into()),
                (TileOf::Off("12D3KooWdavewithoutaname".into()), "12D3KOOWDA ...".into()),
                (TileOf::Me, "YOU".into()),
            ]
        );
        assert_eq!(large, Some(1), "carol speaks");
        assert_eq!(o.peer, "GROUP CALL, 3 MORE");
        assert_eq!(o.emoji, ["COMPASS", "TROPHY"]);
        assert!(o.muted && o.video);
        assert_eq!(o.stats, "25 FPS");
        // Our video off: no self tile; nobody speaking: no large tile.
        let mut group = group;
        group["participants"][0]["video"] = false.into();
        group["dominant"] = Value::Null;
        let (tiles, large, o) = group_view(&group, 0.0);
        assert_eq!((tiles.len(), large, o.video), (3, None, false));
        assert!(in_group(&group) && !in_group(&Value::Null));
    }

    #[test]
    fn the_overlay_reads_the_call() {
        let call = serde_json::json!({
            "contact": "bob", "state": "active", "muted": true, "video": true,
            "sas": [{"emoji":"🧭","name":"compass"},{"emoji":"🏆","name":"trophy"}],
            "audio": {"rtt_ms": 3.4}
        });
        let o = overlay(&call, Some((320, 180)), 29.6);
        assert_eq!(o.peer, "BOB");
        assert_eq!(o.emoji, ["COMPASS", "TROPHY"]);
        assert!(o.muted && o.video);
        assert_eq!(o.stats, "320X180 30 FPS RTT 3 MS");
        let o = overlay(&Value::Null, None, 0.0);
        assert_eq!((o.peer.as_str(), o.stats.as_str()), ("", "0 FPS"));
    }
}
