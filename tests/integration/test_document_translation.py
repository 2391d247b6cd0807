"""Document translation end to end through the real backend with Apertium (English to
Spanish), documents built here: a DOCX with paragraphs and a table (python-docx), a multi-page
PDF (reportlab), and a scanned PDF (an image of text, no text layer) read by Tesseract first.
Each translated piece equals what the ``apertium eng-spa`` command prints for it. A long
document goes to Apertium in a few batches, with the same result as one call, and the item's
progress tells the pages and characters done."""

from __future__ import annotations

import glob
import io
import subprocess
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

from hivescribe.backends import BackendOptions, Failure, Outcome, Success, WorkItem
from hivescribe.backends.doc_translate import DocumentTranslator
from hivescribe.backends.documents_text import batches
from hivescribe.domain.inputs import MAX_INLINE_TEXT

PARAGRAPHS = [
    "The annual report of the city council.",
    "The city has three new schools, and the old bridge will close in March.",
    "Where is the station? The train leaves at nine.",
]
CELLS = [["Name", "Number of houses"], ["The north district", "Twelve red houses"]]
PAGES = [
    "The first page speaks about the weather. It is very cold in winter.",
    "The second page has the names of the new teachers.",
    "The last page is short.",
]
SCANNED = "The cat is on the table"


