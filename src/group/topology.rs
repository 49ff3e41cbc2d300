//! How a group call's media flows (`protocols/group-control-v1.md`, "Topology"): a mesh, where
//! every member sends its one sealed frame to every other member, or one member forwarding the
//! others' sealed frames unchanged (an SFU-in-a-peer, `protocols/group-media-v1.md`,
//! "Forwarding"). The sequencer chooses it with every commit ([`choose`]) from the members'
//! measured uplinks, so every member takes the same topology with the epoch.

use crate::crypto::sender_key::SenderIndex;

/// Most members a mesh carries when nothing says their uplinks cannot: every member then sends
/// three streams, 3 × 64 kbit/s of audio, which any broadband uplink carries.
pub const MESH_MAX: usize = 4;
/// What one audio stream costs on the wire, kbit/s: Opus at 32 (48 boosted on a calm link) with a
/// redundant copy of the frame before while the link is unknown, plus QUIC, UDP and IP headers
/// (about 20 kbit/s at 50 datagrams a second). The budget the chooser counts streams in.
pub const AUDIO_STREAM_KBPS: u32 = 64;

/// An epoch's media topology, as a commit carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// Every member sends its frames to every other member.
    #[default]
    Mesh,
    /// Every member sends its frames to `forwarder`, which forwards them to every member but
    /// their origin (and sends its own to everyone).
    Forward {
        /// The forwarding member's sender index.
        forwarder: SenderIndex,
    },
}

impl Topology {
    /// The wire form: `00` (mesh) or `01 || forwarder's sender index`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Topology::Mesh => out.push(0),
            Topology::Forward { forwarder } => out.extend_from_slice(&[1, forwarder.0]),
        }
    }

    /// The forwarder, if any.
    pub fn forwarder(&self) -> Option<SenderIndex> {
        match self {
            Topology::Mesh => None,
            Topology::Forward { forwarder } => Some(*forwarder),
        }
    }
}

/// What a member's setting asks of the topology (`--group-topology`). Only the sequencer's
/// setting counts: it chooses for everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopologyMode {
    /// Chosen from the members' measured uplinks ([`choose`]).
    #[default]
    Auto,
    /// Always a mesh.
    Mesh,
    /// Always a forwarder once there are three members (two have nothing to forward): the member
    /// with the best measured uplink.
    Forward,
}

impl std::str::FromStr for TopologyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(TopologyMode::Auto),
            "mesh" => Ok(TopologyMode::Mesh),
            "forward" => Ok(TopologyMode::Forward),
            other => Err(format!("unknown group topology {other:?} (auto, mesh or forward)")),
        }
    }
}

impl std::fmt::Display for TopologyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TopologyMode::Auto => "auto",
            TopologyMode::Mesh => "mesh",
            TopologyMode::Forward => "forward",
        })
    }
}

/// One member as the chooser sees it: its sender index and its last reported uplink (kbit/s;
/// `None`: not measured or not reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Its sender index.
    pub index: SenderIndex,
    /// Its uplink, kbit/s.
    pub uplink_kbps: Option<u32>,
}

