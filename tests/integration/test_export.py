"""export_dataset on SQLite and PostgreSQL: exact contents, types, pagination, atomicity."""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hivescribe.cli import main as cli
from hivescribe.dataset import SUPPORTED_FORMATS, export_dataset, hf
from hivescribe.dataset.export import (
    CAPTIONS_SCHEMA,
    CONTRIBUTORS_SCHEMA,
    ITEMS_SCHEMA,
    JOBS_SCHEMA,
    snapshot,
)
from hivescribe.dataset.structured import parse_outputs
from hivescribe.dataset.subtitle_files import subtitle_path, write_subtitles
from hivescribe.domain.errors import NotFoundError, ValidationError
from hivescribe.store import FailureIn, NewItem, ResultIn, Store, normalize_url, open_store
from hivescribe.store.schema import items, results

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
FILES = ("captions.parquet", "jobs.parquet", "contributors.parquet", "items.parquet")
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture(params=["sqlite", "postgres"])
def export_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = open_store(None, tmp_path / "data")
        yield store
        store.close()
        return
    admin = sa.create_engine(normalize_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"hs_export_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:  # an unreachable server fails the test, never skips it
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.engine.make_url(normalize_url(ADMIN_URL)).set(database=name)
    store = open_store(url.render_as_string(hide_password=False), tmp_path / "data")
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()


def _read(out: Path, name: str) -> pa.Table:
    return pq.read_table(out / name)


def _by(table: pa.Table, *keys: str) -> dict[Any, dict[str, Any]]:
    rows = table.to_pylist()
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


def _complete(store: Store, worker: str, contributor: str, leases: list[Any], **kw: Any) -> None:
    batch = [
        ResultIn(lease.item_id, lease.token, {"text": lease.item_key.upper()}, text=lease.item_key)
        for lease in leases
    ]
    if kw:
        batch = [ResultIn(r.item_id, r.token, r.output, text=r.text, **kw) for r in batch]
    assert len(store.queue.complete(worker, contributor, batch).accepted) == len(batch)


def _populate(store: Store) -> dict[str, str]:
    """Jobs and shards in every state; returns the job ids by role."""
    store.registry.worker_online(
        "w1", name="w", contributor_id="alice", capabilities={}, transport="ws"
    )
    store.registry.worker_online(
        "w2", name="w", contributor_id="bob", capabilities={}, transport="http"
    )
    store.registry.ensure_contributor("dave", "Dave")
    store.registry.set_trust_level("dave", 3)

    # Job a: shard s1 -> 2 done + 1 permanently failed; shard s2 -> 1 done + 1 leased by w2.
    a = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    keys = [("a", "s1"), ("b", "s1"), ("c", "s1"), ("d", "s2"), ("e", "s2")]
    store.jobs.add_items(a, [NewItem(k, {"text": k}, shard=s) for k, s in keys])
    first = store.queue.claim("w1", ["echo"], 3)
    assert [lease.item_key for lease in first] == ["a", "b", "c"]
    _complete(store, "w1", "alice", first[:2])
    c = first[2]
    assert store.queue.fail("w1", [FailureIn(c.item_id, c.token, "bad input", True)]).accepted
    second = store.queue.claim("w2", ["echo"], 2)
    assert [lease.item_key for lease in second] == ["d", "e"]
    _complete(store, "w2", "bob", second[:1])

    # Job b: shard u1 -> 1 done + 1 pending; shard u2 -> only pending.
    b = store.jobs.create_job(task_type="echo", dataset="ds2", owner="me")
    keys = [("g", "u1"), ("h", "u1"), ("i", "u2")]
    store.jobs.add_items(b, [NewItem(k, {"text": k}, shard=s) for k, s in keys])
    _complete(store, "w1", "alice", store.queue.claim("w1", ["echo"], 1))

    # Job c: all done; one result credited to a contributor who never registered.
    c_job = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    store.jobs.add_items(c_job, [NewItem("k", {"text": "k"}, shard="v1")])
    store.jobs.add_items(c_job, [NewItem("k2", {"text": "k2"}, shard="v1")])
    # claim order is by id: h and i (job b) come first, so claim everything and release
    leases = store.queue.claim("w2", ["echo"], 10)
    by_key = {lease.item_key: lease for lease in leases}
    assert set(by_key) == {"h", "i", "k", "k2"}
    _complete(store, "w2", "bob", [by_key["k"]], model="m-1", quality_score=0.75)
    _complete(store, "w2", "carol", [by_key["k2"]])
    store.queue.fail(
        "w2", [FailureIn(by_key[k].item_id, by_key[k].token, "busy", False) for k in ("h", "i")]
    )

    # Job d: cancelled before any work.
    d = store.jobs.create_job(task_type="echo", dataset="ds", owner="me")
    store.jobs.add_items(d, [NewItem("m", {"text": "m"}, shard="z1")])
    assert store.queue.cancel_job(d) == 1
    return {"a": a, "b": b, "c": c_job, "d": d}


def test_export_contents(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    job = _populate(store)
    out = tmp_path / "out" / "nested"
    calls: list[tuple[str, int]] = []

    def progress(name: str, rows: int) -> None:
        calls.append((name, rows))
        assert not (out / name).exists(), "a file must appear only once complete"

    counts = export_dataset(store.db, out, progress=progress)

    assert counts == {
        "captions.parquet": 6,
        "jobs.parquet": 6,
        "contributors.parquet": 4,
        "items.parquet": 11,
    }
    assert calls == [(name, counts[name]) for name in FILES]
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary files left

    captions = _read(out, "captions.parquet")
    assert captions.schema == CAPTIONS_SCHEMA
    assert captions.schema.field("timestamp").type == TS
    with store.db.read() as conn:
        accepted = conn.execute(sa.select(sa.func.count()).select_from(results)).scalar()
        created = dict(conn.execute(sa.select(results.c.item_id, results.c.created_at)).all())
    assert captions.num_rows == accepted == 6
    ids = captions.column("item_id").to_pylist()
    assert len(set(ids)) == len(ids)
    rows = _by(captions, "item_key")
    assert sorted(rows) == ["a", "b", "d", "g", "k", "k2"]
    assert rows["a"] | {"timestamp": None} == {
        "job_id": job["a"],
        "dataset": "ds",
        "shard": "s1",
        "item_key": "a",
        "caption": "a",
        "contributor_id": "alice",
        "timestamp": None,
        "quality_score": None,
        "task_type": "echo",
        "model": None,
        "worker_id": "w1",
        "attempt": 1,
        "replica": 0,
        "item_id": rows["a"]["item_id"],
        "output": '{"text":"A"}',
        "blob_key": None,
        "segments": None,
        "language": None,
        "duration": None,
    }
    assert rows["k"]["model"] == "m-1" and rows["k"]["quality_score"] == 0.75
    assert rows["k"]["attempt"] == 1
    assert rows["g"]["dataset"] == "ds2" and rows["g"]["shard"] == "u1"
    for row in rows.values():
        expected = datetime.fromtimestamp(created[row["item_id"]], UTC)
        assert abs((row["timestamp"] - expected).total_seconds()) < 1e-5

    jobs_table = _read(out, "jobs.parquet")
    assert jobs_table.schema == JOBS_SCHEMA
    shards = _by(jobs_table, "job_id", "shard")
    summary = {
        key: (r["status"], r["assigned_to"], r["total"], r["done"], r["failed"])
        for key, r in shards.items()
    }
    assert summary == {
        (job["a"], "s1"): ("failed", None, 3, 2, 1),
        (job["a"], "s2"): ("processing", "w2", 2, 1, 0),
        (job["b"], "u1"): ("processing", None, 2, 1, 0),
        (job["b"], "u2"): ("pending", None, 1, 0, 0),
        (job["c"], "v1"): ("completed", None, 2, 2, 0),
        (job["d"], "z1"): ("cancelled", None, 1, 0, 0),
    }
    assert {r["task_type"] for r in shards.values()} == {"echo"}
    assert all(isinstance(r["timestamp"], datetime) for r in shards.values())

    people = _read(out, "contributors.parquet")
    assert people.schema == CONTRIBUTORS_SCHEMA
    assert people.to_pylist() == [
        {"contributor_id": c, "name": n, "total_captions": t, "trust_level": level}
        for c, n, t, level in [
            ("alice", "alice", 3, 0),
            ("bob", "bob", 2, 0),
            ("carol", "carol", 1, 0),  # credited in results, never registered
            ("dave", "Dave", 0, 3),
        ]
    ]
    assert sum(people.column("total_captions").to_pylist()) == accepted

    items_table = _read(out, "items.parquet")
    assert items_table.schema == ITEMS_SCHEMA
    assert items_table.schema.field("updated_at").type == TS
    item_rows = _by(items_table, "item_key")
    assert {k: r["status"] for k, r in item_rows.items()} == {
        "a": "done",
        "b": "done",
        "c": "failed",
        "d": "done",
        "e": "leased",
        "g": "done",
        "h": "pending",
        "i": "pending",
        "k": "done",
        "k2": "done",
        "m": "cancelled",
    }
    assert item_rows["c"]["last_error"] == "bad input"
    assert item_rows["h"]["last_error"] == "busy"
    assert item_rows["m"]["last_error"] == "job cancelled"
    assert item_rows["a"]["last_error"] is None
    assert item_rows["e"]["worker_id"] == "w2"
    assert (item_rows["c"]["attempts"], item_rows["c"]["max_attempts"]) == (1, 3)
    assert {r["item_id"] for r in item_rows.values() if r["status"] == "done"} == set(ids)


def test_export_replaces_previous_files(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    out = tmp_path / "out"
    empty = export_dataset(store.db, out)
    assert empty == dict.fromkeys(FILES, 0)
    assert _read(out, "captions.parquet").schema == CAPTIONS_SCHEMA
    assert _read(out, "jobs.parquet").schema == JOBS_SCHEMA

    _populate(store)
    assert export_dataset(store.db, out)["captions.parquet"] == 6
    assert _read(out, "captions.parquet").num_rows == 6
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_export_paginates_without_losing_or_doubling(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    for worker, contributor in (("w1", "alice"), ("w2", "bob")):
        store.registry.worker_online(
            worker, name=worker, contributor_id=contributor, capabilities={}, transport="ws"
        )
    job = store.jobs.create_job(task_type="echo", dataset="big", owner="me")
    total, done = 12_003, 12_000
    store.jobs.add_items(
        job, (NewItem(f"k{i:05d}", {"text": str(i)}, shard=f"s{i % 7}") for i in range(total))
    )
    completed = 0
    while completed < done:
        worker, contributor = ("w1", "alice") if completed % 6000 < 3000 else ("w2", "bob")
        leases = store.queue.claim(worker, ["echo"], min(3000, done - completed))
        _complete(store, worker, contributor, leases)
        completed += len(leases)

    calls: list[tuple[str, int]] = []
    counts = export_dataset(store.db, tmp_path / "out", progress=lambda n, r: calls.append((n, r)))

    assert counts == {
        "captions.parquet": done,
        "jobs.parquet": 7,
        "contributors.parquet": 2,
        "items.parquet": total,
    }
    assert [r for n, r in calls if n == "captions.parquet"] == [5000, 10000, done]
    assert [r for n, r in calls if n == "items.parquet"] == [5000, 10000, total]

    captions = _read(tmp_path / "out", "captions.parquet")
    keys = captions.column("item_key").to_pylist()
    assert len(keys) == done and sorted(keys) == [f"k{i:05d}" for i in range(done)]
    assert len(set(captions.column("item_id").to_pylist())) == done
    assert Counter(captions.column("contributor_id").to_pylist()) == {"alice": 6000, "bob": 6000}

    items_table = _read(tmp_path / "out", "items.parquet")
    assert items_table.column("item_key").to_pylist() == [f"k{i:05d}" for i in range(total)]
    assert Counter(items_table.column("status").to_pylist()) == {"done": done, "pending": 3}

    people = _by(_read(tmp_path / "out", "contributors.parquet"), "contributor_id")
    assert {k: r["total_captions"] for k, r in people.items()} == {"alice": 6000, "bob": 6000}
    shards = _read(tmp_path / "out", "jobs.parquet").to_pylist()
    assert sum(r["total"] for r in shards) == total
    assert sum(r["done"] for r in shards) == done
    # the 3 pending items are k12000..k12002, in shards s2, s3 and s4
    assert {r["shard"]: r["status"] for r in shards} == {
        f"s{i}": "processing" if i in (2, 3, 4) else "completed" for i in range(7)
    }


def test_export_rejects_unknown_format(export_store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="parquet") as info:
        export_dataset(export_store.db, tmp_path / "out", fmt="xml")
    assert "'xml'" in info.value.detail
    for fmt in SUPPORTED_FORMATS:
        assert fmt in info.value.detail
    assert not (tmp_path / "out").exists()


def test_failed_export_leaves_previous_files(export_store: Store, tmp_path: Path) -> None:
    store = export_store
    _populate(store)
    out = tmp_path / "out"
    export_dataset(store.db, out)
    before = {name: (out / name).read_bytes() for name in FILES}

    def explode(name: str, rows: int) -> None:
        if name == "jobs.parquet":
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        export_dataset(store.db, out, progress=explode)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # temporary file removed
    assert (out / "jobs.parquet").read_bytes() == before["jobs.parquet"]


# -- structured results: segments, language, duration -----------------------------------------

SEGMENT_TYPE = pa.list_(
    pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())])
)
EP1_WORDS = [
    {"start": 0, "end": 0.5, "word": "hello"},
    {"start": 0.6, "end": 1.5, "word": "there."},
]
# item_key -> (output, the worker's text)
TRANSCRIPTS: dict[str, tuple[dict[str, Any], str | None]] = {
    "ep1.mp3": (
        {
            "text": "hello there. general",
            "language": "en",
            "duration": 12.5,
            "segments": [
                {"start": 0, "end": 1.5, "text": "hello there.", "words": EP1_WORDS},
                {"start": 1.5, "end": 3.25, "text": "general"},
            ],
            "model_info": {"beam": 5},
        },
        "hello there. general",
    ),
    # no text anywhere but the segments: the caption is their texts joined
    "show/ep2.wav": ({"segments": [{"start": 0.0, "end": 2.0, "text": " only segments "}]}, None),
    "ep3.mp3": ({"text": "no timing", "language": "de"}, "no timing"),
    "ep4.flac": ({"text": "silence", "segments": [], "duration": 4}, "silence"),
}


def _transcribe(store: Store, outputs: dict[str, tuple[dict[str, Any], str | None]]) -> str:
    """A transcription job whose items got the given outputs (and worker texts)."""
    store.registry.worker_online(
        "w9", name="gpu", contributor_id="erin", capabilities={}, transport="ws"
    )
    job = store.jobs.create_job(task_type="transcription", dataset="podcasts", owner="me")
    store.jobs.add_items(job, [NewItem(k, {"url": f"https://x/{k}"}, shard="s") for k in outputs])
    leases = store.queue.claim("w9", ["transcription"], len(outputs))
    batch = [
        ResultIn(
            lease.item_id,
            lease.token,
            outputs[lease.item_key][0],
            text=outputs[lease.item_key][1],
            model="whisper-small",
        )
        for lease in leases
    ]
    assert len(store.queue.complete("w9", "erin", batch).accepted) == len(outputs)
    return job


def test_structured_columns(export_store: Store, tmp_path: Path) -> None:
    _transcribe(export_store, TRANSCRIPTS)
    export_dataset(export_store.db, tmp_path / "out")

    captions = _read(tmp_path / "out", "captions.parquet")
    assert captions.schema == CAPTIONS_SCHEMA
    assert captions.schema.field("segments").type == SEGMENT_TYPE
    assert captions.schema.field("language").type == pa.string()
    assert captions.schema.field("duration").type == pa.float64()
    rows = _by(captions, "item_key")
    assert rows["ep1.mp3"]["segments"] == [
        {"start": 0.0, "end": 1.5, "text": "hello there."},
        {"start": 1.5, "end": 3.25, "text": "general"},
    ]
    assert (rows["ep1.mp3"]["language"], rows["ep1.mp3"]["duration"]) == ("en", 12.5)
    assert rows["ep1.mp3"]["caption"] == "hello there. general"
    assert json.loads(rows["ep1.mp3"]["output"]) == TRANSCRIPTS["ep1.mp3"][0]  # words kept here
    assert rows["show/ep2.wav"]["caption"] == "only segments"
    assert rows["show/ep2.wav"]["language"] is None
    assert rows["ep3.mp3"]["segments"] is None  # the output has none
    assert rows["ep3.mp3"]["language"] == "de"
    assert rows["ep4.flac"]["segments"] == []  # the output says: no speech
    assert rows["ep4.flac"]["duration"] == 4.0
    assert {r["task_type"] for r in rows.values()} == {"transcription"}


def test_outputs_of_unexpected_shapes_become_nulls() -> None:
    good = json.dumps(TRANSCRIPTS["ep1.mp3"][0])
    odd = [
        '{"text": 5, "segments": "not a list", "duration": "long", "language": ["en"]}',
        '{"segments": [{"start": "0", "end": null, "text": 1}, 7], "duration": NaN}',
        "not json",
        "[1, 2]",
        None,
    ]
    fast = parse_outputs([good])  # Arrow's JSON reader
    slow = parse_outputs([good, *odd])  # one odd output: the batch is parsed row by row
    assert slow.schema == fast.schema
    assert slow.slice(0, 1).to_pylist() == fast.to_pylist()
    nothing = {"text": None, "segments": None, "language": None, "duration": None}
    assert slow.slice(1).to_pylist() == [
        nothing,
        nothing | {"segments": [{"start": None, "end": None, "text": None}]},
        nothing,
        nothing,
        nothing,
    ]


# -- jsonl, csv ----------------------------------------------------------------------------------


def _iso(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def test_jsonl_export_matches_parquet(export_store: Store, tmp_path: Path) -> None:
    _populate(export_store)
    _transcribe(export_store, TRANSCRIPTS)
    parquet_counts = export_dataset(export_store.db, tmp_path / "pq")
    counts = export_dataset(export_store.db, tmp_path / "jl", fmt="jsonl")

    assert counts == {name.replace(".parquet", ".jsonl"): n for name, n in parquet_counts.items()}
    assert sorted(p.name for p in (tmp_path / "jl").iterdir()) == sorted(counts)
    for name in FILES:
        lines = (tmp_path / "jl" / name.replace(".parquet", ".jsonl")).read_text().splitlines()
        assert [json.loads(line) for line in lines] == [
            _iso(row) for row in _read(tmp_path / "pq", name).to_pylist()
        ]


def test_csv_export_matches_parquet(export_store: Store, tmp_path: Path) -> None:
    _populate(export_store)
    _transcribe(export_store, TRANSCRIPTS)
    parquet_counts = export_dataset(export_store.db, tmp_path / "pq")
    counts = export_dataset(export_store.db, tmp_path / "csv", fmt="csv")

    assert counts == {name.replace(".parquet", ".csv"): n for name, n in parquet_counts.items()}
    for name in FILES:
        with (tmp_path / "csv" / name.replace(".parquet", ".csv")).open(newline="") as f:
            rows = list(csv.DictReader(f))
        table = _read(tmp_path / "pq", name)
        assert len(rows) == table.num_rows
        assert list(rows[0]) == table.schema.names
    with (tmp_path / "csv" / "captions.csv").open(newline="") as f:
        captions = {row["item_key"]: row for row in csv.DictReader(f)}
    expected = _by(_read(tmp_path / "pq", "captions.parquet"), "item_key")
    for key, row in captions.items():
        segments = expected[key]["segments"]
        assert row["segments"] == (
            "" if segments is None else json.dumps(segments, separators=(",", ":"))
        )
        assert row["caption"] == expected[key]["caption"]
        when = datetime.fromisoformat(row["timestamp"])
        assert when == expected[key]["timestamp"]
    assert json.loads(captions["ep1.mp3"]["segments"])[1] == {
        "start": 1.5,
        "end": 3.25,
        "text": "general",
    }


# -- srt, vtt ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "key", "expected"),
    [
        ("podcasts", "ep1.mp3", "podcasts/ep1.srt"),
        ("podcasts", "show/s01/ep2.wav", "podcasts/show/s01/ep2.srt"),
        ("podcasts", "no-extension", "podcasts/no-extension.srt"),
        ("podcasts", "file.name.tar.gz", "podcasts/file.name.tar.srt"),
        ("podcasts", ".hidden", "podcasts/.hidden.srt"),
        ("podcasts", "../../etc/passwd", "podcasts/%2E%2E/%2E%2E/etc/passwd.srt"),
        ("podcasts", "/etc/cron.d/job.wav", "podcasts/etc/cron.d/job.srt"),
        ("podcasts", "C:\\Users\\me\\a.mp3", "podcasts/C_/Users/me/a.srt"),
        ("podcasts", "a/./b//c.mp3", "podcasts/a/b/c.srt"),
        ("podcasts", "tab\there\x01.mp3", "podcasts/tab_here_.srt"),
        ("podcasts", "..", "podcasts/%2E%2E.srt"),
        ("podcasts", "", "podcasts/item.srt"),
        ("..", "x.mp3", "%2E%2E/x.srt"),
        ("/abs", "x.mp3", "abs/x.srt"),
        ("", "x.mp3", "dataset/x.srt"),
        ("org/name", "x.mp3", "org/name/x.srt"),
    ],
)
def test_subtitle_paths_stay_inside_the_output(dataset: str, key: str, expected: str) -> None:
    path = subtitle_path(dataset, key, ".srt")
    assert str(path) == expected
    assert not path.is_absolute() and ".." not in path.parts


def test_subtitle_names_are_cut_to_fit_filesystems() -> None:
    path = subtitle_path("d", "é" * 300 + ".mp3", ".vtt")
    assert len(path.name.encode()) <= 255 and path.name.endswith(".vtt")


def _fake_render(segments: list[dict[str, Any]]) -> str:
    return json.dumps(segments)


def test_subtitle_files_layout(export_store: Store, tmp_path: Path) -> None:
    """Hostile names stay inside OUT; names that collide (replicas, escapes) all get a file."""
    store = export_store
    store.registry.worker_online("w", name="w", contributor_id="c", capabilities={}, transport="ws")
    job = store.jobs.create_job(
        task_type="transcription", dataset="../pods", owner="me", replication=2
    )
    keys = ["../../../escape.mp3", "/abs/root.wav", "C:\\win\\x.mp3", "n/deep/ep.v2.mp3"]
    store.jobs.add_items(job, [NewItem(k, {"url": "u"}, shard="s") for k in keys])
    store.jobs.add_items(job, [NewItem("nothing.mp3", {"url": "u"}, shard="s")])
    leases = store.queue.claim("w", ["transcription"], 100)
    segments = [
        {"start": 0, "end": 1, "text": "hi", "words": [{"start": 0, "end": 1, "word": "hi"}]}
    ]
    batch = [
        ResultIn(
            lease.item_id,
            lease.token,
            {"text": "-"} if lease.item_key == "nothing.mp3" else {"segments": segments},
        )
        for lease in leases
    ]
    assert len(store.queue.complete("w", "c", batch).accepted) == 10  # 5 items x 2 replicas
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("not ours")

    with snapshot(store.db) as conn:
        assert conn is not None
        counts = write_subtitles(conn, out, "srt", render=_fake_render)

    assert counts == {"subtitles": 8, "skipped": 2}
    ids: dict[str, list[int]] = {}  # item ids of each key, in the order results were accepted
    with store.db.read() as conn:
        query = (
            sa.select(items.c.item_key, items.c.id)
            .join(results, results.c.item_id == items.c.id)
            .order_by(results.c.id)
        )
        for key, item_id in conn.execute(query):
            ids.setdefault(key, []).append(item_id)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    expected = ["keep.txt"]
    for key, stem in [
        ("../../../escape.mp3", "%2E%2E/pods/%2E%2E/%2E%2E/%2E%2E/escape"),
        ("/abs/root.wav", "%2E%2E/pods/abs/root"),
        ("C:\\win\\x.mp3", "%2E%2E/pods/C_/win/x"),
        ("n/deep/ep.v2.mp3", "%2E%2E/pods/n/deep/ep.v2"),
    ]:
        _, second = ids[key]  # the replica accepted second gets its item id in its name
        expected += [f"{stem}.srt", f"{stem}.{second}.srt"]
        assert json.loads((out / f"{stem}.srt").read_text()) == segments  # words passed on
    assert files == sorted(expected)
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve())
    assert {p.name for p in tmp_path.iterdir()} - {"data"} == {"out"}  # nothing outside OUT


