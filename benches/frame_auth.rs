//! What frame authenticators cost (`protocols/group-media-v1.md`, "Frame authenticators"): a
//! member sending through a forwarder digests each sealed frame and signs a list every 8 frames;
//! a receiver digests each relayed frame and verifies one list per 160 ms per other sender.
//! Real sealed audio-sized frames (a 120-byte group frame), the real `FrameBatcher`, Ed25519 with
//! a real identity and the real `FrameVerifier`, 50 frames per second of simulated time. Prints one
//! JSON object.
//!
//! `cargo bench --bench frame_auth [-- SECONDS (60)]`. Under `cargo test` (no `--bench`) a 2 s
//! run, failing if a frame is not verified.
//!
//! Reported:
//! - `signer_cpu_percent_of_core`: this thread's CPU for one sender's digests and signatures,
//!   per second of audio, as a share of one core.
//! - `verifier_cpu_percent_of_core_per_sender`: a receiver's digests, list decoding, signature
//!   verification and judging, for one other sender.
//! - `authenticator_bytes` / `authenticator_payload_kbps`: one sealed list of 8 (plaintext, a
//!   5-byte clear header and the 16-byte tag) and what a sender sends of them per second.

#[path = "common/args.rs"]
mod args;
#[path = "common/cpu.rs"]
mod cpu;

use std::time::{Duration, Instant};

use cpu::thread_cpu_seconds;
use hail::crypto::frame_auth::{FrameAuthenticator, frame_digest};
use hail::crypto::sender_key::{GroupMedia, KeyId, SenderBaseKey, SenderIndex, SenderKey};
use hail::identity::Identity;
use hail::media::group_call::{FrameBatcher, FrameVerifier};
use serde_json::json;

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let seconds: f64 = args.number().unwrap_or(if args.bench { 60.0 } else { 2.0 });
    let frames = (seconds / 0.02) as u64;
    let identity = Identity::from_seed([1; 32]);
    let signer = identity.peer_id();
    let call_id = [7; 16];
    let mut key = SenderKey::new(KeyId::new(7, SenderIndex(1)).unwrap(), &SenderBaseKey::from_bytes([9; 32]));
    let t0 = Instant::now();
    // The frames, sealed beforehand (sealing is the call's own cost, not the authenticators').
    let sealed: Vec<Vec<u8>> = (0..frames).map(|n| key.seal(GroupMedia::Audio, &[n as u8; 99])).collect();

    // The sender: a digest per frame, a signed list every 8.
    let mut batcher = FrameBatcher::default();
    let mut plaintexts = Vec::new();
    let cpu = thread_cpu_seconds();
    for (n, frame) in sealed.iter().enumerate() {
        let now = t0 + Duration::from_millis(20 * n as u64);
        for list in batcher.sealed(key.key_id(), n as u64, frame_digest(frame), now) {
            let auth = FrameAuthenticator::sign(list, &call_id, identity.keypair()).expect("signs");
            plaintexts.push(auth.encode().expect("encodes"));
        }
    }
    let signer_cpu = thread_cpu_seconds() - cpu;

    // A receiver: a digest per relayed frame, each list decoded, verified and judged.
    let mut verifier = FrameVerifier::default();
    let mut lists = plaintexts.iter();
    let mut forged = 0;
    let cpu = thread_cpu_seconds();
    for (n, frame) in sealed.iter().enumerate() {
        let now = t0 + Duration::from_millis(20 * n as u64);
        forged += verifier.frame(key.key_id(), n as u64, frame_digest(frame), now).into_iter().count();
        if n % 8 == 7 {
            let auth = FrameAuthenticator::decode(lists.next().expect("a list")).expect("decodes");
            auth.verify(&call_id, &signer).expect("verifies");
            forged += verifier.list(auth.list, now).len();
        }
    }
    let verifier_cpu = thread_cpu_seconds() - cpu;
    let stats = verifier.stats(SenderIndex(1));
    assert_eq!(forged, 0);
    assert_eq!(stats.verified, frames - frames % 8, "every covered frame verified: {stats:?}");

    let sealed_len = 5 + plaintexts[0].len() + 16;
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    let out = json!({
        "profile": profile,
        "seconds_of_audio": seconds,
        "frames": frames,
        "lists": plaintexts.len(),
        "signer_cpu_percent_of_core": signer_cpu * 100.0 / seconds,
        "signer_us_per_list": signer_cpu * 1e6 / plaintexts.len() as f64,
        "verifier_cpu_percent_of_core_per_sender": verifier_cpu * 100.0 / seconds,
        "verifier_us_per_list": verifier_cpu * 1e6 / plaintexts.len() as f64,
        "authenticator_plaintext_bytes": plaintexts[0].len(),
        "authenticator_bytes": sealed_len,
        "authenticator_payload_kbps": sealed_len as f64 * 8.0 * plaintexts.len() as f64 / seconds / 1000.0,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
