//! Signalling messages (`protocols/signaling-v1.md`).
//!
//! The invite and its reply travel over libp2p request/response (`/hail/invite/1`, JSON). Once the
//! secure QUIC channel is up, [`ControlMessage`]s travel on it, each framed as a 2-byte big-endian
//! length and a JSON object.

use serde::{Deserialize, Serialize};

use super::CallId;
use crate::crypto::sas::SasTable;
use crate::transport::candidate;

/// The signalling version inside messages.
pub const VERSION: u32 = 1;
pub use crate::transport::candidate::MAX_CANDIDATES;
/// Largest control message.
pub const MAX_CONTROL_MESSAGE: usize = 4096;

/// "Please ring": caller → callee over libp2p.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// Signalling version ([`VERSION`]).
    pub version: u32,
    /// The call.
    pub call_id: CallId,
    /// Where the caller's QUIC endpoint can be reached (`ip:port`).
    pub candidates: Vec<String>,
    /// Whether the caller wants video.
    #[serde(default)]
    pub video: bool,
    /// The SAS emoji table versions the caller can render (`protocols/sas-v1.md`, "Table
    /// versions"). Absent (an older caller): only version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_tables: Option<Vec<u32>>,
    /// This call is a leg of a group call (`protocols/signaling-v1.md`, "Group legs"). Absent: a
    /// 1:1 call. A hail that predates group calls ignores it and rings as a 1:1 call; its reply
    /// then lacks `group`, and the caller ends the leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupLeg>,
}

/// Most members a group leg's invite names (a group has at most 8 members).
pub const MAX_GROUP_LEG_MEMBERS: usize = 8;

/// The group call protocol this hail speaks (group-control, group-media, group-sas): every
/// member of a group must speak the same, so an invite and its reply say which
/// (`protocols/signaling-v1.md`, "Group legs"). 1: the first group calls (absent on the wire);
/// 2: forwarding by a member (a commit's topology, uplink reports, a topology within an epoch),
/// frame authenticators and video layers.
pub const GROUP_VERSION: u32 = 2;

fn group_version_1() -> u32 {
    1
}

/// What kind of group leg an invite offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupLegKind {
    /// An invitation into the group: it rings like a call.
    Join,
    /// Two members completing the mesh: accepted without ringing, only from a member.
    Mesh,
}

/// The group part of an invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLeg {
    /// The group call's id (not the leg's own `call_id`).
    pub id: CallId,
    /// Join or mesh.
    pub kind: GroupLegKind,
    /// The members the caller knows, PeerIds in text (for the ring: "with bob, carol"); at most
    /// [`MAX_GROUP_LEG_MEMBERS`]. Informative: membership is decided by the group's commits.
    #[serde(default)]
    pub members: Vec<String>,
    /// The group call protocol the caller speaks ([`GROUP_VERSION`]); absent: 1.
    #[serde(default = "group_version_1")]
    pub version: u32,
}

impl GroupLeg {
    /// The members as PeerIds; a list too long or naming something that is not a PeerId is refused.
    pub fn member_ids(&self) -> Result<Vec<libp2p_identity::PeerId>, SignalError> {
        if self.members.len() > MAX_GROUP_LEG_MEMBERS {
            return Err(SignalError::Malformed(format!("{} group members (at most 8)", self.members.len())));
        }
        self.members
            .iter()
            .map(|m| m.parse().map_err(|_| SignalError::Malformed(format!("group member {m:?} is not a PeerId"))))
            .collect()
    }
}

/// The callee's answer to an invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reply")]
pub enum InviteReply {
    /// It rings; here is where the callee's QUIC endpoint can be reached.
    Ringing {
        /// `ip:port` candidates.
        candidates: Vec<String>,
        /// The SAS emoji table both sides render the call's emoji with: the highest version both
        /// have. Absent (an older callee): version 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sas_table: Option<u32>,
        /// The callee took the invite as a group leg (it read the invite's `group`). Absent
        /// (false): a 1:1 call, or a callee that predates group calls.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        group: bool,
        /// With `group`: the group call protocol the callee speaks ([`GROUP_VERSION`]); absent: 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_version: Option<u32>,
    },
    /// The callee is in another call.
    Busy,
    /// The callee does not take calls from strangers, and the caller is not its contact.
    Rejected {
        /// For the caller's user (peer text: sanitized as it is decoded, see [`crate::peer_text`]).
        #[serde(deserialize_with = "crate::peer_text::deserialize")]
        reason: String,
    },
    /// The callee refused without ringing (the reason is deliberately vague: a blocked caller is
    /// not told it is blocked).
    Unavailable {
        /// For the caller's user (peer text: sanitized as it is decoded, see [`crate::peer_text`]).
        #[serde(deserialize_with = "crate::peer_text::deserialize")]
        reason: String,
    },
}

