//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "hail", version, about = "Serverless, end-to-end-encrypted calls", propagate_version = true)]
pub struct Cli {
    /// The node's home folder (identity, database, control socket, and config.toml). Default:
    /// $HAIL_HOME, else the platform data folder (on Linux $XDG_DATA_HOME/hail, i.e.
    /// ~/.local/share/hail, with its config in $XDG_CONFIG_HOME/hail/config.toml).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Print the daemon's raw JSON replies and events instead of text (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the node in the foreground (logs go to stderr, or to the journal under systemd; stop
    /// with Ctrl-C or SIGTERM: a live call is hung up and the peer told).
    Daemon(DaemonArgs),
    /// List the microphones and speakers this machine has.
    Devices,
    /// Two throw-away nodes on this machine call each other: the emoji, the states, the history.
    Demo {
        /// How long the call lasts, in seconds.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// What this binary was built from: version, git commit, features, compiler (with --json, for
    /// scripts and rebuilds).
    Version,
    /// Print the shell completion script: `hail completions bash > ~/.local/share/bash-completion/completions/hail`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page hail(1), or write every page (one per subcommand) into a folder.
    Man {
        /// Write hail.1 and hail-SUBCOMMAND.1 pages into this folder instead of printing hail.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Show the call in a window: the other side large, yourself inset, the emoji and stats on
    /// top. Keys: p picture-in-picture, v video, m mute, s swap, q/Esc hang up (asks first).
    /// Closing the window leaves the call running. Needs an X11 display.
    View,
    #[command(flatten)]
    Client(ClientCmd),
}

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// Check the configuration file (and these flags) and exit without starting: 0 when valid,
    /// 2 with the reason when not.
    #[arg(long)]
    pub check_config: bool,
    /// Read the configuration from this file instead of the home's (see --home).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `hail=debug` (default: $RUST_LOG, else `info`).
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Listen for peers on this multiaddr (repeat for several; default: all interfaces, a random
    /// TCP port).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// Join the DHT through this peer (`…/p2p/<PeerId>`; repeat for several), or `ipfs` for the
    /// public IPFS bootstrap peers. Default: none.
    #[arg(long, value_name = "MULTIADDR|ipfs")]
    pub bootstrap: Vec<String>,
    /// Do not announce or look for peers on the LAN with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Kademlia protocol id (default /hail/kad/1.0.0; /ipfs/kad/1.0.0 with `--bootstrap ipfs`).
    #[arg(long, value_name = "ID")]
    pub dht_protocol: Option<String>,
    /// Answer DHT queries for others (`server`, for publicly reachable nodes), only ask
    /// (`client`, behind NAT), or follow what AutoNAT finds (`auto`).
    #[arg(long, value_name = "MODE")]
    pub dht_mode: Option<String>,
    /// Answer calls from contacts at once (intercom style). Never for unknown callers.
    #[arg(long)]
    pub auto_answer: bool,
    /// Refuse calls from people who are not contacts, without ringing.
    #[arg(long)]
    pub refuse_unknown: bool,
    /// Group calls this node sequences: `auto` (from the members' measured uplinks), `mesh`, or
    /// `forward` (the member with the best uplink forwards the others' sealed frames).
    #[arg(long, value_name = "auto|mesh|forward")]
    pub group_topology: Option<String>,
    /// This node's uplink in kbit/s, told to group members for the topology (default: measured).
    #[arg(long, value_name = "KBPS")]
    pub group_uplink_kbps: Option<u32>,
    /// Seconds a call rings before it counts as unanswered (default 45).
    #[arg(long, value_name = "SECS")]
    pub ring_timeout: Option<u64>,
    /// The UDP address of the call endpoint (default 0.0.0.0:0).
    #[arg(long, value_name = "IP:PORT")]
    pub media_listen: Option<String>,
    /// Advertise these call addresses instead of the endpoint's own (port forwarding, relays).
    #[arg(long, value_name = "IP:PORT")]
    pub media_advertise: Vec<String>,
    /// Where calls' audio comes from: default, device:NAME, tone:FREQ, silence, or a .wav file.
    #[arg(long, value_name = "SOURCE")]
    pub audio_in: Option<String>,
    /// Where calls' audio goes: default, device:NAME, null, or a .wav file.
    #[arg(long, value_name = "SINK")]
    pub audio_out: Option<String>,
    /// Echo cancellation, noise suppression and gain control on the microphone: auto (on for a
    /// sound device, off for files, tones and silence; the default), on, or off.
    #[arg(long, value_name = "MODE")]
    pub audio_processing: Option<String>,
    /// Relay for nodes behind NAT: auto (once found publicly reachable; the default), on, off.
    #[arg(long, value_name = "MODE")]
    pub relay: Option<String>,
    /// Announce this multiaddr as where peers reach the node (repeat for several), instead of the
    /// addresses it listens on: a relay on a private or carrier-grade NAT network, or behind a
    /// port forward (libp2p's announce addresses, like kubo's Addresses.Announce).
    #[arg(long, value_name = "MULTIADDR")]
    pub external_address: Vec<String>,
    /// Where calls' video comes from: pattern (the default), camera (the first), camera:NAME, or a .y4m file.
    #[arg(long, value_name = "SOURCE")]
    pub video_in: Option<String>,
    /// Where received video goes: null (the default) or a .y4m file.
    #[arg(long, value_name = "SINK")]
    pub video_out: Option<String>,
    /// The AV1 encoder: libaom (the default) or rav1e.
    #[arg(long, value_name = "ENCODER")]
    pub video_encoder: Option<String>,
    /// The best picture to send, WIDTHxHEIGHT (default 640x360).
    #[arg(long, value_name = "WxH")]
    pub video_max_size: Option<String>,
}

/// Commands that talk to a running daemon.
#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Show this node's PeerId and contact card.
    Id {
        /// Also draw the card as a QR code in the terminal.
        #[arg(long)]
        qr: bool,
        /// Change the name your card carries.
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Manage your contacts.
    #[command(subcommand)]
    Contacts(ContactsCmd),
    /// Show the daemon's state and the call in progress.
    Status,
    /// List who is visible: on the LAN (mDNS) and in the DHT.
    Peers,
    /// Find a contact or a PeerId: on the LAN first, then in the DHT (gives up after 10 s).
    Find {
        /// A contact name or a PeerId.
        peer: String,
    },
    /// Join the DHT through more peers, while the daemon runs.
    Bootstrap {
        /// Multiaddrs ending in /p2p/<PeerId>, or `ipfs`.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Call a contact (or a PeerId). Follows the call until it ends; Ctrl-C hangs up. Name more
    /// than one to start a group call (up to 7 others): each is invited, `hail status` shows the
    /// group, `hail add` invites more, `hail leave` (or `hail hangup`) leaves.
    Call {
        /// Contact names or PeerIds: one for a call, more for a group call.
        #[arg(required = true, num_args = 1..)]
        peers: Vec<String>,
        /// Ask for video.
        #[arg(long)]
        video: bool,
        /// Return as soon as it rings (a group call: once the invitations are out), instead of
        /// following the call.
        #[arg(long)]
        detach: bool,
        /// This call's audio source: default, device:NAME, tone:FREQ, silence, or a .wav file.
        #[arg(long, value_name = "SOURCE")]
        audio_in: Option<String>,
        /// This call's audio sink: default, device:NAME, null, or a .wav file.
        #[arg(long, value_name = "SINK")]
        audio_out: Option<String>,
        /// This call's echo cancellation, noise suppression and gain control: auto, on, or off.
        #[arg(long, value_name = "MODE")]
        audio_processing: Option<String>,
        /// This call's video source: pattern, camera, camera:NAME (see `hail devices`) or a .y4m file.
        #[arg(long, value_name = "SOURCE")]
        video_in: Option<String>,
        /// Where this call's received video goes: null, a .y4m file, or (a group call) a directory
        /// DIR/ that gets a .y4m per participant.
        #[arg(long, value_name = "SINK")]
        video_out: Option<String>,
    },
    /// Answer the ringing call (with video if the caller asked for it; `hail video off` stops ours).
    Answer {
        /// This call's audio source: default, device:NAME, tone:FREQ, silence, or a .wav file.
        #[arg(long, value_name = "SOURCE")]
        audio_in: Option<String>,
        /// This call's audio sink: default, device:NAME, null, or a .wav file.
        #[arg(long, value_name = "SINK")]
        audio_out: Option<String>,
        /// This call's echo cancellation, noise suppression and gain control: auto, on, or off.
        #[arg(long, value_name = "MODE")]
        audio_processing: Option<String>,
        /// This call's video source: pattern, camera, camera:NAME (see `hail devices`) or a .y4m file.
        #[arg(long, value_name = "SOURCE")]
        video_in: Option<String>,
        /// Where this call's received video goes: null, a .y4m file, or (a group call) a directory
        /// DIR/ that gets a .y4m per participant.
        #[arg(long, value_name = "SINK")]
        video_out: Option<String>,
    },
    /// Mute your microphone (the other side sees it).
    Mute,
    /// Unmute your microphone.
    Unmute,
    /// Turn your video on or off during a call (a voice call becomes a video call).
    Video {
        /// on or off.
        state: OnOff,
    },
    /// Decline the ringing call.
    Reject,
    /// Hang up the call. In a group call: leave it (there is no host; it goes on for the others).
    Hangup,
    /// Invite another contact (or a PeerId) into the group call.
    Add {
        /// A contact name or a PeerId.
        peer: String,
    },
    /// Leave the group call (it goes on for the others).
    Leave,
    /// The short authentication string of the call.
    #[command(subcommand)]
    Sas(SasCmd),
    /// Follow what happens: incoming calls, emoji ready, state changes, contacts.
    Watch,
    /// Past calls, newest first.
    History {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum SasCmd {
    /// The four emoji matched on both sides: mark the contact verified. Name the call (its id from
    /// `hail status`, or its first 6+ hex digits) and the emoji you compared, in order, as names
    /// or glyphs: `hail sas confirm 3fa2c1 fox cactus rocket anchor`.
    Confirm {
        /// The call id (or a prefix of at least 6 hex digits).
        call: String,
        /// The four emoji you compared (names or glyphs), in order.
        #[arg(required = true, num_args = 1..)]
        emoji: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ContactsCmd {
    /// Add a contact from their card (hail1…) or PeerId (12D3KooW…).
    Add {
        /// Your name for them.
        name: String,
        /// Their contact card or PeerId.
        card_or_peer_id: String,
    },
    /// List your contacts.
    List,
    /// Remove a contact.
    Remove {
        /// The contact's name.
        name: String,
    },
    /// Rename a contact.
    Rename {
        /// The current name.
        old: String,
        /// The new name.
        new: String,
    },
    /// Block a contact: their calls are refused without ringing.
    Block {
        /// The contact's name.
        name: String,
    },
    /// Unblock a contact.
    Unblock {
        /// The contact's name.
        name: String,
    },
    /// Show a contact's safety number, to compare once out of band.
    Verify {
        /// The contact's name.
        name: String,
        /// The numbers matched: mark the contact verified.
        #[arg(long)]
        confirm: bool,
    },
}

/// A switch.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}
