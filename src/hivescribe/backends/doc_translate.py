"""document-translation: a PDF, DOCX, text, Markdown or HTML file translated into a document of
the same kind (documents.py reads and writes them), by the same engines as text-translation
(translate.Translator: Apertium by default, a seq2seq model, or an OpenAI-compatible endpoint).

A document's segments (paragraphs, table cells, headings) go to the translator in one call, or
a long document's in a few large batches (at most ten), so Apertium runs only a few times per
document and a model batches them. Scanned PDF pages are read by OCR first (``ocr``: "auto"
reads pages without a text layer, "always" every page, "never" none) with ``ocr_engine``
(tesseract or rapidocr, ocr.py) in ``ocr_language`` (Tesseract's name, derived from the source
language when the job was created). The engine is loaded on the first scanned page, once per
worker.

Progress: the pages read ("page 3 of 12", "page 3 of 12 (OCR)"), then the characters
translated batch by batch ("translated 1,200 of 4,800 characters"), then a PDF's pages written
(documents.py gives each step its share of the percent).

Result: the translated plain text, the translated document as the output blob
(``<item_key stem>.<kind>``), and ``{"kind", "pages", "source_language", "target_language",
"model", "notes"}``; notes say what the document kind could not keep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import PurePosixPath

from PIL import Image

from hivescribe.backends import documents, ocr
from hivescribe.backends.base import (
    BackendOptions,
    InputError,
    Outcome,
    Success,
    WorkItem,
)
from hivescribe.backends.translate import TranslatorBackend, read_params
from hivescribe.domain.inputs import MAX_INLINE_TEXT, DocumentTranslationParams

Reader = Callable[[Image.Image], str]


class DocumentTranslator(TranslatorBackend):
    task_types = ("document-translation",)

    def __init__(self, options: BackendOptions | None = None) -> None:
        super().__init__(options)
        self._readers: dict[tuple[str, str | None], Reader] = {}
        self._lock = threading.Lock()

    def process_one(self, item: WorkItem) -> Outcome:
        if self.translator.mode is None:
            self.load()
        params = read_params(item.params, DocumentTranslationParams)
        source, target = params.source_language, params.target_language
        self.translator.check_pair(source, target)
        if item.data is None:
            raise InputError(
                "document-translation needs a file (a url, blob or path input), not inline "
                "text: translate text with text-translation"
            )

        def translate(texts: list[str]) -> list[str]:
            return self.translator.translate(texts, source, target, params=params)

        reader = None
        if params.ocr != "never":
            reader = self._lazy_reader(params.ocr_engine, params.ocr_language)
        filename = item.filename or PurePosixPath(item.item_key).name
        document = documents.translate_document(
            item.data,
            filename,
            translate,
            ocr=reader,
            ocr_mode=params.ocr,
            progress=item.report_progress,
            max_characters=MAX_INLINE_TEXT,
        )
        suffix = PurePosixPath(document.filename).suffix or f".{document.kind}"
        stem = PurePosixPath(item.item_key).stem or PurePosixPath(document.filename).stem
        return Success(
            {
                "kind": document.kind,
                "pages": document.pages,
                "source_language": source,
                "target_language": target,
                "model": self.translator.name,
                "notes": document.notes,
            },
            text=document.text,
            model=self.translator.name,
            blob=document.data,
            blob_name=f"{stem}{suffix}",
        )

    def _lazy_reader(self, engine: str, language: str | None) -> Reader:
        """An OCR function that loads its engine on the first page it reads: most documents
        have a text layer and never need one."""

        def read(image: Image.Image) -> str:
            with self._lock:
                if (engine, language) not in self._readers:
                    self._readers[engine, language] = ocr.make_reader(engine, language)
                reader = self._readers[engine, language]
            return reader(image)

        return read
