//! The node's configuration file, `HOME/config.toml`. Every key is optional; flags given to
//! `hail daemon` override the file. Unknown keys are an error, so a typo is caught rather than ignored.
//!
//! ```toml
//! [network]
//! listen = ["/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"]
//! bootstrap = ["/ip4/198.51.100.7/tcp/4001/p2p/12D3KooW…"]   # or ["ipfs"]
//! mdns = true
//! dht_protocol = "/hail/kad/1.0.0"
//! dht_mode = "auto"                                            # auto | server | client
//! ```

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::discovery::{ConfigError, DhtMode, NetworkConfig};

/// What `config.toml` may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The `[network]` section.
    #[serde(default)]
    pub network: NetworkSection,
}

/// The `[network]` section: raw text, checked by [`NetworkSection::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Addresses to listen on.
    pub listen: Option<Vec<String>>,
    /// Bootstrap peers (multiaddrs ending in `/p2p/<PeerId>`) or presets (`ipfs`).
    pub bootstrap: Option<Vec<String>>,
    /// mDNS on the LAN.
    pub mdns: Option<bool>,
    /// The Kademlia protocol id.
    pub dht_protocol: Option<String>,
    /// Kademlia server or client mode.
    pub dht_mode: Option<DhtMode>,
}

impl NetworkSection {
    /// Overrides `self` with whatever `flags` sets.
    pub fn overridden_by(mut self, flags: NetworkSection) -> Self {
        if flags.listen.is_some() {
            self.listen = flags.listen;
        }
        if flags.bootstrap.is_some() {
            self.bootstrap = flags.bootstrap;
        }
        self.mdns = flags.mdns.or(self.mdns);
        self.dht_protocol = flags.dht_protocol.or(self.dht_protocol);
        self.dht_mode = flags.dht_mode.or(self.dht_mode);
        self
    }

    /// Checks every value and fills in the defaults.
    pub fn apply(&self) -> Result<NetworkConfig, ConfigError> {
        NetworkConfig::from_text(
            self.listen.as_deref(),
            self.bootstrap.as_deref(),
            self.mdns,
            self.dht_protocol.as_deref(),
            self.dht_mode,
        )
    }
}

/// Why the configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not valid TOML, or has unknown keys or wrong types.
    #[error("{path} is not a valid hail configuration: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said (with line and column).
        message: String,
    },
}

impl ConfigFile {
    /// Reads the file; a missing file is the empty configuration.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(source) => return Err(ConfigFileError::Io { path: path.to_owned(), source }),
        };
        toml::from_str(&text).map_err(|e| {
            // One line: "line L, column C: what", for a one-line error on stderr.
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: ")
            });
            let what = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            ConfigFileError::Syntax { path: path.to_owned(), message: format!("{}{what}", at.unwrap_or_default()) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[network]\nmdsn = false\n").unwrap();
        let e = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("mdsn"), "{e}");
        std::fs::write(&path, "[network]\nmdns = \"yes\"\n").unwrap();
        assert!(ConfigFile::load(&path).is_err());
        std::fs::write(&path, "[network]\nmdns = false\ndht_mode = \"server\"\n").unwrap();
        let c = ConfigFile::load(&path).unwrap();
        assert_eq!(c.network.mdns, Some(false));
        assert_eq!(c.network.dht_mode, Some(DhtMode::Server));
        assert_eq!(ConfigFile::load(&dir.path().join("absent.toml")).unwrap(), ConfigFile::default());
    }

    #[test]
    fn flags_override_the_file() {
        let file =
            NetworkSection { mdns: Some(true), listen: Some(vec!["/ip4/0.0.0.0/tcp/1".into()]), ..Default::default() };
        let flags = NetworkSection { mdns: Some(false), ..Default::default() };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.mdns, Some(false));
        assert_eq!(merged.listen.unwrap(), ["/ip4/0.0.0.0/tcp/1"]);
    }
}
