//! The control protocol's messages (`protocols/control-v1.md`).
//!
//! Every line is one JSON object followed by `\n`:
//! - the daemon opens with `{"hello":{"protocol":"hail-control","version":1,…}}`;
//! - the client sends `{"id":N,"cmd":"…",…arguments}`;
//! - the daemon answers `{"id":N,"ok":…}` or `{"id":N,"err":{"code":"…","message":"…"}}`;
//! - after `subscribe`, the daemon also pushes `{"event":"…",…}` lines.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol's name in the hello.
pub const PROTOCOL: &str = "hail-control";
/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// Longest line either side accepts, in bytes, without the newline.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The daemon's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`PROTOCOL`].
    pub protocol: String,
    /// The protocol version the daemon speaks.
    pub version: u32,
    /// The daemon's software version.
    pub daemon: String,
    /// The node's PeerId.
    pub peer_id: String,
    /// What this daemon offers beyond the base protocol ([`FEATURES`]); empty from a daemon
    /// before the list existed.
    #[serde(default)]
    pub features: Vec<String>,
}

/// The features this daemon offers: `view`, the picture stream for viewers.
pub const FEATURES: &[&str] = &["view"];

/// Largest picture side the picture stream carries.
pub const MAX_PICTURE_SIDE: usize = 4096;

/// The line before each picture on a viewing connection (`{"picture":{…}}`); the picture's raw
/// I420 bytes follow it at once: `width × height` luma, then the `width/2 × height/2` U and V
/// planes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PictureHeader {
    /// Whose picture.
    pub role: crate::media::view::PictureRole,
    /// Width in pixels (even).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// The sender's frame number.
    pub frame: u32,
    /// When it was captured, µs since the Unix epoch (the capturing side's clock).
    pub capture_us: u64,
    /// How many bytes follow: `width × height × 3 / 2`.
    pub bytes: usize,
    /// Whose, for role `member` (a PeerId as text); absent for the other roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
}

impl PictureHeader {
    /// Whether the header describes a picture a viewer can take: even sides from 2 to
    /// [`MAX_PICTURE_SIDE`], and `bytes` the I420 size of that picture.
    pub fn check(&self) -> Result<(), String> {
        let side = |n: usize| (2..=MAX_PICTURE_SIDE).contains(&n) && n.is_multiple_of(2);
        if !side(self.width) || !side(self.height) {
            return Err(format!("picture size {}x{} is not carried", self.width, self.height));
        }
        let member = self.role == crate::media::view::PictureRole::Member;
        match &self.peer_id {
            None if member => return Err("a member's picture without its peer_id".into()),
            Some(_) if !member => return Err(format!("a {:?} picture with a peer_id", self.role)),
            Some(p) if p.parse::<libp2p_identity::PeerId>().is_err() => {
                return Err(format!("peer_id {p:?} is not a PeerId"));
            }
            _ => {}
        }
        let needed = self.width * self.height * 3 / 2;
        if self.bytes != needed {
            return Err(format!("a {}x{} picture is {needed} bytes, the header says {}", self.width, self.height, self.bytes));
        }
        Ok(())
    }

    /// The header line (without the newline).
    pub fn to_line(&self) -> String {
        // The struct's own field order (a map would sort them).
        format!("{{\"picture\":{}}}", serde_json::to_string(self).unwrap_or_default())
    }
}

