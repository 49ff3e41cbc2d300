//! Where the CLI writes, and what happens when it cannot.
//!
//! `println!` panics when stdout is gone (`hail id --qr | head -1`: "failed printing to stdout:
//! Broken pipe"). Every line the client prints goes through [`outln!`] instead:
//!
//! - stdout closed by the reader (`EPIPE`): the command ends the way a Unix filter does, killed by
//!   `SIGPIPE` (status 141 in a shell), quietly. Rust ignores `SIGPIPE` at start-up; the default
//!   disposition is restored only at that moment, not for the whole process, so that a write to
//!   the control socket of a daemon that went away stays an error with a message, and `hail
//!   daemon` (which never comes here) survives whatever its stdout and stderr are attached to;
//! - any other write error (a full disk): one line on stderr and exit code 4;
//! - stderr itself failing ([`errln!`]): nothing left to tell, the command goes on.
//!
//! Lines for people also lose any escape sequence or control character
//! ([`hail::peer_text::strip_escapes`]): text that came from a peer cannot drive the terminal even
//! through a field that was not sanitized on its own. `--json` lines ([`jsonln!`]) are written as
//! they are (JSON escapes control characters itself).

use std::fmt;
use std::io::{self, Write};

/// Prints a line for people on stdout (escapes stripped); never panics.
macro_rules! outln {
    () => {
        $crate::cli::out::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}

/// Prints a `--json` line on stdout as it is; never panics.
macro_rules! jsonln {
    ($($arg:tt)*) => {
        $crate::cli::out::raw_line(format_args!($($arg)*))
    };
}

/// Prints a line on stderr (escapes stripped); never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::out::error_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, jsonln, outln};

/// Writes `args` and a newline to stdout, escape sequences and controls removed.
pub fn line(args: fmt::Arguments<'_>) {
    write_stdout(&hail::peer_text::strip_escapes(&args.to_string()));
}

/// Writes `args` and a newline to stdout as they are.
pub fn raw_line(args: fmt::Arguments<'_>) {
    write_stdout(&args.to_string());
}

/// Writes `args` and a newline to stderr, escape sequences and controls removed.
pub fn error_line(args: fmt::Arguments<'_>) {
    let text = hail::peer_text::strip_escapes(&args.to_string());
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// Writes `bytes` to stdout as they are (a generated man page or completion script).
pub fn raw_bytes(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        drop(out);
        stdout_failed(&e);
    }
}

fn write_stdout(text: &str) {
    raw_bytes(format!("{text}\n").as_bytes());
}

/// Ends the command because stdout failed: by `SIGPIPE` when the reader went away, else with an
/// error message and exit code 4.
fn stdout_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        // SAFETY: restoring a signal's default disposition and raising it in our own process; no
        // handler runs, no memory is shared.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::raise(libc::SIGPIPE);
        }
        // Not reached: SIGPIPE's default action ends the process. Should it be blocked, the
        // conventional status of a command killed by it.
        std::process::exit(128 + libc::SIGPIPE);
    }
    let _ = writeln!(io::stderr().lock(), "hail: cannot write the output: {e}");
    std::process::exit(i32::from(super::EXIT_OTHER));
}
