"""DOCX for document translation, edited in place with python-docx and lxml.

Every paragraph is translated where it stands: in the body, in tables (nested too), in text
boxes, headers, footers, footnotes and endnotes. Styles, tables, pictures, fields and section
settings are untouched. A paragraph's text is spread over runs (one per change of formatting):
the translation goes into the first run's text and the other runs' text is emptied, so the
paragraph keeps its first run's formatting. Tabs and line breaks split a paragraph into pieces
translated apart, so they stay where they were.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

from hivescribe.backends.base import InputError
from hivescribe.backends.documents_text import Segments, has_letters
from hivescribe.backends.images import describe_bytes

__all__ = ["OLE_MAGIC", "DocxTranslation", "docx_text", "open_docx"]

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_UNPACKED_BYTES = 512 * 1024 * 1024  # a zip bomb is refused before python-docx unpacks it
# Parts whose paragraphs are translated besides the body (python-docx loads these as XML).
_XML_PARTS = ("header+xml", "footer+xml")
# Parts python-docx keeps as bytes; their XML is parsed, edited and written back.
_BLOB_PARTS = ("footnotes+xml", "endnotes+xml")


def open_docx(data: bytes, name: str) -> Any:
    """A python-docx Document, or an InputError that says what the bytes are instead."""
    import docx

    if data.startswith(OLE_MAGIC):
        raise InputError(
            f"{name} is a password-protected Word file or a legacy .doc: remove the password "
            "or save it as .docx, and submit it again"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(
            f"{name} is not a readable .docx (not a valid zip file: {exc}); it is "
            f"{describe_bytes(data)}"
        ) from None
    if "word/document.xml" not in names:
        raise InputError(f"{name} is a zip file but not a Word .docx (no word/document.xml)")
    if unpacked > MAX_UNPACKED_BYTES:
        raise InputError(f"{name} unpacks to {unpacked:,} bytes, over the limit of 512 MiB")
    try:
        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # KeyError, XMLSyntaxError, ValueError...: a damaged package
        raise InputError(f"{name} is a damaged .docx: {type(exc).__name__}: {exc}") from None


def _roots(document: Any) -> list[tuple[Any, Any]]:
    """(part, root element) for the body and the other parts with paragraphs; the roots of
    parts kept as bytes are parsed here and written back by :meth:`DocxTranslation.save`."""
    from lxml import etree

    roots = [(document.part, document.part.element)]
    for part in document.part.package.iter_parts():
        content_type = str(part.content_type)
        if part is document.part:
            continue
        if content_type.endswith(_XML_PARTS) and hasattr(part, "element"):
            roots.append((part, part.element))
        elif content_type.endswith(_BLOB_PARTS):
            roots.append((part, etree.fromstring(part.blob)))
    return roots


def _pieces(paragraph: Any) -> list[list[Any]]:
    """The paragraph's own w:t elements (not those of a text box inside it), in runs of
    elements between tabs and breaks."""
    pieces: list[list[Any]] = [[]]
    for element in paragraph.iter(f"{W}t", f"{W}tab", f"{W}br", f"{W}cr"):
        if next(element.iterancestors(f"{W}p"), None) is not paragraph:
            continue
        if element.tag == f"{W}t":
            pieces[-1].append(element)
        elif pieces[-1]:
            pieces.append([])
    return [piece for piece in pieces if piece]


def _paragraph_text(paragraph: Any) -> str:
    return " ".join("".join(t.text or "" for t in piece) for piece in _pieces(paragraph)).strip()


def docx_text(document: Any) -> str:
    """The body's paragraphs (tables' too, in document order), apart by blank lines."""
    texts = (_paragraph_text(p) for p in document.part.element.iter(f"{W}p"))
    return "\n\n".join(text for text in texts if text)


class DocxTranslation:
    """One .docx being translated: :meth:`collect` the pieces' texts into ``segments``, run
    them, then :meth:`fill` the translations in and :meth:`save`."""

    def __init__(self, data: bytes, name: str) -> None:
        self.document = open_docx(data, name)
        self.roots = _roots(self.document)
        # (a piece's w:t elements, its segment, the whitespace before and after its text)
        self.slots: list[tuple[list[Any], int, str, str]] = []

    def collect(self, segments: Segments) -> None:
        for _, root in self.roots:
            for paragraph in root.iter(f"{W}p"):
                for piece in _pieces(paragraph):
                    text = "".join(t.text or "" for t in piece)
                    if has_letters(text):
                        lead = text[: len(text) - len(text.lstrip())]
                        trail = text[len(text.rstrip()) :]
                        index = segments.add(" ".join(text.split()))
                        self.slots.append((piece, index, lead, trail))

    def fill(self, segments: Segments) -> None:
        for piece, index, lead, trail in self.slots:
            piece[0].text = f"{lead}{segments.translated[index]}{trail}"
            piece[0].set(XML_SPACE, "preserve")
            for other in piece[1:]:
                other.text = ""

    def save(self) -> bytes:
        from lxml import etree

        for part, root in self.roots:
            if not hasattr(part, "element"):  # a part python-docx keeps as bytes
                part._blob = etree.tostring(
                    root, xml_declaration=True, encoding="UTF-8", standalone=True
                )
        out = io.BytesIO()
        self.document.save(out)
        return out.getvalue()
