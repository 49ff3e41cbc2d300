#!/usr/bin/env python3
"""Writes protocols/vectors/group-sas-v1.json, group-media-v1.json and group-control-v1.json.

An implementation of protocols/group-sas-v1.md, group-media-v1.md and group-control-v1.md
independent of the Rust one
(hashlib/hmac for SHA-256 and HKDF, the `cryptography` package for Ed25519 and ChaCha20-Poly1305),
so that tests/group_vectors.rs checks the Rust code against the specs rather than against itself.

    python3 scripts/group-vectors.py        # rewrites the three files
"""

import hashlib
import struct
import hmac
import json
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def sha256(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def peer_id(seed):
    """libp2p PeerId bytes of an Ed25519 identity: identity multihash of the protobuf public key."""
    pk = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    proto = bytes([0x08, 0x01, 0x12, 0x20]) + pk
    return bytes([0x00, len(proto)]) + proto


def prefixed(b):
    return len(b).to_bytes(2, "big") + b


def emoji_table_v2():
    table = {}
    with open(os.path.join(ROOT, "protocols/sas-emoji-v2.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            index, _, glyph, name = line.rstrip("\n").split("\t")
            table[int(index)] = f"{glyph} {name}"
    return table


# ---------------------------------------------------------------------------------------------
# group-sas-v1


def commitment(call_id, epoch, member, nonce):
    return sha256(b"hail group sas commitment v1", call_id, epoch.to_bytes(8, "big"), prefixed(member), nonce)


def sas_input(call_id, epoch, members, pair_hash, nonce_of):
    members = sorted(members)
    out = b"hail group sas v1" + call_id + epoch.to_bytes(8, "big") + bytes([len(members)])
    out += b"".join(prefixed(m) for m in members)
    for i in range(len(members)):
        for j in range(i + 1, len(members)):
            out += pair_hash(members[i], members[j])
    out += b"".join(nonce_of[m] for m in members)
    return out


def group_sas_epoch(call_id, epoch, seeds, nonce_byte, pair_hashes):
    members = {peer_id(bytes([s]) * 32): s for s in seeds}
    order = sorted(members)
    nonce_of = {m: bytes([nonce_byte + members[m]]) * 32 for m in order}

    def pair_hash(a, b):
        return pair_hashes[(members[a], members[b]) if members[a] < members[b] else (members[b], members[a])]

    data = sas_input(call_id, epoch, order, pair_hash, nonce_of)
    sas = list(sha256(data)[:4])
    table = emoji_table_v2()
    return {
        "epoch": epoch,
        "members": [
            {
                "identity_seed": (bytes([members[m]]) * 32).hex(),
                "peer_id": m.hex(),
                "nonce": nonce_of[m].hex(),
                "commitment": commitment(call_id, epoch, m, nonce_of[m]).hex(),
            }
            for m in order
        ],
        "pairs": [
            {"a": i, "b": j, "handshake_hash": pair_hash(order[i], order[j]).hex()}
            for i in range(len(order))
            for j in range(i + 1, len(order))
        ],
        "sas_input": data.hex(),
        "sas_indices": sas,
        "sas_text": "  ".join(table[i] for i in sas),
    }


def group_sas_mitm(call_id, epoch, seeds, nonce_byte, pair_hashes, a, b, held_by_a, held_by_b):
    """The members of `seeds` when a man in the middle of the pair of member-order indices a < b
    left a holding `held_by_a` and b holding `held_by_b` for it: what each member hashes (its own
    view: its own hash for a pair it is in, else the report of the pair's first member)."""
    members = {peer_id(bytes([s]) * 32): s for s in seeds}
    order = sorted(members)
    nonce_of = {m: bytes([nonce_byte + members[m]]) * 32 for m in order}
    table = emoji_table_v2()

    def honest(x, y):
        return pair_hashes[(members[x], members[y]) if members[x] < members[y] else (members[y], members[x])]

    views = []
    for me in range(len(order)):
        def pair_hash(x, y, me=me):
            i, j = order.index(x), order.index(y)
            if (i, j) != (a, b):
                return honest(x, y)
            # Every member but b hashes a's view: a's own, or a's report over a channel he is not on.
            return held_by_b if me == b else held_by_a

        data = sas_input(call_id, epoch, order, pair_hash, nonce_of)
        sas = list(sha256(data)[:4])
        views.append({"member": me, "sas_input": data.hex(), "sas_indices": sas,
                      "sas_text": "  ".join(table[i] for i in sas)})
    assert views[b]["sas_indices"] != views[a]["sas_indices"]
    assert all(v["sas_indices"] == views[a]["sas_indices"] for v in views if v["member"] != b)
    return {"epoch": epoch, "a": a, "b": b, "held_by_a": held_by_a.hex(), "held_by_b": held_by_b.hex(),
            "views": views}


def group_sas_vectors():
    call_id = bytes([0x44]) * 16
    # The final handshake hash of each pair, by the pair's identity seeds (fixed by hand).
    pairs = {(1, 2): bytes([0x12]) * 32, (1, 3): bytes([0x13]) * 32, (2, 3): bytes([0x23]) * 32,
             (1, 4): bytes([0x14]) * 32, (2, 4): bytes([0x24]) * 32, (3, 4): bytes([0x34]) * 32}
    three = group_sas_epoch(call_id, 7, [1, 2, 3], 0xa0, pairs)
    joined = group_sas_epoch(call_id, 8, [1, 2, 3, 4], 0xb0, pairs)
    assert three["sas_indices"] != joined["sas_indices"]
    mitm = group_sas_mitm(call_id, 7, [1, 2, 3], 0xa0, pairs, 0, 1, bytes([0xe0]) * 32, bytes([0xe1]) * 32)
    assert mitm["views"][0]["sas_indices"] != three["sas_indices"]
    return {
        "description": "hail group SAS v1 vectors (protocols/group-sas-v1.md), written by scripts/group-vectors.py "
        "(an implementation independent of src/crypto/group_sas.rs). Members from identity seeds 01..01, 02..02, "
        "03..03 (and 04..04 after a join), listed in member order (sorted by PeerId bytes); pairs (a, b) are "
        "indices into that order; handshake hashes and nonces fixed by hand. Emoji in table v2. Hex. "
        "man_in_the_middle: the three members of three_members with someone in the middle of the pair (a, b) "
        "(member-order indices), so that a holds held_by_a and b held_by_b for it (every other pair and nonce as "
        "in three_members): what each member hashes and shows.",
        "call_id": call_id.hex(),
        "three_members": three,
        "after_a_join": joined,
        "man_in_the_middle": mitm,
    }


# ---------------------------------------------------------------------------------------------
# group-media-v1

SUITE = 0xF001

# RFC 9605 Appendix C.1 (header encodings), a selection.
RFC9605_HEADERS = [
    (0x0, 0x0, "00"),
    (0x0, 0xFF, "08ff"),
    (0x0, 0x10000, "0a010000"),
    (0x100, 0x0, "900100"),
    (0x100, 0xFF, "980100ff"),
    (0x123, 0x4567, "9901234567"),
    (0xFFFF, 0x1, "91ffff"),
    (0xFF, 0xFFFFFFFFFFFFFFFF, "8fffffffffffffffffff"),
]


def hkdf_extract(salt, ikm):
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def key_and_salt(base_key, kid, suite, nk):
    secret = hkdf_extract(b"", base_key)
    tail = kid.to_bytes(8, "big") + suite.to_bytes(2, "big")
    return hkdf_expand(secret, b"SFrame 1.0 Secret key " + tail, nk), hkdf_expand(secret, b"SFrame 1.0 Secret salt " + tail, 12)


def field(value):
    if value < 8:
        return value, b""
    n = (value.bit_length() + 7) // 8
    return 0x8 | (n - 1), value.to_bytes(n, "big")


def sframe_header(kid, ctr):
    k, kb = field(kid)
    c, cb = field(ctr)
    return bytes([k << 4 | c]) + kb + cb


def seal(base_key, epoch, sender, counter, media, plaintext):
    kid = epoch << 8 | sender
    key, salt = key_and_salt(base_key, kid, SUITE, 32)
    nonce = (int.from_bytes(salt, "big") ^ counter).to_bytes(12, "big")
    header = sframe_header(kid, counter)
    aad = header + bytes([media])
    frame = bytes([media]) + header + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)
    return {
        "sender": sender,
        "epoch": epoch,
        "kid": kid,
        "counter": counter,
        "media": media,
        "base_key": base_key.hex(),
        "sframe_key": key.hex(),
        "sframe_salt": salt.hex(),
        "clear_header": (bytes([media]) + header).hex(),
        "nonce": nonce.hex(),
        "aad": aad.hex(),
        "plaintext": plaintext.hex(),
        "frame": frame.hex(),
    }


def group_media_vectors():
    for kid, ctr, hexed in RFC9605_HEADERS:
        assert sframe_header(kid, ctr).hex() == hexed, (kid, ctr)
    # RFC 9605 Appendix C.4, suite 0x0004 (HKDF-SHA256, Nk 16): the key schedule is the RFC's.
    key, salt = key_and_salt(bytes(range(16)), 0x123, 0x0004, 16)
    assert key.hex() == "d34f547f4ca4f9a7447006fe7fcbf768" and salt.hex() == "75234edefe07819026751816"

    base_e7 = {s: bytes([0x70 + s]) * 32 for s in (1, 2)}
    base_e8 = {s: bytes([0x80 + s]) * 32 for s in (1, 3)}
    audio = seal(base_e7[1], 7, 1, 0, 0x10, b"opus frame of sender 1")
    video = seal(base_e7[1], 7, 1, 1, 0x21, b"av1 temporal unit, layer 1")
    other = seal(base_e7[2], 7, 2, 0, 0x10, b"opus frame of sender 2")
    # Member 2's receiver report on sender 1's audio, its own frame 1 of epoch 7 (media 0x30):
    # about (1) || media-v1 receiver report (22 bytes) || burst extension (type 1, 10 bytes).
    fields = {"highest_seq": 0x1234, "received": 4500, "lost": 160, "loss_permille": 52, "jitter_us": 3100,
              "buffered_ms": 60, "rtt_ms": 0}
    bursts = {"bursts": 3, "mean_centi": 300, "max": 4, "recent_mean_centi": 283, "recent_p90": 4}
    report_plain = bytes([1]) + struct.pack(">IIIHIHH", *fields.values()) + bytes([0x01, 10]) + struct.pack(
        ">HHHHH", *bursts.values())
    report = {"about": 1, "report": fields, "bursts": bursts,
              "frame": seal(base_e7[2], 7, 2, 1, 0x30, report_plain)}
    # Sender 1's next frame, video (layer 0) on its GOP 5's stream: a record of group video.
    gop = 5
    video_frame = struct.pack(">IQBHH", 0, 1_700_000_000_000_000, 0x01, 320, 180) + b"\x12\x00\x0a\x0bav1 keyframe"
    sealed = seal(base_e7[1], 7, 1, 2, 0x20, struct.pack(">I", gop) + video_frame)
    video_record = {
        "gop": gop,
        "stream_header": (bytes([0x20]) + struct.pack(">I", gop)).hex(),
        "video_frame": video_frame.hex(),
        "frame": sealed,
        "record": (struct.pack(">I", len(bytes.fromhex(sealed["frame"]))) + bytes.fromhex(sealed["frame"])).hex(),
    }
    after = seal(base_e8[1], 8, 1, 0, 0x10, b"sender 1 after the rekey")
    newcomer = seal(base_e8[3], 8, 3, 0, 0x10, b"sender 3, new in epoch 8")
    return {
        "description": "hail group media v1 vectors (protocols/group-media-v1.md), written by "
        "scripts/group-vectors.py (an implementation independent of src/crypto/sender_key.rs). Cipher suite "
        "0xF001: RFC 9605's key schedule and header with ChaCha20-Poly1305. frames: sender 1's first two frames "
        "and sender 2's first frame in epoch 7. receiver_report: sender 2's next frame, a report on sender 1's audio. video_record: sender 1's next frame, a keyframe on its GOP 5's video stream (stream header, record = len || group frame, plaintext = gop || media-v1 video frame). rekey: member 2 leaves and member 3 joins; epoch 8 has new base "
        "keys for senders 1 and 3 (member 2 never gets them, member 3 never gets epoch 7's). forwarding: what a "
        "forwarding member does with datagrams in order, each on a member's link (forward to, or why not). "
        "video_layers: the layer and frame number of each picture of an L1T2 stream, and what a receiver does "
        "with each frame it gets (decode, skip, undecodable, stale). Hex.",
        "cipher_suite": SUITE,
        "rfc9605_headers": [{"kid": k, "ctr": c, "header": h} for k, c, h in RFC9605_HEADERS],
        "frames": [audio, video, other],
        "receiver_report": report,
        "video_record": video_record,
        "rekey": {
            "departed_sender": 2,
            "new_sender": 3,
            "old_epoch": 7,
            "new_epoch": 8,
            "frames": [after, newcomer],
        },
        "forwarding": forwarding_vectors(audio, video, other, report["frame"]),
        "video_layers": video_layers_vectors(),
    }


def newer(a, b):
    """Whether u32 a comes after b (wrapping)."""
    d = (a - b) & 0xFFFFFFFF
    return d != 0 and d < 0x80000000


def video_layers_vectors():
    """Temporal layers (group-media-v1.md, "Temporal layers"). sender: pictures in order, a keyframe
    asked for or not, the layer L1T2 puts each on and the frame number it carries (base frames one
    after the other; an enhancement frame its base frame's). receiver: frames as one receiver gets
    them (some thinned out, one base frame lost) and what it does with each: decode; skip (an
    enhancement frame whose base frame was not the last decoded: no keyframe asked); undecodable (a
    base frame after a gap, or anything out of step: a keyframe is asked)."""
    sender = []
    after_base, next_base = False, 0
    for key in [True, False, False, False, False, True, False, False, False]:
        layer = 0 if key or not after_base else 1
        after_base = layer == 0
        if layer == 0:
            number, next_base = next_base, next_base + 1
        else:
            number = next_base - 1
        sender.append({"keyframe_asked": key, "layer": layer, "frame": number, "keyframe": key})
    # (gop, frame, layer, keyframe) as received: 1 L1 thinned out, 3 L0 lost, then a new GOP.
    received = [(0, 0, 0, True), (0, 0, 1, False), (0, 1, 0, False), (0, 2, 0, False), (0, 2, 1, False),
                (0, 3, 1, False), (0, 4, 0, False), (0, 4, 1, False), (1, 5, 0, True), (1, 5, 1, False),
                (1, 6, 0, False), (1, 5, 1, False), (0, 7, 0, False)]
    gop = expect = last_base = None
    in_step = False
    receiver = []
    for g, frame, layer, key in received:
        if gop is not None and newer(gop, g):
            decision = "stale"
        else:
            new_gop = gop is None or newer(g, gop)
            if layer > 0 and not key:
                decision = "skip" if new_gop or not in_step or last_base != frame else "decode"
            else:
                if key:
                    if new_gop or not in_step:
                        gop, in_step = g, True
                elif new_gop or expect != frame:
                    gop, in_step = g, False
                if in_step:
                    expect, last_base, decision = frame + 1, frame, "decode"
                else:
                    decision = "undecodable"
        receiver.append({"gop": g, "frame": frame, "layer": layer, "keyframe": key, "decision": decision})
    return {"sender": sender, "receiver": receiver}


def forwarding_vectors(audio, video, other, report):
    """What a forwarder (sender 0 of epoch 7, members 0 to 3) does with datagrams, in this order,
    each on the link of the member with sender index `link`: reading the clear header only."""
    members = [0, 1, 2, 3]

    def to(link):
        return [m for m in members if m not in (0, link)]

    deliveries = [
        {"link": 1, "frame": audio["frame"], "decision": "forward", "to": to(1)},
        {"link": 1, "frame": video["frame"], "decision": "forward", "to": to(1)},
        {"link": 2, "frame": other["frame"], "decision": "forward", "to": to(2)},
        {"link": 1, "frame": audio["frame"], "decision": "duplicate"},
        {"link": 3, "frame": other["frame"], "decision": "not_its_own"},
        {"link": 3, "frame": video["frame"], "decision": "not_its_own"},
        {"link": 2, "frame": report["frame"], "decision": "report"},
        {"link": 1, "frame": "10", "decision": "malformed"},
    ]
    return {"forwarder": 0, "members": members, "deliveries": deliveries}


# ---------------------------------------------------------------------------------------------
# group-control-v1

CONTROL_CALL = bytes([0x13]) * 16


def control(type_byte, epoch, body=b""):
    head = bytes([1, type_byte]) + CONTROL_CALL
    return head + (b"" if epoch is None else epoch.to_bytes(8, "big")) + body


def wire_peer(p):
    return bytes([len(p)]) + p


def wire_members(members):
    """members: [(index, peer bytes)], written in ascending order of the peer bytes."""
    members = sorted(members, key=lambda m: m[1])
    return bytes([len(members)]) + b"".join(bytes([i]) + wire_peer(p) for i, p in members)


def group_control_vectors():
    p1, p2, p3 = (peer_id(bytes([s]) * 32) for s in (1, 2, 3))
    roster2 = [(0, p1), (1, p2)]
    roster3 = [(0, p1), (1, p2), (2, p3)]
    nonce = bytes([0x5a]) * 32
    commit = commitment(CONTROL_CALL, 3, p2, nonce)
    transcripts = sorted([(p1, bytes([0x12]) * 32), (p3, bytes([0x23]) * 32)])
    key = bytes([0x71]) * 32
    # Pairs a reveal reports: each in ascending order of the PeerId bytes, the list too.
    disputes = sorted(tuple(sorted(pair)) for pair in [(p1, p2), (p2, p3)])
    lo, hi = disputes[0]

    def members_json(members):
        return [{"index": i, "peer_id": p.hex()} for i, p in sorted(members, key=lambda m: m[1])]

    valid = [
        {"name": "invite", "type": 1, "epoch": 2, "members": members_json(roster2),
         "hex": control(0x01, 2, wire_members(roster2)).hex()},
        {"name": "join_request", "type": 2, "hex": control(0x02, None).hex()},
        {"name": "propose", "type": 3, "epoch": 2, "newcomer": p3.hex(),
         "hex": control(0x03, 2, wire_peer(p3)).hex()},
        {"name": "commit", "type": 4, "epoch": 3, "next_index": 3, "members": members_json(roster3),
         "topology": "mesh",
         "hex": control(0x04, 3, (3).to_bytes(2, "big") + wire_members(roster3) + bytes([0])).hex()},
        {"name": "commit_forwarded", "type": 4, "epoch": 3, "next_index": 3, "members": members_json(roster3),
         "topology": "forward", "forwarder": 1,
         "hex": control(0x04, 3, (3).to_bytes(2, "big") + wire_members(roster3) + bytes([1, 1])).hex()},
        {"name": "sender_key", "type": 5, "epoch": 3, "sender": 1, "base_key": key.hex(),
         "hex": control(0x05, 3, bytes([1]) + key).hex()},
        {"name": "sas_commit", "type": 6, "epoch": 3, "sender_peer_id": p2.hex(), "nonce": nonce.hex(),
         "commitment": commit.hex(),
         "transcripts": [{"peer_id": p.hex(), "handshake_hash": h.hex()} for p, h in transcripts],
         "hex": control(0x06, 3, commit + bytes([len(transcripts)])
                        + b"".join(wire_peer(p) + h for p, h in transcripts)).hex()},
        {"name": "sas_reveal", "type": 7, "epoch": 3, "nonce": nonce.hex(), "disputes": [],
         "hex": control(0x07, 3, nonce + bytes([0])).hex()},
        {"name": "sas_reveal_with_disputes", "type": 7, "epoch": 3, "nonce": nonce.hex(),
         "disputes": [{"a": a.hex(), "b": b.hex()} for a, b in disputes],
         "hex": control(0x07, 3, nonce + bytes([len(disputes)])
                        + b"".join(wire_peer(a) + wire_peer(b) for a, b in disputes)).hex()},
        {"name": "heartbeat", "type": 8, "epoch": 3, "hex": control(0x08, 3).hex()},
        {"name": "leave", "type": 9, "epoch": 3, "hex": control(0x09, 3).hex()},
        {"name": "uplink", "type": 10, "epoch": 3, "kbps": 2500,
         "hex": control(0x0A, 3, (2500).to_bytes(4, "big")).hex()},
        {"name": "topology", "type": 11, "epoch": 3, "topology": "mesh", "hex": control(0x0B, 3, bytes([0])).hex()},
        {"name": "topology_forwarded", "type": 11, "epoch": 3, "topology": "forward", "forwarder": 2,
         "hex": control(0x0B, 3, bytes([1, 2])).hex()},
    ]
    heartbeat = control(0x08, 3)
    unsorted = bytes([2]) + bytes([0]) + wire_peer(p2) + bytes([1]) + wire_peer(p1)
    if p1 > p2:
        unsorted = bytes([2]) + bytes([0]) + wire_peer(p1) + bytes([1]) + wire_peer(p2)
    invalid = [
        {"why": "empty", "error": "truncated", "hex": ""},
        {"why": "header cut short", "error": "truncated", "hex": heartbeat[:10].hex()},
        {"why": "epoch cut short", "error": "truncated", "hex": heartbeat[:-1].hex()},
        {"why": "a byte after the end", "error": "trailing_bytes", "hex": (heartbeat + b"\x00").hex()},
        {"why": "version 2", "error": "unknown_version", "hex": (bytes([2]) + heartbeat[1:]).hex()},
        {"why": "type 0x0c", "error": "unknown_type", "hex": control(0x0C, 3).hex()},
        {"why": "a topology change without its topology", "error": "truncated", "hex": control(0x0B, 3).hex()},
        {"why": "a topology change naming no forwarder", "error": "truncated", "hex": control(0x0B, 3, bytes([1])).hex()},
        {"why": "a topology change with an unknown topology", "error": "bad_topology",
         "hex": control(0x0B, 3, bytes([2])).hex()},
        {"why": "type 0x00", "error": "unknown_type", "hex": control(0x00, 3).hex()},
        {"why": "an invite listing nobody", "error": "bad_member_count", "hex": control(0x01, 2, bytes([0])).hex()},
        {"why": "members out of order", "error": "unordered", "hex": control(0x01, 2, unsorted).hex()},
        {"why": "a member listed twice", "error": "unordered",
         "hex": control(0x01, 2, bytes([2, 0]) + wire_peer(p1) + bytes([1]) + wire_peer(p1)).hex()},
        {"why": "a sender index given twice", "error": "duplicate_index",
         "hex": control(0x01, 2, bytes([2, 0]) + wire_peer(min(p1, p2)) + bytes([0]) + wire_peer(max(p1, p2))).hex()},
        {"why": "a PeerId of length 0", "error": "bad_peer_id", "hex": control(0x03, 2, bytes([0])).hex()},
        {"why": "a PeerId that is not a multihash", "error": "bad_peer_id",
         "hex": control(0x03, 2, bytes([4]) + b"\xff\xff\xff\xff").hex()},
        {"why": "next sender index 257", "error": "bad_next_index",
         "hex": control(0x04, 3, (257).to_bytes(2, "big") + wire_members(roster3) + bytes([0])).hex()},
        {"why": "a commit without its topology", "error": "truncated",
         "hex": control(0x04, 3, (3).to_bytes(2, "big") + wire_members(roster3)).hex()},
        {"why": "a commit whose forwarder is no member", "error": "bad_topology",
         "hex": control(0x04, 3, (3).to_bytes(2, "big") + wire_members(roster3) + bytes([1, 7])).hex()},
        {"why": "a commit with an unknown topology", "error": "bad_topology",
         "hex": control(0x04, 3, (3).to_bytes(2, "big") + wire_members(roster3) + bytes([2])).hex()},
        {"why": "an uplink cut short", "error": "truncated", "hex": control(0x0A, 3, bytes(3)).hex()},
        {"why": "a key cut short", "error": "truncated", "hex": control(0x05, 3, bytes([1]) + key[:31]).hex()},
        {"why": "a commitment listing 64 other members", "error": "bad_member_count",
         "hex": control(0x06, 3, commit + bytes([64])).hex()},
        {"why": "longer than the largest message", "error": "too_large", "hex": (heartbeat + bytes(6400)).hex()},
        {"why": "a reveal reporting 29 disputes", "error": "too_many_disputes",
         "hex": control(0x07, 3, nonce + bytes([29])).hex()},
        {"why": "a reveal without its dispute count", "error": "truncated", "hex": control(0x07, 3, nonce).hex()},
        {"why": "a disputed pair out of order", "error": "unordered",
         "hex": control(0x07, 3, nonce + bytes([1]) + wire_peer(hi) + wire_peer(lo)).hex()},
        {"why": "a member disputed with itself", "error": "unordered",
         "hex": control(0x07, 3, nonce + bytes([1]) + wire_peer(lo) + wire_peer(lo)).hex()},
        {"why": "disputes out of order", "error": "unordered",
         "hex": control(0x07, 3, nonce + bytes([2]) + b"".join(wire_peer(a) + wire_peer(b)
                                                                for a, b in reversed(disputes))).hex()},
    ]
    return {
        "description": "hail group control v1 vectors (protocols/group-control-v1.md), written by "
        "scripts/group-vectors.py (an encoder independent of src/group/control.rs). Call id 13..13; peers are the "
        "Ed25519 identities of seeds 01..01, 02..02, 03..03. valid: each message's fields and exact bytes. "
        "invalid: bytes every reader must refuse, with the error (ControlError in snake case). Hex.",
        "call_id": CONTROL_CALL.hex(),
        "valid": valid,
        "invalid": invalid,
    }


def write(name, value):
    path = os.path.join(ROOT, "protocols/vectors", name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    write("group-sas-v1.json", group_sas_vectors())
    write("group-media-v1.json", group_media_vectors())
    write("group-control-v1.json", group_control_vectors())
