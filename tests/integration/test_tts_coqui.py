"""The Coqui text-to-speech backend, as far as it can be tested without coqui-tts: the package
does not import on this CPU-only torch (PyPI's torchaudio is a CUDA build), so no model is
loaded or run here. What is tested:

- without coqui-tts, loading the backend (load_backend, as the worker does) fails with the
  pip install 'hivescribe[coqui]' line, and the registry sends Coqui ids to this backend;
- a model given as a Coqui id, a local folder (config.json and one checkpoint; XTTS as its
  folder) or a checkpoint file resolves, and a bad one fails with what to give instead;
- the job parameters are checked against what a model can do (``ModelFacts``, read from the
  loaded model in production): language matching, speakers, voice cloning from a speaker_wav
  on the worker's disk, speed only where the model supports it, formats.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hivescribe.backends import BackendOptions, InputError, backend_for, load_backend
from hivescribe.backends.tts_coqui import ModelFacts, Request, check_request, resolve_model
from hivescribe.domain.errors import ValidationError

VOICES = Path(__file__).parent  # the worker's voices folder in these tests
HERE = Path(__file__).name  # a file in it: the backend checks that a speaker_wav exists
VCTK = "tts_models/en/vctk/vits"
XTTS = "tts_models/multilingual/multi-dataset/xtts_v2"

# Made-up facts shaped like the registered models (in production they are read from the
# loaded model): one voice; many speakers; many languages with cloning; cloning only.
SINGLE = ModelFacts("tts_models/en/ljspeech/tacotron2-DDC", language="en-us")
MANY = ModelFacts(VCTK, language="en", speakers=("p225", "p226", "p227"), speed="length_scale")
CLONES = ModelFacts(
    XTTS, languages=("en", "es", "zh-cn"), speakers=("Ana Florence",), clones=True, speed="kwarg"
)
YOUR_TTS = ModelFacts(
    "your_tts", languages=("en", "fr-fr", "pt-br"), clones=True, speed="length_scale"
)


@pytest.fixture
def no_coqui(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if coqui-tts were not installed, whether or not it is."""
    for name in ("TTS", "TTS.api"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.usefixtures("no_coqui")
@pytest.mark.parametrize("model", [VCTK, XTTS])
def test_without_coqui_loading_fails_with_the_install_line(model: str) -> None:
    name, options = backend_for("tts", BackendOptions(model=model))
    assert (name, options.model) == ("tts-coqui", model)
    with pytest.raises(ValidationError, match=r"pip install 'hivescribe\[coqui\]'"):
        load_backend(name, options)


@pytest.mark.usefixtures("no_coqui")
def test_a_bad_model_is_named_before_the_package(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs --model"):
        load_backend("tts-coqui", BackendOptions())
    with pytest.raises(ValidationError, match="unknown Coqui model"):
        load_backend("tts-coqui", BackendOptions(model=str(tmp_path / "missing")))


def test_a_coqui_id_resolves_to_itself() -> None:
    assert resolve_model(VCTK) == (VCTK, None, None)


def test_a_local_folder_resolves_to_its_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "my-voice"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": "vits"}))
    (folder / "speakers.pth").write_bytes(b"")
    (folder / "checkpoint_5000.pth").write_bytes(b"")
    config = folder / "config.json"
    assert resolve_model(str(folder)) == ("my-voice", folder / "checkpoint_5000.pth", config)
    (folder / "best_model.pth").write_bytes(b"")
    assert resolve_model(str(folder)) == ("my-voice", folder / "best_model.pth", config)
    assert resolve_model(str(folder / "best_model.pth"))[0] == "my-voice"
    checkpoint = folder / "checkpoint_5000.pth"
    assert resolve_model(str(checkpoint)) == ("checkpoint_5000", checkpoint, config)


def test_an_xtts_folder_is_loaded_as_a_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model": "xtts"}))
    (tmp_path / "model.pth").write_bytes(b"")
    assert resolve_model(str(tmp_path)) == (tmp_path.name, tmp_path, tmp_path / "config.json")


def test_a_bad_local_model_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"no config\.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model": "vits"}))
    with pytest.raises(ValidationError, match="found 0"):
        resolve_model(str(tmp_path))
    (tmp_path / "a.pth").write_bytes(b"")
    (tmp_path / "b.pth").write_bytes(b"")
    with pytest.raises(ValidationError, match="found 2: give the checkpoint file"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValidationError, match="cannot read"):
        resolve_model(str(tmp_path))
    with pytest.raises(ValidationError, match="unknown Coqui model"):
        resolve_model("ljspeech")


