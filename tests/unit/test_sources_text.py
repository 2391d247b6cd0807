"""Text sources: JSON Lines tables, and folders of text files and documents for the text tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hivescribe.domain.errors import ValidationError
from hivescribe.domain.tasks import DEFAULT_EXTENSIONS, TaskType
from hivescribe.sources import FolderSource, TableColumnSource, open_source


def jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_jsonl_text_column_keys_and_blank_values(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "articles.jsonl",
        [
            {"id": "a1", "text": "Première ligne.\nSecond line."},
            {"id": "a2", "text": ""},  # blank: skipped and counted
            {"id": "a3"},  # no text at all: skipped and counted
            {"id": "a4", "text": 42, "extra": "later keys are columns too"},
        ],
    )
    source = open_source(path, key_column="id")
    assert isinstance(source, TableColumnSource) and source.format == "jsonl"
    assert source.columns == ("id", "text", "extra")
    items = list(source)
    assert [(i.item_key, i.input) for i in items] == [
        ("a1", {"text": "Première ligne.\nSecond line."}),
        ("a4", {"text": "42"}),
    ]
    assert source.skipped == 2 and items[0].dataset == "articles"


def test_jsonl_blank_lines_row_numbers_and_urls(tmp_path: Path) -> None:
    path = tmp_path / "mixed.ndjson"
    path.write_text('{"text": "one"}\n\n{"url": "https://example.org/a.txt", "text": "two"}\n')
    source = open_source(path)
    assert [(i.item_key, i.input) for i in source] == [
        ("0", {"text": "one"}),
        ("1", {"text": "two"}),
    ]
    by_url = open_source(path, column="url")
    assert [i.input for i in by_url] == [{"url": "https://example.org/a.txt"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty; expected one JSON object per line"),
        ('{"text": "fine"}\n{"text": broken}\n', "line 2: not JSON"),
        ('["a", "list"]\n', "line 1: expected a JSON object per line, not list"),
        ('{"text": {"nested": true}}\n', "line 1: 'text' holds a JSON dict, not text"),
        ('{"body": "no text column"}\n', "no 'text', 'url' or 'path' column"),
    ],
)
def test_jsonl_garbage_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValidationError, match=message):
        list(open_source(path))


def test_jsonl_binary_bytes(tmp_path: Path) -> None:
    path = tmp_path / "binary.jsonl"
    path.write_bytes(b'{"text": "ok"}\n\xff\xfe\x00garbage\n')
    with pytest.raises(ValidationError, match="not UTF-8 text"):
        list(open_source(path))


def test_text_tasks_take_text_files_and_documents_from_folders(tmp_path: Path) -> None:
    for name in ("a.txt", "b.md", "c.pdf", "d.docx", "e.html", "f.png", "g.wav", "h.json"):
        (tmp_path / name).write_bytes(b"x")

    def keys(task: TaskType) -> list[str]:
        return [i.item_key for i in FolderSource(tmp_path, extensions=DEFAULT_EXTENSIONS[task])]

    for task in (TaskType.TTS, TaskType.SUMMARIZATION, TaskType.TEXT_TRANSLATION):
        assert keys(task) == ["a.txt", "b.md"]
    assert keys(TaskType.DOCUMENT_TRANSLATION) == ["a.txt", "b.md", "c.pdf", "d.docx", "e.html"]
    assert keys(TaskType.OCR) == ["c.pdf", "f.png"]
