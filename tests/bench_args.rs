//! The benches' shared command line (benches/common/args.rs): the test runner's flags, which
//! `cargo test --all-targets -- --test-threads 2` hands every bench, are never a bench's size.

#[path = "../benches/common/args.rs"]
mod args;

use args::BenchArgs;

fn parse(line: &str, own: &[&str]) -> BenchArgs {
    BenchArgs::parse(line.split_whitespace().map(str::to_owned), own)
}

#[test]
fn the_test_runners_flags_and_their_values_are_not_sizes() {
    // What scripts/test.sh passes: a smoke run, no size.
    let smoke = parse("--test-threads 2", &[]);
    assert!(!smoke.bench);
    assert_eq!(smoke.number::<usize>(), None);
    // The other runner flags with values, in both spellings; flags without values.
    let smoke = parse("--test-threads=2 --skip 7 --color never --format pretty -Z unstable-options --nocapture --quiet", &[]);
    assert!(smoke.positional.is_empty(), "{smoke:?}");
}

#[test]
fn cargo_bench_sizes_are_positional_numbers() {
    // `cargo bench --bench dht_lookup -- 50 10`
    let run = parse("50 10 --bench", &[]);
    assert!(run.bench);
    assert_eq!(run.numbers::<usize>(), vec![50, 10]);
    // A size among runner flags still counts; a flood's name is a word.
    let run = parse("--test-threads 1 --bench 30 udp_flood", &[]);
    assert_eq!((run.number::<f64>(), run.has_word("udp_flood"), run.has_word("30")), (Some(30.0), true, true));
}

#[test]
fn a_benchs_own_flags_take_their_values() {
    let own = ["--out", "--speech", "--seeds"];
    let run = parse("--bench --speech a.wav --out /tmp/x --speech=b.wav --seeds 3 5", &own);
    assert_eq!(run.all_values("--speech").collect::<Vec<_>>(), vec!["a.wav", "b.wav"]);
    assert_eq!(run.value("--out"), Some("/tmp/x"));
    assert_eq!(run.value("--seeds"), Some("3"));
    // `3` is --seeds' value, not a size; `5` is.
    assert_eq!(run.numbers::<u32>(), vec![5]);
    // A flag at the end without its value is simply absent.
    assert_eq!(parse("--bench --out", &own).value("--out"), None);
}

#[test]
fn every_bench_reads_its_command_line_through_the_shared_parser() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches");
    let mut benches = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        benches += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display();
        assert!(!text.contains("std::env::args"), "{name} reads std::env::args itself: use args::BenchArgs");
        assert!(text.contains("BenchArgs::from_env"), "{name} does not parse its command line with args::BenchArgs");
    }
    assert!(benches >= 8, "found only {benches} benches in {}", dir.display());
}