@pytest.mark.parametrize(
    ("facts", "params", "expected"),
    [
        (SINGLE, {}, Request(1.0, "wav", None, None, None)),
        (SINGLE, {"language": "en", "format": "MP3"}, Request(1.0, "mp3", None, None, None)),
        (MANY, {}, Request(1.0, "wav", None, "p225", None)),
        (MANY, {"speaker": "p227", "speed": 1.5}, Request(1.5, "wav", None, "p227", None)),
        (CLONES, {}, Request(1.0, "wav", "en", "Ana Florence", None)),
        (
            CLONES,
            {"language": "es-ES", "speed": 0.5},
            Request(0.5, "wav", "es", "Ana Florence", None),
        ),
        (CLONES, {"language": "zh"}, Request(1.0, "wav", "zh-cn", "Ana Florence", None)),
        (
            YOUR_TTS,
            {"language": "fr", "speaker_wav": HERE},
            Request(1.0, "wav", "fr-fr", None, [str(VOICES / HERE)]),
        ),
        (
            YOUR_TTS,
            {"language": "pt_BR", "speaker_wav": [HERE]},
            Request(1.0, "wav", "pt-br", None, [str(VOICES / HERE)]),
        ),
    ],
)
def test_good_parameters(facts: ModelFacts, params: dict[str, Any], expected: Request) -> None:
    assert check_request(params, facts, VOICES) == expected


def test_speaker_wav_is_a_file_in_the_workers_voices_folder(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "voice.wav").write_bytes(b"RIFF")
    (voices / "other.wav").write_bytes(b"RIFF")
    (tmp_path / "private.wav").write_bytes(b"RIFF")
    request = check_request({"speaker_wav": "voice.wav", "language": "en"}, CLONES, voices)
    assert (request.speaker_wav, request.speaker) == ([str(voices / "voice.wav")], None)
    both = check_request({"speaker_wav": ["voice.wav", "other.wav"]}, YOUR_TTS, voices)
    assert both.speaker_wav == [str(voices / "voice.wav"), str(voices / "other.wav")]
    for outside in ("../private.wav", str(tmp_path / "private.wav"), "/etc/passwd"):
        with pytest.raises(InputError, match="in the worker's voices folder"):
            check_request({"speaker_wav": outside}, CLONES, voices)
    with pytest.raises(InputError, match="this worker takes no voices to clone"):
        check_request({"speaker_wav": "voice.wav"}, CLONES)


@pytest.mark.parametrize(
    ("facts", "params", "named"),
    [
        (SINGLE, {"speed": 1.5}, "speed=1.5 is not valid: expected 1.0: model tts_models/en/"),
        (MANY, {"speed": 2.5}, "from 0.5 to 2.0"),
        (SINGLE, {"language": "de"}, "expected en-us, the language of model"),
        (CLONES, {"language": "de"}, f"a language of model {XTTS}: en, es, zh-cn"),
        (CLONES, {"language": 3}, "language=3"),
        (YOUR_TTS, {"language": "pt-PT", "speaker_wav": HERE}, "en, fr-fr, pt-br"),
        (SINGLE, {"speaker": "p225"}, "has one voice"),
        (MANY, {"speaker": "p999"}, "p225, p226, p227"),
        (SINGLE, {"speaker_wav": HERE}, "cannot clone voices (xtts_v2 and your_tts can)"),
        (CLONES, {"speaker_wav": "no-such-voice.wav"}, "in the worker's voices folder"),
        (CLONES, {"speaker_wav": []}, "in the worker's voices folder, or a list"),
        (CLONES, {"speaker_wav": 5}, "in the worker's voices folder, or a list"),
        (CLONES, {"speaker_wav": HERE, "speaker": "Ana Florence"}, "one voice per item"),
        (YOUR_TTS, {}, "speaker_wav=None is not valid: expected a WAV file of the voice"),
        (MANY, {"format": "flac"}, "wav, ogg, mp3"),
    ],
)
def test_bad_parameters_say_what_to_fix(
    facts: ModelFacts, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(InputError) as raised:
        check_request(params, facts, VOICES)
    assert named in str(raised.value)


def test_a_long_speaker_list_is_cut() -> None:
    crowd = ModelFacts("crowd", speakers=tuple(f"s{i}" for i in range(100)))
    with pytest.raises(InputError, match=r"s0, s1, .*s19 and 80 more$"):
        check_request({"speaker": "nobody"}, crowd)
