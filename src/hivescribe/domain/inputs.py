"""What an item's input may be, and the parameters each task type accepts."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from hivescribe.domain import languages
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.prompts import check_stages
from hivescribe.domain.tasks import TaskType

MAX_INLINE_TEXT = 1_000_000
BLOB_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}$")
# The file uploaded with a task (blobs/keys.py): the task's own, never named by users.
TASK_INPUT_KEY = re.compile(
    r"^tasks/(?P<task_id>[0-9a-f]{32})/(?P<filename>[A-Za-z0-9][A-Za-z0-9._-]{0,127})$"
)
URL_SCHEMES = ("http://", "https://", "s3://")


# Coordinator-side references to part of a file: only admins may name them, like ``path``.
#   {"tar": "/abs/shard.tar", "member": "0001.jpg", "offset": 1536, "size": 20480,
#    "meta": {"txt": "...", "json": "..."}}                      (meta is optional)
#   {"parquet": "/abs/train.parquet", "row_group": 3, "row": 6, "column": "image"}
# ``offset`` is where the member's data starts; ``row`` counts within ``row_group``.
REFERENCE_FIELDS: dict[str, dict[str, type]] = {
    "tar": {"tar": str, "member": str, "offset": int, "size": int},
    "parquet": {"parquet": str, "row_group": int, "row": int, "column": str},
}
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"tar": ("meta",), "parquet": ()}
# Inputs that name files on the coordinator's own disk.
COORDINATOR_PATH_KINDS = ("path", "tar", "parquet")
MAX_NAME = 4096
MAX_META_TEXT = 64 * 1024
MAX_INT = 2**63 - 1


def check_input(value: Any, *, allow_paths: bool) -> dict[str, Any]:
    """An item input is exactly one of: text, url, blob (uploaded bytes), or path (a file the
    coordinator itself can read, which only admins may name); or, also admins only, a reference
    to a tar member or a Parquet cell on the coordinator (see ``REFERENCE_FIELDS``)."""
    if isinstance(value, dict) and any(kind in value for kind in REFERENCE_FIELDS):
        kind = next(k for k in REFERENCE_FIELDS if k in value)
        return _check_reference(kind, value, allow_paths=allow_paths)
    if not isinstance(value, dict) or len(value) != 1:
        raise ValidationError("an item input must be an object with one of: text, url, blob, path")
    ((kind, data),) = value.items()
    if not isinstance(data, str):
        raise ValidationError(f"item input {kind!r} must be a string")
    if kind == "text":
        if len(data) > MAX_INLINE_TEXT:
            raise ValidationError(f"inline text is limited to {MAX_INLINE_TEXT} characters")
    elif kind == "url":
        if not data.startswith(URL_SCHEMES) or len(data) > 4000:
            raise ValidationError(f"item url must start with {', '.join(URL_SCHEMES)}")
    elif kind == "blob":
        if not BLOB_KEY.match(data):
            raise ValidationError("item blob must be a key returned by POST /api/v1/blobs")
    elif kind == "path":
        if not allow_paths:
            raise ValidationError("only admins may name coordinator-side paths; upload instead")
        if not data.startswith("/") or "\x00" in data:
            raise ValidationError("item path must be absolute")
    else:
        raise ValidationError(
            f"unknown item input kind {kind!r}; use text, url, blob or path "
            f"(or a {' or '.join(REFERENCE_FIELDS)} reference)"
        )
    return {kind: data}


def _check_reference(kind: str, value: dict[str, Any], *, allow_paths: bool) -> dict[str, Any]:
    fields = REFERENCE_FIELDS[kind]
    optional = OPTIONAL_FIELDS[kind]
    shape = ", ".join(fields)
    missing = [name for name in fields if name not in value]
    extra = sorted(str(k) for k in value if k not in fields and k not in optional)
    if missing or extra:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unexpected {', '.join(extra)}"] if extra else []
        raise ValidationError(f"a {kind} input has exactly {shape}: {'; '.join(problems)}")
    if not allow_paths:
        raise ValidationError("only admins may name coordinator-side paths; upload instead")
    checked: dict[str, Any] = {}
    for name, wanted in fields.items():
        data = value[name]
        if wanted is int:
            if type(data) is not int or not 0 <= data <= MAX_INT:
                raise ValidationError(f"{kind} input {name!r} must be a non-negative integer")
        elif not isinstance(data, str) or not data or len(data) > MAX_NAME or "\x00" in data:
            raise ValidationError(f"{kind} input {name!r} must be a non-empty string")
        checked[name] = data
    if not checked[kind].startswith("/"):
        raise ValidationError(f"{kind} input path must be absolute")
    if "meta" in value:
        checked["meta"] = _check_meta(value["meta"])
    return checked


def _check_meta(meta: Any) -> dict[str, str]:
    """Small text siblings carried with a tar member: {extension: text}."""
    if not isinstance(meta, dict) or len(meta) > 16:
        raise ValidationError("tar input 'meta' must be an object of at most 16 texts")
    total = 0
    for name, text in meta.items():
        if not isinstance(name, str) or not 0 < len(name) <= 64 or not isinstance(text, str):
            raise ValidationError("tar input 'meta' maps short names to texts")
        total += len(text)
    if total > MAX_META_TEXT:
        raise ValidationError(f"tar input 'meta' is limited to {MAX_META_TEXT} characters")
    return dict(meta)


def served_name(source: dict[str, Any]) -> str | None:
    """The file name a worker is told for an input the coordinator serves itself (path, blob,
    tar member, Parquet cell); None for inline text and external URLs."""
    if "tar" in source:
        return PurePosixPath(str(source["member"])).name
    if "parquet" in source:
        stem = PurePosixPath(str(source["parquet"])).stem
        return f"{stem}-{source['row_group']}-{source['row']}"
    named = source.get("path") or source.get("blob")
    return None if named is None else PurePosixPath(str(named)).name


class EchoParams(BaseModel):
    """echo: returns its input after ``delay_ms``; ``fail_keys`` items fail (for tests);
    ``blob_output`` also returns the input's bytes as an output file (``<item_key>.bin``)."""

    model_config = ConfigDict(extra="forbid")

    delay_ms: int = Field(0, ge=0, le=3_600_000)
    fail_keys: list[str] = Field(default_factory=list, max_length=10_000)
    blob_output: bool = False


