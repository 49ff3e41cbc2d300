//! A group call's media mesh in one process, for `tests/group_media.rs` and
//! `benches/group_call.rs`: every member a real `GroupMember` on the in-memory control net
//! (`group_net.rs`) behind the `GroupFrameCrypto` port, every two members a real QUIC connection
//! (`QuicMediaPort`), every member's `GroupCallMedia` writing its mix where it is told.
//! Included with `#[path]` next to `group_net.rs` (as `group_net`) and `quic.rs` (as `quic`).
//! [`mesh_impaired`] puts every member's outgoing datagrams through an [`ImpairedLink`]
//! (`netem.rs`'s loss, delay and jitter, a seeded generator per direction); [`forwarded_video_queued`]
//! puts every link behind a [`QueuedLink`] whose RTT a test can raise (a queue at a bottleneck).
#![allow(dead_code)]

#[path = "netem.rs"]
mod netem;
pub use netem::Impairment;

use std::path::{Path, PathBuf};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use hail::call::CallId;
use hail::crypto::frame_auth::{FrameAuthenticator, FrameList};
use hail::crypto::sender_key::{GroupMedia, OpenedFrame, SenderIndex};
use hail::media::config::{AudioConfig, VideoConfig};
use hail::media::group_call::{
    FrameCryptoError, GroupAudioEvent, GroupAudioStats, GroupCallMedia, GroupFrameCrypto, GroupMediaConfig, Route,
};
use hail::media::io::{SinkSpec, SourceSpec, read_wav_mono_48k};
use hail::media_link::{LinkError, MediaLink, PathSample};
use hail::transport::channel::dial;
use hail::transport::media_port::QuicMediaPort;
use libp2p_identity::PeerId;
use tokio::sync::mpsc;

use super::group_net::{Net, peer};
use super::quic;

/// `MediaLink` methods a test link passes to its `inner` link unchanged, by name
/// (`crate::pass_to_inner!(read_datagram, path)`): each wrapper writes only what it changes.
#[macro_export]
macro_rules! pass_to_inner {
    (send_datagram) => {
        fn send_datagram(&self, datagram: ::bytes::Bytes) -> Result<(), ::hail::media_link::LinkError> {
            self.inner.send_datagram(datagram)
        }
    };
    (read_datagram) => {
        fn read_datagram(&self) -> ::futures::future::BoxFuture<'_, Result<::bytes::Bytes, ::hail::media_link::LinkError>> {
            self.inner.read_datagram()
        }
    };
    (open_stream) => {
        fn open_stream(
            &self,
            priority: i32,
        ) -> ::futures::future::BoxFuture<'_, Result<Box<dyn ::hail::media_link::OutStream>, ::hail::media_link::LinkError>> {
            self.inner.open_stream(priority)
        }
    };
    (accept_stream) => {
        fn accept_stream(
            &self,
        ) -> ::futures::future::BoxFuture<'_, Result<Box<dyn ::hail::media_link::InStream>, ::hail::media_link::LinkError>> {
            self.inner.accept_stream()
        }
    };
    (path) => {
        fn path(&self) -> ::hail::media_link::PathSample {
            self.inner.path()
        }
    };
    (is_closed) => {
        fn is_closed(&self) -> bool {
            self.inner.is_closed()
        }
    };
    ($($method:ident),+) => {
        $($crate::pass_to_inner!($method);)+
    };
}

/// A member's keys as the node holds them: its `GroupMember`, on the shared control net, and its
/// identity key (frame authenticators are signed with it).
pub struct NetCrypto {
    pub net: Arc<Mutex<Net>>,
    pub me: PeerId,
    pub identity: libp2p_identity::Keypair,
}

