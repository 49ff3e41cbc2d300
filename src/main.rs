//! `hail`: the daemon (`hail daemon`) and its command-line client (every other command).
//!
//! Exit codes: 0 done; 1 the daemon refused the request (the reason is on stderr); 2 bad usage;
//! 3 no daemon is running for this home; 4 anything else (I/O, protocol, start-up failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hail::config::NetworkSection;
use hail::control::{Client, ClientError, Command};
use hail::discovery::VisiblePeer;
use hail::home::Home;
use hail::node::DaemonOptions;
use hail::node::{IdentityInfo, StatusInfo};
use hail::store::{Contact, Verification};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(name = "hail", version, about = "Serverless, end-to-end-encrypted calls", propagate_version = true)]
struct Cli {
    /// The node's home folder (identity, database, control socket). Default: $HAIL_HOME, else the
    /// platform data folder.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print the daemon's raw JSON reply instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the node in the foreground (logs go to stderr; stop with Ctrl-C or SIGTERM).
    Daemon {
        /// Log filter, e.g. `info` or `hail=debug` (default: $RUST_LOG, else `info`).
        #[arg(long, value_name = "FILTER")]
        log: Option<String>,
        /// Listen for peers on this multiaddr (repeat for several; default: all interfaces, a
        /// random TCP port).
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Join the DHT through this peer (`…/p2p/<PeerId>`; repeat for several), or `ipfs` for the
        /// public IPFS bootstrap peers. Default: none.
        #[arg(long, value_name = "MULTIADDR|ipfs")]
        bootstrap: Vec<String>,
        /// Do not announce or look for peers on the LAN with mDNS.
        #[arg(long)]
        no_mdns: bool,
        /// Kademlia protocol id (default /hail/kad/1.0.0; /ipfs/kad/1.0.0 with `--bootstrap ipfs`).
        #[arg(long, value_name = "ID")]
        dht_protocol: Option<String>,
        /// Answer DHT queries for others (`server`, for publicly reachable nodes), only ask
        /// (`client`, behind NAT), or decide from confirmed public addresses (`auto`).
        #[arg(long, value_name = "MODE")]
        dht_mode: Option<String>,
    },
    #[command(flatten)]
    Client(ClientCmd),
}

/// Commands that talk to a running daemon.
#[derive(Subcommand, Debug)]
enum ClientCmd {
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
    /// Show the daemon's state.
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
}

#[derive(Subcommand, Debug)]
enum ContactsCmd {
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
}

const EXIT_REFUSED: u8 = 1;
const EXIT_NO_DAEMON: u8 = 3;
const EXIT_OTHER: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hail: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let home = match Home::resolve(cli.home.clone()) {
        Ok(home) => home,
        Err(e) => {
            eprintln!("hail: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    match cli.command {
        Cmd::Daemon { log, listen, bootstrap, no_mdns, dht_protocol, dht_mode } => {
            let dht_mode = match dht_mode.map(|m| m.parse()).transpose() {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("hail: {e}");
                    return ExitCode::from(2);
                }
            };
            let network = NetworkSection {
                listen: (!listen.is_empty()).then_some(listen),
                bootstrap: (!bootstrap.is_empty()).then_some(bootstrap),
                mdns: no_mdns.then_some(false),
                dht_protocol,
                dht_mode,
            };
            runtime.block_on(daemon(home, log, DaemonOptions { network }))
        }
        Cmd::Client(command) => runtime.block_on(client_command(home, cli.json, command)),
    }
}

