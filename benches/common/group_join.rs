//! How long a group call takes to start and to let one more member in, between real daemons in
//! this process on loopback (libp2p invites, QUIC legs, Noise handshakes, the group's control
//! plane with its commit and emoji round, the media plane): what `hail call a b` and `hail add d`
//! cost a user before everyone is in and hears everyone.
//!
//! Every member answers by itself (`calls.auto_answer`), so the numbers leave out a person's
//! reaction time and include everything else. For each sample:
//! - `member_ms`: from `group_add` at the inviter until every member lists the newcomer as a
//!   connected member of one new epoch (its keys are out: it can decrypt from here on);
//! - `emoji_ms`: ... and every member shows the same four emoji for that epoch;
//! - `audio_ms`: ... and the newcomer hears every other member and every other member hears it
//!   (each one's stream is in the other's mix: frames arrived and were opened with the new keys).
//!
//! `join` is the last of the three: the time the "join time" goal (≤ 1 s on loopback) is
//! about. Between samples the newcomer leaves and the others settle without it.
//!
//! Included by `benches/group_call.rs` with `#[path = "common/group_join.rs"] mod group_join;`.

use std::path::Path;
use std::time::{Duration, Instant};

use hail::home::Home;
use hail::node::{Daemon, DaemonOptions, GroupInfo, StatusInfo};
use serde_json::{Value, json};

/// The longest one step may take before the sample counts as failed.
const STEP_LIMIT: Duration = Duration::from_secs(30);
/// A member's join budget (`group::GroupConfig`'s defaults): this many per window, and the
/// spacing of joins that stays within it.
const JOIN_BUDGET: usize = 8;
const JOIN_WINDOW: Duration = Duration::from_secs(10);
const JOIN_SPACING: Duration = Duration::from_millis(1500);
/// How often every member's status is read while waiting.
const POLL: Duration = Duration::from_millis(5);

fn options(tone_hz: u32) -> DaemonOptions {
    let mut o = DaemonOptions::loopback(&format!("tone:{tone_hz}"), "null");
    o.calls.auto_answer = Some(true);
    // One newcomer invited many times in a row: lift the anti-spam limits.
    o.calls.max_invites_per_peer = Some(100_000);
    o.calls.max_invites_total = Some(100_000);
    o
}

/// Whether `g` is in a call with exactly `members` (PeerIds as text), all connected, at one epoch.
fn members_in(g: &GroupInfo, members: &[String]) -> Option<u64> {
    if g.state != "in_call" {
        return None;
    }
    let mut got: Vec<String> = g.participants.iter().map(|p| p.peer_id.to_string()).collect();
    got.sort();
    let connected = g.participants.iter().all(|p| p.state == "me" || p.state == "connected");
    (got == members && connected).then_some(g.epoch?)
}

/// Where the whole group is, read from every member's status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Not everyone lists the same members at the same epoch yet.
    #[default]
    Waiting,
    /// Everyone lists them, at one epoch.
    Members,
    /// ... with the same emoji for that epoch.
    Emoji,
    /// ... and every member hears every other.
    Audio,
}

fn stage(statuses: &[StatusInfo], members: &[String]) -> Stage {
    let groups: Vec<&GroupInfo> = statuses.iter().filter_map(|s| s.group.as_ref()).collect();
    if groups.len() != statuses.len() {
        return Stage::Waiting;
    }
    let epochs: Vec<Option<u64>> = groups.iter().map(|g| members_in(g, members)).collect();
    if epochs.iter().any(Option::is_none) || epochs.windows(2).any(|w| w[0] != w[1]) {
        return Stage::Waiting;
    }
    let emoji_agree = groups.iter().all(|g| g.emoji.is_some() && g.emoji_epoch == g.epoch && g.emoji == groups[0].emoji);
    if !emoji_agree {
        return Stage::Members;
    }
    let hears_all = groups.iter().all(|g| {
        let Some(audio) = &g.audio else { return false };
        let others = g.participants.iter().filter(|p| !p.me);
        others.into_iter().all(|p| audio.participants.iter().any(|a| a.member == p.peer_id && a.in_mix))
    });
    if hears_all { Stage::Audio } else { Stage::Emoji }
}

/// Each member's view, for a failure: its group's state and epoch, and each participant's state
/// (`m2:connected`), `-` for a daemon with no group.
fn where_each_is(statuses: &[StatusInfo]) -> String {
    let views: Vec<String> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| match &s.group {
            None => format!("m{i}: -"),
            Some(g) => {
                let who: Vec<String> = g
                    .participants
                    .iter()
                    .map(|p| format!("{}:{}", p.name.as_ref().map(|n| n.to_string()).unwrap_or_else(|| "me".into()), p.state))
                    .collect();
                format!("m{i}: {} epoch {:?} [{}]", g.state, g.epoch, who.join(" "))
            }
        })
        .collect();
    views.join("; ")
}