impl GroupFrameCrypto for NetCrypto {
    fn seal(&self, media: GroupMedia, payload: &[u8]) -> Result<Vec<u8>, FrameCryptoError> {
        let mut net = self.net.lock().unwrap();
        net.member(&self.me).seal(media, payload).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn open(&self, from: &PeerId, frame: &[u8]) -> Result<OpenedFrame, FrameCryptoError> {
        let mut net = self.net.lock().unwrap();
        net.member(&self.me).open(from, frame).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn sign_frames(&self, list: FrameList) -> Result<FrameAuthenticator, FrameCryptoError> {
        let call_id = self.net.lock().unwrap().member(&self.me).call_id();
        FrameAuthenticator::sign(list, &call_id, &self.identity).map_err(|e| FrameCryptoError(e.to_string()))
    }

    fn verify_frames(&self, signer: &PeerId, authenticator: &FrameAuthenticator) -> Result<(), FrameCryptoError> {
        let call_id = self.net.lock().unwrap().member(&self.me).call_id();
        authenticator.verify(&call_id, signer).map_err(|e| FrameCryptoError(e.to_string()))
    }
}

/// One member: its media, what it told the node, where its mix goes, and its QUIC connections.
pub struct Party {
    pub id: PeerId,
    pub media: Option<GroupCallMedia>,
    pub events: mpsc::Receiver<GroupAudioEvent>,
    pub wav: PathBuf,
    /// To each other member (or stranger): the connection.
    pub conns: Vec<(PeerId, quinn::Connection)>,
    /// To each other member, the queue its link reports (ms; [`QueuedLink`]), when the links are
    /// queued.
    pub queues: BTreeMap<PeerId, Arc<AtomicU64>>,
    _endpoint: quinn::Endpoint,
}

impl Party {
    pub fn media(&self) -> &GroupCallMedia {
        self.media.as_ref().unwrap()
    }

    pub fn conn_to(&self, other: &PeerId) -> &quinn::Connection {
        &self.conns.iter().find(|(p, _)| p == other).unwrap().1
    }

    pub fn stats(&self) -> GroupAudioStats {
        self.media().stats()
    }

    /// Stops the media (the WAV is completed) and reads what it played.
    pub async fn finish(&mut self) -> Vec<i16> {
        if let Some(task) = self.media.take().and_then(|m| m.stop()) {
            task.await.unwrap();
        }
        read_wav_mono_48k(&self.wav).unwrap()
    }
}

/// A QUIC connection between two fresh endpoints: (dialer's end, the other's end).
pub async fn connect(
    a: &quinn::Endpoint,
    b: (std::net::SocketAddr, &mut mpsc::Receiver<hail::transport::channel::CallStream>),
) -> (quinn::Connection, quinn::Connection) {
    let call = CallId([7; 16]);
    let ours = dial(a, b.0, call).await.unwrap();
    let theirs = b.1.recv().await.unwrap();
    (ours.conn, theirs.conn)
}

/// A member's link whose datagrams pass an impairment on their way out (what the network does to
/// them: loss, delay, jitter), and are recorded first when it taps them; streams and everything
/// else are the inner link's.
pub struct ImpairedLink {
    inner: Arc<dyn MediaLink>,
    impairment: Option<Impairment>,
    netem: Mutex<netem::Netem>,
    /// (sender, receiver, where to record).
    tap: Option<(PeerId, PeerId, Capture)>,
}

impl ImpairedLink {
    /// `inner` with its outgoing datagrams through `impairment`, drawn from `seed`.
    pub fn new(inner: Arc<dyn MediaLink>, impairment: Impairment, seed: u64) -> Self {
        ImpairedLink { inner, impairment: Some(impairment), netem: Mutex::new(netem::Netem::new(seed)), tap: None }
    }

    /// `inner`, every datagram it sends recorded in `capture` as from `from` to `to`.
    pub fn tapped(inner: Arc<dyn MediaLink>, from: PeerId, to: PeerId, capture: Capture) -> Self {
        ImpairedLink { inner, impairment: None, netem: Mutex::new(netem::Netem::new(0)), tap: Some((from, to, capture)) }
    }
}

impl MediaLink for ImpairedLink {
    fn send_datagram(&self, datagram: Bytes) -> Result<(), LinkError> {
        if let Some((from, to, capture)) = &self.tap {
            capture.lock().unwrap().push((*from, *to, datagram.clone()));
        }
        let Some(impairment) = &self.impairment else { return self.inner.send_datagram(datagram) };
        let now = Instant::now();
        let arrivals = self.netem.lock().unwrap().send(impairment, now, datagram.len());
        for at in arrivals {
            if at <= now {
                self.inner.send_datagram(datagram.clone())?;
            } else {
                let (inner, datagram) = (self.inner.clone(), datagram.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    let _ = inner.send_datagram(datagram);
                });
            }
        }
        Ok(())
    }
    crate::pass_to_inner!(read_datagram, open_stream, accept_stream, path, is_closed);
}

/// A member's link that reports `queue` ms more RTT than its connection measures: what a queue at
/// the link's bottleneck looks like to the sender (`media::group_call::thinning`), switched on and
/// off by a test. Everything else is the inner link's.
pub struct QueuedLink {
    inner: Arc<dyn MediaLink>,
    queue: Arc<AtomicU64>,
}

impl MediaLink for QueuedLink {
    crate::pass_to_inner!(send_datagram, read_datagram, open_stream, accept_stream, is_closed);
    fn path(&self) -> PathSample {
        PathSample { rtt: self.rtt(), ..self.inner.path() }
    }
    fn rtt(&self) -> Duration {
        self.inner.rtt() + Duration::from_millis(self.queue.load(Ordering::Relaxed))
    }
}

/// Every datagram members sent, in order: (sender, receiver, bytes) — what a wiretap inside every
/// QUIC connection would see (the sealed group frames, before QUIC encrypts them).
pub type Capture = Arc<Mutex<Vec<(PeerId, PeerId, Bytes)>>>;

/// [`mesh`], with every datagram every member sends recorded in the returned [`Capture`].
pub async fn mesh_tapped(dir: &Path, sources: Vec<SourceSpec>) -> (Arc<Mutex<Net>>, Vec<Party>, Capture) {
    let capture = Capture::default();
    let mesh = hail::group::topology::TopologyMode::Mesh;
    let (net, parties) = build_with(dir, sources, None, mesh, None, Some(capture.clone()), None, false).await;
    (net, parties, capture)
}

/// `sources.len()` members in one group (seeds 1, 2, …), a QUIC connection between every two,
/// each sending its source and writing its mix under `dir`.
pub async fn mesh(dir: &Path, sources: Vec<SourceSpec>) -> (Arc<Mutex<Net>>, Vec<Party>) {
    mesh_impaired(dir, sources, None).await
}

/// [`mesh`], with every member's datagrams to every other through `impairment` (each direction
/// of each pair its own generator, seeded from `seed`, the sender and the receiver).
pub async fn mesh_impaired(
    dir: &Path,
    sources: Vec<SourceSpec>,
    impairment: Option<(Impairment, u64)>,
) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build(dir, sources, impairment, hail::group::topology::TopologyMode::Mesh, None, false).await
}