/// Messages on the secure channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ControlMessage {
    /// The callee answered.
    Accept,
    /// The callee declined.
    Reject,
    /// Either side ends the call.
    Hangup,
    /// The peer received our `Hangup` or `Reject`: the connection may close now.
    HangupAck,
    /// Keepalive.
    Ping,
    /// Keepalive answer.
    Pong,
    /// The sender's media state changed.
    MediaState {
        /// Microphone muted.
        muted: bool,
        /// Sending video.
        video: bool,
    },
    /// The receiver cannot decode the sender's video: start a new GOP with a keyframe.
    KeyframeRequest,
    /// The sender's video is on, but the path has no room for it now (`paused`), or has again:
    /// the receiver expects no pictures meanwhile (it asks for no keyframes, counts no freezes).
    BandwidthPause {
        /// Paused (true) or sending again (false).
        paused: bool,
    },
    /// A group control message (`protocols/group-control-v1.md`) on a group leg, its bytes in
    /// lower-case hex. A hail that predates group calls refuses it as malformed and keeps the call.
    Group {
        /// The message, hex.
        data: String,
    },
}

/// Why a control frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// Not a JSON object of a known message.
    #[error("malformed signalling message: {0}")]
    Malformed(String),
    /// Longer than [`MAX_CONTROL_MESSAGE`].
    #[error("signalling message too large ({0} bytes)")]
    TooLarge(usize),
}

