#!/usr/bin/env bash
# The main job: `hail demo`, two throw-away nodes on loopback call each other (emoji, states, history).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
hail_install_deps

hail_say "building hail (the first build takes a few minutes)"
exec cargo run --locked --quiet --bin hail -- demo "$@"
