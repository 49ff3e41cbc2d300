//! `hail completions SHELL` and `hail man`: shell completions and man pages generated from the
//! command line's own definition ([`Cli`]), so they cannot drift from it. The Debian package ships
//! both (scripts/package-deb.sh); a user without it can install them by hand (docs/user-guide.md).

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::EXIT_OTHER;
use super::args::Cli;
use super::out::{errln, raw_bytes};

/// Prints the completion script for `shell`.
pub fn completions(shell: Shell) -> ExitCode {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "hail", &mut script);
    raw_bytes(&script);
    ExitCode::SUCCESS
}

/// What `hail(1)` says beyond the options and subcommands (roff).
const MAIN_PAGE_SECTIONS: &str = r#".SH FILES
.TP
\fI~/.local/share/hail/\fR
The node's home (\fB$XDG_DATA_HOME/hail\fR): the identity key, the database \fIdb/\fR, the control
socket \fIcontrol.sock\fR. With \fB\-\-home\fR \fIDIR\fR or \fBHAIL_HOME\fR: that folder.
.TP
\fI~/.config/hail/config.toml\fR
The configuration (\fB$XDG_CONFIG_HOME/hail\fR); every key is optional, flags override it. An older
\fI~/.local/share/hail/config.toml\fR is read while this file does not exist. With a home of your
choice: \fIDIR/config.toml\fR. Check a file with \fBhail daemon \-\-check\-config\fR.
.TP
\fI/usr/lib/systemd/user/hail.service\fR
The systemd user unit: \fBsystemctl \-\-user enable \-\-now hail\fR; its log: \fBjournalctl \-\-user \-u hail\fR.
.SH ENVIRONMENT
.TP
\fBHAIL_HOME\fR
The node's home when \fB\-\-home\fR is not given.
.TP
\fBRUST_LOG\fR
The daemon's log filter when \fB\-\-log\fR is not given (default \fBinfo\fR).
.SH EXIT STATUS
0 done; 1 the daemon refused the request, or a call did not connect; 2 bad usage (a flag, or for
\fBhail daemon \-\-check\-config\fR the configuration); 3 no daemon is running for this home;
4 anything else (the reason is on stderr).
.SH SEE ALSO
\fI/usr/share/doc/hail/user\-guide.md\fR, \fI/usr/share/doc/hail/reproducible\-builds.md\fR;
\fBhail version \-\-json\fR names the commit this binary was built from.
"#;

/// The page `hail(1)`: clap's sections, then [`MAIN_PAGE_SECTIONS`], then the version.
fn main_page() -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(Cli::command());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    page.extend_from_slice(MAIN_PAGE_SECTIONS.as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Prints the man page `hail(1)`; with `dir`, writes it and one page per subcommand
/// (`hail-daemon.1`, `hail-contacts-add.1`, …) into that folder instead.
pub fn man(dir: Option<&Path>) -> ExitCode {
    let result = match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
            .and_then(|()| std::fs::write(dir.join("hail.1"), main_page()?)),
        None => main_page().map(|page| raw_bytes(&page)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("hail: cannot write the man pages{}: {e}", dir.map(|d| format!(" to {}", d.display())).unwrap_or_default());
            ExitCode::from(EXIT_OTHER)
        }
    }
}
