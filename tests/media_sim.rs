//! Media behaviour on the deterministic simulator (`tests/common/sim.rs`): loss, jitter and
//! recovery asserted in virtual time, so nothing here depends on how busy the machine is.

#[path = "common/sim.rs"]
mod sim;
#[path = "common/speech.rs"]
mod speech;

use std::time::{Duration, Instant};

use hail::call::{CallState, EndReason};
use sim::{AudioParty, CallParty, Impairment, MediaParty, Sim};

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

/// tests/audio.rs's impaired path: 10 % independent loss, 50 ± 20 ms.
fn ten_percent_loss_and_jitter() -> Impairment {
    Impairment { delay: Duration::from_millis(50), jitter: Duration::from_millis(20), loss: 0.10, ..Impairment::clean() }
}

#[test]
fn ten_percent_loss_and_jitter_grow_the_buffer_turn_on_redundancy_and_leave_no_long_gap() {
    // What tests/audio.rs runs over real sockets through the impairing relay, here in virtual time
    // (the gap check moved here: on a busy machine the playout clock itself can stall).
    let imp = ten_percent_loss_and_jitter();
    let (out, _) = audio_call(imp, (11, 12), 20);
    for i in 0..2 {
        assert!(out.target_ms[i] >= 40.0, "party {i}: the buffer grew to cover ±20 ms of jitter: {:?}", out.target_ms);
        assert!(out.redundancy[i] >= 1, "party {i}: the loss reports turned on redundancy");
        // With two redundant copies and in-band FEC, a frame is lost to the listener only when
        // three datagrams in a row are; PLC covers 20-40 ms of that. 100 ms would be a dropout.
        assert!(out.longest_gap_ticks[i] * 20 <= 100, "party {i}: longest gap {} ms", out.longest_gap_ticks[i] * 20);
    }
}

/// Issue 14, item 2: the jitter buffer moves its delay by time-stretching. A spike of jitter grows
/// the buffer; once the network calms, the delay comes back down by playing frames a pitch period
/// shorter, never by dropping one, and playout still gives exactly 20 ms a tick.
#[test]
fn a_jitter_spike_is_given_back_by_playing_faster_not_by_dropping_frames() {
    let start = Instant::now();
    let spike = Impairment { delay: Duration::from_millis(100), jitter: Duration::from_millis(80), ..Impairment::clean() };
    let mut sim = Sim::pair(AudioParty::new(1, true, start), AudioParty::new(0, false, start), start, spike, (21, 22));
    sim.run_for(Duration::from_secs(10));
    let grown = sim.parties[1].receive_stats();
    sim.set_impairment_both_ways(Impairment { delay: Duration::from_millis(30), ..Impairment::clean() });
    sim.run_for(Duration::from_secs(20));
    let calm = sim.parties[1].receive_stats();
    eprintln!("grown {:?} {:?}\ncalm {:?} {:?}", grown.jitter, grown.stretch, calm.jitter, calm.stretch);
    assert!(grown.jitter.target_ms >= 120.0, "the spike grew the target: {:?}", grown.jitter);
    assert!(calm.jitter.target_ms <= 30.0, "the calm shrank it: {:?}", calm.jitter);
    assert!(calm.jitter.buffered_ms <= calm.jitter.target_ms + 40.0, "and the delay followed: {:?}", calm.jitter);
    assert!(calm.stretch.accelerated > grown.stretch.accelerated, "by accelerating: {:?}", calm.stretch);
    assert!(calm.stretch.accelerated_ms >= 60.0, "at least three frames' worth: {:?}", calm.stretch);
    assert_eq!(calm.jitter.dropped, 0, "no frame dropped whole: {:?}", calm.jitter);
    // 30 s of 20 ms ticks from 10 ms in: 1500 ticks, each exactly 20 ms of audio.
    let played = sim.parties[1].heard_pcm.len();
    assert_eq!(played % 960, 0, "whole ticks only");
    assert!((1499..=1500).contains(&(played / 960)), "{} ticks played", played / 960);
}

