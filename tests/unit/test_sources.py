"""Sources: folders, list files and table columns become exactly the items we expect."""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hivescribe.domain.errors import ValidationError
from hivescribe.sources import (
    FolderSource,
    ListFileSource,
    Source,
    TableColumnSource,
    open_source,
)
from hivescribe.store.jobs import NewItem


def write(path: Path, data: str | bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def garbage(size: int = 4096, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


# -- folders ---------------------------------------------------------------------------------------


@pytest.fixture
def media(tmp_path: Path) -> Path:
    root = tmp_path / "podcasts"
    for rel in [
        "b.wav",
        "a.WAV",
        "notes.txt",
        "2024/ep2.mp3",
        "2024/ep1.wav",
        "2024/deep/x.flac",
        ".hidden.wav",
        ".cache/c.wav",
        "2024/.git/d.wav",
    ]:
        write(root / rel)
    return root


def test_folder_walks_sorted_with_keys_shards_and_absolute_paths(media: Path) -> None:
    items = list(FolderSource(media))
    assert [i.item_key for i in items] == [
        "2024/deep/x.flac",
        "2024/ep1.wav",
        "2024/ep2.mp3",
        "a.WAV",
        "b.wav",
        "notes.txt",
    ]
    assert [i.shard for i in items] == ["2024/deep", "2024", "2024", "", "", ""]
    assert {i.dataset for i in items} == {"podcasts"}
    assert items[1] == NewItem(
        item_key="2024/ep1.wav",
        input={"path": str(media / "2024" / "ep1.wav")},
        shard="2024",
        dataset="podcasts",
    )
    assert all(os.path.isabs(i.input["path"]) for i in items)


def test_folder_filters_extensions_case_insensitively_with_or_without_dot(media: Path) -> None:
    source = FolderSource(media, extensions=["wav", ".FLAC"], dataset="pods")
    assert [i.item_key for i in source] == ["2024/deep/x.flac", "2024/ep1.wav", "a.WAV", "b.wav"]
    assert source.dataset == "pods"
    assert ".wav" in source.describe() and str(media) in source.describe()


def test_folder_single_string_extension_and_empty_list(media: Path) -> None:
    assert [i.item_key for i in FolderSource(media, extensions="mp3")] == ["2024/ep2.mp3"]
    assert len(list(FolderSource(media, extensions=[]))) == 6
    with pytest.raises(ValidationError, match="empty file extension"):
        FolderSource(media, extensions=["wav", "."])


def test_folder_does_not_follow_symlinked_directories(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside / "secret.wav")
    root = tmp_path / "root"
    write(root / "in.wav")
    os.symlink(outside, root / "escape")
    os.symlink(root, root / "loop")
    os.symlink(outside / "secret.wav", root / "linked.wav")
    os.symlink(tmp_path / "nowhere.wav", root / "broken.wav")
    assert [i.item_key for i in FolderSource(root)] == ["in.wav", "linked.wav"]


def test_folder_is_lazy_and_repeatable(media: Path) -> None:
    source = FolderSource(media)
    stream = iter(source)
    first = next(stream)
    assert first.item_key == "2024/deep/x.flac"
    assert [i.item_key for i in source] == [i.item_key for i in source]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a folder"):
        FolderSource(write(tmp_path / "f.wav"))
    assert list(FolderSource(tmp_path, extensions=["mp3"])) == []


# -- list files ------------------------------------------------------------------------------------


def test_list_file_urls_relative_and_absolute_paths(tmp_path: Path) -> None:
    listing = write(
        tmp_path / "lists" / "batch1.txt",
        "\ufeff# my episodes\n"
        "https://example.org/a.mp3\n"
        "\n"
        "   audio/b.wav  \r\n"
        "S3://bucket/c.flac\n"
        "http://example.org/d.mp3\n"
        "/data/e.wav\n"
        "../f.wav\n"
        "  # indented comment\n"
        "https://example.org/a.mp3\n"
        "audio/b.wav\n",
    )
    items = list(ListFileSource(listing))
    assert items == [
        NewItem("https://example.org/a.mp3", {"url": "https://example.org/a.mp3"}, "", "batch1"),
        NewItem("audio/b.wav", {"path": str(tmp_path / "lists" / "audio" / "b.wav")}, "", "batch1"),
        NewItem("S3://bucket/c.flac", {"url": "S3://bucket/c.flac"}, "", "batch1"),
        NewItem("http://example.org/d.mp3", {"url": "http://example.org/d.mp3"}, "", "batch1"),
        NewItem("/data/e.wav", {"path": "/data/e.wav"}, "", "batch1"),
        NewItem("../f.wav", {"path": str(tmp_path / "f.wav")}, "", "batch1"),
    ]


def test_list_file_dataset_override_and_describe(tmp_path: Path) -> None:
    source = ListFileSource(write(tmp_path / "x.lst", "a\n"), dataset="mine")
    assert [i.dataset for i in source] == ["mine"]
    assert "x.lst" in source.describe()


def test_list_file_binary_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", b"ok.wav\nalso-ok.wav\n\xff\xfe\x80 nope\n")
    source = ListFileSource(path)
    stream = iter(source)
    assert next(stream).item_key == "ok.wav"
    with pytest.raises(ValidationError, match=r"bad\.txt, line 3: not UTF-8"):
        list(stream)


def test_list_file_random_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "noise.list", garbage())
    with pytest.raises(ValidationError, match=r"noise\.list, line \d+") as err:
        list(ListFileSource(path))
    assert str(path) in err.value.detail


def test_list_file_control_characters(tmp_path: Path) -> None:
    path = write(tmp_path / "ctl.txt", "a.wav\nb\x00.wav\n")
    with pytest.raises(ValidationError, match="line 2: contains a NUL or control character"):
        list(ListFileSource(path))
    path = write(tmp_path / "esc.txt", "a.wav\n\nb\x1b[31m.wav\n")
    with pytest.raises(ValidationError, match="line 3"):
        list(ListFileSource(path))


def test_list_file_long_line_without_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "huge.txt", "a" * 100_000)
    with pytest.raises(ValidationError, match="line 1: longer than"):
        list(ListFileSource(path))


