"""Image inputs: fetched bytes -> a checked RGB picture, or an InputError that says why not.

Backends call :func:`decode_image` in ``prepare`` (worker threads, ahead of the model). Only
common raster formats are opened (no EPS, which Pillow renders through Ghostscript), the pixel
count is capped before anything is decoded (decompression bombs), and every failure names what
the bytes are instead: an empty file, a truncated JPEG, a PDF named ``.jpg``, random bytes.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, ImageOps, UnidentifiedImageError

from hivescribe.backends.base import Backend, Failure, InputError, WorkItem

# Raster formats a worker opens; anything else is refused as "not an image". (MPO, the
# multi-picture JPEG of some cameras, opens through the JPEG plugin.)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "QOI")
MAX_PIXELS = 50_000_000  # e.g. 8660 x 5773: far beyond what a captioning model looks at
MAX_BYTES = 100 * 1024 * 1024
# Formats an OpenAI-compatible server accepts as they are (others are re-encoded as JPEG).
SENDABLE = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".qoi",
}  # fmt: skip


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, upright (EXIF orientation applied)
    format: str  # the file's real format, whatever its name says
    data: bytes  # the original bytes
    transposed: bool = False  # EXIF orientation changed the pixels

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def data_url(self, *, quality: int = 90) -> str:
        """A ``data:`` URL for an OpenAI-compatible server: the original bytes where the server
        takes them as they are, else (or when rotated) a JPEG of the decoded picture."""
        mime = SENDABLE.get(self.format)
        if mime is None or self.transposed:
            out = io.BytesIO()
            self.image.save(out, "JPEG", quality=quality)
            mime, payload = "image/jpeg", out.getvalue()
        else:
            payload = self.data
        return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def decode_image(
    data: bytes | None,
    *,
    filename: str | None = None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
) -> DecodedImage:
    """Check and decode an image file; raise InputError with a readable reason otherwise."""
    name = repr(filename) if filename else "the input"
    if data is None:
        raise InputError(f"{name} has no bytes (this task needs an image file, not text)")
    if not data:
        raise InputError(f"{name} is empty (0 bytes)")
    if len(data) > max_bytes:
        raise InputError(
            f"{name} is {len(data):,} bytes, over this worker's limit of {max_bytes:,}"
        )
    fmt, size = "image", (0, 0)
    try:
        with Image.open(io.BytesIO(data), formats=_formats()) as probe:
            fmt, size = probe.format or "image", probe.size
            _check_pixels(name, size, max_pixels)
            probe.verify()  # structure and checksums, without decoding the pixels
    except UnidentifiedImageError:
        raise InputError(_not_an_image(name, filename, data)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{name} has too many pixels to decode safely: {exc}") from None
    except InputError:
        raise
    except Exception as exc:  # SyntaxError, OSError, struct.error, ...: a damaged file
        if fmt == "image":
            fmt = _sniff_format(data)
        raise InputError(f"{name} is a truncated or corrupt {fmt} file: {_reason(exc)}") from None
    try:
        with Image.open(io.BytesIO(data), formats=_formats(fmt)) as opened:
            transposed = _orientation(opened) not in (None, 1)
            rgb = to_rgb(ImageOps.exif_transpose(opened))
    except Exception as exc:
        raise InputError(
            f"{name} is a truncated or corrupt {fmt} image ({size[0]}x{size[1]}): {_reason(exc)}"
        ) from None
    return DecodedImage(rgb, fmt, data, transposed)


def decoded_image(backend: Backend, item: WorkItem) -> DecodedImage | Failure:
    """The image ``prepare`` decoded (decoding now if it was not run), or the item's Failure."""
    if not isinstance(item.decoded, DecodedImage):
        try:
            backend.prepare(item)
        except InputError as exc:
            return Failure(f"bad input: {exc}", permanent=True)
    if not isinstance(item.decoded, DecodedImage):
        return Failure("the item's image was not decoded", permanent=True)
    return item.decoded


_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _sniff_format(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), "image")


def _formats(found: str | None = None) -> tuple[str, ...]:
    """The allowed formats this Pillow has (or just the one found, to reopen a file)."""
    Image.init()
    if found is not None:
        return ("JPEG",) if found == "MPO" else (found,)
    return tuple(f for f in FORMATS if f in Image.OPEN)


def _check_pixels(name: str, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise InputError(f"{name} has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{name} is {width}x{height} ({width * height / 1e6:.1f} megapixels), over this "
            f"worker's limit of {max_pixels / 1e6:.1f} megapixels"
        )


def _orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(0x0112)
    except Exception:
        return None
    return value if isinstance(value, int) else None


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels; transparent areas become white rather than black."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _not_an_image(name: str, filename: str | None, data: bytes) -> str:
    what = describe_bytes(data)
    suffix = PurePosixPath(filename).suffix.lower() if filename else ""
    if suffix in _IMAGE_SUFFIXES:
        return f"{name} is named like an image ({suffix}) but is not one: it is {what}"
    return f"{name} is not an image this worker can read: it is {what}"


_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"ID3", "an MP3 audio file"),
    (b"OggS", "an Ogg audio or video file"),
    (b"fLaC", "a FLAC audio file"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"%!PS", "a PostScript/EPS document (not accepted: it needs Ghostscript)"),
    (b"8BPS", "a Photoshop document (not accepted)"),
    (b"\x7fELF", "an executable program"),
    (b"MZ", "a Windows executable"),
)


def describe_bytes(data: bytes) -> str:
    """A few words on what some bytes look like, for error messages."""
    head = data[:64]
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI "):
        return "a WAV audio file" if head[8:12] == b"WAVE" else "an AVI video"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
            return f"a HEIF/AVIF image ({brand.decode()}) that this worker's Pillow cannot read"
        return "an MP4/QuickTime video or audio file"
    if head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "an MP3 audio file"
    text = _as_text(data[:2048])
    if text is not None:
        stripped = text.lstrip().lower()
        if stripped.startswith("<svg") or ("<svg" in stripped[:300] and "<?xml" in stripped):
            return "an SVG drawing (vector images are not accepted; convert it to PNG)"
        if stripped.startswith(("<!doctype html", "<html")):
            return "an HTML page (perhaps an error page instead of the image)"
        snippet = " ".join(text.split())[:40]
        return f"text ({snippet!r}...)" if snippet else "blank text"
    return f"unrecognised binary data (starting {data[:8].hex(' ')})"


def _as_text(chunk: bytes) -> str | None:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(chunk) - 4:  # not just a character cut at the chunk's end
            return None
        text = chunk[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return text if text and printable / len(text) > 0.95 else None
