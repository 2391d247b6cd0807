"""PDF for document translation: each page's paragraphs in, a new PDF of translated
paragraphs out, page for page.

Reading: a page's text layer (pypdf) is split into paragraphs by its line layout: blank lines,
a short line that ends a sentence, a list marker; wrapped lines are joined (with end-of-line
hyphens removed). A page without a text layer is a scan: it is read by the ``ocr`` callable
from the images embedded in it (ocr_mode "auto"); "always" reads every page that has images
that way, "never" leaves scans out, with a note. Every page's text layer is read first, then
the pages to OCR, so the progress meter knows how many of those slow pages there are.

Writing: reportlab draws a PDF with the same number of pages, each the size of the original,
holding its translated paragraphs in a font that covers accented Latin (DejaVu Sans where it
is installed). Layout, images, fonts, colours and links are not kept; the notes say so. Text
that does not fit a page is set smaller, down to 6 points, and only then runs onto an extra
page (with a note).
"""

from __future__ import annotations

import glob
import importlib.util
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image

from hivescribe.backends import pdf_pages
from hivescribe.backends.documents_text import Meter

__all__ = [
    "KEPT_NOTE",
    "LAYERS_PERCENT",
    "SCANS_PERCENT",
    "PdfPage",
    "font",
    "read_pdf",
    "split_paragraphs",
    "write_pdf",
]

OCR = Callable[[Image.Image], str]
MIN_LETTERS = 10  # a page with fewer letters in its text layer (and images) is a scan
# The item's percent when the text layers are read; OCR then takes up to SCANS_PERCENT more,
# in proportion to the share of pages it reads (all of it when every page is a scan).
LAYERS_PERCENT = 5.0
SCANS_PERCENT = 55.0
FONT_SIZES = (11.0, 10.0, 9.0, 8.0, 7.0, 6.0)
FONT_FOLDERS = (
    "/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
    "/Library/Fonts", "/System/Library/Fonts", "C:/Windows/Fonts",
)  # fmt: skip
KEPT_NOTE = (
    "the translated PDF keeps the page count and page sizes, but not the layout, images, "
    "fonts, colours or links of the original: each page holds its translated text as plain "
    "paragraphs"
)
# Bullets (with en and em dashes) and numbered items; closing quotes end sentences too.
_BULLET = re.compile(
    "^(?:[\u2022\u25e6\u25aa\u2023\u00b7*\\-\u2013\u2014]|\\(?\\d{1,3}[.)]|\\(?[a-z][.)])\\s"
)
_SENTENCE_END = re.compile("[.!?:;)\\]\"'\u00bb\u201d\u2019\u2026]$")


@dataclass
class PdfPage:
    """One page read: its size in points and its paragraphs (then their translations)."""

    size: tuple[float, float]
    paragraphs: list[str]


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of a page's extracted lines (see the module's docstring)."""
    lines = [line.strip() for line in text.splitlines()]
    longest = max((len(line) for line in lines), default=0)
    paragraphs: list[str] = []
    current = previous = ""
    for line in lines:
        if current and (not line or _starts_paragraph(previous, line, longest)):
            paragraphs.append(current)
            current = ""
        previous = line
        if not line:
            continue
        if not current:
            current = line
        elif re.search(r"[^\W\d_]-$", current) and line[:1].islower():
            current = current[:-1] + line  # "transla-" + "tion"
        else:
            current = f"{current} {line}"
    if current:
        paragraphs.append(current)
    return paragraphs


def _starts_paragraph(previous: str, line: str, longest: int) -> bool:
    """Whether ``line`` starts a new paragraph after the line ``previous``: it is a list item,
    or the previous line is short and ends a sentence, or is very short (a heading)."""
    if _BULLET.match(line):
        return True
    if len(previous) >= 0.8 * longest:
        return False  # a full line: the paragraph wraps on
    return bool(_SENTENCE_END.search(previous)) or len(previous) < 0.6 * longest


def read_pdf(
    data: bytes,
    name: str,
    *,
    ocr: OCR | None,
    ocr_mode: str,
    notes: list[str],
    meter: Meter | None = None,
) -> list[PdfPage]:
    """The pages' paragraphs, from the text layer or (scans) through ``ocr``; ``meter`` hears
    of each page as it is read."""
    meter = meter or Meter()
    reader = pdf_pages.open_pdf(data, name)
    total = len(reader.pages)
    texts: list[str] = []
    scans: list[int] = []  # the numbers of the pages to read by OCR
    meter.step(LAYERS_PERCENT)
    for number, page in enumerate(reader.pages, start=1):
        meter.report(number - 1, total, f"page {number} of {total}")
        try:
            text = page.extract_text() or ""
        except Exception as exc:
            notes.append(f"page {number}: its text layer cannot be read ({exc})")
            text = ""
        letters = sum(ch.isalpha() for ch in text)
        scanned = letters < MIN_LETTERS and _has_images(page)
        if ocr is not None and (ocr_mode == "always" or (ocr_mode == "auto" and scanned)):
            scans.append(number)
        elif scanned:
            reason = "OCR is off" if ocr_mode == "never" else "no OCR engine was given"
            notes.append(f"page {number} has no text layer (a scan?) and was left out: {reason}")
        texts.append(text)
    meter.step(LAYERS_PERCENT + SCANS_PERCENT * len(scans) / total)
    for done, number in enumerate(scans):
        assert ocr is not None  # pages are only listed for OCR when there is a reader
        meter.report(done, len(scans), f"page {number} of {total} (OCR)")
        page = reader.pages[number - 1]
        texts[number - 1] = _ocr_page(page, number, texts[number - 1], ocr, notes)
    return [
        PdfPage(_size(page), split_paragraphs(text))
        for page, text in zip(reader.pages, texts, strict=True)
    ]


def _ocr_page(page: Any, number: int, text: str, ocr: OCR, notes: list[str]) -> str:
    """The text ``ocr`` reads in the page's images; the text layer where it has none."""
    images, problems = pdf_pages.page_images(page)
    notes.extend(f"page {number}: {problem}" for problem in problems)
    if not images:
        return text  # nothing to OCR: keep the text layer
    return "\n\n".join(ocr(image) for image in images)


