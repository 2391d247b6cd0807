"""The curl examples of spec/violet-proxy.md ("Usage Examples") run as written, with only the
host and the key adjusted, against a live coordinator: each submission answers a task id and
a pending task; once real workers run (Whisper tiny.en, Piper, TextRank, Apertium: the offline
models they are configured with, whatever hub model_id the example names), every task
completes, and the spec's "Get Task Result" example fetches real results.

The TTS example names ``voice_name=english_alice``, a voice of the spec's own service that no
hivescribe model registers: it is kept with the task as ``voice_name``, and the stock Piper
worker speaks with its own voice (en_US-joe-medium), which the result names."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pypdf
import pytest

from tests.acceptance.harness import CoordinatorProc, wait_for
from tests.speech_helpers import item, spoken, wer

pytestmark = pytest.mark.slow

# spec/violet-proxy.md, section "Usage Examples": the bash blocks of "Submit Transcription
# Task", "Submit TTS Task", "Submit Summarization Task", "Submit Translation Task" (text, then
# "Document Translation") and "Get Task Result", copied character for character.
SPEC_EXAMPLES: dict[str, str] = {
    "transcription": r"""curl -X POST "http://localhost:8000/api/v1/transcription" \
  -H "X-API-Key: your_api_key" \
  -F "audio_file=@audio.wav" \
  -F "source_language=en" \
  -F "model_id=openai/whisper-tiny" \
  -F "priority=normal"
""",
    "tts": r"""curl -X POST "http://localhost:8000/api/v1/tts" \
  -H "X-API-Key: your_api_key" \
  -F "text=Hello, this is a test" \
  -F "source_language=en" \
  -F "voice_name=english_alice" \
  -F "model_id=tts_models/multilingual/multi-dataset/xtts_v2" \
  -F "priority=normal"
""",
    "summarization": r"""curl -X POST "http://localhost:8000/api/v1/summarization" \
  -H "X-API-Key: your_api_key" \
  -F "text=Your long text here..." \
  -F "source_language=en" \
  -F "model_id=facebook/bart-large-cnn" \
  -F "priority=normal"
""",
    "text-translation": r"""curl -X POST "http://localhost:8000/api/v1/text-translation" \
  -H "X-API-Key: your_api_key" \
  -F "text=Hello, world" \
  -F "source_language=en" \
  -F "target_language=es" \
  -F "model_id=facebook/mbart-large-50-many-to-many-mmt" \
  -F "priority=normal"
""",
    "document-translation": r"""curl -X POST "http://localhost:8000/api/v1/document-translation" \
  -H "X-API-Key: your_api_key" \
  -F "document_file=@document.pdf" \
  -F "source_language=en" \
  -F "target_language=es" \
  -F "model_id=facebook/mbart-large-50-many-to-many-mmt" \
  -F "priority=normal"
""",
}
SPEC_GET_RESULT = r"""curl -X GET "http://localhost:8000/api/v1/transcription/{task_id}/result" \
  -H "X-API-Key: your_api_key"
"""

SPEC_HOST = "http://localhost:8000"
SPEC_KEY = "your_api_key"
# What audio.wav says (spoken here by Piper) and what document.pdf holds.
SPOKEN = "The weather today is sunny and warm. Please send the report to the office."
DOCUMENT = "The house is red. We walked to the old market yesterday."
TASK_ID = re.compile(r"^[0-9a-f]{32}$")
TEXT_AND_SPEECH_TASKS = (
    "transcription",
    "summarization",
    "text-translation",
    "document-translation",
)


def adjusted(command: str, base_url: str, api_key: str) -> str:
    """The spec's command with only its host and its key replaced."""
    assert command.count(SPEC_HOST) == 1 and command.count(SPEC_KEY) == 1, command
    return command.replace(SPEC_HOST, base_url).replace(SPEC_KEY, api_key)


def run_curl(command: str, cwd: Path) -> dict[str, Any]:
    """Runs the command with bash (the real curl) and returns the JSON it printed."""
    assert shutil.which("curl"), "apt-get install curl (.ci/run does)"
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, (command, done.returncode, done.stderr)
    try:
        answer: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON from {command!r}: {done.stdout[:2000]!r}") from None
    return answer


