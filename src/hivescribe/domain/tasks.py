"""Task types, named alike in the CLI (--task), the API and the dataset."""

from __future__ import annotations

from enum import StrEnum

from hivescribe.domain.errors import ValidationError


class TaskType(StrEnum):
    CAPTION = "caption"
    TRANSCRIPTION = "transcription"
    VIDEO_TRANSCRIPTION = "video-transcription"
    TTS = "tts"
    SUMMARIZATION = "summarization"
    TEXT_TRANSLATION = "text-translation"
    DOCUMENT_TRANSLATION = "document-translation"
    OCR = "ocr"
    ECHO = "echo"  # returns its input after delay_ms: for smoke tests and benchmarks


TASK_TYPES: tuple[str, ...] = tuple(t.value for t in TaskType)

AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aiff")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")
TEXT_EXTENSIONS = (".txt", ".md", ".markdown")
DOCUMENT_EXTENSIONS = (".pdf", ".docx", ".txt", ".md", ".markdown", ".html", ".htm")

# The files a folder source takes for a task when no --ext is given (None: every file).
DEFAULT_EXTENSIONS: dict[str, tuple[str, ...] | None] = {
    TaskType.TRANSCRIPTION: AUDIO_EXTENSIONS + VIDEO_EXTENSIONS,
    TaskType.VIDEO_TRANSCRIPTION: VIDEO_EXTENSIONS + AUDIO_EXTENSIONS,
    TaskType.CAPTION: IMAGE_EXTENSIONS,
    TaskType.OCR: (*IMAGE_EXTENSIONS, ".pdf"),
    TaskType.TTS: TEXT_EXTENSIONS,
    TaskType.SUMMARIZATION: TEXT_EXTENSIONS,
    TaskType.TEXT_TRANSLATION: TEXT_EXTENSIONS,
    TaskType.DOCUMENT_TRANSLATION: DOCUMENT_EXTENSIONS,
}


def parse_task_type(name: str) -> TaskType:
    """The TaskType called ``name``, or a ValidationError that lists the known ones."""
    try:
        return TaskType(name)
    except ValueError:
        raise ValidationError(
            f"unknown task type {name!r}; known task types: {', '.join(TASK_TYPES)}"
        ) from None
