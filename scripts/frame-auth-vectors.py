#!/usr/bin/env python3
"""Writes protocols/vectors/group-frame-auth-v1.json: frame authenticators
(protocols/group-media-v1.md, "Frame authenticators").

Independent of the Rust implementation: hashlib for SHA-256, the `cryptography` package for
Ed25519 (deterministic, RFC 8032), so tests/frame_auth_vectors.rs checks the Rust code against
the spec rather than against itself.

    python3 scripts/frame-auth-vectors.py
"""

import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LABEL = b"hail group frame authenticator v1"


def b58(data):
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def peer_id(seed):
    pk = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    proto = bytes([0x08, 0x01, 0x12, 0x20]) + pk
    return b58(bytes([0x00, len(proto)]) + proto)


def minimal(value):
    return b"" if value < 8 else value.to_bytes((value.bit_length() + 7) // 8, "big")


def sframe_header(kid, ctr):
    k, c = minimal(kid), minimal(ctr)
    config = ((0x8 | (len(k) - 1)) if k else kid) << 4 | ((0x8 | (len(c) - 1)) if c else ctr)
    return bytes([config]) + k + c


def frame(media, kid, ctr, body):
    """A group frame's bytes: what a digest is taken of (its ciphertext and tag are given)."""
    return bytes([media]) + sframe_header(kid, ctr) + body


def digest(f):
    return hashlib.sha256(f).digest()[:16]


def encode_list(kid, start, frames):
    out = struct.pack(">QQB", kid, start, len(frames))
    for ctr, d in frames:
        out += struct.pack(">H", ctr - start) + d
    return out


def main():
    seed = bytes([1] * 32)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    call_id = bytes(range(16))
    epoch, sender = 7, 1
    kid = epoch << 8 | sender
    bodies = {c: bytes([0xA0 + c] * 24) + bytes([0x70 + c] * 16) for c in range(5)}
    frames = {c: frame(0x10, kid, c, bodies[c]) for c in range(5)}
    # Counter 2 was a receiver report (pairwise, never forwarded): not listed.
    listed = [(c, digest(frames[c])) for c in (0, 1, 3)]
    lst = encode_list(kid, 0, listed)
    signed = LABEL + call_id + lst
    signature = key.sign(signed)
    plaintext = lst + signature
    flipped = bytearray(frames[1])
    flipped[10] ^= 0x01
    judged = [
        {"what": "frame 1, as sent", "counter": 1, "frame": frames[1].hex(), "verdict": "verified"},
        {"what": "frame 1 with one ciphertext bit flipped (the forwarder's)", "counter": 1,
         "frame": bytes(flipped).hex(), "verdict": "forged: digest"},
        {"what": "a frame under counter 2, which the list says carried no forwardable frame", "counter": 2,
         "frame": frames[2].hex(), "verdict": "forged: unlisted"},
        {"what": "frame 4, past the list", "counter": 4, "frame": frames[4].hex(), "verdict": "waits"},
    ]

    def refuse(what, data, error):
        return {"what": what, "plaintext": data.hex(), "error": error}

    no_frames = struct.pack(">QQB", kid, 0, 0) + signature
    too_many = struct.pack(">QQB", kid, 0, 33) + b"".join(struct.pack(">H", i) + bytes(16) for i in range(33)) + signature
    swapped = encode_list(kid, 0, [listed[1], listed[0], listed[2]]) + signature
    repeated = encode_list(kid, 0, [listed[0], (0, listed[1][1]), listed[2]]) + signature
    overflow = struct.pack(">QQB", kid, 2**64 - 1, 1) + struct.pack(">H", 1) + bytes(16) + signature
    refusals = [
        refuse("no frame listed", no_frames, "count"),
        refuse("33 frames listed", too_many, "count"),
        refuse("offsets out of order", swapped, "counters"),
        refuse("an offset twice", repeated, "counters"),
        refuse("a counter past 2^64 - 1", overflow, "counters"),
        refuse("the signature cut short", plaintext[:-1], "length"),
        refuse("a byte after the signature", plaintext + b"\0", "length"),
        refuse("the list cut short", plaintext[:20], "length"),
    ]
    out = {
        "description": "Frame authenticators, protocols/group-media-v1.md (\"Frame authenticators\"). "
        "Written by scripts/frame-auth-vectors.py; checked by tests/frame_auth_vectors.rs.",
        "signer_seed": seed.hex(),
        "signer_peer_id": peer_id(seed),
        "other_peer_id": peer_id(bytes([2] * 32)),
        "call_id": call_id.hex(),
        "epoch": epoch,
        "sender": sender,
        "kid": kid,
        "frames": [{"counter": c, "frame": frames[c].hex(), "digest": digest(frames[c]).hex()} for c in range(5)],
        "list": {"from": 0, "counters": [c for c, _ in listed], "encoded": lst.hex()},
        "signed_input": signed.hex(),
        "signature": signature.hex(),
        "plaintext": plaintext.hex(),
        "judged": judged,
        "refusals": refusals,
    }
    path = os.path.join(ROOT, "protocols/vectors/group-frame-auth-v1.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
