#!/usr/bin/env bash
# The audio benchmark: speech (espeak-ng) through real calls over the impairing relay, one call per
# link condition, scored with PESQ wide-band (ITU-T P.862, PyPI `pesq`, in its own virtualenv).
# Prints one JSON object (see docs/performance.md). `scripts/bench-audio.sh --group`: the group
# call's PESQ scene instead (benches/group_call.rs, four members, four voices).
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

# Three speech samples (three voices, different Harvard sentences): every condition is run with
# each sample and three relay seeds, and the table gives the mean and sd of the nine scores.
samples=()
synth() { # file voice text
  if [ ! -s "$1" ]; then espeak-ng -v "$2" -s 150 -w "$1" "$3"; fi
  samples+=(--speech "$1")
}
hail_say "synthesising the test speech with espeak-ng (three samples)"
synth "$work/speech.wav" en-us "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It is easy to tell the depth of a well. These days a chicken leg is a rare dish. \
Rice is often served in round bowls. The juice of lemons makes fine punch."
synth "$work/speech-2.wav" en-us+f3 "The box was thrown beside the parked truck. The hogs were fed chopped corn and garbage. \
Four hours of steady work faced us. A large size in stockings is hard to sell. \
The boy was there when the sun rose. A rod is used to catch pink salmon."
synth "$work/speech-3.wav" en-gb+m3 "The source of the huge river is the clear spring. Kick the ball straight and follow through. \
Help the woman get back to her feet. A pot of tea helps to pass the evening. \
Smoky fires lack flame and heat. The soft cushion broke the man's fall."

# A fourth voice, for the group call's 4-member scene only (each member talks with its own voice).
if [ ! -s "$work/speech-4.wav" ]; then
  espeak-ng -v en-us+m7 -s 150 -w "$work/speech-4.wav" "The stale smell of old beer lingers. It takes heat to bring out the odor. \
A cold dip restores health and zest. A salt pickle tastes fine with ham. Tacos al pastor are my favorite. \
A zestful food is the hot cross bun."
fi
if [ "${1:-}" = "--group" ]; then
  hail_say "running the group call's quality scene (4 members, 3 conditions, about 3 minutes)"
  cargo bench --locked --bench group_call -- quality-only "${samples[@]}" --speech "$work/speech-4.wav" \
    --out "$work" --pesq "$venv/bin/python" 2>/dev/null
  exit
fi

hail_say "running the calls (7 conditions x 3 samples x 3 seeds, about 20 minutes)"
cargo bench --locked --bench audio_quality -- "${samples[@]}" --out "$work" --pesq "$venv/bin/python" 2>/dev/null | tail -n 1
