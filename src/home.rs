//! The node's home: one folder per node holding its identity, database, control socket and config.
//! Several nodes run on one machine by giving each its own home (`--home DIR` or `HAIL_HOME`).
//!
//! Without either, the home is the platform's data folder and the config file lives in the
//! platform's config folder (`directories`; on Linux the XDG folders: `~/.local/share/hail/` and
//! `~/.config/hail/config.toml`). Before hail followed XDG for the config, the default home held
//! its own `config.toml`; that file keeps being read as long as the new one does not exist, so an
//! existing setup keeps working (docs/user-guide.md says how to move it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the home, below `--home` and above the default.
pub const HOME_ENV: &str = "HAIL_HOME";

/// The configuration file's name, in a home or in the platform's config folder.
pub const CONFIG_FILE: &str = "config.toml";

/// Longest path a unix socket can have on Linux (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A node's home folder, and where its configuration file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
    config: PathBuf,
    /// An older config file that exists but is not read (the newer place has one too).
    shadowed_config: Option<PathBuf>,
}

/// Why the home could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// No home was given and the platform has no data directory (no `$HOME`).
    #[error("no home folder: pass --home DIR or set {HOME_ENV}")]
    NoDefault,
    /// The folder could not be created or read.
    #[error("cannot use {path} as the node's home: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The folder (or its `db/`) belongs to another user: whoever owns it can swap the identity key,
    /// the database or the control socket under us.
    #[error(
        "{path} belongs to another user (uid {owner}; this is uid {uid}): a node's home must be your own; pass a --home you own"
    )]
    NotOwned {
        /// The folder.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective user id.
        uid: u32,
    },
    /// Another daemon already runs on this home.
    #[error("another hail daemon{} already runs with home {home}; stop it first, or pass a different --home",
        .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The home.
        home: PathBuf,
        /// The process holding the lock, when it wrote its pid.
        pid: Option<u32>,
    },
    /// The control socket's path would not fit in a unix socket address.
    #[error(
        "the home path is too long for a control socket ({len} bytes, at most {MAX_SOCKET_PATH}): choose a shorter --home"
    )]
    PathTooLong {
        /// Length of the socket path.
        len: usize,
    },
}

impl Home {
    /// The home at `dir` (not created yet), with its config file `dir/config.toml`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Home { config: dir.join(CONFIG_FILE), dir, shadowed_config: None }
    }

    /// The home chosen by `--home`, else `HAIL_HOME`, else the platform's folders
    /// ([`Home::platform`]).
    pub fn resolve(flag: Option<PathBuf>) -> Result<Self, HomeError> {
        if let Some(dir) = flag {
            return Ok(Home::new(dir));
        }
        if let Some(dir) = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
            return Ok(Home::new(dir));
        }
        directories::ProjectDirs::from("", "", "hail")
            .map(|d| Home::platform(d.data_dir(), d.config_dir()))
            .ok_or(HomeError::NoDefault)
    }

    /// The default home: the data in `data_dir`, the config in `config_dir/config.toml`. When only
    /// the older `data_dir/config.toml` exists, that one is read; when both do, the newer wins
    /// and the older is reported by [`Home::shadowed_config`].
    pub fn platform(data_dir: &Path, config_dir: &Path) -> Self {
        let mut home = Home::new(data_dir);
        let platform = config_dir.join(CONFIG_FILE);
        if platform == home.config {
            return home;
        }
        match (platform.exists(), home.config.exists()) {
            (false, true) => {}
            (true, true) => home.shadowed_config = Some(std::mem::replace(&mut home.config, platform)),
            (_, false) => home.config = platform,
        }
        home
    }

    /// The same home with its configuration read from `file` (`hail daemon --config FILE`).
    pub fn with_config(self, file: impl Into<PathBuf>) -> Self {
        Home { config: file.into(), shadowed_config: None, ..self }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The control socket.
    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The sled database folder.
    pub fn database_path(&self) -> PathBuf {
        self.dir.join("db")
    }

    /// The configuration file (it need not exist: then every setting has its default).
    pub fn config_path(&self) -> PathBuf {
        self.config.clone()
    }

    /// An older configuration file that exists but is not read, because the platform's config
    /// folder has one too: the daemon warns about it.
    pub fn shadowed_config(&self) -> Option<&Path> {
        self.shadowed_config.as_deref()
    }

    /// The daemon's lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("daemon.lock")
    }

    /// Creates the folder (mode 0700) and its database folder `db/` (0700) if needed, and checks
    /// the socket path fits. A folder owned by another user is refused ([`HomeError::NotOwned`]); a
    /// home that others may write to loses those permissions (`chmod go-w`), a `db/` that others may
    /// read or enter loses them all (`chmod go-rwx`), each with a warning in the log.
    pub fn create(&self) -> Result<(), HomeError> {
        let io = |source| HomeError::Io { path: self.dir.clone(), source };
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir).map_err(io)?;
        let len = self.socket_path().as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(HomeError::PathTooLong { len });
        }
        make_private(&self.dir, 0o022)?;
        let db = self.database_path();
        match fs::DirBuilder::new().mode(0o700).create(&db) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(HomeError::Io { path: db, source: e });
            }
            _ => {}
        }
        make_private(&db, 0o077)
    }

    /// Takes the one-daemon-per-home lock, writing our pid into it. The lock is released when the
    /// returned guard is dropped, or by the kernel when the process dies (even by `kill -9`).
    pub fn lock(&self) -> Result<HomeLock, HomeError> {
        let path = self.lock_path();
        let io = |source| HomeError::Io { path: path.clone(), source };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(HomeError::Locked { home: self.dir.clone(), pid: text.trim().parse().ok() });
            }
            return Err(io(err));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
        Ok(HomeLock { _file: file })
    }
}

