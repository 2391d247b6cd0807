"""PDF inputs, shared by OCR and document translation: open a PDF or say plainly why it cannot
be read (empty, not a PDF, damaged, password-protected), and get each page's pictures.

Pictures come two ways. :func:`page_images` extracts the images embedded in a page with pypdf
(a scanned page is one such image); it needs nothing outside Python. A :class:`PageRenderer`
draws whole pages with poppler's ``pdftoppm`` (Debian: poppler-utils) where that is installed,
so text drawn as vectors is seen too. Both cap the pixel count, as images.py does for images.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from hivescribe.backends.base import InputError
from hivescribe.backends.images import MAX_BYTES, MAX_PIXELS, describe_bytes, to_rgb

__all__ = [
    "RENDER_DPI",
    "PageRenderer",
    "has_renderer",
    "is_pdf",
    "open_pdf",
    "page_images",
]

RENDER_DPI = 300  # tesseract reads best at about 300 dpi
RENDER_TIMEOUT_S = 120.0
ENCRYPTED = "the PDF is encrypted: remove its password and submit it again"


def is_pdf(data: bytes) -> bool:
    """PDF readers accept a header anywhere in the first kilobyte (some files start with junk)."""
    return b"%PDF-" in data[:1024]


def open_pdf(data: bytes | None, filename: str | None = None) -> Any:
    """A pypdf ``PdfReader`` over ``data``, or an InputError that says what is wrong with it.

    A PDF protected by an owner password only (printing or copying restrictions) opens with the
    empty user password, as every viewer does; one that needs a password to open is refused.
    """
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    name = repr(filename) if filename else "the input"
    if not data:
        raise InputError(f"{name} is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise InputError(
            f"{name} is {len(data):,} bytes, over this worker's limit of {MAX_BYTES:,}"
        )
    if not is_pdf(data):
        raise InputError(f"{name} is not a PDF: it is {describe_bytes(data)}")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError(ENCRYPTED)
        if len(reader.pages) == 0:
            raise InputError(f"{name} is a PDF with no pages")
    except (FileNotDecryptedError, NotImplementedError):
        raise InputError(ENCRYPTED) from None
    except InputError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise InputError(f"{name} is a damaged PDF that cannot be read: {exc}") from None
    return reader


def page_images(page: Any, *, max_pixels: int = MAX_PIXELS) -> tuple[list[Image.Image], list[str]]:
    """The images drawn on ``page`` as RGB pictures, in the order pypdf lists them, and a note
    for each one that could not be decoded (JBIG2 without its decoder, damaged streams)."""
    _check_image_sizes(page, max_pixels)
    found: list[Image.Image] = []
    problems: list[str] = []
    try:
        files = list(page.images)
    except Exception as exc:
        return [], [f"its images cannot be listed ({type(exc).__name__}: {exc})"]
    for file in files:
        try:
            image = file.image
            if image is None:
                continue
            image.load()
        except Exception as exc:
            problems.append(f"image {file.name} cannot be decoded ({type(exc).__name__}: {exc})")
            continue
        if image.width * image.height <= max_pixels:
            found.append(to_rgb(image))
    return found, problems


def _check_image_sizes(page: Any, max_pixels: int) -> None:
    """Refuse a page whose image declares more pixels than the limit, before decoding it."""
    try:
        objects = page["/Resources"]["/XObject"]
        declared = [obj.get_object() for obj in objects.values()]
    except Exception:
        return  # no XObjects: nothing to check
    for obj in declared:
        if obj.get("/Subtype") != "/Image":
            continue
        width, height = int(obj.get("/Width", 0)), int(obj.get("/Height", 0))
        if width * height > max_pixels:
            raise InputError(
                f"an image in the PDF is {width}x{height} ({width * height / 1e6:.1f} "
                f"megapixels), over this worker's limit of {max_pixels / 1e6:.1f} megapixels"
            )


def has_renderer() -> bool:
    """Whether poppler's pdftoppm is installed (Debian package poppler-utils)."""
    return shutil.which("pdftoppm") is not None


class PageRenderer:
    """Draws pages of one PDF with pdftoppm; the PDF goes to a temporary file once, and the
    file is removed when the ``with`` block ends."""

    def __init__(self, data: bytes, *, dpi: int = RENDER_DPI, max_pixels: int = MAX_PIXELS):
        program = shutil.which("pdftoppm")
        if program is None:
            raise RuntimeError("pdftoppm is not installed (apt-get install poppler-utils)")
        self.program, self.data, self.dpi, self.max_pixels = program, data, dpi, max_pixels
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> PageRenderer:
        self._folder = tempfile.TemporaryDirectory(prefix="hivescribe-pdf-")
        (Path(self._folder.name) / "in.pdf").write_bytes(self.data)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def render(self, page: Any, number: int) -> Image.Image:
        """Page ``number`` (1-based) at ``dpi``, or lower where the page is so large that it
        would go over ``max_pixels``."""
        if self._folder is None:
            raise RuntimeError("PageRenderer.render is called inside its with block")
        width_pt, height_pt = (float(v) for v in (page.mediabox.width, page.mediabox.height))
        area_in2 = max(width_pt * height_pt, 1.0) / (72.0 * 72.0)
        dpi = max(1, min(self.dpi, math.floor(math.sqrt(self.max_pixels / area_in2))))
        folder = Path(self._folder.name)
        target = folder / f"page-{number}"
        command = [self.program, "-r", str(dpi), "-f", str(number), "-l", str(number)]
        command += ["-png", "-singlefile", str(folder / "in.pdf"), str(target)]
        done = subprocess.run(
            command, capture_output=True, timeout=RENDER_TIMEOUT_S, check=False, text=True
        )
        png = target.with_suffix(".png")
        if done.returncode != 0 or not png.is_file():
            raise InputError(
                f"page {number} of the PDF cannot be drawn: {done.stderr.strip()[:300]}"
            )
        try:
            with Image.open(png) as picture:
                return to_rgb(picture)
        finally:
            png.unlink()
