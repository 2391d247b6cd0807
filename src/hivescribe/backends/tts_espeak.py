"""tts-espeak: text to speech with the espeak-ng program, for the ``tts`` task type. A light
fallback: about 100 languages, no model weights, only Debian's ``espeak-ng`` (apt-get install
espeak-ng). It sounds robotic; Piper and Coqui voices sound natural.

The worker's ``--model`` is "espeak-ng"; each item picks its own voice. Job parameters
(``item.params``): ``voice``, an espeak-ng voice (a language such as en-us or es, a voice name
such as English_(America), or a file such as gmw/en-US), optionally with a variant (en-us+f3);
else ``language`` (en, en-US, es_ES, pt-BR...), matched against ``espeak-ng --voices`` and
falling back from a region to its language (es-MX speaks es-419, de-AT speaks de); else
en-us. When both are given they must agree. ``speed`` (0.5 to 2.0) sets the words per minute,
175 at 1.0; ``format`` is wav, ogg or mp3 as for Piper. One espeak-ng process runs per item.
The output is ``{"voice", "sample_rate", "duration_s", "format"}`` (voice: the espeak-ng
language code, plus its variant) and the audio file; see speech_out.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hivescribe.backends.base import Backend, BackendOptions, Outcome, WorkItem
from hivescribe.backends.speech_out import (
    bad,
    check_format,
    check_speed,
    same_language,
    speech_result,
    text_of,
)
from hivescribe.domain.errors import ValidationError

__all__ = ["DEFAULT_VOICE", "MODEL", "WORDS_PER_MINUTE", "EspeakTTS", "Voice", "list_voices"]

MODEL = "espeak-ng"  # the registry id, and the program
DEFAULT_VOICE = "en-us"
WORDS_PER_MINUTE = 175  # espeak-ng's own default pace: speed 1.0
TIMEOUT_S = 60.0  # for one item, plus TIMEOUT_S_PER_CHAR for each character
TIMEOUT_S_PER_CHAR = 0.01  # espeak-ng speaks a few thousand characters a second
_OTHER = re.compile(r"\(([^\s()]+) (\d+)\)")  # "(en 3)" in a --voices line
_REGIONAL = re.compile(r"^([a-z]{2,3})-(?:[a-z]{2}|\d{3})$")  # es-mx, es-419


@dataclass(frozen=True)
class Voice:
    """One line of ``espeak-ng --voices``."""

    language: str  # lower case, e.g. en-us
    name: str  # e.g. English_(America)
    file: str  # e.g. gmw/en-US: what -v is given, unique
    priority: int  # lower wins when several voices speak a language
    others: tuple[tuple[str, int], ...]  # other languages it speaks, with their priority

    def speaks(self, language: str) -> bool:
        """es and es-ES both fit a voice that speaks es; en-US does not fit en-gb."""
        return any(same_language(language, code) for code in self.codes)

    @property
    def codes(self) -> tuple[str, ...]:
        return (self.language, *(code for code, _ in self.others))


def list_voices(program: str = MODEL, kind: str = "") -> list[Voice]:
    """The voices ``espeak-ng --voices`` lists (or ``--voices=variant`` with kind="variant")."""
    option = f"--voices={kind}" if kind else "--voices"
    listing = subprocess.run(
        [program, option], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    voices = []
    for line in listing.splitlines()[1:]:
        fields = line.split(None, 5)
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        others = tuple((code.lower(), int(p)) for code, p in _OTHER.findall(line))
        voices.append(Voice(fields[1].lower(), fields[3], fields[4], int(fields[0]), others))
    return voices


class EspeakTTS(Backend):
    """espeak-ng serving text to speech in any of its languages, one process per item."""

    task_types = ("tts",)

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        program = shutil.which(MODEL)
        if program is None:
            raise ValidationError(
                "the tts-espeak backend needs the espeak-ng program, which is not on PATH: "
                "install it with apt-get install espeak-ng (brew install espeak-ng on macOS)"
            )
        self.program = program
        self.voices = list_voices(program)
        default = self._by_language(DEFAULT_VOICE)
        if default is None:
            raise ValidationError(
                f"espeak-ng at {program} lists no English voice: reinstall espeak-ng-data"
            )
        self.default = default
        self.variants = {
            key: variant.file.split("/")[-1]
            for variant in list_voices(program, "variant")
            for key in (variant.name.lower(), variant.file.split("/")[-1].lower())
        }

    @property
    def models(self) -> list[str]:
        return [MODEL]

    def prepare(self, item: WorkItem) -> None:
        item.decoded = text_of(item)

    def process_one(self, item: WorkItem) -> Outcome:
        text = item.decoded if isinstance(item.decoded, str) else text_of(item)
        speed, fmt = check_speed(item.params), check_format(item.params)
        voice_id, argument = self._voice(item.params)
        if item.params.get("speaker") is not None:
            bad("speaker", item.params["speaker"], "none: pick a voice instead, e.g. en-us+f3")
        samples, rate = self._synthesize(text, argument, round(WORDS_PER_MINUTE * speed))
        return speech_result(item, text, samples, rate, fmt, MODEL, voice=voice_id)

    def _voice(self, params: dict[str, Any]) -> tuple[str, str]:
        """(the voice's id for the output, the argument for -v) from ``voice``/``language``."""
        asked, language = params.get("voice"), params.get("language")
        if language in ("", "auto"):
            language = None
        if language is not None and not isinstance(language, str):
            bad("language", language, f"a language code: {self._codes()}")
        if asked in (None, ""):
            found = self.default if language is None else self._by_language(language)
            if found is None:
                bad("language", language, f"a language espeak-ng speaks: {self._codes()}")
            return found.language, found.file
        if not isinstance(asked, str):
            bad("voice", asked, f"an espeak-ng voice: {self._codes()}")
        base, _, variant = asked.strip().partition("+")
        voice = self._by_name(base) or self._by_language(base)
        if voice is None:
            bad("voice", asked, f"an espeak-ng voice: {self._codes()}")
        if language is not None and not voice.speaks(language):
            codes = ", ".join(voice.codes)
            bad("language", language, f"one that voice {voice.language} speaks ({codes})")
        if not variant:
            return voice.language, voice.file
        kind = self.variants.get(variant.lower())
        if kind is None:
            names = ", ".join(sorted(set(self.variants.values()), key=str.lower))
            bad("voice", asked, f"a variant after the +, one of {names}")
        return f"{voice.language}+{kind}", f"{voice.file}+{kind}"

    def _by_name(self, asked: str) -> Voice | None:
        key = asked.lower()
        return next(
            (v for v in self.voices if key in (v.name.lower(), v.file.lower(), v.language)),
            None,
        )

    def _by_language(self, asked: str) -> Voice | None:
        """The voice for a language code: its own voice, or the default voice when that
        speaks it (en), or the voice espeak-ng prefers; for language-REGION codes that none
        speaks (de-AT), the same for the language alone."""
        key = asked.strip().lower().replace("_", "-")
        regional = _REGIONAL.match(key)
        for code in (key, regional.group(1)) if regional else (key,):
            own = [v for v in self.voices if v.language == code]
            if own:
                return min(own, key=lambda v: v.priority)
            default = next((v for v in self.voices if v.language == DEFAULT_VOICE), None)
            if default and code in default.codes:
                return default
            ranked = [(p, v.language, v) for v in self.voices for c, p in v.others if c == code]
            if ranked:
                return min(ranked, key=lambda r: r[:2])[2]
        return None

    def _codes(self) -> str:
        codes = sorted({v.language for v in self.voices})
        return f"{', '.join(codes)} (espeak-ng --voices lists them)"

    def _synthesize(self, text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
        """int16 mono samples and their rate, from espeak-ng reading the text on stdin."""
        with tempfile.TemporaryDirectory(prefix="hivescribe-espeak-") as folder:
            path = Path(folder) / "speech.wav"
            command = [self.program, "-v", voice, "-s", str(wpm), "-b", "1", "-w", str(path)]
            limit_s = TIMEOUT_S + TIMEOUT_S_PER_CHAR * len(text)
            try:
                done = subprocess.run(
                    command, input=text.encode("utf-8"), capture_output=True, timeout=limit_s
                )
            except subprocess.TimeoutExpired:
                raise RuntimeError(
                    f"espeak-ng ran past {limit_s:.0f} s on {len(text)} characters: "
                    "split the text into smaller items"
                ) from None
            if done.returncode != 0 or not path.is_file():
                reason = done.stderr.decode("utf-8", "replace").strip()
                raise RuntimeError(f"espeak-ng failed ({done.returncode}): {reason}")
            with wave.open(str(path), "rb") as wav:
                if (wav.getnchannels(), wav.getsampwidth()) != (1, 2):
                    raise RuntimeError("espeak-ng wrote audio that is not 16-bit mono")
                rate = wav.getframerate()
                samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
        return samples.astype(np.int16), rate
