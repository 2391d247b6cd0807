"""ocr-tesseract and ocr-rapidocr: the text in images and PDFs, for the ``ocr`` task type.

Input: an image file (PNG, JPEG, TIFF, WebP, BMP, GIF...; checked by images.py, with its size
limits) or a PDF. A PDF's pages are drawn whole by poppler's ``pdftoppm`` when it is installed
(so text drawn as vectors is read too), else the images embedded in each page (a scan) are
extracted with pypdf and read in turn.

Job parameters (``item.params``): ``language`` (tesseract codes, default "eng"; "spa",
"eng+spa"...; rapidocr's one bundled model reads Latin-script languages, Chinese and Japanese),
``boxes`` (false; true adds each line with its box and confidence), ``psm`` (tesseract's page
segmentation mode, 1 and 3 to 13; rapidocr ignores it) and ``pages`` (read at most this many
pages of a PDF).

Result: the text (lines; a blank line between paragraphs and between pages), with the output
``{"engine", "language", "pages", "lines", "boxes"?: [{text, box: [x0, y0, x1, y1],
confidence, page}]}``; a PDF adds ``pdf_pages`` (its page count), ``pdf_pictures`` ("rendered"
or "embedded images") and ``notes`` where a page was not fully read. Each page of a multi-page
TIFF is read too (``image_pages`` says how many it has). Box coordinates are pixels
of the picture read: the image, the rendered page, or the page's embedded image.

Progress: a PDF or TIFF of several pages reports each page as its reading starts ("page 3 of
12" at 2/12 of the way); a single picture reports nothing, as there is nothing to count.

:func:`make_reader` gives document translation the same engines, to read scanned pages.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from PIL import Image

from hivescribe.backends import ocr_engines, pdf_pages
from hivescribe.backends.base import Backend, BackendOptions, InputError, Outcome, Success, WorkItem
from hivescribe.backends.images import MAX_PIXELS, DecodedImage, decode_image, to_rgb
from hivescribe.backends.ocr_engines import DEFAULT_LANGUAGE, PSM_MODES, Engine, Line

__all__ = ["OCRBackend", "OCRParams", "RapidOCRBackend", "TesseractOCR", "make_reader"]


# (page number, the pages to read, a picture of that page); a page may have several pictures.
Picture = tuple[int, int, Image.Image]


@dataclass(frozen=True)
class OCRParams:
    language: str = DEFAULT_LANGUAGE
    boxes: bool = False
    psm: int | None = None
    pages: int | None = None


@dataclass
class PDFInput:
    """A PDF opened in ``prepare``; its pages are drawn one at a time, when read."""

    reader: Any  # pypdf.PdfReader
    data: bytes


def _bad(name: str, value: Any, expected: str) -> NoReturn:
    raise InputError(f"parameter {name}={value!r} is not valid: expected {expected}")


def parse_params(params: dict[str, Any], engine: Engine) -> OCRParams:
    """The item's OCR parameters, checked; InputError says which one to fix and how."""
    language = params.get("language") or DEFAULT_LANGUAGE
    language = engine.check_language(language)
    boxes = params.get("boxes", False)
    if not isinstance(boxes, bool):
        _bad("boxes", boxes, "true or false")
    psm = params.get("psm")
    if psm is not None and (isinstance(psm, bool) or psm not in PSM_MODES):
        _bad("psm", psm, f"a tesseract page segmentation mode: {', '.join(map(str, PSM_MODES))}")
    pages = params.get("pages")
    if pages is not None and (isinstance(pages, bool) or not isinstance(pages, int) or pages < 1):
        _bad("pages", pages, "a whole number of pages, at least 1")
    return OCRParams(language, boxes, psm, pages)