def test_subtitles_replace_the_previous_export(export_store: Store, tmp_path: Path) -> None:
    _transcribe(export_store, TRANSCRIPTS)
    out = tmp_path / "out"
    (out / "podcasts").mkdir(parents=True)
    (out / "podcasts" / "stale.srt").write_text("from an earlier export")
    with snapshot(export_store.db) as conn:
        assert conn is not None
        counts = write_subtitles(conn, out, "vtt", render=_fake_render)
    assert counts == {"subtitles": 2, "skipped": 2}
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["podcasts/ep1.vtt", "podcasts/show/ep2.vtt"]
    assert sorted(p.name for p in out.iterdir()) == ["podcasts"]  # no staging folder left


def test_srt_and_vtt_export(export_store: Store, tmp_path: Path) -> None:
    _populate(export_store)  # echo results: no segments, skipped
    _transcribe(export_store, TRANSCRIPTS)
    for fmt in ("srt", "vtt"):
        counts = export_dataset(export_store.db, tmp_path / fmt, fmt=fmt)
        assert counts == {"subtitles": 2, "skipped": 6 + 2}
        files = sorted(
            str(p.relative_to(tmp_path / fmt)) for p in (tmp_path / fmt).rglob("*") if p.is_file()
        )
        assert files == [f"podcasts/ep1.{fmt}", f"podcasts/show/ep2.{fmt}"]
        first = (tmp_path / fmt / f"podcasts/ep1.{fmt}").read_text()
        assert "-->" in first and "hello there." in first and "general" in first
        assert first.startswith("WEBVTT") == (fmt == "vtt")
        assert "only segments" in (tmp_path / fmt / f"podcasts/show/ep2.{fmt}").read_text()


