//! Serves the control protocol on a unix socket, one task per connection, all talking to one
//! [`Node`].

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast};

use super::line::{Line, LineReader};
use super::proto::{self, Command, ErrorBody, ErrorCode, Hello, MAX_LINE_BYTES, PictureHeader};
use crate::media::view::{ViewPicture, Viewer};
use crate::call::EndReason;
use crate::discovery::FindError;
use crate::node::{MediaOverride, Node, NodeError, NodeEvent};
use crate::store::StoreError;

/// Most control connections served at once; one more is told `busy` and closed.
pub const MAX_CONNECTIONS: usize = 64;

/// Binds the control socket at `path` (mode 0600), replacing a stale socket file left by a daemon
/// that died. The caller must hold the home's lock, so a live daemon's socket is never replaced.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!(path = %path.display(), "removed a stale control socket"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The control server: accepts connections and serves each until it closes.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    node: Node,
    hello: Arc<str>,
    slots: Arc<Semaphore>,
}

impl ControlServer {
    /// A server for `node` on `listener`. `peer_id` goes into the hello line.
    pub fn new(listener: UnixListener, node: Node, peer_id: &str) -> Self {
        let hello = Hello {
            protocol: proto::PROTOCOL.into(),
            version: proto::VERSION,
            daemon: env!("CARGO_PKG_VERSION").into(),
            peer_id: peer_id.into(),
            features: proto::FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        };
        let hello = serde_json::json!({ "hello": hello }).to_string();
        ControlServer { listener, node, hello: hello.into(), slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)) }
    }

    /// Accepts connections until the future is dropped.
    pub async fn run(self) {
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: log, breathe, keep serving.
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let node = self.node.clone();
            let hello = self.hello.clone();
            match self.slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        serve_connection(stream, node, &hello).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    tokio::spawn(refuse(
                        stream,
                        ErrorBody::new(ErrorCode::Busy, "too many control connections are open; try again"),
                    ));
                }
            }
        }
    }
}

async fn refuse(mut stream: UnixStream, error: ErrorBody) {
    let line = proto::err_line(None, &error) + "\n";
    let _ = stream.write_all(line.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn same_user(stream: &UnixStream) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    stream.peer_cred().map(|cred| cred.uid() == me).unwrap_or(false)
}

async fn serve_connection(stream: UnixStream, node: Node, hello: &str) {
    if !same_user(&stream) {
        tracing::warn!("refused a control connection from another user");
        refuse(
            stream,
            ErrorBody::new(ErrorCode::Forbidden, "the control socket only serves the user running the daemon"),
        )
        .await;
        return;
    }
    let (read, mut write) = stream.into_split();
    // A client may leave without reading its answers. Every complete request line it sent is still
    // handled (so what happens never depends on timing); only the writing stops.
    let mut writable = send(&mut write, hello).await.is_ok();
    let mut lines = LineReader::new(BufReader::new(read), MAX_LINE_BYTES);
    let mut events: Option<broadcast::Receiver<NodeEvent>> = None;
    let mut viewer: Option<Viewer> = None;
    loop {
        let out = tokio::select! {
            line = lines.next_line() => match line {
                Ok(Line::Complete(bytes)) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(Line::Complete(bytes)) => answer(&node, &bytes, &mut events, &mut viewer).await,
                Ok(Line::TooLong) => proto::err_line(None, &ErrorBody::new(
                    ErrorCode::LineTooLong,
                    format!("request lines are limited to {MAX_LINE_BYTES} bytes"),
                )),
                Ok(Line::Eof) | Err(_) => return,
            },
            event = next_event(&mut events) => match event {
                Ok(event) => serde_json::to_string(&event).unwrap_or_default(),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    serde_json::json!({ "event": "lagged", "missed": missed }).to_string()
                }
                Err(broadcast::error::RecvError::Closed) => {
                    events = None;
                    continue;
                }
            },
            picture = next_picture(&mut viewer) => match picture {
                Some(picture) => {
                    // Straight from the shared picture into the socket: the one copy a viewer costs.
                    if writable && send_picture(&mut write, &picture).await.is_err() {
                        writable = false;
                        events = None;
                        viewer = None;
                    }
                    continue;
                }
                None => {
                    viewer = None;
                    continue;
                }
            },
        };
        if writable && send(&mut write, &out).await.is_err() {
            writable = false;
            events = None;
            viewer = None;
        }
    }
}

async fn next_event(
    events: &mut Option<broadcast::Receiver<NodeEvent>>,
) -> Result<NodeEvent, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_picture(viewer: &mut Option<Viewer>) -> Option<Arc<ViewPicture>> {
    match viewer {
        Some(viewer) => viewer.next().await,
        None => std::future::pending().await,
    }
}

