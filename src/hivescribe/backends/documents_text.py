"""Plain text and Markdown for document translation, and what every kind uses: the segment
collector and the progress meter.

A document is turned into a :class:`Template`: literal pieces (markup, code, URLs, line
endings) and text pieces, each a segment sent to the translator. A document's segments go to
``translate`` in a few batches (see :func:`batches`), then the template is filled in. A text
piece keeps the whitespace around it; a piece with no letters (numbers, punctuation) is kept as
it is.

Plain text: paragraphs are split on blank lines and the separators kept byte for byte. A
paragraph of hard-wrapped prose (every line but the last at least half as long as the longest,
which is 40 characters or more) is one segment and comes back as one line; any other paragraph
(an address, a list, verse) is translated line by line, keeping its line breaks.

Markdown: fenced and indented code, HTML blocks, link definitions, front matter, rules and
table delimiter rows stay as they are. Headings, list items, block quotes and table cells keep
their markers and have their text translated; inline code, links' URLs, images, autolinks,
inline HTML and bare URLs are kept, and emphasis markers stay in place around the text.
Consecutive prose lines of a paragraph are one segment (a soft line break is a space in
Markdown), unless a line ends in a hard break.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from typing import Any

from hivescribe.backends.base import InputError, ProgressCallback

__all__ = [
    "MAX_BATCHES",
    "MIN_BATCH_CHARS",
    "Meter",
    "Segments",
    "Template",
    "batches",
    "decode_text",
    "has_letters",
    "translate_markdown",
    "translate_plain",
]

Translate = Callable[[list[str]], list[str]]
# A document's segments go to ``translate`` in batches of this much text or more, and at most
# this many: progress is told between them, while Apertium still starts only a few times per
# document and a model still gets batches. A short document is one batch.
MIN_BATCH_CHARS = 2_000
MAX_BATCHES = 10


class Meter:
    """How far one document's translation is, as the item's percent. Its steps (read pages,
    OCR scans, translate, write) each fill a span of the percent in turn and report how far
    they are within it, so no step needs to know the others' shares."""

    def __init__(self, report: ProgressCallback | None = None) -> None:
        self._report = report
        self._start = self._end = 0.0

    def step(self, end: float) -> None:
        """Begin the next step: it fills from where the last step's span ended up to ``end``."""
        self._start, self._end = self._end, max(end, self._end)

    def report(self, done: float, total: float, details: str) -> None:
        """``done`` of the step's ``total`` (pages, characters) is finished."""
        if self._report is not None:
            share = min(done / total, 1.0) if total > 0 else 1.0
            self._report(self._start + (self._end - self._start) * share, details)