/// A request's command and arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd")]
pub enum Command {
    /// Who this node is; with `set_name`, first change the name its card carries.
    #[serde(rename = "id")]
    Id {
        /// New display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        set_name: Option<String>,
    },
    /// The daemon's state.
    #[serde(rename = "status")]
    Status,
    /// Every contact.
    #[serde(rename = "contacts.list")]
    ContactsList,
    /// Add a contact from a card or a PeerId.
    #[serde(rename = "contacts.add")]
    ContactsAdd {
        /// Your name for them.
        name: String,
        /// Their card (`hail1…`) or PeerId (`12D3KooW…`).
        contact: String,
    },
    /// Rename a contact.
    #[serde(rename = "contacts.rename")]
    ContactsRename {
        /// The current name.
        name: String,
        /// The new name.
        new_name: String,
    },
    /// Block a contact: their calls are refused without ringing.
    #[serde(rename = "contacts.block")]
    ContactsBlock {
        /// The contact.
        name: String,
    },
    /// Unblock a contact.
    #[serde(rename = "contacts.unblock")]
    ContactsUnblock {
        /// The contact.
        name: String,
    },
    /// Remove a contact.
    #[serde(rename = "contacts.remove")]
    ContactsRemove {
        /// The contact.
        name: String,
    },
    /// Who is visible on the LAN and in the DHT.
    #[serde(rename = "peers.list")]
    PeersList,
    /// Find a contact or a PeerId: mDNS, known addresses, then the DHT (bounded in time).
    #[serde(rename = "peers.find")]
    PeersFind {
        /// A contact name or a PeerId.
        peer: String,
    },
    /// Add bootstrap peers at run time.
    #[serde(rename = "dht.bootstrap")]
    DhtBootstrap {
        /// Multiaddrs ending in `/p2p/<PeerId>`, or `ipfs`.
        addresses: Vec<String>,
    },
    /// Place a call; answered once it rings (or with why not).
    #[serde(rename = "call")]
    Call {
        /// A contact name or a PeerId.
        peer: String,
        /// Ask for video.
        #[serde(default)]
        video: bool,
        /// This call's audio source (`tone:440`, `file.wav`, `default`, …); the daemon's otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_in: Option<String>,
        /// This call's audio sink (`file.wav`, `null`, `default`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_out: Option<String>,
        /// This call's echo cancellation, noise suppression and gain control (`auto`, `on`, `off`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_processing: Option<String>,
        /// This call's video source (`pattern`, `file.y4m`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_in: Option<String>,
        /// This call's video sink (`null`, `file.y4m`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_out: Option<String>,
    },
    /// Answer the ringing call.
    #[serde(rename = "answer")]
    Answer {
        /// This call's audio source.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_in: Option<String>,
        /// This call's audio sink.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_out: Option<String>,
        /// This call's echo cancellation, noise suppression and gain control.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_processing: Option<String>,
        /// This call's video source.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_in: Option<String>,
        /// This call's video sink.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_out: Option<String>,
    },
    /// Mute the microphone (the peer is told).
    #[serde(rename = "mute")]
    Mute,
    /// Unmute the microphone.
    #[serde(rename = "unmute")]
    Unmute,
    /// Turn our video on or off mid-call (the peer is told; a voice call becomes a video call).
    #[serde(rename = "video")]
    Video {
        /// On or off.
        on: bool,
    },
    /// Decline the ringing call.
    #[serde(rename = "reject")]
    Reject,
    /// Hang up (or cancel) the call; in a group call, leave it (it goes on for the others).
    #[serde(rename = "hangup")]
    Hangup,
    /// Start a group call with these contacts: each is invited (it rings there); answered at once
    /// with the group.
    #[serde(rename = "group.call")]
    GroupCall {
        /// Contact names or PeerIds (1 to 7).
        peers: Vec<String>,
        /// This call's audio source (`tone:440`, `file.wav`, …); the daemon's otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_in: Option<String>,
        /// This call's audio sink: where the mix of the others goes (`file.wav`, `null`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_out: Option<String>,
        /// This call's echo cancellation, noise suppression and gain control.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio_processing: Option<String>,
        /// Our video on from the start (each invitee joins with its own on).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        video: bool,
        /// This call's video source (`pattern`, `camera`, a `.y4m` file).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_in: Option<String>,
        /// Where the others' video goes: a directory (`DIR/`), one Y4M per participant named by
        /// its PeerId.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video_out: Option<String>,
    },
    /// Invite another contact into the group call.
    #[serde(rename = "group.add")]
    GroupAdd {
        /// A contact name or a PeerId.
        peer: String,
    },
    /// Leave the group call (it goes on for the others).
    #[serde(rename = "group.leave")]
    GroupLeave,
    /// The four emoji matched: mark the contact SAS-verified. Names the call and the emoji seen, so
    /// a confirmation typed for one call never verifies another.
    #[serde(rename = "sas.confirm")]
    SasConfirm {
        /// The call: its id, or a prefix of at least 6 hex digits.
        call_id: String,
        /// The four emoji as seen: glyphs, names, or both ("🦊 fox 🌵 cactus …"), in order.
        emoji: String,
    },
    /// A contact's safety number; with `confirm`, mark the contact verified.
    #[serde(rename = "contacts.verify")]
    ContactsVerify {
        /// The contact.
        name: String,
        /// Mark verified.
        #[serde(default)]
        confirm: bool,
    },
    /// Past calls, newest first.
    #[serde(rename = "history")]
    History {
        /// At most this many (default 50).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Turn on pushed events on this connection.
    #[serde(rename = "subscribe")]
    Subscribe,
    /// Turn this connection into a picture stream for a viewer (the live call's pictures); with
    /// `group`, a group call's members' pictures too.
    #[serde(rename = "view")]
    View {
        /// Also the members' pictures of a group call (role `member`, with their `peer_id`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        group: bool,
    },
}

impl Command {
    /// Every command name, as it appears in `cmd`.
    pub const NAMES: &'static [&'static str] = &[
        "id",
        "status",
        "contacts.list",
        "contacts.add",
        "contacts.rename",
        "contacts.block",
        "contacts.unblock",
        "contacts.remove",
        "peers.list",
        "peers.find",
        "dht.bootstrap",
        "call",
        "answer",
        "mute",
        "unmute",
        "video",
        "reject",
        "hangup",
        "group.call",
        "group.add",
        "group.leave",
        "sas.confirm",
        "contacts.verify",
        "history",
        "subscribe",
        "view",
    ];