# -- hf ------------------------------------------------------------------------------------------


def test_hf_folder(export_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hf, "SHARD_ROWS", 4)
    _populate(export_store)
    _transcribe(export_store, TRANSCRIPTS)
    out = tmp_path / "hf"
    (out / "data").mkdir(parents=True)
    (out / "data" / "captions-00009.parquet").write_text("a shard of an earlier export")

    counts = export_dataset(export_store.db, out, fmt="hf")

    assert counts == {
        "data/captions-00000.parquet": 4,
        "data/captions-00001.parquet": 4,
        "data/captions-00002.parquet": 2,
    }
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data"]
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(
        name.removeprefix("data/") for name in counts
    )
    table = pq.read_table(out / "data")
    assert table.schema == CAPTIONS_SCHEMA and table.num_rows == 10
    assert len(set(table.column("item_id").to_pylist())) == 10
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: default\n")
    assert "path: data/captions-*.parquet" in card
    assert "| rows (results) | 10 |" in card and "| shards | 3 |" in card
    assert "| jobs | 4 |" in card  # a, b and c of _populate, and the transcription job
    assert "| task `echo` | 6 |" in card and "| task `transcription` | 4 |" in card
    assert "| alice | 3 |" in card and "| erin | 4 |" in card
    for field in CAPTIONS_SCHEMA:
        assert f"| `{field.name}` |" in card


