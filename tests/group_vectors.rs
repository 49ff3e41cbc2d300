//! The group-call cryptography against `protocols/vectors/group-sas-v1.json` and
//! `group-media-v1.json`, which `scripts/group-vectors.py` computes with an implementation of its
//! own: the group emoji of a 3-member group, after a join and with someone in the middle of one
//! pair, sealed group frames with their clear headers, RFC 9605's header encodings, and a rekey (a
//! member leaves, another joins); and
//! `group-control-v1.json`: every group control message's bytes, and garbage with its error.

use std::collections::BTreeMap;

use hail::crypto::frame::FrameError;
use hail::crypto::group_sas::{GroupEpoch, GroupSasCommit, GroupSasReveal, GroupSasRound, PairDispute};
use hail::crypto::sas::{Sas, SasTable};
use hail::crypto::sender_key::{
    GroupFrameError, GroupFrameHeader, GroupMedia, KeyId, SenderBaseKey, SenderIndex, SenderKey, SenderKeyRing,
};
use hail::group::control::{ControlBody, ControlError, GroupControl, RosterEntry};
use hail::group::topology::Topology;
use hail::identity::Identity;
use hail::media::group_call::GroupReport;
use hail::media::group_call::{ForwardFilter, ForwardRefusal};
use hail::media::packet::{BurstReport, ReceiverReport};
use libp2p_identity::PeerId;
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("protocols/vectors").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    data_encoding::HEXLOWER.decode(v.as_str().unwrap().as_bytes()).unwrap()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    hex(v).try_into().unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

fn items(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap()
}

/// The emoji of a vector.
fn sas_of(case: &Value) -> Sas {
    let want = Sas(items(&case["sas_indices"]).iter().map(|i| num(i) as u8).collect::<Vec<_>>().try_into().unwrap());
    assert_eq!(want.text_in(SasTable::V2), case["sas_text"].as_str().unwrap());
    want
}

/// A group case's members (checked to be in member order, with their commitments), epoch, nonces
/// and handshake hashes, by pair (both ways).
type SasCase = (Vec<PeerId>, GroupEpoch, Vec<[u8; 32]>, BTreeMap<(PeerId, PeerId), [u8; 32]>);

fn sas_case(call_id: [u8; 16], case: &Value) -> SasCase {
    let members: Vec<PeerId> =
        items(&case["members"]).iter().map(|m| Identity::from_seed(arr(&m["identity_seed"])).peer_id()).collect();
    let epoch = GroupEpoch::new(call_id, num(&case["epoch"]), members.iter().rev().copied()).unwrap();
    assert_eq!(epoch.members(), members, "members are sorted by their PeerId bytes");
    let nonces: Vec<[u8; 32]> = items(&case["members"]).iter().map(|m| arr(&m["nonce"])).collect();
    for (i, m) in items(&case["members"]).iter().enumerate() {
        assert_eq!(members[i].to_bytes(), hex(&m["peer_id"]));
        assert_eq!(epoch.commitment(&members[i], &nonces[i]).to_vec(), hex(&m["commitment"]));
    }
    let mut pair_hash = BTreeMap::new();
    for p in items(&case["pairs"]) {
        let (a, b, h) = (num(&p["a"]) as usize, num(&p["b"]) as usize, arr::<32>(&p["handshake_hash"]));
        pair_hash.insert((members[a], members[b]), h);
        pair_hash.insert((members[b], members[a]), h);
    }
    (members, epoch, nonces, pair_hash)
}

