"""text-translation, three ways, picked by ``--model`` and ``--endpoint``; :class:`Translator`
does the work for this backend and for document-translation (doc_translate.py).

- *Apertium* (``--model apertium`` or none, the default): the ``apertium`` program and its
  installed pairs, offline and fast (translate_apertium.py).
- *Seq2seq* (a hub id such as ``Helsinki-NLP/opus-mt-en-es``,
  ``facebook/nllb-200-distilled-600M``, ``t5-small``, or a local folder): MarianMT, mBART-50,
  NLLB, M2M100 and T5 models through ``generate`` (translate_seq2seq.py).
- *An OpenAI-compatible endpoint* (``extra["endpoint"]`` with ``--model NAME``): one chat
  completion per chunk, a few at a time (``extra["concurrency"]``, 4) (translate_endpoint.py).

Here is what they share: the :class:`Translator` facade (the engines are its mixins, so one
object holds the loaded engine), parameters (domain/inputs.TranslationParams), the chunking of
long texts on sentence boundaries for neural engines (``max_chunk_chars``; paragraph breaks
kept), and the text-translation backend.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from hivescribe.backends.base import (
    Backend,
    BackendOptions,
    Failure,
    InputError,
    Outcome,
    Success,
    WorkItem,
)
from hivescribe.backends.translate_apertium import APERTIUM, ApertiumEngine
from hivescribe.backends.translate_endpoint import EndpointEngine
from hivescribe.backends.translate_seq2seq import Seq2SeqEngine
from hivescribe.domain import languages
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.inputs import MAX_INLINE_TEXT, TranslationParams

DOCUMENT_SUFFIXES = (".pdf", ".docx", ".doc", ".odt", ".rtf", ".html", ".htm", ".pptx", ".xlsx")
_PARAGRAPH_BREAK = re.compile(r"(\n[^\S\n]*\n\s*)")
# A word and the space after it, or a run of CJK text up to its punctuation.
_UNIT = re.compile("\\S+?(?:[\u3002\uff01\uff1f\uff1b\uff0c\u3001]|\\s+|$)")
P = TypeVar("P", bound=TranslationParams)


def read_params(params: dict[str, Any], schema: type[P]) -> P:
    """An item's parameters, checked and normalised; InputError that names the field. Only the
    schema's own fields are read: a job's params were checked for unknown keys when it was
    created, and the coordinator keeps its own keys beside them (the tasks API's ``model_id``,
    ``priority``, ``callback_url``, ``input_file``), which backends ignore."""
    try:
        return schema.model_validate({k: v for k, v in params.items() if k in schema.model_fields})
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise InputError(f"bad parameters: {problems}") from None


# -- chunks ----------------------------------------------------------------------------------


def split_chunks(text: str, max_chars: int) -> tuple[list[str], list[str | int]]:
    """Chunks of at most ``max_chars`` (whole sentences where they fit) and a template for
    :func:`join_chunks`: paragraph breaks verbatim (str) and each paragraph's chunk count."""
    from hivescribe.backends.textrank import split_sentences  # numpy: not for Apertium alone

    chunks: list[str] = []
    template: list[str | int] = []
    for index, part in enumerate(_PARAGRAPH_BREAK.split(text.strip())):
        if index % 2:
            template.append(part)
            continue
        pieces = [p for s in split_sentences(part) for p in _pieces(s, max_chars)]
        paragraph: list[str] = []
        for piece in pieces:
            if paragraph and len(paragraph[-1]) + 1 + len(piece) <= max_chars:
                paragraph[-1] += " " + piece
            else:
                paragraph.append(piece)
        chunks += paragraph
        template.append(len(paragraph))
    return chunks, template


