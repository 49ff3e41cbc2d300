#!/bin/sh
# nasm for reproducible builds (NASM=… in scripts/reproducible-env.sh; the nasm-rs crate that
# builds rav1e's assembly runs $NASM). nasm names each object's source file in an ELF FILE symbol
# exactly as given on its command line, and nasm-rs gives the absolute path under CARGO_HOME, which
# then differs from one user's binary to another's. Run from the crate's folder with the crate's own
# files named relative to it, the symbol says `src/x86/….asm` wherever the crate was unpacked.
# nasm has no option like rustc's --remap-path-prefix or gcc's -ffile-prefix-map to do this.
set -eu
real=${HAIL_REAL_NASM:-nasm}
dir=${CARGO_MANIFEST_DIR:-}
if [ -z "$dir" ] || ! cd "$dir" 2>/dev/null; then
  exec "$real" "$@"
fi
for arg do
  shift
  case $arg in
    "$dir"/*) set -- "$@" "${arg#"$dir"/}" ;;
    *) set -- "$@" "$arg" ;;
  esac
done
exec "$real" "$@"
