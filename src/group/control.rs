//! The group control messages (`protocols/group-control-v1.md`): what members of a group call tell
//! each other over their pairwise Noise channels. Binary, fixed layout, every length bounded:
//! [`GroupControl::decode`] refuses anything else with an error and never panics.

use libp2p_identity::PeerId;

use super::topology::Topology;
use crate::crypto::group_sas::{GroupSasCommit, GroupSasReveal, MAX_MEMBERS, MAX_REPORTED_DISPUTES, PairDispute};
use crate::crypto::sender_key::{SenderBaseKey, SenderIndex};

/// The version byte every group control message starts with.
pub const VERSION: u8 = 1;
/// Longest PeerId accepted on the wire (an Ed25519 PeerId is 38 bytes; a multihash is at most 64).
pub const MAX_PEER_ID_LEN: usize = 64;
/// Longest group control message: a commitment listing [`MAX_MEMBERS`] − 1 pairs, with room to spare.
pub const MAX_GROUP_CONTROL_MESSAGE: usize = 64 + MAX_MEMBERS * (1 + MAX_PEER_ID_LEN + 32);

const HEADER_LEN: usize = 2 + 16;

/// One member of a roster on the wire: its sender index and its PeerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterEntry {
    /// The member's sender index (the low byte of every key id it seals under).
    pub index: SenderIndex,
    /// The member.
    pub peer: PeerId,
}

/// A group control message: the call it belongs to and what it says.
#[derive(Debug, Clone)]
pub struct GroupControl {
    /// The group call.
    pub call_id: [u8; 16],
    /// What the message says.
    pub body: ControlBody,
}

/// What a group control message says (the type byte in brackets).
#[derive(Debug, Clone)]
pub enum ControlBody {
    /// (`0x01`) A member invites the receiver into the call, whose epoch `epoch` has `members`.
    Invite {
        /// The call's epoch as the inviter sent the invite.
        epoch: u64,
        /// That epoch's members.
        members: Vec<RosterEntry>,
    },
    /// (`0x02`) The invited peer accepts, to the member that invited it.
    JoinRequest,
    /// (`0x03`) A member asks the sequencer to add `newcomer`, who accepted its invite in `epoch`.
    Propose {
        /// The epoch the proposer is in.
        epoch: u64,
        /// Who is to join.
        newcomer: PeerId,
    },
    /// (`0x04`) The sequencer's membership for epoch `epoch`, and how its media flows.
    Commit {
        /// The new epoch (one more than the one before).
        epoch: u64,
        /// The lowest sender index never yet given out in the call (256: none left).
        next_index: u16,
        /// The new epoch's members.
        members: Vec<RosterEntry>,
        /// The epoch's media topology: a mesh, or one member forwarding the others' frames.
        topology: Topology,
    },
    /// (`0x05`) The sender's media base key for `epoch`, under its sender index `sender`.
    SenderKey {
        /// The epoch the key seals in.
        epoch: u64,
        /// The sender's index.
        sender: SenderIndex,
        /// The key.
        base_key: SenderBaseKey,
    },
    /// (`0x06`) The sender's group emoji commitment for `epoch` (`protocols/group-sas-v1.md`).
    SasCommit {
        /// The epoch of the round.
        epoch: u64,
        /// The commitment and the sender's handshake hash with every other member.
        commit: GroupSasCommit,
    },
    /// (`0x07`) The sender's group emoji nonce for `epoch`, and the pairs it saw disagree.
    SasReveal {
        /// The epoch of the round.
        epoch: u64,
        /// The nonce and the disputes.
        reveal: GroupSasReveal,
    },
    /// (`0x08`) The sender is still here, in `epoch`.
    Heartbeat {
        /// The sender's epoch.
        epoch: u64,
    },
    /// (`0x09`) The sender leaves the call.
    Leave {
        /// The sender's epoch.
        epoch: u64,
    },
    /// (`0x0A`) The sender's measured uplink, for the sequencer's choice of topology.
    Uplink {
        /// The sender's epoch.
        epoch: u64,
        /// What the sender can send, kbit/s.
        kbps: u32,
    },
    /// (`0x0B`) The epoch's sequencer changes the epoch's topology: the uplinks members report
    /// asked for another for long enough (membership, keys and emoji stay as they are).
    Topology {
        /// The epoch whose topology changes.
        epoch: u64,
        /// The topology from now on; a forwarder is a member of the epoch (the receiver checks).
        topology: Topology,
    },
}

