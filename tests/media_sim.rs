//! Media behaviour on the deterministic simulator (`tests/common/sim.rs`): loss, jitter and
//! recovery asserted in virtual time, so nothing here depends on how busy the machine is.

#[path = "common/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use hail::call::{CallState, EndReason};
use sim::{AudioParty, CallParty, Impairment, Sim, VideoParty};

/// What a run leaves behind, compared across runs.
#[derive(Debug, PartialEq)]
struct Outcome {
    received: [u64; 2],
    lost: [u64; 2],
    concealed: [u64; 2],
    fec_recovered: [u64; 2],
    target_ms: [f64; 2],
    redundancy: [usize; 2],
    longest_gap_ticks: [usize; 2],
    heard: [Vec<bool>; 2],
}

/// Alice (0) and Bob (1) talk for `seconds` of virtual time, each direction through `imp`.
fn audio_call(imp: Impairment, seeds: (u64, u64), seconds: u64) -> (Outcome, Sim<AudioParty>) {
    let start = Instant::now();
    let mut sim = Sim::pair(AudioParty::new(1, true, start), AudioParty::new(0, false, start), start, imp, seeds);
    sim.run_for(Duration::from_secs(seconds));
    let p = &sim.parties;
    let j = |i: usize| p[i].receive_stats().jitter;
    let outcome = Outcome {
        received: [j(0).received, j(1).received],
        lost: [j(0).lost, j(1).lost],
        concealed: [j(0).concealed, j(1).concealed],
        fec_recovered: [j(0).fec_recovered, j(1).fec_recovered],
        target_ms: [j(0).target_ms, j(1).target_ms],
        redundancy: [p[0].send_stats().redundancy, p[1].send_stats().redundancy],
        longest_gap_ticks: [p[0].longest_gap(), p[1].longest_gap()],
        heard: [p[0].played.clone(), p[1].played.clone()],
    };
    (outcome, sim)
}

#[test]
fn a_minute_at_twenty_percent_burst_loss_repeats_exactly_and_recovers_what_it_can() {
    let imp = Impairment {
        delay: Duration::from_millis(40),
        jitter: Duration::from_millis(10),
        ..Impairment::bursty(0.20, 2.0)
    };
    let (first, sim) = audio_call(imp, (1, 2), 60);
    let (again, _) = audio_call(imp, (1, 2), 60);
    assert_eq!(first, again, "the same seeds give the same call, frame for frame");
    let (other, _) = audio_call(imp, (3, 4), 60);
    assert_ne!(first.heard, other.heard, "other seeds, other losses: the seed is what decides");

    let links = [sim.link_stats(0, 1), sim.link_stats(1, 0)];
    for (i, l) in links.iter().enumerate() {
        let loss = l.lost as f64 / l.sent as f64;
        assert!((0.17..=0.23).contains(&loss), "link {i} lost {:.1} % of datagrams", loss * 100.0);
    }
    eprintln!(
        "received {:?} lost {:?} concealed {:?} fec {:?} target {:?} redundancy {:?} longest gap {:?} ticks",
        first.received,
        first.lost,
        first.concealed,
        first.fec_recovered,
        first.target_ms,
        first.redundancy,
        first.longest_gap_ticks
    );
    for i in 0..2 {
        // 3000 frames a minute each way. The peer's reports raise redundancy, and Opus FEC covers
        // some of the rest: goals are 95 % of frames received and 95 % of ticks heard (decoded,
        // not concealed). The longest dropout is measured, not asserted (docs/performance.md:
        // 260 ms here; bursts longer than the buffer's delay defeat redundancy, issue 14).
        // Redundancy follows each second's report; at the end of the minute it is on.
        assert!(first.redundancy[i] >= 1, "party {i}'s peer reports keep redundancy on: {:?}", first.redundancy);
        assert!(first.received[i] >= 2850, "party {i} received {} of 3000 frames", first.received[i]);
        let heard = first.heard[i].iter().filter(|h| **h).count();
        assert!(heard >= 2850, "party {i} heard {heard} of ~3000 ticks");
        assert!(first.fec_recovered[i] > 0, "FEC recovered frames redundancy missed");
    }
}

#[test]
fn ten_percent_loss_and_jitter_grow_the_buffer_turn_on_redundancy_and_leave_no_long_gap() {
    // What tests/audio.rs runs over real sockets through the impairing relay, here in virtual time
    // (the gap check moved here: on a busy machine the playout clock itself can stall).
    let imp = Impairment {
        delay: Duration::from_millis(50),
        jitter: Duration::from_millis(20),
        loss: 0.10,
        ..Impairment::clean()
    };
    let (out, _) = audio_call(imp, (11, 12), 20);
    for i in 0..2 {
        assert!(out.target_ms[i] >= 40.0, "party {i}: the buffer grew to cover ±20 ms of jitter: {:?}", out.target_ms);
        assert!(out.redundancy[i] >= 1, "party {i}: the loss reports turned on redundancy");
        // With two redundant copies and in-band FEC, a frame is lost to the listener only when
        // three datagrams in a row are; PLC covers 20-40 ms of that. 100 ms would be a dropout.
        assert!(out.longest_gap_ticks[i] * 20 <= 100, "party {i}: longest gap {} ms", out.longest_gap_ticks[i] * 20);
    }
}

