//! Calls: the sans-IO call state machine ([`session`]), the signalling messages ([`signal`]), and
//! the invite rate limiter ([`rate_limit`]).

pub mod rate_limit;
pub mod session;
pub mod signal;

pub use crate::call_id::CallId;
pub use session::{CallEvent, CallSession, CallState, EndReason, Input, Output, Role, Timeouts, UserAction};
pub use signal::{ControlMessage, Invite, InviteReply};