/// Refuses a folder owned by another user; removes the `forbidden` permission bits from ours, with a
/// warning.
fn make_private(path: &Path, forbidden: u32) -> Result<(), HomeError> {
    let io = |source| HomeError::Io { path: path.to_owned(), source };
    let meta = fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Err(io(io::Error::new(io::ErrorKind::NotADirectory, "not a folder")));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        return Err(HomeError::NotOwned { path: path.to_owned(), owner: meta.uid(), uid });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & forbidden != 0 {
        let private = mode & !forbidden;
        fs::set_permissions(path, fs::Permissions::from_mode(private)).map_err(io)?;
        tracing::warn!(
            path = %path.display(),
            was = %format!("{mode:o}"),
            now = %format!("{private:o}"),
            "other users had access to this folder of the node's home; that access is removed"
        );
    }
    Ok(())
}

/// Held while a daemon runs on a home.
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_home_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        home.create().unwrap();
        let first = home.lock().unwrap();
        match home.lock() {
            Err(HomeError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        assert!(home.lock().is_ok(), "the lock is free again once dropped");
    }

    #[test]
    fn the_default_home_reads_the_platform_config_and_an_older_home_config_only_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (data, config) = (dir.path().join("share/hail"), dir.path().join("config/hail"));
        let home = Home::platform(&data, &config);
        assert_eq!((home.dir(), home.config_path()), (data.as_path(), config.join("config.toml")));

        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("config.toml"), "").unwrap();
        let old = Home::platform(&data, &config);
        assert_eq!(old.config_path(), data.join("config.toml"), "an existing setup keeps its config");
        assert_eq!(old.shadowed_config(), None);

        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(config.join("config.toml"), "").unwrap();
        let both = Home::platform(&data, &config);
        assert_eq!(both.config_path(), config.join("config.toml"), "the platform's place wins");
        assert_eq!(both.shadowed_config(), Some(data.join("config.toml").as_path()));

        let chosen = both.with_config(dir.path().join("other.toml"));
        assert_eq!((chosen.config_path(), chosen.shadowed_config()), (dir.path().join("other.toml"), None));
        assert_eq!(Home::new(&data).config_path(), data.join("config.toml"), "an explicit home keeps its own");
    }

    #[test]
    fn a_home_too_deep_for_a_socket_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("x".repeat(120)));
        assert!(matches!(home.create(), Err(HomeError::PathTooLong { .. })));
    }
}
