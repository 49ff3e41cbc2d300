//! What a group call's audio costs each member, mesh, in one process: N members
//! (`media::group_call::GroupCallMedia`, real `GroupMember` keys, a real QUIC connection on
//! loopback between every two, each sending a tone and writing its mix to a WAV file), run in
//! real time. Audio only, mesh only, in-process: every member shares this machine's cores.
//! Prints one JSON object.
//!
//! `cargo bench --bench group_call [-- SECONDS (8)]`. Under `cargo test` (no `--bench`) a 1 s
//! run per size, failing if a member sent or received nothing.
//!
//! Reported per member count (3, 4, 6, 8):
//! - `cpu_percent_per_member`: the process's CPU time (user and system, every thread: Opus
//!   encode and decodes, sealing and opening, QUIC, the mix) over the run, per member, as a share
//!   of one core.
//! - `payload_up_kbps` / `payload_down_kbps`: the sealed datagrams a member sends (one frame to
//!   each of N − 1 links) and receives, per member.
//! - `udp_up_kbps` / `udp_down_kbps`: the UDP bytes of a member's QUIC connections (datagram
//!   and QUIC framing, acknowledgements), per member.
//! - `refused`, `concealed_ticks`: over every member, to tell a run that kept up from one that
//!   did not.

#[path = "common/args.rs"]
mod args;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "../tests/common/group_mesh.rs"]
mod group_mesh;
#[path = "../tests/common/group_net.rs"]
mod group_net;
#[path = "../tests/common/quic.rs"]
mod quic;

use std::time::{Duration, Instant};

use cpu::process_cpu_seconds;
use group_mesh::{Party, mesh};
use hail::media::io::SourceSpec;
use serde_json::json;

const MEMBERS: [usize; 4] = [3, 4, 6, 8];

/// Sent and received: payload bytes (the media's counters) and UDP bytes (QUIC's), summed over
/// every member.
fn bytes(parties: &[Party]) -> (u64, u64, u64, u64) {
    let (mut up, mut down, mut udp_up, mut udp_down) = (0, 0, 0, 0);
    for p in parties {
        for other in p.stats().participants {
            up += other.sent_bytes;
            down += other.bytes;
        }
        for (_, conn) in &p.conns {
            let s = conn.stats();
            udp_up += s.udp_tx.bytes;
            udp_down += s.udp_rx.bytes;
        }
    }
    (up, down, udp_up, udp_down)
}

async fn measure(members: usize, seconds: f64) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sources = (0..members).map(|i| SourceSpec::Tone(300.0 + 170.0 * i as f64)).collect();
    let (_net, mut parties) = mesh(dir.path(), sources).await;
    // Let the jitter buffers fill before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (up0, down0, udp_up0, udp_down0) = bytes(&parties);
    let (cpu0, t0) = (process_cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (cpu, elapsed) = (process_cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let (up, down, udp_up, udp_down) = bytes(&parties);
    let per_member_kbps = |b: u64| (b as f64 * 8.0 / elapsed / members as f64 / 1000.0 * 10.0).round() / 10.0;
    let (mut refused, mut concealed) = (0, 0);
    for p in &parties {
        let s = p.stats();
        assert!(s.send.frames > 0, "{members} members: {} sent nothing", p.id);
        for other in &s.participants {
            assert!(other.jitter.received > 0, "{members} members: {} heard nothing from {}", p.id, other.member);
            refused += other.refused;
            concealed += other.concealed_ticks;
        }
    }
    for p in &mut parties {
        p.finish().await;
    }
    json!({
        "members": members,
        "seconds": (elapsed * 10.0).round() / 10.0,
        "cpu_percent_per_member": (cpu * 100.0 / elapsed / members as f64 * 10.0).round() / 10.0,
        "cpu_percent_all_members": (cpu * 100.0 / elapsed * 10.0).round() / 10.0,
        "payload_up_kbps": per_member_kbps(up - up0),
        "payload_down_kbps": per_member_kbps(down - down0),
        "udp_up_kbps": per_member_kbps(udp_up - udp_up0),
        "udp_down_kbps": per_member_kbps(udp_down - udp_down0),
        "refused": refused,
        "concealed_ticks": concealed,
    })
}

fn main() {
    let args = args::BenchArgs::from_env(&[]);
    let seconds: f64 = args.number().unwrap_or(if args.bench { 8.0 } else { 1.0 });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let rows: Vec<_> = MEMBERS.iter().map(|n| runtime.block_on(measure(*n, seconds))).collect();
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    let out = json!({
        "profile": profile,
        "what": "group call audio, mesh, every member in this one process on loopback QUIC",
        "group_call": rows,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