def batches(texts: list[str]) -> list[range]:
    """``texts`` split in order into batches of about equal characters, one ``translate`` call
    each: one per MIN_BATCH_CHARS of text, at most MAX_BATCHES."""
    total = sum(len(text) for text in texts)
    count = max(1, min(MAX_BATCHES, total // MIN_BATCH_CHARS))
    groups: dict[int, list[int]] = {}
    before = 0
    for index, text in enumerate(texts):
        groups.setdefault(min(count - 1, before * count // max(total, 1)), []).append(index)
        before += len(text)
    return [range(group[0], group[-1] + 1) for group in groups.values()]


class Segments:
    """The texts of one document to translate, in order."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.translated: list[str] = []

    @property
    def characters(self) -> int:
        return sum(len(text) for text in self.texts)

    def add(self, text: str) -> int:
        self.texts.append(text)
        return len(self.texts) - 1

    def run(self, translate: Translate, meter: Meter | None = None) -> None:
        """Translate the texts batch by batch, telling ``meter`` the characters done."""
        meter = meter or Meter()
        total, done = self.characters, 0
        translated: list[str] = []
        for batch in batches(self.texts):
            meter.report(done, total, f"translated {done:,} of {total:,} characters")
            texts = self.texts[batch.start : batch.stop]
            out = list(translate(list(texts)))
            if len(out) != len(texts):
                raise RuntimeError(
                    f"translate returned {len(out)} segments for {len(texts)}; it must "
                    "return one translation per segment, in order"
                )
            translated += [str(text).strip() for text in out]
            done += sum(len(text) for text in texts)
        if self.texts:
            meter.report(total, total, f"translated {total:,} of {total:,} characters")
        self.translated = translated


def has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


class Template:
    """Literal pieces and translatable pieces of one text, rendered once translated."""

    def __init__(self, segments: Segments) -> None:
        self.segments = segments
        self.parts: list[str | tuple[str, int, str]] = []

    def literal(self, text: str) -> None:
        if text:
            self.parts.append(text)

    def text(self, text: str) -> None:
        """A piece to translate; its inner whitespace runs become single spaces."""
        core = text.strip()
        if not has_letters(core):
            self.literal(text)
            return
        lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
        self.parts.append((lead, self.segments.add(" ".join(core.split())), trail))

    def render(self) -> str:
        done = self.segments.translated
        return "".join(
            part if isinstance(part, str) else f"{part[0]}{done[part[1]]}{part[2]}"
            for part in self.parts
        )


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """(text, encoding to write it back with): UTF-8, with or without BOM, or UTF-16 with one."""
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "save it as UTF-8 and submit it again"
        ) from None
    if "\x00" in text:
        raise InputError(f"{name} is not text: it has NUL bytes")
    return text, encoding


# -- plain text ----------------------------------------------------------------------------------

_EOL = r"(?:\r\n|\n|\r(?!\n))"
_PARAGRAPH_BREAK = re.compile(rf"({_EOL}(?:[ \t]*{_EOL})+)")
_LINE = re.compile(rf"([^\r\n]*)({_EOL}?)")


def _is_wrapped_prose(lines: list[str]) -> bool:
    longest = max(len(line.strip()) for line in lines)
    return longest >= 40 and all(len(line.strip()) >= longest / 2 for line in lines[:-1])


def translate_plain(text: str, segments: Segments) -> Template:
    template = Template(segments)
    for index, chunk in enumerate(_PARAGRAPH_BREAK.split(text)):
        if index % 2:  # a separator of blank lines
            template.literal(chunk)
            continue
        lines = chunk.splitlines()
        if len(lines) > 1 and _is_wrapped_prose(lines):
            template.text(chunk)
            continue
        for body, eol in _LINE.findall(chunk):
            template.text(body)
            template.literal(eol)
    return template


# -- Markdown ------------------------------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# An HTML block starts with a block-level tag, a comment or declaration, or a lone tag on its
# line (CommonMark's rules, simplified); a line that merely starts with <em> is prose.
_BLOCK_TAGS = (
    "address|article|aside|blockquote|body|caption|center|details|dialog|dd|div|dl|dt|"
    "fieldset|figcaption|figure|footer|form|h[1-6]|head|header|hr|html|iframe|legend|li|main|"
    "nav|ol|p|pre|script|section|style|summary|table|tbody|td|textarea|tfoot|th|thead|title|"
    "tr|ul"
)
_HTML_BLOCK = re.compile(
    rf"^ {{0,3}}(?:<!--|<\?|<![A-Za-z\[]|</?(?:{_BLOCK_TAGS})(?:[\s/>]|$)"
    r"|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>\s*$)",
    re.IGNORECASE,
)
_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S")
_RULE = re.compile(r"^ {0,3}(?:(?:[-*_]\s*){3,}|=+\s*|-+\s*)$")
_TABLE_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
_HEADING = re.compile(r"^( {0,3}#{1,6}(?:[ \t]+|$))(.*?)((?:[ \t]+#+)?[ \t]*)$")
_PREFIX = re.compile(
    r"^(?:[ \t]*>[ \t]?)*[ \t]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?)?"
)
_INLINE = re.compile(
    r"""
    (`+)[^`].*?(?<!`)\1(?!`)                          # inline code
    | !\[[^\]]*\]\([^)]*\)                            # an image, alt text and all
    | \]\([^)]*\) | \]\[[^\]]*\]                      # a link's end: ](url "title"), ][ref]
    | <(?:https?|ftp|mailto):[^>\s]+> | <[^>\s@]+@[^>\s]+>   # autolinks
    | </?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?> | <!--.*?-->  # inline HTML
    | (?:https?|ftp)://[^\s<>()\]]+                   # a bare URL
    | \\[\\`*_{}\[\]()#+\-.!|>~]                      # an escaped character
    | &(?:[A-Za-z][A-Za-z0-9]*|\#[0-9]+|\#[xX][0-9A-Fa-f]+);   # an entity
    | \*{1,3} | ~~ | (?<![A-Za-z0-9])_{1,3} | _{1,3}(?![A-Za-z0-9]) | \[   # emphasis, [
    """,
    re.VERBOSE,
)


def inline(template: Template, text: str) -> None:
    """Text with inline Markdown: markup kept, the prose between it translated."""
    position = 0
    for match in _INLINE.finditer(text):
        template.text(text[position : match.start()])
        template.literal(match.group(0))
        position = match.end()
    template.text(text[position:])


def _table_row(template: Template, body: str) -> None:
    for index, cell in enumerate(re.split(r"((?<!\\)\|)", body)):
        if index % 2:
            template.literal(cell)
        else:
            inline(template, cell)


def _table_rows(bodies: list[str]) -> set[int]:
    """Line numbers of table rows: a header row with pipes, a delimiter row under it, and the
    rows with pipes after it; or any line that starts with a pipe."""
    rows = {number for number, body in enumerate(bodies) if body.lstrip().startswith("|")}
    for number in range(1, len(bodies)):
        body = bodies[number]
        if "|" in body and _TABLE_DELIMITER.match(body) and "|" in bodies[number - 1]:
            rows.add(number - 1)
            after = number + 1
            while after < len(bodies) and "|" in bodies[after] and bodies[after].strip():
                rows.add(after)
                after += 1
    return rows


def translate_markdown(text: str, segments: Segments) -> Template:
    template = Template(segments)
    lines: list[Any] = _LINE.findall(text)
    if lines and lines[-1] == ("", ""):
        lines.pop()
    fence: str | None = None
    previous = "blank"  # what the last line was: blank, prose, code, html or other
    prose: list[tuple[str, str]] = []  # the current paragraph's lines

    def flush() -> None:
        if prose:
            inline(template, " ".join(body.strip() for body, _ in prose))
            template.literal(prose[-1][1])
            prose.clear()

    if lines and lines[0][0].strip() == "---":  # YAML front matter
        end = next((i for i in range(1, len(lines)) if lines[i][0].strip() in ("---", "...")), 0)
        for body, eol in lines[: end + 1]:
            template.literal(body + eol)
        lines = lines[end + 1 :]
    rows = _table_rows([body for body, _ in lines])
    for number, (body, eol) in enumerate(lines):
        kind = "other"
        if fence is not None:
            if body.strip().startswith(fence) and not body.strip().strip(fence[0]):
                fence = None
            kind = "code"
        elif match := _FENCE.match(body):
            fence = match.group(1)
            kind = "code"
        elif not body.strip():
            kind = "blank"
        elif (previous in ("blank", "code") and not prose) and re.match(r"^( {4}|\t)", body):
            kind = "code"
        elif _HTML_BLOCK.match(body) or (previous == "html" and body.strip()):
            kind = "html"
        elif _LINK_DEFINITION.match(body) or _RULE.match(body) or _TABLE_DELIMITER.match(body):
            kind = "literal"
        elif number in rows:
            flush()
            _table_row(template, body)
            template.literal(eol)
        elif heading := _HEADING.match(body):
            flush()
            template.literal(heading.group(1))
            inline(template, heading.group(2))
            template.literal(heading.group(3) + eol)
        else:
            prefix = _PREFIX.match(body)
            marker = prefix.group(0) if prefix else ""
            if marker or body.endswith(("  ", "\\")):
                flush()
                template.literal(marker)
                inline(template, body[len(marker) :])
                template.literal(eol)
            else:
                prose.append((body, eol))
            kind = "prose"
        if kind in ("code", "blank", "html", "literal"):
            flush()
            template.literal(body + eol)
        previous = kind
    flush()
    return template
