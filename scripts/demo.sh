#!/usr/bin/env bash
# The main job, until calls exist: start a hail daemon in a throw-away home, show its identity (PeerId,
# contact card, QR code) and status, then stop it and remove the home.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
hail_install_deps

hail_say "building hail"
cargo build --locked --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo target)
HAIL="$target_dir/debug/hail"

home=$(mktemp -d /tmp/hail-demo.XXXXXX)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$home"
}
trap cleanup EXIT

hail_say "starting a daemon in the throw-away home $home"
"$HAIL" --home "$home/node" daemon --log warn --no-mdns --listen /ip4/127.0.0.1/tcp/0 &
daemon_pid=$!
for _ in $(seq 1 200); do
  "$HAIL" --home "$home/node" status >/dev/null 2>&1 && break
  kill -0 "$daemon_pid" 2>/dev/null || hail_fail "the daemon exited during start-up"
  sleep 0.05
done
"$HAIL" --home "$home/node" status >/dev/null || hail_fail "the daemon did not answer within 10 s"

echo
echo "\$ hail id --qr"
"$HAIL" --home "$home/node" id --qr
echo
echo "\$ hail status"
"$HAIL" --home "$home/node" status
echo
hail_say "done; stopping the daemon and removing $home"