def apertium(text: str) -> str:
    done = subprocess.run(["apertium", "eng-spa"], input=text.encode(), capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def item(data: bytes | None, filename: str, **params: Any) -> WorkItem:
    return WorkItem(
        item_id=1,
        token="t",
        task_type="document-translation",
        item_key=f"reports/{filename}",
        dataset="d",
        shard="s",
        params={"source_language": "en", "target_language": "es", **params},
        data=data,
        filename=filename,
    )


def succeeded(outcome: Outcome) -> Success:
    assert isinstance(outcome, Success), outcome
    return outcome


@pytest.fixture(scope="module")
def backend() -> DocumentTranslator:
    translator = DocumentTranslator(BackendOptions())
    translator.load()
    return translator


def run(backend: DocumentTranslator, work: WorkItem) -> Outcome:
    backend.prepare(work)
    [outcome] = backend.process_batch([work])
    return outcome


Seen = list[tuple[float, str | None]]


def recording(work: WorkItem) -> Seen:
    """What the item reports, as the worker would hear it."""
    seen: Seen = []
    work.on_progress = lambda percent, details: seen.append((percent, details))
    return seen


def assert_rises(seen: Seen) -> None:
    percents = [percent for percent, _ in seen]
    assert percents == sorted(percents), seen
    assert all(0 <= percent < 100 for percent in percents), seen


# -- DOCX ------------------------------------------------------------------------------------


def build_docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("A short report", level=1)
    for text in PARAGRAPHS:
        document.add_paragraph(text)
    table = document.add_table(rows=len(CELLS), cols=len(CELLS[0]))
    for row, texts in zip(table.rows, CELLS, strict=True):
        for cell, text in zip(row.cells, texts, strict=True):
            cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_a_docx_keeps_its_paragraphs_and_table(backend: DocumentTranslator) -> None:
    import docx

    original = build_docx()
    result = succeeded(run(backend, item(original, "report.docx")))
    assert result.blob_name == "report.docx"
    assert result.blob is not None
    assert result.output["kind"] == "docx"
    assert (result.output["source_language"], result.output["target_language"]) == ("en", "es")
    before = docx.Document(io.BytesIO(original))
    after = docx.Document(io.BytesIO(result.blob))
    assert len(after.paragraphs) == len(before.paragraphs)
    body = [p.text for p in after.paragraphs]
    assert body == [apertium(p.text) for p in before.paragraphs]
    assert body[1:] == [apertium(text) for text in PARAGRAPHS]
    [table] = after.tables
    cells = [[cell.text for cell in row.cells] for row in table.rows]
    assert [len(row) for row in cells] == [len(row) for row in CELLS]
    assert cells == [[apertium(text) for text in row] for row in CELLS]
    assert result.text and apertium(PARAGRAPHS[1]) in result.text


# -- PDF -------------------------------------------------------------------------------------


def build_pdf(pages: list[str]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    for text in pages:
        pdf.setFont("Helvetica", 11)
        pdf.drawString(72, 760, text)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def pdf_pages_text(data: bytes) -> list[str]:
    import pypdf

    return [
        " ".join((page.extract_text() or "").split())
        for page in pypdf.PdfReader(io.BytesIO(data)).pages
    ]


def test_a_multi_page_pdf_keeps_its_page_count(backend: DocumentTranslator) -> None:
    work = item(build_pdf(PAGES), "minutes.pdf")
    seen = recording(work)
    result = succeeded(run(backend, work))
    assert result.blob_name == "minutes.pdf"
    assert result.output["kind"] == "pdf"
    assert result.output["pages"] == len(PAGES)
    assert result.blob is not None
    pages = pdf_pages_text(result.blob)
    assert len(pages) == len(PAGES)
    for page, text in zip(pages, PAGES, strict=True):
        assert page == " ".join(apertium(text).split())
    assert result.output["notes"]  # says that the layout is not kept
    assert_rises(seen)
    details = [details for _, details in seen]
    assert details[:3] == ["page 1 of 3", "page 2 of 3", "page 3 of 3"]
    assert details[-3:] == ["writing page 1 of 3", "writing page 2 of 3", "writing page 3 of 3"]
    size = sum(len(text) for text in PAGES)  # one line, one paragraph per page
    assert details[3:5] == [f"translated {n} of {size} characters" for n in (0, size)]


# -- a long document: batches --------------------------------------------------------------

SENTENCES = [
    "The city has three new schools.",
    "The old bridge will close in March.",
    "Where is the station?",
    "The train leaves at nine.",
    "It is very cold in winter.",
    "The teachers speak about the weather.",
    "The north district has twelve red houses.",
]
LONG = [" ".join(SENTENCES[(n + k) % len(SENTENCES)] for k in range(n % 4 + 3)) for n in range(48)]


def test_a_long_document_is_translated_in_batches_as_in_one_call(
    backend: DocumentTranslator,
) -> None:
    count = len(batches(LONG))
    assert 1 < count <= 10
    work = item(("\n\n".join(LONG) + "\n").encode(), "long.txt")
    seen = recording(work)
    result = succeeded(run(backend, work))
    at_once = backend.translator.translate(LONG, "en", "es")
    assert result.blob == ("\n\n".join(text.strip() for text in at_once) + "\n").encode()
    size = sum(len(text) for text in LONG)
    assert len(seen) == count + 1  # before each batch and after the last
    assert seen[0] == (0, f"translated 0 of {size:,} characters")
    assert seen[-1] == (95, f"translated {size:,} of {size:,} characters")
    assert_rises(seen)


def test_a_document_over_the_text_limit_is_refused(backend: DocumentTranslator) -> None:
    work = item(("word " * (MAX_INLINE_TEXT // 5 + 1)).encode(), "huge.txt")
    seen = recording(work)
    outcome = run(backend, work)
    assert isinstance(outcome, Failure) and outcome.permanent, outcome
    assert f"at most {MAX_INLINE_TEXT:,} per document" in outcome.error
    assert seen == []  # refused before any of it was translated


# -- a scanned PDF: OCR first ----------------------------------------------------------------


def scanned_pdf(text: str) -> bytes:
    fonts = sorted(glob.glob("/usr/share/fonts/**/DejaVuSans.ttf", recursive=True))
    font = ImageFont.truetype(fonts[0], 48) if fonts else ImageFont.load_default(size=48)
    image = Image.new("RGB", (1400, 300), "white")
    ImageDraw.Draw(image).text((60, 110), text, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=150)
    return out.getvalue()


@pytest.mark.parametrize("engine", ["tesseract", pytest.param("rapidocr", marks=pytest.mark.slow)])
def test_a_scanned_pdf_is_read_by_ocr_then_translated(
    backend: DocumentTranslator, engine: str
) -> None:
    data = scanned_pdf(SCANNED)
    assert pdf_pages_text(data) == [""]  # no text layer at all
    result = succeeded(run(backend, item(data, "scan.pdf", ocr_engine=engine)))
    assert result.output["pages"] == 1
    assert result.text == apertium(SCANNED)  # "El gato es en la mesa"
    assert result.blob is not None and pdf_pages_text(result.blob) == [apertium(SCANNED)]
    refused = run(backend, item(data, "scan.pdf", ocr="never"))  # nothing left to translate
    assert isinstance(refused, Failure) and refused.permanent and "OCR" in refused.error


# -- bad input -------------------------------------------------------------------------------


def encrypted_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("open-sesame")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("work", "says"),
    [
        (item(None, "inline.txt"), "not inline text"),
        (item(b"", "empty.pdf"), "empty"),
        (item(b"%PDF-1.7 this is not really a pdf", "broken.pdf"), "broken.pdf"),
        (item(b"PK\x03\x04 nothing", "broken.docx"), "not a readable .docx"),
        (item(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old", "old.doc"), "save it as .docx"),
        (item(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 wrapped", "locked.docx"), "remove the password"),
        (item(encrypted_pdf(), "secret.pdf"), "the PDF is encrypted: remove its password"),
        (item(b"text", "notes.txt", target_language="eng"), "source and target language are"),
        (item(b"text", "notes.txt", target_language="de"), "installed pairs"),
        (item(b"text", "notes.txt", ocr="sometimes"), "ocr"),
        (item(b"text", "notes.txt", ocr_language="klingon!"), "ocr_language"),
    ],
    ids=[
        "inline", "empty", "broken-pdf", "broken-docx", "legacy-doc", "encrypted-docx",
        "encrypted-pdf", "same", "no-pair",
        "ocr-mode", "ocr-language",
    ],
)  # fmt: skip
def test_unusable_documents_fail_for_good(
    backend: DocumentTranslator, work: WorkItem, says: str
) -> None:
    if work.data is None:
        work.text = "Inline text."
    outcome = run(backend, work)
    assert isinstance(outcome, Failure) and outcome.permanent, outcome
    assert outcome.error.startswith("bad input: ") and says in outcome.error, outcome


def test_a_text_file_is_a_document_too(backend: DocumentTranslator) -> None:
    text = "The first paragraph.\n\nThe second paragraph is here.\n"
    result = succeeded(run(backend, item(text.encode(), "notes.txt")))
    assert result.blob_name == "notes.txt"
    assert result.blob is not None
    assert result.blob.decode() == (
        f"{apertium('The first paragraph.')}\n\n{apertium('The second paragraph is here.')}\n"
    )
