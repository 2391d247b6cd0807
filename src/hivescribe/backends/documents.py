"""Documents for translation: read PDF, DOCX, plain text, Markdown and HTML, translate their
text through a caller's function, and write the same kind of document back.

The document-translation backend calls :func:`translate_document` with a ``translate``
function that takes a list of text segments and returns their translations in order; it is
called with every segment of a short document at once, and with a few large batches of a long
one (at most ten: documents_text.batches), so it can batch and progress is told between them.
Each kind keeps what it can:

- DOCX: edited in place; paragraphs, tables, styles, headers and footers stay (documents_office).
- PDF: a new PDF, page for page, of translated paragraphs; scanned pages are read by ``ocr``
  (documents_pdf). The result's ``notes`` say what is not kept.
- TXT and Markdown: structure and markup kept; code and URLs untouched (documents_text).
- HTML: every tag and attribute kept; script, style and code untouched (documents_html).

Progress, as the item's percent: a PDF's text layers up to 5%, then its scans read by OCR
(up to 60% when every page is one), "page 3 of 12 (OCR)"; the translation up to 95%,
"translated 1,200 of 4,800 characters"; writing a PDF up to 99%, "writing page 3 of 12". The
other kinds are read and written at once: their translation fills 0 to 95%.

Input that can never be translated (empty, damaged, encrypted, an unsupported kind, more text
than ``max_characters``) raises InputError with what to do about it.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from PIL import Image

from hivescribe.backends import documents_html, documents_pdf, documents_text
from hivescribe.backends.base import InputError, ProgressCallback
from hivescribe.backends.documents_office import OLE_MAGIC, DocxTranslation, docx_text, open_docx
from hivescribe.backends.documents_text import Meter, Segments, decode_text, has_letters
from hivescribe.backends.images import describe_bytes
from hivescribe.backends.pdf_pages import is_pdf

__all__ = [
    "KINDS",
    "OCR_MODES",
    "TranslatedDocument",
    "document_kind",
    "extract_text",
    "translate_document",
]

KINDS = ("pdf", "docx", "txt", "md", "html")
OCR_MODES = ("auto", "always", "never")
_SUFFIXES = {
    ".pdf": "pdf", ".docx": "docx", ".txt": "txt", ".text": "txt", ".md": "md",
    ".markdown": "md", ".mdown": "md", ".mkd": "md", ".html": "html", ".htm": "html",
    ".xhtml": "html",
}  # fmt: skip
_REFUSED = {
    ".doc": "a legacy Word .doc: save it as .docx",
    ".odt": "an OpenDocument text: save it as .docx",
    ".rtf": "an RTF document: save it as .docx",
    ".pages": "an Apple Pages document: export it as .docx or PDF",
}
_SUPPORTED = "PDF, Word .docx, plain text (.txt), Markdown (.md) or HTML"
TRANSLATED_PERCENT = 95.0  # the item's percent when every segment is translated
WRITTEN_PERCENT = 99.0  # and when a PDF's pages are written (the rest is the worker's)

Translate = Callable[[list[str]], list[str]]
OCR = Callable[[Image.Image], str]


@dataclass
class TranslatedDocument:
    data: bytes  # the translated document, of the same kind
    filename: str  # its file name: the original's, with the kind's suffix
    text: str  # the translated plain text, paragraphs apart by blank lines
    kind: str  # one of KINDS
    pages: int | None = None  # a PDF's page count
    notes: list[str] = field(default_factory=list)  # what was not kept or not read


def _name(filename: str | None) -> str:
    return repr(filename) if filename else "the document"


def document_kind(filename: str | None, data: bytes) -> str:
    """The document's kind from its suffix, else from its first bytes; InputError when it is
    not a kind this module reads."""
    suffix = PurePosixPath(filename or "").suffix.lower()
    name = _name(filename)
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if suffix in _REFUSED:
        raise InputError(f"{name} is {_REFUSED[suffix]}, and submit it again")
    if is_pdf(data):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" in archive.namelist():
                    return "docx"
        except zipfile.BadZipFile:
            pass
    if data.startswith(OLE_MAGIC):
        raise InputError(
            f"{name} is a legacy .doc or a password-protected Word file: remove the password "
            "or save it as .docx, and submit it again"
        )
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "html"
    if not suffix and data:
        try:
            decode_text(data, name)
            return "txt"
        except InputError:
            pass
    what = describe_bytes(data) if data else "empty"
    raise InputError(f"{name} is not a document this worker translates ({what}); send {_SUPPORTED}")


def _output_name(filename: str | None, kind: str) -> str:
    path = PurePosixPath(PurePosixPath(filename or "").name or "document")
    if _SUFFIXES.get(path.suffix.lower()) == kind:
        return path.name
    return f"{path.stem or path.name}.{kind}"


def _check(data: bytes | None, filename: str | None, ocr_mode: str) -> str:
    if ocr_mode not in OCR_MODES:
        raise InputError(f"ocr={ocr_mode!r} is not valid: expected {', '.join(OCR_MODES)}")
    if not data:
        raise InputError(f"{_name(filename)} is empty (0 bytes)")
    return document_kind(filename, data)


def extract_text(
    data: bytes, filename: str, *, ocr: OCR | None = None, ocr_mode: str = "auto"
) -> str:
    """The document's readable text, paragraphs apart by blank lines (Markdown as written)."""
    kind = _check(data, filename, ocr_mode)
    name = _name(filename)
    if kind == "pdf":
        pages = documents_pdf.read_pdf(data, name, ocr=ocr, ocr_mode=ocr_mode, notes=[])
        return "\n\n".join(p for page in pages for p in page.paragraphs)
    if kind == "docx":
        return docx_text(open_docx(data, name))
    if kind == "html":
        return documents_html.html_text(documents_html.parse_html(data, name))
    text, _ = decode_text(data, name)
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass
class _Job:
    """One document's translation: its segments, the caller's ``translate`` and limit, and
    the progress meter its steps report to."""

    name: str
    kind: str
    translate: Translate
    meter: Meter
    max_characters: int | None
    segments: Segments = field(default_factory=Segments)

    def run(self) -> None:
        """Translate the segments collected, or say why they cannot be."""
        size = self.segments.characters
        if not size:
            hint = (
                ": it may be a scan; translate it with OCR (the job parameter ocr: auto or always)"
                if self.kind == "pdf"
                else ""
            )
            raise InputError(f"{self.name} has no text to translate{hint}")
        if self.max_characters is not None and size > self.max_characters:
            raise InputError(
                f"{self.name} has {size:,} characters of text; translation takes at most "
                f"{self.max_characters:,} per document: split it into several documents"
            )
        self.meter.step(TRANSLATED_PERCENT)
        self.segments.run(self.translate, self.meter)


