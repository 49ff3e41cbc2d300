#!/usr/bin/env bash
# Checks that hail's release binary is the source: builds COMMIT (default HEAD) twice, each in a
# fresh clone at a different path, as a different "user" (HOME), with a different CARGO_HOME (the
# crates unpacked anew), CARGO_TARGET_DIR, time zone and locale, at a different time; prints both
# SHA-256 sums and exits 0 when they are equal (1 when not, naming where the files differ).
#
#   scripts/verify-build.sh [COMMIT]
#
# Two clean release builds: about 15 min each on 2 cores (run it niced on a shared machine). Too
# slow for every CI run; its result is recorded with the commit in docs/reproducible-builds.md.
#
# Environment:
#   HAIL_VERIFY_DIR    where the clones, target folders and both binaries go (default
#                      /var/tmp/hail-verify; emptied first)
#   HAIL_VERIFY_KEEP=1 keep the clones and target folders (by default only the two binaries and
#                      result.txt stay)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
source scripts/reproducible-env.sh

commit=$(git rev-parse --verify "${1:-HEAD}^{commit}")
if [ -n "$(git status --porcelain -- src protocols vendor build.rs Cargo.toml Cargo.lock rust-toolchain.toml)" ]; then
  echo "verify-build: note: the working tree has changes; this builds commit $commit, not them" >&2
fi
base=${HAIL_VERIFY_DIR:-/var/tmp/hail-verify}
rm -rf "$base"
mkdir -p "$base"
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
# Every crate in the lock file, downloaded once, so that both builds can run offline.
cargo fetch --locked --quiet

# The second user's CARGO_HOME shares the downloaded .crate files and the index, and unpacks the
# sources itself into its own registry/src: a different path for every dependency's source.
mkdir -p "$base/bob/home/cargo/registry"
ln -s "$cargo_home/registry/index" "$base/bob/home/cargo/registry/index"
ln -s "$cargo_home/registry/cache" "$base/bob/home/cargo/registry/cache"

# build NAME SOURCE_DIR TARGET_DIR HOME CARGO_HOME TZ LANG
build() {
  local name=$1 src=$2 target=$3 home=$4 cargo=$5 tz=$6 lang=$7
  git clone --quiet --no-local --no-checkout "$root" "$src"
  git -C "$src" checkout --quiet --detach "$commit"
  mkdir -p "$home"
  echo "verify-build: building $commit as '$name' in $src (target $target, started $(date -u +%H:%M:%S))" >&2
  (
    cd "$src"
    # A clean environment: nothing of the caller's (RUSTFLAGS, CC, …) leaks into the build.
    env -i PATH="$PATH" HOME="$home" USER="$name" CARGO_HOME="$cargo" RUSTUP_HOME="$rustup_home" \
      RUSTUP_AUTO_INSTALL=0 TZ="$tz" LANG="$lang" LC_ALL="$lang" \
      bash -c 'source scripts/reproducible-env.sh && hail_reproducible_env . "$1" &&
               cargo build --release --locked --offline --quiet --bin hail' build "$target"
  )
  cp "$target/release/hail" "$base/hail-$name"
}

build alice "$base/alice/src/hail" "$base/alice-target" "$base/alice/home" "$cargo_home" UTC C.UTF-8
build bob "$base/bob/home/work/a-longer-path/hail-source" "$base/bob-target" "$base/bob/home" \
  "$base/bob/home/cargo" Pacific/Auckland C

sum_a=$(sha256sum "$base/hail-alice" | cut -d' ' -f1)
sum_b=$(sha256sum "$base/hail-bob" | cut -d' ' -f1)
{
  echo "commit $commit"
  echo "rustc $(cd "$root" && rustc -V)"
  echo "alice $sum_a  $(stat -c %s "$base/hail-alice") bytes"
  echo "bob   $sum_b  $(stat -c %s "$base/hail-bob") bytes"
} | tee "$base/result.txt"
if [ "${HAIL_VERIFY_KEEP:-0}" != 1 ]; then
  rm -rf "$base/alice" "$base/bob" "$base/alice-target" "$base/bob-target"
fi
if [ "$sum_a" = "$sum_b" ]; then
  echo "verify-build: identical: the binary is reproducible from commit $commit" | tee -a "$base/result.txt"
  exit 0
fi
echo "verify-build: DIFFERENT: $(cmp -l "$base/hail-alice" "$base/hail-bob" | wc -l) bytes differ; compare" \
  "strings, 'objdump -h' and 'readelf -S' of $base/hail-alice and $base/hail-bob" | tee -a "$base/result.txt" >&2
exit 1