#[test]
fn a_clean_link_plays_every_frame_after_the_first() {
    let (out, _) = audio_call(Impairment { delay: Duration::from_millis(30), ..Impairment::clean() }, (5, 6), 10);
    for i in 0..2 {
        assert_eq!(out.lost[i], 0, "party {i}");
        assert_eq!(out.concealed[i], 0, "party {i}");
        assert_eq!(out.longest_gap_ticks[i], 0, "party {i}");
        assert_eq!(out.redundancy[i], 0, "no loss reported, no redundancy");
    }
}

/// Two parties on a clean 30 ms link, started; the caller of this helper impairs it later.
fn clean_call() -> Sim<AudioParty> {
    let start = Instant::now();
    let clean = Impairment { delay: Duration::from_millis(30), ..Impairment::clean() };
    Sim::pair(AudioParty::new(1, true, start), AudioParty::new(0, false, start), start, clean, (21, 22))
}

/// Playout tick `n` is `10 ms + n × 20 ms` into the call: the tick at `seconds`.
fn tick_at(seconds: f64) -> usize {
    ((seconds * 1000.0 - 10.0) / 20.0) as usize
}

#[test]
fn audio_comes_back_at_once_after_a_five_second_outage() {
    let mut sim = clean_call();
    sim.run_for(Duration::from_secs(5));
    let clean = Impairment { delay: Duration::from_millis(30), ..Impairment::clean() };
    let cut = Impairment { loss: 1.0, ..clean };
    sim.set_impairment_both_ways(cut);
    sim.run_for(Duration::from_secs(5));
    sim.set_impairment_both_ways(clean);
    sim.run_for(Duration::from_secs(10));
    for (i, p) in sim.parties.iter().enumerate() {
        assert!(p.heard_in(tick_at(1.0)..tick_at(5.0)) >= 195, "party {i} heard the call before the outage");
        assert_eq!(p.heard_in(tick_at(5.5)..tick_at(10.0)), 0, "party {i} heard nothing during it");
        // Back within half a second of the path, then whole.
        let after = p.heard_in(tick_at(10.5)..tick_at(20.0));
        assert!(after >= tick_at(20.0) - tick_at(10.5) - 1, "party {i} heard {after} ticks after the outage");
    }
}

#[test]
fn a_stalled_audio_task_that_overflows_the_buffers_recovers_on_both_sides() {
    // The one-hour soak found it: the machine was loaded, the audio task stalled for seconds
    // while frames kept arriving, the jitter buffer overflowed, and audio never came back
    // (src/media/jitter.rs keeps playout past what an overflow drops). Bob's task stalls for 3 s:
    // his playout stops while Alice's frames pile up, and he sends nothing until he catches up
    // with a burst of 150 frames, which Alice's buffer finds late (its playout kept time through
    // the silence) and drops.
    let mut sim = clean_call();
    sim.run_for(Duration::from_secs(5));
    let until = sim.now() + Duration::from_secs(3);
    sim.parties[1].stall_playout(until);
    sim.run_for(Duration::from_secs(15));
    for (i, p) in sim.parties.iter().enumerate() {
        let j = p.receive_stats().jitter;
        assert!(j.dropped + j.late > 0, "party {i}: the stall cost frames (overflow or late): {j:?}");
        let after = p.heard_in(tick_at(10.0)..tick_at(20.0));
        assert!(after >= tick_at(20.0) - tick_at(10.0) - 1, "party {i} heard {after} of the last 10 s of ticks");
    }
}

/// Alice calls Bob, who answers after two seconds; both directions through `imp`.
fn call(imp: Impairment, seeds: (u64, u64)) -> Sim<CallParty> {
    let start = Instant::now();
    Sim::pair(CallParty::caller(1, start), CallParty::callee(0, Duration::from_secs(2)), start, imp, seeds)
}