/// Runs the round of every member to the end (every commitment to everyone, then every reveal)
/// from the handshake hashes each member holds (`held[(me, other)]`), with `deliver` rewriting a
/// commitment on its way from one member (index) to another; returns each member's round.
fn run_group_sas(
    (members, epoch, nonces, held): &SasCase,
    deliver: impl Fn(usize, usize, GroupSasCommit) -> GroupSasCommit,
) -> Vec<GroupSasRound> {
    let (mut rounds, commits): (Vec<GroupSasRound>, Vec<_>) = members
        .iter()
        .zip(nonces)
        .map(|(me, nonce)| {
            let transcripts = members.iter().filter(|p| *p != me).map(|p| (*p, held[&(*me, *p)])).collect();
            GroupSasRound::new(epoch.clone(), *me, *nonce, transcripts).unwrap()
        })
        .unzip();
    let mut reveals = Vec::new();
    for (i, round) in rounds.iter_mut().enumerate() {
        let mut reveal = None;
        for (j, commit) in commits.iter().enumerate().filter(|(j, _)| *j != i) {
            reveal = round.add_commitment(members[j], deliver(j, i, commit.clone())).unwrap();
        }
        let reveal = reveal.expect("the reveal comes with the last commitment");
        assert_eq!(reveal.nonce, nonces[i]);
        reveals.push(reveal);
    }
    for (i, round) in rounds.iter_mut().enumerate() {
        for (j, reveal) in reveals.iter().enumerate().filter(|(j, _)| *j != i) {
            round.add_reveal(members[j], reveal.clone()).unwrap();
        }
    }
    rounds
}

/// Checks an honest group's `case`: its `sas_input`, and every member's round ends on its emoji.
fn check_group_sas(call_id: [u8; 16], case: &Value) {
    let group = sas_case(call_id, case);
    let pairs: Vec<[u8; 32]> = items(&case["pairs"]).iter().map(|p| arr(&p["handshake_hash"])).collect();
    assert_eq!(group.1.sas_input(&pairs, &group.2).unwrap(), hex(&case["sas_input"]));
    let want = sas_of(case);
    for (i, round) in run_group_sas(&group, |_, _, c| c).iter().enumerate() {
        assert_eq!(round.result(), Some(Ok(want)), "member {i}");
        assert!(round.disputes().is_empty());
    }
}

/// Checks `honest`'s group with someone in the middle of one pair (`case`): each member's view
/// of the pairs gives its `sas_input`, and its round ends on its emoji. He rewrites each end's
/// report of the pair to what the other end holds.
fn check_group_sas_mitm(call_id: [u8; 16], honest: &Value, case: &Value) {
    let mut group = sas_case(call_id, honest);
    let (a, b) = (num(&case["a"]) as usize, num(&case["b"]) as usize);
    let (held_a, held_b): ([u8; 32], [u8; 32]) = (arr(&case["held_by_a"]), arr(&case["held_by_b"]));
    let (pa, pb) = (group.0[a], group.0[b]);
    group.3.insert((pa, pb), held_a);
    group.3.insert((pb, pa), held_b);
    let rounds = run_group_sas(&group, |from, to, mut commit| {
        match (from, to) {
            (f, t) if (f, t) == (a, b) => commit.transcripts.insert(pb, held_b),
            (f, t) if (f, t) == (b, a) => commit.transcripts.insert(pa, held_a),
            _ => None,
        };
        commit
    });
    let n = group.0.len();
    for view in items(&case["views"]) {
        let me = num(&view["member"]) as usize;
        let mut pairs = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let own = if me == i || me == j { group.0[me] } else { group.0[i] };
                pairs.push(group.3[&(own, group.0[if own == group.0[i] { j } else { i }])]);
            }
        }
        assert_eq!(group.1.sas_input(&pairs, &group.2).unwrap(), hex(&view["sas_input"]), "member {me}");
        assert_eq!(rounds[me].result(), Some(Ok(sas_of(view))), "member {me}");
        // Every member outside the pair saw both reports and says so in its reveal.
        let witnesses: Vec<PeerId> = (0..n).filter(|&j| j != a && j != b).map(|j| group.0[j]).collect();
        let told = |by: &PeerId| rounds[me].disputes().contains(&(*by, PairDispute(pa, pb)));
        assert!(witnesses.iter().all(told), "member {me} is told by every member outside the pair");
    }
}

#[test]
fn the_group_emoji_reproduce_the_vectors() {
    let v = vectors("group-sas-v1.json");
    let call_id = arr(&v["call_id"]);
    check_group_sas(call_id, &v["three_members"]);
    check_group_sas(call_id, &v["after_a_join"]);
    assert_ne!(v["three_members"]["sas_indices"], v["after_a_join"]["sas_indices"], "a join changes the emoji");
    check_group_sas_mitm(call_id, &v["three_members"], &v["man_in_the_middle"]);
}

