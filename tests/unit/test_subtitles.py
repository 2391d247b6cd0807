"""SRT and WebVTT from transcript segments: exact formats, and the subtitle rules (42
characters a line, 2 lines a cue, 0.8 to 7 seconds a cue, no overlap, no word lost) on
generated transcripts with and without word times."""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

import pytest

from hivescribe.dataset.subtitles import (
    MAX_CHARS,
    MAX_DURATION,
    MIN_DURATION,
    build_cues,
    render_srt,
    render_vtt,
    wrap,
)

EXAMPLE = [
    {"start": 0.0, "end": 2.5, "text": " Hello there."},
    {"start": 3.0, "end": 3.3, "text": "Hi!"},  # too short: lengthened into the pause after it
    {
        "start": 5.0,
        "end": 9.0,
        "text": "This sentence is too long for one line of a subtitle, so it wraps.",
    },
    {"start": 3661.5, "end": 3663.25, "text": "An hour later: <music> & more"},
]


def test_srt_format_is_exact() -> None:
    assert render_srt(EXAMPLE) == (
        "1\n"
        "00:00:00,000 --> 00:00:02,500\n"
        "Hello there.\n"
        "\n"
        "2\n"
        "00:00:03,000 --> 00:00:03,800\n"
        "Hi!\n"
        "\n"
        "3\n"
        "00:00:05,000 --> 00:00:09,000\n"
        "This sentence is too long for one\n"
        "line of a subtitle, so it wraps.\n"
        "\n"
        "4\n"
        "01:01:01,500 --> 01:01:03,250\n"
        "An hour later: <music> & more\n"
    )


def test_vtt_format_is_exact() -> None:
    assert render_vtt(EXAMPLE) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\n"
        "Hello there.\n"
        "\n"
        "00:00:03.000 --> 00:00:03.800\n"
        "Hi!\n"
        "\n"
        "00:00:05.000 --> 00:00:09.000\n"
        "This sentence is too long for one\n"
        "line of a subtitle, so it wraps.\n"
        "\n"
        "01:01:01.500 --> 01:01:03.250\n"
        "An hour later: &lt;music&gt; &amp; more\n"
    )


def test_nothing_to_say_gives_empty_files() -> None:
    assert render_srt([]) == ""
    assert render_vtt([]) == "WEBVTT\n"
    assert render_srt([{"start": 0, "end": 1, "text": "   "}]) == ""


def test_wrap_balances_two_lines_at_word_boundaries() -> None:
    assert wrap("Short line.") == ["Short line."]
    lines = wrap("one two three four five six seven eight nine ten eleven twelve")
    assert lines is not None and len(lines) == 2
    assert all(len(line) <= MAX_CHARS for line in lines)
    assert abs(len(lines[0]) - len(lines[1])) <= 6
    assert wrap("The rain has stopped. Let us go out and play now") == [
        "The rain has stopped.",  # a little less balance buys a break at the full stop
        "Let us go out and play now",
    ]
    assert wrap("x" * 43) is None
    assert wrap(" ".join(["word"] * 30)) is None


# -- the rules on generated transcripts -------------------------------------------------------

TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)[,.](\d\d\d) --> (\d\d):(\d\d):(\d\d)[,.](\d\d\d)$")


def parse_srt(srt: str) -> list[tuple[float, float, list[str]]]:
    """The cues of an SRT file, checking the numbering and the layout on the way."""
    cues = []
    blocks = srt.split("\n\n") if srt else []
    for n, block in enumerate(blocks, start=1):
        index, times, *lines = block.rstrip("\n").split("\n")
        assert index == str(n)
        match = TIME.match(times)
        assert match, times
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in match.groups())
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        cues.append((start, end, lines))
    return cues


def words_of(text: str) -> list[str]:
    return text.split()


VOCABULARY = [
    "the",
    "a",
    "river",
    "stone",
    "light",
    "morning",
    "quickly",
    "remembered",
    "extraordinary",
    "under",
    "over",
    "it",
    "is",
    "was",
    "Montgomery's",
    "seventeen,",
    "yes.",
    "no?",
    "and",
    "but",
    "because",
    "internationalization",
]


def generated(seed: int, with_words: bool) -> list[dict[str, Any]]:
    """A transcript of short and long segments with pauses (and sometimes none) between."""
    rng = random.Random(seed)
    segments: list[dict[str, Any]] = []
    at = rng.uniform(0, 2)
    for _ in range(40):
        count = rng.choice([1, 2, 3, 8, 15, 30, 60])
        per_word = rng.uniform(0.12, 0.6)
        words: list[dict[str, Any]] = []
        t = at
        for _ in range(count):
            length = per_word * rng.uniform(0.5, 1.5)
            words.append({"start": t, "end": t + length, "word": " " + rng.choice(VOCABULARY)})
            t += length + rng.choice([0.0, 0.0, 0.05, 0.3])
        segment: dict[str, Any] = {
            "start": at,
            "end": words[-1]["end"],
            "text": "".join(w["word"] for w in words),
        }
        if with_words:
            segment["words"] = words
        segments.append(segment)
        at = segment["end"] + rng.choice([0.0, 0.1, 0.5, 2.0])
    return segments


