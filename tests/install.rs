//! What an installed hail offers besides calls: `hail version --json` (what it was built from),
//! shell completions, man pages, and the Debian package that carries them with the systemd user
//! unit (scripts/package-deb.sh), installed in a scratch root and run from there.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::HAIL;

fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("HAIL_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program:?}: {e}"))
}

fn stdout_ok(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let out = run(&program, args);
    assert!(out.status.success(), "{:?} {args:?}: {}", program.as_ref(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn have(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn version_json_names_the_commit_the_features_and_the_compiler() {
    let build: serde_json::Value = serde_json::from_str(&stdout_ok(HAIL, &["version", "--json"])).unwrap();
    assert_eq!(build["version"], env!("CARGO_PKG_VERSION"));
    let git = run("git", &["rev-parse", "HEAD"]);
    if git.status.success() {
        assert_eq!(build["commit"], String::from_utf8_lossy(&git.stdout).trim(), "{build}");
        let inputs = ["src", "protocols", "vendor", "build.rs", "Cargo.toml", "Cargo.lock", "rust-toolchain.toml"];
        let status = stdout_ok("git", &[&["status", "--porcelain", "--"][..], &inputs].concat());
        assert_eq!(build["dirty"], !status.is_empty(), "dirty means the binary's sources differ: {status}");
    } else {
        assert!(build["commit"].is_null(), "no git, no commit: {build}");
    }
    let features: Vec<&str> = build["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(features.contains(&"libaom"), cfg!(feature = "libaom"), "{build}");
    assert!(!features.contains(&"default"), "{build}");
    assert_eq!(build["rustc"], stdout_ok("rustc", &["-V"]).trim(), "the pinned compiler built it");
    assert_eq!(build["profile"], if cfg!(debug_assertions) { "debug" } else { "release" });
    assert!(build["target"].as_str().unwrap().contains("linux"), "{build}");

    let text = stdout_ok(HAIL, &["version"]);
    assert!(text.starts_with(&format!("hail {}\n", env!("CARGO_PKG_VERSION"))), "{text}");
    if let Some(commit) = build["commit"].as_str() {
        assert!(text.contains(commit), "{text}");
    }
    // The global --json works before the command too.
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout_ok(HAIL, &["--json", "version"])).unwrap(), build);
}

#[test]
fn bash_completion_completes_commands_and_flags_and_every_shell_gets_a_script() {
    let script = stdout_ok(HAIL, &["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hail.bash");
    std::fs::write(&path, &script).unwrap();
    // What bash does on `hail con<TAB>` and `hail daemon --check<TAB>`.
    let complete = |words: &str, cword: usize| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; \
             _hail hail \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display()
        );
        stdout_ok("bash", &["-c", &program])
    };
    assert_eq!(complete("hail con", 1).trim(), "contacts");
    assert_eq!(complete("hail daemon --check", 2).trim(), "--check-config");
    let subcommands = complete("hail ''", 1);
    for command in ["daemon", "call", "version", "completions", "man", "demo"] {
        assert!(subcommands.lines().any(|l| l == command), "{command} missing from: {subcommands}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = stdout_ok(HAIL, &["completions", shell]);
        assert!(script.contains("check-config") && script.contains("contacts"), "{shell}: {script}");
    }
    let bad = run(HAIL, &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is bad usage");
}

#[test]
fn the_man_pages_render_cleanly_and_say_where_files_are() {
    let page = stdout_ok(HAIL, &["man"]);
    assert!(page.contains(".TH hail 1"), "{page}");
    for section in [".SH FILES", ".SH ENVIRONMENT", ".SH EXIT STATUS", "config.toml", "hail.service"] {
        assert!(page.contains(section), "{section} missing");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(HAIL, &["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let daemon = std::fs::read_to_string(dir.path().join("hail-daemon.1")).unwrap();
    assert!(daemon.contains("check\\-config"), "{daemon}");
    assert_eq!(std::fs::read_to_string(dir.path().join("hail.1")).unwrap(), page, "--dir writes the same hail(1)");
    assert!(dir.path().join("hail-contacts-add.1").is_file());
    if !have("groff") {
        eprintln!("groff not installed: the pages are not rendered");
        return;
    }
    // -k: through preconv, as man(1) does (the help text has UTF-8 such as …).
    for name in ["hail.1", "hail-daemon.1", "hail-contacts-add.1"] {
        let path = dir.path().join(name);
        let out = run("groff", &["-k", "-man", "-Tutf8", "-ww", "-z", path.to_str().unwrap()]);
        assert!(out.status.success() && out.stderr.is_empty(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Builds the package of the test binary into `out`; returns the .deb.
fn package(out: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package-deb.sh");
    let args = ["--binary", HAIL, "--out", out.to_str().unwrap(), "--compression", "gzip"];
    PathBuf::from(stdout_ok(&script, &args).trim())
}

#[test]
fn the_debian_package_installs_in_a_scratch_root_and_runs_from_there() {
    if !have("dpkg-deb") {
        eprintln!("not a Debian system (no dpkg-deb): the package is not built");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = package(&dir.path().join("first"));
    let name = deb.file_name().unwrap().to_str().unwrap().to_owned();
    let arch = stdout_ok("dpkg", &["--print-architecture"]);
    assert_eq!(name, format!("hail_{}_{}.deb", env!("CARGO_PKG_VERSION"), arch.trim()));

    // The same binary makes the same bytes.
    let again = package(&dir.path().join("second"));
    assert!(std::fs::read(&deb).unwrap() == std::fs::read(&again).unwrap(), "the package build is not reproducible");

    let field = |f: &str| stdout_ok("dpkg-deb", &["--field", deb.to_str().unwrap(), f]).trim().to_owned();
    assert_eq!(field("Package"), "hail");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    // Every shared library the binary links belongs to a package the .deb depends on.
    let depends = field("Depends");
    let depended: Vec<&str> = depends.split(',').map(|d| d.split_whitespace().next().unwrap_or("")).collect();
    let ldd = stdout_ok("ldd", &[HAIL]);
    let mut linked = 0;
    for library in ldd.lines().filter_map(|l| l.split("=>").nth(1)?.split_whitespace().next()) {
        let real = std::fs::canonicalize(library).unwrap();
        let owner = run("dpkg", &["-S", real.to_str().unwrap()]);
        let owner = if owner.status.success() { owner } else { run("dpkg", &["-S", library]) };
        let owner = String::from_utf8_lossy(&owner.stdout);
        let package = owner.split(':').next().unwrap_or("").trim();
        assert!(depended.contains(&package), "{library} is in {package:?}, not in Depends: {depends}");
        linked += 1;
    }
    assert!(linked >= 3, "the binary links libdav1d, libaom, ALSA, libc…: {ldd}");

    // Installed in a scratch root (no chroot, nothing outside it touched).
    let root = dir.path().join("root");
    stdout_ok("dpkg", &["-x", deb.to_str().unwrap(), root.to_str().unwrap()]);
    let hail = root.join("usr/bin/hail");
    assert_eq!(stdout_ok(&hail, &["--version"]).trim(), format!("hail {}", env!("CARGO_PKG_VERSION")));
    assert_eq!(stdout_ok(&hail, &["version", "--json"]), stdout_ok(HAIL, &["version", "--json"]));
    let demo = Command::new(&hail)
        .args(["demo", "--seconds", "1"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let demo_text = String::from_utf8_lossy(&demo.stdout);
    assert!(demo.status.success(), "hail demo from the package: {demo_text}{}", String::from_utf8_lossy(&demo.stderr));
    assert!(demo_text.contains("the other side hung up") && demo_text.contains("Completed"), "{demo_text}");

    for file in [
        "usr/share/bash-completion/completions/hail",
        "usr/share/zsh/vendor-completions/_hail",
        "usr/share/fish/vendor_completions.d/hail.fish",
        "usr/share/man/man1/hail.1.gz",
        "usr/share/man/man1/hail-daemon.1.gz",
        "usr/share/doc/hail/copyright",
        "usr/share/doc/hail/user-guide.md",
        "usr/share/doc/hail/reproducible-builds.md",
    ] {
        assert!(root.join(file).is_file(), "{file} is not in the package");
    }
    let man = stdout_ok("zcat", &[root.join("usr/share/man/man1/hail.1.gz").to_str().unwrap()]);
    assert_eq!(man, stdout_ok(HAIL, &["man"]));

    // The user unit: systemd reads it without a complaint (its commands pointed at the scratch root,
    // where the binary is), and it runs the daemon as a notify service.
    let unit = std::fs::read_to_string(root.join("usr/lib/systemd/user/hail.service")).unwrap();
    for line in ["Type=notify", "ExecStart=/usr/bin/hail daemon", "ExecStartPre=/usr/bin/hail daemon --check-config"] {
        assert!(unit.lines().any(|l| l == line), "{line} missing from the unit:\n{unit}");
    }
    assert!(unit.contains("WantedBy=default.target"), "{unit}");
    if have("systemd-analyze") {
        let local = dir.path().join("hail.service");
        std::fs::write(&local, unit.replace("/usr/bin/hail", hail.to_str().unwrap())).unwrap();
        let out = run("systemd-analyze", &["verify", "--man=no", local.to_str().unwrap()]);
        let complaints = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && complaints.trim().is_empty(), "systemd-analyze verify: {complaints}");
    }
}
