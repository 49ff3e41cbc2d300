//! `hail`: the daemon (`hail daemon`), the demo (`hail demo`), what the binary was built from
//! (`hail version`), its completions and man pages, and the command-line client of a running daemon
//! (every other command).
//!
//! Exit codes: 0 done; 1 the daemon refused the request, or a call did not connect (the reason is on
//! stderr); 2 bad usage (a flag, or with `hail daemon --check-config` the configuration); 3 no daemon
//! is running for this home; 4 anything else (I/O, protocol, start-up failure).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hail::home::Home;

use cli::args::{Cli, Cmd};
use cli::out::errln;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Version => return cli::version::run(cli.json),
        Cmd::Completions { shell } => return cli::manual::completions(shell),
        Cmd::Man { dir } => return cli::manual::man(dir.as_deref()),
        _ => {}
    }
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
        Cmd::Daemon(args) => cli::daemon::run(&runtime, cli.home, args),
        Cmd::View => match Home::resolve(cli.home) {
            Ok(home) => cli::window::run(&runtime, &home),
            Err(e) => {
                errln!("hail: {e}");
                ExitCode::from(cli::EXIT_OTHER)
            }
        },
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
        Cmd::Version | Cmd::Completions { .. } | Cmd::Man { .. } => ExitCode::SUCCESS,
    }
}
