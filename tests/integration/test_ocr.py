"""OCR: tesseract and rapidocr read pictures of known text exactly (drawn here with a TrueType
font), scanned PDFs page by page (drawn whole by pdftoppm, or their embedded images), boxes,
and every kind of bad input fails the item for good with a reason. A PDF or TIFF of several
pages reports each page as progress; a single picture reports none."""

from __future__ import annotations

import glob
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

from hivescribe.backends import BackendOptions, Failure, Success, WorkItem, ocr, pdf_pages
from hivescribe.backends.ocr import OCRBackend, RapidOCRBackend, TesseractOCR, make_reader

FONT_GLOBS = ("/usr/share/fonts/**/DejaVuSans.ttf", "/usr/local/share/fonts/**/DejaVuSans.ttf")

# Texts each engine must read character for character.
TEXTS = {
    "pangram": ["The quick brown fox jumps", "over the lazy dog."],
    "invoice": ["Invoice 2024-117", "Total due: 1,250.00 EUR", "Thank you for your order!"],
    "letter": ["Dear Ms. Okafor,", "Your parcel left Lyon on", "Monday, 3 March."],
}
SPANISH = ["El niño comió paella", "en la montaña."]


def font_file() -> str:
    """DejaVu Sans (Debian: fonts-dejavu-core), else the Vera Sans that reportlab ships."""
    for pattern in FONT_GLOBS:
        found = sorted(glob.glob(pattern, recursive=True))
        if found:
            return found[0]
    import reportlab

    return str(Path(reportlab.__file__).parent / "fonts" / "Vera.ttf")


