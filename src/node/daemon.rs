//! `hail daemon`: takes the home's lock, loads the identity and the database, runs the node loop and
//! the control server until asked to stop, then shuts down in order.

use std::future::Future;

use super::{Node, NodeConfig};
use crate::control::server::{self, ControlServer};
use crate::home::{Home, HomeError};
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
    /// The control socket could not be created.
    #[error("cannot create the control socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Runs a daemon on `home` until `shutdown` completes. Returns once everything is flushed and the
/// control socket is removed.
pub async fn run_daemon(home: Home, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    home.create()?;
    let _lock = home.lock()?;
    let (identity, created) = Identity::load_or_create(home.dir())?;
    if created {
        tracing::info!(peer_id = %identity.peer_id(), "created a new identity");
    }
    let db = Database::open(SledStore::open(&home.database_path())?)?;
    let peer_id = identity.peer_id().to_base58();
    let (node, node_loop) = Node::new(
        NodeConfig {
            identity,
            home: home.dir().to_owned(),
        },
        db,
    );
    let node_task = tokio::spawn(node_loop.run());

    let socket = home.socket_path();
    let listener = server::bind(&socket).map_err(|source| DaemonError::Socket {
        path: socket.clone(),
        source,
    })?;
    let server = ControlServer::new(listener, node.clone(), &peer_id);
    tracing::info!(%peer_id, socket = %socket.display(), "hail daemon ready");

    tokio::select! {
        () = server.run() => {}
        () = shutdown => tracing::info!("shutting down"),
    }
    // The server future is dropped: no new connections. Connection tasks still alive get
    // `shutting_down` once the loop is gone. Remove the socket first so no client sees a dead one.
    let _ = std::fs::remove_file(&socket);
    node.shutdown().await;
    let _ = node_task.await;
    tracing::info!("stopped");
    Ok(())
}
