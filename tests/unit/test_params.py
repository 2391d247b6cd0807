"""Each task type's parameters are checked when the job is created, with the field named."""

from __future__ import annotations

import pytest

from hivescribe.domain import TaskType, ValidationError
from hivescribe.domain.inputs import check_params


def test_transcription_parameters_get_their_defaults() -> None:
    params = check_params(TaskType.TRANSCRIPTION, {"language": "en", "chunk_s": 6})
    assert params == {
        "language": "en", "task": "transcribe", "vad": True, "word_timestamps": False,
        "beam_size": 5, "chunk_s": 6.0, "overlap_s": 3,
    }  # fmt: skip
    assert check_params(TaskType.VIDEO_TRANSCRIPTION, {"temperature": [0, 0.2]})["temperature"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"languge": "en"}, "languge"),
        ({"temperature": [2]}, "temperature"),
        ({"temperature": []}, "temperature"),
        ({"language": "english!"}, "language"),
        ({"task": "summarize"}, "task"),
        ({"chunk_s": 1}, "chunk_s"),
        ({"vad": "maybe"}, "vad"),
    ],
)
def test_bad_transcription_parameters_are_refused(params: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=f"bad parameters for transcription: {named}"):
        check_params(TaskType.TRANSCRIPTION, params)


def test_caption_prompts_are_checked_before_any_model_sees_them() -> None:
    stages = [
        {"name": "short", "prompt": "A caption:"},
        {"name": "long", "prompt": "More: {short}"},
    ]
    assert check_params(TaskType.CAPTION, {"stages": stages}) == {"stages": stages}
    with pytest.raises(ValidationError, match=r"unknown placeholders \{nope\}"):
        check_params(TaskType.CAPTION, {"prompt": "hi {nope}"})


@pytest.mark.parametrize(
    ("task", "params", "named"),
    [
        (TaskType.SUMMARIZATION, {"ratio": 0}, "ratio"),
        (TaskType.SUMMARIZATION, {"ratio": "half"}, "ratio"),
        (TaskType.SUMMARIZATION, {"max_words": 0}, "max_words"),
        (TaskType.SUMMARIZATION, {"num_beams": 100}, "num_beams"),
        (TaskType.SUMMARIZATION, {"lenght": 3}, "lenght"),
        (TaskType.TTS, {"speed": 3}, "speed"),
        (TaskType.TTS, {"format": "flac"}, "format"),
        (TaskType.TTS, {"language": "en; rm -rf /"}, "language"),
        (TaskType.TTS, {"speaker_wav": []}, "speaker_wav"),
        (TaskType.TTS, {"speaker_wav": ["a\x00.wav"]}, "speaker_wav"),
        (TaskType.TTS, {"voice": ""}, "voice"),
        (TaskType.OCR, {"language": "eng;spa"}, "language"),
        (TaskType.OCR, {"psm": 14}, "psm"),
        (TaskType.OCR, {"boxes": "maybe"}, "boxes"),
        (TaskType.OCR, {"pages": 0}, "pages"),
    ],
)
def test_bad_text_task_parameters_are_refused(
    task: TaskType, params: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=rf"bad parameters for {task.value}: {named}"):
        check_params(task, params)


def test_text_task_parameters_get_their_defaults() -> None:
    assert check_params(TaskType.TTS, {"voice": "en-us", "speed": 1.5}) == {
        "voice": "en-us", "speed": 1.5, "format": "wav",
    }  # fmt: skip
    assert check_params(TaskType.OCR, {"language": "eng+spa", "boxes": True}) == {
        "language": "eng+spa", "boxes": True,
    }  # fmt: skip
    assert check_params(TaskType.SUMMARIZATION, {"max_sentences": 2}) == {
        "ratio": 0.3, "max_sentences": 2, "keep_lead": True,
    }  # fmt: skip
