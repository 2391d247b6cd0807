"""What the speech tests share: word error rate on normalised text, and tts work items."""

from __future__ import annotations

import re
from typing import Any

import jiwer

from hivescribe.backends import Backend, Success, WorkItem


def normalize(text: str) -> str:
    """Lower case, punctuation dropped, whitespace runs collapsed."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def wer(reference: str | list[str], hypothesis: str | list[str]) -> float:
    if isinstance(reference, str) and isinstance(hypothesis, str):
        return float(jiwer.wer(normalize(reference), normalize(hypothesis)))
    assert isinstance(reference, list) and isinstance(hypothesis, list)
    return float(jiwer.wer([normalize(r) for r in reference], [normalize(h) for h in hypothesis]))


def item(
    text: str | None = None, data: bytes | None = None, key: str = "speech", **params: Any
) -> WorkItem:
    return WorkItem(1, "token", "tts", key, "dataset", "shard", params, text=text, data=data)


def spoken(backend: Backend, work: WorkItem) -> Success:
    backend.prepare(work)
    outcome = backend.process_one(work)
    assert isinstance(outcome, Success), outcome
    assert outcome.blob
    return outcome
