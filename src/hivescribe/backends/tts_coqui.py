"""tts-coqui: text to speech with Coqui TTS (the coqui-tts package, imported as ``TTS``), for
the ``tts`` task type: natural voices in many languages, many speakers, and voice cloning.

Needs pip install 'hivescribe[coqui]'; without it the backend refuses to load and says so.
The worker's ``--model`` is a Coqui model id (tts_models/en/vctk/vits,
tts_models/multilingual/multi-dataset/xtts_v2...), whose weights Coqui downloads on first use
(xtts_v2 asks to accept its CPML licence: set COQUI_TOS_AGREED=1 on the worker), or a local
model as Coqui's trainer saves it: a folder with config.json and one checkpoint (.pth), or the
checkpoint with config.json beside it. The registry sends local folders to Piper, so give
``--backend tts-coqui`` with them.

Job parameters (``item.params``), checked against what the loaded model can do:
- ``language``: multilingual models speak one of theirs (en-US finds en; fr finds fr-fr),
  English when none is given; single-language models refuse another language;
- ``speaker``: one of a multi-speaker model's speakers (the first when none is given);
- ``speaker_wav``: for models that clone voices (xtts_v2, your_tts), the name of a WAV file of
  the voice to clone, or a list of them, inside the folder the worker's operator opened with
  ``hivescribe worker --voices-dir DIR``. Nothing is sent with the item, so the file must be
  put there beforehand. A worker without --voices-dir refuses speaker_wav, and a name that
  leaves the folder is refused: a job cannot make a worker read, or probe for, its other files;
- ``speed`` (0.5 to 2.0): VITS models (your_tts and vctk/vits among them) and XTTS; other
  models refuse any speed but 1.0; ``format``: wav, ogg or mp3, as for every speech backend.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivescribe.backends.base import Backend, BackendOptions, Outcome, WorkItem
from hivescribe.backends.speech_out import (
    bad,
    check_format,
    check_speed,
    same_language,
    speech_result,
    text_of,
    to_int16,
)
from hivescribe.domain.errors import ValidationError

__all__ = ["CoquiTTS", "ModelFacts", "Request", "check_request", "resolve_model"]

INSTALL = "pip install 'hivescribe[coqui]' (coqui-tts with torch)"
CHECKPOINT_NAMES = ("model.pth", "model_file.pth", "best_model.pth", "checkpoint.pth")
SHOWN_SPEAKERS = 20  # an error lists this many of a model's speakers


@dataclass(frozen=True)
class ModelFacts:
    """What a loaded model can do, as far as the job parameters are concerned."""

    name: str
    languages: tuple[str, ...] = ()  # a multilingual model's languages
    language: str | None = None  # a single-language model's language, when its config says
    speakers: tuple[str, ...] = ()
    clones: bool = False  # takes speaker_wav
    speed: str = ""  # how it changes pace: "length_scale", "kwarg", or "" (it cannot)


@dataclass(frozen=True)
class Request:
    speed: float
    format: str
    language: str | None  # passed to Coqui: only for multilingual models
    speaker: str | None
    speaker_wav: list[str] | None


def resolve_model(model: str | None) -> tuple[str, Path | None, Path | None]:
    """(model id, checkpoint, config): a Coqui id has no paths; a local model has both (for
    XTTS the checkpoint is its folder, which XTTS loads itself)."""
    if not model:
        raise ValidationError(
            "the tts-coqui backend needs --model: a Coqui model id such as "
            "tts_models/en/vctk/vits, or a local folder with config.json and a checkpoint"
        )
    path = Path(model).expanduser()
    if not path.exists():
        if model.startswith("tts_models/"):
            return model, None, None
        raise ValidationError(
            f"unknown Coqui model {model!r}: give a Coqui id (tts_models/LANGUAGE/DATASET/NAME) "
            "or a local folder with config.json and a checkpoint (.pth)"
        )
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    if not config.is_file():
        raise ValidationError(f"Coqui model {model!r} has no config.json beside it")
    if path.is_file():
        return (folder.name if path.name in CHECKPOINT_NAMES else path.stem), path, config
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("model", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise ValidationError(f"cannot read {config}: {exc}") from None
    if kind == "xtts":
        return path.name, path, config
    named = [folder / name for name in CHECKPOINT_NAMES if (folder / name).is_file()]
    found = named or [p for p in sorted(folder.glob("*.pth")) if "speaker" not in p.name]
    if len(found) != 1:
        raise ValidationError(
            f"expected one checkpoint (.pth) in {path}, found {len(found)}: give the checkpoint "
            "file itself as --model"
        )
    return path.name, found[0], config


def check_request(
    params: dict[str, Any], facts: ModelFacts, voices_dir: Path | None = None
) -> Request:
    """The item's parameters, checked against the model and the worker's voices folder;
    InputError says what to change."""
    speed, fmt = check_speed(params), check_format(params)
    if speed != 1.0 and not facts.speed:
        bad("speed", speed, f"1.0: model {facts.name} cannot change its pace")
    language = _language(params.get("language"), facts)
    speaker, wavs = params.get("speaker"), params.get("speaker_wav")
    if wavs is not None:
        wavs = _speaker_wavs(wavs, facts, voices_dir)
        if speaker is not None:
            bad("speaker", speaker, "none when speaker_wav is given: one voice per item")
    elif speaker is not None:
        if speaker not in facts.speakers:
            bad("speaker", speaker, _speaker_choice(facts))
    elif facts.speakers:
        speaker = facts.speakers[0]
    elif facts.clones:
        bad(
            "speaker_wav",
            None,
            f"a WAV file of the voice to clone: model {facts.name} has no speakers of its own",
        )
    return Request(speed, fmt, language, speaker, wavs)


def _language(value: Any, facts: ModelFacts) -> str | None:
    """The model's own code for the language asked; English when none is asked."""
    asked = "en" if value in (None, "", "auto") else value
    if not isinstance(asked, str):
        bad("language", value, "a language code such as en or pt-BR")
    if not facts.languages:
        spoken = facts.language
        if spoken and value not in (None, "", "auto") and not same_language(asked, spoken):
            bad("language", value, f"{spoken}, the language of model {facts.name}")
        return None
    key = asked.lower().replace("_", "-")
    exact = [spoken for spoken in facts.languages if spoken.lower() == key]
    close = [spoken for spoken in facts.languages if same_language(key, spoken)]
    if exact or close:
        return (exact or close)[0]
    bad("language", value, f"a language of model {facts.name}: {', '.join(facts.languages)}")


