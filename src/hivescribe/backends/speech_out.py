"""What every text-to-speech backend shares: reading the text to speak, checking the common
job parameters (``speed``, ``format``, ``language``), joining sentences with pauses, and
encoding samples as WAV, Ogg/Opus or MP3 into the result's output file.

Kept apart from the engines (Piper, espeak-ng, Coqui) so that each one only turns text into
samples, and all of them fail the same way, with a reason that says what to fix.
"""

from __future__ import annotations

import io
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from hivescribe.backends.base import InputError, Success, WorkItem

__all__ = [
    "FORMATS",
    "MAX_SPEECH_CHARS",
    "MAX_SPEED",
    "MIN_SPEED",
    "SENTENCE_PAUSE_S",
    "bad",
    "check_format",
    "check_speed",
    "encode",
    "join_sentences",
    "same_language",
    "speech_result",
    "text_of",
    "to_int16",
]

FORMATS = ("wav", "ogg", "mp3")
MIN_SPEED, MAX_SPEED = 0.5, 2.0
SENTENCE_PAUSE_S = 0.25  # silence between sentences, at speed 1

# One item's speech is held in memory whole: 100,000 characters is about two hours of audio
# (some 600 MB of float32 samples at 22,050 Hz), far more than any one sentence or chapter.
MAX_SPEECH_CHARS = 100_000


def text_of(item: WorkItem) -> str:
    """The text to speak: inline text, or the fetched bytes as UTF-8. Empty text, binary
    input and text over the inline limit can never succeed, so they raise InputError."""
    if item.text is not None:
        text = item.text
    elif item.data is not None:
        try:
            text = item.data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("text to speech needs UTF-8 text; the input is not") from None
        if "\x00" in text:
            raise InputError("text to speech needs text; the input looks binary")
    else:
        text = ""
    text = text.strip()
    if not text:
        raise InputError("the text is empty: give the item some text to speak")
    if len(text) > MAX_SPEECH_CHARS:
        raise InputError(
            f"the text has {len(text):,} characters, over the limit of {MAX_SPEECH_CHARS:,} "
            "for speech (about two hours of audio): split it into several items"
        )
    return text


def check_speed(params: dict[str, Any]) -> float:
    """``speed``: 1.0 is the voice's own pace; 2.0 speaks twice as fast."""
    speed = params.get("speed", 1.0)
    if (
        isinstance(speed, bool)
        or not isinstance(speed, int | float)
        or not MIN_SPEED <= speed <= MAX_SPEED
    ):
        bad("speed", speed, f"a number from {MIN_SPEED} to {MAX_SPEED}")
    return float(speed)


def check_format(params: dict[str, Any]) -> str:
    """``format``: wav (the default), ogg or mp3; a leading dot and capitals are forgiven."""
    fmt = params.get("format", "wav")
    fmt = fmt.lower().lstrip(".") if isinstance(fmt, str) else fmt
    if fmt not in FORMATS:
        bad("format", params.get("format"), f"one of {', '.join(FORMATS)}")
    return str(fmt)


def same_language(asked: str, spoken: str) -> bool:
    """A language code such as en, en-US or en_us matches a voice that speaks en-us, and
    en-US matches one that speaks en; en-GB does not match en-us."""
    asked, spoken = asked.lower().replace("_", "-"), spoken.lower().replace("_", "-")
    return asked == spoken or asked == spoken.split("-")[0] or asked.split("-")[0] == spoken


def bad(name: str, value: Any, expected: str) -> NoReturn:
    raise InputError(f"parameter {name}={value!r} is not valid: expected {expected}")


def join_sentences(pieces: list[np.ndarray], rate: int, speed: float) -> np.ndarray:
    """int16 sentences joined with a short pause between them (shorter when faster)."""
    if not pieces:
        raise InputError("the text has nothing to speak: give it some words")
    pause = np.zeros(int(SENTENCE_PAUSE_S / speed * rate), np.int16)
    joined: list[np.ndarray] = []
    for piece in pieces:
        if joined:
            joined.append(pause)
        joined.append(np.asarray(piece, np.int16).reshape(-1))
    return np.concatenate(joined)


def to_int16(samples: Any) -> np.ndarray:
    """Float samples from -1 to 1 (a list, an array) as int16, clipped."""
    floats = np.clip(np.asarray(samples, np.float32).reshape(-1), -1.0, 1.0)
    return (floats * 32767).astype(np.int16)


def speech_result(
    item: WorkItem,
    text: str,
    samples: np.ndarray,
    rate: int,
    fmt: str,
    model: str,
    **output: Any,
) -> Success:
    """The item's result: the encoded audio as its output file (``<item key>.<format>``),
    ``{**output, "sample_rate", "duration_s", "format"}`` as its output, the text as its text."""
    if samples.size == 0:
        raise InputError("the text has nothing to speak: give it some words")
    blob, file_rate = encode(samples, rate, fmt)
    output |= {
        "sample_rate": file_rate,
        "duration_s": round(samples.size / rate, 3),
        "format": fmt,
    }
    name = Path(item.item_key).name
    stem = Path(name).stem or name or "speech"
    return Success(output, text=text, model=model, blob=blob, blob_name=f"{stem}.{fmt}")


def encode(samples: np.ndarray, rate: int, fmt: str) -> tuple[bytes, int]:
    """int16 mono samples as a file: 16-bit PCM WAV at their rate, Opus in Ogg at 48 kHz (a
    rate Opus takes), or MP3 at their rate. The bytes and the file's sample rate."""
    if fmt == "wav":
        return _wav(samples, rate), rate
    return _compressed(samples, rate, fmt)


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _compressed(samples: np.ndarray, rate: int, fmt: str) -> tuple[bytes, int]:
    """Encoded with PyAV (installed with faster-whisper; no ffmpeg program needed)."""
    try:
        import av
    except ModuleNotFoundError:
        raise InputError(f"format {fmt} needs PyAV (pip install av); wav works without") from None
    if fmt == "ogg":
        codec, container, out_rate = "libopus", "ogg", 48_000
    else:
        codec, container, out_rate = "libmp3lame", "mp3", rate
    if codec not in av.codecs_available:
        raise InputError(f"format {fmt} needs FFmpeg's {codec}, missing from this PyAV; use wav")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=out_rate, layout="mono")
        stream.bit_rate = 32_000 if fmt == "ogg" else 64_000
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.int16)[None, :], format="s16", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return buffer.getvalue(), out_rate