fn key_id(frame: &Value) -> KeyId {
    KeyId::new(num(&frame["epoch"]), SenderIndex(num(&frame["sender"]) as u8)).unwrap()
}

fn base_key(frame: &Value) -> SenderBaseKey {
    SenderBaseKey::from_bytes(arr(&frame["base_key"]))
}

/// Seals the vector's frames in order, one sender key per (sender, epoch), and checks every byte.
fn seal_all(frames: &[Value]) -> Vec<Vec<u8>> {
    let mut keys: BTreeMap<KeyId, SenderKey> = BTreeMap::new();
    frames
        .iter()
        .map(|f| {
            let key = keys.entry(key_id(f)).or_insert_with(|| SenderKey::new(key_id(f), &base_key(f)));
            assert_eq!(key.next_counter(), num(&f["counter"]));
            let media = GroupMedia::from_byte(num(&f["media"]) as u8).unwrap();
            let sealed = key.seal(media, &hex(&f["plaintext"]));
            assert_eq!(sealed, hex(&f["frame"]));
            let (header, len) = GroupFrameHeader::parse(&sealed).unwrap();
            assert_eq!(header.encode(), hex(&f["clear_header"]));
            assert_eq!(len, hex(&f["clear_header"]).len());
            assert_eq!(
                (header.key_id, header.key_id.kid(), header.counter),
                (key_id(f), num(&f["kid"]), num(&f["counter"]))
            );
            assert_eq!(header.media, media);
            sealed
        })
        .collect()
}

#[test]
fn group_frames_reproduce_the_vectors() {
    let v = vectors("group-media-v1.json");
    assert_eq!(num(&v["cipher_suite"]), hail::crypto::sender_key::CIPHER_SUITE as u64);
    for h in items(&v["rfc9605_headers"]) {
        let (kid, ctr, header) = (num(&h["kid"]), num(&h["ctr"]), hex(&h["header"]));
        assert_eq!(GroupFrameHeader::sframe_header(kid, ctr), header, "RFC 9605 C.1: kid {kid:#x} ctr {ctr:#x}");
        assert_eq!(GroupFrameHeader::parse_sframe_header(&header), Ok((kid, ctr, header.len())));
    }
    let frames = items(&v["frames"]);
    let sealed = seal_all(frames);
    let mut ring = SenderKeyRing::new();
    for f in frames {
        ring.install(key_id(f), &base_key(f)).unwrap();
    }
    for (f, s) in frames.iter().zip(&sealed) {
        assert_eq!(ring.open(s).unwrap().payload, hex(&f["plaintext"]));
    }
    assert_eq!(ring.open(&sealed[0]), Err(GroupFrameError::Frame(FrameError::Replay)));
}

#[test]
fn a_receiver_report_reproduces_the_vector_and_opens_as_its_reporters_report() {
    let v = vectors("group-media-v1.json");
    let r = &v["receiver_report"];
    // Sender 2's audio frame (counter 0), then its report (counter 1).
    let sealed = seal_all(&[items(&v["frames"])[2].clone(), r["frame"].clone()]);
    let plaintext = hex(&r["frame"]["plaintext"]);
    let (f, b) = (&r["report"], &r["bursts"]);
    let want = GroupReport {
        about: SenderIndex(num(&r["about"]) as u8),
        report: ReceiverReport {
            highest_seq: num(&f["highest_seq"]) as u32,
            received: num(&f["received"]) as u32,
            lost: num(&f["lost"]) as u32,
            loss_permille: num(&f["loss_permille"]) as u16,
            jitter_us: num(&f["jitter_us"]) as u32,
            buffered_ms: num(&f["buffered_ms"]) as u16,
            rtt_ms: num(&f["rtt_ms"]) as u16,
            bursts: Some(BurstReport {
                bursts: num(&b["bursts"]) as u16,
                mean_centi: num(&b["mean_centi"]) as u16,
                max: num(&b["max"]) as u16,
                recent_mean_centi: num(&b["recent_mean_centi"]) as u16,
                recent_p90: num(&b["recent_p90"]) as u16,
            }),
        },
    };
    assert_eq!(GroupReport::decode(&plaintext), Ok(want));
    assert_eq!(want.encode(), plaintext);
    let mut ring = SenderKeyRing::new();
    ring.install(key_id(&r["frame"]), &base_key(&r["frame"])).unwrap();
    let opened = ring.open(&sealed[1]).unwrap();
    assert_eq!((opened.header.media, opened.header.key_id.sender()), (GroupMedia::Report, SenderIndex(2)));
    assert_eq!(opened.payload, plaintext);
    for cut in 0..plaintext.len() {
        if cut != 1 + 22 {
            assert!(GroupReport::decode(&plaintext[..cut]).is_err(), "cut at {cut}");
        }
    }
}

