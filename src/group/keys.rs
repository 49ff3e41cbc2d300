//! A member's media keys in a group call (`protocols/group-media-v1.md`): its own sender key for
//! the current epoch, the other members' keys in a [`SenderKeyRing`], and the schedule around an
//! epoch change (the new key at once, the old epoch kept a short grace for frames in flight).

use std::time::Instant;

use libp2p_identity::PeerId;
use rand::{CryptoRng, RngCore};

use super::roster::Roster;
use crate::crypto::sender_key::{
    GroupFrameError, GroupFrameHeader, GroupMedia, KeyId, KeyRingError, OpenedFrame, SenderBaseKey, SenderKey,
    SenderKeyRing,
};

/// Why a member's frame was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameRefusal {
    /// It came from a peer that is not a member of the current epoch.
    #[error("{0} is not a member of the group")]
    NotMember(PeerId),
    /// Its header names another member's sender index than the member who delivered it: a member
    /// passing off (or replaying) someone else's frame.
    #[error("{from} sent a frame under {key_id}, which is not its own")]
    NotItsOwn {
        /// Who delivered it.
        from: PeerId,
        /// The key id in its header.
        key_id: KeyId,
    },
    /// The frame itself was refused (unknown key, replay, tampering, garbage).
    #[error(transparent)]
    Frame(#[from] GroupFrameError),
}

/// Why a key was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    /// The key's sender index is not its sender's in that epoch.
    #[error("{from} sent a key for sender index {index}, which is not its own")]
    NotItsIndex {
        /// Who sent it.
        from: PeerId,
        /// The index it named.
        index: u8,
    },
    /// The epoch cannot carry a key id.
    #[error("epoch {0} is beyond the key ids' range")]
    EpochOutOfRange(u64),
    /// The ring refused it (a retired epoch, or another key for the same sender and epoch).
    #[error(transparent)]
    Ring(#[from] KeyRingError),
}

/// Own key, others' keys, and when the previous epoch retires.
#[derive(Debug, Default)]
pub struct MediaKeys {
    own: Option<SenderKey>,
    ring: SenderKeyRing,
    retire: Option<(Instant, u64)>,
}

impl MediaKeys {
    /// No keys yet.
    pub fn new() -> MediaKeys {
        MediaKeys::default()
    }

