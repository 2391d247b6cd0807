"""The two OCR engines behind one small interface: a picture in, recognised lines out.

- ``tesseract``: the Debian program (apt-get install tesseract-ocr, and tesseract-ocr-LANG for
  each language), run through pytesseract. Its own layout analysis gives lines and paragraphs.
- ``rapidocr``: PP-OCR detection and recognition models run by onnxruntime, shipped inside the
  rapidocr package, so it works offline. It returns text fragments with boxes; :func:`to_lines`
  joins them into lines in reading order.

Engines load once and are shared (:func:`get_engine`): the OCR backends and document
translation's reader of scanned pages use the same instance.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from statistics import median
from typing import Any, Protocol

from PIL import Image

from hivescribe.backends.base import InputError

__all__ = ["ENGINES", "Engine", "Line", "get_engine", "lines_to_text", "to_lines"]

ENGINES = ("tesseract", "rapidocr")
DEFAULT_LANGUAGE = "eng"
# Page segmentation modes that read text (0 only detects orientation; 2 is not implemented).
PSM_MODES = (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
_LANGUAGE = re.compile(r"^[A-Za-z_]+(\+[A-Za-z_]+)*$")
# Tesseract codes -> rapidocr's names, for the languages its bundled multilingual model reads.
_RAPID_NAMES = {
    "eng": "en", "spa": "es", "fra": "fr", "deu": "de", "ita": "it", "por": "pt",
    "nld": "nl", "pol": "pl", "ces": "cs", "slk": "sk", "slv": "sl", "hrv": "hr",
    "hun": "hu", "ron": "ro", "swe": "sv", "dan": "da", "nor": "no", "fin": "fi",
    "est": "et", "lav": "lv", "lit": "lt", "tur": "tr", "cat": "ca", "glg": "gl",
    "eus": "eu", "isl": "is", "gle": "ga", "cym": "cy", "lat": "la", "ind": "id",
    "msa": "ms", "vie": "vi", "afr": "af", "sqi": "sq", "swa": "sw", "tgl": "tl",
    "chi_sim": "ch", "chi_tra": "chinese_cht", "jpn": "japan",
}  # fmt: skip


@dataclass(frozen=True)
class Line:
    """One recognised line: its text, box (x0, y0, x1, y1 in pixels), confidence (0 to 1) and
    the paragraph it belongs to (a new paragraph starts after a blank line in the text)."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float
    paragraph: int


class Engine(Protocol):
    name: str

    def check_language(self, language: str) -> str: ...

    def read(self, image: Image.Image, language: str, psm: int | None = None) -> list[Line]: ...


def lines_to_text(lines: Iterable[Line]) -> str:
    """Lines joined by newlines, with a blank line between paragraphs."""
    out: list[str] = []
    previous: int | None = None
    for line in lines:
        if previous is not None and line.paragraph != previous:
            out.append("")
        out.append(line.text)
        previous = line.paragraph
    return "\n".join(out)


def _check_code(language: Any) -> list[str]:
    if not isinstance(language, str) or not _LANGUAGE.match(language):
        raise InputError(
            f"parameter language={language!r} is not valid: expected tesseract language codes "
            "such as 'eng', 'spa' or 'eng+spa'"
        )
    return language.split("+")


# -- tesseract -----------------------------------------------------------------------------------


@cache
def installed_languages() -> tuple[str, ...]:
    """What ``tesseract --list-langs`` lists (read once per process)."""
    import pytesseract

    try:
        return tuple(sorted(str(code) for code in pytesseract.get_languages(config="")))
    except pytesseract.TesseractNotFoundError:
        raise RuntimeError(
            "the tesseract program is not installed: apt-get install tesseract-ocr "
            "(and tesseract-ocr-LANG for each language)"
        ) from None


