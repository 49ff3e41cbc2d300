//! Group calls, sans-IO (issue 13): one member's view of a call of up to eight people with no
//! server and no host.
//!
//! | file | concept |
//! |---|---|
//! | [`control`] | the group control messages on the pairwise Noise channels (`protocols/group-control-v1.md`) |
//! | [`roster`] | who is in an epoch (sender indices, the sequencer of a change), who went silent, the join budget |
//! | [`emoji`] | one epoch's group emoji round over the network ([`crate::crypto::group_sas`]) |
//! | [`topology`] | mesh or forwarded: the sequencer's choice from the members' measured uplinks |
//! | [`keys`] | a member's media keys across epochs ([`crate::crypto::sender_key`]) |
//! | [`member`] | [`GroupMember`]: the state machine that ties them together |
//!
//! The node drives a [`GroupMember`] (`node::calls::group`: the legs, the mesh, status and events)
//! and lends its `seal`/`open` to the group media (`media::group_call::GroupFrameCrypto`);
//! `docs/architecture.md` ("Group calls") says what is still missing.

pub mod control;
pub mod emoji;
pub mod keys;
pub mod member;
pub mod roster;
pub mod topology;

pub use member::{Command, GroupConfig, GroupError, GroupEvent, GroupMember, Input, LeaveReason, Output};