/// [`mesh`]'s members and links, but the group forced to forward (`TopologyMode::Forward`): the
/// forwarder (the first in member order: no uplink is reported) sends its frames to all and
/// forwards the others'; every other member sends to it alone.
pub async fn forwarded(dir: &Path, sources: Vec<SourceSpec>) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build(dir, sources, None, hail::group::topology::TopologyMode::Forward, None, false).await
}

/// [`mesh`], every member also sending video as `video` says (its source, sink and encoder).
pub async fn mesh_video(dir: &Path, sources: Vec<SourceSpec>, video: VideoConfig) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build(dir, sources, None, hail::group::topology::TopologyMode::Mesh, Some(video), false).await
}

/// [`forwarded`], every member also sending video as `video` says: through the forwarder.
pub async fn forwarded_video(
    dir: &Path,
    sources: Vec<SourceSpec>,
    video: VideoConfig,
) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build(dir, sources, None, hail::group::topology::TopologyMode::Forward, Some(video), false).await
}

/// [`mesh_video`], every link a [`QueuedLink`] ([`Party::queues`]).
pub async fn mesh_video_queued(
    dir: &Path,
    sources: Vec<SourceSpec>,
    video: VideoConfig,
) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build(dir, sources, None, hail::group::topology::TopologyMode::Mesh, Some(video), true).await
}

/// [`forwarded_video`], every link a [`QueuedLink`] ([`Party::queues`]).
pub async fn forwarded_video_queued(
    dir: &Path,
    sources: Vec<SourceSpec>,
    video: VideoConfig,
) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build(dir, sources, None, hail::group::topology::TopologyMode::Forward, Some(video), true).await
}

/// How a test changes member `me`'s link to `to` (given the net, to read keys from).
pub type WrapLink<'a> = &'a dyn Fn(&Mutex<Net>, PeerId, PeerId, Arc<dyn MediaLink>) -> Arc<dyn MediaLink>;

/// [`forwarded`], with every member's link to every other passed through `wrap` (a hostile
/// forwarder's, say).
pub async fn forwarded_wrapped(
    dir: &Path,
    sources: Vec<SourceSpec>,
    wrap: WrapLink<'_>,
) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build_with(dir, sources, None, hail::group::topology::TopologyMode::Forward, None, None, Some(wrap), false).await
}

