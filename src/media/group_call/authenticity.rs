//! Whether the frames a forwarder delivered are their senders' (`protocols/group-media-v1.md`,
//! "Frame authenticators"), sans-IO:
//!
//! - [`FrameBatcher`], at a member whose frames go through a forwarder: collects the digests of
//!   the frames it seals and says when a list is due (8 frames, 200 ms, a new key); the session
//!   has it signed through the crypto port and sends it as an authenticator frame.
//! - [`FrameVerifier`], at a receiver: fed every frame it took from the forwarder's link under
//!   another member's sender index and every authenticator (its signature already checked), it
//!   judges each frame **verified** or **forged** when a list covers it, and counts it
//!   **unverified** when none did within a second. Frames are played before they are judged: this
//!   is detection, not prevention.
//! - [`SealLog`] and [`LoggedCrypto`]: audio and video share a sender's counter, and a list
//!   accounts for every counter it spans, so the batcher must see every audio and video frame we
//!   seal, in the order the counters were given. The port both media seal through logs each one
//!   as it is sealed; the audio session hands the log to its batcher.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

use super::{FrameCryptoError, GroupFrameCrypto};
use crate::crypto::frame_auth::{FrameAuthenticator, FrameDigest, FrameList, MAX_FRAMES, MAX_OFFSET, frame_digest};
use crate::crypto::sender_key::{GroupFrameHeader, GroupMedia, KeyId, OpenedFrame, SenderIndex};
use serde::{Deserialize, Serialize};

/// A list is signed once it holds this many frames (160 ms of audio).
pub const BATCH: usize = 8;
/// ... or once its first frame is this old.
pub const BATCH_AGE: Duration = Duration::from_millis(200);
/// A frame no list covered within this long is counted unverified.
pub const UNVERIFIED_AFTER: Duration = Duration::from_secs(1);
/// A frame is still judged if a list covers it within this long; then it is forgotten.
pub const JUDGE_WITHIN: Duration = Duration::from_secs(10);
/// How long a verified list is kept for frames that come after it.
pub const KEEP_LISTS: Duration = Duration::from_secs(2);
/// Most frames waiting for a list at once.
pub const MAX_WAITING: usize = 2048;
/// Most lists kept at once.
pub const MAX_LISTS: usize = 256;

const _: () = assert!(BATCH <= MAX_FRAMES);

/// The list being filled: its key, its `from`, its frames, and when its first came.
type OpenList = (KeyId, u64, Vec<(u64, FrameDigest)>, Instant);

/// Most sealed frames the log keeps before it is read (a few seconds of audio and video: it is
/// read with every audio frame).
const SEAL_LOG: usize = 1024;

/// The audio and video frames we sealed, in counter order, not yet handed to the batcher.
#[derive(Debug, Clone, Default)]
pub struct SealLog(Arc<Mutex<VecDeque<(KeyId, u64, FrameDigest)>>>);