/// A group video record (`protocols/group-media-v1.md`, "Video"): sealed once as sender 1's next
/// frame, the plaintext naming its GOP, on a stream whose header names the same GOP; read back by
/// a group stream reader and refused by a 1:1 one.
#[test]
fn a_group_video_record_reproduces_the_vector_and_reads_back_from_its_stream() {
    use hail::media::group_call::{KIND_GROUP_VIDEO, group_video_plaintext, parse_group_video_plaintext};
    use hail::media::video::record_reader::{RecordBudget, RecordReader};
    use hail::media::video::wire::{self, VideoFrame};

    let v = vectors("group-media-v1.json");
    let r = &v["video_record"];
    let gop = num(&r["gop"]) as u32;
    let frames = items(&v["frames"]);
    let sealed = seal_all(&[frames[0].clone(), frames[1].clone(), r["frame"].clone()]);
    let video = VideoFrame::decode(&hex(&r["video_frame"])).unwrap();
    assert!(video.keyframe() && (video.width, video.height) == (320, 180));
    assert_eq!(group_video_plaintext(gop, &video), hex(&r["frame"]["plaintext"]));
    assert_eq!(parse_group_video_plaintext(&hex(&r["frame"]["plaintext"])), Ok((gop, video.clone())));
    let record = [&(sealed[2].len() as u32).to_be_bytes()[..], &sealed[2]].concat();
    assert_eq!(record, hex(&r["record"]));
    let header = wire::stream_header_of(KIND_GROUP_VIDEO, gop);
    assert_eq!(header.to_vec(), hex(&r["stream_header"]));
    let stream = [&header[..], &record].concat();
    let mut reader = RecordReader::of_kind(KIND_GROUP_VIDEO, RecordBudget::new(1 << 20));
    let records = reader.push(&stream).unwrap();
    assert_eq!((reader.gop(), records.len()), (Some(gop), 1));
    assert_eq!(records[0].body(), &sealed[2][..]);
    let mut ring = SenderKeyRing::new();
    ring.install(key_id(&r["frame"]), &base_key(&r["frame"])).unwrap();
    let opened = ring.open(records[0].body()).unwrap();
    assert_eq!(opened.header.media, GroupMedia::Video { temporal_layer: 0 });
    assert_eq!(parse_group_video_plaintext(&opened.payload), Ok((gop, video)));
    // A 1:1 call's stream reader refuses a group video stream at its first byte.
    assert!(RecordReader::new(RecordBudget::new(1 << 20)).push(&stream).is_err());
}

