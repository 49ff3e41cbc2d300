//! The control client: the one library the CLI, the tests and the examples use to drive a daemon.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::line::{Line, LineReader};
use super::proto::{self, Command, ErrorBody, Hello, MAX_LINE_BYTES, PictureHeader, ServerLine};
use crate::media::video::Frame;
use crate::node::{IdentityInfo, StatusInfo};
use crate::store::Contact;

/// How long a request may take before the client gives up (the daemon answers in milliseconds;
/// this only guards against a wedged daemon).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket: no daemon runs for that home.
    #[error("no hail daemon is running (nothing listens at {socket})")]
    NotRunning {
        /// The socket that was tried.
        socket: PathBuf,
    },
    /// The socket exists but we may not use it.
    #[error("permission denied on {socket}: the daemon belongs to another user")]
    PermissionDenied {
        /// The socket.
        socket: PathBuf,
    },
    /// The daemon speaks another protocol version.
    #[error(
        "the daemon speaks control protocol {daemon} ({protocol}); this hail speaks {}: use matching versions",
        proto::VERSION
    )]
    Incompatible {
        /// The daemon's protocol name.
        protocol: String,
        /// The daemon's protocol version.
        daemon: u32,
    },
    /// The daemon refused the request.
    #[error("{}", .0.message)]
    Remote(ErrorBody),
    /// The daemon sent something that is not the control protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon closed the connection.
    #[error("the daemon closed the connection")]
    Closed,
    /// The daemon did not answer in time.
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    /// Another I/O failure.
    #[error("control socket error: {0}")]
    Io(#[from] io::Error),
}

/// A reply as it came: its result, and the whole line as JSON (what `--json` prints).
#[derive(Debug, Clone, PartialEq)]
pub struct RawReply {
    /// `ok` value or `err` body.
    pub result: Result<Value, ErrorBody>,
    /// The whole reply line.
    pub raw: Value,
}

/// A connection to a daemon's control socket.
#[derive(Debug)]
pub struct Client {
    socket: PathBuf,
    lines: LineReader<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    hello: Hello,
    next_id: u64,
    events: VecDeque<Value>,
    timeout: Duration,
}

impl Client {
    /// Connects and reads the daemon's hello.
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).await.map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                ClientError::NotRunning { socket: socket.to_owned() }
            }
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { socket: socket.to_owned() },
            _ => ClientError::Io(e),
        })?;
        let (read, write) = stream.into_split();
        let mut lines = LineReader::new(BufReader::new(read), MAX_LINE_BYTES * 16);
        let first = tokio::time::timeout(DEFAULT_TIMEOUT, read_server_line(&mut lines))
            .await
            .map_err(|_| ClientError::Timeout(DEFAULT_TIMEOUT))??;
        let hello = match first {
            ServerLine::Hello(hello) => hello,
            ServerLine::Reply { result: Err(e), .. } => return Err(ClientError::Remote(e)),
            other => {
                return Err(ClientError::Protocol(format!("expected a hello, got {other:?}")));
            }
        };
        if hello.protocol != proto::PROTOCOL || hello.version != proto::VERSION {
            return Err(ClientError::Incompatible { protocol: hello.protocol, daemon: hello.version });
        }
        Ok(Client {
            socket: socket.to_owned(),
            lines,
            write,
            hello,
            next_id: 1,
            events: VecDeque::new(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The socket this client is connected to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The daemon's greeting.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Changes how long a request may take.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `command` and returns the reply as it came, error replies included.
    pub async fn request_raw(&mut self, command: &Command) -> Result<RawReply, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = command.to_line(id) + "\n";
        self.write.write_all(line.as_bytes()).await?;
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            loop {
                match read_server_line(&mut self.lines).await? {
                    ServerLine::Reply { id: Some(got), result, raw } if got == id => {
                        return Ok(RawReply { result, raw });
                    }
                    ServerLine::Reply { id: None, result: Err(e), .. } => return Err(ClientError::Remote(e)),
                    ServerLine::Event(event) => self.events.push_back(event),
                    ServerLine::Picture(header) => {
                        read_picture(&mut self.lines, &header).await?;
                    }
                    other => {
                        return Err(ClientError::Protocol(format!("unexpected line {other:?}")));
                    }
                }
            }
        })
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// Sends `command`; an error reply becomes [`ClientError::Remote`].
    pub async fn request(&mut self, command: &Command) -> Result<Value, ClientError> {
        self.request_raw(command).await?.result.map_err(ClientError::Remote)
    }

    /// Sends `command` and decodes the `ok` value as `T`.
    pub async fn request_as<T: DeserializeOwned>(&mut self, command: &Command) -> Result<T, ClientError> {
        let value = self.request(command).await?;
        serde_json::from_value(value).map_err(|e| ClientError::Protocol(format!("unexpected reply: {e}")))
    }

    /// Turns on pushed events for this connection.
    pub async fn subscribe(&mut self) -> Result<(), ClientError> {
        self.request(&Command::Subscribe).await.map(drop)
    }

    /// The next pushed event (after [`Client::subscribe`]); waits as long as it takes.
    pub async fn next_event(&mut self) -> Result<Value, ClientError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        match read_server_line(&mut self.lines).await? {
            ServerLine::Event(event) => Ok(event),
            other => Err(ClientError::Protocol(format!("expected an event, got {other:?}"))),
        }
    }

    /// Makes this connection a viewer's: the live call's pictures come on it from now on
    /// ([`Client::next_picture`]); with `group`, a group call's members' pictures too (role
    /// `member`). A daemon without the `view` feature is told apart by a clear error.
    pub async fn view(&mut self, group: bool) -> Result<(), ClientError> {
        if !self.hello.features.iter().any(|f| f == "view") {
            return Err(ClientError::Protocol(format!(
                "the daemon (hail {}) cannot show pictures to a viewer: upgrade it",
                self.hello.daemon
            )));
        }
        self.request(&Command::View { group }).await.map(drop)
    }

    /// The next picture (after [`Client::view`]); events that arrive meanwhile are kept for
    /// [`Client::next_event`]. Waits as long as it takes.
    pub async fn next_picture(&mut self) -> Result<(PictureHeader, Frame), ClientError> {
        loop {
            match read_server_line(&mut self.lines).await? {
                ServerLine::Picture(header) => {
                    let frame = read_picture(&mut self.lines, &header).await?;
                    return Ok((header, frame));
                }
                ServerLine::Event(event) => self.events.push_back(event),
                other => return Err(ClientError::Protocol(format!("expected a picture, got {other:?}"))),
            }
        }
    }

    /// Who the node is.
    pub async fn identity(&mut self) -> Result<IdentityInfo, ClientError> {
        self.request_as(&Command::Id { set_name: None }).await
    }

    /// The daemon's state.
    pub async fn status(&mut self) -> Result<StatusInfo, ClientError> {
        self.request_as(&Command::Status).await
    }

    /// Every contact.
    pub async fn contacts(&mut self) -> Result<Vec<Contact>, ClientError> {
        self.request_as(&Command::ContactsList).await
    }

    /// Adds a contact from a card or PeerId.
    pub async fn add_contact(&mut self, name: &str, contact: &str) -> Result<Contact, ClientError> {
        self.request_as(&Command::ContactsAdd { name: name.into(), contact: contact.into() }).await
    }
}

