"""Document translation's progress, with a deterministic "translation" (each word's letters
reversed) and documents built in memory: a long document's segments go to ``translate`` in a
few large batches, in order, with the same result as one call; a short one in one call; the
percent only rises, stays under 100 and the details count characters."""

from __future__ import annotations

import io

import pytest
from tests.document_helpers import Translator, flip

from hivescribe.backends import InputError
from hivescribe.backends.documents import translate_document
from hivescribe.backends.documents_text import MAX_BATCHES, MIN_BATCH_CHARS, Meter, batches

Seen = list[tuple[float, str | None]]


def recorder() -> tuple[Seen, Meter]:
    seen: Seen = []
    return seen, Meter(lambda percent, details: seen.append((percent, details)))


def assert_rises(seen: Seen) -> None:
    percents = [percent for percent, _ in seen]
    assert percents == sorted(percents), percents
    assert all(0 <= percent < 100 for percent in percents), percents


def characters_details(sizes: list[int]) -> list[str]:
    """The details of a translation whose batches have ``sizes`` characters."""
    total, done, out = sum(sizes), 0, []
    for size in [0, *sizes]:
        done += size
        out.append(f"translated {done:,} of {total:,} characters")
    return out


PARAGRAPHS = [
    f"Notice {number}: the bridge over the river closes in March for fourteen months."
    for number in range(400)
]


def test_batches_are_few_large_and_in_order() -> None:
    assert batches(["A short document.", "Two segments."]) == [range(0, 2)]
    found = batches(PARAGRAPHS)
    assert len(found) == MAX_BATCHES
    assert [i for batch in found for i in batch] == list(range(len(PARAGRAPHS)))
    sizes = [sum(len(PARAGRAPHS[i]) for i in batch) for batch in found]
    assert min(sizes) >= MIN_BATCH_CHARS and max(sizes) - min(sizes) < 2 * len(PARAGRAPHS[0])
    middling = ["x" * 100] * (5 * MIN_BATCH_CHARS // 100)  # five batches' worth
    assert len(batches(middling)) == 5
    # A huge segment fills the batches it spans and leaves no slivers of batches after it.
    giant = ["a" * 100, "b" * 50_000, "c" * 100, "d" * 100]
    assert batches(giant) == [range(0, 2), range(2, 4)]
    assert batches([]) == []


def test_the_meter_fills_each_step_in_turn() -> None:
    seen, meter = recorder()
    meter.step(10)
    meter.report(0, 4, "a")
    meter.report(2, 4, "b")
    meter.step(10)  # an empty step: its reports stay where the last step ended
    meter.report(0, 1, "c")
    meter.step(50)
    meter.report(1, 1, "d")
    meter.step(40)  # an end below the last one never moves the percent back
    meter.report(1, 1, "e")
    assert seen == [(0, "a"), (5, "b"), (10, "c"), (50, "d"), (50, "e")]
    Meter().report(1, 2, "nobody listens")  # no callback: nothing happens


def test_a_long_text_is_translated_in_batches_with_progress() -> None:
    source = "\n\n".join(PARAGRAPHS) + "\n"
    translator = Translator()
    seen: Seen = []
    result = translate_document(
        source.encode(), "notice.txt", translator, progress=lambda p, d: seen.append((p, d))
    )
    assert result.data.decode() == flip(source)  # the same as one call would give
    assert 1 < len(translator.calls) <= MAX_BATCHES
    assert [s for call in translator.calls for s in call] == PARAGRAPHS
    sizes = [sum(len(s) for s in call) for call in translator.calls]
    assert [details for _, details in seen] == characters_details(sizes)
    assert_rises(seen)
    assert seen[0][0] == 0 and seen[-1][0] == 95  # the worker says 100 when the item is done
    done = [int(details.split()[1].replace(",", "")) for _, details in seen if details]
    total = sum(sizes)
    assert [percent for percent, _ in seen] == pytest.approx([95 * d / total for d in done])


def test_a_short_document_is_one_call_and_says_so() -> None:
    translator = Translator()
    seen: Seen = []
    result = translate_document(
        b"Hello there.\n", "hello.txt", translator, progress=lambda p, d: seen.append((p, d))
    )
    assert result.text == flip("Hello there.\n")
    assert translator.calls == [["Hello there."]]
    assert seen == [(0, "translated 0 of 12 characters"), (95, "translated 12 of 12 characters")]


def test_a_long_docx_reports_its_batches() -> None:
    import docx

    document = docx.Document()
    for text in PARAGRAPHS[:150]:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    translator = Translator()
    seen: Seen = []
    result = translate_document(
        out.getvalue(), "notices.docx", translator, progress=lambda p, d: seen.append((p, d))
    )
    after = docx.Document(io.BytesIO(result.data))
    assert [p.text for p in after.paragraphs] == [flip(text) for text in PARAGRAPHS[:150]]
    assert len(translator.calls) == sum(len(text) for text in PARAGRAPHS[:150]) // MIN_BATCH_CHARS
    sizes = [sum(len(s) for s in call) for call in translator.calls]
    assert [details for _, details in seen] == characters_details(sizes)
    assert_rises(seen)


def test_too_much_text_is_refused_before_any_is_translated() -> None:
    translator = Translator()
    source = "\n\n".join(PARAGRAPHS).encode()
    total = sum(len(text) for text in PARAGRAPHS)
    with pytest.raises(InputError, match=f"'notice.txt' has {total:,} characters of text"):
        translate_document(source, "notice.txt", translator, max_characters=10_000)
    assert translator.calls == []
    translate_document(b"Short.", "short.txt", translator, max_characters=10)
    assert translator.calls == [["Short."]]