/// Why bytes are not a group control message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Longer than [`MAX_GROUP_CONTROL_MESSAGE`].
    #[error("group control message too large ({0} bytes)")]
    TooLarge(usize),
    /// Ends before its fields do.
    #[error("group control message truncated")]
    Truncated,
    /// Bytes after the last field.
    #[error("{0} bytes after the end of a group control message")]
    TrailingBytes(usize),
    /// A version this hail does not speak.
    #[error("group control version {0} is not supported (this hail speaks {VERSION})")]
    UnknownVersion(u8),
    /// A type byte this version does not define.
    #[error("unknown group control message type {0:#04x}")]
    UnknownType(u8),
    /// A list of more than [`MAX_MEMBERS`] members, or an empty one.
    #[error("a group control message lists {0} members (1 to {MAX_MEMBERS} allowed)")]
    BadMemberCount(usize),
    /// A PeerId that does not parse.
    #[error("a group control message holds an invalid PeerId")]
    BadPeerId,
    /// A list of members not in strictly ascending order of their PeerId bytes (one listed twice,
    /// or out of order: every list has one encoding).
    #[error("a group control message lists members out of order or twice")]
    Unordered,
    /// Two members of a roster with the same sender index.
    #[error("a group control message gives sender index {0} twice")]
    DuplicateIndex(u8),
    /// A sender index counter beyond 256.
    #[error("next sender index {0} is beyond 256")]
    BadNextIndex(u16),
    /// A commit whose topology is neither a mesh nor a forwarder that is one of its members.
    #[error("a commit's topology is unknown or names a forwarder that is not a member")]
    BadTopology,
    /// An emoji reveal that reports more than [`MAX_REPORTED_DISPUTES`] disputes.
    #[error("an emoji reveal reports {0} disputes (at most {MAX_REPORTED_DISPUTES})")]
    TooManyDisputes(usize),
}

impl ControlBody {
    fn type_byte(&self) -> u8 {
        match self {
            ControlBody::Invite { .. } => 0x01,
            ControlBody::JoinRequest => 0x02,
            ControlBody::Propose { .. } => 0x03,
            ControlBody::Commit { .. } => 0x04,
            ControlBody::SenderKey { .. } => 0x05,
            ControlBody::SasCommit { .. } => 0x06,
            ControlBody::SasReveal { .. } => 0x07,
            ControlBody::Heartbeat { .. } => 0x08,
            ControlBody::Leave { .. } => 0x09,
            ControlBody::Uplink { .. } => 0x0A,
            ControlBody::Topology { .. } => 0x0B,
        }
    }

    /// The epoch the message speaks of (none for a join request).
    pub fn epoch(&self) -> Option<u64> {
        match self {
            ControlBody::JoinRequest => None,
            ControlBody::Invite { epoch, .. }
            | ControlBody::Propose { epoch, .. }
            | ControlBody::Commit { epoch, .. }
            | ControlBody::SenderKey { epoch, .. }
            | ControlBody::SasCommit { epoch, .. }
            | ControlBody::SasReveal { epoch, .. }
            | ControlBody::Heartbeat { epoch }
            | ControlBody::Leave { epoch }
            | ControlBody::Uplink { epoch, .. }
            | ControlBody::Topology { epoch, .. } => Some(*epoch),
        }
    }
}

fn put_peer(out: &mut Vec<u8>, peer: &PeerId) {
    let bytes = peer.to_bytes();
    out.push(bytes.len() as u8);
    out.extend_from_slice(&bytes);
}

fn put_members(out: &mut Vec<u8>, members: &[RosterEntry]) {
    let mut members = members.to_vec();
    members.sort_by_key(|m| m.peer.to_bytes());
    out.push(members.len() as u8);
    for m in members {
        out.push(m.index.0);
        put_peer(out, &m.peer);
    }
}

