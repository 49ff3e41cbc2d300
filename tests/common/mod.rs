//! The test harness: real `hail` processes on real homes, driven through the real binary and socket.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The `hail` binary cargo built for these tests.
pub const HAIL: &str = env!("CARGO_BIN_EXE_hail");

/// The `hail daemon` flags of a test daemon: loopback only, no mDNS, silent audio.
pub const LOOPBACK_FLAGS: &[&str] =
    &["--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0", "--media-listen", "127.0.0.1:0", "--audio-in", "silence", "--audio-out", "null"];

/// How long a daemon may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A `hail daemon` child process; killed when dropped.
pub struct TestDaemon {
    pub home: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl TestDaemon {
    /// Starts a daemon on `home` (loopback only, mDNS off) and waits until its control socket answers.
    pub fn start(home: &Path) -> TestDaemon {
        Self::start_with(home, &[])
    }

    /// Starts a daemon with extra `hail daemon` flags (after the loopback-only, no-mDNS defaults).
    pub fn start_with(home: &Path, extra: &[&str]) -> TestDaemon {
        match Self::try_start(home, extra) {
            Ok(d) => d,
            Err(log) => panic!("daemon on {} did not start:\n{log}", home.display()),
        }
    }

    /// Starts a daemon; on failure returns what it printed. Tests never run mDNS or listen outside
    /// loopback unless they are inside a network namespace they made (see `tests/netns.rs`).
    pub fn try_start(home: &Path, extra: &[&str]) -> Result<TestDaemon, String> {
        Self::try_start_cmd(
            home,
            &[],
            &[LOOPBACK_FLAGS, extra].concat(),
        )
    }

    /// Starts `prefix… hail --home HOME daemon flags…` (prefix: e.g. `ip netns exec NS`).
    pub fn try_start_cmd(home: &Path, prefix: &[&str], flags: &[&str]) -> Result<TestDaemon, String> {
        std::fs::create_dir_all(home.parent().unwrap()).unwrap();
        let log = home.with_extension(format!("daemon-{}.log", unique()));
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend([HAIL, "--home", home.to_str().unwrap(), "daemon", "--log", "hail=debug"]);
        argv.extend(flags);
        let child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn hail daemon");
        let mut daemon = TestDaemon { home: home.to_owned(), child: Some(child), log };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                daemon.child = None;
                return Err(format!("exited with {status}: {}", daemon.log_text()));
            }
            let probe = hail(home, &["status"]);
            if probe.status.success() {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                return Err(format!("not answering after {START_TIMEOUT:?}: {}", daemon.log_text()));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// What the daemon logged so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Runs `hail --home HOME args…`.
    pub fn hail(&self, args: &[&str]) -> Out {
        hail(&self.home, args)
    }

    /// Runs `hail --json args…` and checks that it fails with exit code 1, the error `code`
    /// and a human message containing `text`.
    pub fn refuses(&self, args: &[&str], code: &str, text: &str) {
        let mut with_json = vec!["--json"];
        with_json.extend_from_slice(args);
        let out = self.hail(&with_json);
        let reason = out.fails_with(1);
        assert!(reason.contains(text), "{args:?}: {reason}");
        assert_eq!(out.json()["err"]["code"], code, "{args:?}");
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the exit (bounded).
    pub fn terminate(mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                c.kill().unwrap();
                panic!("daemon ignored SIGTERM for 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The result of one `hail` command.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "hail failed ({}): {}{}", self.status, self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts failure with `code` and returns stderr.
    #[track_caller]
    pub fn fails_with(&self, code: i32) -> &str {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit {code}; stdout: {} stderr: {}",
            self.stdout,
            self.stderr
        );
        assert_eq!(self.stderr.lines().count(), 1, "one-line reason expected: {:?}", self.stderr);
        &self.stderr
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `hail --home HOME args…` with a bounded wait.
pub fn hail(home: &Path, args: &[&str]) -> Out {
    let out: Output = Command::new(HAIL)
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("HAIL_HOME")
        .stdin(Stdio::null())
        .output()
        .expect("run hail");
    Out {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh temporary folder; the home goes in a subfolder so the daemon log can sit beside it.
pub fn temp_home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    (dir, home)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Another node's PeerId, from a fixed seed.
pub fn peer_id(seed: u8) -> String {
    hail::identity::Identity::from_seed([seed; 32]).peer_id().to_base58()
}

/// Another node's card, from a fixed seed.
pub fn card(seed: u8, name: &str) -> String {
    let id = hail::identity::Identity::from_seed([seed; 32]);
    hail::identity::Card { peer_id: id.peer_id(), name: hail::name::Name::parse(name).unwrap(), addresses: vec![] }
        .to_string()
}

/// Polls `hail --json status` until `pred` holds on its `ok` object (at most 15 s).
#[track_caller]
pub fn wait_status(daemon: &TestDaemon, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    wait_status_within(daemon, what, Duration::from_secs(15), pred)
}

/// [`wait_status`] with a deadline of its own, for a state that takes longer than 15 s by design.
pub fn wait_status_within(
    daemon: &TestDaemon,
    what: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let status = daemon.hail(&["--json", "status"]).json()["ok"].clone();
        if pred(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "waited {} s for {what}; status: {status}", limit.as_secs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `hail` command running in the background (e.g. `hail call`, which follows the call).
pub struct Background {
    child: Option<Child>,
}

impl Background {
    /// Starts `hail --home HOME args…`.
    pub fn start(home: &Path, args: &[&str]) -> Background {
        let child = Command::new(HAIL)
            .arg("--home")
            .arg(home)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hail");
        Background { child: Some(child) }
    }

    /// Sends it SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status().expect("run kill");
        assert!(status.success(), "kill -INT {pid}");
    }

    /// Waits (at most 30 s) for it to exit; returns its output.
    #[track_caller]
    pub fn finish(mut self) -> Out {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "background hail did not exit within 30 s; it printed:\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        Out {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two running daemons that have each other as contacts: "alice" (a) and "bob" (b).
pub fn pair_of_contacts(dir: &Path, a_flags: &[&str], b_flags: &[&str]) -> (TestDaemon, TestDaemon) {
    let a = TestDaemon::start_with(&dir.join("alice"), a_flags);
    let b = TestDaemon::start_with(&dir.join("bob"), b_flags);
    let card = |d: &TestDaemon, name: &str| {
        d.hail(&["--json", "id", "--name", name]).json()["ok"]["card"].as_str().unwrap().to_owned()
    };
    let (card_a, card_b) = (card(&a, "alice"), card(&b, "bob"));
    a.hail(&["contacts", "add", "bob", &card_b]).ok();
    b.hail(&["contacts", "add", "alice", &card_a]).ok();
    (a, b)
}

/// The pictures of a Y4M a daemon wrote, once its size has settled (the daemon completes the file
/// when the call ends there).
pub fn read_y4m(path: &Path) -> Vec<hail::media::video::Frame> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last_len = 0;
    loop {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len > 0 && len == last_len {
            let mut r = hail::media::video::y4m::Y4mReader::open(path).unwrap();
            let mut frames = Vec::new();
            while let Ok(Some(f)) = r.next_frame() {
                frames.push(f);
            }
            return frames;
        }
        last_len = len;
        assert!(Instant::now() < deadline, "{} never settled", path.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}
