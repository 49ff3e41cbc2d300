//! A group call's receiver report (`protocols/group-media-v1.md`, "Receiver reports"): what a
//! member measured of one sender's audio, sent to that sender on their pairwise link, sealed
//! through the `GroupFrameCrypto` port as media `Report`.
//!
//! ```text
//! report plaintext = about (1) || receiver report (media-v1: 22 bytes || extensions)
//! ```
//! `about` is the sender index of the audio the report is about: the addressee, who refuses a
//! report about anyone else.

use crate::crypto::sender_key::SenderIndex;
use crate::media::packet::{PacketError, ReceiverReport};

/// One member's report on one sender's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupReport {
    /// Whose audio it is about (the member it is sent to).
    pub about: SenderIndex,
    /// What the reporter measured (media-v1's receiver report, its burst extension included).
    pub report: ReceiverReport,
}

impl GroupReport {
    /// The plaintext.
    pub fn encode(&self) -> Vec<u8> {
        [&[self.about.0][..], &self.report.encode()].concat()
    }

    /// Parses a plaintext; refuses a short or malformed one.
    pub fn decode(bytes: &[u8]) -> Result<GroupReport, PacketError> {
        let (&about, report) = bytes.split_first().ok_or(PacketError::Truncated)?;
        Ok(GroupReport { about: SenderIndex(about), report: ReceiverReport::decode(report)? })
    }
}