    /// The request line for this command with id `id` (without the newline).
    pub fn to_line(&self, id: u64) -> String {
        let mut object = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        object.insert("id".into(), Value::from(id));
        Value::Object(object).to_string()
    }
}

/// Stable error codes. Scripts may match on them; messages are for people and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not a JSON object with a numeric `id` and a string `cmd`.
    Malformed,
    /// The line is longer than [`MAX_LINE_BYTES`].
    LineTooLong,
    /// `cmd` names no command this daemon knows.
    UnknownCommand,
    /// The command's arguments are missing or of the wrong type.
    InvalidArguments,
    /// A name breaks the naming rules.
    InvalidName,
    /// Not a valid contact card or PeerId.
    InvalidContact,
    /// Not a valid network address (or a bootstrap address without `/p2p/`).
    InvalidAddress,
    /// A lookup found nothing within its time bound.
    PeerNotFound,
    /// No contact by that name.
    NotFound,
    /// A contact already has that name.
    NameTaken,
    /// That PeerId is already a contact.
    AlreadyContact,
    /// That is the node's own PeerId.
    SelfContact,
    /// The connecting process belongs to another user.
    Forbidden,
    /// Too many control connections are open.
    Busy,
    /// The database failed or is damaged.
    Storage,
    /// The daemon is shutting down.
    ShuttingDown,
    /// A call is already in progress.
    InCall,
    /// There is no call to act on.
    NoCall,
    /// The call cannot do that in its state.
    InvalidState,
    /// `sas.confirm`: the emoji given are not the call's.
    SasMismatch,
    /// `sas.confirm`: the call named is not the current call (it ended or another replaced it).
    CallChanged,
    /// The callee is in another call.
    CalleeBusy,
    /// The callee refused without ringing.
    Unavailable,
    /// The peer failed the identity check: possibly a man in the middle.
    Security,
    /// The call could not be set up.
    CallFailed,
    /// A code this client does not know (a newer daemon).
    #[serde(other)]
    Unknown,
}

/// The body of an `err` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What happened and what to do, for a person.
    pub message: String,
}

impl ErrorBody {
    /// An error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { code, message: message.into() }
    }
}

/// A request that could not be turned into a [`Command`]: the error to send back, and the id to
/// send it with when the line had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// The request's id, if one could be read.
    pub id: Option<u64>,
    /// Why it was refused.
    pub error: ErrorBody,
}

