//! The pictures a call shows, for the viewers that watch them (`hail view`, over the control
//! channel): the peer's pictures as they are shown (decoded, in step with the audio) and ours as
//! they are captured (the self-view); in a group call, each other member's pictures as shown.
//!
//! One [`ViewFeed`] lives as long as the node; every call publishes into it. It holds only the
//! newest picture of each [`PictureRole`], and of each member (a viewer that is slow skips to the
//! newest: never more than one picture of each waits), shared without copying ([`Arc`]) by every
//! viewer. With no viewer attached it costs nothing: [`ViewFeed::watched`] is false, and the media
//! skips even the one copy the self-view takes. Members' pictures go only to viewers that asked
//! for them ([`ViewFeed::watch_group`]): an older viewer does not know the role.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use libp2p_identity::PeerId;

use tokio::sync::watch;

use super::video::Frame;

/// Which picture of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PictureRole {
    /// The peer's video, as shown.
    Remote,
    /// Our own video, as captured (the self-view).
    Local,
    /// A group call member's video, as shown ([`ViewPicture::member`] says whose).
    Member,
}

/// One picture for the viewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPicture {
    /// Whose picture.
    pub role: PictureRole,
    /// The picture.
    pub frame: Frame,
    /// The sender's frame number (ours for [`PictureRole::Local`]).
    pub frame_number: u32,
    /// When it was captured, µs since the Unix epoch (the capturing side's clock).
    pub capture_us: u64,
    /// Whose, for [`PictureRole::Member`].
    pub member: Option<PeerId>,
}

type Slot = Option<Arc<ViewPicture>>;
/// The newest picture of each member (a few entries: copied on write while a viewer holds it).
type Members = Arc<BTreeMap<PeerId, Arc<ViewPicture>>>;

/// The node's picture feed: cheap to clone (every clone is the same feed).
#[derive(Debug, Clone)]
pub struct ViewFeed {
    remote: Arc<watch::Sender<Slot>>,
    local: Arc<watch::Sender<Slot>>,
    members: Arc<watch::Sender<Members>>,
    /// A call's handle ([`ViewFeed::for_call`]) publishes only while its call's flag is up; the
    /// call's [`ViewFeed::clear`] lowers it, so a decode thread still finishing an ended call
    /// cannot put one more of its pictures in front of the viewers. `None`: the node's handle.
    live: Option<Arc<AtomicBool>>,
}

impl Default for ViewFeed {
    fn default() -> Self {
        ViewFeed {
            remote: Arc::new(watch::channel(None).0),
            local: Arc::new(watch::channel(None).0),
            members: Arc::new(watch::channel(Members::default()).0),
            live: None,
        }
    }
}

impl ViewFeed {
    fn slot(&self, role: PictureRole) -> Option<&watch::Sender<Slot>> {
        match role {
            PictureRole::Remote => Some(&self.remote),
            PictureRole::Local => Some(&self.local),
            PictureRole::Member => None,
        }
    }

    /// Whether any viewer watches `role` (when not, publishing is wasted work).
    pub fn watched(&self, role: PictureRole) -> bool {
        match self.slot(role) {
            Some(slot) => slot.receiver_count() > 0,
            None => self.members.receiver_count() > 0,
        }
    }

    fn silenced(&self) -> bool {
        self.live.as_ref().is_some_and(|live| !live.load(Ordering::Acquire))
    }

    /// The same feed, for one call: its handles (clones of it) publish until one of them clears.
    pub fn for_call(&self) -> ViewFeed {
        ViewFeed { live: Some(Arc::new(AtomicBool::new(true))), ..self.clone() }
    }

    /// Publishes a picture (replacing one no viewer has taken yet). Nothing happens without a
    /// viewer, or from a call's handle once that call cleared the feed.
    /// A member's picture without its `member` is dropped.
    pub fn publish(&self, picture: ViewPicture) {
        if self.silenced() || !self.watched(picture.role) {
            return;
        }
        match (self.slot(picture.role), picture.member) {
            (Some(slot), _) => {
                slot.send_replace(Some(Arc::new(picture)));
            }
            (None, Some(member)) => {
                let picture = Arc::new(picture);
                self.members.send_modify(|m| {
                    Arc::make_mut(m).insert(member, picture);
                });
            }
            (None, None) => {}
        }
    }

