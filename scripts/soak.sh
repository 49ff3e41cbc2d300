#!/usr/bin/env bash
# Soak: one audio+video call between two throw-away daemons on loopback for HOURS (default 1;
# fractions work: 0.05 is three minutes). Every minute it records, for each daemon, RSS, open fds and
# CPU %, and the call's state and audio loss, in a CSV; at the end it prints a summary JSON (RSS
# growth after the first 10 minutes, fd growth, mean CPU, whether the call stayed up throughout).
#
# Usage: scripts/soak.sh [HOURS] [RESULTS_DIR]
#   RESULTS_DIR defaults to results/soak-<UTC time>; it receives samples.csv, summary.json and the
#   daemon logs.
# Environment:
#   HAIL_BIN        use this hail binary instead of building one (cargo build --release)
#   CARGO           the cargo to build with (default cargo; e.g. hcargo on shared machines)
#   SOAK_INTERVAL   seconds between samples (default 60)
#   SOAK_VIDEO_SIZE the best picture sent (default 320x180)
#
# The call: alice calls bob (contacts of each other; bob answers at once), audio tone:440 both ways,
# video from the synthetic pattern both ways, received audio and video go to null sinks.
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS="${1:-1}"
RESULTS="${2:-results/soak-$(date -u +%Y%m%dT%H%M%SZ)}"
INTERVAL="${SOAK_INTERVAL:-60}"
VIDEO_SIZE="${SOAK_VIDEO_SIZE:-320x180}"
# RSS and fds are compared from this point on (the first minutes hold warm-up allocations).
WARMUP_SECS=600

say() { printf '\033[1m[soak]\033[0m %s\n' "$*" >&2; }
fail() { printf '\033[1;31m[soak] error:\033[0m %s\n' "$*" >&2; exit 1; }

[[ "$HOURS" =~ ^[0-9]*\.?[0-9]+$ ]] || fail "HOURS must be a positive number (e.g. 1 or 0.05), not '$HOURS'"
[[ "$INTERVAL" =~ ^[0-9]+$ && "$INTERVAL" -gt 0 ]] || fail "SOAK_INTERVAL must be a whole number of seconds"
DURATION=$(awk -v h="$HOURS" 'BEGIN { printf "%d", h * 3600 }')
[ "$DURATION" -gt 0 ] || fail "HOURS=$HOURS is less than a second"
command -v jq >/dev/null 2>&1 || fail "jq is needed to read the daemons' JSON (apt-get install jq)"
[ -d /proc/self/fd ] || fail "needs Linux /proc to read RSS, fds and CPU"

if [ -z "${HAIL_BIN:-}" ]; then
  source scripts/deps.sh
  hail_install_deps
  say "building hail (release)"
  ${CARGO:-cargo} build --release --locked --quiet --bin hail
  HAIL_BIN="${CARGO_TARGET_DIR:-target}/release/hail"
fi
[ -x "$HAIL_BIN" ] || fail "no hail binary at $HAIL_BIN"

mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
HOMES=$(mktemp -d "${TMPDIR:-/tmp}/hail-soak.XXXXXX")
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$HOMES"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

hail() { local home="$1"; shift; "$HAIL_BIN" --home "$HOMES/$home" "$@"; }

start_daemon() {
  local name="$1"; shift
  "$HAIL_BIN" --home "$HOMES/$name" daemon --log info --no-mdns --listen /ip4/127.0.0.1/tcp/0 \
    --media-listen 127.0.0.1:0 --audio-in tone:440 --audio-out null --video-in pattern --video-out null \
    --video-max-size "$VIDEO_SIZE" "$@" </dev/null >/dev/null 2>"$RESULTS/$name.log" &
  STARTED=$!
  PIDS+=("$STARTED")
  for _ in $(seq 200); do
    kill -0 "$STARTED" 2>/dev/null || fail "daemon $name exited at start: $(tail -5 "$RESULTS/$name.log")"
    if hail "$name" status >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "daemon $name did not answer within 20 s"
}

status() { hail "$1" --json status 2>/dev/null | jq -c '.ok // {}' 2>/dev/null || echo '{}'; }

say "homes in $HOMES, results in $RESULTS"
start_daemon alice
ALICE=$STARTED
start_daemon bob --auto-answer
BOB=$STARTED
card() { hail "$1" --json id --name "$1" | jq -r '.ok.card'; }
hail alice contacts add bob "$(card bob)" >/dev/null
hail bob contacts add alice "$(card alice)" >/dev/null
hail alice call bob --video --detach >/dev/null || fail "the call did not ring"
for _ in $(seq 200); do
  [ "$(status alice | jq -r '.call.state // ""')" = active ] && break
  sleep 0.1
