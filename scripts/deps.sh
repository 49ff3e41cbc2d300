#!/usr/bin/env bash
# Installs what hail needs to build and test on Debian/Ubuntu, when it is missing.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run on its own and to run twice.
set -euo pipefail

# System packages: C libraries for the codec crates (dav1d, libaom, ALSA for cpal), their build tools,
# and the tools the network tests use (namespaces, NAT, UDP plumbing).
HAIL_APT_PACKAGES=(
  pkg-config nasm cmake clang libclang-dev
  libdav1d-dev libaom-dev libasound2-dev
  iproute2 iptables socat
  xvfb x11-apps x11-utils xdotool imagemagick libxkbcommon-x11-0 libxcursor1
)

hail_say() { printf '\033[1m[hail setup]\033[0m %s\n' "$*" >&2; }
hail_fail() { printf '\033[1;31m[hail setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

hail_missing_packages() {
  local missing=() p
  for p in "${HAIL_APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  echo "${missing[@]:-}"
}

# rust-toolchain.toml pins the compiler (docs/reproducible-builds.md). Where the pinned version is
# the installed stable but rustup knows it only as "stable" (and cannot download it by name, as on a
# machine without network to the Rust servers), the pinned name is made to point at it.
hail_ensure_toolchain() {
  local pinned host stable rustup_home
  [ -f rust-toolchain.toml ] && command -v rustup >/dev/null 2>&1 || return 0
  pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  [ -n "$pinned" ] || return 0
  if RUSTUP_TOOLCHAIN=stable rustup toolchain list | grep -q "^$pinned-"; then
    return 0
  fi
  stable=$(RUSTUP_TOOLCHAIN=stable rustc -V 2>/dev/null | cut -d' ' -f2)
  if [ "$stable" = "$pinned" ]; then
    host=$(RUSTUP_TOOLCHAIN=stable rustc -vV | sed -n 's/^host: //p')
    rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
    ln -s "$(RUSTUP_TOOLCHAIN=stable rustc --print sysroot)" "$rustup_home/toolchains/$pinned-$host"
    hail_say "the pinned Rust $pinned is the installed stable: it is now known by its version too"
  else
    hail_say "installing the pinned Rust toolchain $pinned (rust-toolchain.toml; the installed stable is ${stable:-none})"
    rustup toolchain install "$pinned" --profile minimal \
      || hail_fail "cannot install Rust $pinned: install it (rustup toolchain install $pinned), then run this again."
  fi
}

hail_install_deps() {
  command -v cargo >/dev/null 2>&1 || hail_fail "cargo not found: install Rust first (https://rustup.rs), then run this again."
  hail_ensure_toolchain
  if ! command -v dpkg-query >/dev/null 2>&1; then
    hail_say "not a Debian-style system: install these yourself if the build fails: ${HAIL_APT_PACKAGES[*]}"
    return 0
  fi
  local missing
  missing=$(hail_missing_packages)
  if [ -z "$missing" ]; then
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || hail_fail "missing system packages ($missing) and no sudo: run as root: apt-get install $missing"
    sudo=(sudo)
  fi
  hail_say "installing system packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq || hail_fail "apt-get update failed (no network to the Debian mirrors?)"
  # shellcheck disable=SC2086
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || hail_fail "apt-get install failed for: $missing"
  missing=$(hail_missing_packages)
  [ -z "$missing" ] || hail_fail "still missing after apt-get install: $missing"
  hail_say "system packages ready"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  hail_install_deps
fi
