//! What `hail version --json` reports about the build: the git commit, whether the sources that go
//! into the binary differed from it, the compiler, the target, the profile and the features.
//!
//! Everything here is a function of the checkout and the toolchain, never of the clock, the user
//! or the folder, so two builds of one commit stay byte-identical (docs/reproducible-builds.md).
//! A build from a source archive without `.git` may name its commit with `HAIL_GIT_COMMIT`.

use std::path::Path;
use std::process::Command;

/// What goes into the binary: a change here makes the build "dirty".
/// (`vendor`: the crates hail carries a changed copy of, vendor/sonora.)
const INPUTS: &[&str] = &["src", "protocols", "vendor", "build.rs", "Cargo.toml", "Cargo.lock", "rust-toolchain.toml"];

fn main() {
    for input in INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }
    println!("cargo:rerun-if-env-changed=HAIL_GIT_COMMIT");

    let (commit, dirty) = match std::env::var("HAIL_GIT_COMMIT").ok().filter(|c| !c.is_empty()) {
        Some(commit) => (commit, String::new()),
        None => match git(&["rev-parse", "HEAD"]) {
            Some(commit) => {
                watch_git_head();
                let mut status = vec!["status", "--porcelain", "--"];
                status.extend(INPUTS);
                let dirty = git(&status).map(|s| (!s.is_empty()).to_string()).unwrap_or_default();
                (commit, dirty)
            }
            None => (String::new(), String::new()),
        },
    };
    println!("cargo:rustc-env=HAIL_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=HAIL_BUILD_DIRTY={dirty}");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("cargo:rustc-env=HAIL_BUILD_RUSTC={rustc_version}");

    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(|f| f.to_lowercase().replace('_', "-")))
        .filter(|f| f != "default")
        .collect();
    features.sort();
    println!("cargo:rustc-env=HAIL_BUILD_FEATURES={}", features.join(","));
    println!("cargo:rustc-env=HAIL_BUILD_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=HAIL_BUILD_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
}

/// `git ARGS` in the package folder; `None` without git or outside a repository.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Reruns this script when HEAD moves (a commit, a checkout): HEAD itself, its reflog, and the
/// branch it names, loose or packed. Only files that exist are named: cargo reruns a script whose
/// named file is missing on every build, and that would rebuild the crate each time.
fn watch_git_head() {
    let mut files = vec!["HEAD".to_owned(), "logs/HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        files.push(branch);
    }
    for file in files {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &file]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
}
