#!/usr/bin/env bash
# CI's cheap stand-in for scripts/verify-build.sh: compiles the hail library crate twice, from two
# copies of the sources at different paths, at different times, in different time zones, and checks
# that the two libhail.rlib files are byte-identical. The source folder is remapped as in
# scripts/reproducible-env.sh (cargo rustc passes the flag to this crate only, so the dependencies
# the test suite already built in $CARGO_TARGET_DIR are reused: ~1-2 min on 2 cores).
#
# It catches what this crate itself would add: an absolute path, a build time, an unstable order.
# It does not rebuild the dependencies, the C libraries or the final link (verify-build.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {
  local copy=$1 tz=$2
  mkdir -p "$copy"
  # The working tree as it is (tracked and new files, not ignored ones such as target/).
  git ls-files -z --cached --others --exclude-standard | tar -c --null -T - | tar -x -C "$copy"
  (
    cd "$copy"
    TZ=$tz CARGO_INCREMENTAL=0 cargo rustc --locked --offline --quiet --lib -- \
      "--remap-path-prefix=$(pwd -P)=/build/hail"
  )
  cp "$CARGO_TARGET_DIR/debug/libhail.rlib" "$work/$(basename "$copy").rlib"
}

build "$work/one/hail" UTC
build "$work/two/a/longer/path/hail-src" Pacific/Auckland
if cmp -s "$work/hail.rlib" "$work/hail-src.rlib"; then
  echo "check-reproducible-lib: the library crate compiles to the same bytes from two folders ($(sha256sum < "$work/hail.rlib" | cut -c1-16))"
  exit 0
fi
echo "check-reproducible-lib: the library crate differs between two folders:" >&2
strings -n 8 "$work/hail.rlib" | grep -F "$work" | sort -u | head -20 >&2 || true
exit 1
