//! The command line every bench shares. `cargo bench --bench X -- 10` runs X with `--bench 10`;
//! `cargo test --all-targets -- --test-threads 2` (scripts/test.sh) runs it as a smoke test with
//! the test runner's own flags, `--test-threads 2`, whose `2` is no size. So: `--bench` says which
//! run this is, the test runner's flags (with their values) are skipped, a bench's own flags take
//! their values, and only the words left are the bench's positional arguments.
//!
//! Included by each bench with `#[path = "common/args.rs"] mod args;` and tested by
//! tests/bench_args.rs.

#![allow(dead_code)] // each bench uses part of it

/// Flags of the libtest runner (`cargo test` passes them to every target) that take a value.
const RUNNER_VALUE_FLAGS: &[&str] =
    &["--test-threads", "--skip", "--logfile", "--format", "--color", "-Z", "--shuffle-seed"];

/// A bench's command line, parsed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BenchArgs {
    /// `--bench` was given: a measuring run (`cargo bench`), not the smoke run under `cargo test`.
    pub bench: bool,
    /// Words that are neither flags nor a flag's value, in order.
    pub positional: Vec<String>,
    /// The bench's own flags with their values (`--out DIR` or `--out=DIR`), in order.
    pub values: Vec<(String, String)>,
}

impl BenchArgs {
    /// This process's arguments; `own_value_flags` are the bench's flags that take a value.
    pub fn from_env(own_value_flags: &[&str]) -> BenchArgs {
        BenchArgs::parse(std::env::args().skip(1), own_value_flags)
    }

    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>, own_value_flags: &[&str]) -> BenchArgs {
        let mut parsed = BenchArgs::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--bench" {
                parsed.bench = true;
            } else if let Some((flag, value)) = arg.split_once('=').filter(|_| arg.starts_with('-')) {
                if own_value_flags.contains(&flag) {
                    parsed.values.push((flag.to_owned(), value.to_owned()));
                }
            } else if own_value_flags.contains(&arg.as_str()) {
                if let Some(value) = args.next() {
                    parsed.values.push((arg, value));
                }
            } else if RUNNER_VALUE_FLAGS.contains(&arg.as_str()) {
                args.next();
            } else if !arg.starts_with('-') {
                parsed.positional.push(arg);
            }
            // Any other flag (`--nocapture`, `--quiet`, `--exact`, ...) takes no value: ignored.
        }
        parsed
    }

    /// The positional words that parse as `T`, in order (`10` for `-- 10`).
    pub fn numbers<T: std::str::FromStr>(&self) -> Vec<T> {
        self.positional.iter().filter_map(|a| a.parse().ok()).collect()
    }

    /// The first positional word that parses as `T`.
    pub fn number<T: std::str::FromStr>(&self) -> Option<T> {
        self.numbers().into_iter().next()
    }

    /// The value of the bench's own flag `flag` (the last one given).
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.values.iter().rev().find(|(f, _)| f == flag).map(|(_, v)| v.as_str())
    }

    /// Every value of the bench's own flag `flag`, in order (a flag given several times).
    pub fn all_values<'a>(&'a self, flag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values.iter().filter(move |(f, _)| f == flag).map(|(_, v)| v.as_str())
    }

    /// Whether the positional word `word` was given (e.g. the name of one flood).
    pub fn has_word(&self, word: &str) -> bool {
        self.positional.iter().any(|a| a == word)
    }
}