class OCRBackend(Backend):
    """One OCR engine serving the ``ocr`` task; items are read one at a time (the engines use
    every core for one picture)."""

    task_types = ("ocr",)
    engine_name = "tesseract"

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self._engine: Engine | None = None

    @property
    def models(self) -> list[str]:
        return [self.engine_name]

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = ocr_engines.get_engine(self.engine_name)
        return self._engine

    def load(self) -> None:
        """Start the engine before the first batch: a missing program fails the worker, not
        an item."""
        _ = self.engine

    def prepare(self, item: WorkItem) -> None:
        data, filename = item.data, item.filename
        if data is None:
            raise InputError("OCR needs an image or PDF file; this item has only text")
        if pdf_pages.is_pdf(data) or (filename or "").lower().endswith(".pdf"):
            item.decoded = PDFInput(pdf_pages.open_pdf(data, filename), data)
        else:
            item.decoded = decode_image(data, filename=filename)

    def process_one(self, item: WorkItem) -> Outcome:
        params = parse_params(item.params, self.engine)
        if not isinstance(item.decoded, DecodedImage | PDFInput):
            self.prepare(item)
        decoded = item.decoded
        output: dict[str, Any] = {"engine": self.engine_name, "language": params.language}
        notes: list[str] = []
        if isinstance(decoded, PDFInput):
            pictures = self._pdf_pictures(decoded, params, output, notes)
        else:
            pictures = _frames(decoded, params, output, notes)
        pages: dict[int, list[Line]] = {}
        boxes: list[dict[str, Any]] = []
        for number, count, picture in pictures:
            if count > 1 and number not in pages:
                item.report_progress(100 * (number - 1) / count, f"page {number} of {count}")
            lines = self.engine.read(picture, params.language, params.psm)
            page = pages.setdefault(number, [])
            page.extend(_after(page, lines))
            boxes += [
                {"text": x.text, "box": list(x.box), "confidence": x.confidence, "page": number}
                for x in lines
            ]
        texts = [ocr_engines.lines_to_text(lines) for lines in pages.values()]
        text = "\n\n".join(t for t in texts if t)
        every = [line for lines in pages.values() for line in lines]
        output.update(pages=len(pages), lines=len(every))
        if params.boxes:
            output["boxes"] = boxes
        if notes:
            output["notes"] = notes
        confidence = sum(x.confidence for x in every) / len(every) if every else None
        return Success(
            output,
            text=text,
            model=self.engine_name,
            quality_score=round(confidence, 4) if confidence is not None else None,
        )

    def _pdf_pictures(
        self, pdf: PDFInput, params: OCRParams, output: dict[str, Any], notes: list[str]
    ) -> Iterator[Picture]:
        """A picture for each page read: the drawn page, or its images."""
        total = len(pdf.reader.pages)
        count = min(total, params.pages or total)
        output["pdf_pages"] = total
        if count < total:
            notes.append(f"read the first {count} of {total} pages (parameter pages)")
        if pdf_pages.has_renderer():
            output["pdf_pictures"] = "rendered"
            return _rendered(pdf, count)
        output["pdf_pictures"] = "embedded images"
        return _embedded(pdf, count, notes)


def _frames(
    decoded: DecodedImage, params: OCRParams, output: dict[str, Any], notes: list[str]
) -> Iterator[Picture]:
    """An image's pages: each frame of a multi-page TIFF (a fax, a scanner's batch), else the
    one picture."""
    if decoded.format != "TIFF":
        yield 1, 1, decoded.image
        return
    with Image.open(io.BytesIO(decoded.data)) as tiff:
        total = int(getattr(tiff, "n_frames", 1))
        if total == 1:
            yield 1, 1, decoded.image
            return
        count = min(total, params.pages or total)
        output["image_pages"] = total
        if count < total:
            notes.append(f"read the first {count} of {total} pages (parameter pages)")
        for index in range(count):
            try:
                tiff.seek(index)
                if tiff.width * tiff.height > MAX_PIXELS:
                    raise InputError(
                        f"page {index + 1} of the TIFF is {tiff.width}x{tiff.height}, over this "
                        f"worker's limit of {MAX_PIXELS / 1e6:.1f} megapixels"
                    )
                frame = to_rgb(tiff)
            except (OSError, ValueError, SyntaxError) as exc:
                raise InputError(f"page {index + 1} of the TIFF is damaged: {exc}") from None
            yield index + 1, count, frame


def _rendered(pdf: PDFInput, count: int) -> Iterator[Picture]:
    with pdf_pages.PageRenderer(pdf.data) as renderer:
        for number in range(1, count + 1):
            yield number, count, renderer.render(pdf.reader.pages[number - 1], number)


def _embedded(pdf: PDFInput, count: int, notes: list[str]) -> Iterator[Picture]:
    for number in range(1, count + 1):
        images, problems = pdf_pages.page_images(pdf.reader.pages[number - 1])
        notes.extend(f"page {number}: {problem}" for problem in problems)
        if not images:
            notes.append(
                f"page {number} has no images to read; install poppler-utils (pdftoppm) to "
                "read text drawn on the page"
            )
        for image in images:
            yield number, count, image


def _after(before: list[Line], lines: list[Line]) -> list[Line]:
    """Lines of a page's next image: their paragraphs follow the previous image's."""
    if not before:
        return lines
    offset = before[-1].paragraph + 1
    return [Line(x.text, x.box, x.confidence, x.paragraph + offset) for x in lines]


class TesseractOCR(OCRBackend):
    engine_name = "tesseract"

    @classmethod
    def missing(cls) -> str | None:
        return None if shutil.which("tesseract") else "the tesseract program"


class RapidOCRBackend(OCRBackend):
    engine_name = "rapidocr"


def make_reader(engine: str, language: str | None = None) -> Callable[[Image.Image], str]:
    """A function that reads one picture's text with ``engine`` ("tesseract" or "rapidocr"),
    for document translation's scanned pages. The engine is loaded once per process; a
    language the engine cannot read raises InputError now, not page by page."""
    if engine not in ocr_engines.ENGINES:
        raise InputError(
            f"unknown OCR engine {engine!r}: expected one of {', '.join(ocr_engines.ENGINES)}"
        )
    loaded = ocr_engines.get_engine(engine)
    checked = loaded.check_language(language or DEFAULT_LANGUAGE)

    def read(image: Image.Image) -> str:
        return ocr_engines.lines_to_text(loaded.read(image.convert("RGB"), checked))

    return read
