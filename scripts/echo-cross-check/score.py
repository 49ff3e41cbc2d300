# Hagerman ERLE and PESQ-WB of the APM outputs, as benches/echo.rs computes them.
# Usage: PESQ_VENV/bin/python score.py DIR DOUBLE_TALK_START DOUBLE_TALK_END (samples, as --dump-scene prints)
import sys, wave, numpy as np
from pesq import pesq
d, fo_start, dt_start, dt_end = sys.argv[1], 2 * 48000, int(sys.argv[2]), int(sys.argv[3])
def rd(n):
    w = wave.open(f"{d}/{n}.wav"); return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
def to16k(x):
    t = np.arange(-64, 65); h = np.sinc(t / 3) / 3 * np.hamming(len(t)); return np.convolve(x, h, "same")[::3]
p = lambda x: (x ** 2).mean()
echo, near = rd("echo"), rd("near")
plus, minus = rd("apm-mic-plus"), rd("apm-mic-minus")
n = min(len(plus), len(echo)); res = (plus[:n] + minus[:n]) / 2; nearpart = (plus[:n] - minus[:n]) / 2
fo = slice(fo_start, dt_start); dt = slice(dt_start, min(dt_end, n))
print("ERLE far only %.1f dB, double talk %.1f dB" % (10 * np.log10(p(echo[fo]) / p(res[fo])), 10 * np.log10(p(echo[dt]) / p(res[dt]))))
ref = to16k(near[dt])
q = lambda x: pesq(16000, ref, to16k(x[dt]), "wb")
alone, hs, dtq, npq = q(rd("apm-mic-headset-nothing-played")), q(rd("apm-mic-headset")), q(plus), q(nearpart)
print("PESQ near alone %.2f, double talk %.2f (drop %.2f), near part %.2f, headset %.2f (drop %.2f)" % (alone, dtq, alone - dtq, npq, hs, alone - hs))
