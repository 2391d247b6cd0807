"""domain/filetypes.py: what an upload is, told from its first bytes."""

from __future__ import annotations

import pytest

from hivescribe.domain.errors import ValidationError
from hivescribe.domain.filetypes import FileKind, check_kind, sniff


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", FileKind.AUDIO),
        (b"ID3\x04\x00\x00\x00\x00", FileKind.AUDIO),
        (b"\xff\xfb\x90\x00\x00", FileKind.AUDIO),
        (b"fLaC\x00\x00\x00\x22", FileKind.AUDIO),
        (b"OggS\x00\x02\x00\x00", FileKind.MEDIA),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00", FileKind.MEDIA),
        (b"\x1a\x45\xdf\xa3\x01\x00", FileKind.MEDIA),
        (b"RIFF\x00\x00\x00\x00AVI LIST", FileKind.VIDEO),
        (b"\x89PNG\r\n\x1a\n\x00\x00", FileKind.IMAGE),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", FileKind.IMAGE),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", FileKind.IMAGE),
        (b"BM\x36\x00\x00\x00\x00\x00\x00\x00", FileKind.IMAGE),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", FileKind.DOCUMENT),
        (b"PK\x03\x04\x14\x00\x06\x00", FileKind.DOCUMENT),
        (b"<!doctype html><p>hi</p>", FileKind.TEXT),
        (b"BMW sales rose", FileKind.TEXT),  # text that starts like a bitmap is text
        ("caf\u00e9".encode()[:-1], FileKind.TEXT),  # a character cut at the end of the head
        (b"\x00\x01\x02\x03\xfe", None),
    ],
)
def test_sniff(head: bytes, kind: FileKind | None) -> None:
    assert sniff(head) == kind


def test_check_kind_refuses_only_plain_mismatches() -> None:
    check_kind(b"\x00\x00\x00\x18ftypmp42", FileKind.AUDIO, "audio_file")  # video holds audio
    check_kind(b"\x00\x01\x02\x03\xfe", FileKind.IMAGE, "image_file")  # unknown: the worker decides
    check_kind(b"# Title\n", FileKind.DOCUMENT, "document_file")
    with pytest.raises(ValidationError, match="image_file looks like an audio file"):
        check_kind(b"RIFF\x24\x00\x00\x00WAVEfmt ", FileKind.IMAGE, "image_file")
    with pytest.raises(ValidationError, match="audio_file is empty"):
        check_kind(b"", FileKind.AUDIO, "audio_file")
    with pytest.raises(ValidationError, match="looks like a text file"):
        check_kind(b"hello", FileKind.VIDEO, "video_file")