def test_list_file_unsupported_scheme(tmp_path: Path) -> None:
    path = write(tmp_path / "gs.txt", "gs://bucket/a.wav\n")
    with pytest.raises(ValidationError, match="line 1: unsupported URL scheme 'gs://'"):
        list(ListFileSource(path))


def test_list_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such list file"):
        ListFileSource(tmp_path / "none.txt")


# -- tables: Parquet -------------------------------------------------------------------------------


def parquet(path: Path, columns: dict[str, list[object]], row_group_size: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def test_parquet_default_text_column_global_row_numbers(tmp_path: Path) -> None:
    texts: list[object] = [f"t{n}" for n in range(10)]
    texts[4] = None
    texts[7] = "   "
    path = parquet(tmp_path / "docs.parquet", {"id": list(range(10)), "text": texts})
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    source = TableColumnSource(path)
    items = list(source)
    assert [i.item_key for i in items] == ["0", "1", "2", "3", "5", "6", "8", "9"]
    assert items[4] == NewItem("5", {"text": "t5"}, "docs.parquet", "docs")
    assert source.skipped == 2
    list(source)
    assert source.skipped == 2  # reset per pass, not accumulated
    assert "10 rows" in source.describe() and "'text'" in source.describe()


def test_parquet_row_numbers_are_global_across_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hivescribe.sources.table as table

    monkeypatch.setattr(table, "BATCH_ROWS", 4)
    path = parquet(tmp_path / "t.parquet", {"text": [f"v{n}" for n in range(11)]}, 5)
    items = list(TableColumnSource(path))
    assert [(i.item_key, i.input["text"]) for i in items] == [(str(n), f"v{n}") for n in range(11)]


def test_parquet_urls_keys_and_non_string_values(tmp_path: Path) -> None:
    path = parquet(
        tmp_path / "mix.parquet",
        {
            "uid": ["k1", "k2", "k1", "k4"],
            "url": ["https://x.org/a.mp3", "s3://b/c.wav", "plain words", "HTTP://x.org/z"],
            "n": [1, 2.5, None, 4],
        },
    )
    items = list(TableColumnSource(path, key_column="uid", dataset="ds"))
    assert items == [
        NewItem("k1", {"url": "https://x.org/a.mp3"}, "mix.parquet", "ds"),
        NewItem("k2", {"url": "s3://b/c.wav"}, "mix.parquet", "ds"),
        NewItem("k1", {"text": "plain words"}, "mix.parquet", "ds"),
        NewItem("k4", {"url": "HTTP://x.org/z"}, "mix.parquet", "ds"),
    ]
    numbers = TableColumnSource(path, column="n")
    assert [(i.item_key, i.input) for i in numbers] == [
        ("0", {"text": "1.0"}),
        ("1", {"text": "2.5"}),
        ("3", {"text": "4.0"}),
    ]
    assert numbers.skipped == 1


def test_parquet_column_preference_url_then_path(tmp_path: Path) -> None:
    both = parquet(tmp_path / "both.parquet", {"path": ["a.wav"], "url": ["https://x/y"]})
    assert TableColumnSource(both).column == "url"
    paths = parquet(tmp_path / "sub" / "p.parquet", {"path": ["a.wav", "/abs/b.wav"]})
    assert [i.input for i in TableColumnSource(paths)] == [
        {"path": str(tmp_path / "sub" / "a.wav")},
        {"path": "/abs/b.wav"},
    ]


def test_parquet_missing_columns_list_what_exists(tmp_path: Path) -> None:
    path = parquet(tmp_path / "q.parquet", {"caption": ["a"], "id": [1]})
    with pytest.raises(ValidationError, match="no 'text', 'url' or 'path' column") as err:
        TableColumnSource(path)
    assert "'caption', 'id'" in err.value.detail
    with pytest.raises(ValidationError, match=r"no column 'body'; columns are 'caption', 'id'"):
        TableColumnSource(path, column="body")
    with pytest.raises(ValidationError, match=r"no key column 'key'; columns are 'caption'"):
        TableColumnSource(path, column="caption", key_column="key")


def test_parquet_binary_column_refused(tmp_path: Path) -> None:
    path = parquet(tmp_path / "b.parquet", {"text": [b"\x00\x01"], "tags": [["a"]]})
    with pytest.raises(ValidationError, match="column 'text' holds binary values"):
        TableColumnSource(path)
    with pytest.raises(ValidationError, match="column 'tags' holds list"):
        TableColumnSource(path, column="tags")


def test_parquet_missing_key_value(tmp_path: Path) -> None:
    path = parquet(tmp_path / "k.parquet", {"text": ["a", "b"], "id": ["x", None]})
    with pytest.raises(ValidationError, match="row 1 has no key in 'id'"):
        list(TableColumnSource(path, key_column="id"))


def test_parquet_random_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "noise.parquet", garbage())
    with pytest.raises(ValidationError, match="not a readable Parquet file") as err:
        TableColumnSource(path)
    assert str(path) in err.value.detail


