//! The local control API: NDJSON over a unix socket in the node's home (`protocols/control-v1.md`).
//!
//! [`proto`] holds the messages, [`server`] serves them from a running [`Node`](crate::node::Node),
//! and [`Client`] is the one client library, used by the CLI, the tests and the examples.

pub mod client;
pub mod line;
pub mod proto;
pub mod server;

pub use client::{Client, ClientError};
pub use proto::{Command, ErrorBody, ErrorCode};