def test_hf_folder_of_an_empty_dataset(export_store: Store, tmp_path: Path) -> None:
    assert export_dataset(export_store.db, tmp_path, fmt="hf") == {"data/captions-00000.parquet": 0}
    assert pq.read_table(tmp_path / "data").schema == CAPTIONS_SCHEMA


def test_hf_folder_is_a_folder_of_its_own(export_store: Store, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_dataset(export_store.db, out)
    with pytest.raises(ValidationError, match=r"captions\.parquet.*folder of its own"):
        export_dataset(export_store.db, out, fmt="hf")
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)


def test_hf_folder_loads_with_datasets(
    export_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets  # a dev dependency: the hf format must load with the real library

    monkeypatch.setattr(hf, "SHARD_ROWS", 3)
    _transcribe(export_store, TRANSCRIPTS)
    out = tmp_path / "hf"
    export_dataset(export_store.db, out, fmt="hf")

    for loaded in (
        datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "cache")),
        datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache2")),
    ):
        train = loaded["train"]
        assert train.num_rows == 4
        assert train.column_names == CAPTIONS_SCHEMA.names
        rows = {row["item_key"]: row for row in train}
        assert rows["ep1.mp3"]["segments"][1] == {"start": 1.5, "end": 3.25, "text": "general"}
        assert rows["ep3.mp3"]["segments"] is None


