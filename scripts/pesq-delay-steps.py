#!/usr/bin/env python3
"""What PESQ-WB makes of a change of the delay in a pause of the speech, nothing else changed.

For each 16 kHz reference (the `*.ref16.wav` files `cargo bench --bench audio_quality -- --bench
... --out DIR` writes), the "degraded" file is the reference itself, 150 ms late, with N ms left
out of its first pause of at least 200 ms (three quiet frames into it), so that the delay steps
from 150 to 150 − N ms there; and the same with 20 ms left out of each of its first six pauses.
A PESQ-WB below the ceiling (4.644) is what the step alone costs. It decided
`time_stretch::PAUSE_CUT` (the jitter buffer gives back at most 80 ms a pause).

    pesq-venv/bin/python scripts/pesq-delay-steps.py DIR/clean-s0-r0.ref16.wav DIR/clean-s1-r0.ref16.wav ...

(`pesq-venv` is what scripts/bench-audio.sh makes: numpy and the PyPI `pesq` package.)
"""
import sys
import wave

import numpy as np
from pesq import pesq

RATE = 16000
FRAME = RATE // 50  # 20 ms
QUIET_RMS = 100.0


def read(path):
    w = wave.open(path)
    assert w.getframerate() == RATE, f"{path}: 16 kHz expected"
    return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)


def score(ref, deg):
    n = min(len(ref), len(deg))
    return round(pesq(RATE, ref[:n], deg[:n], "wb"), 3)


def pauses(ref):
    quiet = [np.sqrt(np.mean(ref[i:i + FRAME] ** 2)) < QUIET_RMS for i in range(0, len(ref) - FRAME, FRAME)]
    found, start = [], None
    for i, q in enumerate(quiet + [False]):
        if q and start is None:
            start = i
        if not q and start is not None:
            if i - start >= 10:
                found.append(start)
            start = None
    return found


def main():
    late = np.zeros(int(0.150 * RATE), np.float32)
    for path in sys.argv[1:]:
        ref = read(path)
        starts = pauses(ref)
        if not starts:
            print(f"{path}: no pause of 200 ms")
            continue
        row = {"constant 150 ms": score(ref, np.concatenate([late, ref]))}
        cut = (starts[0] + 3) * FRAME
        for ms in (20, 40, 60, 80, 100, 120, 140):
            n = ms * RATE // 1000
            row[f"step of {ms} ms"] = score(ref, np.concatenate([late, ref[:cut], ref[cut + n:]]))
        parts, last = [late], 0
        for s in starts[:6]:
            cut = (s + 3) * FRAME
            parts.append(ref[last:cut])
            last = cut + FRAME
        parts.append(ref[last:])
        row["20 ms in each of 6 pauses"] = score(ref, np.concatenate(parts))
        print(path, row)


if __name__ == "__main__":
    main()