#[test]
fn a_rekey_locks_out_the_departed_and_the_past() {
    let v = vectors("group-media-v1.json");
    let rekey = &v["rekey"];
    let old_frames = items(&v["frames"]);
    let new_frames = items(&rekey["frames"]);
    let old_sealed = seal_all(old_frames);
    let new_sealed = seal_all(new_frames);
    let (departed, new_sender) = (SenderIndex(num(&rekey["departed_sender"]) as u8), num(&rekey["new_sender"]));

    // The member who left holds every key of the old epoch but none of the new.
    let mut gone = SenderKeyRing::new();
    for f in old_frames.iter().filter(|f| num(&f["sender"]) != departed.0 as u64) {
        gone.install(key_id(f), &base_key(f)).unwrap();
    }
    for (f, s) in new_frames.iter().zip(&new_sealed) {
        assert_eq!(gone.open(s), Err(GroupFrameError::UnknownKey(key_id(f))));
    }

    // The newcomer holds only the new epoch's keys: nothing from before it joined opens.
    let mut newcomer = SenderKeyRing::new();
    for f in new_frames.iter().filter(|f| num(&f["sender"]) != new_sender) {
        newcomer.install(key_id(f), &base_key(f)).unwrap();
    }
    for (f, s) in old_frames.iter().zip(&old_sealed) {
        assert_eq!(newcomer.open(s), Err(GroupFrameError::UnknownKey(key_id(f))));
    }
    assert_eq!(newcomer.open(&new_sealed[0]).unwrap().payload, hex(&new_frames[0]["plaintext"]));

    // A member who stays drops the departed member and the old epoch, and takes the new keys.
    let mut stays = SenderKeyRing::new();
    for f in old_frames {
        stays.install(key_id(f), &base_key(f)).unwrap();
    }
    for f in new_frames {
        stays.install(key_id(f), &base_key(f)).unwrap();
    }
    stays.remove_sender(departed);
    stays.retire_epochs_before(num(&rekey["new_epoch"]));
    for (f, s) in new_frames.iter().zip(&new_sealed) {
        assert_eq!(stays.open(s).unwrap().payload, hex(&f["plaintext"]));
    }
    for (f, s) in old_frames.iter().zip(&old_sealed) {
        assert_eq!(stays.open(s), Err(GroupFrameError::UnknownKey(key_id(f))));
    }
}

fn peer(v: &Value) -> PeerId {
    PeerId::from_bytes(&hex(v)).unwrap()
}

fn roster(v: &Value) -> Vec<RosterEntry> {
    items(v)
        .iter()
        .map(|m| RosterEntry { index: SenderIndex(num(&m["index"]) as u8), peer: peer(&m["peer_id"]) })
        .collect()
}

/// A vector's `topology` (and `forwarder`).
fn topology(v: &Value) -> Topology {
    match v["topology"].as_str().unwrap() {
        "mesh" => Topology::Mesh,
        "forward" => Topology::Forward { forwarder: SenderIndex(num(&v["forwarder"]) as u8) },
        other => panic!("unknown topology {other}"),
    }
}

/// The message a valid vector describes, built from its fields.
fn control_message(call_id: [u8; 16], v: &Value) -> GroupControl {
    let epoch = v["epoch"].as_u64().unwrap_or_default();
    let body = match v["name"].as_str().unwrap() {
        "invite" => ControlBody::Invite { epoch, members: roster(&v["members"]) },
        "join_request" => ControlBody::JoinRequest,
        "propose" => ControlBody::Propose { epoch, newcomer: peer(&v["newcomer"]) },
        "commit" | "commit_forwarded" => ControlBody::Commit {
            epoch,
            next_index: num(&v["next_index"]) as u16,
            members: roster(&v["members"]),
            topology: topology(v),
        },
        "sender_key" => ControlBody::SenderKey {
            epoch,
            sender: SenderIndex(num(&v["sender"]) as u8),
            base_key: SenderBaseKey::from_bytes(arr(&v["base_key"])),
        },
        "sas_commit" => ControlBody::SasCommit {
            epoch,
            commit: GroupSasCommit {
                commitment: arr(&v["commitment"]),
                transcripts: items(&v["transcripts"])
                    .iter()
                    .map(|t| (peer(&t["peer_id"]), arr(&t["handshake_hash"])))
                    .collect(),
            },
        },
        "sas_reveal" | "sas_reveal_with_disputes" => ControlBody::SasReveal {
            epoch,
            reveal: GroupSasReveal {
                nonce: arr(&v["nonce"]),
                disputes: items(&v["disputes"]).iter().map(|d| PairDispute(peer(&d["a"]), peer(&d["b"]))).collect(),
            },
        },
        "heartbeat" => ControlBody::Heartbeat { epoch },
        "leave" => ControlBody::Leave { epoch },
        "uplink" => ControlBody::Uplink { epoch, kbps: num(&v["kbps"]) as u32 },
        "topology" | "topology_forwarded" => ControlBody::Topology { epoch, topology: topology(v) },
        other => panic!("unknown vector {other}"),
    };
    GroupControl { call_id, body }
}

