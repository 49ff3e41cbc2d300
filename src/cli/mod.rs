//! The `hail` command-line client: arguments, requests, and what is printed.

pub mod args;
pub mod daemon;
pub mod demo;
pub mod follow;
pub mod live;
pub mod live_group;
pub mod log;
pub mod manual;
pub mod out;
pub mod print;
pub mod version;
pub mod window;

use std::process::ExitCode;

use hail::control::{Client, ClientError, Command};
use hail::home::Home;

use args::{ClientCmd, ContactsCmd, SasCmd};
use out::{errln, jsonln};

/// The daemon refused, or the call did not connect.
pub const EXIT_REFUSED: u8 = 1;
/// No daemon runs for the home.
pub const EXIT_NO_DAEMON: u8 = 3;
/// Anything else.
pub const EXIT_OTHER: u8 = 4;

/// Connects to the home's daemon, or says how to start one.
pub async fn connect(home: &Home) -> Result<Client, ExitCode> {
    match Client::connect(&home.socket_path()).await {
        Ok(c) => Ok(c),
        Err(ClientError::NotRunning { .. }) => {
            errln!(
                "hail: no daemon is running for home {}; start one with: hail daemon --home {}",
                home.dir().display(),
                home.dir().display()
            );
            Err(ExitCode::from(EXIT_NO_DAEMON))
        }
        Err(e) => {
            errln!("hail: {e}");
            Err(ExitCode::from(EXIT_OTHER))
        }
    }
}

/// The request a one-shot command sends.
fn request(command: &ClientCmd) -> Command {
    match command {
        ClientCmd::Id { name, .. } => Command::Id { set_name: name.clone() },
        ClientCmd::Status => Command::Status,
        ClientCmd::Peers => Command::PeersList,
        ClientCmd::Find { peer } => Command::PeersFind { peer: peer.clone() },
        ClientCmd::Bootstrap { addresses } => Command::DhtBootstrap { addresses: addresses.clone() },
        ClientCmd::Call { peers, video, audio_in, audio_out, audio_processing, video_in, video_out, .. }
            if peers.len() > 1 =>
        {
            Command::GroupCall {
                peers: peers.clone(),
                audio_in: audio_in.clone(),
                audio_out: audio_out.clone(),
                audio_processing: audio_processing.clone(),
                video: *video,
                video_in: video_in.clone(),
                video_out: video_out.clone(),
            }
        }
        ClientCmd::Call { peers, video, audio_in, audio_out, audio_processing, video_in, video_out, .. } => Command::Call {
            peer: peers.first().cloned().unwrap_or_default(),
            video: *video,
            audio_in: audio_in.clone(),
            audio_out: audio_out.clone(),
            audio_processing: audio_processing.clone(),
            video_in: video_in.clone(),
            video_out: video_out.clone(),
        },
        ClientCmd::Answer { audio_in, audio_out, audio_processing, video_in, video_out } => Command::Answer {
            audio_in: audio_in.clone(),
            audio_out: audio_out.clone(),
            audio_processing: audio_processing.clone(),
            video_in: video_in.clone(),
            video_out: video_out.clone(),
        },
        ClientCmd::Mute => Command::Mute,
        ClientCmd::Unmute => Command::Unmute,
        ClientCmd::Video { state } => Command::Video { on: *state == args::OnOff::On },
        ClientCmd::Reject => Command::Reject,
        ClientCmd::Hangup => Command::Hangup,
        ClientCmd::Add { peer } => Command::GroupAdd { peer: peer.clone() },
        ClientCmd::Leave => Command::GroupLeave,
        ClientCmd::Sas(SasCmd::Confirm { call, emoji }) => {
            Command::SasConfirm { call_id: call.clone(), emoji: emoji.join(" ") }
        }
        ClientCmd::Watch => Command::Subscribe,
        ClientCmd::History { limit } => Command::History { limit: Some(*limit) },
        ClientCmd::Contacts(c) => match c {
            ContactsCmd::Add { name, card_or_peer_id } => {
                Command::ContactsAdd { name: name.clone(), contact: card_or_peer_id.clone() }
            }
            ContactsCmd::List => Command::ContactsList,
            ContactsCmd::Remove { name } => Command::ContactsRemove { name: name.clone() },
            ContactsCmd::Rename { old, new } => Command::ContactsRename { name: old.clone(), new_name: new.clone() },
            ContactsCmd::Block { name } => Command::ContactsBlock { name: name.clone() },
            ContactsCmd::Unblock { name } => Command::ContactsUnblock { name: name.clone() },
            ContactsCmd::Verify { name, confirm } => Command::ContactsVerify { name: name.clone(), confirm: *confirm },
        },
    }
}

/// Sends one request: with `json`, prints the reply line as it came; an error reply is printed
/// (one line on stderr) and becomes exit code 1, any other failure exit code 4.
pub async fn send(client: &mut Client, request: &Command, json: bool) -> Result<serde_json::Value, ExitCode> {
    let reply = client.request_raw(request).await.map_err(|e| {
        errln!("hail: {e}");
        ExitCode::from(EXIT_OTHER)
    })?;
    if json {
        jsonln!("{}", reply.raw);
    }
    reply.result.map_err(|e| {
        errln!("hail: {}", e.message);
        ExitCode::from(EXIT_REFUSED)
    })
}

/// How long `hail call` waits for the daemon's answer (the call rings or fails): the longest ring
/// time the settings allow (600 s, the longest lookup), the invite's time, and room.
const CALL_ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(660);

/// Runs one client command against the home's daemon.
pub async fn run_client(home: Home, json: bool, command: ClientCmd) -> ExitCode {
    let mut client = match connect(&home).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if matches!(command, ClientCmd::Call { .. }) {
        // The daemon answers a call once it rings or fails: after looking for the peer for up to
        // the ring time, and the invite.
        client.set_timeout(CALL_ANSWER_TIMEOUT);
    }
    match &command {
        ClientCmd::Watch => return follow::watch(client, json).await,
        ClientCmd::Call { detach: false, peers, .. } if peers.len() == 1 => return follow::call(client, json, request(&command)).await,
        ClientCmd::Call { detach: false, .. } => return follow::group_call(client, json, request(&command)).await,
        _ => {}
    }
    let value = match send(&mut client, &request(&command), json).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    if !json {
        if let Err(e) = print::reply(&command, value) {
            errln!("hail: unexpected reply from the daemon: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    }
    ExitCode::SUCCESS
}
