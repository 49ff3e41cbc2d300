//! Call history: one record per call, appended when the call ends.

use libp2p_identity::PeerId;
use serde::{Deserialize, Serialize};

use crate::name::Name;

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    /// We called them.
    Outgoing,
    /// They called us.
    Incoming,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CallOutcome {
    /// Answered, then hung up by either side.
    Completed,
    /// The callee refused it.
    Rejected,
    /// The callee was in another call.
    Busy,
    /// Nobody answered before the ring timeout.
    Missed,
    /// Refused without ringing (blocked or unknown caller).
    Refused,
    /// Setup or the connection failed.
    Failed {
        /// What failed, for the user.
        reason: String,
    },
}

/// One past call (schema v1 record; also its control-API form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call id, hex.
    pub call_id: String,
    /// The other side.
    #[serde(with = "super::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Their contact name at the time, if they were a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Name>,
    /// Who called.
    pub direction: CallDirection,
    /// Whether video was on at any point.
    #[serde(default)]
    pub video: bool,
    /// When the call started ringing, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When it was answered, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at_ms: Option<u64>,
    /// When it ended.
    pub ended_at_ms: u64,
    /// How it ended.
    pub outcome: CallOutcome,
    /// A group call: everyone who was in it with us, or invited (then `peer_id` is whoever
    /// invited us, or, for a call we started, the first of these). Absent for a 1:1 call, and in
    /// records written before group calls were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Vec<GroupCallPeer>>,
}

/// Someone in a past group call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCallPeer {
    /// Its PeerId.
    #[serde(with = "super::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Its contact name at the time, if it was a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Name>,
}

impl CallRecord {
    /// The history key: start time (big-endian, so keys sort by time) then the call id.
    pub(crate) fn key(&self) -> Vec<u8> {
        let mut key = self.started_at_ms.to_be_bytes().to_vec();
        key.extend_from_slice(self.call_id.as_bytes());
        key
    }
}