def test_parquet_truncated(tmp_path: Path) -> None:
    good = parquet(tmp_path / "good.parquet", {"text": [f"row {n}" for n in range(500)]}, 100)
    data = good.read_bytes()
    path = write(tmp_path / "cut.parquet", data[: len(data) // 2])
    with pytest.raises(ValidationError, match=r"cut\.parquet: not a readable Parquet file"):
        TableColumnSource(path)


def test_parquet_corrupt_pages_fail_mid_stream_as_validation_error(tmp_path: Path) -> None:
    good = parquet(tmp_path / "good.parquet", {"text": [f"row {n}" for n in range(2000)]}, 500)
    data = bytearray(good.read_bytes())
    footer = pq.ParquetFile(good).metadata.row_group(2).column(0)
    start = footer.data_page_offset
    data[start : start + 64] = garbage(64)
    path = write(tmp_path / "rot.parquet", bytes(data))
    with pytest.raises(ValidationError, match=r"rot\.parquet: not a readable Parquet file"):
        list(TableColumnSource(path))


def test_parquet_large_file_streams_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hivescribe.sources.table as table

    rows = 200_000
    path = parquet(tmp_path / "big.parquet", {"text": [f"r{n}" for n in range(rows)]}, 50_000)
    seen_batches: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: object, **kwargs: object) -> Iterator[pa.RecordBatch]:
        for batch in real(self, *args, **kwargs):
            seen_batches.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    stream = iter(TableColumnSource(path))
    assert next(stream).item_key == "0"
    assert seen_batches == [table.BATCH_ROWS]
    (last,) = deque(stream, maxlen=1)
    assert last.item_key == str(rows - 1)
    assert max(seen_batches) <= table.BATCH_ROWS and sum(seen_batches) == rows


# -- tables: CSV and TSV ---------------------------------------------------------------------------


def test_csv_text_with_quotes_newlines_and_blank_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path / "notes.csv",
        '\ufeffid,text\n1,"hello, world"\n2,\n3,"two\nlines"\n\n4,https://x.org/p.mp3\n',
    )
    source = TableColumnSource(path)
    assert list(source) == [
        NewItem("0", {"text": "hello, world"}, "notes.csv", "notes"),
        NewItem("2", {"text": "two\nlines"}, "notes.csv", "notes"),
        NewItem("3", {"url": "https://x.org/p.mp3"}, "notes.csv", "notes"),
    ]
    assert source.skipped == 1
    assert source.columns == ("id", "text")


def test_csv_keys_stay_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "k.csv", "key,text\n007,a\n007,b\n1e3,c\n")
    assert [(i.item_key, i.input) for i in TableColumnSource(path, key_column="key")] == [
        ("007", {"text": "a"}),
        ("007", {"text": "b"}),
        ("1e3", {"text": "c"}),
    ]


def test_csv_batches_keep_global_row_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hivescribe.sources.table as table

    monkeypatch.setattr(table, "BATCH_ROWS", 3)
    body = "".join(f"{n},{'' if n % 4 == 0 else f'v{n}'}\n" for n in range(10))
    source = TableColumnSource(write(tmp_path / "c.csv", "id,text\n" + body))
    keys = [i.item_key for i in source]
    assert keys == [str(n) for n in range(10) if n % 4]
    assert source.skipped == 3


