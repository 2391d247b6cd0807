"""The model registry: backend choice, clear errors, and docs/models.md kept true."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivescribe.backends import registry
from hivescribe.domain.errors import ValidationError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def test_defaults_and_registered_ids() -> None:
    assert registry.choose("transcription", None) == registry.Choice("whisper", "tiny.en")
    assert registry.choose("video-transcription", "large-v3").backend == "whisper"
    assert registry.choose("echo", None).backend == "echo"
    blip = "Salesforce/blip-image-captioning-base"
    assert registry.choose("caption", blip) == registry.Choice("caption-transformers", blip)


def test_local_folders_endpoints_and_explicit_backends(tmp_path: Path) -> None:
    assert registry.choose("caption", str(tmp_path)).backend == "caption-transformers"
    assert registry.choose("transcription", str(tmp_path)).backend == "whisper"
    assert registry.choose("caption", "llava", endpoint="http://h/v1").backend == "caption-openai"
    assert registry.choose("caption", "m", backend="caption-vllm").backend == "caption-vllm"


def test_unknown_models_and_missing_configuration_say_what_to_do() -> None:
    with pytest.raises(ValidationError, match=r"unknown model 'nope'.*registered: tiny\.en"):
        registry.choose("transcription", "nope")
    with pytest.raises(ValidationError, match=r"no model configured for caption.*--endpoint"):
        registry.choose("caption", None)
    with pytest.raises(ValidationError, match="--endpoint needs --model"):
        registry.choose("caption", None, endpoint="http://h/v1")
    with pytest.raises(ValidationError, match="not supported for transcription"):
        registry.choose("transcription", "x", endpoint="http://h/v1")


def test_docs_list_every_registered_model() -> None:
    text = DOCS.read_text()
    for model in registry.MODELS:
        line = next((row for row in text.splitlines() if row.startswith(f"| `{model.id}` |")), "")
        assert line, f"docs/models.md does not list {model.id}"
        assert f"`{model.backend}`" in line and model.status in line