/// Parses a request line into its id and command.
pub fn parse_request(line: &[u8]) -> Result<(u64, Command), BadRequest> {
    let bad = |id, code, message: String| BadRequest { id, error: ErrorBody::new(code, message) };
    let value: Value =
        serde_json::from_slice(line).map_err(|e| bad(None, ErrorCode::Malformed, format!("not valid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(bad(None, ErrorCode::Malformed, "a request must be a JSON object".into()));
    };
    let id = match object.remove("id") {
        Some(v) => {
            v.as_u64().ok_or_else(|| bad(None, ErrorCode::Malformed, "\"id\" must be a non-negative integer".into()))?
        }
        None => {
            return Err(bad(None, ErrorCode::Malformed, "a request needs an \"id\"".into()));
        }
    };
    let cmd = match object.get("cmd") {
        Some(Value::String(c)) => c.clone(),
        Some(_) => {
            return Err(bad(Some(id), ErrorCode::Malformed, "\"cmd\" must be a string".into()));
        }
        None => {
            return Err(bad(Some(id), ErrorCode::Malformed, "a request needs a \"cmd\"".into()));
        }
    };
    if !Command::NAMES.contains(&cmd.as_str()) {
        return Err(bad(
            Some(id),
            ErrorCode::UnknownCommand,
            format!("unknown command {cmd:?}; known: {}", Command::NAMES.join(", ")),
        ));
    }
    let command: Command = serde_json::from_value(Value::Object(object))
        .map_err(|e| bad(Some(id), ErrorCode::InvalidArguments, format!("bad arguments for {cmd}: {e}")))?;
    Ok((id, command))
}

/// An `ok` reply line.
pub fn ok_line(id: u64, result: &impl Serialize) -> String {
    let result = serde_json::to_value(result).unwrap_or(Value::Null);
    serde_json::json!({ "id": id, "ok": result }).to_string()
}

/// An `err` reply line.
pub fn err_line(id: Option<u64>, error: &ErrorBody) -> String {
    serde_json::json!({ "id": id, "err": error }).to_string()
}

/// A line from the daemon, as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerLine {
    /// The greeting.
    Hello(Hello),
    /// An answer to request `id` (`None` when the daemon could not read the request's id).
    Reply {
        /// The request id.
        id: Option<u64>,
        /// The `ok` value or the `err` body.
        result: Result<Value, ErrorBody>,
        /// The whole line, as JSON, for `--json` output.
        raw: Value,
    },
    /// A pushed event (the whole object, `event` field included).
    Event(Value),
    /// A picture follows (after `view`): this many raw bytes come next on the stream.
    Picture(PictureHeader),
}

/// Why a line from the daemon could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ServerLineError {
    /// Not JSON.
    #[error("daemon sent invalid JSON: {0}")]
    Json(serde_json::Error),
    /// JSON, but not an object.
    #[error("daemon sent a line that is not a JSON object")]
    NotAnObject,
    /// A hello that does not say what a hello says.
    #[error("daemon sent an invalid hello: {0}")]
    Hello(serde_json::Error),
    /// An error reply without a code and message.
    #[error("daemon sent an invalid error: {0}")]
    ErrorBody(serde_json::Error),
    /// An object with neither `ok`, `err` nor `event`.
    #[error("daemon sent a line that is neither a reply nor an event")]
    Unknown,
    /// A picture header that does not describe a picture this client takes.
    #[error("daemon sent an invalid picture header: {0}")]
    Picture(String),
}

