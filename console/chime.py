"""The console's alert chime, generated (no recorded media): ``static/chime.wav``.

Two soft sine tones (E6 then B5, a falling fourth) with short attack and
exponential decay, 16-bit mono at 16 kHz, 0.6 s. Regenerate with
``python -m citywatch.console.chime console/static/chime.wav``; a test checks
that the bundled file is this function's output.

>>> len(chime_wav()) > 1000
True
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
from pathlib import Path

RATE = 16_000
TONES = ((1318.5, 0.0, 0.35), (987.8, 0.18, 0.42))  # (Hz, start s, length s)
LENGTH_S = 0.6


def chime_wav() -> bytes:
    """The chime as WAV bytes (the same bytes on every run)."""
    n = int(RATE * LENGTH_S)
    samples = [0.0] * n
    for freq, start, length in TONES:
        first = int(start * RATE)
        for i in range(int(length * RATE)):
            t = i / RATE
            envelope = min(1.0, t / 0.01) * math.exp(-t * 9.0)
            if first + i < n:
                samples[first + i] += 0.35 * envelope * math.sin(2 * math.pi * freq * t)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(
            b"".join(struct.pack("<h", round(max(-1.0, min(1.0, s)) * 32767)) for s in samples)
        )
    return out.getvalue()


if __name__ == "__main__":
    Path(sys.argv[1] if len(sys.argv) > 1 else "chime.wav").write_bytes(chime_wav())