impl SealLog {
    fn push(&self, entry: (KeyId, u64, FrameDigest)) {
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= SEAL_LOG {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// Everything logged since the last take, oldest first.
    pub fn take(&self) -> VecDeque<(KeyId, u64, FrameDigest)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A crypto port that logs every audio and video frame sealed through it ([`SealLog`]).
pub struct LoggedCrypto {
    inner: Arc<dyn GroupFrameCrypto>,
    log: SealLog,
}

impl LoggedCrypto {
    /// `inner`, its audio and video seals logged in `log`.
    pub fn new(inner: Arc<dyn GroupFrameCrypto>, log: SealLog) -> Self {
        LoggedCrypto { inner, log }
    }
}

impl GroupFrameCrypto for LoggedCrypto {
    fn seal(&self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, FrameCryptoError> {
        let frame = self.inner.seal(media, payload)?;
        if matches!(media, GroupMedia::Audio | GroupMedia::Video { .. })
            && let Ok((h, _)) = GroupFrameHeader::parse(&frame)
        {
            self.log.push((h.key_id, h.counter, frame_digest(&frame)));
        }
        Ok(frame)
    }

    fn open(&self, from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameCryptoError> {
        self.inner.open(from, frame)
    }

    fn sign_frames(&self, list: FrameList) -> Result<FrameAuthenticator, FrameCryptoError> {
        self.inner.sign_frames(list)
    }

    fn verify_frames(&self, signer: &PeerId, authenticator: &FrameAuthenticator) -> Result<(), FrameCryptoError> {
        self.inner.verify_frames(signer, authenticator)
    }
}

/// The frames of ours since the last list, and where the next list starts.
#[derive(Debug, Default)]
pub struct FrameBatcher {
    open: Option<OpenList>,
    /// Where the next list under this key starts (the last list's last counter + 1).
    chain: Option<(KeyId, u64)>,
}

impl FrameBatcher {
    /// Our frame under `key_id` with `counter` and `digest` was sealed (and goes through the
    /// forwarder) at `now`; the lists due now, in order (the previous key's, then a full one).
    pub fn sealed(&mut self, key_id: KeyId, counter: u64, digest: FrameDigest, now: Instant) -> Vec<FrameList> {
        let mut due = Vec::new();
        let fits = |(k, from, frames, _): &OpenList| {
            *k == key_id && frames.last().is_none_or(|(c, _)| *c < counter) && counter - from <= MAX_OFFSET
        };
        if self.open.as_ref().is_some_and(|open| !fits(open)) {
            // The previous key's list (or one a counter cannot extend) goes first.
            due.extend(self.flush());
        }
        let chain = self.chain;
        let (_, _, frames, _) = self.open.get_or_insert_with(|| {
            // A list starts where the last one under this key ended; the first under a key, or
            // after a gap too long to account for, at its first frame.
            let from = match chain {
                Some((k, next)) if k == key_id && next <= counter && counter - next <= MAX_OFFSET => next,
                _ => counter,
            };
            (key_id, from, Vec::new(), now)
        });
        frames.push((counter, digest));
        if frames.len() >= BATCH {
            due.extend(self.flush());
        }
        due
    }

    /// The list, if its first frame is [`BATCH_AGE`] old by `now`.
    pub fn poll(&mut self, now: Instant) -> Option<FrameList> {
        match self.deadline() {
            Some(at) if at <= now => self.flush(),
            _ => None,
        }
    }

    /// When [`FrameBatcher::poll`] has a list.
    pub fn deadline(&self) -> Option<Instant> {
        self.open.as_ref().map(|(_, _, _, started)| *started + BATCH_AGE)
    }

    /// Our frames stop going through a forwarder: the list being filled, now, and the next list
    /// starts afresh at its first frame (frames sealed in between went member to member and are
    /// not accounted for).
    pub fn stop(&mut self) -> Option<FrameList> {
        let list = self.flush();
        self.chain = None;
        list
    }

    /// The list being filled, now.
    pub fn flush(&mut self) -> Option<FrameList> {
        let (key_id, from, frames, _) = self.open.take()?;
        let last = frames.last()?.0;
        self.chain = last.checked_add(1).map(|next| (key_id, next));
        Some(FrameList { key_id, from, frames })
    }
}

/// What a receiver counts about one sender's frames that came through a forwarder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameAuthStats {
    /// Frames a signed list vouched for.
    pub verified: u64,
    /// Frames a signed list contradicts (another digest, or a counter it says carried no frame),
    /// and authenticators whose signature or list failed.
    pub forged: u64,
    /// Frames no list covered within a second (a lost authenticator, or a forwarder that drops
    /// them); a later list still judges them.
    pub unverified: u64,
    /// Authenticators whose signature verified.
    pub authenticators: u64,
}

/// Why a frame (or an authenticator) is a forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// The list has another digest for its counter.
    Digest,
    /// The list accounts for its counter and lists no frame there.
    Unlisted,
    /// An authenticator whose signature does not verify, or whose list does not parse.
    Authenticator,
}

impl Forgery {
    /// A word for logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Forgery::Digest => "digest",
            Forgery::Unlisted => "unlisted",
            Forgery::Authenticator => "authenticator",
        }
    }
}

/// A forgery found: under whose sender index, which frame (none for an authenticator), why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forged {
    /// The sender index it claimed.
    pub sender: SenderIndex,
    /// The frame's counter under its KID.
    pub counter: Option<u64>,
    /// Why.
    pub why: Forgery,
}

#[derive(Debug)]
struct Waiting {
    digest: FrameDigest,
    came: Instant,
    counted_unverified: bool,
}

/// A receiver's judge of the frames a forwarder delivered under other members' indices.
#[derive(Debug, Default)]
pub struct FrameVerifier {
    waiting: BTreeMap<(KeyId, u64), Waiting>,
    lists: VecDeque<(Instant, FrameList)>,
    stats: BTreeMap<SenderIndex, FrameAuthStats>,
}