#[test]
fn group_control_messages_reproduce_the_vectors() {
    let v = vectors("group-control-v1.json");
    let call_id: [u8; 16] = arr(&v["call_id"]);
    assert_eq!(items(&v["valid"]).len(), 14, "one vector per message type; two commits, emoji reveals and topology changes");
    for case in items(&v["valid"]) {
        let name = case["name"].as_str().unwrap();
        let bytes = hex(&case["hex"]);
        assert_eq!(control_message(call_id, case).encode(), bytes, "{name}: encoding");
        let decoded = GroupControl::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.call_id, call_id);
        assert_eq!(decoded.encode(), bytes, "{name}: decode then encode");
        assert_eq!(bytes[1] as u64, num(&case["type"]), "{name}: type byte");
        if name == "sas_commit" {
            // The commitment in the vector is group-sas-v1's for the vector's sender and nonce.
            let sender = peer(&case["sender_peer_id"]);
            let epoch = GroupEpoch::new(call_id, num(&case["epoch"]), [sender, Identity::from_seed([1; 32]).peer_id()])
                .unwrap();
            assert_eq!(epoch.commitment(&sender, &arr(&case["nonce"])).to_vec(), hex(&case["commitment"]));
        }
    }
}

#[test]
fn group_control_garbage_is_refused_with_the_vectors_errors() {
    let v = vectors("group-control-v1.json");
    assert_eq!(items(&v["invalid"]).len(), 29, "every refusal the spec lists");
    for case in items(&v["invalid"]) {
        let why = case["why"].as_str().unwrap();
        let err = GroupControl::decode(&hex(&case["hex"])).err().unwrap_or_else(|| panic!("{why}: accepted"));
        let name = match err {
            ControlError::TooLarge(_) => "too_large",
            ControlError::Truncated => "truncated",
            ControlError::TrailingBytes(_) => "trailing_bytes",
            ControlError::UnknownVersion(_) => "unknown_version",
            ControlError::UnknownType(_) => "unknown_type",
            ControlError::BadMemberCount(_) => "bad_member_count",
            ControlError::BadPeerId => "bad_peer_id",
            ControlError::Unordered => "unordered",
            ControlError::DuplicateIndex(_) => "duplicate_index",
            ControlError::BadNextIndex(_) => "bad_next_index",
            ControlError::TooManyDisputes(_) => "too_many_disputes",
            ControlError::BadTopology => "bad_topology",
        };
        assert_eq!(name, case["error"].as_str().unwrap(), "{why}: {err}");
    }
}

/// A forwarder's decisions on the vector's datagrams, in order, from their clear headers alone.
#[test]
fn a_forwarder_decides_as_the_vectors_say() {
    let v = vectors("group-media-v1.json");
    let forwarding = &v["forwarding"];
    let forwarder = num(&forwarding["forwarder"]);
    let members: Vec<u64> = items(&forwarding["members"]).iter().map(num).collect();
    let mut filter = ForwardFilter::default();
    let deliveries = items(&forwarding["deliveries"]);
    assert_eq!(deliveries.len(), 8);
    for (i, d) in deliveries.iter().enumerate() {
        let link = num(&d["link"]);
        let decision = match filter.check(SenderIndex(link as u8), &hex(&d["frame"])) {
            Ok(_) => "forward",
            Err(ForwardRefusal::Duplicate) => "duplicate",
            Err(ForwardRefusal::NotItsOwn { .. }) => "not_its_own",
            Err(ForwardRefusal::Report) => "report",
            Err(ForwardRefusal::Malformed(_)) => "malformed",
        };
        assert_eq!(decision, d["decision"].as_str().unwrap(), "delivery {i}");
        if decision == "forward" {
            let to: Vec<u64> = members.iter().copied().filter(|m| *m != link && *m != forwarder).collect();
            assert_eq!(
                to,
                items(&d["to"]).iter().map(num).collect::<Vec<_>>(),
                "delivery {i}: to every member but its origin"
            );
        }
    }
}