#[test]
fn a_call_through_ten_percent_loss_rings_connects_talks_and_hangs_up_on_both_sides() {
    let lossy = Impairment {
        delay: Duration::from_millis(40),
        jitter: Duration::from_millis(10),
        loss: 0.10,
        ..Impairment::clean()
    };
    let mut sim = call(lossy, (31, 32));
    sim.run_for(Duration::from_secs(5));
    for (i, p) in sim.parties.iter().enumerate() {
        assert_eq!(p.state(), Some(CallState::Active), "party {i}: {:?}", p.events);
    }
    // The channel came up while it rang, so the caller never waits in Connecting.
    assert_eq!(sim.parties[0].states(), [CallState::Dialing, CallState::Ringing, CallState::Active]);
    assert_eq!(sim.parties[1].states(), [CallState::Ringing, CallState::Active]);
    sim.run_for(Duration::from_secs(20));
    let hangup = sim.now();
    sim.parties[0].hang_up_at(hangup);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.parties[0].end_reason(), Some(EndReason::HungUp { by_peer: false }));
    assert_eq!(sim.parties[1].end_reason(), Some(EndReason::HungUp { by_peer: true }));
    for (i, p) in sim.parties.iter().enumerate() {
        let heard = p.heard.iter().filter(|h| **h).count();
        // About 20 s of talk (1000 ticks) through 10 % loss with redundancy.
        assert!(heard >= 950, "party {i} heard {heard} ticks");
        let ended = p.events.iter().find(|(_, e)| matches!(e, hail::call::CallEvent::Ended(_))).unwrap().0;
        assert!(ended - hangup <= Duration::from_secs(3), "party {i} ended {:?} after the hangup", ended - hangup);
    }
}

#[test]
fn a_five_second_outage_keeps_the_call_and_a_thirty_second_one_ends_it_on_both_sides() {
    let clean = Impairment { delay: Duration::from_millis(30), ..Impairment::clean() };
    let cut = Impairment { loss: 1.0, ..clean };
    let mut sim = call(clean, (41, 42));
    sim.run_for(Duration::from_secs(10));
    sim.set_impairment_both_ways(cut);
    sim.run_for(Duration::from_secs(5));
    sim.set_impairment_both_ways(clean);
    sim.run_for(Duration::from_secs(10));
    for (i, p) in sim.parties.iter().enumerate() {
        assert_eq!(p.state(), Some(CallState::Active), "party {i} kept the call through 5 s without a packet");
        let audio = p.audio().expect("media runs");
        let last_5s = audio.played.len() - 250..audio.played.len();
        assert!(audio.heard_in(last_5s) >= 249, "party {i} talks again after the outage");
    }
    // A path that does not come back: each side gives up after the idle timeout (20 s without
    // hearing from the peer; keepalives every 5 s).
    sim.set_impairment_both_ways(cut);
    let cut_at = sim.now();
    sim.run_for(Duration::from_secs(40));
    for (i, p) in sim.parties.iter().enumerate() {
        assert_eq!(p.end_reason(), Some(EndReason::ConnectionLost), "party {i}: {:?}", p.events.last());
        let ended = p.events.last().unwrap().0;
        let after = ended - cut_at;
        assert!(
            after >= Duration::from_secs(15) && after <= Duration::from_secs(21),
            "party {i} gave up {after:?} after the cut"
        );
    }
}

/// Alice (0) sends video to Bob (1) at 300 kbps through `imp` each way.
fn video_call(imp: Impairment) -> Sim<VideoParty> {
    let start = Instant::now();
    let (alice, bob) =
        (VideoParty::new(1, true, true, 300_000, start), VideoParty::new(0, false, false, 300_000, start));
    Sim::pair(alice, bob, start, imp, (51, 52))
}

#[test]
fn video_through_five_percent_loss_keeps_flowing_and_recovers_from_a_blackout_within_a_second() {
    // What tests/video.rs runs over real sockets (its frame-rate and recovery thresholds), here
    // in virtual time: 5 % loss and 20 ms each way, then 600 ms of nothing.
    let lossy = Impairment { delay: Duration::from_millis(20), loss: 0.05, ..Impairment::clean() };
    let mut sim = video_call(lossy);
    sim.run_for(Duration::from_secs(6));
    let (from, to) = (sim.now() - Duration::from_secs(5), sim.now());
    let shown = sim.parties[1].shown_between(from, to);
    assert!(shown >= 75, "at least 15 fps through 5 % loss: {shown} pictures in 5 s");
    // In order, and what was sent: the pattern's counters read back rise.
    let counters: Vec<u32> = sim.parties[1].shown.iter().map(|(_, c)| *c).collect();
    assert!(counters.windows(2).all(|w| w[0] < w[1]), "pictures in order: {counters:?}");

    let blackout = Impairment { loss: 1.0, ..lossy };
    sim.set_impairment_both_ways(blackout);
    sim.run_for(Duration::from_millis(600));
    sim.set_impairment_both_ways(lossy);
    let back = sim.now();
    let keyframes_before = sim.parties[0].send_stats().keyframes;
    sim.run_for(Duration::from_secs(3));
    let bob = &sim.parties[1];
    let first = bob.shown.iter().find(|(t, _)| *t >= back).map(|(t, _)| *t - back);
    assert!(first.is_some_and(|d| d <= Duration::from_secs(1)), "the picture came back {first:?} after the path");
    assert!(bob.keyframe_requests >= 1, "the stall asked for a keyframe");
    assert!(sim.parties[0].send_stats().keyframes > keyframes_before, "and a new GOP started");
    assert!(bob.shown_between(back + Duration::from_secs(1), back + Duration::from_secs(3)) >= 30, "flowing again");
}