/// Parses a line from the daemon.
pub fn parse_server_line(line: &[u8]) -> Result<ServerLine, ServerLineError> {
    let value: Value = serde_json::from_slice(line).map_err(ServerLineError::Json)?;
    let Value::Object(object) = &value else {
        return Err(ServerLineError::NotAnObject);
    };
    if let Some(hello) = object.get("hello") {
        return serde_json::from_value(hello.clone()).map(ServerLine::Hello).map_err(ServerLineError::Hello);
    }
    if object.contains_key("event") {
        return Ok(ServerLine::Event(value));
    }
    if let Some(picture) = object.get("picture") {
        let header: PictureHeader =
            serde_json::from_value(picture.clone()).map_err(|e| ServerLineError::Picture(e.to_string()))?;
        header.check().map_err(ServerLineError::Picture)?;
        return Ok(ServerLine::Picture(header));
    }
    let id = object.get("id").and_then(Value::as_u64);
    let result = if let Some(ok) = object.get("ok") {
        Ok(ok.clone())
    } else if let Some(err) = object.get("err") {
        Err(serde_json::from_value(err.clone()).map_err(ServerLineError::ErrorBody)?)
    } else {
        return Err(ServerLineError::Unknown);
    };
    Ok(ServerLine::Reply { id, result, raw: value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_request_lines() {
        let commands = [
            Command::Id { set_name: None },
            Command::Id { set_name: Some("alice".into()) },
            Command::Status,
            Command::ContactsList,
            Command::ContactsAdd { name: "bob".into(), contact: "12D3KooW".into() },
            Command::ContactsRename { name: "bob".into(), new_name: "robert".into() },
            Command::ContactsBlock { name: "bob".into() },
            Command::ContactsUnblock { name: "bob".into() },
            Command::ContactsRemove { name: "bob".into() },
            Command::PeersList,
            Command::PeersFind { peer: "bob".into() },
            Command::DhtBootstrap { addresses: vec!["/ip4/127.0.0.1/tcp/1/p2p/12D3KooW".into()] },
            Command::Call {
                peer: "bob".into(),
                video: true,
                audio_in: Some("tone:440".into()),
                audio_out: None,
                audio_processing: Some("on".into()),
                video_in: Some("pattern".into()),
                video_out: None,
            },
            Command::Answer {
                audio_in: None,
                audio_out: Some("null".into()),
                audio_processing: None,
                video_in: None,
                video_out: None,
            },
            Command::Video { on: true },
            Command::Mute,
            Command::Unmute,
            Command::Reject,
            Command::Hangup,
            Command::GroupCall {
                peers: vec!["bob".into(), "carol".into()],
                audio_in: None,
                audio_out: None,
                audio_processing: None,
                video: true,
                video_in: None,
                video_out: Some("seen/".into()),
            },
            Command::GroupAdd { peer: "dave".into() },
            Command::GroupLeave,
            Command::SasConfirm { call_id: "3fa2c1".into(), emoji: "fox cactus rocket anchor".into() },
            Command::ContactsVerify { name: "bob".into(), confirm: true },
            Command::History { limit: Some(5) },
            Command::Subscribe,
            Command::View { group: false },
            Command::View { group: true },
        ];
        for (i, c) in commands.iter().enumerate() {
            let line = c.to_line(i as u64);
            assert_eq!(parse_request(line.as_bytes()), Ok((i as u64, c.clone())), "{line}");
        }
    }

    #[test]
    fn bad_requests_get_specific_codes() {
        let code = |line: &str| parse_request(line.as_bytes()).unwrap_err();
        assert_eq!(code("nonsense").error.code, ErrorCode::Malformed);
        assert_eq!(code("[1,2]").error.code, ErrorCode::Malformed);
        assert_eq!(code(r#"{"cmd":"status"}"#).error.code, ErrorCode::Malformed);
        assert_eq!(code(r#"{"id":-1,"cmd":"status"}"#).error.code, ErrorCode::Malformed);
        let e = code(r#"{"id":4,"cmd":"fly"}"#);
        assert_eq!((e.id, e.error.code), (Some(4), ErrorCode::UnknownCommand));
        let e = code(r#"{"id":5,"cmd":"contacts.add","name":"bob"}"#);
        assert_eq!((e.id, e.error.code), (Some(5), ErrorCode::InvalidArguments));
        let e = code(r#"{"id":6,"cmd":7}"#);
        assert_eq!((e.id, e.error.code), (Some(6), ErrorCode::Malformed));
    }

    #[test]
    fn picture_headers_match_the_vectors_and_bad_ones_are_refused() {
        let vectors: Value =
            serde_json::from_str(include_str!("../../protocols/vectors/control-view-v1.json")).unwrap();
        assert_eq!(vectors["hello_features"], serde_json::json!(FEATURES));
        let (id, command) = parse_request(vectors["request"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!((id, &command), (9, &Command::View { group: false }));
        let (id, group) = parse_request(vectors["group_request"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!((id, &group), (10, &Command::View { group: true }));
        assert_eq!(group.to_line(10), vectors["group_request"].as_str().unwrap());
        assert_eq!(command.to_line(9), vectors["request"].as_str().unwrap());
        for picture in vectors["pictures"].as_array().unwrap() {
            let line = picture["line"].as_str().unwrap();
            let ServerLine::Picture(header) = parse_server_line(line.as_bytes()).unwrap() else {
                panic!("{line} is a picture header");
            };
            assert_eq!(header.to_line(), line);
            assert_eq!(header.bytes * 2, picture["payload_hex"].as_str().unwrap().len());
        }
        for line in vectors["invalid"].as_array().unwrap() {
            let line = line.as_str().unwrap();
            assert!(
                matches!(parse_server_line(line.as_bytes()), Err(ServerLineError::Picture(_))),
                "{line} must be refused"
            );
        }
    }
}