/// The header of `picture`, or `None` when the view protocol cannot carry it (a side over
/// [`crate::control::proto::MAX_PICTURE_SIDE`]: a peer's AV1 may decode to 7680x1080). A client
/// refuses such a header and drops the whole stream, so the picture is not sent; the viewer keeps
/// showing the last one.
fn picture_header(picture: &ViewPicture) -> Option<PictureHeader> {
    let f = &picture.frame;
    let header = PictureHeader {
        role: picture.role,
        width: f.width,
        height: f.height,
        frame: picture.frame_number,
        capture_us: picture.capture_us,
        bytes: f.y.len() + f.u.len() + f.v.len(),
        peer_id: picture.member.map(|m| m.to_base58()),
    };
    header.check().ok().map(|()| header)
}

/// A picture on a viewing connection: its header line, then its planes.
async fn send_picture(write: &mut OwnedWriteHalf, picture: &ViewPicture) -> io::Result<()> {
    let Some(header) = picture_header(picture) else {
        tracing::debug!(width = picture.frame.width, height = picture.frame.height, "a picture too large to view");
        return Ok(());
    };
    let f = &picture.frame;
    send(write, &header.to_line()).await?;
    write.write_all(&f.y).await?;
    write.write_all(&f.u).await?;
    write.write_all(&f.v).await
}

async fn send(write: &mut OwnedWriteHalf, line: &str) -> io::Result<()> {
    write.write_all(line.as_bytes()).await?;
    write.write_all(b"\n").await
}

/// One request line in, one reply line out.
async fn answer(
    node: &Node,
    line: &[u8],
    events: &mut Option<broadcast::Receiver<NodeEvent>>,
    viewer: &mut Option<Viewer>,
) -> String {
    let (id, command) = match proto::parse_request(line) {
        Ok(request) => request,
        Err(bad) => return proto::err_line(bad.id, &bad.error),
    };
    let result = match command {
        Command::Id { set_name } => node.identity(set_name.as_deref()).await.map(|v| json(&v)),
        Command::Status => node.status().await.map(|v| json(&v)),
        Command::ContactsList => node.contacts().await.map(|v| json(&v)),
        Command::ContactsAdd { name, contact } => node.add_contact(&name, &contact).await.map(|v| json(&v)),
        Command::ContactsRename { name, new_name } => node.rename_contact(&name, &new_name).await.map(|v| json(&v)),
        Command::ContactsBlock { name } => node.set_blocked(&name, true).await.map(|v| json(&v)),
        Command::ContactsUnblock { name } => node.set_blocked(&name, false).await.map(|v| json(&v)),
        Command::ContactsRemove { name } => node.remove_contact(&name).await.map(|v| json(&v)),
        Command::PeersList => node.peers().await.map(|v| json(&v)),
        Command::PeersFind { peer } => node.find(&peer).await.map(|v| json(&v)),
        Command::DhtBootstrap { addresses } => node.bootstrap(&addresses).await.map(|v| json(&v)),
        Command::Call { peer, video, audio_in, audio_out, audio_processing, video_in, video_out } => match media_override(audio_in, audio_out, audio_processing, video_in, video_out) {
            Ok(audio) => node.call_with(&peer, video, audio).await.map(|v| json(&v)),
            Err(e) => return proto::err_line(Some(id), &e),
        },
        Command::Answer { audio_in, audio_out, audio_processing, video_in, video_out } => match media_override(audio_in, audio_out, audio_processing, video_in, video_out) {
            Ok(audio) => node.answer_with(audio).await.map(|v| json(&v)),
            Err(e) => return proto::err_line(Some(id), &e),
        },
        Command::Mute => node.set_muted(true).await.map(|v| json(&v)),
        Command::Unmute => node.set_muted(false).await.map(|v| json(&v)),
        Command::Video { on } => node.set_video(on).await.map(|v| json(&v)),
        Command::Reject => node.reject().await.map(|v| json(&v)),
        Command::Hangup => node.hangup_or_leave().await.map(|v| json(&v)),
        Command::GroupCall { peers, audio_in, audio_out, audio_processing, video, video_in, video_out } => {
            match media_override(audio_in, audio_out, audio_processing, video_in, video_out) {
                Ok(audio) => node.group_call_with_video(&peers, video, audio).await.map(|v| json(&v)),
                Err(e) => return proto::err_line(Some(id), &e),
            }
        }
        Command::GroupAdd { peer } => node.group_add(&peer).await.map(|v| json(&v)),
        Command::GroupLeave => node.group_leave().await.map(|v| json(&v)),
        Command::SasConfirm { call_id, emoji } => node.confirm_sas(&call_id, &emoji).await.map(|v| json(&v)),
        Command::ContactsVerify { name, confirm } => node.verify_contact(&name, confirm).await.map(|v| json(&v)),
        Command::History { limit } => node.history(limit.unwrap_or(50).min(10_000)).await.map(|v| json(&v)),
        Command::Subscribe => {
            if events.is_none() {
                *events = Some(node.subscribe());
            }
            Ok(serde_json::json!({ "subscribed": true }))
        }
        Command::View { group } => {
            // Asked again with `group`, the viewer starts over with the members' pictures too.
            if viewer.is_none() || group {
                *viewer = Some(node.view(group));
            }
            Ok(serde_json::json!({ "viewing": true, "format": "i420" }))
        }
    };
    match result {
        Ok(value) => proto::ok_line(id, &value),
        Err(e) => proto::err_line(Some(id), &error_body(&e)),
    }
}

