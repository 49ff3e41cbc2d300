//! `hail version`: what this binary was built from, so that anyone can rebuild exactly it and
//! compare the bytes (docs/reproducible-builds.md). The facts come from `build.rs`.

use std::process::ExitCode;

use serde::Serialize;

use super::out::{errln, jsonln, outln};

/// How this binary was built.
#[derive(Debug, Serialize)]
pub struct BuildInfo {
    /// The crate version.
    pub version: &'static str,
    /// The git commit the sources came from (`None`: built outside a git checkout).
    pub commit: Option<&'static str>,
    /// Whether the sources that go into the binary differed from that commit (`None`: unknown).
    pub dirty: Option<bool>,
    /// The cargo features it was built with (`default` left out), sorted.
    pub features: Vec<&'static str>,
    /// The compiler, as `rustc -V` printed it.
    pub rustc: &'static str,
    /// The target triple.
    pub target: &'static str,
    /// The cargo profile (`release`, or `debug` for dev and test builds).
    pub profile: &'static str,
}

/// This binary's build.
pub fn build_info() -> BuildInfo {
    let some = |s: &'static str| (!s.is_empty()).then_some(s);
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: some(env!("HAIL_BUILD_COMMIT")),
        dirty: env!("HAIL_BUILD_DIRTY").parse().ok(),
        features: env!("HAIL_BUILD_FEATURES").split(',').filter(|f| !f.is_empty()).collect(),
        rustc: env!("HAIL_BUILD_RUSTC"),
        target: env!("HAIL_BUILD_TARGET"),
        profile: env!("HAIL_BUILD_PROFILE"),
    }
}

/// Prints the build, as text or (`json`) one JSON object.
pub fn run(json: bool) -> ExitCode {
    let info = build_info();
    if json {
        return match serde_json::to_string(&info) {
            Ok(line) => {
                jsonln!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                errln!("hail: cannot print the build as JSON: {e}");
                ExitCode::from(super::EXIT_OTHER)
            }
        };
    }
    let commit = match (info.commit, info.dirty) {
        (Some(c), Some(false)) => format!("{c} (clean)"),
        (Some(c), Some(true)) => format!("{c} (modified: the sources differed from this commit)"),
        (Some(c), None) => c.to_owned(),
        (None, _) => "unknown (built outside a git checkout)".to_owned(),
    };
    let features = if info.features.is_empty() { "none".to_owned() } else { info.features.join(", ") };
    outln!("hail {}", info.version);
    outln!("commit    {commit}");
    outln!("features  {features}");
    outln!("compiler  {}", info.rustc);
    outln!("target    {} ({} profile)", info.target, info.profile);
    ExitCode::SUCCESS
}
