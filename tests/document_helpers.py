"""A deterministic stand-in for a translation model, for the document tests: every word's
letters reversed, so a test can tell translated text from the original at a glance."""

from __future__ import annotations

import re


def flip(text: str) -> str:
    """The test's translation: every word's letters reversed, all else kept."""
    return re.sub(r"[^\W\d_]+", lambda m: m.group(0)[::-1], text)


class Translator:
    """``flip`` over a list of segments, remembering each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, segments: list[str]) -> list[str]:
        self.calls.append(list(segments))
        return [flip(s) for s in segments]
