"""The Apertium engine of :class:`~hivescribe.backends.translate.Translator` (``--model
apertium`` or none, the default): Debian's rule-based ``apertium`` program and its installed
pairs (``apertium -l``; ``apt-get install apertium apertium-eng-spa``). Offline and fast.

A batch goes through one ``apertium -z -f none MODE`` process, each text deformatted alone by
``apertium-destxt`` and separated by NUL bytes, which null-flush mode treats as independent
inputs; ``apertium-retxt`` reformats each answer. So every text comes back exactly as
``apertium MODE`` prints it, without paying the pair's start-up (about a third of a second) per
text. Kept apart from the neural engines because it is a subprocess pipeline, not a model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from hivescribe.domain.errors import ValidationError

APERTIUM = "apertium"
INSTALL_APERTIUM = "apt-get install apertium apertium-eng-spa"


class ApertiumEngine:
    """Mixed into Translator: loads the installed modes and runs the pipeline. Its state lives
    on the translator (``mode``, ``apertium_modes``)."""

    mode: str | None
    apertium_modes: list[str]

    def _load_apertium(self) -> None:
        if shutil.which("apertium") is None or shutil.which("apertium-destxt") is None:
            raise ValidationError(
                f"the apertium program is not installed: {INSTALL_APERTIUM} (and an "
                "apertium-SRC-TGT package for each other pair you need)"
            )
        listed = _run(["apertium", "-l"], b"", 60).decode("utf-8", "replace")
        self.apertium_modes = [line.strip() for line in listed.splitlines() if line.strip()]
        self.mode = "apertium"

    def _apertium(self, texts: list[str], mode: str, mark_unknown: bool) -> list[str]:
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if not todo:
            return list(texts)
        size = sum(len(texts[i]) for i in todo)
        timeout = 120 + size / 2000  # seconds; Apertium does several thousand words a second
        with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            formatted = list(
                pool.map(lambda i: _run(["apertium-destxt"], _utf8(texts[i]), 60), todo)
            )
            flags = ["-z", "-f", "none", *([] if mark_unknown else ["-u"])]
            stream = b"".join(text + b"\0" for text in formatted)
            answers = _run(["apertium", *flags, mode], stream, timeout).split(b"\0")
            if len(answers) < len(todo) or any(answers[len(todo) :]):
                raise RuntimeError(
                    f"apertium {mode} answered {len(answers)} pieces for {len(todo)} texts"
                )
            plain = list(pool.map(lambda a: _run(["apertium-retxt"], a, 60), answers[: len(todo)]))
        out = list(texts)
        for i, answer in zip(todo, plain, strict=True):
            out[i] = answer.decode("utf-8", "replace")
        return out


def _run(command: list[str], data: bytes, timeout: float) -> bytes:
    done = subprocess.run(command, input=data, capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        error = done.stderr.decode("utf-8", "replace").strip()[-500:]
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}): {error}")
    return done.stdout


def _utf8(text: str) -> bytes:
    return text.replace("\0", "").encode("utf-8", "replace")