# -- one job -------------------------------------------------------------------------------------


def test_export_one_job(export_store: Store, tmp_path: Path) -> None:
    job = _populate(export_store)
    counts = export_dataset(export_store.db, tmp_path / "out", job_id=job["a"])

    assert counts == {
        "captions.parquet": 3,
        "jobs.parquet": 2,
        "contributors.parquet": 2,
        "items.parquet": 5,
    }
    out = tmp_path / "out"
    assert set(_read(out, "captions.parquet").column("job_id").to_pylist()) == {job["a"]}
    assert set(_read(out, "jobs.parquet").column("job_id").to_pylist()) == {job["a"]}
    assert set(_read(out, "items.parquet").column("job_id").to_pylist()) == {job["a"]}
    people = {
        r["contributor_id"]: r["total_captions"]
        for r in _read(out, "contributors.parquet").to_pylist()
    }
    assert people == {"alice": 2, "bob": 1}  # counted within the job


def test_export_of_an_unknown_job(export_store: Store, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        export_dataset(export_store.db, tmp_path / "out", fmt="csv", job_id="nope")
    assert not (tmp_path / "out").exists()


# -- the command ---------------------------------------------------------------------------------


def test_export_command(export_store: Store, tmp_path: Path) -> None:
    job = _populate(export_store)
    _transcribe(export_store, TRANSCRIPTS)
    url = ("--database-url", export_store.db.url)
    runner = CliRunner(env={"COLUMNS": "200"})

    result = runner.invoke(
        cli.app,
        ["export", *url, "--output", str(tmp_path / "c"), "--format", "csv", "--job", job["a"]],
    )
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'c' / 'captions.csv'}: 3 rows" in result.output

    result = runner.invoke(
        cli.app, ["export", *url, "--output", str(tmp_path / "s"), "--format", "srt"]
    )
    assert result.exit_code == 0, result.output
    assert "2 .srt files" in result.output and "skipped 8 results" in result.output

    result = runner.invoke(
        cli.app, ["export", *url, "--output", str(tmp_path / "h"), "--format", "hf"]
    )
    assert result.exit_code == 0, result.output
    assert "data/captions-00000.parquet: 10 rows" in result.output

    result = runner.invoke(
        cli.app, ["export", *url, "--output", str(tmp_path / "x"), "--format", "xml"]
    )
    assert result.exit_code == 2
    assert "unknown format 'xml'" in result.output and "parquet, jsonl, csv" in result.output
    assert not (tmp_path / "x").exists()

    result = runner.invoke(
        cli.app, ["export", *url, "--output", str(tmp_path / "x"), "--job", "nope"]
    )
    assert result.exit_code != 0 and "no job 'nope'" in result.output
    assert not (tmp_path / "x").exists()


def test_command_formats_are_the_exporters() -> None:
    assert cli.EXPORT_FORMATS == SUPPORTED_FORMATS
