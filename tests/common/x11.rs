//! A private X server (Xvfb) for window tests and benches, with screenshots (`xwd`) and window
//! geometry (`xwininfo`), keys through `xdotool`. No display here is a failure, not a skip: the
//! set-up (scripts/deps.sh) installs Xvfb and the tools.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hail::media::video::Frame;
use hail::media::video::pattern::{self, Stamp};
use hail::media::video::pixel_format::{rgb24_to_i420, xwd_to_rgb24};

/// The screen Xvfb gives.
pub const SCREEN: (i32, i32) = (1280, 720);

/// An Xvfb on its own display number, killed when dropped.
pub struct Xvfb {
    child: Child,
    /// `:N`.
    pub display: String,
}

/// Where a window is and how large, in screen pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

fn tool(display: &str, program: &str, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new(program)
        .args(args)
        .env("DISPLAY", display)
        .output()
        .map_err(|e| format!("{program} cannot run ({e}): the test set-up (scripts/deps.sh) installs it"))?;
    if !out.status.success() {
        return Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

impl Xvfb {
    /// Starts Xvfb at 1280x720x24 on a display number it picks itself (`-displayfd`: it writes
    /// the number once it is ready, so two servers started at once never share one, and a
    /// number someone else holds is never mistaken for ours), and waits (at most 10 s) until it
    /// answers.
    pub fn start() -> Xvfb {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("Xvfb")
            // -noreset: by default the server resets when its last client leaves, and a viewer
            // connecting during that reset is refused ("Failed to open connection to X
            // server"; the window bench failed so once, after the readiness check's client left).
            .args(["-displayfd", "1", "-screen", "0", "1280x720x24", "-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("Xvfb cannot run ({e}): install it (scripts/deps.sh does: apt-get install xvfb)")
            });
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
        let number: u32 = match (read, line.trim().parse()) {
            (Ok(_), Ok(n)) => n,
            _ => {
                let _ = child.kill();
                panic!("Xvfb did not say which display it took (read {line:?})");
            }
        };
        let x = Xvfb { child, display: format!(":{number}") };
        let deadline = Instant::now() + Duration::from_secs(10);
        while x.run("xwininfo", &["-root"]).is_err() {
            assert!(Instant::now() < deadline, "Xvfb on {} did not answer within 10 s", x.display);
            std::thread::sleep(Duration::from_millis(100));
        }
        x
    }

    /// Runs an X tool against this display.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Vec<u8>, String> {
        tool(&self.display, program, args)
    }

    /// The first window named `name` (waits at most 20 s for it to be mapped).
    pub fn wait_window(&self, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(out) = self.run("xdotool", &["search", "--onlyvisible", "--name", name])
                && let Some(id) = String::from_utf8_lossy(&out).lines().next()
            {
                return id.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "no window named {name:?} appeared within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Where window `id` is.
    pub fn geometry(&self, id: &str) -> Geometry {
        let out = self.run("xwininfo", &["-id", id]).unwrap();
        let text = String::from_utf8_lossy(&out);
        let get = |key: &str| -> i32 {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().parse().unwrap()))
                .unwrap_or_else(|| panic!("xwininfo says no {key}:\n{text}"))
        };
        Geometry {
            x: get("Absolute upper-left X:"),
            y: get("Absolute upper-left Y:"),
            width: get("Width:"),
            height: get("Height:"),
        }
    }

    /// Waits (at most 10 s) until window `id`'s geometry satisfies `pred`.
    #[track_caller]
    pub fn wait_geometry(&self, id: &str, what: &str, pred: impl Fn(Geometry) -> bool) -> Geometry {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let g = self.geometry(id);
            if pred(g) {
                return g;
            }
            assert!(Instant::now() < deadline, "window {id} never got {what}: {g:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether window `id` asks for a frame and title bar (its Motif hints: a window manager draws
    /// what they say; with none running, as under Xvfb, the hint itself is what can be checked).
    pub fn decorated(&self, id: &str) -> bool {
        let out = self.run("xprop", &["-id", id, "_MOTIF_WM_HINTS"]).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let values: Vec<&str> = text.split('=').nth(1).unwrap_or("").split(',').map(str::trim).collect();
        match values.as_slice() {
            // flags, functions, decorations, …: decorations count when flag 0x2 is set.
            [flags, _, decorations, ..] => {
                let n = |v: &str| u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap_or(0);
                n(flags) & 2 == 0 || n(decorations) != 0
            }
            _ => true,
        }
    }

    /// Types `key` into window `id` (focused first, then XTEST).
    pub fn key(&self, id: &str, key: &str) {
        self.run("xdotool", &["windowfocus", "--sync", id]).unwrap();
        // The window's toolkit takes the focus change before keys count for it.
        std::thread::sleep(Duration::from_millis(150));
        self.run("xdotool", &["key", key]).unwrap();
    }

    /// Window `id`'s picture now, as I420 (the even part of it).
    pub fn window_shot(&self, id: &str) -> Frame {
        let dump = self.run("xwd", &["-id", id, "-silent"]).unwrap();
        let (w, h, rgb) = xwd_to_rgb24(&dump).unwrap();
        let (aw, ah) = (w & !1, h & !1);
        let mut cut = Vec::with_capacity(aw * ah * 3);
        for row in 0..ah {
            cut.extend_from_slice(&rgb[row * w * 3..(row * w + aw) * 3]);
        }
        rgb24_to_i420(&cut, aw, ah).unwrap()
    }

    /// The screen now, as I420 (the even part of `area`).
    pub fn screenshot(&self, area: Geometry) -> Frame {
        let dump = self.run("xwd", &["-root", "-silent"]).unwrap();
        let (w, _, rgb) = xwd_to_rgb24(&dump).unwrap();
        let (aw, ah) = ((area.width & !1) as usize, (area.height & !1) as usize);
        let mut cut = Vec::with_capacity(aw * ah * 3);
        for row in 0..ah {
            let start = ((area.y as usize + row) * w + area.x as usize) * 3;
            cut.extend_from_slice(&rgb[start..start + aw * 3]);
        }
        rgb24_to_i420(&cut, aw, ah).unwrap()
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `hail view` process, killed when dropped.
pub struct Viewer(pub Child);

impl Viewer {
    pub fn start(d: &crate::common::TestDaemon, display: &str) -> Viewer {
        let child = Command::new(crate::common::HAIL)
            .arg("--home")
            .arg(&d.home)
            .arg("view")
            .env("DISPLAY", display)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hail view");
        Viewer(child)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stamp in the screenshot of `area` that `pred` accepts, waiting (at most 10 s) for one.
#[track_caller]
pub fn stamp_in(x: &Xvfb, area: Geometry, what: &str, pred: impl Fn(Stamp) -> bool) -> Stamp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shot = x.screenshot(area);
        if let Some(s) = pattern::read(&shot).filter(|s| pred(*s)) {
            return s;
        }
        if Instant::now() > deadline {
            // The luma of the last shot, for a person to look at.
            let path = std::env::temp_dir().join(format!("hail-window-{}.pgm", std::process::id()));
            let mut pgm = format!("P5 {} {} 255\n", shot.width, shot.height).into_bytes();
            pgm.extend(&shot.y);
            let _ = std::fs::write(&path, pgm);
            panic!("no pattern stamp for {what} at {area:?} (last read {:?}; screenshot: {})", pattern::read(&shot), path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