def _speaker_wavs(value: Any, facts: ModelFacts, voices_dir: Path | None) -> list[str]:
    if not facts.clones:
        cannot = f"model {facts.name} cannot clone voices (xtts_v2 and your_tts can)"
        bad("speaker_wav", value, f"none: {cannot}")
    if voices_dir is None:
        bad(
            "speaker_wav",
            value,
            "none: this worker takes no voices to clone (its operator can allow them with "
            "hivescribe worker --voices-dir DIR)",
        )
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        bad("speaker_wav", value, "the name of a WAV file in the worker's voices folder, or a list")
    root = voices_dir.resolve()
    found = []
    for name in paths:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            bad("speaker_wav", name, "the name of a WAV file in the worker's voices folder")
        found.append(str(path))
    return found


def _speaker_choice(facts: ModelFacts) -> str:
    if not facts.speakers:
        return f"none: model {facts.name} has one voice"
    shown = ", ".join(facts.speakers[:SHOWN_SPEAKERS])
    more = len(facts.speakers) - SHOWN_SPEAKERS
    return f"a speaker of model {facts.name}: {shown}" + (f" and {more} more" if more > 0 else "")


class CoquiTTS(Backend):
    """One Coqui model serving text to speech; items are synthesised one at a time."""

    task_types = ("tts",)

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self.model_id, self.checkpoint, self.config = resolve_model(self.options.model)
        try:
            from TTS.api import TTS
        except ImportError as exc:
            raise ValidationError(
                f"the tts-coqui backend needs the coqui-tts package ({exc.name or 'TTS'} is "
                f"missing): {INSTALL}"
            ) from None
        except Exception as exc:  # e.g. a torchaudio built for another torch (CUDA, version)
            raise ValidationError(
                f"coqui-tts fails to import ({exc}): install torch and torchaudio of one build, "
                f"or {INSTALL}"
            ) from None
        self._tts_class = TTS
        self._api: Any = None
        self.facts = ModelFacts(self.model_id)

    @property
    def models(self) -> list[str]:
        return [self.model_id]

    def load(self) -> None:
        """Load the model once (downloading a Coqui id's weights the first time)."""
        if self._api is not None:
            return
        try:
            if self.checkpoint is None:
                api = self._tts_class(self.model_id, progress_bar=False)
            else:
                api = self._tts_class(
                    model_path=str(self.checkpoint),
                    config_path=str(self.config),
                    progress_bar=False,
                )
            self._api = api.to(self._device())
        except Exception as exc:
            raise RuntimeError(
                f"cannot load Coqui model {self.model_id!r}: {exc} (a Coqui id downloads its "
                "weights on first use; xtts_v2 needs COQUI_TOS_AGREED=1)"
            ) from exc
        self.facts = _facts(self.model_id, self._api)

    def prepare(self, item: WorkItem) -> None:
        item.decoded = text_of(item)

    def process_one(self, item: WorkItem) -> Outcome:
        text = item.decoded if isinstance(item.decoded, str) else text_of(item)
        self.load()
        voices = self.options.extra.get("voices_dir")
        request = check_request(item.params, self.facts, Path(voices) if voices else None)
        samples = to_int16(self._synthesize(text, request))
        rate = int(self._api.synthesizer.output_sample_rate)
        return speech_result(
            item,
            text,
            samples,
            rate,
            request.format,
            self.model_id,
            voice=self.model_id,
            language=request.language,
            speaker=request.speaker,
            speaker_wav=[Path(p).name for p in request.speaker_wav or []] or None,
        )

    def _synthesize(self, text: str, request: Request) -> Any:
        """Float samples from Coqui, which splits the text into sentences itself."""
        model = self._api.synthesizer.tts_model
        extra = {"speed": request.speed} if self.facts.speed == "kwarg" else {}
        paced = self.facts.speed == "length_scale"
        pace: float = model.length_scale if paced else 1.0
        if paced:
            model.length_scale = pace / request.speed
        try:
            return self._api.tts(
                text,
                speaker=request.speaker,
                language=request.language,
                speaker_wav=request.speaker_wav,
                split_sentences=True,
                **extra,
            )
        finally:
            if paced:
                model.length_scale = pace

    def _device(self) -> str:
        device = self.options.device.strip().lower()
        if device in ("", "auto"):
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return device


def _facts(name: str, api: Any) -> ModelFacts:
    """What the loaded Coqui model can do, read from the model itself."""
    model = api.synthesizer.tts_model
    config = model.config
    manager = getattr(model, "speaker_manager", None)
    clones = bool(getattr(config, "supports_cloning", False)) or (
        getattr(manager, "encoder", None) is not None
    )
    if isinstance(getattr(model, "length_scale", None), int | float):
        speed = "length_scale"
    elif "speed" in inspect.signature(model.inference).parameters:
        speed = "kwarg"
    else:
        speed = ""
    single = getattr(config, "phoneme_language", None)
    return ModelFacts(
        name,
        languages=tuple(api.languages or ()),
        language=single or None,
        speakers=tuple(api.speakers or ()),
        clones=clones,
        speed=speed,
    )