async fn build(
    dir: &Path,
    sources: Vec<SourceSpec>,
    impairment: Option<(Impairment, u64)>,
    topology: hail::group::topology::TopologyMode,
    video: Option<VideoConfig>,
    queued: bool,
) -> (Arc<Mutex<Net>>, Vec<Party>) {
    build_with(dir, sources, impairment, topology, video, None, None, queued).await
}

// Each argument is one independent knob of the test network (all but `sources` usually off).
#[allow(clippy::too_many_arguments)]
async fn build_with(
    dir: &Path,
    sources: Vec<SourceSpec>,
    impairment: Option<(Impairment, u64)>,
    topology: hail::group::topology::TopologyMode,
    video: Option<VideoConfig>,
    capture: Option<Capture>,
    wrap: Option<WrapLink<'_>>,
    queued: bool,
) -> (Arc<Mutex<Net>>, Vec<Party>) {
    let seeds: Vec<u8> = (1..=sources.len() as u8).collect();
    let config = hail::group::GroupConfig { topology, ..Default::default() };
    let net = Arc::new(Mutex::new(Net::group_with(config, seeds[0], &seeds[1..])));
    let forwarder = {
        let net = net.lock().unwrap();
        net.members[&peer(seeds[0])].forwarder(net.now)
    };
    let mut nodes: Vec<_> = seeds.iter().map(|_| quic::node()).collect();
    let mut conns: Vec<Vec<(PeerId, quinn::Connection)>> = seeds.iter().map(|_| Vec::new()).collect();
    for i in 0..seeds.len() {
        for j in i + 1..seeds.len() {
            let (ep_i, addr_j) = (nodes[i].0.clone(), nodes[j].1);
            let (a, b) = connect(&ep_i, (addr_j, &mut nodes[j].2)).await;
            conns[i].push((peer(seeds[j]), a));
            conns[j].push((peer(seeds[i]), b));
        }
    }
    let mut parties = Vec::new();
    for ((seed, source), (conns, node)) in seeds.iter().zip(sources).zip(conns.into_iter().zip(nodes)) {
        let id = peer(*seed);
        let wav = dir.join(format!("mix-{seed}.wav"));
        let config = GroupMediaConfig {
            audio: AudioConfig { input: source, output: SinkSpec::File(wav.clone()), ..AudioConfig::default() },
            muted: false,
            video_on: video.is_some(),
            video: video.clone().unwrap_or_default(),
            view: Default::default(),
        };
        let (events_tx, events) = mpsc::channel(256);
        let identity = hail::identity::Identity::from_seed([*seed; 32]).keypair().clone();
        let crypto = Arc::new(NetCrypto { net: net.clone(), me: id, identity });
        let media = GroupCallMedia::start(config, crypto, events_tx).unwrap();
        let mut queues = BTreeMap::new();
        for (other, conn) in &conns {
            let index = sender_index(&net, &id, other);
            let mut link: Arc<dyn MediaLink> = Arc::new(QuicMediaPort::new(conn.clone()));
            if let Some((imp, seed)) = impairment {
                let to = sender_index(&net, &id, &id);
                link = Arc::new(ImpairedLink::new(link, imp, seed + 1000 * u64::from(to.0) + u64::from(index.0)));
            }
            if let Some(capture) = &capture {
                link = Arc::new(ImpairedLink::tapped(link, id, *other, capture.clone()));
            }
            if let Some(wrap) = wrap {
                link = wrap(&net, id, *other, link);
            }
            if queued {
                let queue = Arc::new(AtomicU64::new(0));
                queues.insert(*other, queue.clone());
                link = Arc::new(QueuedLink { inner: link, queue });
            }
            media.add_member(*other, index, link).await.unwrap();
        }
        media.set_route(match forwarder {
            Some(f) if f == id => Route::Forwarder,
            Some(f) => Route::Via(f),
            None => Route::Mesh,
        });
        parties.push(Party { id, media: Some(media), events, wav, conns, queues, _endpoint: node.0 });
    }
    (net, parties)
}

/// `of`'s sender index in `at`'s roster.
pub fn sender_index(net: &Mutex<Net>, at: &PeerId, of: &PeerId) -> SenderIndex {
    net.lock().unwrap().members[at].roster().unwrap().index_of(of).unwrap()
}