class Tesseract:
    name = "tesseract"

    def __init__(self) -> None:
        installed_languages()  # fails now, at load, when the program is missing

    def check_language(self, language: str) -> str:
        installed = installed_languages()
        missing = [code for code in _check_code(language) if code not in installed]
        if missing:
            packages = " ".join(
                f"tesseract-ocr-{code.lower().replace('_', '-')}" for code in missing
            )
            raise InputError(
                f"tesseract language {', '.join(missing)} is not installed on this worker "
                f"(installed: {', '.join(code for code in installed if code != 'osd')}); "
                f"install it with apt-get install {packages}, or ask for an installed language"
            )
        return language

    def read(self, image: Image.Image, language: str, psm: int | None = None) -> list[Line]:
        import pytesseract

        config = f"--psm {psm}" if psm is not None else ""
        data = pytesseract.image_to_data(
            image, lang=language, config=config, output_type=pytesseract.Output.DICT
        )
        groups: dict[tuple[int, int, int], list[int]] = {}
        for index, word in enumerate(data["text"]):
            if str(word).strip():
                key = (data["block_num"][index], data["par_num"][index], data["line_num"][index])
                groups.setdefault(key, []).append(index)
        lines: list[Line] = []
        paragraphs: dict[tuple[int, int], int] = {}
        for (block, par, _), words in groups.items():
            x0 = min(data["left"][i] for i in words)
            y0 = min(data["top"][i] for i in words)
            x1 = max(data["left"][i] + data["width"][i] for i in words)
            y1 = max(data["top"][i] + data["height"][i] for i in words)
            confidences = [max(float(data["conf"][i]), 0.0) / 100 for i in words]
            lines.append(
                Line(
                    " ".join(str(data["text"][i]).strip() for i in words),
                    (int(x0), int(y0), int(x1), int(y1)),
                    round(sum(confidences) / len(confidences), 4),
                    paragraphs.setdefault((block, par), len(paragraphs)),
                )
            )
        return lines


# -- rapidocr ------------------------------------------------------------------------------------


class RapidOCR:
    name = "rapidocr"

    def __init__(self) -> None:
        from rapidocr import RapidOCR as Model

        self._model = Model(params={"Global.log_level": "warning"})
        self._lock = threading.Lock()  # the model keeps per-call settings on itself

    def check_language(self, language: str) -> str:
        unknown = [code for code in _check_code(language) if code not in _RAPID_NAMES]
        if unknown:
            raise InputError(
                f"rapidocr's bundled model does not read {', '.join(unknown)}; it reads "
                f"{', '.join(sorted(_RAPID_NAMES))} (or use the tesseract engine)"
            )
        return language

    def read(self, image: Image.Image, language: str, psm: int | None = None) -> list[Line]:
        """``psm`` is a tesseract setting and is ignored here; the model reads every language
        it knows at once, so ``language`` only needs to be one of them."""
        with self._lock:
            result: Any = self._model(image)
        texts, scores, quads = result.txts, result.scores, result.boxes
        if texts is None or scores is None or quads is None:
            return []
        fragments = []
        for text, score, quad in zip(texts, scores, quads, strict=True):
            xs, ys = [float(p[0]) for p in quad], [float(p[1]) for p in quad]
            if str(text).strip():
                box = (min(xs), min(ys), max(xs), max(ys))
                fragments.append((str(text).strip(), box, float(score)))
        return to_lines(fragments)


def to_lines(fragments: list[tuple[str, tuple[float, float, float, float], float]]) -> list[Line]:
    """Text fragments with boxes -> lines in reading order: a fragment joins a line when their
    boxes overlap vertically by half the smaller height; a line's fragments go left to right.
    A gap between lines taller than a line starts a new paragraph."""
    rows: list[list[tuple[str, tuple[float, float, float, float], float]]] = []
    for fragment in sorted(fragments, key=lambda f: (f[1][1] + f[1][3]) / 2):
        _, (_, y0, _, y1), _ = fragment
        if rows:
            top = min(f[1][1] for f in rows[-1])
            bottom = max(f[1][3] for f in rows[-1])
            overlap = min(bottom, y1) - max(top, y0)
            if overlap >= 0.5 * min(bottom - top, y1 - y0):
                rows[-1].append(fragment)
                continue
        rows.append([fragment])
    if not rows:
        return []
    heights = [max(f[1][3] for f in row) - min(f[1][1] for f in row) for row in rows]
    typical = median(heights)
    lines: list[Line] = []
    paragraph, previous_bottom = 0, None
    for row in rows:
        row.sort(key=lambda f: f[1][0])
        x0, y0 = min(f[1][0] for f in row), min(f[1][1] for f in row)
        x1, y1 = max(f[1][2] for f in row), max(f[1][3] for f in row)
        if previous_bottom is not None and y0 - previous_bottom > typical:
            paragraph += 1
        previous_bottom = y1
        confidence = sum(f[2] for f in row) / len(row)
        box = (round(x0), round(y0), round(x1), round(y1))
        lines.append(Line(" ".join(f[0] for f in row), box, round(confidence, 4), paragraph))
    return lines


# -- the shared instances ------------------------------------------------------------------------

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(name: str) -> Engine:
    """The process's one instance of engine ``name``, loaded on first use."""
    if name not in ENGINES:
        raise ValueError(f"unknown OCR engine {name!r}; known: {', '.join(ENGINES)}")
    with _engines_lock:
        if name not in _engines:
            _engines[name] = Tesseract() if name == "tesseract" else RapidOCR()
        return _engines[name]
