# Runs WebRTC's C++ APM (PyPI aec-audio-processing: AEC3 + NS moderate, no AGC) over the scene.
# Usage: python3 -m venv V && V/bin/pip install aec-audio-processing numpy;
#   cargo bench --bench echo -- --speech ... --only high_pass_only --dump-scene DIR;  V/bin/python run_apm.py DIR
import sys, wave, numpy as np
from aec_audio_processing import AudioProcessor
d = sys.argv[1]
def rd(n):
    w = wave.open(f"{d}/{n}.wav"); return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
def wr(n, x):
    w = wave.open(f"{d}/{n}.wav", "wb"); w.setnchannels(1); w.setsampwidth(2); w.setframerate(48000); w.writeframes(x.astype(np.int16).tobytes()); w.close()
far = rd("far")
for mic_name, far_played in [("mic-plus", far), ("mic-minus", far), ("mic-headset", far), ("mic-headset", np.zeros_like(far))]:
    mic = rd(mic_name)
    ap = AudioProcessor(enable_aec=True, enable_ns=True, ns_level=1, enable_agc=False, enable_vad=False)
    ap.set_stream_format(48000, 1, 48000, 1); ap.set_reverse_stream_format(48000, 1)
    out = []
    for k in range(len(mic) // 480):
        s = slice(k * 480, (k + 1) * 480)
        ap.process_reverse_stream(far_played[s].tobytes())
        ap.set_stream_delay(0)
        out.append(np.frombuffer(ap.process_stream(mic[s].tobytes()), dtype=np.int16))
    name = "apm-" + mic_name + ("" if far_played is far else "-nothing-played")
    wr(name, np.concatenate(out))
    print("wrote", name)
