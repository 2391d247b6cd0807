"""`hivescribe run` on real media: the samples transcribe offline, and corrupt audio, video and
image files fail their own items with readable reasons that the summary lists."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.acceptance.harness import clean_env
from tests.tiny_models import build_tiny_blip

pytestmark = pytest.mark.slow

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"
sys.path.insert(0, str(MEDIA.parents[1] / "scripts"))
from demo_report import word_error_rate  # noqa: E402


def run(path: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hivescribe", "run", str(path), "--workers", "1",
               "--data-dir", str(data_dir), *args]  # fmt: skip
    # A wide terminal, so that the summary's lines are not folded.
    env = clean_env(COLUMNS="200")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def items_by_key(data_dir: Path) -> dict[str, dict[str, object]]:
    rows = pq.read_table(data_dir / "dataset" / "items.parquet").to_pylist()
    return {str(row["item_key"]): row for row in rows}


def test_sample_media_transcribe_offline_with_subtitles(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = run(MEDIA, data_dir, "--task", "transcription")
    assert done.returncode == 0, done.stderr
    captions = {
        r["item_key"]: r
        for r in pq.read_table(data_dir / "dataset" / "captions.parquet").to_pylist()
    }
    assert sorted(captions) == ["clip.mp4", "speech.ogg"]  # the .txt scripts are not media
    for key, row in captions.items():
        script = (MEDIA / (Path(key).stem + ".txt")).read_text()
        assert word_error_rate(script, row["caption"]) <= 0.1, row["caption"]
        assert row["segments"] and row["model"] == "tiny.en"
    for fmt in ("srt", "vtt"):
        assert {p.name for p in (data_dir / "dataset" / "subtitles" / fmt).rglob(f"*.{fmt}")} == {
            f"clip.{fmt}",
            f"speech.{fmt}",
        }
    contributors = pq.read_table(data_dir / "dataset" / "contributors.parquet").to_pylist()
    assert [(c["name"], c["total_captions"]) for c in contributors] == [("local", 2)]


def bad_media(folder: Path) -> dict[str, str]:
    """Corrupt files next to good ones; returns {file name: a phrase its reason must hold}."""
    folder.mkdir()
    speech = (MEDIA / "speech.ogg").read_bytes()
    clip = (MEDIA / "clip.mp4").read_bytes()
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, "PNG")
    files = {
        "good.ogg": (speech, ""),
        "good.mp4": (clip, ""),
        "empty.mp3": (b"", "empty"),
        "truncated.ogg": (speech[:700], "truncated"),
        "mislabelled.mp3": (png.getvalue(), "image"),
        "random.wav": (os.urandom(4096), "not an audio or video file"),
        "truncated.mp4": (clip[: len(clip) // 3], "mp4"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: phrase for name, (_, phrase) in files.items() if phrase}


def test_corrupt_audio_and_video_fail_alone_and_are_listed(tmp_path: Path) -> None:
    expected = bad_media(tmp_path / "media")
    done = run(tmp_path / "media", tmp_path / "data", "--task", "transcription")
    assert done.returncode == 0, done.stderr
    assert "2 done, 5 failed" in done.stderr
    items = items_by_key(tmp_path / "data")
    assert items["good.ogg"]["status"] == items["good.mp4"]["status"] == "done"
    for name, phrase in expected.items():
        reason = str(items[name]["last_error"])
        assert items[name]["status"] == "failed" and phrase in reason.lower(), (name, reason)
        assert f"{name}: {reason}" in done.stderr  # the summary lists each failure


def test_corrupt_images_fail_alone_and_are_listed(tmp_path: Path) -> None:
    model = build_tiny_blip(tmp_path / "blip")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, color in enumerate(("red", "green")):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), color).save(buffer, "JPEG")
        (folder / f"good{i}.jpg").write_bytes(buffer.getvalue())
    good = (folder / "good0.jpg").read_bytes()
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "mislabelled.jpg").write_text("these are words, not pixels\n")
    (folder / "random.webp").write_bytes(os.urandom(2048))
    done = run(folder, tmp_path / "data", "--task", "caption", "--model", str(model))
    assert done.returncode == 0, done.stderr
    assert "2 done, 4 failed" in done.stderr
    items = items_by_key(tmp_path / "data")
    for name in ("empty.png", "truncated.jpg", "mislabelled.jpg", "random.webp"):
        reason = str(items[name]["last_error"])
        assert items[name]["status"] == "failed" and reason.startswith("bad input"), reason
        assert f"{name}: {reason}" in done.stderr
    shutil.rmtree(model)
