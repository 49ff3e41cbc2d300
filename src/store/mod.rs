//! The node's memory: contacts, call history and settings.
//!
//! Two layers. [`Store`] is a small key-value trait (named trees, atomic durable batches) with a sled
//! implementation for the daemon and an in-memory one for unit tests. [`Database`] sits on top of any
//! `Store`: the schema version check, the records and their rules (unique names, one contact per
//! PeerId) live there once, whatever the backend.

pub(crate) mod contact;
mod database;
mod history;
mod memory;
mod sled_store;

pub use contact::{Contact, Verification};
pub use database::{Database, SCHEMA_VERSION};
pub use history::{CallDirection, CallOutcome, CallRecord, GroupCallPeer};
pub use memory::MemoryStore;
pub use sled_store::SledStore;

use libp2p_identity::PeerId;

use crate::name::Name;

/// A named group of keys. Each maps to one sled tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// Schema version and other facts about the database itself.
    Meta,
    /// Contacts, keyed by name.
    Contacts,
    /// Call history, keyed by start time then call id.
    Calls,
    /// Settings, keyed by setting name.
    Settings,
}

impl Tree {
    /// Every tree, in a fixed order.
    pub const ALL: [Tree; 4] = [Tree::Meta, Tree::Contacts, Tree::Calls, Tree::Settings];

    /// The tree's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Contacts => "contacts",
            Tree::Calls => "calls",
            Tree::Settings => "settings",
        }
    }
}

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One change in an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set `key` to `value`.
    Put(Vec<u8>, Vec<u8>),
    /// Remove `key` (no error if absent).
    Delete(Vec<u8>),
}

/// Storage for [`Database`]: named trees of bytes.
///
/// `apply` is atomic within one tree and durable when it returns: an acknowledged write survives
/// `kill -9` and power loss (as far as the filesystem's fsync goes).
pub trait Store: Send + 'static {
    /// The value at `key`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry of `tree`, in key order.
    fn scan(&self, tree: Tree) -> Result<Entries, StoreError>;
    /// The last `limit` entries of `tree`, in key order.
    fn scan_last(&self, tree: Tree, limit: usize) -> Result<Entries, StoreError>;
    /// Applies all of `batch` to `tree` or none of it, then makes it durable.
    fn apply(&self, tree: Tree, batch: Vec<Write>) -> Result<(), StoreError>;
}

/// What went wrong with the database. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (disk full, permissions, I/O error).
    #[error("database error: {0}")]
    Backend(String),
    /// The database could not be opened because its files are damaged. Nothing was changed.
    #[error(
        "the database at {path} is damaged ({reason}); it was left untouched. Restore it from a backup, \
         or move it away to start with an empty one"
    )]
    CorruptFiles {
        /// The database folder.
        path: String,
        /// What the engine reported.
        reason: String,
    },
    /// A record could not be decoded. Nothing was changed.
    #[error("the database holds a damaged record ({what}); it was left untouched")]
    Corrupt {
        /// Which record.
        what: String,
    },
    /// The database was written by a newer hail.
    #[error(
        "the database was written by a newer hail (schema version {found}; this build understands up to \
         {supported}); upgrade hail to use it"
    )]
    NewerSchema {
        /// The schema version on disk.
        found: u32,
        /// The newest schema this build understands.
        supported: u32,
    },
    /// No contact has that name.
    #[error("no contact named '{0}' (see `hail contacts list`)")]
    NoSuchContact(Name),
    /// A contact already has that name.
    #[error("a contact named '{0}' already exists; choose another name or rename it first")]
    NameTaken(Name),
    /// That PeerId is already a contact under another name.
    #[error("{peer} is already your contact '{name}'")]
    PeerTaken {
        /// The PeerId.
        peer: PeerId,
        /// The existing contact's name.
        name: Name,
    },
}
