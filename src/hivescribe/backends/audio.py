"""Audio for speech models: decoding any audio or video file, and cutting long audio.

Pure functions, no model. ``decode`` turns the bytes of an audio or video container into
16 kHz mono float32 samples (PyAV, which bundles FFmpeg, so no ffmpeg binary is needed) and
says in plain words why a file cannot be used. Long audio is transcribed in chunks:
``find_cuts`` picks the quietest moments near each chunk boundary, ``plan_chunks`` adds overlap
on both sides of every cut, and ``merge_chunks`` stitches the chunks' words back together so
that no word at a seam is lost or doubled.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from itertools import pairwise

import av
import numpy as np
from faster_whisper import decode_audio

from hivescribe.backends.base import InputError

SAMPLE_RATE = 16_000
_INDEXED = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "wav", "w64", "flac", "aiff"}


def decode(data: bytes | None, *, video: bool = False) -> np.ndarray:
    """The first audio stream of an audio or video file, as 16 kHz mono float32 samples.

    Raises InputError, with a reason a person can act on, for an empty file, bytes that are
    not audio or video, a truncated file, an image, or a video without sound."""
    if not data:
        raise InputError("the file is empty")
    try:
        with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
            kind = container.format.name
            has_video = bool(container.streams.video)
            audio_streams = container.streams.audio
            declared = _seconds(audio_streams[0]) if audio_streams else None
    except EOFError:
        raise InputError("the file is truncated (it ends inside its header)") from None
    except av.error.FFmpegError as exc:
        if looks_like := _media_kind(data):
            raise InputError(f"a damaged or truncated {looks_like} file ({_reason(exc)})") from None
        raise InputError(f"not an audio or video file ({_reason(exc)})") from None
    if not audio_streams:
        if kind.endswith("_pipe") or kind == "image2":
            raise InputError(f"an image ({kind.removesuffix('_pipe')}), not audio or video")
        raise InputError("the video has no audio stream" if has_video else "no audio stream")
    try:
        samples: np.ndarray = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except EOFError:
        raise InputError("the file is truncated (it ends before its first sound)") from None
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot decode the audio ({_reason(exc)})") from None
    if samples.size == 0:
        what = "video" if video or has_video else "file"
        raise InputError(f"no sound could be decoded from the {what} (truncated or corrupt)")
    decoded = samples.size / SAMPLE_RATE
    # Containers with an index state their length; others (MP3) estimate it from the bitrate.
    trusted = 0.9 if kind in _INDEXED else 0.5
    if declared and declared - decoded > 1.0 and decoded < trusted * declared:
        raise InputError(
            f"the file is truncated: {decoded:.1f} s of audio decoded of {declared:.1f} s declared"
        )
    return samples


_MAGIC = {
    b"OggS": "Ogg",
    b"RIFF": "WAV",
    b"ID3": "MP3",
    b"fLaC": "FLAC",
    b"\x1aE\xdf\xa3": "Matroska",
}


def _media_kind(data: bytes) -> str | None:
    """The container a file's first bytes announce, if any (to tell damage from wrong kind)."""
    if data[4:8] == b"ftyp":
        return "MP4"
    return next((name for magic, name in _MAGIC.items() if data.startswith(magic)), None)