impl FrameVerifier {
    /// A frame under `key_id` and `counter` with `digest`, opened from the forwarder's link under
    /// another member's index at `now`: judged at once if a list kept covers it, else it waits.
    pub fn frame(&mut self, key_id: KeyId, counter: u64, digest: FrameDigest, now: Instant) -> Option<Forged> {
        let judged =
            self.lists.iter().rev().find(|(_, l)| l.covers(key_id, counter)).map(|(_, l)| judge(l, counter, &digest));
        match judged {
            Some(verdict) => self.record(key_id.sender(), counter, verdict, false),
            None => {
                if self.waiting.len() >= MAX_WAITING {
                    let oldest = self.waiting.iter().min_by_key(|(_, w)| w.came).map(|(k, _)| *k);
                    if let Some(k) = oldest {
                        self.waiting.remove(&k);
                    }
                }
                self.waiting.entry((key_id, counter)).or_insert(Waiting {
                    digest,
                    came: now,
                    counted_unverified: false,
                });
                None
            }
        }
    }

    /// A list whose signature verified (by the member the KID's sender index names), at `now`:
    /// every waiting frame it covers is judged.
    pub fn list(&mut self, list: FrameList, now: Instant) -> Vec<Forged> {
        self.stats.entry(list.key_id.sender()).or_default().authenticators += 1;
        let key_id = list.key_id;
        let covered: Vec<(u64, Waiting)> = self
            .waiting
            .range((key_id, list.from)..=(key_id, list.last()))
            .map(|(k, _)| k.1)
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|c| self.waiting.remove(&(key_id, c)).map(|w| (c, w)))
            .collect();
        let mut forged = Vec::new();
        for (counter, w) in covered {
            let verdict = judge(&list, counter, &w.digest);
            forged.extend(self.record(key_id.sender(), counter, verdict, w.counted_unverified));
        }
        if self.lists.len() >= MAX_LISTS {
            self.lists.pop_front();
        }
        self.lists.push_back((now, list));
        forged
    }

    /// An authenticator under `sender`'s index whose signature failed or whose list did not parse.
    pub fn bad_authenticator(&mut self, sender: SenderIndex) -> Forged {
        self.stats.entry(sender).or_default().forged += 1;
        Forged { sender, counter: None, why: Forgery::Authenticator }
    }

    fn record(
        &mut self,
        sender: SenderIndex,
        counter: u64,
        verdict: Result<(), Forgery>,
        was_unverified: bool,
    ) -> Option<Forged> {
        let s = self.stats.entry(sender).or_default();
        if was_unverified {
            s.unverified = s.unverified.saturating_sub(1);
        }
        match verdict {
            Ok(()) => {
                s.verified += 1;
                None
            }
            Err(why) => {
                s.forged += 1;
                Some(Forged { sender, counter: Some(counter), why })
            }
        }
    }

    /// Counts the frames no list covered within [`UNVERIFIED_AFTER`], forgets those older than
    /// [`JUDGE_WITHIN`] and lists older than [`KEEP_LISTS`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for ((key_id, _), w) in self.waiting.iter_mut() {
            if !w.counted_unverified && now.saturating_duration_since(w.came) >= UNVERIFIED_AFTER {
                w.counted_unverified = true;
                self.stats.entry(key_id.sender()).or_default().unverified += 1;
            }
        }
        self.waiting.retain(|_, w| now.saturating_duration_since(w.came) < JUDGE_WITHIN);
        while self.lists.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= KEEP_LISTS) {
            self.lists.pop_front();
        }
    }

    /// When [`FrameVerifier::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = self
            .waiting
            .values()
            .map(|w| if w.counted_unverified { w.came + JUDGE_WITHIN } else { w.came + UNVERIFIED_AFTER })
            .min();
        let lists = self.lists.front().map(|(at, _)| *at + KEEP_LISTS);
        waiting.into_iter().chain(lists).min()
    }

    /// Whether frames wait for a list.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The counts for `sender`.
    pub fn stats(&self, sender: SenderIndex) -> FrameAuthStats {
        self.stats.get(&sender).copied().unwrap_or_default()
    }

    /// `sender` is gone: its waiting frames are dropped uncounted (its counts stay).
    pub fn remove_sender(&mut self, sender: SenderIndex) {
        self.waiting.retain(|(k, _), _| k.sender() != sender);
    }
}