/// The topology of an epoch whose `members` are given in member order (PeerId bytes), each stream
/// costing `stream_kbps`. Deterministic: the same inputs give every member the same answer.
///
/// - Two members or fewer, or `Mesh` asked for: a mesh (a forwarder would have nothing to forward).
/// - `Forward` asked for: the member with the highest uplink forwards (unmeasured counts as 0; a
///   tie goes to the first in member order).
/// - `Auto`: a mesh if every member's uplink carries the `n − 1` streams a mesh asks of it (an
///   unmeasured uplink is trusted to, up to [`MESH_MAX`] members, and not beyond). Otherwise the
///   member with the highest measured uplink forwards, if it carries the `(n − 1)²` streams a
///   forwarder sends (its own to `n − 1`, and `n − 2` others' to each of `n − 1`); if none does, a
///   mesh still (forwarding would only overload the one member a mesh spares).
pub fn choose(mode: TopologyMode, members: &[Candidate], stream_kbps: u32) -> Topology {
    let n = members.len();
    if n <= 2 || mode == TopologyMode::Mesh {
        return Topology::Mesh;
    }
    // Highest uplink; the first in member order on a tie.
    let best = members.iter().fold(None::<&Candidate>, |best, m| match best {
        Some(b) if b.uplink_kbps.unwrap_or(0) >= m.uplink_kbps.unwrap_or(0) => Some(b),
        _ => Some(m),
    });
    let best = best.expect("at least three members");
    if mode == TopologyMode::Forward {
        return Topology::Forward { forwarder: best.index };
    }
    let streams = |k: usize| u64::from(stream_kbps) * k as u64;
    let mesh_ok = members.iter().all(|m| match m.uplink_kbps {
        Some(kbps) => u64::from(kbps) >= streams(n - 1),
        None => n <= MESH_MAX,
    });
    if mesh_ok {
        return Topology::Mesh;
    }
    match best.uplink_kbps {
        Some(kbps) if u64::from(kbps) >= streams((n - 1) * (n - 1)) => Topology::Forward { forwarder: best.index },
        _ => Topology::Mesh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(uplinks: &[Option<u32>]) -> Vec<Candidate> {
        uplinks.iter().enumerate().map(|(i, u)| Candidate { index: SenderIndex(i as u8), uplink_kbps: *u }).collect()
    }

    fn forward(i: u8) -> Topology {
        Topology::Forward { forwarder: SenderIndex(i) }
    }

    #[test]
    fn small_groups_with_unmeasured_or_ample_uplinks_are_a_mesh() {
        for n in 1..=MESH_MAX {
            assert_eq!(choose(TopologyMode::Auto, &members(&vec![None; n]), 64), Topology::Mesh, "{n}");
        }
        assert_eq!(choose(TopologyMode::Auto, &members(&[Some(192), Some(5000), None, Some(192)]), 64), Topology::Mesh);
        // Two members: nothing to forward, whatever is asked.
        assert_eq!(choose(TopologyMode::Forward, &members(&[Some(10), Some(9000)]), 64), Topology::Mesh);
    }

    #[test]
    fn a_member_whose_uplink_cannot_carry_the_mesh_makes_the_best_uplink_forward() {
        // 4 members: a mesh asks 3 × 64 = 192 of each; member 2 has 100. Member 1 (9 × 64 = 576
        // needed) forwards.
        let m = members(&[Some(1000), Some(2000), Some(100), None]);
        assert_eq!(choose(TopologyMode::Auto, &m, 64), forward(1));
        // Nobody can carry a forwarder's 9 streams: a mesh still.
        let m = members(&[Some(500), Some(500), Some(100), None]);
        assert_eq!(choose(TopologyMode::Auto, &m, 64), Topology::Mesh);
    }

    #[test]
    fn past_four_members_an_unmeasured_uplink_is_not_trusted_with_a_mesh() {
        let mut uplinks = vec![None; 6];
        assert_eq!(choose(TopologyMode::Auto, &members(&uplinks), 64), Topology::Mesh, "no forwarder measured");
        uplinks[4] = Some(25 * 64);
        assert_eq!(choose(TopologyMode::Auto, &members(&uplinks), 64), forward(4));
        // Everyone measured and able to carry five streams: a mesh.
        assert_eq!(choose(TopologyMode::Auto, &members(&[Some(320); 6]), 64), Topology::Mesh);
    }

    #[test]
    fn forced_modes_and_ties_are_deterministic() {
        let m = members(&[Some(300), Some(800), Some(800), None]);
        assert_eq!(choose(TopologyMode::Forward, &m, 64), forward(1), "a tie goes to the first in member order");
        assert_eq!(choose(TopologyMode::Forward, &members(&[None; 3]), 64), forward(0));
        assert_eq!(choose(TopologyMode::Mesh, &members(&[Some(1); 8]), 64), Topology::Mesh);
        for mode in ["auto", "mesh", "forward"] {
            assert_eq!(mode.parse::<TopologyMode>().unwrap().to_string(), mode);
        }
        assert!("sfu".parse::<TopologyMode>().is_err());
    }
}