class TranscriptionParams(BaseModel):
    """transcription and video-transcription (faster-whisper)."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}$|^auto$")  # None/auto: detect
    task: Literal["transcribe", "translate"] = "transcribe"
    vad: bool = True
    word_timestamps: bool = False
    beam_size: int = Field(5, ge=1, le=20)
    initial_prompt: str | None = Field(None, max_length=2000)
    temperature: float | list[float] | None = None  # each from 0 to 1
    chunk_s: float = Field(600, ge=2)  # long audio is cut at quiet points into chunks of this
    overlap_s: float = Field(3, ge=0)

    @field_validator("temperature")
    @classmethod
    def _temperatures(cls, value: float | list[float] | None) -> float | list[float] | None:
        steps = value if isinstance(value, list) else [] if value is None else [value]
        if (isinstance(value, list) and not value) or not all(0 <= t <= 1 for t in steps):
            raise ValueError("a number from 0 to 1, or a list of them")
        return value


class SummarizationParams(BaseModel):
    """summarization: length controls for every method, generation settings for seq2seq."""

    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(0.3, gt=0, le=1)  # extractive: the fraction of sentences kept
    max_sentences: int | None = Field(None, ge=1)
    max_words: int | None = Field(None, ge=1)
    keep_lead: bool = True  # extractive: keep the first sentence
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    min_new_tokens: int | None = Field(None, ge=0, le=4096)
    num_beams: int | None = Field(None, ge=1, le=16)


class TTSParams(BaseModel):
    """tts: the voice and how it speaks. ``voice`` and ``language`` must agree with the voice a
    worker serves; ``speaker_wav`` (a WAV file's name in the worker's --voices-dir) clones a
    voice with Coqui XTTS v2 or YourTTS."""

    model_config = ConfigDict(extra="forbid")

    voice: str | None = Field(None, min_length=1, max_length=200)
    language: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$|^auto$")
    speed: float = Field(1.0, ge=0.5, le=2.0)
    format: Literal["wav", "ogg", "mp3"] = "wav"
    speaker: str | int | None = None  # multi-speaker voices: a name or an index
    # Coqui voice cloning: one WAV, or a few, named inside the worker's --voices-dir.
    speaker_wav: str | list[str] | None = None

    @field_validator("speaker_wav")
    @classmethod
    def _speaker_wavs(cls, value: str | list[str] | None) -> str | list[str] | None:
        paths = [value] if isinstance(value, str) else value or []
        if (isinstance(value, list) and not 0 < len(value) <= 8) or not all(
            0 < len(p) <= 4096 and "\x00" not in p for p in paths
        ):
            raise ValueError("a file path, or a list of 1 to 8 of them")
        return value


class OCRParams(BaseModel):
    """ocr: ``language`` is tesseract's (eng, spa, eng+spa); ``boxes`` adds each line's box."""

    model_config = ConfigDict(extra="forbid")

    language: str = Field("eng", pattern=r"^[A-Za-z_]{2,20}(\+[A-Za-z_]{2,20})*$")
    boxes: bool = False
    psm: int | None = Field(None, ge=0, le=13)  # tesseract page segmentation mode
    pages: int | None = Field(None, ge=1)  # PDFs: read at most this many pages


class TranslationParams(BaseModel):
    """text-translation: both languages are required and must differ. They are normalised here
    (domain/languages.py: ``eng``, ``English`` -> ``en``), so a job naming an unknown language,
    or one language twice, is refused when it is created. Neural models and endpoints get long
    texts in chunks of at most ``max_chunk_chars``, cut on sentence boundaries; Apertium takes
    any length."""

    model_config = ConfigDict(extra="forbid")

    source_language: str = Field(max_length=64)
    target_language: str = Field(max_length=64)
    max_chunk_chars: int = Field(1000, ge=50, le=20_000)
    num_beams: int | None = Field(None, ge=1, le=16)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)  # per chunk; None: from its length
    mark_unknown: bool = True  # Apertium: "*" before unknown words, as the apertium command does

    @field_validator("source_language", "target_language")
    @classmethod
    def _normalised(cls, value: str) -> str:
        try:
            return languages.normalize(value)
        except ValidationError as exc:
            raise ValueError(exc.detail) from None

    @model_validator(mode="after")
    def _different(self) -> Self:
        try:
            languages.check_pair(self.source_language, self.target_language)
        except ValidationError as exc:
            raise ValueError(exc.detail) from None
        return self


class DocumentTranslationParams(TranslationParams):
    """document-translation: as text-translation, plus OCR for pages without a text layer
    (``auto``), for every page (``always``) or never. ``ocr_language`` is Tesseract's name
    (``eng``, ``spa``, ``eng+spa``); it defaults to the source language's."""

    ocr: Literal["auto", "always", "never"] = "auto"
    ocr_engine: Literal["tesseract", "rapidocr"] = "tesseract"
    ocr_language: str | None = Field(None, pattern=r"^[A-Za-z_]{2,20}(\+[A-Za-z_]{2,20})*$")

    @model_validator(mode="after")
    def _ocr_language(self) -> Self:
        if self.ocr_language is None:
            self.ocr_language = languages.tesseract_code(self.source_language)
        return self


PARAM_SCHEMAS: dict[TaskType, type[BaseModel]] = {
    TaskType.ECHO: EchoParams,
    TaskType.TRANSCRIPTION: TranscriptionParams,
    TaskType.VIDEO_TRANSCRIPTION: TranscriptionParams,
    TaskType.SUMMARIZATION: SummarizationParams,
    TaskType.TTS: TTSParams,
    TaskType.OCR: OCRParams,
    TaskType.TEXT_TRANSLATION: TranslationParams,
    TaskType.DOCUMENT_TRANSLATION: DocumentTranslationParams,
}


def check_params(task_type: TaskType, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a job's parameters against its task type's schema (where one is declared)."""
    if task_type is TaskType.CAPTION:
        check_stages(params)  # prompts and stages, with the placeholder named when unknown
        return params
    schema = PARAM_SCHEMAS.get(task_type)
    if schema is None:
        return params
    try:
        return schema.model_validate(params).model_dump(exclude_none=True)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationError(f"bad parameters for {task_type.value}: {problems}") from None