impl ControlMessage {
    /// The frame's body: the JSON (the channel puts the length in front).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("control messages serialize")
    }

    /// The frame: 2-byte big-endian length, then the JSON.
    pub fn encode(&self) -> Vec<u8> {
        let json = self.body();
        let mut out = Vec::with_capacity(2 + json.len());
        out.extend_from_slice(&(json.len() as u16).to_be_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// Parses a frame's body (after the length).
    pub fn decode(body: &[u8]) -> Result<Self, SignalError> {
        if body.len() > MAX_CONTROL_MESSAGE {
            return Err(SignalError::TooLarge(body.len()));
        }
        serde_json::from_slice(body).map_err(|e| SignalError::Malformed(e.to_string()))
    }
}

impl ControlMessage {
    /// A group control message, framed for the leg's control stream.
    pub fn group(bytes: &[u8]) -> ControlMessage {
        ControlMessage::Group { data: data_encoding::HEXLOWER.encode(bytes) }
    }

    /// The bytes of a [`ControlMessage::Group`]; `None` for another message or hex that does not
    /// decode.
    pub fn group_bytes(&self) -> Option<Vec<u8>> {
        match self {
            ControlMessage::Group { data } => data_encoding::HEXLOWER_PERMISSIVE.decode(data.as_bytes()).ok(),
            _ => None,
        }
    }
}

impl InviteReply {
    /// `ringing`, naming the SAS table the callee picked.
    pub fn ringing(candidates: Vec<String>, sas_table: SasTable) -> Self {
        InviteReply::Ringing { candidates, sas_table: Some(sas_table.version()), group: false, group_version: None }
    }
}

impl Invite {
    /// The SAS table versions the caller offers (`[1]` when the invite names none).
    pub fn offered_sas_tables(&self) -> &[u32] {
        self.sas_tables.as_deref().unwrap_or(&[1])
    }

    /// The SAS table this hail renders the call with: the highest version both sides have (for a
    /// validated invite there is one; otherwise version 1).
    pub fn sas_table(&self) -> SasTable {
        SasTable::LATEST.pick(self.offered_sas_tables()).unwrap_or(SasTable::V1)
    }

    /// Checks what a remote invite claims before anything acts on it.
    pub fn validate(&self) -> Result<(), SignalError> {
        if self.version != VERSION {
            return Err(SignalError::Malformed(format!(
                "signalling version {} (this hail speaks {VERSION})",
                self.version
            )));
        }
        if self.candidates.is_empty() || self.candidates.len() > MAX_CANDIDATES {
            return Err(SignalError::Malformed(format!(
                "{} candidates (1 to {MAX_CANDIDATES})",
                self.candidates.len()
            )));
        }
        parse_candidates(&self.candidates)?;
        if let Some(group) = &self.group {
            group.member_ids()?;
        }
        let offered = self.offered_sas_tables();
        if offered.is_empty() || offered.len() > SasTable::MAX_OFFER {
            return Err(SignalError::Malformed(format!(
                "{} SAS table versions (1 to {})",
                offered.len(),
                SasTable::MAX_OFFER
            )));
        }
        if SasTable::LATEST.pick(offered).is_none() {
            return Err(SignalError::Malformed(format!(
                "no SAS table in common (offered {offered:?}, this hail has {:?})",
                SasTable::LATEST.offer()
            )));
        }
        Ok(())
    }
}

/// Parses `ip:port` candidates.
pub fn parse_candidates(candidates: &[String]) -> Result<Vec<std::net::SocketAddr>, SignalError> {
    let mut direct = Vec::new();
    for c in candidates.iter().take(MAX_CANDIDATES) {
        if candidate::is_relay(c) {
            // A media relay candidate (`relay:<PeerId>@ip:port`): joined, then dialed late.
            candidate::parse_relay(c)
                .ok_or_else(|| SignalError::Malformed(format!("candidate {c:?} is not relay:<PeerId>@ip:port")))?;
            continue;
        }
        direct.push(c.parse().map_err(|_| SignalError::Malformed(format!("candidate {c:?} is not ip:port")))?);
    }
    Ok(direct)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_carries_the_largest_control_message() {
        assert_eq!(MAX_CONTROL_MESSAGE, crate::transport::channel::MAX_CONTROL_FRAME);
    }

    #[test]
    fn control_messages_round_trip_and_garbage_is_refused() {
        for m in [
            ControlMessage::Accept,
            ControlMessage::Reject,
            ControlMessage::Hangup,
            ControlMessage::HangupAck,
            ControlMessage::Ping,
            ControlMessage::Pong,
            ControlMessage::MediaState { muted: true, video: false },
            ControlMessage::KeyframeRequest,
            ControlMessage::BandwidthPause { paused: true },
        ] {
            let frame = m.encode();
            let len = u16::from_be_bytes([frame[0], frame[1]]) as usize;
            assert_eq!(len, frame.len() - 2);
            assert_eq!(ControlMessage::decode(&frame[2..]).unwrap(), m);
        }
        assert!(ControlMessage::decode(b"{\"type\":\"explode\"}").is_err());
        assert!(ControlMessage::decode(b"\xff\xfe").is_err());
        assert!(ControlMessage::decode(&vec![b' '; 5000]).is_err());
    }

    #[test]
    fn group_messages_ride_the_control_stream_as_hex_and_bad_hex_is_no_message() {
        let message = ControlMessage::group(&[0x01, 0xab, 0xff]);
        assert_eq!(message.body(), br#"{"type":"group","data":"01abff"}"#);
        let decoded = ControlMessage::decode(&message.body()).unwrap();
        assert_eq!(decoded.group_bytes().unwrap(), [0x01, 0xab, 0xff]);
        let bad = ControlMessage::decode(br#"{"type":"group","data":"zz"}"#).unwrap();
        assert_eq!(bad.group_bytes(), None);
        assert_eq!(ControlMessage::Ping.group_bytes(), None);
        assert!(ControlMessage::decode(br#"{"type":"group"}"#).is_err());
    }

    #[test]
    fn a_group_leg_names_at_most_eight_members_all_peer_ids() {
        let peer = libp2p_identity::PeerId::random().to_base58();
        let leg = |members: Vec<String>| GroupLeg { id: CallId([2; 16]), kind: GroupLegKind::Mesh, members, version: GROUP_VERSION };
        assert_eq!(leg(vec![peer.clone(); 8]).member_ids().unwrap().len(), 8);
        assert!(leg(vec![peer.clone(); 9]).member_ids().is_err());
        assert!(leg(vec!["bob".into()]).member_ids().is_err());
        let invite = Invite {
            version: 1,
            call_id: CallId([1; 16]),
            candidates: vec!["127.0.0.1:4000".into()],
            video: false,
            sas_tables: None,
            group: Some(leg(vec!["nonsense".into()])),
        };
        assert!(invite.validate().is_err());
    }

    #[test]
    fn invites_are_validated() {
        let good = Invite {
            version: 1,
            call_id: CallId([1; 16]),
            candidates: vec!["127.0.0.1:4000".into()],
            video: false,
            sas_tables: None,
            group: None,
        };
        assert!(good.validate().is_ok());
        for (tables, ok) in [
            (vec![1], true),
            (vec![1, 2], true),
            (vec![2, 1, 99], true),
            (vec![3], false),
            (vec![], false),
            (vec![1; SasTable::MAX_OFFER + 1], false),
        ] {
            let mut invite = good.clone();
            invite.sas_tables = Some(tables.clone());
            assert_eq!(invite.validate().is_ok(), ok, "sas_tables {tables:?}");
        }
        let mut bad = good.clone();
        bad.version = 2;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.candidates = vec!["nonsense".into()];
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.candidates = vec![];
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.candidates = vec!["127.0.0.1:1".into(); 9];
        assert!(bad.validate().is_err());
    }

    #[test]
    fn reasons_from_the_peer_arrive_without_control_characters_and_bounded() {
        let hostile =
            r#"{"reply":"rejected","reason":"\u001b[2J\u001b[1;32m\u2705 verified\u001b[0m ok\u0007\u202e\u200b"}"#;
        match serde_json::from_str::<InviteReply>(hostile).unwrap() {
            InviteReply::Rejected { reason } => assert_eq!(reason, "\u{2705} verified ok"),
            other => panic!("{other:?}"),
        }
        let long = format!(r#"{{"reply":"unavailable","reason":"{}"}}"#, "\u{9b}31m".repeat(10) + &"x".repeat(10_000));
        match serde_json::from_str::<InviteReply>(&long).unwrap() {
            InviteReply::Unavailable { reason } => {
                assert!(reason.chars().count() <= 201 && reason.starts_with("xxx"), "{reason:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_sas_table_is_the_highest_in_common_and_absent_means_1() {
        let json = r#"{"version":1,"call_id":"00112233445566778899aabbccddeeff","candidates":["127.0.0.1:1"]}"#;
        let old: Invite = serde_json::from_str(json).unwrap();
        assert_eq!(old.sas_tables, None);
        assert_eq!(old.offered_sas_tables(), [1]);
        assert_eq!(old.sas_table(), SasTable::V1);
        assert!(!serde_json::to_string(&old).unwrap().contains("sas_tables"), "an absent offer stays absent");
        let new = Invite { sas_tables: Some(vec![1, 2]), ..old.clone() };
        assert_eq!(new.sas_table(), SasTable::V2);
        let reply: InviteReply = serde_json::from_str(r#"{"reply":"ringing","candidates":["127.0.0.1:1"]}"#).unwrap();
        assert_eq!(reply, InviteReply::Ringing { candidates: vec!["127.0.0.1:1".into()], sas_table: None, group: false, group_version: None });
        assert_eq!(
            serde_json::to_string(&InviteReply::ringing(vec!["127.0.0.1:1".into()], SasTable::V2)).unwrap(),
            r#"{"reply":"ringing","candidates":["127.0.0.1:1"],"sas_table":2}"#
        );
    }

    /// The v1 messages as a hail before table versions declared them: they must read the new
    /// fields' messages (serde ignores unknown fields unless told otherwise).
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct OldInvite {
        version: u32,
        call_id: CallId,
        candidates: Vec<String>,
        #[serde(default)]
        video: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case", tag = "reply")]
    #[allow(dead_code)]
    enum OldInviteReply {
        Ringing { candidates: Vec<String> },
        Busy,
    }

    #[test]
    fn old_peers_ignore_the_sas_table_fields() {
        let invite = Invite {
            version: 1,
            call_id: CallId([7; 16]),
            candidates: vec!["127.0.0.1:1".into()],
            video: true,
            sas_tables: Some(SasTable::LATEST.offer()),
            group: None,
        };
        let old: OldInvite = serde_json::from_str(&serde_json::to_string(&invite).unwrap()).unwrap();
        assert_eq!((old.call_id, old.candidates, old.video), (invite.call_id, invite.candidates, true));
        let reply = serde_json::to_string(&InviteReply::ringing(vec!["127.0.0.1:2".into()], SasTable::V2)).unwrap();
        assert_eq!(
            serde_json::from_str::<OldInviteReply>(&reply).unwrap(),
            OldInviteReply::Ringing { candidates: vec!["127.0.0.1:2".into()] }
        );
    }
}
