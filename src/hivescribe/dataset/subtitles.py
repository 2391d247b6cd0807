"""Subtitles (SRT and WebVTT) rendered from a transcription's segments.

Subtitles are a rendering of a transcript, not a task of their own. The cues follow the
common rules of broadcast and streaming style guides, so they can be read at a glance:

- at most 42 characters a line and 2 lines a cue, broken at word boundaries into lines of
  similar length (preferring a break after punctuation);
- a cue lasts from 0.8 s to 7 s: a longer segment is split (at its word times when the
  transcript has them, else in proportion to the characters spoken), and a shorter cue is
  lengthened into the silence around it, never overlapping its neighbours (or joined with a
  neighbour when there is no room);
- cues never overlap, and times are exact to the millisecond.

Segments are dicts with ``start`` and ``end`` in seconds, ``text``, and optionally ``words``
(dicts with ``start``, ``end`` and ``word``), as the transcription backends produce them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

MAX_CHARS = 42
MAX_LINES = 2
MIN_DURATION = 0.8
MAX_DURATION = 7.0
_SENTENCE_END = (".", "?", "!", "…")
_CLAUSE_END = (",", ";", ":", "—")


@dataclass
class Cue:
    start: float
    end: float
    text: str

    @property
    def lines(self) -> list[str]:
        return wrap(self.text) or [self.text]


@dataclass
class _Token:
    text: str
    start: float
    end: float


def render_srt(segments: Iterable[Mapping[str, Any]]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a blank line after each."""
    blocks = [
        f"{n}\n{_time(c.start, ',')} --> {_time(c.end, ',')}\n" + "\n".join(c.lines) + "\n"
        for n, c in enumerate(build_cues(segments), start=1)
    ]
    return "\n".join(blocks)


def render_vtt(segments: Iterable[Mapping[str, Any]]) -> str:
    """WebVTT: a ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues, with the
    characters WebVTT reserves (&, <, >) escaped."""
    blocks = [
        f"{_time(c.start, '.')} --> {_time(c.end, '.')}\n"
        + "\n".join(_vtt_escape(line) for line in c.lines)
        + "\n"
        for c in build_cues(segments)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def build_cues(segments: Iterable[Mapping[str, Any]]) -> list[Cue]:
    """The cues for a transcript's segments, following the rules in the module docstring."""
    cues: list[Cue] = []
    for segment in sorted(segments, key=lambda s: float(s["start"])):
        cues += _split(_tokens(segment))
    _remove_overlaps(cues)
    _lengthen_short(cues)
    return cues


def wrap(text: str) -> list[str] | None:
    """``text`` as one line, or two lines of similar length broken at a space; None when it
    does not fit in two lines of MAX_CHARS."""
    if len(text) <= MAX_CHARS:
        return [text]
    best: tuple[float, int] | None = None
    for i, char in enumerate(text):
        if char != " ":
            continue
        first, second = text[:i], text[i + 1 :]
        if len(first) > MAX_CHARS or len(second) > MAX_CHARS:
            continue
        score = abs(len(first) - len(second)) - (6 if first.endswith(_SENTENCE_END) else 0)
        score -= 4 if first.endswith(_CLAUSE_END) else 0
        if best is None or score < best[0]:
            best = (score, i)
    if best is None:
        return None
    return [text[: best[1]], text[best[1] + 1 :]]


def _tokens(segment: Mapping[str, Any]) -> list[_Token]:
    """The segment's words with times: its own word times when it has them, else times
    shared out in proportion to each word's characters. Words too long for a line are cut."""
    start, end = float(segment["start"]), float(segment["end"])
    words = [w for w in segment.get("words") or () if str(w.get("word", "")).strip()]
    if words:
        timed = [_Token(str(w["word"]).strip(), float(w["start"]), float(w["end"])) for w in words]
    else:
        texts = str(segment.get("text", "")).split()
        total = sum(len(t) + 1 for t in texts) or 1
        timed, at = [], start
        for text in texts:
            step = (end - start) * (len(text) + 1) / total
            timed.append(_Token(text, at, at + step))
            at += step
    tokens = []
    for token in timed:
        text = token.text.replace("-->", "->")
        pieces = [text[i : i + MAX_CHARS] for i in range(0, len(text), MAX_CHARS)]
        step = (token.end - token.start) / len(pieces)
        for n, piece in enumerate(pieces):
            tokens.append(_Token(piece, token.start + n * step, token.start + (n + 1) * step))
    return tokens


def _split(tokens: list[_Token]) -> list[Cue]:
    """Split a segment's words into cues that fit (two lines, at most MAX_DURATION), as few as
    possible, of similar length, ending at punctuation where that costs little. Dynamic
    programming over the word boundaries (segments are short, so n squared is fine)."""
    n = len(tokens)
    cost = [0.0] + [math.inf] * n
    back = [0] * (n + 1)
    for k in range(1, n + 1):
        for j in range(k - 1, -1, -1):
            text = " ".join(t.text for t in tokens[j:k])
            if k - j > 1 and (
                len(text) > MAX_CHARS * MAX_LINES
                or tokens[k - 1].end - tokens[j].start > MAX_DURATION
            ):
                break
            if k - j > 1 and wrap(text) is None:
                continue
            fill = len(text) / (MAX_CHARS * MAX_LINES)
            bonus = 2 if text.endswith(_SENTENCE_END) else 1 if text.endswith(_CLAUSE_END) else 0
            c = cost[j] + 4 + 4 * (1 - fill) ** 2 - bonus
            if c < cost[k]:
                cost[k], back[k] = c, j
    cues: list[Cue] = []
    k = n
    while k > 0:
        j = back[k]
        start, end = tokens[j].start, tokens[k - 1].end
        cues.append(
            Cue(start, min(end, start + MAX_DURATION), " ".join(t.text for t in tokens[j:k]))
        )
        k = j
    return cues[::-1]


def _remove_overlaps(cues: list[Cue]) -> None:
    """A cue ends where the next begins, at the latest."""
    cues.sort(key=lambda c: c.start)
    for before, cue in pairwise(cues):
        if cue.start < before.end:
            before.end = max(cue.start, before.start)
            cue.start = max(cue.start, before.end)
            cue.end = max(cue.end, cue.start)


def _lengthen_short(cues: list[Cue]) -> None:
    """Give each cue at least MIN_DURATION: first from the silence after it, then from the
    silence before it; when neither has room, join it with a neighbour if the two fit."""
    for n, cue in enumerate(cues):
        if cue.end - cue.start >= MIN_DURATION:
            continue
        after = cues[n + 1].start if n + 1 < len(cues) else math.inf
        before = cues[n - 1].end if n > 0 else 0.0
        cue.end = max(cue.end, min(cue.start + MIN_DURATION, after))
        cue.start = min(cue.start, max(cue.end - MIN_DURATION, before))
    n = 0
    while n < len(cues):
        cue = cues[n]
        if cue.end - cue.start < MIN_DURATION - 1e-9:
            for other in (n + 1, n - 1):
                if 0 <= other < len(cues) and _join(cues, min(n, other)):
                    n = max(min(n, other) - 1, 0)
                    break
            else:
                n += 1
        else:
            n += 1


def _join(cues: list[Cue], n: int) -> bool:
    """Join cue n with cue n + 1 when the result fits; True if it did."""
    first, second = cues[n], cues[n + 1]
    text = f"{first.text} {second.text}"
    if wrap(text) is None or second.end - first.start > MAX_DURATION:
        return False
    cues[n : n + 2] = [Cue(first.start, second.end, text)]
    return True


def _time(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
