"""Media sources: WebDataset tar shards and Hugging Face Parquet datasets, and the readers that
serve their items' bytes back exactly."""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hivescribe.domain.errors import NotFoundError, ValidationError
from hivescribe.domain.inputs import check_input, served_name
from hivescribe.sources import (
    FolderSource,
    HFDatasetSource,
    TableColumnSource,
    WebDatasetSource,
    open_source,
)
from hivescribe.sources.readers import (
    UnreadableInput,
    iter_tar_member,
    read_parquet_cell,
    read_tar_member,
)
from hivescribe.sources.webdataset import expand_braces, is_brace_pattern, split_member

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def blob(n: int, size: int = 300) -> bytes:
    return random.Random(n).randbytes(size + n)


# -- WebDataset ------------------------------------------------------------------------------------


def make_shard(path: Path, members: list[tuple[str, bytes]]) -> dict[str, bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return dict(members)


def sample_members(first: int, count: int) -> list[tuple[str, bytes]]:
    members: list[tuple[str, bytes]] = []
    for n in range(first, first + count):
        members += [
            (f"{n:06d}.json", json.dumps({"n": n}).encode()),
            (f"{n:06d}.jpg", blob(n)),
            (f"{n:06d}.txt", f"caption {n}".encode()),
        ]
    return members


@pytest.fixture
def shards(tmp_path: Path) -> tuple[Path, dict[str, dict[str, bytes]]]:
    root = tmp_path / "laion"
    contents = {
        f"shard-{i:06d}.tar": make_shard(root / f"shard-{i:06d}.tar", sample_members(i * 10, 4))
        for i in range(3)
    }
    return root, contents


def test_webdataset_folder_keys_shards_inputs_and_exact_bytes(
    shards: tuple[Path, dict[str, dict[str, bytes]]],
) -> None:
    root, contents = shards
    source = open_source(root)
    assert isinstance(source, WebDatasetSource)
    items = list(source)
    assert [(i.shard, i.item_key) for i in items] == [
        (f"shard-{s:06d}.tar", f"{s * 10 + n:06d}") for s in range(3) for n in range(4)
    ]
    assert {i.dataset for i in items} == {"laion"}
    for item in items:
        data = item.input
        assert set(data) == {"tar", "member", "offset", "size", "meta"}
        assert data["tar"] == str(root / item.shard)
        assert data["member"] == f"{item.item_key}.jpg"
        assert data["meta"] == {
            "json": json.dumps({"n": int(item.item_key)}),
            "txt": f"caption {int(item.item_key)}",
        }
        expected = contents[item.shard][data["member"]]
        assert data["size"] == len(expected)
        assert read_tar_member(data["tar"], data["offset"], data["size"]) == expected
        chunks = list(iter_tar_member(data["tar"], data["offset"], data["size"], chunk_size=64))
        assert b"".join(chunks) == expected and max(map(len, chunks)) == 64
        assert check_input(data, allow_paths=True) == data
        assert served_name(data) == data["member"]


def test_webdataset_member_choice_prefix_keys_and_skips(tmp_path: Path) -> None:
    shard = tmp_path / "one.tar"
    members = make_shard(
        shard,
        [
            ("a/0001.png", b"png"),
            ("a/0001.jpg", b"jpg"),  # jpg is listed before png: preferred
            ("a/0001.seg.webp", b"other"),
            ("a/0002.seg.wav", b"wav"),  # multi-part extension: judged by its last part
            ("0003.json", b"{}"),  # no media member: skipped
            ("noextension", b"x"),  # no key/extension split: ignored
            ("._0004.jpg", b"appledouble"),  # empty key: ignored
            ("0005.MP3", b"mp3"),
            ("0006.txt", b"t" * 5000),  # too big for meta, and no media
            ("0007.flac", b"flac"),
            ("0007.txt", b"t" * 5000),  # too big for meta: left out
            ("a/0001.jpg", b"again"),  # a repeated key later in the shard: skipped
        ],
    )
    assert members
    source = WebDatasetSource(shard)
    items = list(source)
    assert [(i.item_key, i.input["member"]) for i in items] == [
        ("a/0001", "a/0001.jpg"),
        ("a/0002", "a/0002.seg.wav"),
        ("0005", "0005.MP3"),
        ("0007", "0007.flac"),
    ]
    assert source.skipped == 3
    assert {i.shard for i in items} == {"one.tar"} and {i.dataset for i in items} == {"one"}
    assert all("meta" not in i.input for i in items)
    for item, expected in zip(items, [b"jpg", b"wav", b"mp3", b"flac"], strict=True):
        assert read_tar_member(item.input["tar"], item.input["offset"], item.input["size"]) == (
            expected
        )
    audio_only = WebDatasetSource(shard, extensions=["wav", ".flac"], meta_extensions=())
    assert [i.item_key for i in audio_only] == ["a/0002", "0007"]


def test_webdataset_long_names_and_large_members(tmp_path: Path) -> None:
    name = "deep/" + "k" * 180 + ".wav"
    data = blob(1, 200_000)
    make_shard(tmp_path / "long.tar", [(name, data), ("x.wav", b"")])
    items = list(open_source(tmp_path / "long.tar"))
    assert [i.input["member"] for i in items] == [name, "x.wav"]
    first, empty = (i.input for i in items)
    assert read_tar_member(first["tar"], first["offset"], first["size"]) == data
    assert read_tar_member(empty["tar"], empty["offset"], 0) == b""


def test_brace_expansion() -> None:
    assert expand_braces("shards-{000000..000002}.tar") == [
        "shards-000000.tar",
        "shards-000001.tar",
        "shards-000002.tar",
    ]
    assert expand_braces("s{8..11}.tar") == ["s8.tar", "s9.tar", "s10.tar", "s11.tar"]
    assert expand_braces("{a,b}-{0..1}.tar") == ["a-0.tar", "a-1.tar", "b-0.tar", "b-1.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    assert is_brace_pattern("x-{0..9}.tar") and is_brace_pattern("{a,b}.tar")
    assert not is_brace_pattern("x-{literal}.tar") and not is_brace_pattern("x.tar")
    with pytest.raises(ValidationError, match="empty range"):
        expand_braces("s{5..1}.tar")
    with pytest.raises(ValidationError, match="nested"):
        expand_braces("s{a,{b,c}}.tar")
    with pytest.raises(ValidationError, match="at most"):
        expand_braces("{0..9999}{0..9999}.tar")
    assert split_member("dir/a.b.c") == ("dir/a", "b.c")
    assert split_member("dir/.hidden") is None and split_member("plain") is None


def test_webdataset_brace_pattern(shards: tuple[Path, dict[str, dict[str, bytes]]]) -> None:
    root, _ = shards
    source = open_source(str(root / "shard-{000001..000002}.tar"))
    assert isinstance(source, WebDatasetSource) and source.dataset == "shard"
    items = list(source)
    assert [i.shard for i in items] == ["shard-000001.tar"] * 4 + ["shard-000002.tar"] * 4
    assert [i.item_key for i in items[:2]] == ["000010", "000011"]
    assert open_source(root / "shard-{000000,000002}.tar", dataset="d").dataset == "d"
    with pytest.raises(ValidationError, match=r"1 of 4 shards .* missing .*: shard-000003\.tar$"):
        open_source(root / "shard-{000000..000003}.tar")
    with pytest.raises(ValidationError, match=r"3 of 4 shards"):
        open_source(root / "shard-{000002..000005}.tar")
    with pytest.raises(ValidationError, match=r"brace patterns name WebDataset \.tar shards"):
        open_source(root / "part-{0..3}.parquet")
    with pytest.raises(ValidationError, match="column and key_column apply only"):
        open_source(root / "shard-{000000..000001}.tar", column="image")


def test_webdataset_garbage(tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    make_shard(good, sample_members(0, 3))
    raw = good.read_bytes()

    noise = tmp_path / "noise.tar"
    noise.write_bytes(random.Random(3).randbytes(5000))
    with pytest.raises(ValidationError, match=r"noise\.tar: not a readable tar file"):
        list(open_source(noise))
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    with pytest.raises(ValidationError, match=r"empty\.tar: not a readable tar file"):
        list(open_source(empty))

    # Cut inside the second sample's image data: the first sample is fine, then a clear error.
    cut = tmp_path / "cut.tar"
    offsets = [i.input["offset"] for i in WebDatasetSource(good)]
    cut.write_bytes(raw[: offsets[1] + 100])
    seen: list[str] = []
    with pytest.raises(ValidationError, match=r"cut\.tar: truncated tar file \(unexpected end"):
        seen.extend(i.item_key for i in open_source(cut))
    assert seen == ["000000"]
    # Cut inside a header: the members after it would be silently lost without the tail check.
    header_cut = tmp_path / "header_cut.tar"
    header_cut.write_bytes(raw[: 4 * 512 + 300])
    with pytest.raises(ValidationError, match=r"header_cut\.tar: truncated tar header at byte"):
        list(open_source(header_cut))
    # A corrupt header in the middle.
    rotten = bytearray(raw)
    second_header = offsets[1] - 512
    rotten[second_header + 10] ^= 0xFF
    (tmp_path / "rot.tar").write_bytes(bytes(rotten))
    with pytest.raises(ValidationError, match=r"rot\.tar: corrupt tar header at byte \d+"):
        list(open_source(tmp_path / "rot.tar"))
    # Compressed shards cannot be served by offset.
    gz = tmp_path / "packed.tar"
    with tarfile.open(gz, "w:gz") as archive:
        archive.add(good, arcname="x.jpg")
    with pytest.raises(ValidationError, match=r"gzip-compressed; shards must be uncompressed"):
        list(open_source(gz))
    (tmp_path / "packed.tar.gz").write_bytes(gz.read_bytes())
    with pytest.raises(ValidationError, match="compressed tar shards cannot be served"):
        open_source(tmp_path / "packed.tar.gz")


def test_read_tar_member_validates(tmp_path: Path) -> None:
    shard = tmp_path / "s.tar"
    make_shard(shard, [("a.jpg", b"A" * 1000), ("b.jpg", b"B" * 10)])
    a, b = (i.input for i in WebDatasetSource(shard))
    path = str(shard)
    with pytest.raises(UnreadableInput, match="past the end of the file"):
        read_tar_member(path, b["offset"], 10**6)
    with pytest.raises(UnreadableInput, match="not a tar member's data offset"):
        read_tar_member(path, a["offset"] + 1, 5)
    with pytest.raises(UnreadableInput, match="not a tar member's data offset"):
        read_tar_member(path, 0, 5)
    with pytest.raises(UnreadableInput, match="holds 1000 bytes, not 999"):
        read_tar_member(path, a["offset"], 999)
    with pytest.raises(UnreadableInput, match="no tar header before offset"):
        read_tar_member(path, a["offset"] + 512, 10)
    with pytest.raises(ValueError, match="offset must be a non-negative integer"):
        read_tar_member(path, -512, 10)
    with pytest.raises(ValueError, match="size must be a non-negative integer"):
        iter_tar_member(path, a["offset"], True)
    with pytest.raises(NotFoundError, match="gone from the coordinator"):
        read_tar_member(str(tmp_path / "gone.tar"), 512, 1)
    with pytest.raises(UnreadableInput, match="not a regular file"):
        read_tar_member(str(tmp_path), 512, 1)


# -- Hugging Face Parquet --------------------------------------------------------------------------


def write_parquet(path: Path, table: pa.Table, groups: list[int]) -> Path:
    """One row group per entry of ``groups`` (their sizes), in order."""
    assert sum(groups) == table.num_rows
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, table.schema) as writer:
        start = 0
        for size in groups:
            writer.write_table(table.slice(start, size), row_group_size=size)
            start += size
    assert [pq.ParquetFile(path).metadata.row_group(g).num_rows for g in range(len(groups))] == (
        groups
    )
    return path


def image_table(first: int, rows: int, **extra: list[Any]) -> pa.Table:
    images = [{"bytes": blob(n), "path": f"{n}.png"} for n in range(first, first + rows)]
    return pa.table({"image": pa.array(images, type=IMAGE), **extra})


def test_hf_image_struct_uneven_row_groups_read_back_exactly(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    table = image_table(0, 50, caption=[f"c{n}" for n in range(50)])
    write_parquet(root / "data/train-00000-of-00002.parquet", table, [7, 13, 1, 20, 9])
    second = image_table(50, 23, caption=[f"c{n}" for n in range(50, 73)])
    write_parquet(root / "data/train-00001-of-00002.parquet", second, [5, 5, 5, 5, 3])
    (root / "dataset_info.json").write_text("{}")
    (root / "README.md").write_text("# pets")

    source = open_source(root)
    assert isinstance(source, HFDatasetSource)
    assert source.column == "image" and source.dataset == "pets"
    items = list(source)
    assert len(items) == 73
    shard0, shard1 = "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"
    assert [i.shard for i in items] == [shard0] * 50 + [shard1] * 23
    assert [i.item_key for i in items] == [str(n) for n in range(50)] + [str(n) for n in range(23)]
    assert [(i.input["row_group"], i.input["row"]) for i in items[5:10]] == [
        (0, 5), (0, 6), (1, 0), (1, 1), (1, 2),
    ]  # fmt: skip
    assert (items[20].input["row_group"], items[20].input["row"]) == (2, 0)
    assert (items[21].input["row_group"], items[21].input["row"]) == (3, 0)
    for index, item in enumerate(items):
        data = item.input
        assert set(data) == {"parquet", "row_group", "row", "column"}
        assert data["parquet"] == str(root / item.shard) and data["column"] == "image"
        cell = read_parquet_cell(data["parquet"], data["row_group"], data["row"], data["column"])
        assert cell == blob(index), f"item {index} at {data}"
        assert check_input(data, allow_paths=True) == data
    assert served_name(items[7].input) == "train-00000-of-00002-1-0"


def test_hf_row_group_size_7_on_50_rows_single_file(tmp_path: Path) -> None:
    table = image_table(0, 50)
    path = tmp_path / "one.parquet"
    pq.write_table(table, path, row_group_size=7)
    assert pq.ParquetFile(path).metadata.num_row_groups == 8
    source = open_source(path)  # no text/url/path column: the image column wins
    assert isinstance(source, HFDatasetSource) and source.dataset == "one"
    items = list(source)
    assert [i.shard for i in items] == ["one.parquet"] * 50
    assert [(i.input["row_group"], i.input["row"]) for i in items] == [
        divmod(n, 7) for n in range(50)
    ]
    for n, item in enumerate(items):
        assert read_parquet_cell(
            str(path), item.input["row_group"], item.input["row"], "image"
        ) == (blob(n))


def test_hf_enumeration_never_reads_the_bytes_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = image_table(0, 30, id=[f"k{n}" for n in range(30)])
    path = write_parquet(tmp_path / "d" / "a.parquet", table, [11, 19])
    requested: list[Any] = []
    real_iter = pq.ParquetFile.iter_batches
    real_read = pq.ParquetFile.read_row_group

    def spy_iter(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        requested.append(kwargs.get("columns"))
        return real_iter(self, *args, **kwargs)

    def spy_read(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        requested.append(kwargs.get("columns", "everything"))
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy_iter)
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy_read)
    assert len(list(HFDatasetSource(path.parent))) == 30
    assert requested == []  # row counts come from the metadata alone
    keyed = list(HFDatasetSource(path.parent, key_column="id"))
    assert [i.item_key for i in keyed] == [f"k{n}" for n in range(30)]
    assert requested == [["id"], ["id"]]  # one read of the key column per row group
    assert (keyed[12].input["row_group"], keyed[12].input["row"]) == (1, 1)


def test_hf_plain_binary_column_and_explicit_column(tmp_path: Path) -> None:
    table = pa.table({"text": [f"t{n}" for n in range(10)], "audio": [blob(n) for n in range(10)]})
    path = write_parquet(tmp_path / "clips.parquet", table, [3, 3, 4])
    assert isinstance(open_source(path), TableColumnSource)  # a text column: still a table
    source = open_source(path, column="audio")
    assert isinstance(source, HFDatasetSource) and source.column == "audio"
    for n, item in enumerate(source):
        args = (item.input["parquet"], item.input["row_group"], item.input["row"], "audio")
        assert read_parquet_cell(*args) == blob(n)
    assert isinstance(open_source(path, column="text"), TableColumnSource)


def test_hf_url_column(tmp_path: Path) -> None:
    urls = [f"https://img.example/{n}.jpg" if n % 4 else None for n in range(20)]
    table = pa.table({"key": [f"id{n}" for n in range(20)], "image_url": urls, "w": range(20)})
    write_parquet(tmp_path / "web" / "data" / "part-0.parquet", table, [6, 6, 8])
    source = open_source(tmp_path / "web", key_column="key")
    assert isinstance(source, HFDatasetSource) and source.column == "image_url"
    items = list(source)
    assert source.skipped == 5
    assert [(i.item_key, i.input) for i in items[:3]] == [
        ("id1", {"url": "https://img.example/1.jpg"}),
        ("id2", {"url": "https://img.example/2.jpg"}),
        ("id3", {"url": "https://img.example/3.jpg"}),
    ]
    assert [i.item_key for i in items] == [f"id{n}" for n in range(20) if n % 4]
    assert all(i.shard == "data/part-0.parquet" for i in items)


def test_hf_path_column_relative_to_dataset_folder(tmp_path: Path) -> None:
    table = pa.table({"path": ["images/a.jpg", "/abs/b.jpg"]})
    write_parquet(tmp_path / "ds" / "data" / "p.parquet", table, [2])
    items = list(open_source(tmp_path / "ds"))
    assert [i.input for i in items] == [
        {"path": str(tmp_path / "ds" / "images" / "a.jpg")},
        {"path": "/abs/b.jpg"},
    ]


def test_hf_garbage_and_unusable_columns(tmp_path: Path) -> None:
    numbers = pa.table({"width": [1, 2], "tags": [["a"], ["b"]]})
    write_parquet(tmp_path / "nums" / "a.parquet", numbers, [2])
    with pytest.raises(ValidationError, match="no image/audio bytes column") as err:
        open_source(tmp_path / "nums")
    assert "'width' (int64)" in err.value.detail and "'tags' (list<" in err.value.detail
    with pytest.raises(ValidationError, match="column 'width' holds int64 values; expected"):
        open_source(tmp_path / "nums", column="width")
    with pytest.raises(ValidationError, match="no column 'image'; columns are 'width'"):
        open_source(tmp_path / "nums", column="image")

    images = image_table(0, 3, tags=[["a"], ["b"], ["c"]])
    write_parquet(tmp_path / "imgs" / "a.parquet", images, [3])
    with pytest.raises(ValidationError, match="key column 'tags' holds list"):
        open_source(tmp_path / "imgs", key_column="tags")
    with pytest.raises(ValidationError, match="no key column 'id'"):
        open_source(tmp_path / "imgs", key_column="id")
    # A second file without the column fails when reached, naming that file.
    write_parquet(tmp_path / "imgs" / "b.parquet", numbers, [2])
    with pytest.raises(ValidationError, match=r"b\.parquet: no column 'image'"):
        list(open_source(tmp_path / "imgs"))

    noise = tmp_path / "noise" / "n.parquet"
    noise.parent.mkdir()
    noise.write_bytes(random.Random(1).randbytes(3000))
    with pytest.raises(ValidationError, match=r"n\.parquet: not a readable Parquet file"):
        open_source(noise.parent)
    with pytest.raises(UnreadableInput, match=r"n\.parquet: not a readable Parquet file"):
        read_parquet_cell(str(noise), 0, 0, "image")

    both = tmp_path / "mixed"
    write_parquet(both / "a.parquet", numbers, [2])
    make_shard(both / "s.tar", [("a.jpg", b"x")])
    with pytest.raises(ValidationError, match=r"holds both \.tar shards and \.parquet files"):
        open_source(both)


def test_read_parquet_cell_null_path_only_and_ranges(tmp_path: Path) -> None:
    images = pa.array(
        [
            {"bytes": b"ok", "path": "0.png"},
            {"bytes": None, "path": "photos/1.png"},
            None,
            {"bytes": None, "path": None},
        ],
        type=IMAGE,
    )
    table = pa.table(
        {"image": images, "raw": [b"r", None, b"r", b"r"], "name": ["a", "b", "c", "d"]}
    )
    path = str(write_parquet(tmp_path / "n.parquet", table, [1, 3]))
    assert read_parquet_cell(path, 0, 0, "image") == b"ok"
    with pytest.raises(ValueError, match=r"row 0 of row group 1, 'image' holds only a path"):
        read_parquet_cell(path, 1, 0, "image")
    with pytest.raises(ValueError, match=r"row 1 of row group 1, 'image' is null"):
        read_parquet_cell(path, 1, 1, "image")
    with pytest.raises(ValueError, match=r"'image' is empty \(no bytes, no path\)"):
        read_parquet_cell(path, 1, 2, "image")
    with pytest.raises(ValueError, match=r"row 0 of row group 1, 'raw' is null"):
        read_parquet_cell(path, 1, 0, "raw")
    with pytest.raises(ValueError, match="'name' holds str, not bytes"):
        read_parquet_cell(path, 0, 0, "name")
    with pytest.raises(ValueError, match="no row group 2; the file has 2"):
        read_parquet_cell(path, 2, 0, "image")
    with pytest.raises(ValueError, match="row group 0 has 1 rows, no row 1"):
        read_parquet_cell(path, 0, 1, "image")
    with pytest.raises(ValueError, match="no column 'img'; columns are 'image', 'raw', 'name'"):
        read_parquet_cell(path, 0, 0, "img")
    with pytest.raises(ValueError, match="row must be a non-negative integer"):
        read_parquet_cell(path, 0, -1, "image")
    with pytest.raises(NotFoundError):
        read_parquet_cell(str(tmp_path / "gone.parquet"), 0, 0, "image")
    # Enumeration lists every row; the null ones fail alone when served.
    items = list(HFDatasetSource(path))
    assert [(i.input["row_group"], i.input["row"]) for i in items] == [
        (0, 0),
        (1, 0),
        (1, 1),
        (1, 2),
    ]


# -- open_source and check_input -------------------------------------------------------------------


def test_open_source_keeps_plain_folders(tmp_path: Path) -> None:
    make_shard(tmp_path / "mixed" / "s.tar", [("a.jpg", b"x")])
    (tmp_path / "mixed" / "photo.jpg").write_bytes(b"x")
    assert isinstance(open_source(tmp_path / "mixed"), FolderSource)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    assert isinstance(open_source(tmp_path / "docs"), FolderSource)
    make_shard(tmp_path / "wds" / "s.tar", [("a.jpg", b"x")])
    (tmp_path / "wds" / "README.md").write_text("shards")
    (tmp_path / "wds" / ".cache").mkdir()
    (tmp_path / "wds" / ".cache" / "junk.bin").write_bytes(b"x")
    assert isinstance(open_source(tmp_path / "wds", extensions=["jpg"]), WebDatasetSource)
    with pytest.raises(ValidationError, match="column and key_column apply only"):
        open_source(tmp_path / "wds", key_column="id")
    (tmp_path / "a.bak").write_text("x")
    with pytest.raises(ValidationError, match=r"expected a folder.*WebDataset shards \(.tar"):
        open_source(tmp_path / "a.bak")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"tar": "/s.tar"}, "missing member, offset, size"),
        ({"tar": "/s.tar", "member": "a", "offset": 0, "size": 1, "x": 1}, "unexpected x"),
        ({"tar": "s.tar", "member": "a", "offset": 512, "size": 1}, "path must be absolute"),
        ({"tar": "/s.tar", "member": "", "offset": 512, "size": 1}, "'member' must be a non-em"),
        ({"tar": "/s.tar", "member": "a", "offset": -1, "size": 1}, "'offset' must be a non-neg"),
        ({"tar": "/s.tar", "member": "a", "offset": 512, "size": True}, "'size' must be a non-n"),
        ({"tar": "/s.tar", "member": "a", "offset": 512, "size": 1.0}, "'size' must be a non-n"),
        ({"tar": "/s.tar", "member": "a", "offset": 512, "size": 1, "meta": "x"}, "'meta' must"),
        ({"parquet": "/p", "row_group": 0, "row": 0}, "missing column"),
        ({"parquet": "/p", "row_group": "0", "row": 0, "column": "c"}, "'row_group' must be"),
        ({"parquet": "/p", "row_group": 0, "row": 2**63, "column": "c"}, "'row' must be"),
        ({"parquet": "/p\x00", "row_group": 0, "row": 0, "column": "c"}, "'parquet' must be"),
        ({"parquet": "/p", "row_group": 0, "row": 0, "column": 5}, "'column' must be"),
    ],
)
def test_check_input_references_refused(value: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_input(value, allow_paths=True)


def test_check_input_references_are_admin_only_and_old_kinds_unchanged() -> None:
    tar = {"tar": "/s.tar", "member": "a.jpg", "offset": 512, "size": 0, "meta": {"txt": "c"}}
    cell = {"parquet": "/p.parquet", "row_group": 3, "row": 0, "column": "image"}
    assert check_input(tar, allow_paths=True) == tar
    assert check_input(cell, allow_paths=True) == cell
    for value in (tar, cell):
        with pytest.raises(ValidationError, match="only admins may name coordinator-side paths"):
            check_input(value, allow_paths=False)
    assert check_input({"text": "hi"}, allow_paths=False) == {"text": "hi"}
    with pytest.raises(ValidationError, match="must be an object with one of: text, url, blob"):
        check_input({"text": "a", "url": "https://x"}, allow_paths=True)
    with pytest.raises(ValidationError, match="unknown item input kind 'video'; use text, url"):
        check_input({"video": "x"}, allow_paths=True)
    assert served_name({"path": "/x/a.wav"}) == "a.wav"
    assert served_name({"url": "https://x/a.wav"}) is None
