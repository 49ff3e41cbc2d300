//! `hail daemon`: takes the home's lock, loads the identity and the database, runs the node loop and
//! the control server until asked to stop, then shuts down in order.

use std::future::Future;
use std::path::{Path, PathBuf};

use libp2p::PeerId;
use tokio::task::JoinHandle;

use super::{CallSettings, Node, NodeConfig};
use crate::config::{AudioSection, CallsSection, ConfigFile, ConfigFileError, NetworkSection, VideoSection};
use crate::control::server::{self, ControlServer};
use crate::discovery::{ConfigError, Discovery, NetworkConfig, NetworkError};
use crate::home::{Home, HomeError, HomeLock};
use crate::identity::{Identity, IdentityError};
use crate::store::{Database, SledStore, StoreError};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The home is unusable or already taken.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The identity key is unreadable or damaged.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The database is unreadable, damaged or too new.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// A network setting (file or flag) is invalid.
    #[error("{0} (in {1} or the daemon's flags)")]
    Setting(ConfigError, std::path::PathBuf),
    /// The network could not start (a listen address in use, no multicast for mDNS).
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A call setting (file or flag) is invalid.
    #[error("{0} (in {1} or the daemon's flags)")]
    CallSetting(crate::config::SettingError, std::path::PathBuf),
    /// The call endpoint could not start.
    #[error(transparent)]
    Endpoint(#[from] crate::transport::endpoint::EndpointError),
    /// The control socket could not be created.
    #[error("cannot create the control socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What `hail daemon`'s flags set; each overrides the same setting in `HOME/config.toml`.
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// Network settings from flags.
    pub network: NetworkSection,
    /// Call settings from flags.
    pub calls: CallsSection,
    /// Audio settings from flags.
    pub audio: AudioSection,
    /// Video settings from flags.
    pub video: VideoSection,
}

/// A running daemon: the node loop and the control server, on their own tasks. What `hail daemon`
/// runs, and what a program embeds to run a node in-process.
#[derive(Debug)]
pub struct Daemon {
    node: Node,
    peer_id: PeerId,
    socket: PathBuf,
    node_task: JoinHandle<()>,
    server_task: JoinHandle<()>,
    _lock: HomeLock,
}

impl Daemon {
    /// Takes the home's lock, loads identity, config and database, starts the network, the node loop
    /// and the control server. When this returns, the control socket answers.
    pub async fn start(home: Home, options: DaemonOptions) -> Result<Daemon, DaemonError> {
        home.create()?;
        let lock = home.lock()?;
        if let Some(old) = home.shadowed_config() {
            tracing::warn!(
                read = %home.config_path().display(),
                ignored = %old.display(),
                "two config files: the one in the config folder is read, the older one in the home is not; merge them and remove the older"
            );
        }
        let DaemonSettings { network, calls } = DaemonSettings::load(&home.config_path(), options)?;
        let (identity, created) = Identity::load_or_create(home.dir())?;
        if created {
            tracing::info!(peer_id = %identity.peer_id(), "created a new identity");
        }
        let db = Database::open(SledStore::open(&home.database_path())?)?;
        let peer_id = identity.peer_id();
        let discovery = Discovery::start(identity.keypair(), network)?;
        let endpoint = crate::transport::endpoint::bind(calls.media_listen)?;
        let config = NodeConfig { identity, home: home.dir().to_owned(), calls };
        let (node, node_loop) = Node::new(config, db, discovery, endpoint);

        let socket = home.socket_path();
        let listener = server::bind(&socket).map_err(|source| DaemonError::Socket { path: socket.clone(), source })?;
        let server = ControlServer::new(listener, node.clone(), &peer_id.to_base58());
        let node_task = tokio::spawn(node_loop.run());
        let server_task = tokio::spawn(server.run());
        tracing::info!(%peer_id, socket = %socket.display(), "hail daemon ready");
        Ok(Daemon { node, peer_id, socket, node_task, server_task, _lock: lock })
    }

    /// A handle to the node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The control socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Stops accepting control connections, removes the socket, lets the node loop finish the
    /// request in hand and flush, then releases the home.
    pub async fn stop(self) {
        self.server_task.abort();
        let _ = self.server_task.await;
        let _ = std::fs::remove_file(&self.socket);
        self.node.shutdown().await;
        let _ = self.node_task.await;
        tracing::info!("stopped");
    }
}

impl DaemonOptions {
    /// A node that talks only over loopback: libp2p and the call endpoint on 127.0.0.1, mDNS off,
    /// no bootstrap peers, audio from `input` to `output` (e.g. `silence` and `null`). For demos,
    /// benchmarks and tests: it sends nothing beyond this machine.
    pub fn loopback(input: &str, output: &str) -> Self {
        DaemonOptions {
            network: NetworkSection {
                listen: Some(vec!["/ip4/127.0.0.1/tcp/0".into()]),
                bootstrap: Some(vec![]),
                mdns: Some(false),
                dht_protocol: None,
                dht_mode: None,
                relay: None,
                external_addresses: None,
                limits: None,
            },
            calls: CallsSection { media_listen: Some("127.0.0.1:0".into()), ..Default::default() },
            audio: AudioSection { input: Some(input.into()), output: Some(output.into()), bitrate_kbps: None, processing: None },
            video: VideoSection::default(),
        }
    }
}

/// What a daemon starts with: the config file overridden by the flags, every value checked.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Discovery and signalling.
    pub network: NetworkConfig,
    /// Calls, with their audio and video.
    pub calls: CallSettings,
}

impl DaemonSettings {
    /// Reads `config` (a missing file means every default), overrides it with `options` and checks
    /// every value. Touches nothing else: no home, no lock, no network. The first step of
    /// [`Daemon::start`], and all of `hail daemon --check-config`.
    pub fn load(config: &Path, options: DaemonOptions) -> Result<DaemonSettings, DaemonError> {
        let file = ConfigFile::load(config)?;
        let network = file
            .network
            .overridden_by(options.network)
            .apply()
            .map_err(|e| DaemonError::Setting(e, config.to_owned()))?;
        let setting = |e| DaemonError::CallSetting(e, config.to_owned());
        let defaults = CallSettings::default();
        let audio = file.audio.overridden_by(options.audio).apply(&defaults.audio).map_err(setting)?;
        let video = file.video.overridden_by(options.video).apply(&defaults.video).map_err(setting)?;
        let calls = file.calls.overridden_by(options.calls).apply(audio, video).map_err(setting)?;
        Ok(DaemonSettings { network, calls })
    }
}

/// Runs a daemon on `home` until `shutdown` completes. Returns once everything is flushed and the
/// control socket is removed.
pub async fn run_daemon(
    home: Home,
    options: DaemonOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let daemon = Daemon::start(home, options).await?;
    shutdown.await;
    tracing::info!("shutting down");
    daemon.stop().await;
    Ok(())
}
