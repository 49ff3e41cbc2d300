#!/usr/bin/env python3
"""What PESQ-WB charges for 20 ms added to speech, by where it is added.

Usage: PESQ_PYTHON scripts/pesq-insertions.py REFERENCE_16K.wav
(the PESQ virtualenv of scripts/bench-audio.sh; REFERENCE: a 16 kHz mono WAV, e.g. a `*.ref16.wav`
that `bench audio_quality` leaves in its --out folder).

Adds N ticks of 20 ms (a copy of the frame before: a crude concealment) at random places, either
inside speech or in pauses (frames quieter than the 30th percentile), four placements each, and
prints the mean PESQ-WB against the untouched reference. docs/performance.md ("Better concealment
tried and not kept") quotes it.
"""
import random
import sys
import wave

import numpy as np
from pesq import pesq


def read(path):
    w = wave.open(path)
    x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    return x, w.getframerate()


def main():
    ref, fs = read(sys.argv[1])
    frame = fs // 50
    frames = len(ref) // frame
    energy = np.array([np.mean(ref[i * frame:(i + 1) * frame] ** 2) for i in range(frames)])
    quiet_below = np.percentile(energy, 30)
    rng = random.Random(1)

    def with_insertions(n, in_pauses):
        places = [i for i in range(50, frames - 10) if (energy[i] < quiet_below) == in_pauses]
        out, last = [], 0
        for p in sorted(rng.sample(places, n)):
            out.append(ref[last * frame:p * frame])
            out.append(ref[(p - 1) * frame:p * frame])
            last = p
        out.append(ref[last * frame:])
        return np.concatenate(out)

    print("untouched", round(pesq(fs, ref, ref, "wb"), 2))
    for n in (3, 6, 12):
        for in_pauses in (False, True):
            scores = [pesq(fs, ref, with_insertions(n, in_pauses), "wb") for _ in range(4)]
            where = "in pauses" if in_pauses else "in speech"
            print(n, where, round(float(np.mean(scores)), 2), [round(s, 2) for s in scores])


if __name__ == "__main__":
    main()