def translate_document(
    data: bytes,
    filename: str,
    translate: Translate,
    *,
    ocr: OCR | None = None,
    ocr_mode: str = "auto",
    progress: ProgressCallback | None = None,
    max_characters: int | None = None,
) -> TranslatedDocument:
    """The document translated: same kind, same structure (see the module's docstring).
    ``progress`` hears the percent done and what is being done; a document with more than
    ``max_characters`` of text is refused before any of it is translated."""
    kind = _check(data, filename, ocr_mode)
    job = _Job(_name(filename), kind, translate, Meter(progress), max_characters)
    notes: list[str] = []
    pages: int | None = None
    if kind == "pdf":
        out, text, pages = _translate_pdf(data, job, ocr, ocr_mode, notes)
    elif kind == "docx":
        document = DocxTranslation(data, job.name)
        document.collect(job.segments)
        job.run()
        document.fill(job.segments)
        out, text = document.save(), docx_text(document.document)
    elif kind == "html":
        soup = documents_html.parse_html(data, job.name)
        nodes = documents_html.translate_html(soup, job.segments)
        job.run()
        out, text = documents_html.fill_html(soup, nodes), documents_html.html_text(soup)
    else:
        source, encoding = decode_text(data, job.name)
        make = documents_text.translate_markdown if kind == "md" else documents_text.translate_plain
        template = make(source, job.segments)
        job.run()
        rendered = template.render()
        out, text = rendered.encode(encoding), rendered.replace("\r\n", "\n").replace("\r", "\n")
    return TranslatedDocument(out, _output_name(filename, kind), text, kind, pages, notes)


def _translate_pdf(
    data: bytes, job: _Job, ocr: OCR | None, ocr_mode: str, notes: list[str]
) -> tuple[bytes, str, int]:
    read = documents_pdf.read_pdf(
        data, job.name, ocr=ocr, ocr_mode=ocr_mode, notes=notes, meter=job.meter
    )
    # Each paragraph's segment, or the paragraph itself when it has no words (page numbers).
    segments = job.segments
    slots = [[segments.add(p) if has_letters(p) else p for p in page.paragraphs] for page in read]
    job.run()
    for page, found in zip(read, slots, strict=True):
        page.paragraphs = [x if isinstance(x, str) else segments.translated[x] for x in found]
    notes.insert(0, documents_pdf.KEPT_NOTE)
    job.meter.step(WRITTEN_PERCENT)
    out = documents_pdf.write_pdf(read, notes, job.meter)
    return out, "\n\n".join(p for page in read for p in page.paragraphs), len(read)