    /// Moves to `roster`'s epoch at `now`: drops at once the keys of members who are gone, draws
    /// this member's new base key (returned: it goes to every other member) and seals with it from
    /// the next frame on; the previous epoch's keys open frames in flight until `retire_at`.
    pub fn start_epoch(
        &mut self,
        roster: &Roster,
        me: &PeerId,
        retire_at: Instant,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Option<SenderBaseKey> {
        for gone in (0..=255u8).map(crate::crypto::sender_key::SenderIndex) {
            if !roster.entries().iter().any(|m| m.index == gone) {
                self.ring.remove_sender(gone);
            }
        }
        if let Some((_, epoch)) = self.retire.take() {
            self.ring.retire_epochs_before(epoch);
        }
        self.retire = Some((retire_at, roster.epoch()));
        let key_id = KeyId::new(roster.epoch(), roster.index_of(me)?)?;
        let base = SenderBaseKey::generate(rng);
        // The old key is dropped here (its cipher zeroizes): nothing seals under it again.
        self.own = Some(SenderKey::new(key_id, &base));
        Some(base)
    }

    /// Retires the previous epoch once its grace is over.
    pub fn tick(&mut self, now: Instant) {
        if let Some((at, epoch)) = self.retire
            && now >= at
        {
            self.ring.retire_epochs_before(epoch);
            self.retire = None;
        }
    }

    /// When the previous epoch retires, while it waits to.
    pub fn retire_deadline(&self) -> Option<Instant> {
        self.retire.map(|(at, _)| at)
    }

    /// Installs `from`'s key for `roster`'s epoch if `index` is `from`'s own sender index in it.
    pub fn install(
        &mut self,
        roster: &Roster,
        from: &PeerId,
        index: u8,
        base: &SenderBaseKey,
    ) -> Result<KeyId, KeyRefusal> {
        if roster.index_of(from).map(|i| i.0) != Some(index) {
            return Err(KeyRefusal::NotItsIndex { from: *from, index });
        }
        let key_id = KeyId::new(roster.epoch(), crate::crypto::sender_key::SenderIndex(index))
            .ok_or(KeyRefusal::EpochOutOfRange(roster.epoch()))?;
        self.ring.install(key_id, base)?;
        Ok(key_id)
    }

    /// The key id this member seals under, once it has one.
    pub fn own_key_id(&self) -> Option<KeyId> {
        self.own.as_ref().map(|k| k.key_id())
    }

    /// Seals one frame under this member's key of the current epoch.
    pub fn seal(&mut self, media: GroupMedia, payload: &[u8]) -> Option<Vec<u8>> {
        self.own.as_mut().map(|k| k.seal(media, payload))
    }

    /// Opens a frame that member `from` delivered (mesh: every member sends its own frames), if
    /// `from` is a member of `roster` and the frame is under its own sender index.
    pub fn open(&mut self, roster: &Roster, from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameRefusal> {
        let index = roster.index_of(from).ok_or(FrameRefusal::NotMember(*from))?;
        let (header, _) = GroupFrameHeader::parse(frame)?;
        if header.key_id.sender() != index {
            return Err(FrameRefusal::NotItsOwn { from: *from, key_id: header.key_id });
        }
        Ok(self.ring.open(frame)?)
    }

    /// Opens a frame that the epoch's forwarder `from` delivered for another member: taken if
    /// `from` is a member of `roster` and the frame's sender index is a member's other than `me`
    /// (our own frames do not come back). Which member the frame is from rests on the sender index
    /// alone (`protocols/group-media-v1.md`, "What the sender index proves").
    pub fn open_forwarded(
        &mut self,
        roster: &Roster,
        me: &PeerId,
        from: &PeerId,
        frame: &[u8],
    ) -> Result<OpenedFrame, FrameRefusal> {
        roster.index_of(from).ok_or(FrameRefusal::NotMember(*from))?;
        let (header, _) = GroupFrameHeader::parse(frame)?;
        let sender = header.key_id.sender();
        if roster.index_of(me) == Some(sender) || !roster.entries().iter().any(|m| m.index == sender) {
            return Err(FrameRefusal::NotItsOwn { from: *from, key_id: header.key_id });
        }
        Ok(self.ring.open(frame)?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::crypto::sender_key::SenderIndex;
    use crate::identity::Identity;

    fn peer(seed: u8) -> PeerId {
        Identity::from_seed([seed; 32]).peer_id()
    }

    #[test]
    fn a_new_epoch_drops_the_departed_at_once_and_the_old_epoch_after_its_grace() {
        let (a, b, c) = (peer(1), peer(2), peer(3));
        let mut rng = StdRng::seed_from_u64(7);
        let one = Roster::founding([a, b, c]).unwrap().next(&[], &[]).unwrap();
        let mut keys = MediaKeys::new();
        let now = Instant::now();
        keys.start_epoch(&one, &a, now, &mut rng).unwrap();
        for p in [b, c] {
            let index = one.index_of(&p).unwrap().0;
            keys.install(&one, &p, index, &SenderBaseKey::from_bytes([index; 32])).unwrap();
        }
        // Another member's index is refused.
        let c_index = one.index_of(&c).unwrap().0;
        assert!(matches!(
            keys.install(&one, &b, c_index, &SenderBaseKey::from_bytes([9; 32])),
            Err(KeyRefusal::NotItsIndex { .. })
        ));
        let two = one.next(&[c], &[]).unwrap();
        let grace = now + Duration::from_secs(2);
        let own_before = keys.own_key_id().unwrap();
        keys.start_epoch(&two, &a, grace, &mut rng).unwrap();
        assert_eq!(keys.own_key_id().unwrap().epoch(), own_before.epoch() + 1, "sealing moves to the new epoch");
        let id = |p: &PeerId, r: &Roster| KeyId::new(r.epoch(), r.index_of(p).unwrap()).unwrap();
        assert!(!keys.ring.holds(id(&c, &one)), "the departed member's key is gone at once");
        assert!(keys.ring.holds(id(&b, &one)), "the old epoch stays for frames in flight");
        keys.tick(grace - Duration::from_millis(1));
        assert!(keys.ring.holds(id(&b, &one)));
        keys.tick(grace);
        assert!(!keys.ring.holds(id(&b, &one)), "and retires after its grace");
        let b_index: SenderIndex = two.index_of(&b).unwrap();
        assert_eq!(keys.install(&two, &b, b_index.0, &SenderBaseKey::from_bytes([1; 32])), Ok(id(&b, &two)));
    }
}
