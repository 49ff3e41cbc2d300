//! The daemon's log, on stderr, in the form whoever reads it wants:
//!
//! - the systemd journal (systemd names our stderr in `JOURNAL_STREAM`): each line starts with its
//!   syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which the journal
//!   strips and keeps as the entry's priority (`journalctl -p warning`); no colours and no time
//!   (the journal stamps each entry itself);
//! - a terminal: colours and times;
//! - anything else (a file, a pipe): plain lines with times.
//!
//! A log line that cannot be written (stderr a closed pipe) is dropped: by default the subscriber
//! reports that on stderr with `eprintln!`, which panics when stderr is the very thing that failed.

use std::fmt;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing::{Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Who reads the daemon's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogReader {
    /// The systemd journal.
    Journal,
    /// A person at a terminal.
    Terminal,
    /// A file or a pipe.
    Plain,
}

impl LogReader {
    /// Who reads our stderr now.
    pub fn of_stderr() -> Self {
        if stderr_is_the_journal() {
            LogReader::Journal
        } else if std::io::stderr().is_terminal() {
            LogReader::Terminal
        } else {
            LogReader::Plain
        }
    }
}

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`, set by systemd for a service whose output goes to the
/// journal) names the file our stderr is. A child the service started with other output inherits
/// the variable too; comparing the file tells the two apart, as systemd's documentation asks.
fn stderr_is_the_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((device, inode)) = stream.to_str().and_then(|s| s.split_once(':')) else { return false };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    std::fs::File::from(fd).metadata().is_ok_and(|m| m.dev() == device && m.ino() == inode)
}

/// Starts logging to stderr through `filter`, formatted for `reader`.
pub fn init(filter: EnvFilter, reader: LogReader) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match reader {
        LogReader::Journal => {
            builder.with_ansi(false).event_format(WithPriority(format::format().without_time())).init();
        }
        LogReader::Terminal => builder.with_ansi(true).init(),
        LogReader::Plain => builder.with_ansi(false).init(),
    }
}

/// The syslog priority the journal gives a line that starts with `<N>`.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An event format that puts the event's syslog priority before what `F` writes.
struct WithPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &tracing::Event<'_>) -> fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}
