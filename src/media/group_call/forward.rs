//! What a forwarding member does with the sealed frames other members send it
//! (`protocols/group-media-v1.md`, "Forwarding"): it reads the clear header only — the media
//! byte, the KID (epoch and sender index) and CTR — and never a key. A frame whose sender index is
//! not that of the member whose link delivered it is dropped (a member cannot use the forwarder to
//! pass its frames off as another's); a frame seen before, by (KID, CTR), is dropped; the rest go
//! on, byte for byte, to every member but their origin. Receiver reports (`0x30`) are pairwise
//! and never forwarded.

use std::collections::{HashSet, VecDeque};

use crate::crypto::sender_key::{GroupFrameHeader, GroupMedia, SenderIndex};

/// How many (KID, CTR) pairs the forwarder remembers: about two seconds of audio and video from
/// seven members, well past what a link reorders or a replay within the replay window needs.
pub const FORWARD_MEMORY: usize = 4096;

/// Why a forwarder did not forward a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardRefusal {
    /// Not a group frame (its clear header does not parse).
    #[error("not a group frame: {0}")]
    Malformed(String),
    /// Its sender index is not the delivering member's.
    #[error("a frame under sender index {got} came on the link of sender {link}")]
    NotItsOwn {
        /// The frame's sender index.
        got: u8,
        /// The delivering member's.
        link: u8,
    },
    /// Seen before (same KID and CTR).
    #[error("a duplicate frame")]
    Duplicate,
    /// A receiver report: pairwise, for the forwarder itself.
    #[error("a receiver report is not forwarded")]
    Report,
}

/// The forwarder's checks, with the frames it has seen.
#[derive(Debug, Default)]
pub struct ForwardFilter {
    seen: HashSet<(u64, u64)>,
    order: VecDeque<(u64, u64)>,
}

impl ForwardFilter {
    /// Whether the frame that came on the link of the member with sender index `link` is to be
    /// forwarded; its clear header when it is.
    pub fn check(&mut self, link: SenderIndex, frame: &[u8]) -> Result<GroupFrameHeader, ForwardRefusal> {
        let (header, _) = GroupFrameHeader::parse(frame).map_err(|e| ForwardRefusal::Malformed(e.to_string()))?;
        if header.media == GroupMedia::Report {
            return Err(ForwardRefusal::Report);
        }
        let sender = header.key_id.sender();
        if sender != link {
            return Err(ForwardRefusal::NotItsOwn { got: sender.0, link: link.0 });
        }
        let id = (header.key_id.kid(), header.counter);
        if !self.seen.insert(id) {
            return Err(ForwardRefusal::Duplicate);
        }
        self.order.push_back(id);
        if self.order.len() > FORWARD_MEMORY
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sender_key::KeyId;

    fn frame(sender: u8, media: GroupMedia, counter: u64) -> Vec<u8> {
        let header = GroupFrameHeader { media, key_id: KeyId::new(3, SenderIndex(sender)).unwrap(), counter };
        [&header.encode()[..], &[0xAB; 40]].concat()
    }

    #[test]
    fn only_the_delivering_members_own_new_media_frames_go_on() {
        let mut f = ForwardFilter::default();
        assert!(f.check(SenderIndex(1), &frame(1, GroupMedia::Audio, 0)).is_ok());
        assert!(f.check(SenderIndex(1), &frame(1, GroupMedia::Video { temporal_layer: 1 }, 1)).is_ok());
        assert_eq!(f.check(SenderIndex(1), &frame(1, GroupMedia::Audio, 0)), Err(ForwardRefusal::Duplicate));
        assert_eq!(
            f.check(SenderIndex(1), &frame(2, GroupMedia::Audio, 7)),
            Err(ForwardRefusal::NotItsOwn { got: 2, link: 1 })
        );
        // Member 2's own frame 7 was not taken for it by member 1's forgery.
        assert!(f.check(SenderIndex(2), &frame(2, GroupMedia::Audio, 7)).is_ok());
        assert_eq!(f.check(SenderIndex(1), &frame(1, GroupMedia::Report, 9)), Err(ForwardRefusal::Report));
        assert!(matches!(f.check(SenderIndex(1), &[0x10]), Err(ForwardRefusal::Malformed(_))));
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut f = ForwardFilter::default();
        for n in 0..(FORWARD_MEMORY as u64 + 10) {
            f.check(SenderIndex(1), &frame(1, GroupMedia::Audio, n)).unwrap();
        }
        assert_eq!(f.seen.len(), FORWARD_MEMORY);
        // The oldest is forgotten (the receivers' replay windows still refuse it).
        assert!(f.check(SenderIndex(1), &frame(1, GroupMedia::Audio, 0)).is_ok());
    }
}