async fn daemon(home: Home, log: Option<String>, options: DaemonOptions) -> ExitCode {
    let filter = log.or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hail: invalid log filter {filter:?}: {e}");
            return ExitCode::from(2);
        }
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match hail::node::run_daemon(home, options, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hail: {e}");
            ExitCode::from(EXIT_OTHER)
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

async fn client_command(home: Home, json: bool, command: ClientCmd) -> ExitCode {
    let mut client = match Client::connect(&home.socket_path()).await {
        Ok(c) => c,
        Err(ClientError::NotRunning { .. }) => {
            eprintln!(
                "hail: no daemon is running for home {}; start one with: hail daemon --home {}",
                home.dir().display(),
                home.dir().display()
            );
            return ExitCode::from(EXIT_NO_DAEMON);
        }
        Err(e) => {
            eprintln!("hail: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let (request, qr) = match &command {
        ClientCmd::Id { qr, name } => (Command::Id { set_name: name.clone() }, *qr),
        ClientCmd::Status => (Command::Status, false),
        ClientCmd::Peers => (Command::PeersList, false),
        ClientCmd::Find { peer } => (Command::PeersFind { peer: peer.clone() }, false),
        ClientCmd::Bootstrap { addresses } => (Command::DhtBootstrap { addresses: addresses.clone() }, false),
        ClientCmd::Contacts(c) => (
            match c {
                ContactsCmd::Add { name, card_or_peer_id } => {
                    Command::ContactsAdd { name: name.clone(), contact: card_or_peer_id.clone() }
                }
                ContactsCmd::List => Command::ContactsList,
                ContactsCmd::Remove { name } => Command::ContactsRemove { name: name.clone() },
                ContactsCmd::Rename { old, new } => {
                    Command::ContactsRename { name: old.clone(), new_name: new.clone() }
                }
                ContactsCmd::Block { name } => Command::ContactsBlock { name: name.clone() },
                ContactsCmd::Unblock { name } => Command::ContactsUnblock { name: name.clone() },
            },
            false,
        ),
    };
    let reply = match client.request_raw(&request).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hail: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    if json {
        println!("{}", reply.raw);
    }
    let value = match reply.result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hail: {}", e.message);
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    if !json {
        if let Err(e) = print_human(&command, value, qr) {
            eprintln!("hail: unexpected reply from the daemon: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    }
    ExitCode::SUCCESS
}

fn print_human(command: &ClientCmd, value: Value, qr: bool) -> Result<(), serde_json::Error> {
    match command {
        ClientCmd::Id { .. } => {
            let id: IdentityInfo = serde_json::from_value(value)?;
            println!("PeerId  {}", id.peer_id);
            println!("Name    {}", id.name);
            println!("Card    {}", id.card);
            for a in &id.addresses {
                println!("Address {a}");
            }
            if qr {
                match qrcode::QrCode::new(id.card.to_uppercase().as_bytes()) {
                    Ok(code) => println!(
                        "\n{}",
                        code.render::<qrcode::render::unicode::Dense1x2>()
                            .dark_color(qrcode::render::unicode::Dense1x2::Light)
                            .light_color(qrcode::render::unicode::Dense1x2::Dark)
                            .build()
                    ),
                    Err(e) => eprintln!("hail: cannot draw a QR code for this card: {e}"),
                }
            }
        }
        ClientCmd::Status => {
            let s: StatusInfo = serde_json::from_value(value)?;
            println!("PeerId    {}", s.peer_id);
            println!("Version   {}", s.version);
            println!("Home      {}", s.home.display());
            println!("Uptime    {}", humantime::format_duration(std::time::Duration::from_secs(s.uptime_secs)));
            println!("Contacts  {} ({} blocked)", s.contacts, s.blocked);
            let n = &s.network;
            println!(
                "Listening {}",
                if n.listen_addresses.is_empty() { "-".into() } else { n.listen_addresses.join(" ") }
            );
            println!(
                "Peers     {} connected, {} visible, {} in the DHT routing table",
                n.connected_peers, n.visible_peers, n.routing_table_peers
            );
            println!(
                "DHT       {} ({} mode{}), {} records stored for others, {} refused",
                n.dht_protocol,
                serde_json::to_value(n.dht_mode).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                if n.dht_serving { ", serving" } else { "" },
                n.records_stored,
                n.records_rejected
            );
            println!("mDNS      {}", if n.mdns { "on" } else { "off" });
            for b in &n.bootstrap {
                println!("Bootstrap {}  {}", b.address, b.state);
            }
        }
        ClientCmd::Peers => {
            let peers: Vec<VisiblePeer> = serde_json::from_value(value)?;
            if peers.is_empty() {
                println!("No peers visible yet.");
                return Ok(());
            }
            println!(
                "{:52}  {:12}  {:22}  {:9}  {:9}  ADDRESSES",
                "PEER ID", "CONTACT", "FOUND VIA", "CONNECTED", "SEEN"
            );
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            for p in &peers {
                let via: Vec<String> = p
                    .sources
                    .iter()
                    .filter_map(|s| serde_json::to_value(s).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                let ago = now.saturating_sub(p.last_seen_ms) / 1000;
                println!(
                    "{:52}  {:12}  {:22}  {:9}  {:9}  {}",
                    p.peer_id.to_base58(),
                    p.contact.as_ref().map(|n| n.as_str()).unwrap_or("-"),
                    if via.is_empty() { "-".into() } else { via.join(",") },
                    if p.connected { "yes" } else { "no" },
                    format!("{ago}s ago"),
                    p.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
                );
            }
        }
        ClientCmd::Find { .. } => {
            let f: hail::node::FindOutcome = serde_json::from_value(value)?;
            let who = f.contact.as_ref().map(|n| n.to_string()).unwrap_or_else(|| f.found.peer_id.to_base58());
            let via =
                serde_json::to_value(f.found.via).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            println!("Found {who} via {via} in {} ms (asked {} DHT peers)", f.found.elapsed_ms, f.found.asked);
            for a in &f.found.addresses {
                println!("  {a}");
            }
        }
        ClientCmd::Bootstrap { .. } => {
            println!("Bootstrapping; see `hail status` for progress.");
        }
        ClientCmd::Contacts(ContactsCmd::List) => {
            let contacts: Vec<Contact> = serde_json::from_value(value)?;
            if contacts.is_empty() {
                println!("No contacts yet. Add one with: hail contacts add NAME CARD");
                return Ok(());
            }
            let width = contacts.iter().map(|c| c.name.as_str().chars().count()).max().unwrap_or(4).max(4);
            println!("{:width$}  {:52}  {:13}  BLOCKED", "NAME", "PEER ID", "VERIFIED");
            for c in &contacts {
                println!(
                    "{:width$}  {:52}  {:13}  {}",
                    c.name.as_str(),
                    c.peer_id.to_base58(),
                    verification_label(c.verification),
                    if c.blocked { "yes" } else { "no" }
                );
            }
        }
        ClientCmd::Contacts(cmd) => {
            let c: Contact = serde_json::from_value(value)?;
            match cmd {
                ContactsCmd::Add { .. } => {
                    println!("Added {} ({})", c.name, c.peer_id);
                    if c.display_name.is_none() {
                        println!(
                            "Note: a bare PeerId has no checksum. Compare it with {} character by character, or add them from their card.",
                            c.name
                        );
                    }
                }
                ContactsCmd::Remove { .. } => println!("Removed {} ({})", c.name, c.peer_id),
                ContactsCmd::Rename { old, .. } => println!("Renamed {old} to {}", c.name),
                ContactsCmd::Block { .. } => {
                    println!("Blocked {}: their calls will be refused without ringing", c.name)
                }
                ContactsCmd::Unblock { .. } => println!("Unblocked {}", c.name),
                ContactsCmd::List => {}
            }
        }
    }
    Ok(())
}

fn verification_label(v: Verification) -> &'static str {
    match v {
        Verification::Unverified => "no",
        Verification::SafetyNumber => "safety number",
        Verification::Sas => "emoji (SAS)",
    }
}
