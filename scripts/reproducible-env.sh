#!/usr/bin/env bash
# The environment of a reproducible release build of hail (docs/reproducible-builds.md). Sourced by
# scripts/verify-build.sh and scripts/package-deb.sh, so both build the same bytes:
#
#   source scripts/reproducible-env.sh
#   hail_reproducible_env SOURCE_DIR TARGET_DIR
#   cargo build --release --locked --bin hail
#
# What it removes from the binary: the absolute paths of the source folder, the cargo registry
# (CARGO_HOME), the rustup toolchains and the target folder (bindgen and cmake output lives there),
# from Rust code (--remap-path-prefix: panic locations, debug info) and from the C libraries built
# by build scripts (-ffile-prefix-map: __FILE__, debug info) and the assembly built with nasm
# (scripts/nasm-relative.sh: the ELF FILE symbols); and the build time
# (SOURCE_DATE_EPOCH, the commit's time, for any C __DATE__). The toolchain is pinned by
# rust-toolchain.toml and the dependencies by Cargo.lock; incremental compilation is off.

# Exports the variables for a build of the sources in $1 into the target folder $2.
hail_reproducible_env() {
  local src target cargo_home rustup_home
  src=$(cd "$1" && pwd -P)
  mkdir -p "$2"
  target=$(cd "$2" && pwd -P)
  cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
  rustup_home=$(cd "${RUSTUP_HOME:-$HOME/.rustup}" 2>/dev/null && pwd -P || echo "${RUSTUP_HOME:-$HOME/.rustup}")
  export CARGO_TARGET_DIR=$target
  export CARGO_INCREMENTAL=0
  if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$src" log -1 --format=%ct 2>/dev/null || echo 0)
  fi
  export SOURCE_DATE_EPOCH
  # Last match wins for both rustc and gcc: the most specific folder (a target inside the sources)
  # comes last.
  local maps=("$cargo_home=/cargo" "$rustup_home=/rustup" "$src=/build/hail" "$target=/target")
  local rust=() c=() m
  for m in "${maps[@]}"; do
    rust+=("--remap-path-prefix=$m")
    c+=("-ffile-prefix-map=$m")
  done
  # CARGO_ENCODED_RUSTFLAGS (0x1f between flags) keeps a path with spaces in one piece; cargo leaves
  # --remap-path-prefix out of its crate hashes, so the symbols do not depend on the paths.
  CARGO_ENCODED_RUSTFLAGS=$(IFS=$'\x1f'; echo "${rust[*]}")
  export CARGO_ENCODED_RUSTFLAGS
  unset RUSTFLAGS
  export CFLAGS="${c[*]}" CXXFLAGS="${c[*]}"
  # nasm (rav1e's assembly) has no prefix map: scripts/nasm-relative.sh names the files relatively.
  case ${NASM:-} in
    */nasm-relative.sh) ;;
    *)
      export HAIL_REAL_NASM=${NASM:-nasm}
      export NASM=$src/scripts/nasm-relative.sh
      ;;
  esac
}