@pytest.mark.parametrize("with_words", [True, False])
@pytest.mark.parametrize("seed", range(12))
def test_cues_follow_the_rules(seed: int, with_words: bool) -> None:
    segments = generated(seed, with_words)
    srt = render_srt(segments)
    cues = parse_srt(srt)
    assert cues
    # no word lost, none added, order kept
    expected = [w for s in segments for w in words_of(s["text"])]
    assert [w for _, _, lines in cues for line in lines for w in words_of(line)] == expected
    for n, (start, end, lines) in enumerate(cues):
        assert 1 <= len(lines) <= 2
        assert all(0 < len(line) <= MAX_CHARS for line in lines)
        assert len(lines) == 1 or len(" ".join(lines)) > MAX_CHARS  # two lines only if needed
        assert end - start <= MAX_DURATION + 1e-9
        if n:
            assert start >= cues[n - 1][1]  # no overlap
        if end - start < MIN_DURATION - 1e-9:
            # only when squeezed between neighbours that it could not be joined with
            assert n and start == cues[n - 1][1]
            assert n + 1 < len(cues) and end == cues[n + 1][0]
    # the VTT file has the same cues
    vtt = render_vtt(segments)
    assert vtt.startswith("WEBVTT\n\n")
    assert vtt.count(" --> ") == len(cues)
    assert [line for line in vtt.split("\n") if " --> " in line] == [
        line.replace(",", ".") for line in srt.split("\n") if " --> " in line
    ]


def test_a_long_segment_is_split_at_its_word_times() -> None:
    words: list[dict[str, Any]] = [
        {"start": i * 0.5, "end": i * 0.5 + 0.4, "word": f" word{i}"} for i in range(40)
    ]
    segment = {"start": 0.0, "end": 19.9, "text": "".join(w["word"] for w in words)}
    cues = build_cues([{**segment, "words": words}])
    assert len(cues) >= 3
    starts = {w["start"] for w in words}
    ends = {w["end"] for w in words}
    for cue in cues:
        assert cue.start in starts and cue.end in ends  # cut between words, at their times
        assert cue.end - cue.start <= MAX_DURATION


def test_without_words_a_long_segment_is_timed_by_characters() -> None:
    segment = {"start": 10.0, "end": 30.0, "text": "a " * 20 + "b" * 30 + " " + "c " * 20}
    cues = build_cues([segment])
    assert cues[0].start == 10.0 and cues[-1].end == pytest.approx(30.0)
    for before, after in itertools.pairwise(cues):
        assert before.end == pytest.approx(after.start)  # contiguous: the segment is shared out
    assert all(cue.end - cue.start <= MAX_DURATION for cue in cues)


def test_a_single_long_word_is_held_at_most_seven_seconds_and_cut_to_fit() -> None:
    cues = build_cues([{"start": 0.0, "end": 20.0, "text": "x" * 100}])
    assert [len(c.text) for c in cues] == [42, 42, 16]
    assert all(c.end - c.start <= MAX_DURATION for c in cues)
    cues = build_cues(
        [{"start": 0, "end": 9, "text": "w", "words": [{"start": 0, "end": 9, "word": "w"}]}]
    )
    assert (cues[0].start, cues[0].end) == (0, MAX_DURATION)


def test_short_cues_grow_into_silence_and_never_overlap() -> None:
    segments = [
        {"start": 1.0, "end": 1.2, "text": "One."},  # grows back into the silence before it
        {"start": 1.5, "end": 1.7, "text": "Two."},  # grows into the silence after it
        {"start": 5.0, "end": 5.1, "text": "Three."},
    ]
    assert [(c.start, c.end, c.text) for c in build_cues(segments)] == [
        (pytest.approx(0.7), 1.5, "One."),
        (1.5, pytest.approx(2.3), "Two."),
        (5.0, pytest.approx(5.8), "Three."),
    ]


def test_short_cues_without_room_are_joined_with_a_neighbour() -> None:
    segments = [
        {"start": 0.0, "end": 0.3, "text": "One."},
        {"start": 0.3, "end": 0.6, "text": "Two."},
        {"start": 0.6, "end": 3.0, "text": "Three is long enough."},
        {"start": 9.0, "end": 16.0, "text": "A cue that lasts seven seconds exactly."},
        {"start": 16.0, "end": 16.2, "text": "Short."},
    ]
    assert [(c.start, c.end, c.text) for c in build_cues(segments)] == [
        (0.0, pytest.approx(3.0), "One. Two. Three is long enough."),
        (9.0, 16.0, "A cue that lasts seven seconds exactly."),
        (16.0, pytest.approx(16.8), "Short."),  # the last cue has all the room it wants
    ]


def test_overlapping_segments_are_made_consecutive() -> None:
    cues = build_cues(
        [
            {"start": 0.0, "end": 3.0, "text": "first"},
            {"start": 2.0, "end": 4.0, "text": "second"},
        ]
    )
    assert [(c.start, c.end) for c in cues] == [(0.0, 2.0), (2.0, 4.0)]
