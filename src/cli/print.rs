//! What the CLI prints for people (with `--json`, the raw replies instead).

use hail::discovery::VisiblePeer;
use hail::node::{CallInfo, GroupInfo, IdentityInfo, ParticipantInfo, SafetyNumber, StatusInfo};
use hail::peer_text::sanitize;
use hail::store::{CallDirection, CallOutcome, CallRecord, Contact, Verification};
use serde_json::Value;

use super::args::{ClientCmd, ContactsCmd};
use super::out::{errln, jsonln, outln};

/// Who the call is with.
pub fn who(c: &CallInfo) -> String {
    match &c.contact {
        Some(n) => n.to_string(),
        None => format!("{} (unknown)", c.peer_id),
    }
}

/// The call's state in words.
pub fn state_label(c: &CallInfo) -> String {
    serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `1h 02m 03s`, `2m 03s`, `4s`.
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

fn outcome_label(o: &CallOutcome) -> String {
    match o {
        CallOutcome::Completed => "completed".into(),
        CallOutcome::Rejected => "declined".into(),
        CallOutcome::Busy => "busy".into(),
        CallOutcome::Missed => "missed".into(),
        CallOutcome::Refused => "refused".into(),
        CallOutcome::Failed { .. } => "failed".into(),
    }
}

/// The video lines of `hail status`.
fn print_video(c: &CallInfo) {
    let peer = if c.remote_video { "on" } else { "video paused" };
    let Some(v) = &c.video_stats else {
        outln!("Video     {}; peer {peer}", if c.video { "on" } else { "off" });
        return;
    };
    let (s, r) = (&v.send, &v.receive);
    let ours = if !v.sending {
        "off".to_owned()
    } else if v.paused_for_bandwidth {
        "paused (no bandwidth)".to_owned()
    } else {
        format!(
            "{} {}x{} {} fps {} kbps (target {})",
            s.encoder,
            s.width,
            s.height,
            v.send_fps,
            v.send_bitrate / 1000,
            s.target_bitrate / 1000
        )
    };
    outln!("Video     us → peer: {ours}");
    if v.remote_sending && v.remote_paused_for_bandwidth {
        outln!("          peer → us: paused by the peer (no bandwidth), keyframe requests {}", r.keyframe_requests);
    } else if v.remote_sending {
        outln!(
            "          peer → us: {}x{} {} fps {} kbps, freezes {} ({:.1} s), keyframe requests {}{}{}",
            r.width,
            r.height,
            v.receive_fps,
            v.receive_bitrate / 1000,
            r.freezes,
            r.frozen_ms as f64 / 1000.0,
            r.keyframe_requests,
            r.glass_to_glass_ms.map(|g| format!(", glass-to-glass {g:.0} ms")).unwrap_or_default(),
            r.av_sync_ms.map(|a| format!(", A/V {a:+.0} ms")).unwrap_or_default(),
        );
    } else {
        outln!("          peer → us: {peer}");
    }
    for e in [&v.input_error, &v.output_error].into_iter().flatten() {
        outln!("          {e}");
    }
}

/// A participant's name for people.
fn participant(p: &ParticipantInfo) -> String {
    match (&p.name, p.me) {
        (_, true) => "you".into(),
        (Some(n), _) => n.to_string(),
        (None, _) => format!("{} (not a contact)", p.peer_id),
    }
}

/// The group lines of `hail status`.
pub fn print_group(g: &GroupInfo) {
    if let Some(reason) = &g.end_reason {
        outln!("Last group call {}: {}", g.call_id, reason.replace('_', " "));
        return;
    }
    let epoch = g.epoch.map(|e| format!(", epoch {e}")).unwrap_or_default();
    outln!("Group     {} ({}{epoch})", g.state.replace('_', " "), g.call_id);
    for p in &g.participants {
        let index = p.sender_index.map(|i| format!("#{i} ")).unwrap_or_default();
        let dominant = g.dominant.as_deref() == Some(p.peer_id.to_base58().as_str());
        let talk = match (p.speaking, dominant) {
            (_, true) => ", speaking (loudest)",
            (true, false) => ", speaking",
            _ => "",
        };
        let muted = if p.muted { ", muted" } else { "" };
        let path = p.path.as_ref().map(|p| format!(", {} {:.0} ms", p.kind.replace('_', " "), p.rtt_ms)).unwrap_or_default();
        let uplink = p.uplink_kbps.map(|k| format!(", uplink {k} kbit/s")).unwrap_or_default();
        let forwards = if p.forwarder { ", forwards" } else { "" };
        let video = if p.video { ", video on" } else { "" };
        let seen = g
            .video
            .as_ref()
            .and_then(|v| v.participants.iter().find(|v| v.member == p.peer_id))
            .filter(|v| v.receive.frames_rendered > 0)
            .map(|v| format!(" ({} fps, {} kbps, {} shown)", v.fps, v.kbps, v.receive.frames_rendered))
            .unwrap_or_default();
        // Our video (or what we forward) reaches it at half the frame rate while its link is slow.
        let thinned = g
            .video
            .as_ref()
            .and_then(|v| v.participants.iter().find(|v| v.member == p.peer_id))
            .filter(|v| v.thinning.layers == 1 && v.thinning.base_sent > 0)
            .map_or("", |_| ", sent half-rate video (slow link)");
        // Its frames (audio and video) relayed by the forwarder, as its signed lists judge them
        // (group-media-v1).
        let signed = g
            .audio
            .as_ref()
            .and_then(|a| a.participants.iter().find(|a| a.member == p.peer_id))
            .map(|a| a.authenticity)
            .filter(|a| a.verified + a.forged + a.unverified > 0)
            .map(|a| match a.forged {
                0 => format!(", relayed frames {} verified, {} unverified", a.verified, a.unverified),
                n => format!(", relayed frames {} verified, {} unverified, {n} FORGED", a.verified, a.unverified),
            })
            .unwrap_or_default();
        outln!(
            "          {index}{} — {}{path}{uplink}{forwards}{muted}{talk}{video}{seen}{thinned}{signed}",
            participant(p),
            p.state
        );
    }
    if g.epoch.is_some() {
        let distrusted = g.audio.as_ref().and_then(|a| a.distrusted_forwarder);
        match g.participants.iter().find(|p| p.forwarder) {
            Some(f) if distrusted == Some(f.peer_id) => outln!(
                "Topology  forwarded by {}, NOT TRUSTED: it delivered a forged frame; we send to and hear every member directly",
                participant(f)
            ),
            Some(f) => outln!("Topology  forwarded by {} (each member sends once, to it)", participant(f)),
            None => outln!("Topology  mesh (each member sends to every other)"),
        }
    }
    if let Some(v) = g.video.as_ref().filter(|v| v.sending) {
        outln!(
            "Video     sending {}x{} {} fps {} kbps ({} frames, {} keyframes) to every member",
            v.send.width,
            v.send.height,
            v.send_fps,
            v.send_kbps,
            v.send.frames,
            v.send.keyframes
        );
    }
    match (&g.emoji_text, &g.emoji_failure) {
        (Some(emoji), _) => outln!("Emoji     {emoji}  (the whole group sees the same four; they change when someone joins or leaves)"),
        (None, Some(why)) => outln!("Emoji     NONE: {}", sanitize(why)),
        (None, None) => outln!("Emoji     not yet (every member's secure channel must be up)"),
    }
}

pub fn reply(command: &ClientCmd, value: Value) -> Result<(), serde_json::Error> {
    match command {
        ClientCmd::Id { qr, .. } => {
            let qr = *qr;
            let id: IdentityInfo = serde_json::from_value(value)?;
            outln!("PeerId  {}", id.peer_id);
            outln!("Name    {}", id.name);
            outln!("Card    {}", id.card);
            for a in &id.addresses {
                outln!("Address {a}");
            }
            if qr {
                match qrcode::QrCode::new(id.card.to_uppercase().as_bytes()) {
                    Ok(code) => outln!(
                        "\n{}",
                        code.render::<qrcode::render::unicode::Dense1x2>()
                            .dark_color(qrcode::render::unicode::Dense1x2::Light)
                            .light_color(qrcode::render::unicode::Dense1x2::Dark)
                            .build()
                    ),
                    Err(e) => errln!("hail: cannot draw a QR code for this card: {e}"),
                }
            }
        }
        ClientCmd::Status => {
            let s: StatusInfo = serde_json::from_value(value)?;
            outln!("PeerId    {}", s.peer_id);
            outln!("Version   {}", s.version);
            outln!("Home      {}", s.home.display());
            outln!("Uptime    {}", humantime::format_duration(std::time::Duration::from_secs(s.uptime_secs)));
            outln!("Contacts  {} ({} blocked)", s.contacts, s.blocked);
            let n = &s.network;
            outln!(
                "Listening {}",
                if n.listen_addresses.is_empty() { "-".into() } else { n.listen_addresses.join(" ") }
            );
            outln!(
                "Peers     {} connected, {} visible, {} in the DHT routing table",
                n.connected_peers,
                n.visible_peers,
                n.routing_table_peers
            );
            outln!(
                "DHT       {} ({} mode{}), {} records stored for others, {} refused",
                n.dht_protocol,
                serde_json::to_value(n.dht_mode).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                if n.dht_serving { ", serving" } else { "" },
                n.records_stored,
                n.records_rejected
            );
            outln!("mDNS      {}", if n.mdns { "on" } else { "off" });
            let reachability = sanitize(&n.reachability);
            let mut reach = format!("Reach     {}", if reachability.is_empty() { "unknown" } else { &reachability });
            if !n.relayed_via.is_empty() {
                let relays: Vec<String> = n.relayed_via.iter().map(|r| sanitize(r)).collect();
                reach.push_str(&format!("; reachable through relay {}", relays.join(", ")));
            }
            if let Some(r) = &s.calls_reflexive {
                reach.push_str(&format!("; calls seen from outside as {}", sanitize(r)));
            }
            if n.relay_serving {
                reach.push_str("; relaying for others");
            }
            outln!("{reach}");
            if let (Some(why), hail::discovery::config::RelayMode::On) = (&n.relay_not_serving, n.relay) {
                outln!("Relay     on, not serving: {}", sanitize(why));
            }
            outln!("Record    {}", record_line(n.record_published_at_ms, n.record_findable));
            if let Some(m) = &n.media_relay {
                outln!(
                    "Relay     {} media allocations now ({} made, {} refused); {} packets forwarded, {} refused, {} over rate",
                    m.allocations,
                    m.allocated,
                    m.requests_refused,
                    m.forwarded,
                    m.refused_packets,
                    m.over_rate
                );
            }
            for b in &n.bootstrap {
                outln!("Bootstrap {}  {}", b.address, sanitize(&b.state));
            }
            match &s.call {
                Some(c) if c.end_reason.is_none() => {
                    outln!("Call      {} with {} ({})", state_label(c), who(c), c.call_id);
                    if let Some(sas) = &c.sas_text {
                        outln!("Emoji     {sas}  ({})", verification_label(c.verification));
                    }
                    if let Some(p) = &c.path {
                        let remote = sanitize(&p.remote);
                        outln!("Path      {} via {remote}, rtt {:.0} ms", p.kind.replace('_', " "), p.rtt_ms);
                    }
                    if let Some(a) = &c.audio {
                        let r = &a.receive;
                        outln!(
                            "Audio     {} → peer {} kbps{}; peer → {} {} kbps{}",
                            a.input,
                            a.send_bitrate / 1000,
                            if a.muted { " (muted)" } else { "" },
                            a.output,
                            a.receive_bitrate / 1000,
                            if c.remote_muted { " (peer muted)" } else { "" }
                        );
                        outln!(
                            "          rtt {:.0} ms, jitter {:.1} ms, buffer {:.0} ms (target {:.0}), received {} lost {} late {} concealed {} fec {}",
                            a.rtt_ms,
                            r.jitter.jitter_ms,
                            r.jitter.buffered_ms,
                            r.jitter.target_ms,
                            r.jitter.received,
                            r.jitter.lost,
                            r.jitter.late,
                            r.jitter.concealed,
                            r.jitter.fec_recovered
                        );
                        if r.stretch.accelerated + r.stretch.expanded + r.jitter.dropped > 0 {
                            outln!(
                                "          stretched: {:.0} ms out ({:.2} %), {:.0} ms in ({:.2} %), frames dropped {}",
                                r.stretch.accelerated_ms,
                                r.stretch.accelerate_rate * 100.0,
                                r.stretch.expanded_ms,
                                r.stretch.expand_rate * 100.0,
                                r.jitter.dropped
                            );
                        }
                        if r.bursts.bursts > 0 || r.jitter.recovery_delay_ms > 0.0 || a.send.peer_burst_mean > 0.0 {
                            let copies: Vec<String> =
                                a.send.copy_distances.iter().filter(|d| **d > 0).map(u8::to_string).collect();
                            outln!(
                                "          bursts in {} (longest {}, recent mean {:.1}), buffer +{:.0} ms for copies; peer's bursts mean {:.1}, our copies {} frames back",
                                r.bursts.bursts,
                                r.bursts.longest,
                                r.bursts.recent_mean,
                                r.jitter.recovery_delay_ms,
                                a.send.peer_burst_mean,
                                if copies.is_empty() { "none".to_owned() } else { copies.join(", ") }
                            );
                        }
                        outln!("          {}", processing_line(a));
                        for e in [&a.input_error, &a.output_error].into_iter().flatten() {
                            outln!("          {e}");
                        }
                    }
                    print_video(c);
                }
                Some(c) => outln!(
                    "Last call {} with {}: {}",
                    state_label(c),
                    who(c),
                    sanitize(c.end_description.as_deref().unwrap_or_default())
                ),
                None if s.group.is_some() => {}
                None => outln!("Call      none"),
            }
            if let Some(g) = &s.group {
                print_group(g);
            }
        }
        ClientCmd::Peers => {
            let peers: Vec<VisiblePeer> = serde_json::from_value(value)?;
            if peers.is_empty() {
                outln!("No peers visible yet.");
                return Ok(());
            }
            outln!(
                "{:52}  {:12}  {:22}  {:9}  {:9}  ADDRESSES",
                "PEER ID",
                "CONTACT",
                "FOUND VIA",
                "CONNECTED",
                "SEEN"
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            for p in &peers {
                let via: Vec<String> = p
                    .sources
                    .iter()
                    .filter_map(|s| serde_json::to_value(s).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let ago = now.saturating_sub(p.last_seen_ms) / 1000;
                outln!(
                    "{:52}  {:12}  {:22}  {:9}  {:9}  {}",
                    p.peer_id.to_base58(),
                    p.contact.as_ref().map(|n| n.as_str()).unwrap_or("-"),
                    if via.is_empty() { "-".into() } else { via.join(",") },
                    if p.connected { "yes" } else { "no" },
                    format!("{ago}s ago"),
                    p.addresses.iter().map(|a| sanitize(&a.to_string())).collect::<Vec<_>>().join(" ")
                );
            }
        }
        ClientCmd::Find { .. } => {
            let f: hail::node::FindOutcome = serde_json::from_value(value)?;
            let who = f.contact.as_ref().map(|n| n.to_string()).unwrap_or_else(|| f.found.peer_id.to_base58());
            let via =
                serde_json::to_value(f.found.via).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            outln!("Found {who} via {via} in {} ms (asked {} DHT peers)", f.found.elapsed_ms, f.found.asked);
            for a in &f.found.addresses {
                outln!("  {}", sanitize(&a.to_string()));
            }
        }
        ClientCmd::Bootstrap { .. } => {
            outln!("Bootstrapping; see `hail status` for progress.");
        }
        ClientCmd::Call { peers, .. } if peers.len() > 1 => {
            let g: GroupInfo = serde_json::from_value(value)?;
            outln!("Group call {} started: inviting {}. `hail status` shows who joined.", g.call_id, peers.join(", "));
        }
        ClientCmd::Add { peer } => {
            let g: GroupInfo = serde_json::from_value(value)?;
            outln!("Inviting {peer} into group call {}.", g.call_id);
        }
        ClientCmd::Leave => {
            let g: GroupInfo = serde_json::from_value(value)?;
            outln!("You left group call {}; it goes on for the others.", g.call_id);
        }
        ClientCmd::Hangup if value.get("participants").is_some() => {
            let g: GroupInfo = serde_json::from_value(value)?;
            outln!("You left group call {}; it goes on for the others.", g.call_id);
        }
        ClientCmd::Call { .. } => {
            let c: CallInfo = serde_json::from_value(value)?;
            outln!("Ringing {} (call {})", who(&c), c.call_id);
        }
        ClientCmd::Video { .. } if value.get("participants").is_some() => {
            let g: GroupInfo = serde_json::from_value(value)?;
            let on = g.participants.iter().any(|p| p.me && p.video);
            outln!("Video {} (group call {})", if on { "on" } else { "off" }, g.call_id);
        }
        ClientCmd::Video { .. } => {
            let c: CallInfo = serde_json::from_value(value)?;
            outln!("Video {} (call with {})", if c.video { "on" } else { "off" }, who(&c));
        }
        ClientCmd::Mute | ClientCmd::Unmute if value.get("participants").is_some() => {
            let g: GroupInfo = serde_json::from_value(value)?;
            let muted = g.participants.iter().any(|p| p.me && p.muted);
            outln!("Microphone {} (group call {})", if muted { "muted" } else { "on" }, g.call_id);
        }
        ClientCmd::Mute | ClientCmd::Unmute => {
            let c: CallInfo = serde_json::from_value(value)?;
            outln!("Microphone {} (call with {})", if c.muted { "muted" } else { "on" }, who(&c));
        }
        ClientCmd::Answer { .. } | ClientCmd::Reject | ClientCmd::Hangup => {
            let c: CallInfo = serde_json::from_value(value)?;
            outln!("Call with {}: {}", who(&c), state_label(&c));
        }
        ClientCmd::Sas(_) => {
            let c: Contact = serde_json::from_value(value)?;
            outln!("{} is marked verified: the emoji matched.", c.name);
        }
        ClientCmd::History { .. } => {
            let calls: Vec<CallRecord> = serde_json::from_value(value)?;
            if calls.is_empty() {
                outln!("No calls yet.");
            }
            for c in &calls {
                let when = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(c.started_at_ms),
                );
                let arrow = match c.direction {
                    CallDirection::Outgoing => "→",
                    CallDirection::Incoming => "←",
                };
                let duration = c.answered_at_ms.map(|a| format_duration(c.ended_at_ms.saturating_sub(a) / 1000));
                let who = match &c.group {
                    // A group call: everyone who was in it with us.
                    Some(peers) => format!(
                        "group: {}",
                        peers
                            .iter()
                            .map(|p| p.contact.as_ref().map(|n| n.to_string()).unwrap_or_else(|| p.peer_id.to_base58()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => c.contact.as_ref().map(|n| n.to_string()).unwrap_or_else(|| c.peer_id.to_base58()),
                };
                outln!("{when}  {arrow} {who:20}  {:10}  {}", outcome_label(&c.outcome), duration.unwrap_or_default());
            }
        }
        ClientCmd::Watch => {}
        ClientCmd::Contacts(ContactsCmd::List) => {
            let contacts: Vec<Contact> = serde_json::from_value(value)?;
            if contacts.is_empty() {
                outln!("No contacts yet. Add one with: hail contacts add NAME CARD");
                return Ok(());
            }
            let width = contacts.iter().map(|c| c.name.as_str().chars().count()).max().unwrap_or(4).max(4);
            outln!("{:width$}  {:52}  {:13}  BLOCKED", "NAME", "PEER ID", "VERIFIED");
            for c in &contacts {
                outln!(
                    "{:width$}  {:52}  {:13}  {}",
                    c.name.as_str(),
                    c.peer_id.to_base58(),
                    verification_label(c.verification),
                    if c.blocked { "yes" } else { "no" }
                );
            }
        }
        ClientCmd::Contacts(ContactsCmd::Verify { confirm, .. }) => {
            let v: SafetyNumber = serde_json::from_value(value)?;
            outln!("Safety number with {} ({}):\n", v.name, v.peer_id);
            for line in v.safety_number.split(' ').collect::<Vec<_>>().chunks(4) {
                outln!("    {}", line.join(" "));
            }
            outln!();
            if *confirm {
                outln!("{} is marked verified ({}).", v.name, verification_label(v.verification));
            } else {
                outln!(
                    "Compare it with {} in person or on a channel you trust; if it matches, run: hail contacts verify {} --confirm",
                    v.name,
                    v.name
                );
            }
        }
        ClientCmd::Contacts(cmd) => {
            let c: Contact = serde_json::from_value(value)?;
            match cmd {
                ContactsCmd::Add { .. } => {
                    outln!("Added {} ({})", c.name, c.peer_id);
                    if c.display_name.is_none() {
                        outln!(
                            "Note: a bare PeerId has no checksum. Compare it with {} character by character, or add them from their card.",
                            c.name
                        );
                    }
                }
                ContactsCmd::Remove { .. } => outln!("Removed {} ({})", c.name, c.peer_id),
                ContactsCmd::Rename { old, .. } => outln!("Renamed {old} to {}", c.name),
                ContactsCmd::Block { .. } => {
                    outln!("Blocked {}: their calls will be refused without ringing", c.name)
                }
                ContactsCmd::Unblock { .. } => outln!("Unblocked {}", c.name),
                ContactsCmd::List | ContactsCmd::Verify { .. } => {}
            }
        }
    }
    Ok(())
}

pub fn verification_label(v: Verification) -> &'static str {
    match v {
        Verification::Unverified => "no",
        Verification::SafetyNumber => "safety number",
        Verification::Sas => "emoji (SAS)",
    }
}

/// `hail devices`: what the audio host reports and the cameras there are, with their modes (no
/// daemon needed).
pub fn devices(json: bool) -> std::process::ExitCode {
    let list = hail::media::io::list_devices();
    let cameras = hail::media::video::camera::list_cameras(std::path::Path::new("/"));
    if json {
        let mut body = serde_json::to_value(&list).unwrap_or_default();
        body["cameras"] = serde_json::to_value(&cameras).unwrap_or_default();
        jsonln!("{}", serde_json::json!({ "ok": body }));
        return std::process::ExitCode::SUCCESS;
    }
    outln!("Audio host: {}", list.host);
    for (title, names, default) in
        [("Microphones", &list.inputs, &list.default_input), ("Speakers", &list.outputs, &list.default_output)]
    {
        outln!("{title}:");
        if names.is_empty() {
            outln!("  (none)");
        }
        for n in names {
            outln!("  {}{n}", if default.as_ref() == Some(n) { "* " } else { "  " });
        }
    }
    outln!("Cameras:");
    if cameras.is_empty() {
        outln!("  (none)");
    }
    for c in &cameras {
        outln!("    {} ({})", c.name, c.path.display());
        if let Some(problem) = &c.problem {
            outln!("      cannot be used: {problem}");
        }
        for line in c.mode_lines() {
            outln!("      {line}");
        }
    }
    outln!("Use one with --audio-in device:NAME / --audio-out device:NAME (part of the name is enough),");
    outln!("and --video-in camera (the first camera) / --video-in camera:NAME (part of its name, or /dev/videoN).");
    std::process::ExitCode::SUCCESS
}

/// Where the node's own peer record stands, for `hail status`.
fn record_line(published_at_ms: Option<u64>, findable: bool) -> String {
    let Some(at) = published_at_ms else {
        return "not in the DHT yet: peers cannot find this node there".into();
    };
    let now = hail::wall_clock::unix_ms(std::time::SystemTime::now());
    let ago = humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(at) / 1000));
    if findable {
        format!("published {ago} ago; findable")
    } else {
        format!("published {ago} ago, with addresses that have changed since: not findable until it is out again")
    }
}

/// `hail status`'s line on the microphone's echo cancellation, noise suppression and gain control.
fn processing_line(a: &hail::media::stats::AudioStats) -> String {
    let mut line = format!(
        "processing {} ({}): echo cancellation, noise suppression, gain control",
        if a.processing { "on" } else { "off" },
        a.processing_mode
    );
    if let Some(echo) = a.echo.filter(|_| a.processing) {
        if let Some(erle) = echo.erle_db {
            line += &format!("; echo {erle:.0} dB down");
        }
        if let Some(delay) = echo.delay_ms {
            line += &format!(", its delay {delay} ms");
        }
    }
    line
}
