#!/usr/bin/env bash
# Builds the Debian package hail_<version>_<arch>.deb: the binary, the systemd user unit, shell
# completions (bash, zsh, fish), man pages, and the docs. Its Depends names the Debian packages of
# the shared libraries the binary links (dpkg-shlibdeps, with the least versions their symbols need;
# without dpkg-dev: ldd and dpkg -S, unversioned).
#
#   scripts/package-deb.sh [--binary PATH] [--out DIR] [--compression xz|zstd|gzip|none]
#
# Without --binary it builds the release binary reproducibly first (scripts/reproducible-env.sh,
# the same build as scripts/verify-build.sh; ~15 min from scratch) into $CARGO_TARGET_DIR (default
# target/). The binary goes in as it was built, not stripped, so `sha256sum /usr/bin/hail` can be
# compared with a rebuild. The completions and man pages come from the binary itself.
#
# The package is reproducible too: every file's time is SOURCE_DATE_EPOCH (default: the commit's
# time), owners root:root, modes 0755/0644, so the same binary gives the same .deb bytes.
# CI packages the debug binary the test suite built (tests/install.rs) and installs it in a scratch
# root; releases package the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

binary="" out=$root compression=xz
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --compression) compression=$2; shift 2 ;;
    *) echo "usage: scripts/package-deb.sh [--binary PATH] [--out DIR] [--compression xz|zstd|gzip|none]" >&2; exit 2 ;;
  esac
done
command -v dpkg-deb >/dev/null || { echo "package-deb: dpkg-deb not found (a Debian system has it)" >&2; exit 2; }
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH

if [ -z "$binary" ]; then
  source scripts/reproducible-env.sh
  (
    hail_reproducible_env "$root" "${CARGO_TARGET_DIR:-$root/target}"
    echo "package-deb: building the release binary (reproducible flags)" >&2
    cargo build --release --locked --bin hail
  )
  binary=${CARGO_TARGET_DIR:-$root/target}/release/hail
fi
[ -x "$binary" ] || { echo "package-deb: $binary is not an executable" >&2; exit 2; }
binary=$(cd "$(dirname "$binary")" && pwd -P)/$(basename "$binary")

build_json=$("$binary" version --json)
version=$(printf '%s' "$build_json" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
profile=$(printf '%s' "$build_json" | sed -n 's/.*"profile":"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { echo "package-deb: $binary version --json said nothing usable: $build_json" >&2; exit 1; }
if [ "$profile" != release ]; then
  echo "package-deb: note: packaging a $profile build (a packaging check, not a release)" >&2
fi
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps wants the package tree at debian/<package> beside a debian/control.
pkg=$work/debian/hail
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/systemd/user" "$pkg/usr/share/man/man1" \
  "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
  "$pkg/usr/share/fish/vendor_completions.d" "$pkg/usr/share/doc/hail"
install -m 0755 "$binary" "$pkg/usr/bin/hail"
install -m 0644 packaging/hail.service "$pkg/usr/lib/systemd/user/hail.service"
"$binary" completions bash > "$pkg/usr/share/bash-completion/completions/hail"
"$binary" completions zsh > "$pkg/usr/share/zsh/vendor-completions/_hail"
"$binary" completions fish > "$pkg/usr/share/fish/vendor_completions.d/hail.fish"
"$binary" man --dir "$pkg/usr/share/man/man1"
gzip -9 -n "$pkg"/usr/share/man/man1/*.1
install -m 0644 README.md docs/user-guide.md docs/reproducible-builds.md packaging/copyright "$pkg/usr/share/doc/hail/"

# The packages of the libraries the binary links.
if command -v dpkg-shlibdeps >/dev/null; then
  printf 'Source: hail\n\nPackage: hail\nArchitecture: any\n' > "$work/debian/control"
  depends=$(cd "$work" && dpkg-shlibdeps -O -e debian/hail/usr/bin/hail 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
else
  echo "package-deb: dpkg-shlibdeps (dpkg-dev) not found: Depends from ldd and dpkg -S, without versions" >&2
  depends=$(ldd "$binary" | awk '/=>/ { print $3 }' | while read -r lib; do
    dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"
  done | cut -d: -f1 | sort -u | paste -sd, - | sed 's/,/, /g')
fi
[ -n "$depends" ] || { echo "package-deb: could not tell which packages the binary needs" >&2; exit 1; }

installed_kb=$(du -sk --apparent-size "$pkg/usr" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: hail
Version: $version
Architecture: $arch
Maintainer: hail developers <hail@invalid>
Installed-Size: $installed_kb
Depends: $depends
Section: net
Priority: optional
Description: serverless, end-to-end-encrypted calls from a shell
 hail is a calling node with no server: peers find each other on the LAN (mDNS) and
 across networks (a Kademlia DHT), and call over QUIC with a Noise handshake pinned to
 the contact's key; both sides compare four emoji. Voice is Opus, video AV1.
 .
 Run it as a systemd user service: systemctl --user enable --now hail
 The binary is reproducible: see /usr/share/doc/hail/reproducible-builds.md.
CONTROL
(cd "$pkg" && find usr -type f | LC_ALL=C sort | xargs md5sum > DEBIAN/md5sums)

# Same inputs, same bytes: fixed modes and times; dpkg-deb sorts the files, sets root:root, and
# takes its own timestamps from SOURCE_DATE_EPOCH.
find "$pkg" -type d -exec chmod 0755 {} +
find "$pkg" -type f -exec chmod 0644 {} +
chmod 0755 "$pkg/usr/bin/hail"
find "$pkg" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb=$out/hail_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"$compression" --build "$pkg" "$deb" >/dev/null
echo "$deb"
echo "package-deb: $(sha256sum "$deb" | cut -d' ' -f1)  $(basename "$deb") (Depends: $depends)" >&2
