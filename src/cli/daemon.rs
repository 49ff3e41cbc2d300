//! `hail daemon`: runs the node until SIGINT or SIGTERM, or with `--check-config` only checks what
//! it would start with. Under systemd (`packaging/hail.service`, a `Type=notify` user unit) it says
//! when it is ready and when it stops, and logs to the journal ([`super::log`]).

use std::path::PathBuf;
use std::process::ExitCode;

use hail::config::{AudioSection, CallsSection, ConfigFileError, NetworkSection, VideoSection};
use hail::home::Home;
use hail::node::{Daemon, DaemonError, DaemonOptions, DaemonSettings};

use super::EXIT_OTHER;
use super::args::DaemonArgs;
use super::log::{self, LogReader};
use super::out::{errln, outln};

/// Bad usage: a flag, the log filter or the configuration is invalid.
const EXIT_USAGE: u8 = 2;

/// Runs `hail daemon` with `home` (`--home`, if given) and `args`.
pub fn run(runtime: &tokio::runtime::Runtime, home: Option<PathBuf>, args: DaemonArgs) -> ExitCode {
    let home = match Home::resolve(home) {
        Ok(home) => home,
        Err(e) => {
            errln!("hail: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let home = match &args.config {
        Some(file) => home.with_config(file),
        None => home,
    };
    let options = match options(&args) {
        Ok(options) => options,
        Err(e) => {
            errln!("hail: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.check_config {
        return check_config(&home, options);
    }
    runtime.block_on(serve(home, args.log, options))
}

/// The flags, as settings that override the config file's.
fn options(args: &DaemonArgs) -> Result<DaemonOptions, String> {
    let dht_mode = args.dht_mode.as_deref().map(str::parse).transpose().map_err(|e| format!("{e}"))?;
    let network = NetworkSection {
        listen: (!args.listen.is_empty()).then(|| args.listen.clone()),
        bootstrap: (!args.bootstrap.is_empty()).then(|| args.bootstrap.clone()),
        mdns: args.no_mdns.then_some(false),
        dht_protocol: args.dht_protocol.clone(),
        dht_mode,
        relay: args.relay.as_deref().map(str::parse).transpose().map_err(|e| format!("{e}"))?,
        external_addresses: (!args.external_address.is_empty()).then(|| args.external_address.clone()),
        limits: None,
    };
    let calls = CallsSection {
        auto_answer: args.auto_answer.then_some(true),
        unknown_callers: args.refuse_unknown.then_some(hail::node::UnknownCallers::Refuse),
        ring_timeout_secs: args.ring_timeout,
        media_listen: args.media_listen.clone(),
        media_advertise: (!args.media_advertise.is_empty()).then(|| args.media_advertise.clone()),
        group_topology: args.group_topology.as_deref().map(str::parse).transpose()?,
        group_uplink_kbps: args.group_uplink_kbps,
        ..Default::default()
    };
    let audio = AudioSection {
        input: args.audio_in.clone(),
        output: args.audio_out.clone(),
        bitrate_kbps: None,
        processing: args.audio_processing.clone(),
    };
    let video = VideoSection {
        input: args.video_in.clone(),
        output: args.video_out.clone(),
        encoder: args.video_encoder.clone(),
        max_size: args.video_max_size.clone(),
    };
    Ok(DaemonOptions { network, calls, audio, video })
}

/// `--check-config`: reads and checks the config file with the flags over it, as `hail daemon`
/// would, and starts nothing (the home is not even created). 0 valid, 2 invalid, 4 unreadable.
fn check_config(home: &Home, options: DaemonOptions) -> ExitCode {
    let path = home.config_path();
    match DaemonSettings::load(&path, options) {
        Ok(_) => {
            if path.exists() {
                outln!("{}: valid", path.display());
            } else {
                outln!("{}: no such file; every setting has its default (valid)", path.display());
            }
            if let Some(old) = home.shadowed_config() {
                outln!("note: {} is not read (the file above is); merge the two and remove it", old.display());
            }
            ExitCode::SUCCESS
        }
        Err(e @ DaemonError::ConfigFile(ConfigFileError::Io { .. })) => {
            errln!("hail: {e}");
            ExitCode::from(EXIT_OTHER)
        }
        Err(e) => {
            errln!("hail: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Runs the node until SIGINT or SIGTERM, then stops it in order (a live call hung up and the
/// peer told, links closed, the control socket removed).
async fn serve(home: Home, log: Option<String>, options: DaemonOptions) -> ExitCode {
    let filter = log.or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            errln!("hail: invalid log filter {filter:?}: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    log::init(filter, LogReader::of_stderr());
    let daemon = match Daemon::start(home, options).await {
        Ok(daemon) => daemon,
        Err(e) => {
            errln!("hail: {e}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let build = super::version::build_info();
    tracing::info!(version = build.version, commit = build.commit.unwrap_or("unknown"), dirty = ?build.dirty, "built from");
    notify_service_manager("READY=1");
    shutdown_signal().await;
    notify_service_manager("STOPPING=1");
    tracing::info!("shutting down");
    daemon.stop().await;
    ExitCode::SUCCESS
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

/// Tells systemd how the service is doing (`sd_notify`: `READY=1` once the control socket answers,
/// `STOPPING=1` when a signal came), for a `Type=notify` unit. Without `NOTIFY_SOCKET` (not under
/// systemd) it does nothing.
fn notify_service_manager(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else { return };
    let address = match socket.as_bytes().strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name),
        None => SocketAddr::from_pathname(&socket),
    };
    let sent = address.and_then(|a| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &a));
    if let Err(e) = sent {
        tracing::warn!(error = %e, socket = %socket.to_string_lossy(), state, "cannot notify systemd");
    }
}
