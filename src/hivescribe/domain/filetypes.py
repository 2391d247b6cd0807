"""What kind of file an upload is, told from its first bytes, so an API submission can refuse
an obvious mismatch (a PNG sent for transcription) before a worker spends time on it.

Only a file recognised as another kind (or empty) is refused: a format that is not listed
here passes, and the worker decides.
"""

from __future__ import annotations

from enum import StrEnum

from hivescribe.domain.errors import ValidationError

__all__ = ["HEAD_BYTES", "FileKind", "check_kind", "sniff"]

HEAD_BYTES = 512  # how much of a file sniff() looks at


class FileKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
    MEDIA = "audio or video"  # containers that hold either (MP4/M4A, Matroska/WebM, Ogg, ASF)
    IMAGE = "image"
    DOCUMENT = "document"  # PDF, Office (ZIP) files
    TEXT = "text"  # UTF-8 without NUL bytes: plain text, Markdown, HTML
    ARCHIVE = "archive"


# (offset, magic, kind); the first match wins.
_SIGNATURES: tuple[tuple[int, bytes, FileKind], ...] = (
    (0, b"%PDF-", FileKind.DOCUMENT),
    (0, b"PK\x03\x04", FileKind.DOCUMENT),  # DOCX, ODT, ... (and any ZIP)
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", FileKind.DOCUMENT),  # old Office files
    (0, b"{\\rtf", FileKind.DOCUMENT),
    (0, b"\xff\xd8\xff", FileKind.IMAGE),
    (0, b"\x89PNG\r\n\x1a\n", FileKind.IMAGE),
    (0, b"GIF87a", FileKind.IMAGE),
    (0, b"GIF89a", FileKind.IMAGE),
    (0, b"BM", FileKind.IMAGE),
    (0, b"II*\x00", FileKind.IMAGE),
    (0, b"MM\x00*", FileKind.IMAGE),
    (8, b"WEBP", FileKind.IMAGE),  # RIFF....WEBP
    (4, b"ftypavif", FileKind.IMAGE),
    (4, b"ftypheic", FileKind.IMAGE),
    (8, b"WAVE", FileKind.AUDIO),  # RIFF....WAVE
    (8, b"AVI ", FileKind.VIDEO),  # RIFF....AVI
    (0, b"ID3", FileKind.AUDIO),
    (0, b"fLaC", FileKind.AUDIO),
    (0, b"#!AMR", FileKind.AUDIO),
    (0, b"caff", FileKind.AUDIO),
    (0, b".snd", FileKind.AUDIO),
    (8, b"AIFF", FileKind.AUDIO),  # FORM....AIFF
    (8, b"AIFC", FileKind.AUDIO),
    (0, b"OggS", FileKind.MEDIA),
    (4, b"ftyp", FileKind.MEDIA),  # MP4, M4A, MOV, 3GP
    (4, b"moov", FileKind.VIDEO),  # old QuickTime
    (0, b"\x1a\x45\xdf\xa3", FileKind.MEDIA),  # Matroska, WebM
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", FileKind.MEDIA),  # ASF: WMA, WMV
    (0, b"FLV", FileKind.VIDEO),
    (0, b"\x00\x00\x01\xba", FileKind.VIDEO),  # MPEG program stream
    (0, b"\x00\x00\x01\xb3", FileKind.VIDEO),
    (0, b"\x1f\x8b", FileKind.ARCHIVE),
    (0, b"7z\xbc\xaf\x27\x1c", FileKind.ARCHIVE),
    (0, b"Rar!", FileKind.ARCHIVE),
)

# What each expected kind also accepts.
_COMPATIBLE: dict[FileKind, frozenset[FileKind]] = {
    FileKind.AUDIO: frozenset({FileKind.AUDIO, FileKind.VIDEO, FileKind.MEDIA}),
    FileKind.VIDEO: frozenset({FileKind.AUDIO, FileKind.VIDEO, FileKind.MEDIA}),
    FileKind.IMAGE: frozenset({FileKind.IMAGE}),
    FileKind.DOCUMENT: frozenset({FileKind.DOCUMENT, FileKind.TEXT}),
}


def sniff(head: bytes) -> FileKind | None:
    """The kind of file that starts with ``head``; None when it is not recognised. A head that
    reads as text is text, even when it starts like a binary format ("BMW ..." is no bitmap)."""
    texty = _is_text(head)
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic and not (texty and magic.isascii()):
            return kind
    if texty:
        return FileKind.TEXT
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return FileKind.AUDIO  # an MPEG audio frame (MP3) or ADTS (AAC)
    if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
        return FileKind.VIDEO  # MPEG transport stream
    return None


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut at the end of the head is fine
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def check_kind(head: bytes, expected: FileKind, field: str) -> None:
    """A ValidationError when a file starting with ``head`` is empty or plainly not of the
    ``expected`` kind."""
    if not head:
        raise ValidationError(f"{field} is empty: expected {_describe(expected)}")
    found = sniff(head)
    if found is not None and found not in _COMPATIBLE[expected]:
        raise ValidationError(
            f"{field} looks like {_article(found)} file, not {_describe(expected)}"
        )


def _describe(kind: FileKind) -> str:
    return {
        FileKind.AUDIO: "an audio (or video) file",
        FileKind.VIDEO: "a video (or audio) file",
        FileKind.IMAGE: "an image (JPEG, PNG, WebP, GIF, BMP, TIFF, AVIF)",
        FileKind.DOCUMENT: "a document (PDF, DOCX, HTML, text or Markdown)",
    }.get(kind, kind.value)


def _article(kind: FileKind) -> str:
    return f"an {kind.value}" if kind.value[0] in "aeiou" else f"a {kind.value}"
