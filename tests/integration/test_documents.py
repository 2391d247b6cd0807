"""Document translation's reading and writing: DOCX, PDF (text layer and scans through real
tesseract OCR), plain text, Markdown and HTML round trip through a deterministic "translation"
(each word's letters reversed) with their structure intact, in one call of ``translate``; bad
documents raise InputError with a reason."""

from __future__ import annotations

import glob
import importlib
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont
from tests.document_helpers import Translator, flip

from hivescribe.backends import InputError
from hivescribe.backends.documents import (
    TranslatedDocument,
    document_kind,
    extract_text,
    translate_document,
)
from hivescribe.backends.documents_pdf import KEPT_NOTE
from hivescribe.backends.ocr import make_reader


def translated(data: bytes, filename: str, **kwargs: Any) -> TranslatedDocument:
    translator = Translator()
    result = translate_document(data, filename, translator, **kwargs)
    assert len(translator.calls) == 1  # every segment in one batch
    return result


def normal(text: str) -> str:
    return " ".join(text.split())


# -- DOCX ----------------------------------------------------------------------------------------


def build_docx() -> bytes:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Quarterly report"
    document.sections[0].footer.paragraphs[0].text = "Confidential draft"
    document.add_heading("Harbor bridge repairs", level=1)
    mixed = document.add_paragraph()
    mixed.add_run("The bridge ").bold = True
    mixed.add_run("closes in ")
    mixed.add_run("March").italic = True
    mixed.add_run(" for fourteen months.")
    document.add_paragraph("Name:\tAda Lovelace")
    document.add_paragraph("2024")
    document.add_paragraph("")
    document.add_paragraph("First point to check", style="List Bullet")
    table = document.add_table(rows=2, cols=3)
    for r, row in enumerate([["Item", "Cost", "Owner"], ["Steel cables", "410", "City council"]]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    table.cell(1, 2).add_paragraph("and the state")
    document.add_paragraph("Drivers will use the Old Mill Road crossing.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_is_translated_in_place() -> None:
    import docx

    source = build_docx()
    result = translated(source, "report.docx")
    assert (result.kind, result.filename, result.pages) == ("docx", "report.docx", None)
    before, after = docx.Document(io.BytesIO(source)), docx.Document(io.BytesIO(result.data))
    assert len(after.paragraphs) == len(before.paragraphs)
    for old, new in zip(before.paragraphs, after.paragraphs, strict=True):
        assert new.style.name == old.style.name
        assert new.text == flip(old.text)
    mixed = after.paragraphs[1]
    assert mixed.runs[0].text == flip("The bridge closes in March for fourteen months.")
    assert mixed.runs[0].bold and all(run.text == "" for run in mixed.runs[1:])
    assert len(after.tables) == 1
    old_table, new_table = before.tables[0], after.tables[0]
    assert (len(new_table.rows), len(new_table.columns)) == (2, 3)
    for old_row, new_row in zip(old_table.rows, new_table.rows, strict=True):
        for old_cell, new_cell in zip(old_row.cells, new_row.cells, strict=True):
            assert [p.text for p in new_cell.paragraphs] == [
                flip(p.text) for p in old_cell.paragraphs
            ]
    section = after.sections[0]
    assert section.header.paragraphs[0].text == flip("Quarterly report")
    assert section.footer.paragraphs[0].text == flip("Confidential draft")
    assert flip("Harbor bridge repairs") in result.text.split("\n\n")
    assert extract_text(result.data, "report.docx") == result.text


# -- PDF -----------------------------------------------------------------------------------------

PDF_PAGES = [
    [
        "Harbor City report",
        "Harbor City will close the Kessler Bridge for fourteen months starting in March, the "
        "transport department announced. The bridge carries about sixty thousand vehicles a "
        "day across the river, and engineers found corrosion in its steel cables.",
        "Drivers will be sent to the Old Mill Road crossing.",
    ],
    [
        "Costs and funding",
        "The repair will cost an estimated four hundred million, paid mostly by a federal "
        "grant. The café owners near the bridge expect fewer customers; a naïve estimate "
        "puts their losses at one fifth of their income.",
    ],
    ["Next steps", "Public meetings on the closure will be held next month."],
]


def build_pdf(pages: list[list[str]]) -> bytes:
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story: list[Any] = []
    for page in pages:
        story.append(Paragraph(page[0], styles["Heading1"]))
        story += [Paragraph(text, styles["BodyText"]) for text in page[1:]]
        story.append(PageBreak())
    out = io.BytesIO()
    SimpleDocTemplate(out).build(story[:-1])
    return out.getvalue()


def pdf_page_texts(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [normal(page.extract_text()) for page in PdfReader(io.BytesIO(data)).pages]


def test_pdf_is_translated_page_for_page() -> None:
    source = build_pdf(PDF_PAGES)
    assert extract_text(source, "report.pdf").split("\n\n") == [p for pg in PDF_PAGES for p in pg]
    result = translated(source, "report.pdf")
    assert (result.kind, result.filename, result.pages) == ("pdf", "report.pdf", 3)
    assert pdf_page_texts(result.data) == [normal(flip(" ".join(page))) for page in PDF_PAGES]
    assert result.text.split("\n\n") == [flip(p) for page in PDF_PAGES for p in page]
    assert result.notes == [KEPT_NOTE]
    assert "éfac" in result.text and "evïan" in result.text


def draw_text(lines: list[str]) -> Image.Image:
    fonts = glob.glob("/usr/share/fonts/**/DejaVuSans.ttf", recursive=True)
    if not fonts:
        import reportlab

        fonts = [str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf")]
    font = ImageFont.truetype(fonts[0], 32)
    width = max(int(font.getlength(line)) for line in lines) + 80
    image = Image.new("RGB", (width, 58 * len(lines) + 80), "white")
    pen = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        pen.text((40, 40 + index * 58), line, font=font, fill="black")
    return image


LEFT_OUT = "has no text layer (a scan?) and was left out"
SCANS = [["The quick brown fox jumps", "over the lazy dog."], ["Thank you for your order!"]]


def build_scanned_pdf(pages: list[list[str]], *, text_first_page: bool = False) -> bytes:
    """Image-only pages (no text layer), or a first page of real text and then scans."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out)
    if text_first_page:
        pdf.setPageSize((400, 200))
        pdf.drawString(40, 100, "A page with a real text layer.")
        pdf.showPage()
    for lines in pages:
        picture = draw_text(lines)
        width, height = picture.width * 72 / 150, picture.height * 72 / 150
        pdf.setPageSize((width, height))
        pdf.drawImage(ImageReader(picture), 0, 0, width, height)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


@pytest.fixture(scope="module")
def tesseract_reader() -> Any:
    return make_reader("tesseract", "eng")


def test_a_scanned_pdf_is_read_by_ocr(tesseract_reader: Any) -> None:
    source = build_scanned_pdf(SCANS)
    result = translated(source, "scan.pdf", ocr=tesseract_reader)
    assert result.pages == 2
    assert pdf_page_texts(result.data) == [normal(flip(" ".join(page))) for page in SCANS]
    assert normal(extract_text(source, "scan.pdf", ocr=tesseract_reader)) == normal(
        " ".join(" ".join(page) for page in SCANS)
    )


def test_scanned_pages_without_ocr_are_left_out_with_a_note(tesseract_reader: Any) -> None:
    source = build_scanned_pdf(SCANS, text_first_page=True)
    result = translated(source, "mixed.pdf", ocr_mode="never", ocr=tesseract_reader)
    assert pdf_page_texts(result.data) == [flip("A page with a real text layer."), "", ""]
    assert f"page 2 {LEFT_OUT}: OCR is off" in result.notes
    no_reader = translated(source, "mixed.pdf")
    assert f"page 3 {LEFT_OUT}: no OCR engine was given" in no_reader.notes
    always = translated(source, "mixed.pdf", ocr_mode="always", ocr=tesseract_reader)
    assert always.pages == 3
    assert pdf_page_texts(always.data)[2] == flip("Thank you for your order!")
    with pytest.raises(InputError, match="no text to translate: it may be a scan"):
        translate_document(build_scanned_pdf(SCANS), "scan.pdf", flip_all, ocr_mode="never")


def flip_all(segments: list[str]) -> list[str]:
    return [flip(s) for s in segments]


# -- progress ------------------------------------------------------------------------------------


def translated_reporting(
    data: bytes, filename: str, **kwargs: Any
) -> tuple[TranslatedDocument, list[tuple[float, str | None]]]:
    seen: list[tuple[float, str | None]] = []
    result = translated(data, filename, progress=lambda p, d: seen.append((p, d)), **kwargs)
    percents = [percent for percent, _ in seen]
    assert percents == sorted(percents) and all(0 <= x < 100 for x in percents), seen
    return result, seen


def test_a_pdf_reports_its_pages_then_characters_then_writing() -> None:
    result, seen = translated_reporting(build_pdf(PDF_PAGES), "report.pdf")
    assert pdf_page_texts(result.data) == [normal(flip(" ".join(page))) for page in PDF_PAGES]
    size = sum(len(p) for page in PDF_PAGES for p in page)
    assert [details for _, details in seen] == [
        "page 1 of 3",
        "page 2 of 3",
        "page 3 of 3",
        f"translated 0 of {size:,} characters",
        f"translated {size:,} of {size:,} characters",
        "writing page 1 of 3",
        "writing page 2 of 3",
        "writing page 3 of 3",
    ]
    # Text layers up to 5%, no OCR, the translation up to 95%, writing up to 99%.
    expected = [0, 5 / 3, 10 / 3, 5, 95, 95, 95 + 4 / 3, 95 + 8 / 3]
    assert [percent for percent, _ in seen] == pytest.approx(expected)


def test_scanned_pages_report_their_ocr(tesseract_reader: Any) -> None:
    source = build_scanned_pdf(SCANS, text_first_page=True)
    result, seen = translated_reporting(source, "mixed.pdf", ocr=tesseract_reader)
    assert pdf_page_texts(result.data)[1:] == [normal(flip(" ".join(page))) for page in SCANS]
    details = [details or "" for _, details in seen]
    assert details[:5] == [
        "page 1 of 3",
        "page 2 of 3",
        "page 3 of 3",
        "page 2 of 3 (OCR)",
        "page 3 of 3 (OCR)",
    ]
    # OCR of two pages in three takes two thirds of its 55 points, after the 5 of text layers.
    scans_end = 5 + 55 * 2 / 3
    assert [percent for percent, _ in seen[:6]] == pytest.approx(
        [0, 5 / 3, 10 / 3, 5, 5 + 55 / 3, scans_end]
    )
    assert re.fullmatch(r"translated 0 of [\d,]+ characters", details[5])
    assert re.fullmatch(r"translated ([\d,]+) of \1 characters", details[6])
    assert seen[6][0] == 95 and details[7:] == [f"writing page {n} of 3" for n in (1, 2, 3)]


# -- plain text ----------------------------------------------------------------------------------

PLAIN = (
    "  Notice to residents\n"
    "\n"
    "Harbor City will close the Kessler Bridge for fourteen months starting in\n"
    "March, the transport department announced on Tuesday morning.\n"
    "\n\n"
    "City Hall\n"
    "12 Main Street\n"
    "Harbor City\n"
    "\n"
    "2024-03-01\n"
)
PLAIN_EXPECTED = (
    f"  {flip('Notice to residents')}\n"
    "\n"
    + flip(
        "Harbor City will close the Kessler Bridge for fourteen months starting in March, "
        "the transport department announced on Tuesday morning."
    )
    + "\n"
    "\n\n"
    f"{flip('City Hall')}\n"
    f"12 {flip('Main Street')}\n"
    f"{flip('Harbor City')}\n"
    "\n"
    "2024-03-01\n"
)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_plain_text_keeps_its_paragraphs_and_line_endings(newline: str) -> None:
    source = PLAIN.replace("\n", newline).encode("utf-8")
    result = translated(source, "notice.txt")
    assert result.data.decode("utf-8") == PLAIN_EXPECTED.replace("\n", newline)
    assert (result.kind, result.filename) == ("txt", "notice.txt")
    assert result.text == PLAIN_EXPECTED
    assert extract_text(source, "notice.txt") == PLAIN


def test_plain_text_with_a_bom_keeps_it() -> None:
    result = translated(b"\xef\xbb\xbfHello there\n", "hello.txt")
    assert result.data == b"\xef\xbb\xbf" + flip("Hello there\n").encode("utf-8")


# -- Markdown ------------------------------------------------------------------------------------

MARKDOWN = """---
title: Bridge notice
---
# Harbor bridge closes #

The **Kessler Bridge** closes in *March* for
fourteen months; run `make detour` or see [the detour map](https://example.com/map?a=1 "Map").
![A photo of the bridge](img/bridge.png) and <https://example.org/faq>, https://example.net/x.

```python
print("do not translate me")
```

    indented code stays

- First point to check
- [ ] Second task to do
1. Numbered item here

> Quoted words from the mayor

| Column one | Column two |
|------------|-----------:|
| Steel cables | 410 |

Term | Value
-----|------
Steel | 410

<div class="note">Raw HTML block stays</div>

See [the report][report] for details.

<em>Emphasised</em> words start this line.

[report]: https://example.com/report.pdf
"""

F = flip
MARKDOWN_EXPECTED = f"""---
title: Bridge notice
---
# {F("Harbor bridge closes")} #

{F("The")} **{F("Kessler Bridge")}** {F("closes in")} *{F("March")}* {F("for fourteen months; run")} `make detour` {F("or see")} [{F("the detour map")}](https://example.com/map?a=1 "Map"). ![A photo of the bridge](img/bridge.png) {F("and")} <https://example.org/faq>, https://example.net/x.

```python
print("do not translate me")
```

    indented code stays

- {F("First point to check")}
- [ ] {F("Second task to do")}
1. {F("Numbered item here")}

> {F("Quoted words from the mayor")}

| {F("Column one")} | {F("Column two")} |
|------------|-----------:|
| {F("Steel cables")} | 410 |

{F("Term")} | {F("Value")}
-----|------
{F("Steel")} | 410

<div class="note">Raw HTML block stays</div>

{F("See")} [{F("the report")}][report] {F("for details.")}

<em>{F("Emphasised")}</em> {F("words start this line.")}

[report]: https://example.com/report.pdf
"""  # noqa: E501


def test_markdown_keeps_its_syntax_code_and_urls() -> None:
    result = translated(MARKDOWN.encode("utf-8"), "notice.md")
    assert (result.kind, result.filename) == ("md", "notice.md")
    assert result.data.decode("utf-8") == MARKDOWN_EXPECTED
    assert result.text == MARKDOWN_EXPECTED


# -- HTML ----------------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Bridge notice</title>
<style>p { color: red; } /* keep this */</style>
<script>var message = "do not translate";</script>
</head>
<body class="page">
<!-- an editor's comment -->
<h1 id="top">Harbor bridge closes</h1>
<p>The <b>Kessler Bridge</b> closes in March; see the
<a href="https://example.com/map?a=1&amp;b=2" title="Map">detour map</a>.</p>
<pre>preformatted stays</pre>
<p>Run <code>make detour</code> first.</p>
<img src="bridge.png" alt="A photo">
</body>
</html>
"""


def tags(html: bytes) -> list[tuple[str, dict[str, Any]]]:
    from bs4 import BeautifulSoup

    return [(t.name, dict(t.attrs)) for t in BeautifulSoup(html, "html.parser").find_all(True)]


def test_html_keeps_markup_attributes_code_and_scripts() -> None:
    from bs4 import BeautifulSoup

    source = HTML.encode("utf-8")
    result = translated(source, "notice.html")
    assert (result.kind, result.filename) == ("html", "notice.html")
    assert tags(result.data) == tags(source)
    out = result.data.decode("utf-8")
    for kept in [
        "<style>p { color: red; } /* keep this */</style>",
        '<script>var message = "do not translate";</script>',
        "<!-- an editor's comment -->",
        "<pre>preformatted stays</pre>",
        "<code>make detour</code>",
        'href="https://example.com/map?a=1&amp;b=2"',
        'alt="A photo"',
        "<!DOCTYPE html>",
    ]:
        assert kept in out
    soup = BeautifulSoup(result.data, "html.parser")
    assert soup.title is not None and soup.title.string == flip("Bridge notice")
    assert f"<b>{flip('Kessler Bridge')}</b>" in out
    assert f">{flip('detour map')}</a>" in out
    assert result.text.split("\n\n") == [
        flip("Bridge notice"),
        flip("Harbor bridge closes"),
        flip("The Kessler Bridge closes in March; see the detour map."),
        "preformatted stays",
        flip("Run ") + "make detour" + flip(" first."),
    ]
    assert extract_text(source, "notice.html").split("\n\n")[2] == (
        "The Kessler Bridge closes in March; see the detour map."
    )


# -- kinds and bad documents ---------------------------------------------------------------------


def test_document_kind_by_suffix_then_by_content() -> None:
    assert document_kind("a.PDF", b"") == "pdf"
    assert document_kind("notes.markdown", b"# hi") == "md"
    assert document_kind("page.htm", b"") == "html"
    assert document_kind("upload", build_pdf([["Title", "Body text here."]])) == "pdf"
    assert document_kind("upload.bin", build_docx()) == "docx"
    assert document_kind("upload", b"  <!DOCTYPE HTML><html><body>x</body></html>") == "html"
    assert document_kind("upload", b"plain words") == "txt"


def test_output_names_follow_the_kind() -> None:
    assert translated(b"Hello there", "folder/upload").filename == "upload.txt"
    assert translated(build_docx(), "scan.bin").filename == "scan.docx"


def encrypted_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(build_pdf([["Secret", "Words here."]]))))
    writer.encrypt("open-sesame")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zip_without_word() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hi")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        ("encrypted", "secret.pdf", "the PDF is encrypted: remove its password"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog", "broken.pdf", "damaged PDF"),
        (b"PK\x03\x04" + bytes(range(256)) * 4, "broken.docx", "not a readable .docx"),
        ("zip", "archive.docx", "no word/document.xml"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old.docx", "legacy .doc"),
        (b"", "empty.txt", "is empty (0 bytes)"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "program.xyz", "not a document this worker"),
        (b"words", "old.doc", "save it as .docx"),
        (b"%PDF-1.4\n%%EOF\n", "named.docx", "it is a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "page.html", "is not HTML"),
        (b"caf\xe9 cr\xe8me", "latin1.txt", "is not UTF-8 text"),
        (b" \n\n\t \n", "blank.md", "has no text to translate"),
        (b"12 345\n", "numbers.txt", "has no text to translate"),
    ],
    ids=[
        "encrypted-pdf",
        "corrupt-pdf",
        "corrupt-docx",
        "zip-not-docx",
        "ole",
        "empty",
        "unknown",
        "legacy-doc",
        "pdf-named-docx",
        "png-named-html",
        "not-utf8",
        "blank",
        "numbers-only",
    ],
)
def test_bad_documents_raise_input_error(data: bytes | str, filename: str, reason: str) -> None:
    if data == "encrypted":
        data = encrypted_pdf()
    elif data == "zip":
        data = zip_without_word()
    assert isinstance(data, bytes)
    with pytest.raises(InputError) as caught:
        translate_document(data, filename, flip_all)
    assert reason in str(caught.value)


def test_bad_ocr_mode_and_bad_translators() -> None:
    with pytest.raises(InputError, match="ocr='sometimes' is not valid"):
        translate_document(b"Hello", "a.txt", flip_all, ocr_mode="sometimes")
    with pytest.raises(RuntimeError, match="translate returned 0 segments for 1"):
        translate_document(b"Hello", "a.txt", lambda segments: [])


@pytest.mark.parametrize(
    "module",
    [
        "documents",
        "documents_html",
        "documents_office",
        "documents_pdf",
        "documents_text",
        "ocr",
        "ocr_engines",
        "pdf_pages",
    ],
)
def test_public_names_exist(module: str) -> None:
    found = importlib.import_module(f"hivescribe.backends.{module}")
    assert found.__all__ and all(hasattr(found, name) for name in found.__all__)