def draw_text(lines: list[str], *, size: int = 32, margin: int = 40) -> Image.Image:
    """Black text on white, one line per entry, 1.8 line heights apart."""
    font = ImageFont.truetype(font_file(), size)
    width = max(int(font.getlength(line)) for line in lines) + 2 * margin
    step = int(size * 1.8)
    image = Image.new("RGB", (width, step * len(lines) + 2 * margin), "white")
    pen = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        pen.text((margin, margin + index * step), line, font=font, fill="black")
    return image


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def scanned_pdf(pages: list[Image.Image], *, password: str | None = None) -> bytes:
    """An image-only PDF: each picture fills a page at 150 dpi, with no text layer."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out)
    for picture in pages:
        width, height = picture.width * 72 / 150, picture.height * 72 / 150
        pdf.setPageSize((width, height))
        pdf.drawImage(ImageReader(picture), 0, 0, width, height)
        pdf.showPage()
    pdf.save()
    if password is None:
        return out.getvalue()
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(out.getvalue())))
    writer.encrypt(password)
    locked = io.BytesIO()
    writer.write(locked)
    return locked.getvalue()


def normal(text: str) -> str:
    return " ".join(text.split())


def item(data: bytes | None, filename: str = "scan.png", **params: Any) -> WorkItem:
    return WorkItem(
        item_id=1,
        token="t",
        task_type="ocr",
        item_key=filename,
        dataset="d",
        shard="s",
        params=params,
        data=data,
        filename=filename,
    )


def recording(work: WorkItem) -> list[tuple[float, str | None]]:
    """What the item reports, as the worker would hear it."""
    seen: list[tuple[float, str | None]] = []
    work.on_progress = lambda percent, details: seen.append((percent, details))
    return seen


def run(backend: OCRBackend, work: WorkItem) -> Success | Failure:
    try:
        backend.prepare(work)
    except Exception as exc:  # the worker turns a prepare error into the item's Failure
        from hivescribe.backends import InputError

        assert isinstance(exc, InputError), exc
        return Failure(f"bad input: {exc}", permanent=True)
    [outcome] = backend.process_batch([work])
    return outcome


def succeeded(outcome: Success | Failure) -> Success:
    assert isinstance(outcome, Success), outcome
    return outcome


def failed(outcome: Success | Failure) -> str:
    assert isinstance(outcome, Failure) and outcome.permanent, outcome
    assert outcome.error.startswith("bad input: "), outcome.error
    return outcome.error


@pytest.fixture(scope="module")
def tesseract() -> TesseractOCR:
    backend = TesseractOCR(BackendOptions(model="tesseract"))
    backend.load()
    return backend


@pytest.fixture(scope="module")
def rapid() -> RapidOCRBackend:
    backend = RapidOCRBackend(BackendOptions(model="rapidocr"))
    backend.load()
    return backend


@pytest.fixture(params=["tesseract", "rapid"])
def backend(request: pytest.FixtureRequest) -> OCRBackend:
    found: OCRBackend = request.getfixturevalue(request.param)
    return found


# -- reading known text --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_reads_known_text_exactly(backend: OCRBackend, name: str) -> None:
    lines = TEXTS[name]
    work = item(encode(draw_text(lines)))
    seen = recording(work)
    result = succeeded(run(backend, work))
    assert normal(result.text or "") == normal(" ".join(lines))
    assert seen == []  # one picture: nothing to count, so no made-up percent
    assert result.model == backend.engine_name
    assert result.output["engine"] == backend.engine_name
    assert result.output["language"] == "eng"
    assert result.output["pages"] == 1
    assert result.output["lines"] == len(lines)
    assert "boxes" not in result.output
    assert result.quality_score is not None and 0.5 < result.quality_score <= 1


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF", "WEBP", "BMP"])
def test_reads_other_image_formats(tesseract: TesseractOCR, fmt: str) -> None:
    lines = TEXTS["invoice"]
    data = encode(draw_text(lines), fmt)
    result = succeeded(run(tesseract, item(data, f"scan.{fmt.lower()}")))
    assert normal(result.text or "") == normal(" ".join(lines))


def test_reads_every_page_of_a_multipage_tiff(tesseract: TesseractOCR) -> None:
    first, second = draw_text(TEXTS["pangram"]), draw_text(TEXTS["letter"])
    out = io.BytesIO()
    first.save(out, "TIFF", save_all=True, append_images=[second], compression="tiff_deflate")
    work = item(out.getvalue(), "fax.tiff", boxes=True)
    seen = recording(work)
    result = succeeded(run(tesseract, work))
    assert seen == [(0, "page 1 of 2"), (50, "page 2 of 2")]
    assert result.output["pages"] == result.output["image_pages"] == 2
    assert normal(result.text or "") == normal(" ".join(TEXTS["pangram"] + TEXTS["letter"]))
    assert {b["page"] for b in result.output["boxes"]} == {1, 2}
    first_only = item(out.getvalue(), "fax.tiff", pages=1)
    seen = recording(first_only)
    one = succeeded(run(tesseract, first_only))
    assert normal(one.text or "") == normal(" ".join(TEXTS["pangram"]))
    assert seen == []  # one page read


def test_reads_spanish_with_accents(backend: OCRBackend) -> None:
    result = succeeded(run(backend, item(encode(draw_text(SPANISH)), language="spa")))
    assert normal(result.text or "") == normal(" ".join(SPANISH))
    assert result.output["language"] == "spa"


def test_boxes_give_each_line_in_reading_order(backend: OCRBackend) -> None:
    lines = TEXTS["invoice"]
    image = draw_text(lines)
    result = succeeded(run(backend, item(encode(image), boxes=True)))
    boxes = result.output["boxes"]
    assert [b["text"] for b in boxes] == lines
    tops = [b["box"][1] for b in boxes]
    assert tops == sorted(tops)
    for entry in boxes:
        x0, y0, x1, y1 = entry["box"]
        assert 0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height
        assert 30 <= x0 <= 50  # the text starts at the 40-pixel margin
        assert 0.5 < entry["confidence"] <= 1
        assert entry["page"] == 1


def test_tesseract_page_segmentation_mode(tesseract: TesseractOCR) -> None:
    line = TEXTS["pangram"][0]
    result = succeeded(run(tesseract, item(encode(draw_text([line])), psm=7)))
    assert normal(result.text or "") == line


# -- scanned PDFs --------------------------------------------------------------------------------


@pytest.fixture(params=["rendered", "embedded images"])
def pictures(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Read PDFs both ways: drawn by pdftoppm, and from their embedded images with pypdf."""
    if request.param == "rendered" and not pdf_pages.has_renderer():
        pytest.fail("pdftoppm is not installed: apt-get install poppler-utils", pytrace=False)
    if request.param == "embedded images":
        monkeypatch.setattr(pdf_pages, "has_renderer", lambda: False)
    yield request.param


@pytest.mark.parametrize("engine", ["tesseract", pytest.param("rapid", marks=pytest.mark.slow)])
def test_a_scanned_pdf_is_read_page_by_page(
    request: pytest.FixtureRequest, engine: str, pictures: str
) -> None:
    backend: OCRBackend = request.getfixturevalue(engine)
    names = ["pangram", "invoice", "letter"]
    data = scanned_pdf([draw_text(TEXTS[name]) for name in names])
    work = item(data, "scan.pdf", boxes=True)
    seen = recording(work)
    result = succeeded(run(backend, work))
    assert [details for _, details in seen] == ["page 1 of 3", "page 2 of 3", "page 3 of 3"]
    assert [percent for percent, _ in seen] == pytest.approx([0, 100 / 3, 200 / 3])
    assert result.output["pdf_pictures"] == pictures
    assert result.output["pages"] == result.output["pdf_pages"] == 3
    expected = [" ".join(TEXTS[name]) for name in names]
    assert normal(result.text or "") == normal(" ".join(expected))
    boxes = result.output["boxes"]
    for number, text in enumerate(expected, start=1):
        assert " ".join(b["text"] for b in boxes if b["page"] == number) == text