def _seconds(stream: av.stream.Stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _reason(exc: av.error.FFmpegError) -> str:
    """FFmpeg's message without errno and file name: 'invalid data found when processing input'."""
    message = exc.strerror or str(exc)
    return message[:1].lower() + message[1:]


# -- long audio ------------------------------------------------------------------------------


@dataclass
class Word:
    start: float
    end: float
    word: str  # as the model wrote it, usually with a leading space
    probability: float = 1.0

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float | None = None


@dataclass(frozen=True)
class Chunk:
    """Samples ``[start, end)`` are transcribed; words in ``[keep_start, keep_end)`` belong to
    this chunk at its seams (seconds)."""

    start: float
    end: float
    keep_start: float
    keep_end: float


def find_cuts(
    samples: np.ndarray, chunk_s: float, *, search_s: float | None = None, rate: int = SAMPLE_RATE
) -> list[float]:
    """Where to cut audio longer than ``chunk_s``: in each window of ``search_s`` seconds that
    ends a chunk, the middle of the longest stretch of the quietest sound (energy in 20 ms
    frames, smoothed over 200 ms), so cuts fall in pauses between words whenever there are any.
    """
    duration = samples.size / rate
    if duration <= chunk_s:
        return []
    search_s = min(chunk_s / 3, 30.0) if search_s is None else min(search_s, chunk_s)
    hop = int(0.02 * rate)
    n = samples.size // hop
    energy = np.square(samples[: n * hop].astype(np.float64)).reshape(n, hop).mean(axis=1)
    smooth = np.convolve(energy, np.ones(10) / 10, mode="same")
    cuts: list[float] = []
    start = 0.0
    while duration - start > chunk_s:
        lo = int((start + chunk_s - search_s) / 0.02)
        hi = max(lo + 1, min(n, int((start + chunk_s) / 0.02)))
        window = smooth[lo:hi]
        quiet = window <= window.min() * 1.5 + 1e-12
        best, best_len, run_start = lo, 0, None
        for i, flag in enumerate([*quiet, False]):
            if flag and run_start is None:
                run_start = i
            elif not flag and run_start is not None:
                if i - run_start > best_len:
                    best, best_len = lo + (run_start + i) // 2, i - run_start
                run_start = None
        cut = round((best + 0.5) * 0.02, 3)
        cuts.append(cut)
        start = cut
    return cuts


def plan_chunks(duration: float, cuts: list[float], overlap_s: float) -> list[Chunk]:
    """One chunk per stretch between cuts, widened by ``overlap_s`` on each side."""
    edges = [0.0, *cuts, duration]
    return [
        Chunk(max(0.0, a - overlap_s), min(duration, b + overlap_s), a, b)
        for a, b in pairwise(edges)
    ]


_NOT_WORD = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _NOT_WORD.sub("", word.lower())


@dataclass
class _Token:
    word: Word
    source: tuple[int, int]  # (chunk, segment) it came from


def merge_seam(
    a: list[_Token], b: list[_Token], cut: float, window: float, *, tolerance: float = 0.6
) -> list[_Token]:
    """Join the words before a seam (``a``) with the next chunk's words (``b``).

    Both chunks heard the audio around ``cut``. The anchor is a word both transcribed (same
    spelling, times within ``tolerance``): ``a`` is kept up to it, ``b`` after it, so each word
    around the seam comes from exactly one chunk. Of the shared words, the one nearest the cut
    wins, with a second's handicap for each side where it is not the end of a segment (so
    whole segments survive where they can). Without a shared word, each word goes to the side
    of the cut its middle lies on."""
    a_near = [i for i, t in enumerate(a) if t.word.mid >= cut - window]
    b_near = [j for j, t in enumerate(b) if t.word.mid <= cut + window]
    best: tuple[float, int, int] | None = None
    for i in a_near:
        key = _norm(a[i].word.word)
        if not key:
            continue
        for j in b_near:
            if _norm(b[j].word.word) != key or abs(a[i].word.mid - b[j].word.mid) > tolerance:
                continue
            score = abs((a[i].word.mid + b[j].word.mid) / 2 - cut)
            score += 0.0 if _ends_segment(a, i) else 1.0
            score += 0.0 if _ends_segment(b, j) else 1.0
            if best is None or score < best[0]:
                best = (score, i, j)
    if best is not None:
        _, i, j = best
        return a[: i + 1] + b[j + 1 :]
    return [t for t in a if t.word.mid < cut] + [t for t in b if t.word.mid >= cut]


def _ends_segment(tokens: list[_Token], i: int) -> bool:
    return i + 1 == len(tokens) or tokens[i + 1].source != tokens[i].source


def merge_chunks(
    chunks: list[Chunk], results: list[list[Segment]], *, window: float | None = None
) -> list[Segment]:
    """Stitch each chunk's segments (absolute times, with words) into one list of segments.

    Words are merged seam by seam (``merge_seam``); segments are then rebuilt from the words
    that survive, keeping a segment's own times and text when all of its words survived."""
    tokens: list[_Token] = []
    for k, (chunk, segments) in enumerate(zip(chunks, results, strict=True)):
        mine = [_Token(w, (k, s)) for s, seg in enumerate(segments) for w in seg.words]
        if k == 0:
            tokens = mine
            continue
        span = window if window is not None else max(0.0, chunk.keep_start - chunk.start)
        tokens = merge_seam(tokens, mine, chunk.keep_start, span)
    merged: list[Segment] = []
    last: tuple[int, int] | None = None
    for token in tokens:
        if token.source != last:
            merged.append(Segment(token.word.start, token.word.end, "", []))
            last = token.source
        merged[-1].words.append(token.word)
    for segment, first in zip(merged, _firsts(tokens), strict=True):
        k, s = first.source
        original = results[k][s]
        segment.avg_logprob = original.avg_logprob
        if len(segment.words) == len(original.words):  # whole: keep the model's own times
            segment.start, segment.end = original.start, original.end
            segment.text = original.text.strip()
        else:  # cut at a seam: times and text from the words kept
            segment.end = segment.words[-1].end
            segment.text = "".join(w.word for w in segment.words).strip()
    for before, segment in pairwise(merged):
        if segment.start < before.end <= segment.end:
            segment.start = before.end  # chunks may disagree on a pause by a few hundredths
    return merged


def _firsts(tokens: list[_Token]) -> list[_Token]:
    return [t for n, t in enumerate(tokens) if n == 0 or tokens[n - 1].source != t.source]
