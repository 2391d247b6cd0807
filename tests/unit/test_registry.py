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


def test_docs_models_page_is_generated_from_the_registry() -> None:
    """docs/models.md carries markdown_tables() verbatim: run scripts/gen_models_doc.py."""
    text = DOCS.read_text()
    assert f"\n{registry.markdown_tables()}\n" in text, "run python scripts/gen_models_doc.py"
    for model in registry.MODELS:
        row = f"| `{model.id}` | {', '.join(model.task_types)} | `{model.backend}` | {model.status}"
        assert row in text
    for name in {m.backend for m in registry.MODELS}:
        assert name in registry.BACKENDS, f"{name} has no install line in BACKENDS"


def test_every_task_type_has_a_default_or_says_how_to_configure_one() -> None:
    from hivescribe.domain.tasks import TASK_TYPES

    for task in TASK_TYPES:
        if task == "caption":
            continue  # no captioning model ships offline: the error says how to pick one
        choice = registry.choose(task, None)
        assert registry.find(task, choice.model or "") is not None, task


def test_translation_and_ocr_routes() -> None:
    assert registry.choose("text-translation", None) == registry.Choice("translation", "apertium")
    marian = "Helsinki-NLP/opus-mt-en-es"
    assert registry.choose("document-translation", marian).backend == "document-translation"
    assert registry.choose("ocr", "rapidocr").backend == "ocr-rapidocr"
    assert registry.choose("tts", "espeak-ng").backend == "tts-espeak"
    assert registry.choose("text-translation", "m", endpoint="http://h/v1").backend == (
        "translation"
    )
    with pytest.raises(ValidationError, match=r"unknown model 'nope' for ocr.*tesseract, rapidocr"):
        registry.choose("ocr", "nope")


def test_local_tts_models_go_to_piper_or_coqui(tmp_path: Path) -> None:
    piper = tmp_path / "piper"
    piper.mkdir()
    (piper / "en_GB-alan-low.onnx").write_bytes(b"")
    (piper / "en_GB-alan-low.onnx.json").write_text("{}")
    coqui = tmp_path / "coqui"
    coqui.mkdir()
    (coqui / "config.json").write_text("{}")
    (coqui / "model.pth").write_bytes(b"")
    assert registry.choose("tts", str(piper)).backend == "tts-piper"
    assert registry.choose("tts", str(piper / "en_GB-alan-low.onnx")).backend == "tts-piper"
    assert registry.choose("tts", str(coqui)).backend == "tts-coqui"
    assert registry.choose("tts", str(coqui / "model.pth")).backend == "tts-coqui"


def test_a_worker_without_task_leaves_out_tasks_whose_program_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hivescribe.backends import available_task_types

    with_programs = available_task_types()
    assert {"text-translation", "document-translation", "ocr", "tts"} <= set(with_programs)
    monkeypatch.setenv("PATH", str(tmp_path))  # no apertium, no tesseract here
    without = available_task_types()
    assert not {"text-translation", "document-translation", "ocr"} & set(without)
    assert "tts" in without and "transcription" in without  # Python libraries only


@pytest.mark.parametrize(
    ("alias", "model_id"),
    [
        ("openai/whisper-tiny", "tiny"),
        ("openai/whisper-base", "base"),
        ("openai/whisper-small", "small"),
        ("openai/whisper-medium", "medium"),
        ("openai/whisper-large", "large-v1"),  # the first large checkpoint, not the newest
        ("openai/whisper-large-v2", "large-v2"),
        ("openai/whisper-large-v3", "large-v3"),
    ],
)
def test_hugging_face_whisper_names_are_aliases(alias: str, model_id: str) -> None:
    found = registry.find("transcription", alias)
    assert found is not None and found.id == model_id
    assert registry.choose("video-transcription", alias) == registry.Choice("whisper", model_id)
    assert registry.find("tts", alias) is None  # an alias names a model of its own tasks only


def test_every_alias_names_a_registered_model() -> None:
    ids = {m.id for m in registry.MODELS}
    assert set(registry.ALIASES.values()) <= ids
    assert not set(registry.ALIASES) & ids