def test_the_pages_parameter_reads_the_first_pages(tesseract: TesseractOCR) -> None:
    data = scanned_pdf([draw_text(TEXTS["pangram"]), draw_text(TEXTS["invoice"])])
    result = succeeded(run(tesseract, item(data, "scan.pdf", pages=1)))
    assert normal(result.text or "") == normal(" ".join(TEXTS["pangram"]))
    assert result.output["pages"] == 1 and result.output["pdf_pages"] == 2
    assert result.output["notes"] == ["read the first 1 of 2 pages (parameter pages)"]


def test_a_pdf_with_only_an_owner_password_is_read(tesseract: TesseractOCR) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(scanned_pdf([draw_text(["Hello"])]))))
    writer.encrypt("", "owner-only", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    result = succeeded(run(tesseract, item(out.getvalue(), "scan.pdf")))
    assert normal(result.text or "") == "Hello"


# -- the reader for document translation ---------------------------------------------------------


@pytest.mark.parametrize("engine", ["tesseract", "rapidocr"])
def test_make_reader_reads_a_picture(engine: str) -> None:
    read = make_reader(engine, "eng")
    assert normal(read(draw_text(TEXTS["letter"]))) == normal(" ".join(TEXTS["letter"]))
    assert make_reader(engine, None)  # the default language


def test_make_reader_refuses_what_it_cannot_read() -> None:
    from hivescribe.backends import InputError

    with pytest.raises(InputError, match="apt-get install tesseract-ocr-fra"):
        make_reader("tesseract", "fra")
    with pytest.raises(InputError, match="unknown OCR engine 'easyocr'"):
        make_reader("easyocr", "eng")


def test_the_registry_serves_ocr_with_these_backends() -> None:
    from hivescribe.backends import backend_for, load_backend

    name, options = backend_for("ocr", BackendOptions())
    assert (name, options.model) == ("ocr-tesseract", "tesseract")
    assert isinstance(load_backend(name, options), TesseractOCR)
    name, options = backend_for("ocr", BackendOptions(model="rapidocr"))
    assert isinstance(load_backend(name, options), RapidOCRBackend)


def test_engines_are_loaded_once() -> None:
    assert ocr.ocr_engines.get_engine("rapidocr") is ocr.ocr_engines.get_engine("rapidocr")


# -- bad input -----------------------------------------------------------------------------------


def huge_png() -> bytes:
    return encode(Image.new("1", (10_000, 6_000), 1))


def truncated_png() -> bytes:
    return encode(draw_text(["cut short"]))[:300]


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (b"", "scan.png", "is empty"),
        (None, "scan.png", "only text"),
        (b"just some words, not a picture\n" * 3, "notes.txt", "not an image"),
        (
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
            "scan.png",
            "named like an image (.png) but is not one",
        ),
        ("truncated", "scan.png", "truncated or corrupt PNG"),
        ("huge", "scan.png", "megapixels), over this worker's limit"),
        ("encrypted", "scan.pdf", "the PDF is encrypted: remove its password"),
        (b"%PDF-1.4\n1 0 obj garbage", "scan.pdf", "damaged PDF"),
        (b"not a pdf at all", "scan.pdf", "is not a PDF"),
    ],
    ids=[
        "empty",
        "no-bytes",
        "text",
        "png-garbage",
        "truncated-png",
        "too-large",
        "encrypted-pdf",
        "corrupt-pdf",
        "pdf-named-text",
    ],
)
def test_bad_input_fails_for_good(
    tesseract: TesseractOCR, data: bytes | str | None, filename: str, reason: str
) -> None:
    if data == "truncated":
        data = truncated_png()
    elif data == "huge":
        data = huge_png()
    elif data == "encrypted":
        data = scanned_pdf([draw_text(["secret"])], password="s3cret")
    assert not isinstance(data, str)
    assert reason in failed(run(tesseract, item(data, filename)))


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"language": "fra"}, "apt-get install tesseract-ocr-fra"),
        ({"language": "eng+chi_sim"}, "apt-get install tesseract-ocr-chi-sim"),
        ({"language": "en glish"}, "expected tesseract language codes"),
        ({"language": 7}, "expected tesseract language codes"),
        ({"boxes": "yes"}, "boxes='yes' is not valid: expected true or false"),
        ({"psm": 0}, "psm=0 is not valid"),
        ({"psm": "6"}, "psm='6' is not valid"),
        ({"pages": 0}, "pages=0 is not valid"),
    ],
)
def test_bad_params_fail_for_good(
    tesseract: TesseractOCR, params: dict[str, Any], reason: str
) -> None:
    error = failed(run(tesseract, item(encode(draw_text(["Hello"])), **params)))
    assert reason in error
    if "apt-get" in error:
        assert "installed: eng, spa" in error


def test_rapidocr_names_the_languages_it_reads(rapid: RapidOCRBackend) -> None:
    error = failed(run(rapid, item(encode(draw_text(["Hello"])), language="ara")))
    assert "does not read ara" in error and "spa" in error