def _has_images(page: Any) -> bool:
    try:
        return len(page.images) > 0
    except Exception:
        return False


def _size(page: Any) -> tuple[float, float]:
    width, height = float(page.mediabox.width), float(page.mediabox.height)
    return (height, width) if (page.rotation or 0) % 180 else (width, height)


@cache
def font() -> tuple[str, str | None]:
    """(reportlab font name, a note when it is a fallback): DejaVu Sans from the system's font
    folders or from matplotlib, else Helvetica, which lacks letters outside Western Europe."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    candidates = [
        path
        for folder in FONT_FOLDERS
        for path in sorted(
            glob.glob(f"{Path(folder).expanduser()}/**/DejaVuSans.ttf", recursive=True)
        )
    ]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "mpl-data/fonts/ttf/DejaVuSans.ttf"))
    for path in candidates:
        if Path(path).is_file():
            pdfmetrics.registerFont(TTFont("DejaVuSans", path))
            return "DejaVuSans", None
    return "Helvetica", (
        "DejaVu Sans is not installed (Debian: fonts-dejavu-core), so the PDF uses Helvetica, "
        "which cannot show letters outside Western European Latin"
    )


def write_pdf(pages: list[PdfPage], notes: list[str], meter: Meter | None = None) -> bytes:
    """A PDF with one page per ``pages`` entry (more only where text overflows); ``meter``
    hears of each page as it is written."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import Frame, Paragraph

    meter = meter or Meter()
    font_name, font_note = font()
    if font_note:
        notes.append(font_note)
    out = io.BytesIO()
    canvas = Canvas(out, invariant=True)
    for number, page in enumerate(pages, start=1):
        meter.report(number - 1, len(pages), f"writing page {number} of {len(pages)}")
        width, height = page.size
        margin = min(54.0, width / 10, height / 10)
        box_width, box_height = width - 2 * margin, height - 2 * margin
        for size in FONT_SIZES:
            style = ParagraphStyle(
                "body",
                fontName=font_name,
                fontSize=size,
                leading=size * 1.25,
                spaceAfter=size * 0.6,
            )
            story = [Paragraph(escape(text), style) for text in page.paragraphs]
            needed = sum(p.wrap(box_width, box_height)[1] + style.spaceAfter for p in story)
            if needed <= box_height:
                break
        overflow = 0
        while True:
            canvas.setPageSize((width, height))
            frame = Frame(
                margin, margin, box_width, box_height,
                leftPadding=0, bottomPadding=0, rightPadding=0, topPadding=0,
            )  # fmt: skip
            left = len(story)
            frame.addFromList(story, canvas)
            canvas.showPage()
            if story and len(story) == left:
                notes.append(f"page {number}: some text is too large for the page; left out")
            if not story or len(story) == left:
                break
            overflow += 1
        if overflow:
            notes.append(f"page {number}'s translation ran over onto {overflow} extra page(s)")
    canvas.save()
    return out.getvalue()