done
[ "$(status alice | jq -r '.call.state // ""')" = active ] || fail "the call did not become active in 20 s"
CALL_ID=$(status alice | jq -r '.call.call_id')
say "call $CALL_ID active (audio tone:440, video pattern at most $VIDEO_SIZE); soaking for ${DURATION} s, a sample every ${INTERVAL} s"

TICK=$(getconf CLK_TCK)
CSV="$RESULTS/samples.csv"
echo "elapsed_s,daemon,pid,rss_kb,fds,cpu_percent,call_state,call_id,audio_received,audio_lost,audio_loss_percent,video_rendered" >"$CSV"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
declare -A LAST_TICKS
for pid in "$ALICE" "$BOB"; do LAST_TICKS[$pid]=$(cpu_ticks "$pid"); done
START=$(date +%s)
LAST_SAMPLE=$START

sample() {
  local now elapsed wall name pid s rss fds ticks cpu
  now=$(date +%s); elapsed=$((now - START)); wall=$((now - LAST_SAMPLE)); LAST_SAMPLE=$now
  for name in alice bob; do
    if [ "$name" = alice ]; then pid=$ALICE; else pid=$BOB; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$elapsed,$name,$pid,0,0,0,daemon_exited,,0,0,0,0" >>"$CSV"
      continue
    fi
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    ticks=$(cpu_ticks "$pid")
    cpu=$(awk -v t="$ticks" -v l="${LAST_TICKS[$pid]}" -v w="$wall" -v hz="$TICK" \
      'BEGIN { if (w > 0) printf "%.1f", (t - l) * 100 / hz / w; else print "" }')
    LAST_TICKS[$pid]=$ticks
    s=$(status "$name")
    jq -r --arg e "$elapsed" --arg n "$name" --arg p "$pid" --arg r "$rss" --arg f "$fds" --arg c "$cpu" '
      (.call.audio.receive.jitter // {}) as $j
      | [$e, $n, $p, $r, $f, $c, (.call.state // "none"), (.call.call_id // ""),
         ($j.received // 0), ($j.lost // 0),
         (if (($j.received // 0) + ($j.lost // 0)) > 0 then (($j.lost * 10000 / ($j.received + $j.lost)) | round / 100) else 0 end),
         (.call.video_stats.receive.frames_rendered // 0)]
      | @csv' <<<"$s" | tr -d '"' >>"$CSV"
  done
}

END=$((START + DURATION))
while :; do
  now=$(date +%s)
  [ "$now" -lt "$END" ] || break
  next=$((now + INTERVAL)); [ "$next" -le "$END" ] || next=$END
  sleep $((next - now)) &
  wait $! || true
  sample
done
[ "$(wc -l <"$CSV")" -gt 1 ] || sample

PANICS=$(cat "$RESULTS"/alice.log "$RESULTS"/bob.log | grep -c 'panicked at' || true)
# The summary: per daemon, the baseline is the first sample at or after WARMUP_SECS (or the first
# sample at all in a run shorter than that, which the summary says).
jq -R -s --argjson warmup "$WARMUP_SECS" --argjson duration "$DURATION" --arg call "$CALL_ID" \
  --argjson panics "$PANICS" --arg size "$VIDEO_SIZE" --arg csv "$CSV" '
  [split("\n")[1:][] | select(length > 0) | split(",")
   | {t: (.[0] | tonumber), daemon: .[1], rss: (.[3] | tonumber), fds: (.[4] | tonumber),
      cpu: (.[5] | if . == "" then null else tonumber end), state: .[6], call_id: .[7],
      loss: (.[10] | tonumber)}] as $rows
  | ($rows | map(select(.state != "active" or .call_id != $call)) | length == 0) as $up
  | ($rows | group_by(.daemon) | map(
      . as $d
      | ($d | map(select(.t >= $warmup)) | first // $d[0]) as $base
      | ($d | last) as $fin
      | {key: $d[0].daemon, value: {
          baseline_at_s: $base.t,
          rss_kb_baseline: $base.rss, rss_kb_end: $fin.rss,
          rss_growth_percent: (if $base.rss > 0 then (($fin.rss - $base.rss) * 10000 / $base.rss | round) / 100 else null end),
          fds_baseline: $base.fds, fds_end: $fin.fds, fd_growth: ($fin.fds - $base.fds),
          cpu_mean_percent: ([$d[].cpu | select(. != null)] | if length > 0 then (add / length * 10 | round) / 10 else null end),
          audio_loss_percent_end: $fin.loss}}) | from_entries) as $per
  | {soak_seconds: $duration, samples: ($rows | length), video_max_size: $size,
     call_stayed_up: $up, panics: $panics,
     warmup_excluded: (($rows | map(.t) | max // 0) >= $warmup),
     goals: {rss_growth_percent_after_10_min: "< 5 (over 1 hour)", fd_growth: 0},
     daemons: $per, csv: $csv}' "$CSV" | tee "$RESULTS/summary.json"