    /// The self-view: publishes a copy of `picture` we captured at `capture_us` as the next of
    /// ours (`shown` counts them), only while a viewer watches (the one copy a viewer costs).
    pub fn publish_captured(&self, picture: &Frame, capture_us: u64, shown: &mut u32) {
        if self.watched(PictureRole::Local) {
            *shown = shown.wrapping_add(1);
            self.publish(ViewPicture {
                role: PictureRole::Local,
                frame: picture.clone(),
                frame_number: *shown,
                capture_us,
                member: None,
            });
        }
    }

    /// Forgets `member`'s picture (it left the call): viewers are told by its absence from the
    /// call's status, and one attaching later does not get it.
    pub fn remove_member(&self, member: &PeerId) {
        if self.members.borrow().contains_key(member) {
            self.members.send_if_modified(|m| Arc::make_mut(m).remove(member).is_some());
        }
    }

    /// Forgets the pictures held (the call ended: a viewer that attaches later sees none); from a
    /// call's handle, also silences that call's other handles (never another call's).
    pub fn clear(&self) {
        if let Some(live) = &self.live {
            live.store(false, Ordering::Release);
        }
        self.remote.send_replace(None);
        self.local.send_replace(None);
        self.members.send_replace(Members::default());
    }

    /// A new viewer: it gets the pictures published from now on, the peer's and ours.
    pub fn watch(&self) -> Viewer {
        let mut remote = self.remote.subscribe();
        let mut local = self.local.subscribe();
        remote.mark_unchanged();
        local.mark_unchanged();
        Viewer { remote, local, members: None, seen: BTreeMap::new(), queued: Vec::new() }
    }

    /// A new viewer that also gets a group call's members' pictures.
    pub fn watch_group(&self) -> Viewer {
        let mut members = self.members.subscribe();
        members.mark_unchanged();
        Viewer { members: Some(members), ..self.watch() }
    }
}

/// One viewer's end of the feed. Dropping it detaches.
#[derive(Debug)]
pub struct Viewer {
    remote: watch::Receiver<Slot>,
    local: watch::Receiver<Slot>,
    members: Option<watch::Receiver<Members>>,
    /// The member pictures this viewer was given, to tell the new ones from them.
    seen: BTreeMap<PeerId, Arc<ViewPicture>>,
    /// New member pictures not handed out yet (at most one per member).
    queued: Vec<Arc<ViewPicture>>,
}

/// A member change, or its end.
async fn members_changed(members: &mut Option<watch::Receiver<Members>>) -> Result<(), watch::error::RecvError> {
    match members {
        Some(m) => m.changed().await,
        None => std::future::pending().await,
    }
}

