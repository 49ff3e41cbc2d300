//! `hail daemon` as a service: `--check-config`, the platform's folders for the default home and
//! its config, and life under systemd (readiness and stopping over `NOTIFY_SOCKET`, a log for the
//! journal).

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{HAIL, TestDaemon, hail, temp_home};

/// Makes `command` run as a user whose `$HOME` is `user_home`, with no XDG variables and no
/// `HAIL_HOME`: the default home.
fn as_user<'c>(command: &'c mut Command, user_home: &Path) -> &'c mut Command {
    command.env("HOME", user_home).env_remove("HAIL_HOME").env_remove("XDG_DATA_HOME").env_remove("XDG_CONFIG_HOME")
}

/// `hail args…` as that user.
fn hail_as_user(user_home: &Path, args: &[&str]) -> common::Out {
    let out = as_user(Command::new(HAIL).args(args), user_home).stdin(Stdio::null()).output().unwrap();
    common::Out {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hail [--home HOME] daemon` on loopback, with no input or output (set them on the result).
fn daemon_command(home: Option<&Path>) -> Command {
    let mut command = Command::new(HAIL);
    if let Some(home) = home {
        command.arg("--home").arg(home);
    }
    command
        .args([&["daemon"][..], LOOPBACK].concat())
        .env_remove("HAIL_HOME")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The flags that keep a test daemon on loopback, silent.
const LOOPBACK: &[&str] = common::LOOPBACK_FLAGS;

/// A daemon child, killed if the test ends early.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// Waits (at most 20 s) until `answers` says the daemon serves its control socket.
    fn wait_until_answering(&mut self, answers: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers() {
            assert!(self.0.try_wait().unwrap().is_none(), "the daemon exited");
            assert!(Instant::now() < deadline, "the daemon does not answer");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, then the exit status (at most 15 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon ignored SIGTERM for 15 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn check_config_accepts_a_valid_file_and_starts_nothing() {
    let (_dir, home) = temp_home();
    let out = hail(&home, &["daemon", "--check-config"]);
    let text = out.ok();
    assert!(text.contains("config.toml: no such file") && text.contains("default"), "{text}");
    assert!(!home.exists(), "checking does not create the home");

    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), "[network]\nmdns = false\n[calls]\nring_timeout_secs = 30\n").unwrap();
    let text = hail(&home, &["daemon", "--check-config"]).ok().to_owned();
    assert!(text.contains(&format!("{}: valid", home.join("config.toml").display())), "{text}");
    let left: Vec<_> = std::fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["config.toml"], "no identity, database, lock or socket was made");

    // Beside a running daemon on the same home: no lock is needed, the daemon is undisturbed.
    let daemon = TestDaemon::start(&home);
    hail(&home, &["daemon", "--check-config"]).ok();
    daemon.hail(&["status"]).ok();
}

#[test]
fn check_config_refuses_a_bad_file_or_flag_with_the_place_and_exit_2() {
    let (_dir, home) = temp_home();
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("config.toml");
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("[network]\nmdsn = false\n", &[], &["line 2", "mdsn"]),
        ("[calls]\nring_timeout_secs = 0\n", &[], &["ring_timeout_secs 0 is out of range"]),
        ("[video]\nmax_size = \"huge\"\n", &[], &["invalid video max_size \"huge\""]),
        ("", &["--ring-timeout", "9999"], &["ring_timeout_secs 9999"]),
        ("[calls]\ngroup_topology = \"sfu\"\n", &[], &["line 2", "sfu"]),
    ];
    for (text, flags, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let mut args = vec!["daemon", "--check-config"];
        args.extend_from_slice(flags);
        let out = hail(&home, &args);
        let reason = out.fails_with(2);
        for e in *expected {
            assert!(reason.contains(e), "{text:?} {flags:?}: {reason}");
        }
        assert!(reason.contains(&config.display().to_string()), "the message names the file: {reason}");
        // The daemon itself refuses the same file with the same reason.
        let started = hail(&home, &[&["daemon"][..], LOOPBACK, flags].concat());
        assert!(started.fails_with(4).contains(expected[0]), "{started:?}");
    }

    // --config: that file is the one checked, the home's is not read.
    std::fs::write(&config, "[network]\nmdsn = false\n").unwrap();
    let other = home.with_extension("other.toml");
    std::fs::write(&other, "[video]\nmax_size = \"640x360\"\n").unwrap();
    let text = hail(&home, &["daemon", "--check-config", "--config", other.to_str().unwrap()]).ok().to_owned();
    assert!(text.contains(&format!("{}: valid", other.display())), "{text}");
}

#[test]
fn the_default_home_is_the_xdg_data_folder_and_its_config_the_xdg_config_folder() {
    let user = tempfile::tempdir().unwrap();
    let data = user.path().join(".local/share/hail");
    let (config_dir, legacy) = (user.path().join(".config/hail"), data.join("config.toml"));
    let checked = |out: &common::Out| out.ok().lines().next().unwrap_or_default().to_owned();

    let first = checked(&hail_as_user(user.path(), &["daemon", "--check-config"]));
    assert!(first.starts_with(&config_dir.join("config.toml").display().to_string()), "{first}");

    // A home from before XDG configs: its own config.toml is still the one read.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(&legacy, "[calls]\nring_timeout_secs = 0\n").unwrap();
    let out = hail_as_user(user.path(), &["daemon", "--check-config"]);
    assert!(out.fails_with(2).contains(&legacy.display().to_string()), "{out:?}");

    // Both: the config folder's wins, and the older one is pointed out.
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(config_dir.join("config.toml"), "[network]\nmdns = false\n").unwrap();
    let out = hail_as_user(user.path(), &["daemon", "--check-config"]);
    let text = out.ok();
    assert!(text.starts_with(&format!("{}: valid", config_dir.join("config.toml").display())), "{text}");
    assert!(text.contains(&format!("note: {} is not read", legacy.display())), "{text}");

    // The daemon on the default home keeps its data where it always has: ~/.local/share/hail.
    std::fs::remove_file(&legacy).unwrap();
    let mut daemon = Daemon(as_user(&mut daemon_command(None), user.path()).spawn().unwrap());
    daemon.wait_until_answering(|| hail_as_user(user.path(), &["status"]).status.success());
    assert!(data.join("identity.key").is_file() && data.join("control.sock").exists() && data.join("db").is_dir());
    assert!(daemon.terminate().success());
}

/// A pseudo-terminal: (the side we read, the side the child writes to).
fn pseudo_terminal() -> (std::fs::File, OwnedFd) {
    let (mut reader, mut writer) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the integers we pass; the null pointers ask
    // for no name, default terminal settings and window size.
    let rc = unsafe {
        libc::openpty(&mut reader, &mut writer, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened for us and nothing else owns them.
    unsafe { (std::fs::File::from_raw_fd(reader), OwnedFd::from_raw_fd(writer)) }
}

/// Runs a daemon whose stderr is a terminal (named in `JOURNAL_STREAM`, as systemd would, or not);
/// returns everything it wrote from start to a SIGTERM stop.
fn daemon_log_on_a_terminal(home: &Path, journal_stream_is_the_terminal: bool) -> String {
    let (mut terminal, child_side) = pseudo_terminal();
    let meta = std::fs::metadata(format!("/proc/self/fd/{}", child_side.as_raw_fd())).unwrap();
    let mut command = daemon_command(Some(home));
    command.args(["--log", "info"]).env_remove("RUST_LOG").stderr(Stdio::from(child_side));
    if journal_stream_is_the_terminal {
        command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    } else {
        command.env_remove("JOURNAL_STREAM");
    }
    let mut daemon = Daemon(command.spawn().unwrap());
    drop(command); // our copy of the terminal's child side: the reader sees the end once the daemon exits
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        // Ends with EIO once the daemon, the last holder of the other side, is gone.
        while let Ok(n) = terminal.read(&mut buf) {
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });
    daemon.wait_until_answering(|| hail(home, &["status"]).status.success());
    assert!(daemon.terminate().success());
    reader.join().unwrap()
}

#[test]
fn under_systemd_the_log_carries_priorities_for_the_journal_and_no_colours() {
    let (_dir, home) = temp_home();
    // The same terminal without JOURNAL_STREAM: colours and times, so the check below can tell.
    let on_terminal = daemon_log_on_a_terminal(&home, false);
    assert!(on_terminal.contains("\x1b["), "a terminal gets colours: {on_terminal:?}");
    assert!(on_terminal.contains("hail daemon ready"), "{on_terminal:?}");

    let journal = daemon_log_on_a_terminal(&home, true);
    let lines: Vec<&str> = journal.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert!(lines.iter().any(|l| l.starts_with("<6>") && l.contains("hail daemon ready")), "{journal:?}");
    assert!(lines.iter().all(|l| l.starts_with('<')), "every line has its priority: {journal:?}");
    assert!(!journal.contains('\x1b'), "no colours in the journal: {journal:?}");
    assert!(
        !lines.iter().any(|l| l.get(3..7).is_some_and(|y| y.chars().all(|c| c.is_ascii_digit()))),
        "no time stamps (the journal has its own): {journal:?}"
    );
}

#[test]
fn under_systemd_the_daemon_says_when_it_is_ready_and_when_it_stops() {
    let (dir, home) = temp_home();
    let socket_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut daemon = Daemon(daemon_command(Some(&home)).env("NOTIFY_SOCKET", &socket_path).spawn().unwrap());
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means ready: the control socket answers at once, no polling needed.
    hail(&home, &["status"]).ok();

    // SAFETY: a signal to our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let n = notify.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(daemon.terminate().success());
    assert!(!home.join("control.sock").exists(), "the socket is removed on the way out");
}