#[test]
fn speech_through_ten_percent_loss_and_jitter_keeps_its_spectrum() {
    // A tone is easy to conceal (the decoder's PLC just continues it); speech-like audio, whose
    // spectrum keeps changing, is not: frames lost to the listener show as spectral distance.
    let imp = ten_percent_loss_and_jitter();
    let start = Instant::now();
    let source = speech::speech_like(12.0);
    for seeds in [(11, 12), (21, 22), (31, 32)] {
        let alice = AudioParty::new(1, true, start).with_source(Box::new(speech::SpeechSource::new(source.clone())));
        let mut sim = Sim::pair(alice, AudioParty::new(0, false, start), start, imp, seeds);
        sim.run_for(Duration::from_secs(12));
        let heard: Vec<f64> = sim.parties[1].heard_pcm.iter().map(|s| *s as f64).collect();
        // From 2 s on: the loss reports have turned recovery on.
        let distances = speech::spectral_distances(&source, &heard, 2.0, 11.0);
        let (median, p90) = (speech::quantile(&distances, 0.5), speech::quantile(&distances, 0.9));
        eprintln!("seeds {seeds:?}: {} voiced frames, log-spectral distance median {median:.2} dB, p90 {p90:.2} dB", distances.len());
        assert!(distances.len() >= 200, "voiced frames compared: {}", distances.len());
        // Measured: p90 2.38-2.55 dB; without redundant copies (in-band FEC alone) 2.56-2.71 dB;
        // with neither, lost frames only concealed: 4.36-4.74 dB.
        assert!(p90 < 3.2, "seeds {seeds:?}: the speech lost its spectrum: p90 log-spectral distance {p90:.2} dB");
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

/// Alice (0) and Bob (1) in a call with audio and video both ways over QUIC, each direction
/// through `imp` (seeded by one of `seeds`), each encoder holding pictures back `lag` frames.
fn video_call(imp: Impairment, seeds: (u64, u64), lag: usize) -> Sim<MediaParty> {
    let start = Instant::now();
    let party = |peer, caller| MediaParty::new(peer, caller, start).with_encoder_lag(lag);
    Sim::pair(party(1, true), party(0, false), start, imp, seeds).over_quic()
}

/// How long after `back` the receiver had shown more than five pictures and the last of them was
/// fresh (captured under 300 ms before): what tests/video.rs polls the status for after a burst.
fn fresh_pictures_after(p: &MediaParty, back: Instant) -> Option<Duration> {
    let since: Vec<_> = p.shown.iter().filter(|s| s.at >= back).collect();
    since.iter().skip(5).find(|s| s.glass_to_glass_ms.is_some_and(|g| g < 300.0)).map(|s| s.at - back)
}

/// 5 % loss and 20 ms each way.
fn five_percent_loss() -> Impairment {
    Impairment { delay: Duration::from_millis(20), loss: 0.05, ..Impairment::clean() }
}

/// A call through [`five_percent_loss`] for six seconds, then 600 ms of nothing both ways, then the
/// loss again: returns it as the path comes back.
fn through_a_blackout(seeds: (u64, u64)) -> Sim<MediaParty> {
    let mut sim = video_call(five_percent_loss(), seeds, 0);
    sim.run_for(Duration::from_secs(6));
    sim.set_impairment_both_ways(Impairment { loss: 1.0, ..five_percent_loss() });
    sim.run_for(Duration::from_millis(600));
    sim.set_impairment_both_ways(five_percent_loss());
    sim
}

#[test]
fn video_through_five_percent_loss_keeps_flowing_and_recovers_from_a_blackout_within_a_second() {
    // tests/video.rs runs this over real sockets and holds the behaviour (pictures flow, a burst
    // makes the receiver ask for a keyframe, the sender hears it); its wall-clock thresholds are
    // held here, in virtual time, with the daemon's MediaSession on a modelled QUIC connection.
    let mut sim = video_call(five_percent_loss(), (51, 52), 0);
    sim.run_for(Duration::from_secs(6));
    let (from, to) = (sim.now() - Duration::from_secs(5), sim.now());
    for (i, p) in sim.parties.iter().enumerate() {
        let shown = p.shown_between(from, to);
        assert!(shown >= 75, "party {i}: at least 15 fps through 5 % loss: {shown} pictures in 5 s");
        // In order, and what was sent: the pattern's counters read back rise.
        let counters: Vec<u32> = p.shown.iter().map(|s| s.counter).collect();
        assert!(counters.windows(2).all(|w| w[0] < w[1]), "party {i}: pictures in order: {counters:?}");
    }

    sim.set_impairment_both_ways(Impairment { loss: 1.0, ..five_percent_loss() });
    sim.run_for(Duration::from_millis(600));
    sim.set_impairment_both_ways(five_percent_loss());
    let back = sim.now();
    let keyframes_before = [0, 1].map(|i| sim.parties[i].session().video_counters().receive.keyframes);
    sim.run_for(Duration::from_secs(3));
    for (i, p) in sim.parties.iter().enumerate() {
        let video = p.session().video_counters();
        let fresh = fresh_pictures_after(p, back);
        eprintln!("party {i}: fresh pictures {fresh:?} after the path came back; {video:?}");
        assert!(fresh.is_some_and(|d| d <= Duration::from_secs(1)), "party {i}: the picture took {fresh:?} to recover");
        // The stall during the burst asked for a keyframe, the peer's sender heard it, a new GOP
        // arrived, and the stream holding the backlog was reset.
        assert!(video.receive.keyframe_requests >= 1, "party {i} asked for a keyframe");
        assert!(video.receive.keyframes > keyframes_before[i], "party {i} received a new GOP");
        assert!(p.streams_reset().0 >= 1, "party {i}: the backlog's stream was reset");
        let peer = sim.parties[1 - i].session().video_counters();
        assert!(peer.send.keyframe_requests >= 1, "party {i}'s request reached the peer's sender");
    }
}

#[test]
fn after_a_blackout_video_keeps_flowing_whatever_the_seed() {
    // Found by the simulator once the rate loop ran on a modelled QUIC path: after the blackout,
    // QUIC declares the outage's packets lost at once while the sender already sends again, so
    // the 500 ms delivery window counts what went out after the path came back as delivered. It
    // lands just above the bitrate controller's outage threshold (a fifth of the estimate): the
    // controller takes the path for a narrow one, sets the estimate to 90 % of that "delivered"
    // rate, under video's minimum, and the video pauses until the reports grow it back. The real
    // test's encoder (libaom on the test pattern) sends well under its target, which hides it.
    // Worse, the next window's late declarations and the report of the blackout's second each cut
    // again. Since a loss cut answers one congestion event (`bitrate::RECOVERY`), the losses that
    // follow it within a second hold the estimate, and video goes on (seed (51, 52) showed no
    // picture 1–3 s after the path came back before).
    for seed in [(51, 52), (100, 200), (108, 208)] {
        let mut sim = through_a_blackout(seed);
        let back = sim.now();
        sim.run_for(Duration::from_secs(3));
        for (i, p) in sim.parties.iter().enumerate() {
            let shown = p.shown_between(back + Duration::from_secs(1), back + Duration::from_secs(3));
            assert!(shown >= 30, "seeds {seed:?}, party {i}: {shown} pictures 1–3 s after the path came back");
        }
    }
}

#[test]
fn over_a_small_bucket_policer_a_paced_call_loses_fewer_packets_and_keeps_the_goals_pictures() {
    // Issue 14, item 3: a policer whose bucket holds 40 ms of 300 kbps (1500 bytes, one full
    // packet) cuts the tail of every burst. The fake encoder fills its target every frame and its
    // keyframes are three frames' worth. Unpaced, a record goes to QUIC whole; paced, a packet's
    // worth at a time at 1.25 × its bitrate. Counted over the whole call (the start's overload is
    // where most drops are, docs/performance.md "Policed link"), both ways; pictures from the
    // sixth second, Alice's into Bob, against the goal's 15 fps.
    let small = Impairment {
        delay: Duration::from_millis(20),
        rate: 300_000 / 8,
        bucket: Duration::from_millis(40),
        ..Impairment::clean()
    };
    let call = |paced: bool| {
        let start = Instant::now();
        let party = |peer, caller| {
            let p = MediaParty::new(peer, caller, start);
            if paced { p } else { p.unpaced() }
        };
        let mut sim = Sim::pair(party(1, true), party(0, false), start, small, (61, 62)).over_quic();
        sim.run_for(Duration::from_secs(5));
        let from = sim.now();
        sim.run_for(Duration::from_secs(20));
        let dropped = sim.link_stats(0, 1).dropped + sim.link_stats(1, 0).dropped;
        (dropped, sim.parties[1].shown_between(from, sim.now()))
    };
    let ((paced, paced_shown), (unpaced, unpaced_shown)) = (call(true), call(false));
    eprintln!("policer drops over 25 s: paced {paced} ({paced_shown} pictures in the last 20 s), unpaced {unpaced} ({unpaced_shown})");
    assert!(paced * 4 < unpaced * 3, "pacing cuts the policer's drops by a quarter at least: {paced} paced, {unpaced} unpaced");
    assert!(paced_shown >= 300, "paced video meets the goal's 15 fps: {paced_shown} pictures in 20 s");
}

#[test]
fn a_300_kbps_link_makes_the_sender_back_off_while_audio_stays_intact() {
    // tests/video.rs runs this over real sockets (it holds that the sender backs off, pictures
    // flow and audio arrives); its thresholds are held here: 300 kbps each way, policed (what
    // exceeds a 100 ms bucket is dropped), 20 ms each way, audio and video both ways, measured as
    // there: Alice's video into Bob.
    let narrow = Impairment { delay: Duration::from_millis(20), rate: 300_000 / 8, ..Impairment::clean() };
    let mut sim = video_call(narrow, (61, 62), 0);
    // The controller starts at 600 kbps and must come down below the link's rate.
    let target = |sim: &Sim<MediaParty>| sim.parties[0].session().video_counters().send.target_bitrate;
    while target(&sim) >= 250_000 && sim.elapsed() < Duration::from_secs(15) {
        sim.run_for(Duration::from_millis(100));
    }
    assert!(target(&sim) < 250_000, "the target came under the link's rate: {}", target(&sim));
    // Settle, then measure three seconds: audio arrives nearly whole and video still flows.
    sim.run_for(Duration::from_secs(3));
    let audio = |sim: &Sim<MediaParty>| {
        let j = sim.parties[1].session().receive_stats().jitter;
        (j.received, j.lost + j.concealed)
    };
    let (start, (r0, l0)) = (sim.now(), audio(&sim));
    let mut sent = Vec::new();
    for _ in 0..3 {
        sim.run_for(Duration::from_secs(1));
        sent.push(sim.parties[0].session().video_counters().send_bitrate);
    }
    let ((r1, l1), shown) = (audio(&sim), sim.parties[1].shown_between(start, sim.now()));
    let (received, lost) = (r1 - r0, l1 - l0);
    eprintln!(
        "backed off; then audio {received} received, {lost} lost or concealed; {shown} pictures; Alice sent {sent:?} bps \
         of video (estimates {}, {} bps; paused for bandwidth: {}, {})",
        sim.parties[0].session().estimate_bps(),
        sim.parties[1].session().estimate_bps(),
        sim.parties[0].session().video_counters().paused_for_bandwidth,
        sim.parties[1].session().video_counters().paused_for_bandwidth,
    );
    assert!(received >= 130, "audio kept coming: {received} frames in 3 s");
    assert!(lost * 100 <= received * 3, "audio intact: {lost} of {received} frames lost or concealed");
    // Issue 14's goal on a policed 300 kbps link is 15 pictures a second shown: 45 in 3 s.
    assert!(shown >= 45, "video still flows at the lower rate: {shown} pictures in 3 s");
    assert!(sent.iter().all(|s| *s < 300_000), "Alice sends {sent:?} bps of video into a 300 kbps link");
}

#[test]
fn pictures_are_shown_with_their_sound_when_the_encoder_holds_them_back() {
    // The lip-sync threshold of tests/video.rs (median |A/V gap| within ±80 ms), in virtual time:
    // both encoders hold each picture back five frames (167 ms, as rav1e's lookahead does), so
    // pictures arrive that much older than their sound; lip sync must hold the sound back for them.
    let clean = Impairment { delay: Duration::from_millis(20), ..Impairment::clean() };
    let mut sim = video_call(clean, (71, 72), 5);
    sim.run_for(Duration::from_secs(3));
    let from = sim.now();
    sim.run_for(Duration::from_secs(3));
    for (i, p) in sim.parties.iter().enumerate() {
        let mut gaps: Vec<f64> =
            p.shown.iter().filter(|s| s.at >= from).filter_map(|s| s.av_sync_ms.map(f64::abs)).collect();
        assert!(gaps.len() >= 80, "party {i}: {} pictures with a measured gap in 3 s", gaps.len());
        gaps.sort_by(f64::total_cmp);
        let median = gaps[gaps.len() / 2];
        eprintln!("party {i}: median |A/V gap| {median} ms over {} pictures", gaps.len());
        assert!(median <= 80.0, "party {i}: median |A/V gap| {median} ms");
    }
}