def test_csv_long_cells_are_fine(tmp_path: Path) -> None:
    doc = "word " * 60_000
    path = write(tmp_path / "long.csv", f'text\n"{doc}"\n')
    assert [i.input["text"] for i in TableColumnSource(path)] == [doc]


def test_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "clips.tsv", "path\tsentence\nclips/a.mp3\tHi, there\n")
    assert list(TableColumnSource(path)) == [
        NewItem("0", {"path": str(tmp_path / "clips" / "a.mp3")}, "clips.tsv", "clips")
    ]
    sentences = TableColumnSource(path, column="sentence")
    assert [i.input for i in sentences] == [{"text": "Hi, there"}]


def test_csv_ragged_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "ragged.csv", "id,text\n1,a\n2,b,extra\n")
    with pytest.raises(ValidationError, match=r"ragged\.csv, line 3: 3 fields, but the header"):
        list(TableColumnSource(path))


def test_csv_random_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "noise.csv", garbage())
    with pytest.raises(ValidationError, match=r"noise\.csv") as err:
        list(TableColumnSource(path, column="x"))
    assert "UTF-8" in err.value.detail or "not a readable CSV" in err.value.detail


def test_csv_binary_after_header(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\xff\xd8\x00" * 50
    early = write(tmp_path / "early.csv", b"text\nfine\n" + png)
    with pytest.raises(ValidationError, match=r"early\.csv: not UTF-8 text .*binary file"):
        TableColumnSource(early)
    late = write(tmp_path / "late.csv", b"text\n" + b"fine\n" * 20_000 + png)
    stream = iter(TableColumnSource(late))
    assert next(stream).input == {"text": "fine"}
    with pytest.raises(ValidationError, match=r"late\.csv: not UTF-8 text after line \d+"):
        list(stream)
    nul = write(tmp_path / "nul.csv", b"text\nfine\nbad\x00value\n")
    with pytest.raises(ValidationError, match=r"nul\.csv, line 3: NUL byte"):
        list(TableColumnSource(nul))


def test_csv_empty_and_duplicate_headers(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="empty; expected a header row"):
        TableColumnSource(write(tmp_path / "empty.csv", ""))
    with pytest.raises(ValidationError, match=r"repeated column names \['text'\]"):
        TableColumnSource(write(tmp_path / "dup.csv", "text,text\na,b\n"))


def test_csv_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "caption,lang\nhi,en\n")
    with pytest.raises(ValidationError, match=r"columns are 'caption', 'lang'"):
        TableColumnSource(path)
    assert [i.input for i in TableColumnSource(path, column="caption")] == [{"text": "hi"}]


# -- open_source -----------------------------------------------------------------------------------


def test_open_source_picks_the_kind(tmp_path: Path) -> None:
    folder = tmp_path / "media"
    write(folder / "a.wav")
    assert isinstance(open_source(folder), FolderSource)
    assert isinstance(open_source(str(folder), extensions=["wav"]), FolderSource)
    for name in ["l.txt", "l.LST", "l.list"]:
        assert isinstance(open_source(write(tmp_path / name, "a.wav\n")), ListFileSource)
    assert isinstance(open_source(write(tmp_path / "t.csv", "text\na\n")), TableColumnSource)
    assert isinstance(open_source(write(tmp_path / "t.tsv", "text\na\n")), TableColumnSource)
    pq_path = parquet(tmp_path / "t.PARQUET", {"text": ["a"]})
    source = open_source(pq_path, dataset="d", extensions=["wav"])
    assert isinstance(source, TableColumnSource) and isinstance(source, Source)
    assert [i.dataset for i in source] == ["d"]


def test_open_source_passes_options(tmp_path: Path) -> None:
    path = parquet(tmp_path / "t.parquet", {"body": ["a"], "id": ["k"]})
    source = open_source(path, column="body", key_column="id")
    assert [(i.item_key, i.input) for i in source] == [("k", {"text": "a"})]


def test_open_source_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ValidationError, match="no such file or folder") as err:
        open_source(missing)
    assert str(missing) in err.value.detail
    with pytest.raises(ValidationError, match=r"expected a folder, a list file \(.txt") as err:
        open_source(write(tmp_path / "a.json", "{}"))
    assert ".parquet" in err.value.detail and "'.json'" in err.value.detail
    with pytest.raises(ValidationError, match="without extension"):
        open_source(write(tmp_path / "README", "x"))
    with pytest.raises(ValidationError, match="column and key_column apply only"):
        open_source(tmp_path, column="text")
    with pytest.raises(ValidationError, match="column and key_column apply only"):
        open_source(write(tmp_path / "l.txt", "a\n"), key_column="id")
