"""Export memory benchmark: the dataset export streams, so peak RSS stays flat in the
dataset's size. Acceptance: exporting 1,000,000 results to Parquet keeps peak RSS < 500 MB.

1. Builds a SQLite store with N transcription results (bulk SQL, a realistic output JSON with
   text, language, duration and four timed segments per result; about 1 KB a result).
2. Exports it in a fresh child process (so its peak RSS is the export's alone) and prints the
   rows, the time, rows/s, RSS after imports, RSS sampled as the rows go by, and the peak.

Usage: python bench/export_memory.py [--rows 1000000] [--formats parquet,jsonl,csv,hf]
                                     [--data-dir DIR (kept; reused when it has N results)]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module (which pyarrow imports):
# take this folder off the path before importing anything else.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LIMIT_MB = 500.0
CONTRIBUTORS = 50


def build(data_dir: Path, rows: int) -> float:
    """A migrated store holding ``rows`` done items, each with one accepted result."""
    from hivescribe.store import open_store

    open_store(None, data_dir).close()
    started = time.perf_counter()
    db = sqlite3.connect(data_dir / "hivescribe.db", isolation_level=None)
    db.executescript(
        """
        PRAGMA synchronous=OFF;
        BEGIN;
        DELETE FROM results; DELETE FROM items; DELETE FROM workers;
        DELETE FROM jobs; DELETE FROM contributors;
        """
    )
    now = time.time()
    db.executemany(
        "INSERT INTO contributors (id, name, trust_level, created_at) VALUES (?, ?, ?, ?)",
        [(f"c{i:02d}", f"Contributor {i}", i % 6, now) for i in range(CONTRIBUTORS)],
    )
    db.execute(
        "INSERT INTO jobs (id, task_type, params, dataset, owner, created_at, updated_at) "
        "VALUES ('bench', 'transcription', '{}', 'podcasts', 'bench', ?, ?)",
        (now, now),
    )
    seq = f"WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {rows})"
    db.execute(
        f"""{seq}
        INSERT INTO items (id, job_id, dataset, shard, item_key, replica, input, task_type,
                           priority, status, attempts, max_attempts, available_at, worker_id,
                           created_at, updated_at)
        SELECT i, 'bench', 'podcasts', printf('shard-%04d', i / 10000),
               printf('show-%03d/episode-%07d.mp3', i % 500, i), 0,
               printf('{{"url":"https://cdn.example.org/audio/%07d.mp3"}}', i), 'transcription',
               0, 'done', 1, 3, {now}, printf('worker-%02d', i % 20), {now}, {now} + i * 0.001
        FROM seq"""
    )
    segment = """json_object(
        'start', {k} * 2.5 + (i % 7), 'end', {k} * 2.5 + (i % 7) + 2.25,
        'text', printf('Segment {k} of episode %07d, spoken clearly and at length.', i),
        'words', json_array(
            json_object('start', {k} * 2.5 + (i % 7), 'end', {k} * 2.5 + (i % 7) + 0.4,
                        'word', 'Segment')))"""
    segments = ", ".join(segment.format(k=k) for k in range(4))
    db.execute(
        f"""{seq}
        INSERT INTO results (id, item_id, job_id, worker_id, contributor_id, lease_token,
                             attempt, task_type, model, text, output, quality_score,
                             started_at, finished_at, created_at)
        SELECT i, i, 'bench', printf('worker-%02d', i % 20), printf('c%02d', i % {CONTRIBUTORS}),
               'token', 1, 'transcription', 'whisper-large-v3', text,
               json_object('text', text, 'language', 'en', 'duration', 10 + (i % 600) + 0.25,
                           'segments', json_array({segments})),
               0.5 + (i % 50) / 100.0, {now}, {now}, {now} + i * 0.001
        FROM (SELECT i, printf('Transcript of episode %07d. The host welcomes a guest and ', i)
                        || 'they talk about distributed transcription for a while.' AS text
              FROM seq)"""
    )
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - started


def count_results(data_dir: Path) -> int:
    path = data_dir / "hivescribe.db"
    if not path.exists():
        return -1
    with sqlite3.connect(path) as db:
        try:
            return int(db.execute("SELECT count(*) FROM results").fetchone()[0])
        except sqlite3.OperationalError:
            return -1


def export_child(data_dir: Path, out: Path, fmt: str) -> None:
    """Runs in the child process: export, then print one JSON line of figures."""
    import psutil

    from hivescribe.dataset import export_dataset
    from hivescribe.store import Database, sqlite_url

    proc = psutil.Process()
    after_imports = proc.memory_info().rss
    samples: list[tuple[int, float]] = []
    next_sample = [100_000]

    def progress(name: str, rows: int) -> None:
        if name.startswith(("captions", "data", "srt", "vtt")) and rows >= next_sample[0]:
            samples.append((rows, proc.memory_info().rss / 2**20))
            next_sample[0] += 100_000

    db = Database(sqlite_url(data_dir))
    started = time.perf_counter()
    counts = export_dataset(db, out, fmt=fmt, progress=progress)
    took = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    db.dispose()
    # os.walk, not Path.rglob: rglob holds far more memory over a million subtitle files
    size = sum(
        os.stat(os.path.join(folder, name)).st_size
        for folder, _, names in os.walk(out)
        for name in names
    )
    print(
        json.dumps(
            {
                "format": fmt,
                "counts": counts,
                "seconds": took,
                "bytes": size,
                "rss_after_imports_mb": after_imports / 2**20,
                "samples": samples,
                "peak_rss_mb": peak_kb / 1024,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="parquet")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--child", nargs=3, metavar=("DATA_DIR", "OUT", "FORMAT"))
    args = parser.parse_args()
    if args.child:
        export_child(Path(args.child[0]), Path(args.child[1]), args.child[2])
        return 0

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="hs-export-bench-"))
    try:
        if count_results(data_dir) == args.rows:
            print(f"reusing {args.rows:,} results in {data_dir}")
        else:
            took = build(data_dir, args.rows)
            db_mb = (data_dir / "hivescribe.db").stat().st_size / 2**20
            print(f"built {args.rows:,} results in {took:.1f} s ({db_mb:,.0f} MB of SQLite)")
        worst = 0.0
        for fmt in args.formats.split(","):
            out = data_dir / f"export-{fmt}"
            shutil.rmtree(out, ignore_errors=True)
            child = [sys.executable, __file__, "--child", str(data_dir), str(out), fmt]
            line = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            figures = json.loads(line.strip().splitlines()[-1])
            counts = figures["counts"]
            if fmt in ("srt", "vtt"):
                wrote = f"{counts['subtitles']:,} files, {counts['skipped']:,} skipped"
            else:
                wrote = f"{sum(counts.values()):,} rows in {len(counts)} files"
            print(
                f"{fmt:8s} {args.rows:,} results ({wrote}) in {figures['seconds']:.1f} s = "
                f"{args.rows / figures['seconds']:,.0f} results/s, "
                f"{figures['bytes'] / 2**20:,.0f} MB written; RSS after imports "
                f"{figures['rss_after_imports_mb']:.0f} MB, peak {figures['peak_rss_mb']:.0f} MB"
            )
            sampled = ", ".join(f"{n // 1000}k: {mb:.0f}" for n, mb in figures["samples"])
            print(f"         RSS (MB) as the rows go by: {sampled}")
            worst = max(worst, figures["peak_rss_mb"])
            shutil.rmtree(out, ignore_errors=True)
        verdict = "PASS" if worst < LIMIT_MB else "FAIL"
        print(f"{verdict}: peak RSS {worst:.0f} MB (limit {LIMIT_MB:.0f} MB)")
        return 0 if worst < LIMIT_MB else 1
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