def make_files(folder: Path) -> None:
    """audio.wav: real speech (the default Piper voice); document.pdf: a PDF with English."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    from hivescribe.backends import BackendOptions
    from hivescribe.backends.tts import PiperTTS

    backend = PiperTTS(BackendOptions())
    backend.load()
    audio = spoken(backend, item(SPOKEN, key="audio"))
    assert audio.blob is not None
    (folder / "audio.wav").write_bytes(audio.blob)
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    pdf.setFont("Helvetica", 11)
    pdf.drawString(72, 760, DOCUMENT)
    pdf.showPage()
    pdf.save()
    (folder / "document.pdf").write_bytes(out.getvalue())


def apertium(text: str) -> str:
    done = subprocess.run(
        ["apertium", "eng-spa"], input=text, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_spec_curl_examples_run_as_written(
    tmp_path: Path,
    coordinator_factory: Callable[..., CoordinatorProc],
    worker_factory: Callable[..., subprocess.Popen[bytes]],
) -> None:
    coord = coordinator_factory(tasks={"max_active_per_user": None}, rate_limit={"enabled": False})
    registered = httpx.post(
        f"{coord.http_url}/api/v1/auth/register",
        json={"username": "violet", "password": "a long passphrase here"},
        timeout=30,
    )
    assert registered.status_code in (200, 201), registered.text
    key = registered.json()["api_key"]
    with httpx.Client(base_url=coord.http_url, headers={"X-API-Key": key}, timeout=30) as api:
        check_examples(tmp_path, coord, key, api, worker_factory)


def check_examples(
    tmp_path: Path,
    coord: CoordinatorProc,
    key: str,
    api: httpx.Client,
    worker_factory: Callable[..., subprocess.Popen[bytes]],
) -> None:
    files = tmp_path / "cwd"
    files.mkdir()
    make_files(files)

    # Every example is submitted before any worker runs: each answers a pending task.
    tasks: dict[str, str] = {}
    for route, command in SPEC_EXAMPLES.items():
        answer = run_curl(adjusted(command, coord.http_url, key), files)
        assert TASK_ID.match(str(answer.get("task_id"))), (route, answer)
        assert answer["task_type"] == route and answer["status"] == "pending", answer
        tasks[route] = answer["task_id"]
    for route, task_id in tasks.items():
        status = api.get(f"/api/v1/task/{task_id}/status").json()
        assert status["status"] == "pending", (route, status)

    task_args = [arg for task in TEXT_AND_SPEECH_TASKS for arg in ("--task", task)]
    worker_factory(coord.ws_url, "violet-worker", *task_args, "--batch-size", "4")
    worker_factory(coord.http_url, "violet-tts", "--task", "tts")

    def statuses() -> dict[str, str]:
        return {r: api.get(f"/api/v1/task/{t}/status").json()["status"] for r, t in tasks.items()}

    def all_finished() -> dict[str, str] | None:
        now = statuses()
        return now if all(s in ("completed", "failed") for s in now.values()) else None

    try:
        final = wait_for(all_finished, timeout_s=180, interval_s=1)
    except AssertionError:
        log = "".join(
            (tmp_path / f"{w}.log").read_text()[-2000:] for w in ("violet-worker", "violet-tts")
        )
        raise AssertionError(f"tasks not finished: {statuses()}\n{log}") from None
    errors = {r: api.get(f"/api/v1/task/{tasks[r]}/status").json()["error"] for r in tasks}
    assert set(final.values()) == {"completed"}, json.dumps([final, errors], indent=1)

    # The spec's "Get Task Result", for the transcription task and, at the same path with the
    # type changed, for the others.
    results: dict[str, dict[str, Any]] = {}
    for route, task_id in tasks.items():
        command = SPEC_GET_RESULT.replace("{task_id}", task_id)
        if route != "transcription":
            command = command.replace("/api/v1/transcription/", f"/api/v1/{route}/")
        results[route] = run_curl(adjusted(command, coord.http_url, key), files)
        assert results[route]["task_id"] == task_id, results[route]
        assert results[route]["status"] == "completed", results[route]

    heard = results["transcription"]
    assert heard["model"] == "tiny.en", heard
    assert wer(SPOKEN, heard["transcript"]) <= 0.1, heard["transcript"]

    speech = results["tts"]
    assert speech["model"] == "en_US-joe-medium" and speech["text"] == "Hello, this is a test"
    assert speech["output"]["voice"] == "en_US-joe-medium", speech["output"]
    audio = api.get(speech["audio_url"])
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF", audio.content[:64]
    with wave.open(io.BytesIO(audio.content)) as wav:
        assert wav.getnframes() / wav.getframerate() > 0.5

    summary = results["summarization"]
    assert summary["model"] == "textrank", summary  # one sentence: the summary is itself
    assert summary["summary"] == "Your long text here...", summary

    translated = results["text-translation"]
    assert translated["model"] == "apertium", translated
    assert translated["translated_text"].strip() == apertium("Hello, world"), translated
    assert "mundo" in translated["translated_text"].lower(), translated

    document = results["document-translation"]
    assert document["model"] == "apertium" and document["file_url"], document
    pdf = api.get(document["file_url"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF"), pdf.content[:64]
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    assert " ".join(text.split()) == " ".join(apertium(DOCUMENT).split()), text
    assert " ".join(document["translated_text"].split()) == " ".join(text.split()), document