/// Polls every daemon until the group reaches each stage with `members`; the time of each stage
/// from `from` (ms), or the stage it was stuck at after [`STEP_LIMIT`].
async fn time_stages(daemons: &[&Daemon], members: &[String], from: Instant) -> Result<[f64; 3], String> {
    let mut at = [None::<f64>; 3];
    loop {
        let mut statuses = Vec::new();
        for d in daemons {
            statuses.push(d.node().status().await.map_err(|e| e.to_string())?);
        }
        let reached = stage(&statuses, members);
        let ms = from.elapsed().as_secs_f64() * 1000.0;
        for (i, s) in [Stage::Members, Stage::Emoji, Stage::Audio].into_iter().enumerate() {
            if reached >= s && at[i].is_none() {
                at[i] = Some(ms);
            }
        }
        if let [Some(m), Some(e), Some(a)] = at {
            return Ok([m, e, a]);
        }
        if from.elapsed() > STEP_LIMIT {
            return Err(format!("stuck at {reached:?} after {} s; {}", STEP_LIMIT.as_secs(), where_each_is(&statuses)));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = ((p / 100.0) * (sorted.len().max(1) - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

fn summary(mut values: Vec<f64>) -> Value {
    values.sort_by(|a, b| a.total_cmp(b));
    json!({
        "p50": percentile(&values, 50.0),
        "p90": percentile(&values, 90.0),
        "max": values.last(),
    })
}

/// Starts `members` daemons (the founder calls all but the last, the newcomer), then `samples`
/// times: the founder adds the newcomer, the group is timed to each stage, the newcomer leaves.
/// One JSON object: the start's stages, and per stage of a join its p50 / p90 / max, with every
/// sample and the failures.
pub async fn measure(dir: &Path, members: usize, samples: usize) -> Value {
    assert!(members >= 3, "a join into a group of at least two");
    // Homes of their own per group size: a home keeps its contacts.
    let dir = dir.join(format!("group-of-{members}"));
    let mut daemons = Vec::new();
    for i in 0..members {
        let tone = 300 + 150 * i as u32;
        let d = Daemon::start(Home::new(dir.join(format!("m{i}"))), options(tone)).await.expect("a daemon starts");
        daemons.push(d);
    }
    let names: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
    let mut cards = Vec::new();
    for (d, n) in daemons.iter().zip(&names) {
        cards.push(d.node().identity(Some(n)).await.expect("an identity").card);
    }
    for (i, d) in daemons.iter().enumerate() {
        for (j, n) in names.iter().enumerate() {
            if i != j {
                d.node().add_contact(n, &cards[j]).await.expect("a contact");
            }
        }
    }
    let ids: Vec<String> = daemons.iter().map(|d| d.peer_id().to_string()).collect();
    let sorted = |ids: &[String]| {
        let mut v = ids.to_vec();
        v.sort();
        v
    };
    let (founder, newcomer) = (&daemons[0], &daemons[members - 1]);
    let base: Vec<&Daemon> = daemons[..members - 1].iter().collect();
    let all: Vec<&Daemon> = daemons.iter().collect();
    let base_ids = sorted(&ids[..members - 1]);
    let all_ids = sorted(&ids);

    // The start: the founder calls everyone but the newcomer.
    let started = Instant::now();
    founder.node().group_call(&names[1..members - 1]).await.expect("the group call starts");
    let start = time_stages(&base, &base_ids, started).await;

    let (mut member_ms, mut emoji_ms, mut audio_ms, mut failures) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if start.is_ok() {
        // A member takes at most 8 join requests per 10 s (`group::GroupConfig`, against epoch
        // churn; a refused request is taken at the invitee's next, 2 s later): the start's joins age
        // out first, then one join per 1.5 s stays under it, so no sample waits for the budget.
        if members - 2 + samples > JOIN_BUDGET {
            tokio::time::sleep(JOIN_WINDOW).await;
        }
        let mut last = Instant::now() - JOIN_SPACING;
        for _ in 0..samples {
            tokio::time::sleep((last + JOIN_SPACING).saturating_duration_since(Instant::now())).await;
            last = Instant::now();
            let asked = Instant::now();
            if let Err(e) = founder.node().group_add(&names[members - 1]).await {
                failures.push(format!("add: {e}"));
                continue;
            }
            match time_stages(&all, &all_ids, asked).await {
                Ok([m, e, a]) => {
                    member_ms.push(m);
                    emoji_ms.push(e);
                    audio_ms.push(a);
                }
                Err(e) => failures.push(format!("join: {e}")),
            }
            // The newcomer leaves (or was never in); the others settle without it.
            let _ = newcomer.node().group_leave().await;
            if let Err(e) = time_stages(&base, &base_ids, Instant::now()).await {
                failures.push(format!("after the leave: {e}"));
                break;
            }
        }
    }
    let _ = founder.node().group_leave().await;
    for d in daemons {
        d.stop().await;
    }
    let stages = |r: &Result<[f64; 3], String>| match r {
        Ok([m, e, a]) => json!({ "member_ms": m, "emoji_ms": e, "audio_ms": a }),
        Err(e) => json!({ "failed": e }),
    };
    json!({
        "what": "start and join between real daemons in this process, loopback, auto-answer",
        "members": members,
        "start": stages(&start),
        "samples": samples,
        "joined": audio_ms.len(),
        "failures": failures,
        "join_member_ms": summary(member_ms.clone()),
        "join_emoji_ms": summary(emoji_ms.clone()),
        "join_ms": summary(audio_ms.clone()),
        "join_ms_each": audio_ms,
    })
}