def _pieces(sentence: str, max_chars: int) -> list[str]:
    """A sentence longer than ``max_chars`` cut between words (or after CJK punctuation),
    and words longer than that anywhere."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    for unit in _UNIT.findall(sentence):
        while len(unit) > max_chars:
            pieces.append(unit[:max_chars])
            unit = unit[max_chars:]
        if pieces and len(pieces[-1]) + len(unit) <= max_chars:
            pieces[-1] += unit
        else:
            pieces.append(unit)
    return [p.strip() for p in pieces if p.strip()]


def join_chunks(template: list[str | int], translations: list[str], separator: str = " ") -> str:
    out, taken = [], 0
    for part in template:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(separator.join(t.strip() for t in translations[taken : taken + part]))
            taken += part
    return "".join(out)


# -- the translator --------------------------------------------------------------------------


class Translator(ApertiumEngine, Seq2SeqEngine, EndpointEngine):
    """One loaded translation engine (Apertium, a seq2seq model or an endpoint), shared by the
    text and document backends. ``translate`` keeps order and length; it raises InputError for
    requests that can never succeed (an unsupported pair, a server's 4xx)."""

    def __init__(self, model: str | None = None, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions(model=model)
        self.model_id = model or APERTIUM
        self.mode: str | None = None  # "apertium", "seq2seq" or "endpoint", once loaded
        self.apertium_modes: list[str] = []  # what `apertium -l` lists
        self._client: Any = None

    @property
    def name(self) -> str:
        return self.model_id

    def load(self) -> None:
        if self.options.extra.get("endpoint"):
            self._load_endpoint()
        elif self.model_id == APERTIUM:
            self._load_apertium()
        else:
            self._load_seq2seq(self.model_id)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def chunks(self, text: str, params: TranslationParams) -> int:
        """How many pieces ``text`` is translated in."""
        return 1 if self.mode == "apertium" else len(split_chunks(text, params.max_chunk_chars)[0])

    def check_pair(self, source: str, target: str) -> tuple[str, str]:
        """The pair normalised, or InputError, saying what is supported, when this engine
        cannot translate it."""
        if self.mode is None:
            self.load()
        try:
            source, target = languages.check_pair(source, target)
            if self.mode == "apertium":
                languages.apertium_mode(source, target, self.apertium_modes)
            elif self.mode == "seq2seq":
                self._codes(source, target)
        except ValidationError as exc:
            raise InputError(exc.detail) from None
        return source, target

    def translate(
        self, texts: list[str], source: str, target: str, *, params: TranslationParams | None = None
    ) -> list[str]:
        """``texts`` translated from ``source`` to ``target``, one for one; blank texts come
        back as they were."""
        source, target = self.check_pair(source, target)
        params = params or TranslationParams(source_language=source, target_language=target)
        if self.mode == "apertium":
            mode = languages.apertium_mode(source, target, self.apertium_modes)
            return self._apertium(texts, mode, params.mark_unknown)
        plans = [split_chunks(text, params.max_chunk_chars) for text in texts]
        chunks = [chunk for plan, _ in plans for chunk in plan]
        if self.mode == "seq2seq":
            done = self._generate(chunks, source, target, params)
        else:
            with ThreadPoolExecutor(int(self.options.extra.get("concurrency", 4))) as pool:
                done = list(pool.map(lambda c: self._complete(c, source, target, params), chunks))
        separator = " " if languages.uses_spaces(target) else ""
        out, taken = [], 0
        for text, (plan, template) in zip(texts, plans, strict=True):
            joined = join_chunks(template, done[taken : taken + len(plan)], separator)
            taken += len(plan)
            lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
            out.append(lead + joined + trail if text.strip() else text)
        return out


# -- the backend -----------------------------------------------------------------------------


def item_text(item: WorkItem) -> str:
    """The item's text (inline, or a UTF-8 text file); InputError that says what to fix."""
    if isinstance(item.decoded, str):
        return item.decoded
    suffix = PurePosixPath(item.filename or "").suffix.lower()
    if suffix in DOCUMENT_SUFFIXES:
        raise InputError(f"{item.filename} is a document: translate it with document-translation")
    if item.text is not None:
        text = item.text
    elif item.data is not None:
        if len(item.data) > 4 * MAX_INLINE_TEXT:
            raise InputError(f"the file is over {4 * MAX_INLINE_TEXT} bytes: split it")
        try:
            text = item.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"the input is not UTF-8 text ({exc.reason} at byte {exc.start}): convert it "
                "to UTF-8, or use document-translation for PDF and DOCX files"
            ) from None
        if "\x00" in text:
            raise InputError("the input is not text (it has NUL bytes)")
    else:
        raise InputError("no text to translate: give text, or a .txt or .md file")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError("the text is empty: there is nothing to translate")
    if len(text) > MAX_INLINE_TEXT:
        raise InputError(
            f"the text has {len(text)} characters; translation takes at most {MAX_INLINE_TEXT} "
            "per item: split it into several items"
        )
    return text


class TranslatorBackend(Backend):
    """What the text and document translation backends share: one Translator, loaded once."""

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self.translator = Translator(self.options.model, self.options)

    @property
    def models(self) -> list[str]:
        return [self.translator.name]

    @classmethod
    def missing(cls) -> str | None:
        return None if shutil.which("apertium") else "the apertium program"

    def load(self) -> None:
        self.translator.load()

    def close(self) -> None:
        self.translator.close()


class TranslationBackend(TranslatorBackend):
    """text-translation. Items that ask for the same languages and settings are translated
    together (one Apertium process, one ``generate`` pass); when such a group fails as a whole,
    each of its items is tried alone, so one bad item fails alone."""

    task_types = ("text-translation",)

    def prepare(self, item: WorkItem) -> None:
        item.decoded = item_text(item)

    def process_batch(self, items: list[WorkItem]) -> list[Outcome]:
        if self.translator.mode is None:
            self.load()
        results: list[Outcome] = [Failure("not translated")] * len(items)
        groups: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            try:
                item.decoded = item_text(item)
                params = read_params(item.params, TranslationParams)
                self.translator.check_pair(params.source_language, params.target_language)
            except InputError as exc:
                results[index] = Failure(f"bad input: {exc}", permanent=True)
                continue
            groups.setdefault(params.model_dump_json(), []).append(index)
        for indexes in groups.values():
            outcomes = self._translate([items[i] for i in indexes])
            if len(indexes) > 1 and all(isinstance(o, Failure) for o in outcomes):
                outcomes = [self._translate([items[i]])[0] for i in indexes]
            for i, outcome in zip(indexes, outcomes, strict=True):
                results[i] = outcome
        return results

    def _translate(self, items: list[WorkItem]) -> list[Outcome]:
        params = read_params(items[0].params, TranslationParams)
        source, target = params.source_language, params.target_language
        texts = [str(item.decoded) for item in items]
        try:
            translated = self.translator.translate(texts, source, target, params=params)
        except InputError as exc:
            return [Failure(f"bad input: {exc}", permanent=True)] * len(items)
        except Exception as exc:
            return [Failure(f"{type(exc).__name__}: {exc}")] * len(items)
        model = self.translator.name
        return [
            Failure("the model returned an empty translation")
            if not translation.strip()
            else Success(
                {
                    "source_language": source,
                    "target_language": target,
                    "model": model,
                    "chunks": self.translator.chunks(text, params),
                },
                text=translation,
                model=model,
            )
            for text, translation in zip(texts, translated, strict=True)
        ]
