//! The call as the user sees it: [`CallInfo`] (state, emoji, path, media stats), the path kind,
//! the history record a call leaves, and matching what `hail sas confirm` names against the call.

use super::*;

/// One emoji of the SAS, for people and scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SasEmoji {
    /// The emoji.
    pub emoji: String,
    /// Its English name.
    pub name: String,
}

/// A call as `hail status` and the events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The call id.
    pub call_id: CallId,
    /// Who called.
    pub direction: CallDirection,
    /// The other side.
    #[serde(with = "crate::store::contact::peer_id_text")]
    pub peer_id: PeerId,
    /// Their contact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Name>,
    /// The caller is not a contact.
    pub unknown: bool,
    /// Where the call is.
    pub state: CallState,
    /// The four emoji, once the secure channel is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas: Option<Vec<SasEmoji>>,
    /// The SAS as one line ("🦊 fox  🌵 cactus  …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sas_text: Option<String>,
    /// The contact's verification state.
    pub verification: Verification,
    /// We send video (asked for with the call, or switched on since).
    pub video: bool,
    /// The peer sends video; when it does not, `hail status` shows "video paused".
    pub remote_video: bool,
    /// The peer's microphone is muted.
    pub remote_muted: bool,
    /// When the call started, ms since the Unix epoch.
    pub started_at_ms: u64,
    /// When it was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at_ms: Option<u64>,
    /// Seconds since it was answered (or how long it lasted).
    pub duration_secs: u64,
    /// Our microphone is muted.
    pub muted: bool,
    /// The audio, once it flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioStats>,
    /// The video (sending and receiving, in the call's media), once the call is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_stats: Option<VideoStats>,
    /// The network path, once the secure channel is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<CallPath>,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// The end reason, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_description: Option<String>,
    /// This call is an invitation into a group call (`hail status` shows the group under `group`
    /// once it is joined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupRing>,
}

/// A group invitation as it rings: which group, and who else is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRing {
    /// The group call's id.
    pub call_id: CallId,
    /// The other members the inviter named (contact names, else PeerIds).
    pub with: Vec<String>,
}

/// The network path a call's media takes, for `hail status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallPath {
    /// `direct_lan` (a private address: the same LAN), `direct_punched` (the peer is behind NAT and
    /// we reached the public mapping it advertised), `direct` (a public address of the peer's own),
    /// `relayed` (through a media relay: `src/relay.rs`).
    pub kind: String,
    /// The peer's address on this path.
    pub remote: String,
    /// QUIC's round-trip time, ms.
    pub rtt_ms: f64,
}

impl CallPath {
    /// Classifies the path to `remote`, given the candidates the peer advertised.
    pub fn classify(remote: SocketAddr, peer_candidates: &[String], rtt: Duration) -> Self {
        let ip = remote.ip();
        let private = |ip| IpScope::of(ip).is_local_network();
        let peer_behind_nat =
            peer_candidates.iter().filter_map(|c| c.parse::<SocketAddr>().ok()).any(|c| private(c.ip()));
        let kind = if private(ip) {
            "direct_lan"
        } else if peer_behind_nat && peer_candidates.contains(&remote.to_string()) {
            "direct_punched"
        } else {
            "direct"
        };
        CallPath { kind: kind.into(), remote: remote.to_string(), rtt_ms: rtt.as_secs_f64() * 1000.0 }
    }
}

impl LiveCall {
    /// The network path of `link` (the call's own, once it is up), while the call lasts.
    pub(super) fn path(&self, link: Option<&PeerLink>) -> Option<CallPath> {
        let link = link.filter(|_| self.session.state() != CallState::Ended)?;
        let (remote, rtt) = (link.remote_address()?, link.rtt()?);
        let mut p = CallPath::classify(remote, &self.remote_candidates, rtt);
        if Some(remote) == self.relay_mine {
            p.kind = "relayed".into();
        }
        Some(p)
    }

    /// The call as the user sees it; the path is `link`'s (the call's own, once it is up).
    pub(super) fn info(&self, link: Option<&PeerLink>) -> CallInfo {
        let s = &self.session;
        let now = Instant::now();
        let wall = |t: Instant| self.started_wall_ms + t.saturating_duration_since(s.started()).as_millis() as u64;
        let sas = s.sas();
        CallInfo {
            call_id: s.id(),
            direction: match s.role() {
                Role::Caller => CallDirection::Outgoing,
                Role::Callee => CallDirection::Incoming,
            },
            peer_id: s.peer(),
            contact: self.contact.as_ref().map(|c| c.name.clone()),
            unknown: self.contact.is_none(),
            state: s.state(),
            sas: sas.map(|sas| {
                let emoji = sas.emoji_in(s.sas_table());
                emoji.iter().map(|e| SasEmoji { emoji: e.glyph.into(), name: e.name.into() }).collect()
            }),
            sas_text: sas.map(|sas| sas.text_in(s.sas_table())),
            verification: self.contact.as_ref().map(|c| c.verification).unwrap_or_default(),
            video: s.video(),
            remote_video: self.remote_video,
            remote_muted: self.remote_muted,
            muted: self.muted,
            audio: self.media.as_ref().map(CallMedia::audio_stats),
            video_stats: self.media.as_ref().map(CallMedia::video_stats),
            path: self.path(link),
            started_at_ms: self.started_wall_ms,
            answered_at_ms: s.answered_at().map(wall),
            duration_secs: s
                .answered_at()
                .map(|a| s.ended_at().unwrap_or(now).saturating_duration_since(a).as_secs())
                .unwrap_or(0),
            end_reason: s.end_reason().cloned(),
            end_description: s.end_reason().map(EndReason::describe),
            group: self.group_ring.clone(),
        }
    }

