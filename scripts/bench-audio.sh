#!/usr/bin/env bash
# The audio benchmark: speech (espeak-ng) through real calls over the impairing relay, one call per
# link condition, scored with PESQ wide-band (ITU-T P.862, PyPI `pesq`, in its own virtualenv).
# Prints one JSON object (see docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
HAIL_APT_PACKAGES+=(espeak-ng python3 python3-venv python3-dev)
hail_install_deps

work="${HAIL_BENCH_DIR:-${TMPDIR:-/tmp}/hail-audio-bench}"
mkdir -p "$work"
venv="$work/pesq-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pesq, numpy' 2>/dev/null; then
  hail_say "creating the PESQ virtualenv in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet numpy pesq
fi

speech="$work/speech.wav"
if [ ! -s "$speech" ]; then
  hail_say "synthesising the test speech with espeak-ng"
  espeak-ng -v en-us -s 150 -w "$speech" \
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It is easy to tell the depth of a well. These days a chicken leg is a rare dish. \
Rice is often served in round bowls. The juice of lemons makes fine punch."
fi

hail_say "running the calls (about a minute)"
cargo bench --locked --bench audio_quality -- --speech "$speech" --out "$work" --pesq "$venv/bin/python" 2>/dev/null | tail -n 1
