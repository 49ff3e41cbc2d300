#!/usr/bin/env bash
# The main job: `hail demo`, two throw-away nodes on loopback call each other (emoji, states, history).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
hail_install_deps

hail_say "building hail"
cargo build --locked --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo target)
HAIL="$target_dir/debug/hail"

exec "$HAIL" demo "$@"
