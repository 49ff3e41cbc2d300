//! `hail demo`: two nodes on this machine (loopback only, mDNS off, throw-away homes) add each other
//! as contacts and make a video call: both sides' emoji, the call's states, audio and video stats,
//! then a hang-up and the history. Each side's received audio and video are written to files.

use std::process::ExitCode;
use std::time::Duration;

use hail::config::VideoSection;
use hail::home::Home;
use hail::node::{CallInfo, Daemon, DaemonOptions, NodeEvent};
use tokio::sync::broadcast;

use super::EXIT_OTHER;
use super::out::{errln, outln};
use super::print::format_duration;

/// Waits (at most 20 s) for an event matching `pick`.
async fn wait_for<T>(
    events: &mut broadcast::Receiver<NodeEvent>,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(&e) {
                        return Ok(t);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err("the node stopped".to_owned()),
            }
        }
    })
    .await
    .map_err(|_| "timed out waiting for the other node".to_owned())?
}

fn call_event(e: &NodeEvent, kind: &str) -> Option<CallInfo> {
    match (e, kind) {
        (NodeEvent::CallIncoming { call }, "incoming")
        | (NodeEvent::CallSas { call }, "sas")
        | (NodeEvent::CallEnded { call }, "ended") => Some(call.clone()),
        (NodeEvent::CallState { call }, "active") if call.state == hail::call::CallState::Active => Some(call.clone()),
        _ => None,
    }
}

/// Runs the demo; `seconds` is how long the call lasts.
pub async fn run(seconds: u64) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("hail-demo-{}-{}", std::process::id(), rand::random::<u32>()));
    let result = demo(&dir, seconds).await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("hail demo: {e}");
            ExitCode::from(EXIT_OTHER)
        }
    }
}