impl Viewer {
    /// The next picture not yet seen, whichever role (or member) comes first; waits as long as it
    /// takes. `None` once the feed is gone (the node stopped).
    pub async fn next(&mut self) -> Option<Arc<ViewPicture>> {
        loop {
            if let Some(picture) = self.queued.pop() {
                return Some(picture);
            }
            let changed = tokio::select! {
                r = self.remote.changed() => r.map(|()| PictureRole::Remote),
                r = self.local.changed() => r.map(|()| PictureRole::Local),
                r = members_changed(&mut self.members) => r.map(|()| PictureRole::Member),
            };
            let rx = match changed.ok()? {
                PictureRole::Remote => &mut self.remote,
                PictureRole::Local => &mut self.local,
                PictureRole::Member => {
                    let Some(members) = self.members.as_mut() else { continue };
                    let now = members.borrow_and_update().clone();
                    for (member, picture) in now.iter() {
                        if !self.seen.get(member).is_some_and(|p| Arc::ptr_eq(p, picture)) {
                            self.queued.push(picture.clone());
                        }
                    }
                    self.seen = now.iter().map(|(m, p)| (*m, p.clone())).collect();
                    continue;
                }
            };
            if let Some(picture) = rx.borrow_and_update().clone() {
                return Some(picture);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(role: PictureRole, n: u32) -> ViewPicture {
        ViewPicture { role, frame: Frame::black(64, 36).unwrap(), frame_number: n, capture_us: u64::from(n), member: None }
    }

    fn of_member(member: PeerId, n: u32) -> ViewPicture {
        ViewPicture { member: Some(member), ..picture(PictureRole::Member, n) }
    }

    #[tokio::test]
    async fn members_pictures_go_to_group_viewers_only_the_newest_of_each_and_stop_when_they_leave() {
        use futures::FutureExt;
        let feed = ViewFeed::default();
        let (bob, carol) = (PeerId::random(), PeerId::random());
        assert!(!feed.watched(PictureRole::Member));
        let mut plain = feed.watch();
        assert!(!feed.watched(PictureRole::Member), "a viewer that did not ask takes no member pictures");
        let mut group = feed.watch_group();
        assert!(feed.watched(PictureRole::Member));
        let call = feed.for_call();
        // Bob's pictures 1 and 2 before the viewer reads, carol's 7: bob's newest and carol's.
        call.publish(of_member(bob, 1));
        call.publish(of_member(bob, 2));
        call.publish(of_member(carol, 7));
        call.publish(ViewPicture { member: None, ..picture(PictureRole::Member, 8) });
        let mut got = vec![];
        for _ in 0..2 {
            let p = group.next().await.unwrap();
            got.push((p.member.unwrap(), p.frame_number));
        }
        got.sort_by_key(|(_, n)| *n);
        assert_eq!(got, [(bob, 2), (carol, 7)]);
        assert!(group.next().now_or_never().is_none(), "nothing more: a picture without its member is dropped");
        assert!(plain.next().now_or_never().is_none(), "the plain viewer got none");
        // Only what changed is handed out again.
        call.publish(of_member(carol, 8));
        let p = group.next().await.unwrap();
        assert_eq!((p.member, p.frame_number), (Some(carol), 8));
        assert!(group.next().now_or_never().is_none());
        // Carol leaves: her picture is forgotten; a viewer attaching now gets bob's next only.
        call.remove_member(&carol);
        assert!(!feed.members.borrow().contains_key(&carol));
        let mut late = feed.watch_group();
        call.publish(of_member(bob, 3));
        let p = late.next().await.unwrap();
        assert_eq!((p.member, p.frame_number), (Some(bob), 3));
        // The call ends: nothing more from its handle.
        call.clear();
        call.publish(of_member(bob, 4));
        assert!(feed.members.borrow().is_empty());
    }

    #[tokio::test]
    async fn a_call_that_ended_publishes_nothing_more() {
        let feed = ViewFeed::default();
        let mut viewer = feed.watch();
        let call = feed.for_call();
        call.publish(picture(PictureRole::Remote, 1));
        assert_eq!(viewer.next().await.unwrap().frame_number, 1);
        // The next call starts before the first one's media is done with the feed.
        let next_call = feed.for_call();
        // The first call ends (its media clears the feed) while its decode thread finishes a picture.
        call.clone().clear();
        call.publish(picture(PictureRole::Remote, 2));
        use futures::FutureExt;
        assert!(viewer.next().now_or_never().is_none(), "nothing new for the viewer");
        next_call.publish(picture(PictureRole::Remote, 3));
        assert_eq!(viewer.next().await.unwrap().frame_number, 3, "the ended call's picture never shows");
    }

    #[tokio::test]
    async fn a_viewer_gets_the_newest_picture_and_none_attached_keeps_nothing() {
        let feed = ViewFeed::default();
        assert!(!feed.watched(PictureRole::Remote));
        feed.publish(picture(PictureRole::Remote, 1));
        assert!(feed.remote.borrow().is_none(), "nothing is kept without a viewer");

        let mut a = feed.watch();
        let mut b = feed.watch();
        assert!(feed.watched(PictureRole::Remote) && feed.watched(PictureRole::Local));
        // A slow viewer skips: three pictures published, the newest is what it sees.
        for n in 2..5 {
            feed.publish(picture(PictureRole::Remote, n));
        }
        assert_eq!(a.next().await.unwrap().frame_number, 4);
        assert_eq!(b.next().await.unwrap().frame_number, 4);
        // Both share one copy.
        feed.publish(picture(PictureRole::Local, 9));
        let (pa, pb) = (a.next().await.unwrap(), b.next().await.unwrap());
        assert!(Arc::ptr_eq(&pa, &pb));
        assert_eq!(pa.role, PictureRole::Local);
        drop((a, b));
        assert!(!feed.watched(PictureRole::Remote));
    }
}