/// A frame against a list that covers its counter.
fn judge(list: &FrameList, counter: u64, digest: &FrameDigest) -> Result<(), Forgery> {
    match list.digest_of(counter) {
        Some(listed) if listed == digest => Ok(()),
        Some(_) => Err(Forgery::Digest),
        None => Err(Forgery::Unlisted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::frame_auth::frame_digest;

    fn kid(epoch: u64, sender: u8) -> KeyId {
        KeyId::new(epoch, SenderIndex(sender)).unwrap()
    }

    /// Sender 1's frames 0.. of epoch 3, batched as a sender would: the lists, and each frame's
    /// bytes (a frame's bytes are its counter, four times).
    fn honest(frames: u64, t0: Instant) -> (Vec<FrameList>, Vec<Vec<u8>>) {
        let mut b = FrameBatcher::default();
        let mut lists = Vec::new();
        let mut bytes = Vec::new();
        for c in 0..frames {
            let frame = c.to_be_bytes().repeat(4);
            lists.extend(b.sealed(kid(3, 1), c, frame_digest(&frame), t0 + Duration::from_millis(20 * c)));
            bytes.push(frame);
        }
        lists.extend(b.flush());
        (lists, bytes)
    }

    #[test]
    fn the_batcher_chains_lists_of_eight_and_flushes_on_age_and_a_new_key() {
        let t0 = Instant::now();
        let (lists, _) = honest(20, t0);
        let spans: Vec<(u64, u64, usize)> = lists.iter().map(|l| (l.from, l.last(), l.frames.len())).collect();
        assert_eq!(spans, vec![(0, 7, 8), (8, 15, 8), (16, 19, 4)]);
        let mut b = FrameBatcher::default();
        // Counters 0 and 2 (1 was a report): the list accounts for 0..=2, lists 0 and 2.
        assert!(b.sealed(kid(3, 1), 0, [0; 16], t0).is_empty());
        assert!(b.sealed(kid(3, 1), 2, [2; 16], t0).is_empty());
        assert_eq!(b.deadline(), Some(t0 + BATCH_AGE));
        assert_eq!(b.poll(t0 + BATCH_AGE - Duration::from_millis(1)), None);
        let aged = b.poll(t0 + BATCH_AGE).unwrap();
        assert_eq!((aged.from, aged.frames.iter().map(|f| f.0).collect::<Vec<_>>()), (0, vec![0, 2]));
        // The next list starts where that one ended (3), though its first frame is 5.
        b.sealed(kid(3, 1), 5, [5; 16], t0);
        // A new epoch's key: the old list goes first, the new one starts at 0.
        let due = b.sealed(kid(4, 1), 0, [0; 16], t0);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].key_id, due[0].from, due[0].frames.len()), (kid(3, 1), 3, 1));
        let last = b.flush().unwrap();
        assert_eq!((last.key_id, last.from), (kid(4, 1), 0));
    }

    #[test]
    fn an_honest_stream_is_all_verified_whatever_the_order() {
        let t0 = Instant::now();
        let (lists, frames) = honest(40, t0);
        let mut v = FrameVerifier::default();
        // Half the frames before their list, half after it, reordered within.
        let mut forged = Vec::new();
        for (i, list) in lists.iter().enumerate() {
            let mut covered: Vec<u64> = list.frames.iter().map(|f| f.0).collect();
            covered.reverse();
            let (before, after) = covered.split_at(covered.len() / 2);
            for c in before {
                forged.extend(v.frame(kid(3, 1), *c, frame_digest(&frames[*c as usize]), t0));
            }
            forged.extend(v.list(list.clone(), t0 + Duration::from_millis(10 * i as u64)));
            for c in after {
                forged.extend(v.frame(kid(3, 1), *c, frame_digest(&frames[*c as usize]), t0));
            }
        }
        v.handle_timeout(t0 + Duration::from_secs(5));
        assert!(forged.is_empty(), "{forged:?}");
        assert_eq!(
            v.stats(SenderIndex(1)),
            FrameAuthStats { verified: 40, forged: 0, unverified: 0, authenticators: 5 }
        );
    }

    #[test]
    fn a_forged_frame_is_detected_before_or_after_its_list() {
        let t0 = Instant::now();
        let (lists, frames) = honest(16, t0);
        let mut v = FrameVerifier::default();
        // Frame 3 replaced by other bytes under the same counter, before its list.
        assert_eq!(v.frame(kid(3, 1), 3, frame_digest(b"forged"), t0), None);
        for c in [0u64, 1, 2, 4, 5, 6, 7] {
            v.frame(kid(3, 1), c, frame_digest(&frames[c as usize]), t0);
        }
        let found = v.list(lists[0].clone(), t0);
        assert_eq!(found, vec![Forged { sender: SenderIndex(1), counter: Some(3), why: Forgery::Digest }]);
        // Frame 9 forged after its list came.
        v.list(lists[1].clone(), t0);
        assert_eq!(
            v.frame(kid(3, 1), 9, frame_digest(b"forged too"), t0),
            Some(Forged { sender: SenderIndex(1), counter: Some(9), why: Forgery::Digest })
        );
        assert_eq!(v.frame(kid(3, 1), 10, frame_digest(&frames[10]), t0), None);
        let s = v.stats(SenderIndex(1));
        assert_eq!((s.verified, s.forged), (8, 2));
    }

    #[test]
    fn a_frame_under_a_counter_the_list_says_carried_nothing_is_forged() {
        let t0 = Instant::now();
        let mut b = FrameBatcher::default();
        b.sealed(kid(3, 1), 0, [0; 16], t0);
        b.sealed(kid(3, 1), 2, [2; 16], t0);
        let list = b.flush().unwrap();
        let mut v = FrameVerifier::default();
        v.frame(kid(3, 1), 1, [1; 16], t0);
        v.frame(kid(3, 1), 3, [3; 16], t0);
        assert_eq!(v.list(list, t0), vec![Forged { sender: SenderIndex(1), counter: Some(1), why: Forgery::Unlisted }]);
        // Counter 3 is past the list: it waits for the next.
        assert!(v.has_waiting());
        // Another sender's or another epoch's frame under the same counter is not judged by it.
        assert_eq!(v.frame(kid(4, 1), 1, [9; 16], t0), None);
        assert_eq!(v.frame(kid(3, 2), 1, [9; 16], t0), None);
    }

    #[test]
    fn frames_whose_list_was_lost_are_unverified_then_judged_by_a_late_one() {
        let t0 = Instant::now();
        let (lists, frames) = honest(16, t0);
        let mut v = FrameVerifier::default();
        for c in 0..16u64 {
            v.frame(kid(3, 1), c, frame_digest(&frames[c as usize]), t0);
        }
        // The first list is lost; the second comes.
        v.list(lists[1].clone(), t0 + Duration::from_millis(100));
        assert_eq!(v.poll_timeout(), Some(t0 + UNVERIFIED_AFTER));
        v.handle_timeout(t0 + UNVERIFIED_AFTER);
        assert_eq!(
            v.stats(SenderIndex(1)),
            FrameAuthStats { verified: 8, forged: 0, unverified: 8, authenticators: 1 }
        );
        // A copy of the lost list, late but within 10 s: judged after all.
        v.list(lists[0].clone(), t0 + Duration::from_secs(3));
        assert_eq!(
            v.stats(SenderIndex(1)),
            FrameAuthStats { verified: 16, forged: 0, unverified: 0, authenticators: 2 }
        );
        // A frame never covered is forgotten after 10 s, still counted unverified.
        v.frame(kid(3, 1), 100, [0; 16], t0);
        v.handle_timeout(t0 + JUDGE_WITHIN);
        assert!(!v.has_waiting());
        assert_eq!(v.stats(SenderIndex(1)).unverified, 1);
    }

    #[test]
    fn a_bad_authenticator_is_a_forgery_and_the_memory_is_bounded() {
        let t0 = Instant::now();
        let mut v = FrameVerifier::default();
        assert_eq!(v.bad_authenticator(SenderIndex(2)).why, Forgery::Authenticator);
        assert_eq!(v.stats(SenderIndex(2)).forged, 1);
        for c in 0..(MAX_WAITING as u64 + 10) {
            v.frame(kid(3, 1), c, [0; 16], t0 + Duration::from_micros(c));
        }
        assert_eq!(v.waiting.len(), MAX_WAITING);
        assert!(!v.waiting.contains_key(&(kid(3, 1), 0)), "the oldest went first");
        for c in 0..(MAX_LISTS as u64 + 5) {
            v.list(FrameList { key_id: kid(5, 1), from: c, frames: vec![(c, [0; 16])] }, t0);
        }
        assert_eq!(v.lists.len(), MAX_LISTS);
        v.remove_sender(SenderIndex(1));
        assert!(!v.has_waiting());
    }
}
