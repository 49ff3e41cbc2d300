//! The pictures a call shows, for the viewers that watch them (`hail view`, over the control
//! channel): the peer's pictures as they are shown (decoded, in step with the audio) and ours as
//! they are captured (the self-view).
//!
//! One [`ViewFeed`] lives as long as the node; every call publishes into it. It holds only the
//! newest picture of each [`PictureRole`] (a viewer that is slow skips to the newest: never more
//! than one picture waits), shared without copying ([`Arc`]) by every viewer. With no viewer
//! attached it costs nothing: [`ViewFeed::watched`] is false, and the media skips even the one copy
//! the self-view takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
}

type Slot = Option<Arc<ViewPicture>>;

/// The node's picture feed: cheap to clone (every clone is the same feed).
#[derive(Debug, Clone)]
pub struct ViewFeed {
    remote: Arc<watch::Sender<Slot>>,
    local: Arc<watch::Sender<Slot>>,
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
            live: None,
        }
    }
}

impl ViewFeed {
    fn slot(&self, role: PictureRole) -> &watch::Sender<Slot> {
        match role {
            PictureRole::Remote => &self.remote,
            PictureRole::Local => &self.local,
        }
    }

    /// Whether any viewer watches `role` (when not, publishing is wasted work).
    pub fn watched(&self, role: PictureRole) -> bool {
        self.slot(role).receiver_count() > 0
    }

    /// The same feed, for one call: its handles (clones of it) publish until one of them clears.
    pub fn for_call(&self) -> ViewFeed {
        ViewFeed { live: Some(Arc::new(AtomicBool::new(true))), ..self.clone() }
    }

    /// Publishes a picture (replacing one no viewer has taken yet). Nothing happens without a
    /// viewer, or from a call's handle once that call cleared the feed.
    pub fn publish(&self, picture: ViewPicture) {
        if self.live.as_ref().is_some_and(|live| !live.load(Ordering::Acquire)) {
            return;
        }
        let slot = self.slot(picture.role);
        if slot.receiver_count() > 0 {
            slot.send_replace(Some(Arc::new(picture)));
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
    }

    /// A new viewer: it gets the pictures published from now on.
    pub fn watch(&self) -> Viewer {
        let mut remote = self.remote.subscribe();
        let mut local = self.local.subscribe();
        remote.mark_unchanged();
        local.mark_unchanged();
        Viewer { remote, local }
    }
}

/// One viewer's end of the feed. Dropping it detaches.
#[derive(Debug)]
pub struct Viewer {
    remote: watch::Receiver<Slot>,
    local: watch::Receiver<Slot>,
}

impl Viewer {
    /// The next picture not yet seen, whichever role comes first; waits as long as it takes.
    /// `None` once the feed is gone (the node stopped).
    pub async fn next(&mut self) -> Option<Arc<ViewPicture>> {
        loop {
            let changed = tokio::select! {
                r = self.remote.changed() => r.map(|()| PictureRole::Remote),
                r = self.local.changed() => r.map(|()| PictureRole::Local),
            };
            let role = changed.ok()?;
            let rx = match role {
                PictureRole::Remote => &mut self.remote,
                PictureRole::Local => &mut self.local,
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
        ViewPicture { role, frame: Frame::black(64, 36).unwrap(), frame_number: n, capture_us: u64::from(n) }
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
