//! Signalling messages (`protocols/signaling-v1.md`).
//!
//! The invite and its reply travel over libp2p request/response (`/hail/invite/1`, JSON). Once the
//! secure QUIC channel is up, [`ControlMessage`]s travel on it, each framed as a 2-byte big-endian
//! length and a JSON object.

use serde::{Deserialize, Serialize};

use super::CallId;

/// The invite protocol id.
pub const INVITE_PROTOCOL: &str = "/hail/invite/1";
/// The signalling version inside messages.
pub const VERSION: u32 = 1;
/// Most QUIC candidates an invite or a reply may carry.
pub const MAX_CANDIDATES: usize = 8;
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
}

/// The callee's answer to an invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reply")]
pub enum InviteReply {
    /// It rings; here is where the callee's QUIC endpoint can be reached.
    Ringing {
        /// `ip:port` candidates.
        candidates: Vec<String>,
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
    /// The frame: 2-byte big-endian length, then the JSON.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("control messages serialize");
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

impl Invite {
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
        Ok(())
    }
}

/// Parses `ip:port` candidates.
pub fn parse_candidates(candidates: &[String]) -> Result<Vec<std::net::SocketAddr>, SignalError> {
    let mut direct = Vec::new();
    for c in candidates.iter().take(MAX_CANDIDATES) {
        if c.starts_with("relay:") {
            // A media relay candidate (`relay:<PeerId>@ip:port`): joined, then dialed late.
            crate::relay::parse_candidate(c)
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
    fn invites_are_validated() {
        let good =
            Invite { version: 1, call_id: CallId([1; 16]), candidates: vec!["127.0.0.1:4000".into()], video: false };
        assert!(good.validate().is_ok());
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
}