async fn demo(dir: &std::path::Path, seconds: u64) -> Result<(), String> {
    outln!("hail demo: two nodes on this machine call each other (loopback only, mDNS off, throw-away homes)\n");
    let heard = |name: &str| {
        std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()).join(format!("hail-demo-{name}-heard.wav"))
    };
    let seen = |name: &str| {
        std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()).join(format!("hail-demo-{name}-seen.y4m"))
    };
    let (alice_wav, bob_wav) = (heard("alice"), heard("bob"));
    let (alice_y4m, bob_y4m) = (seen("alice"), seen("bob"));
    let start = |name: &str, tone: &str, out: &std::path::Path, video_out: &std::path::Path| {
        let base = DaemonOptions::loopback(tone, &out.display().to_string());
        let video = VideoSection { output: Some(video_out.display().to_string()), ..base.video.clone() };
        let options = DaemonOptions { video, ..base };
        Daemon::start(Home::new(dir.join(name)), options)
    };
    let alice = start("alice", "tone:440", &alice_wav, &alice_y4m).await.map_err(|e| e.to_string())?;
    let bob = start("bob", "tone:660", &bob_wav, &bob_y4m).await.map_err(|e| e.to_string())?;
    let (a, b) = (alice.node().clone(), bob.node().clone());
    let e = |e: hail::node::NodeError| e.to_string();
    let card_a = a.identity(Some("alice")).await.map_err(e)?.card;
    let card_b = b.identity(Some("bob")).await.map_err(e)?.card;
    outln!("alice  {}\nbob    {}\n", alice.peer_id(), bob.peer_id());
    a.add_contact("bob", &card_b).await.map_err(e)?;
    b.add_contact("alice", &card_a).await.map_err(e)?;
    outln!("They exchange contact cards:\n  alice adds bob   {card_b}\n  bob adds alice   {card_a}\n");

    let (mut ev_a, mut ev_b) = (a.subscribe(), b.subscribe());
    let started = std::time::Instant::now();
    let ringing = a.call("bob", true).await.map_err(e)?;
    outln!("alice: video-calling bob… {:?}", ringing.state);
    let incoming = wait_for(&mut ev_b, |e| call_event(e, "incoming")).await?;
    outln!("bob:   incoming call from {}", incoming.contact.map(|n| n.to_string()).unwrap_or_default());

    let sas_a = match ringing.sas_text.clone() {
        Some(s) => s,
        None => wait_for(&mut ev_a, |e| call_event(e, "sas")).await?.sas_text.unwrap_or_default(),
    };
    let sas_b = match b.status().await.map_err(e)?.call.and_then(|c| c.sas_text) {
        Some(s) => s,
        None => wait_for(&mut ev_b, |e| call_event(e, "sas")).await?.sas_text.unwrap_or_default(),
    };
    outln!("\nBoth screens show four emoji, derived from the Noise handshake:");
    outln!("  alice sees:  {sas_a}");
    outln!("  bob sees:    {sas_b}");
    if sas_a != sas_b {
        return Err("the emoji differ: something is in the middle".into());
    }
    outln!("  identical: nobody is in the middle.\n");

    b.answer().await.map_err(e)?;
    wait_for(&mut ev_a, |e| call_event(e, "active")).await?;
    let active = std::time::Instant::now();
    outln!("bob answers; the call is active after {} ms (from dialling).", started.elapsed().as_millis());
    outln!("alice sends a 440 Hz tone, bob a 660 Hz tone (Opus 32 kbps in QUIC datagrams, sealed per frame);");
    outln!("both send the moving test pattern (AV1, one QUIC stream per GOP, sealed per frame).\n");
    // The call's time starts when both sides hear each other: on a loaded machine the media can
    // take a while after "active", and a one-second demo would otherwise report nothing sent.
    let heard = |c: Option<CallInfo>| c.and_then(|c| c.audio).is_some_and(|a| a.receive.jitter.received > 0);
    for _ in 0..250 {
        if heard(a.status().await.map_err(e)?.call) && heard(b.status().await.map_err(e)?.call) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    outln!("Both hear each other {} ms after the call became active.", active.elapsed().as_millis());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    // Rates over the call so far: status's per-second rates are 0 until a whole second has been
    // measured, which a one-second demo never reaches.
    let per_second = |n: u64| (n as f64 / active.elapsed().as_secs_f64().max(0.001)).round() as u64;
    outln!("Rates are averages over the call so far.");
    for (name, node) in [("alice", &a), ("bob", &b)] {
        let Some(c) = node.status().await.map_err(e)?.call else { continue };
        outln!(
            "{name}: {:?} with {}, emoji verified: {:?}",
            c.state,
            c.contact.map(|n| n.to_string()).unwrap_or_default(),
            c.verification
        );
        if let Some(audio) = c.audio {
            let r = audio.receive;
            outln!(
                "  audio: sent {} frames ({} kbps); received {} (lost {}, concealed {}, late {}); jitter {:.1} ms, buffer {:.0} ms, rtt {:.1} ms, mouth-to-ear {}",
                audio.send.packets,
                per_second(audio.send.bytes * 8) / 1000,
                r.jitter.received,
                r.jitter.lost,
                r.jitter.concealed,
                r.jitter.late,
                r.jitter.jitter_ms,
                r.jitter.buffered_ms,
                audio.rtt_ms,
                r.latency_ms.map(|l| format!("{l:.0} ms")).unwrap_or_else(|| "-".into())
            );
        }
        if let Some(v) = c.video_stats {
            let (s, r) = (&v.send, &v.receive);
            outln!(
                "  video: sent {}x{} {} fps {} kbps ({}, {} frames, {} keyframes); received {}x{} {} fps, {} frames shown, {} freezes, {} keyframe requests, glass-to-glass {}, A/V sync {}",
                s.width,
                s.height,
                per_second(s.frames),
                per_second(s.bytes * 8) / 1000,
                s.encoder,
                s.frames,
                s.keyframes,
                r.width,
                r.height,
                per_second(r.frames_rendered),
                r.frames_rendered,
                r.freezes,
                r.keyframe_requests,
                r.glass_to_glass_ms.map(|l| format!("{l:.0} ms")).unwrap_or_else(|| "-".into()),
                r.av_sync_ms.map(|l| format!("{l:+.0} ms")).unwrap_or_else(|| "-".into()),
            );
        }
    }
    a.hangup().await.map_err(e)?;
    let ended_a = wait_for(&mut ev_a, |e| call_event(e, "ended")).await?;
    let ended_b = wait_for(&mut ev_b, |e| call_event(e, "ended")).await?;
    outln!("\nalice hangs up after {}.", format_duration(ended_a.duration_secs));
    outln!("  alice: {}", ended_a.end_description.unwrap_or_default());
    outln!("  bob:   {}", ended_b.end_description.unwrap_or_default());
    for (name, node) in [("alice", &a), ("bob", &b)] {
        let history = node.history(5).await.map_err(e)?;
        if let Some(last) = history.first() {
            outln!(
                "{name}'s history: {:?} call with {}, outcome {:?}",
                last.direction,
                last.contact.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                last.outcome
            );
        }
    }
    alice.stop().await;
    bob.stop().await;
    outln!("\nWhat each side heard: {} and {}", alice_wav.display(), bob_wav.display());
    outln!("What each side saw:   {} and {}", alice_y4m.display(), bob_y4m.display());
    outln!("Done; the throw-away homes are removed.");
    Ok(())
}