/// Frame numbers of a two-layer stream: the sender numbers its base frames one after the other
/// and gives each enhancement frame its base frame's number, as the vector's pictures say.
#[test]
fn a_layered_stream_is_numbered_as_the_vectors_say() {
    use hail::media::codec::fake::FakeVideoEncoder;
    use hail::media::video::encoder::EncodeWorker;
    use hail::media::video::pattern::{self, Stamp};
    use hail::media::video::sender::{RecordSeal, SenderConfig, VideoSender};
    use hail::media::video::wire::VideoFrame;

    struct Plain;
    impl RecordSeal for Plain {
        fn seal_record(&mut self, _gop: u32, frame: &VideoFrame, _layer: u8) -> Option<Vec<u8>> {
            Some(frame.encode())
        }
    }
    let v = vectors("group-media-v1.json");
    let pictures = items(&v["video_layers"]["sender"]);
    let config = SenderConfig {
        max_format: hail::media::group_call::GROUP_VIDEO_FORMAT,
        ..SenderConfig::default()
    };
    let mut sender = VideoSender::with_sealer(Plain, config);
    let mut worker = EncodeWorker::with_opener(FakeVideoEncoder::open_two_layers);
    let t0 = std::time::Instant::now();
    for (n, p) in pictures.iter().enumerate() {
        if p["keyframe_asked"] == true {
            sender.restart_gop();
        }
        let picture = pattern::draw(320, 180, Stamp { counter: n as u32, capture_ms: 0 }).unwrap();
        let job = sender.begin(t0, picture, 1_000);
        let result = worker.encode(&job);
        let out = sender.finish(t0, &job, result);
        assert_eq!(out.len(), 1, "picture {n}");
        let got = (u64::from(out[0].layer), u64::from(out[0].frame), VideoFrame::decode(&out[0].record).unwrap().keyframe());
        assert_eq!(got, (num(&p["layer"]), num(&p["frame"]), p["keyframe"] == true), "picture {n}");
    }
}

/// What a receiver does with each frame of the vector's layered stream: decode it, skip an
/// enhancement frame whose base frame it did not decode (no keyframe asked), or find a base frame
/// undecodable after a gap (a keyframe asked).
#[test]
fn a_receiver_of_a_layered_stream_decides_as_the_vectors_say() {
    use hail::media::video::receiver::VideoReceiver;
    use hail::media::video::wire::{FLAG_KEYFRAME, VideoFrame};

    let v = vectors("group-media-v1.json");
    let mut r = VideoReceiver::for_opened_frames();
    r.set_remote_sending(true, std::time::Instant::now());
    let now = std::time::Instant::now();
    for (i, f) in items(&v["video_layers"]["receiver"]).iter().enumerate() {
        let frame = VideoFrame {
            frame: num(&f["frame"]) as u32,
            capture_us: 1_000,
            flags: if f["keyframe"] == true { FLAG_KEYFRAME } else { 0 },
            width: 320,
            height: 180,
            av1: vec![1],
        };
        let before = r.stats();
        let job = r.accept_layered_frame(now, 1_000, num(&f["gop"]) as u32, frame, num(&f["layer"]) as u8);
        let after = r.stats();
        let decision = match job {
            Some(_) => "decode",
            None if after.stale > before.stale => "stale",
            None if after.undecodable > before.undecodable => "undecodable",
            None if after.enhancement_skipped > before.enhancement_skipped => "skip",
            None => "nothing",
        };
        assert_eq!(decision, f["decision"].as_str().unwrap(), "frame {i}: {f}");
        // The base frame after the gap asks for a keyframe; a skipped enhancement frame does not.
        assert_eq!(r.poll_keyframe_request(now), decision == "undecodable", "frame {i}: {f}");
    }
    assert_eq!(r.stats().keyframe_requests, 1);
}
