"""The espeak-ng text-to-speech backend through its real path (load_backend, prepare,
process) with Debian's espeak-ng program:

- round trip: two passages spoken by the default voice (en-us) and transcribed by Whisper
  tiny.en come back within a word error rate of 0.15 (measured: 0.0 and 0.028), and faster
  speech within 0.3 (measured: 0.11 at speed 1.5);
- the audio is real: a 16-bit mono WAV at 22050 Hz, as long as 175 words a minute make it, and
  not silence; speed changes its length; Ogg/Opus and MP3 decode;
- languages and voices are normalised (en, en-GB, es_MX, pt-BR, variants such as +f3);
- unknown voices list the valid ones; bad parameters, empty and over-long text fail the item
  permanently; a missing espeak-ng program fails loading with the apt-get line.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from tests.speech_helpers import item, spoken, wer

from hivescribe.backends import (
    BackendOptions,
    Failure,
    InputError,
    Success,
    WorkItem,
    backend_for,
    load_backend,
)
from hivescribe.backends.speech_out import MAX_SPEECH_CHARS
from hivescribe.backends.tts_espeak import MODEL, WORDS_PER_MINUTE, EspeakTTS
from hivescribe.backends.whisper import WhisperBackend
from hivescribe.domain.errors import ValidationError

MEETING = (
    "Good morning, and thank you all for coming to the meeting today. "
    "We will start with a short update on the new library building. "
    "After that, everyone can ask questions about the plan."
)
REPAIRS = (
    "Please send the quarterly report to the finance team before Thursday. "
    "The river flooded twice last spring, so the old bridge will be closed for repairs. "
    "Seven engineers checked the pumps and found two broken valves."
)


def failed(backend: EspeakTTS, work: WorkItem) -> str:
    [outcome] = backend.process_batch([work])
    assert isinstance(outcome, Failure), outcome
    assert outcome.permanent
    return outcome.error


def samples_of(blob: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(blob)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), wav.getframerate()


@pytest.fixture(scope="module")
def tts() -> EspeakTTS:
    name, options = backend_for("tts", BackendOptions(model=MODEL))
    assert (name, options.model) == ("tts-espeak", MODEL)
    backend = load_backend(name, options)
    assert isinstance(backend, EspeakTTS)
    backend.load()
    return backend


@pytest.fixture(scope="module")
def whisper() -> WhisperBackend:
    backend = WhisperBackend(BackendOptions())
    backend.load()
    return backend


def heard(whisper: WhisperBackend, blob: bytes) -> str:
    work = WorkItem(2, "token", "transcription", "k", "d", "s", {"temperature": 0}, data=blob)
    whisper.prepare(work)
    transcript = whisper.process_one(work)
    assert isinstance(transcript, Success), transcript
    return transcript.text or ""


def test_the_registry_names_it(tts: EspeakTTS) -> None:
    assert tts.models == [MODEL]
    assert EspeakTTS.task_types == ("tts",)
    assert len(tts.voices) > 90  # about 100 languages


@pytest.mark.slow
@pytest.mark.parametrize("text", [MEETING, REPAIRS], ids=["meeting", "repairs"])
def test_round_trip_through_whisper(tts: EspeakTTS, whisper: WhisperBackend, text: str) -> None:
    outcome = spoken(tts, item(text, key="clips/round-trip.txt"))
    assert (outcome.text, outcome.model, outcome.blob_name) == (text, MODEL, "round-trip.wav")
    assert outcome.output["voice"] == "en-us"
    assert outcome.output["format"] == "wav"
    assert outcome.blob is not None
    samples, rate = samples_of(outcome.blob)
    assert rate == outcome.output["sample_rate"] == 22_050
    seconds = samples.size / rate
    assert seconds == pytest.approx(outcome.output["duration_s"], abs=0.001)
    expected_s = len(text.split()) / WORDS_PER_MINUTE * 60
    assert 0.7 * expected_s < seconds < 1.5 * expected_s
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 500  # not silence
    assert np.mean(np.abs(samples) > 1000) > 0.2  # sound through most of it
    assert wer(text, heard(whisper, outcome.blob)) <= 0.15


@pytest.mark.slow
def test_fast_speech_is_still_understood(tts: EspeakTTS, whisper: WhisperBackend) -> None:
    outcome = spoken(tts, item(REPAIRS, speed=1.5))
    assert outcome.blob is not None
    assert wer(REPAIRS, heard(whisper, outcome.blob)) <= 0.3


def test_speed_sets_the_words_per_minute(tts: EspeakTTS) -> None:
    normal = spoken(tts, item(MEETING)).output["duration_s"]
    fast = spoken(tts, item(MEETING, speed=2.0)).output["duration_s"]
    slow = spoken(tts, item(MEETING, speed=0.5)).output["duration_s"]
    assert fast < normal * 0.65
    assert slow > normal * 1.6


def test_bytes_input_is_read_as_utf8(tts: EspeakTTS) -> None:
    outcome = spoken(tts, item(data="¿Dónde está la biblioteca?\n".encode(), language="es"))
    assert outcome.text == "¿Dónde está la biblioteca?"
    assert outcome.output["voice"] == "es"


@pytest.mark.parametrize(
    ("params", "voice"),
    [
        ({"language": "en"}, "en-us"),
        ({"language": "en-US"}, "en-us"),
        ({"language": "en_gb"}, "en-gb"),
        ({"language": "es"}, "es"),
        ({"language": "es-MX"}, "es-419"),
        ({"language": "de-AT"}, "de"),
        ({"language": "pt-BR"}, "pt-br"),
        ({"language": "fr"}, "fr-fr"),
        ({"language": "auto"}, "en-us"),
        ({"voice": "en-us+f3"}, "en-us+f3"),
        ({"voice": "gmw/en-US"}, "en-us"),
        ({"voice": "English_(Great_Britain)+klatt"}, "en-gb+klatt"),
        ({"voice": "es", "language": "es-ES"}, "es"),
    ],
)
def test_languages_and_voices(tts: EspeakTTS, params: dict[str, Any], voice: str) -> None:
    outcome = spoken(tts, item("Uno, dos, tres.", **params))
    assert outcome.output["voice"] == voice
    assert outcome.output["duration_s"] > 0.5


@pytest.mark.parametrize(
    ("fmt", "codec", "rate"), [("ogg", "opus", 48_000), ("mp3", "mp3float", 22_050)]
)
def test_compressed_formats_decode(tts: EspeakTTS, fmt: str, codec: str, rate: int) -> None:
    outcome = spoken(tts, item("This is a short test of compressed audio.", key="a.b", format=fmt))
    assert (outcome.blob_name, outcome.output["format"]) == (f"a.{fmt}", fmt)
    assert outcome.output["sample_rate"] == rate
    assert outcome.blob is not None
    with av.open(io.BytesIO(outcome.blob), mode="r") as container:
        stream = container.streams.audio[0]
        frames = sum(frame.samples for frame in container.decode(stream))
        assert (stream.codec_context.name, stream.sample_rate) == (codec, rate)
    assert frames / rate == pytest.approx(outcome.output["duration_s"], abs=0.1)


def test_an_unknown_voice_lists_the_valid_ones(tts: EspeakTTS) -> None:
    error = failed(tts, item("Hello.", voice="no-such-voice"))
    assert error.startswith("bad input: parameter voice='no-such-voice' is not valid")
    for listed in ("en-us", "es", "de", "pt-br", "espeak-ng --voices"):
        assert listed in error
    assert "f3" in failed(tts, item("Hello.", voice="en-us+nobody"))
    assert "en-us" in failed(tts, item("Hello.", language="xx-YY"))


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"speed": 3}, "speed"),
        ({"speed": 0.1}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"speed": True}, "speed"),
        ({"format": "flac"}, "wav, ogg, mp3"),
        ({"format": None}, "format"),
        ({"voice": 7}, "voice"),
        ({"language": ["en"]}, "language"),
        ({"voice": "en-us", "language": "de"}, "language='de'"),
        ({"speaker": 2}, "speaker"),
    ],
)
def test_bad_parameters_fail_permanently(
    tts: EspeakTTS, params: dict[str, Any], named: str
) -> None:
    assert named in failed(tts, item("Hello.", **params))


@pytest.mark.parametrize(
    ("work", "reason"),
    [
        (item(""), "the text is empty"),
        (item("  \n\t "), "the text is empty"),
        (item(data=b""), "the text is empty"),
        (item(), "the text is empty"),
        (item("a" * (MAX_SPEECH_CHARS + 1)), "split it"),
        (item(data=b"\xff\xfe\xfa not utf-8 \x80"), "UTF-8"),
    ],
    ids=["empty", "blank", "empty-bytes", "no-input", "too-long", "not-utf8"],
)
def test_bad_text_fails_permanently(tts: EspeakTTS, work: WorkItem, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        tts.prepare(work)
    assert reason in failed(tts, work)


def test_a_missing_program_fails_loading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ValidationError, match="apt-get install espeak-ng"):
        load_backend("tts-espeak", BackendOptions(model=MODEL))
