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