/// Parses a request's audio choices.
fn media_override(
    input: Option<String>,
    output: Option<String>,
    processing: Option<String>,
    video_input: Option<String>,
    video_output: Option<String>,
) -> Result<MediaOverride, ErrorBody> {
    let bad = |e: crate::media::io::AudioIoError| ErrorBody::new(ErrorCode::InvalidArguments, e.to_string());
    let bad_video =
        |e: crate::media::video::source::VideoSpecError| ErrorBody::new(ErrorCode::InvalidArguments, e.to_string());
    Ok(MediaOverride {
        input: input.map(|s| s.parse()).transpose().map_err(bad)?,
        output: output.map(|s| s.parse()).transpose().map_err(bad)?,
        processing: processing
            .map(|s| s.parse())
            .transpose()
            .map_err(|e: crate::media::audio_processing::AudioProcessingModeError| {
                ErrorBody::new(ErrorCode::InvalidArguments, e.to_string())
            })?,
        video_input: video_input.map(|s| s.parse()).transpose().map_err(bad_video)?,
        video_output: video_output.map(|s| s.parse()).transpose().map_err(bad_video)?,
    })
}

fn json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The wire form of a node error.
pub fn error_body(e: &NodeError) -> ErrorBody {
    let code = match e {
        NodeError::InvalidName(_) => ErrorCode::InvalidName,
        NodeError::InvalidContact(_) => ErrorCode::InvalidContact,
        NodeError::SelfContact => ErrorCode::SelfContact,
        NodeError::Store(StoreError::NoSuchContact(_)) => ErrorCode::NotFound,
        NodeError::Store(StoreError::NameTaken(_)) => ErrorCode::NameTaken,
        NodeError::Store(StoreError::PeerTaken { .. }) => ErrorCode::AlreadyContact,
        NodeError::Store(_) => ErrorCode::Storage,
        NodeError::UnknownPeer(_) => ErrorCode::NotFound,
        NodeError::Find { error: FindError::Busy, .. } => ErrorCode::Busy,
        NodeError::Find { error: FindError::Myself, .. } => ErrorCode::SelfContact,
        NodeError::Find { .. } => ErrorCode::PeerNotFound,
        NodeError::InvalidAddress(_) => ErrorCode::InvalidAddress,
        NodeError::InCall => ErrorCode::InCall,
        NodeError::NoCall => ErrorCode::NoCall,
        NodeError::CallAction(_) => ErrorCode::InvalidState,
        NodeError::SasMismatch(_) => ErrorCode::SasMismatch,
        NodeError::CallChanged(_) => ErrorCode::CallChanged,
        NodeError::CallEnded(reason) => match reason {
            EndReason::Busy => ErrorCode::CalleeBusy,
            EndReason::Unavailable { .. } => ErrorCode::Unavailable,
            EndReason::Unreachable { .. } => ErrorCode::PeerNotFound,
            EndReason::Security { .. } => ErrorCode::Security,
            _ => ErrorCode::CallFailed,
        },
        NodeError::VideoInput(_) => ErrorCode::InvalidArguments,
        NodeError::Stopped => ErrorCode::ShuttingDown,
    };
    ErrorBody::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::Frame;

    fn picture(width: usize, height: usize) -> ViewPicture {
        let frame = Frame::black(width, height).unwrap();
        ViewPicture { role: crate::media::view::PictureRole::Remote, frame, frame_number: 7, capture_us: 1, member: None }
    }

    #[test]
    fn a_picture_the_protocol_cannot_carry_is_not_sent() {
        let header = picture_header(&picture(320, 180)).expect("a call-sized picture goes");
        assert_eq!((header.width, header.height, header.bytes), (320, 180, 320 * 180 * 3 / 2));
        assert!(header.check().is_ok());
        // Wider than the protocol's 4096: the client would refuse it and drop the stream.
        assert!(picture_header(&picture(4098, 2)).is_none());
        assert!(picture_header(&picture(4096, 2)).is_some());
    }
}