impl GroupControl {
    /// The message's bytes (the pairwise channel frames them).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION, self.body.type_byte()];
        out.extend_from_slice(&self.call_id);
        if let Some(epoch) = self.body.epoch() {
            out.extend_from_slice(&epoch.to_be_bytes());
        }
        match &self.body {
            ControlBody::Invite { members, .. } => put_members(&mut out, members),
            ControlBody::Propose { newcomer, .. } => put_peer(&mut out, newcomer),
            ControlBody::Commit { next_index, members, topology, .. } => {
                out.extend_from_slice(&next_index.to_be_bytes());
                put_members(&mut out, members);
                topology.encode(&mut out);
            }
            ControlBody::Uplink { kbps, .. } => out.extend_from_slice(&kbps.to_be_bytes()),
            ControlBody::Topology { topology, .. } => topology.encode(&mut out),
            ControlBody::SenderKey { sender, base_key, .. } => {
                out.push(sender.0);
                out.extend_from_slice(base_key.as_bytes());
            }
            ControlBody::SasCommit { commit, .. } => {
                out.extend_from_slice(&commit.commitment);
                out.push(commit.transcripts.len() as u8);
                let mut transcripts: Vec<_> = commit.transcripts.iter().collect();
                transcripts.sort_by_key(|(peer, _)| peer.to_bytes());
                for (peer, hash) in transcripts {
                    put_peer(&mut out, peer);
                    out.extend_from_slice(hash);
                }
            }
            ControlBody::SasReveal { reveal, .. } => {
                out.extend_from_slice(&reveal.nonce);
                // The fields are public: a reveal built with more than a reader takes goes out
                // with the first MAX_REPORTED_DISPUTES, never with a count that wrapped.
                let disputes = &reveal.disputes[..reveal.disputes.len().min(MAX_REPORTED_DISPUTES)];
                out.push(disputes.len() as u8);
                for dispute in disputes {
                    put_peer(&mut out, &dispute.0);
                    put_peer(&mut out, &dispute.1);
                }
            }
            ControlBody::JoinRequest | ControlBody::Heartbeat { .. } | ControlBody::Leave { .. } => {}
        }
        out
    }

    /// Parses a message, refusing every byte string that [`GroupControl::encode`] would not write.
    pub fn decode(bytes: &[u8]) -> Result<GroupControl, ControlError> {
        if bytes.len() > MAX_GROUP_CONTROL_MESSAGE {
            return Err(ControlError::TooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        let header = r.take::<HEADER_LEN>()?;
        if header[0] != VERSION {
            return Err(ControlError::UnknownVersion(header[0]));
        }
        let call_id: [u8; 16] = header[2..].try_into().expect("16 bytes");
        let type_byte = header[1];
        if !(0x01..=0x0B).contains(&type_byte) {
            return Err(ControlError::UnknownType(type_byte));
        }
        let epoch = if type_byte == 0x02 { 0 } else { u64::from_be_bytes(r.take()?) };
        let body = match type_byte {
            0x01 => ControlBody::Invite { epoch, members: r.members()? },
            0x02 => ControlBody::JoinRequest,
            0x03 => ControlBody::Propose { epoch, newcomer: r.peer()? },
            0x04 => {
                let next_index = u16::from_be_bytes(r.take()?);
                if next_index > 256 {
                    return Err(ControlError::BadNextIndex(next_index));
                }
                let members = r.members()?;
                let topology = r.topology()?;
                if topology.forwarder().is_some_and(|f| !members.iter().any(|m| m.index == f)) {
                    return Err(ControlError::BadTopology);
                }
                ControlBody::Commit { epoch, next_index, members, topology }
            }
            0x05 => {
                let [sender] = r.take()?;
                ControlBody::SenderKey {
                    epoch,
                    sender: SenderIndex(sender),
                    base_key: SenderBaseKey::from_bytes(r.take()?),
                }
            }
            0x06 => {
                let commitment = r.take()?;
                let [n] = r.take()?;
                if n as usize >= MAX_MEMBERS {
                    return Err(ControlError::BadMemberCount(n as usize + 1));
                }
                let mut transcripts = std::collections::BTreeMap::new();
                let mut last: Option<Vec<u8>> = None;
                for _ in 0..n {
                    let peer = r.peer()?;
                    last = Some(ascending(last, &peer)?);
                    transcripts.insert(peer, r.take()?);
                }
                ControlBody::SasCommit { epoch, commit: GroupSasCommit { commitment, transcripts } }
            }
            0x07 => {
                let nonce = r.take()?;
                let [n] = r.take()?;
                if n as usize > MAX_REPORTED_DISPUTES {
                    return Err(ControlError::TooManyDisputes(n as usize));
                }
                let mut disputes = Vec::with_capacity(n as usize);
                let mut last: Option<(Vec<u8>, Vec<u8>)> = None;
                for _ in 0..n {
                    let (a, b) = (r.peer()?, r.peer()?);
                    // Each pair in ascending order, the pairs too: one encoding per list.
                    let key = (a.to_bytes(), b.to_bytes());
                    if key.0 >= key.1 || last.as_ref().is_some_and(|last| *last >= key) {
                        return Err(ControlError::Unordered);
                    }
                    last = Some(key);
                    disputes.push(PairDispute(a, b));
                }
                ControlBody::SasReveal { epoch, reveal: GroupSasReveal { nonce, disputes } }
            }
            0x08 => ControlBody::Heartbeat { epoch },
            0x09 => ControlBody::Leave { epoch },
            0x0A => ControlBody::Uplink { epoch, kbps: u32::from_be_bytes(r.take()?) },
            _ => ControlBody::Topology { epoch, topology: r.topology()? },
        };
        if !r.0.is_empty() {
            return Err(ControlError::TrailingBytes(r.0.len()));
        }
        Ok(GroupControl { call_id, body })
    }
}

/// Checks that `peer` sorts after `last` (the bytes of the one before it); returns `peer`'s bytes.
fn ascending(last: Option<Vec<u8>>, peer: &PeerId) -> Result<Vec<u8>, ControlError> {
    let bytes = peer.to_bytes();
    match last {
        Some(last) if last >= bytes => Err(ControlError::Unordered),
        _ => Ok(bytes),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ControlError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(ControlError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    /// A topology: `00` (mesh) or `01 || forwarder's sender index`.
    fn topology(&mut self) -> Result<Topology, ControlError> {
        match self.take()? {
            [0] => Ok(Topology::Mesh),
            [1] => {
                let [forwarder] = self.take()?;
                Ok(Topology::Forward { forwarder: SenderIndex(forwarder) })
            }
            _ => Err(ControlError::BadTopology),
        }
    }

    fn peer(&mut self) -> Result<PeerId, ControlError> {
        let [len] = self.take()?;
        let len = len as usize;
        if len == 0 || len > MAX_PEER_ID_LEN {
            return Err(ControlError::BadPeerId);
        }
        let bytes = self.0.get(..len).ok_or(ControlError::Truncated)?;
        self.0 = &self.0[len..];
        let peer = PeerId::from_bytes(bytes).map_err(|_| ControlError::BadPeerId)?;
        // One encoding per PeerId: whatever parses must write back to the same bytes.
        if peer.to_bytes() != bytes {
            return Err(ControlError::BadPeerId);
        }
        Ok(peer)
    }

    fn members(&mut self) -> Result<Vec<RosterEntry>, ControlError> {
        let [n] = self.take()?;
        if n == 0 || n as usize > MAX_MEMBERS {
            return Err(ControlError::BadMemberCount(n as usize));
        }
        let mut members: Vec<RosterEntry> = Vec::with_capacity(n as usize);
        let mut last = None;
        for _ in 0..n {
            let [index] = self.take()?;
            let entry = RosterEntry { index: SenderIndex(index), peer: self.peer()? };
            last = Some(ascending(last, &entry.peer)?);
            if members.iter().any(|m| m.index == entry.index) {
                return Err(ControlError::DuplicateIndex(index));
            }
            members.push(entry);
        }
        Ok(members)
    }
}