    pub(super) fn record(&self) -> CallRecord {
        let info = self.info(None);
        let answered = info.answered_at_ms.is_some();
        let outcome = match info.end_reason.clone().unwrap_or(EndReason::ConnectionLost) {
            EndReason::HungUp { .. } => CallOutcome::Completed,
            EndReason::ConnectionLost if answered => CallOutcome::Completed,
            EndReason::Rejected { .. } => CallOutcome::Rejected,
            EndReason::Busy => CallOutcome::Busy,
            EndReason::NoAnswer | EndReason::Cancelled { .. } => CallOutcome::Missed,
            EndReason::Unavailable { .. } => CallOutcome::Refused,
            other => CallOutcome::Failed { reason: other.describe() },
        };
        let ended = self.session.ended_at().unwrap_or_else(Instant::now);
        CallRecord {
            call_id: info.call_id.to_string(),
            peer_id: info.peer_id,
            contact: info.contact,
            direction: info.direction,
            video: info.video,
            started_at_ms: info.started_at_ms,
            answered_at_ms: info.answered_at_ms,
            ended_at_ms: self.started_wall_ms
                + ended.saturating_duration_since(self.session.started()).as_millis() as u64,
            outcome,
            group: None,
        }
    }
}

/// Whether `given` names call `id`: the whole id or a prefix of at least 6 hex digits.
pub(super) fn id_matches(id: &CallId, given: &str) -> bool {
    let given = given.trim().to_ascii_lowercase();
    given.len() >= 6 && id.to_string().starts_with(&given)
}

/// Whether `given` is the four emoji of `sas`, in order: as glyphs, as names, or as "glyph name"
/// pairs (what `hail call` prints), ignoring case, commas and spacing.
pub(super) fn sas_matches(sas: &[SasEmoji], given: &str) -> bool {
    let normal = |s: &str| {
        s.to_lowercase().replace(',', " ").replace('\u{fe0f}', "").split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let given = normal(given);
    if sas.is_empty() || given.is_empty() {
        return false;
    }
    let glyphs = sas.iter().map(|e| e.emoji.as_str()).collect::<Vec<_>>();
    let names = sas.iter().map(|e| e.name.as_str()).collect::<Vec<_>>();
    let pairs = sas.iter().map(|e| format!("{} {}", e.emoji, e.name)).collect::<Vec<_>>();
    [glyphs.join(""), glyphs.join(" "), names.join(" "), pairs.join(" ")].iter().any(|form| normal(form) == given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sas_confirmation_must_name_the_call_and_its_emoji() {
        let id = CallId([0xAB; 16]);
        assert!(id_matches(&id, "abababab"));
        assert!(id_matches(&id, &id.to_string().to_uppercase()));
        assert!(!id_matches(&id, "abab"), "too short a prefix names nothing");
        assert!(!id_matches(&id, "abababac"));
        let sas: Vec<SasEmoji> = [("🦊", "fox"), ("🌵", "cactus"), ("🚀", "rocket"), ("⚓", "anchor")]
            .iter()
            .map(|(e, n)| SasEmoji { emoji: (*e).into(), name: (*n).into() })
            .collect();
        for ok in [
            "fox cactus rocket anchor",
            "Fox, Cactus, Rocket, Anchor",
            "🦊🌵🚀⚓",
            "🦊 🌵 🚀 ⚓",
            "🦊 fox  🌵 cactus  🚀 rocket  ⚓ anchor",
        ] {
            assert!(sas_matches(&sas, ok), "{ok}");
        }
        for bad in ["", "fox cactus rocket", "cactus fox rocket anchor", "fox cactus rocket anchor fox", "🦊🌵🚀🐙"]
        {
            assert!(!sas_matches(&sas, bad), "{bad}");
        }
    }

    #[test]
    fn paths_are_told_apart_by_the_address_and_the_peers_candidates() {
        let rtt = Duration::from_millis(12);
        let lan = CallPath::classify("192.168.1.2:4000".parse().unwrap(), &["192.168.1.2:4000".into()], rtt);
        assert_eq!((lan.kind.as_str(), lan.rtt_ms), ("direct_lan", 12.0));
        // The peer advertised a home address and its NAT's mapping; we reached the mapping.
        let nat = ["192.168.2.2:5000".to_owned(), "11.0.0.12:5000".to_owned()];
        assert_eq!(CallPath::classify("11.0.0.12:5000".parse().unwrap(), &nat, rtt).kind, "direct_punched");
        // A public peer (only public candidates), or an address it did not advertise.
        assert_eq!(CallPath::classify("11.0.0.1:5001".parse().unwrap(), &["11.0.0.1:5001".into()], rtt).kind, "direct");
        assert_eq!(CallPath::classify("11.0.0.12:6000".parse().unwrap(), &nat, rtt).kind, "direct");
        // Link-local IPv6 and IPv4-mapped private addresses are on the LAN too (ip_scope).
        for lan in ["[fe80::1]:4000", "[::ffff:192.168.1.2]:4000"] {
            assert_eq!(CallPath::classify(lan.parse().unwrap(), &[], rtt).kind, "direct_lan", "{lan}");
        }
    }
}