/// The picture's bytes after its (checked) header, as a frame.
async fn read_picture<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut LineReader<R>,
    header: &PictureHeader,
) -> Result<Frame, ClientError> {
    let mut frame = Frame::black(header.width, header.height)
        .ok_or_else(|| ClientError::Protocol(format!("picture size {}x{}", header.width, header.height)))?;
    for plane in [&mut frame.y, &mut frame.u, &mut frame.v] {
        lines.read_exact(plane).await.map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ClientError::Closed,
            _ => ClientError::Io(e),
        })?;
    }
    Ok(frame)
}

async fn read_server_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut LineReader<R>) -> Result<ServerLine, ClientError> {
    match lines.next_line().await? {
        Line::Complete(bytes) => proto::parse_server_line(&bytes).map_err(|e| ClientError::Protocol(e.to_string())),
        Line::TooLong => Err(ClientError::Protocol("the daemon sent an overlong line".into())),
        Line::Eof => Err(ClientError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[tokio::test]
    async fn the_view_vectors_pictures_read_back_plane_by_plane() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../protocols/vectors/control-view-v1.json")).unwrap();
        // Every vector picture, one after the other on one stream, as the daemon writes them.
        let mut stream = Vec::new();
        for p in vectors["pictures"].as_array().unwrap() {
            stream.extend(p["line"].as_str().unwrap().as_bytes());
            stream.push(b'\n');
            stream.extend(hex(p["payload_hex"].as_str().unwrap()));
        }
        let mut lines = LineReader::new(tokio::io::BufReader::new(&stream[..]), 64 * 1024);
        for p in vectors["pictures"].as_array().unwrap() {
            let ServerLine::Picture(header) = read_server_line(&mut lines).await.unwrap() else { panic!("a picture") };
            let frame = read_picture(&mut lines, &header).await.unwrap();
            assert_eq!(frame.y, hex(p["y"].as_str().unwrap()), "Y first");
            assert_eq!(frame.u, hex(p["u"].as_str().unwrap()), "then U");
            assert_eq!(frame.v, hex(p["v"].as_str().unwrap()), "then V");
        }
        assert!(matches!(read_server_line(&mut lines).await, Err(ClientError::Closed)), "nothing more");
        // A stream cut inside a picture is a closed stream, not a panic.
        let cut = &stream[..stream.len() - 3];
        let mut lines = LineReader::new(tokio::io::BufReader::new(cut), 64 * 1024);
        for _ in 1..vectors["pictures"].as_array().unwrap().len() {
            let ServerLine::Picture(h) = read_server_line(&mut lines).await.unwrap() else { panic!("a picture") };
            read_picture(&mut lines, &h).await.unwrap();
        }
        let ServerLine::Picture(h) = read_server_line(&mut lines).await.unwrap() else { panic!("a picture") };
        assert!(matches!(read_picture(&mut lines, &h).await, Err(ClientError::Closed)));
    }
}
