//! `hail`: the daemon (`hail daemon`), the demo (`hail demo`), and the command-line client of a
//! running daemon (every other command).
//!
//! Exit codes: 0 done; 1 the daemon refused the request, or a call did not connect (the reason is on
//! stderr); 2 bad usage; 3 no daemon is running for this home; 4 anything else (I/O, protocol,
//! start-up failure).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hail::config::{AudioSection, CallsSection, NetworkSection, VideoSection};
use hail::home::Home;
use hail::node::DaemonOptions;

use cli::args::{Cli, Cmd, DaemonArgs};
use cli::out::errln;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("hail: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_OTHER);
        }
    };
    match cli.command {
        Cmd::Demo { seconds } => runtime.block_on(cli::demo::run(seconds)),
        Cmd::Devices => cli::print::devices(cli.json),
        Cmd::Daemon(args) => {
            let home = match Home::resolve(cli.home) {
                Ok(home) => home,
                Err(e) => {
                    errln!("hail: {e}");
                    return ExitCode::from(cli::EXIT_OTHER);
                }
            };
            match daemon_options(&args) {
                Ok(options) => runtime.block_on(daemon(home, args.log, options)),
                Err(e) => {
                    errln!("hail: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Client(command) => {
            let home = match Home::resolve(cli.home) {
                Ok(home) => home,
                Err(e) => {
                    errln!("hail: {e}");
                    return ExitCode::from(cli::EXIT_OTHER);
                }
            };
            runtime.block_on(cli::run_client(home, cli.json, command))
        }
    }
}

fn daemon_options(args: &DaemonArgs) -> Result<DaemonOptions, String> {
    let dht_mode = args.dht_mode.as_deref().map(str::parse).transpose().map_err(|e| format!("{e}"))?;
    let network = NetworkSection {
        listen: (!args.listen.is_empty()).then(|| args.listen.clone()),
        bootstrap: (!args.bootstrap.is_empty()).then(|| args.bootstrap.clone()),
        mdns: args.no_mdns.then_some(false),
        dht_protocol: args.dht_protocol.clone(),
        dht_mode,
        relay: args.relay.as_deref().map(str::parse).transpose().map_err(|e| format!("{e}"))?,
        limits: None,
    };
    let calls = CallsSection {
        auto_answer: args.auto_answer.then_some(true),
        unknown_callers: args.refuse_unknown.then_some(hail::node::UnknownCallers::Refuse),
        ring_timeout_secs: args.ring_timeout,
        media_listen: args.media_listen.clone(),
        media_advertise: (!args.media_advertise.is_empty()).then(|| args.media_advertise.clone()),
        ..Default::default()
    };
    let audio = AudioSection { input: args.audio_in.clone(), output: args.audio_out.clone(), bitrate_kbps: None };
    let video = VideoSection {
        input: args.video_in.clone(),
        output: args.video_out.clone(),
        encoder: args.video_encoder.clone(),
        max_size: args.video_max_size.clone(),
    };
    Ok(DaemonOptions { network, calls, audio, video })
}

async fn daemon(home: Home, log: Option<String>, options: DaemonOptions) -> ExitCode {
    let filter = log.or_else(|| std::env::var("RUST_LOG").ok()).unwrap_or_else(|| "info".into());
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            errln!("hail: invalid log filter {filter:?}: {e}");
            return ExitCode::from(2);
        }
    };
    use std::io::IsTerminal;
    // A log that cannot be written (stderr a closed pipe) is dropped: by default the subscriber
    // reports that on stderr with eprintln!, which panics when stderr is the very thing that failed.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
    match hail::node::run_daemon(home, options, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("hail: {e}");
            ExitCode::from(cli::EXIT_OTHER)
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
