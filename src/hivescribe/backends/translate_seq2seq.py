"""The seq2seq engine of :class:`~hivescribe.backends.translate.Translator`: a hub id such as
``Helsinki-NLP/opus-mt-en-es``, ``facebook/mbart-large-50-many-to-many-mmt``,
``facebook/nllb-200-distilled-600M``, ``t5-small``, or a local folder, run with
``AutoModelForSeq2SeqLM.generate`` (transformers 5 has no translation pipeline).

How the model names languages is read from its tokenizer: NLLB (``spa_Latn``), mBART-50
(``es_XX``) and M2M100 (``__es__``) get ``src_lang`` and the target as ``forced_bos_token_id``;
T5 a ``translate English to German:`` prefix; MarianMT has its pair fixed (multi-target ones get
a ``>>spa<<`` token). Chunks of a batch go through ``generate`` together, shortest first. Torch
and transformers are imported only when such a model is loaded.
"""

from __future__ import annotations

from typing import Any

from hivescribe.backends.base import BackendOptions
from hivescribe.backends.text_models import T5_TYPES, load_seq2seq
from hivescribe.domain import languages
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.inputs import TranslationParams


class Seq2SeqEngine:
    """Mixed into Translator: loads the model and tokenizer, maps a language pair to the
    model's codes, and generates. Its state lives on the translator (``model``, ``tokenizer``,
    ``family``, ...), where tests and callers look for it."""

    options: BackendOptions
    model_id: str
    mode: str | None

    def _load_seq2seq(self, model_id: str) -> None:
        loaded = load_seq2seq(model_id, self.options, purpose="translation")
        self.tokenizer, self.model, self.device = loaded.tokenizer, loaded.model, loaded.device
        self.vocab = set(self.tokenizer.get_vocab())
        model_type = loaded.model_type
        families = [
            ("t5", model_type in T5_TYPES),
            ("nllb", "eng_Latn" in self.vocab),
            ("mbart50", "en_XX" in self.vocab),
            ("m2m100", "__en__" in self.vocab),
            ("marian", model_type == "marian"),
        ]
        family = next((name for name, found in families if found), None)
        if family is None:
            raise ValidationError(
                f"cannot tell how {model_id!r} (model type {model_type!r}) names languages: "
                "hivescribe translates with MarianMT, mBART-50, NLLB, M2M100 and T5 models"
            )
        self.family = family
        named = languages.marian_pair(model_id)
        self.pair = tuple(
            _code(getattr(self.tokenizer, attr, None)) or guess
            for attr, guess in zip(("source_lang", "target_lang"), named, strict=True)
        )
        self.max_tokens = loaded.max_input_tokens(default=512)
        self.batch_size = int(self.options.extra.get("batch_size", 16))
        self.mode = "seq2seq"

    def _codes(self, source: str, target: str) -> tuple[str, int | None, str | None]:
        """(text prefix, forced_bos_token_id, tokenizer.src_lang) for the pair, or a
        ValidationError saying what the model translates."""
        if self.family == "t5":
            return languages.t5_prefix(source, target), None, None
        if self.family == "marian":
            want = (languages.parse(source).code, languages.parse(target).code)
            token = languages.marian_target_token(target, self.vocab)
            fixed = (self.pair[0], None if token else self.pair[1])
            if any(have and have != asked for have, asked in zip(fixed, want, strict=True)):
                raise ValidationError(
                    f"{self.model_id} translates {self.pair[0] or 'several languages'} to "
                    f"{self.pair[1] or 'several languages'} only (MarianMT models have their "
                    f"pair fixed), not {source}->{target}: use Helsinki-NLP/opus-mt-"
                    f"{want[0]}-{want[1]} or facebook/nllb-200-distilled-600M"
                )
            return (f"{token} " if token else ""), None, None
        to_code = {
            "nllb": languages.nllb_code,
            "mbart50": languages.mbart50_code,
            "m2m100": languages.m2m100_code,
        }[self.family]
        codes = (to_code(source), to_code(target))
        for tag, code in zip((source, target), codes, strict=True):
            if code not in self.vocab:
                raise ValidationError(f"{self.model_id} has no language token {code} ({tag})")
        src_lang = codes[0].strip("_") if self.family == "m2m100" else codes[0]
        forced = self.tokenizer.convert_tokens_to_ids(codes[1])
        return "", int(forced if isinstance(forced, int) else forced[0]), src_lang

    def _generate(
        self, chunks: list[str], source: str, target: str, params: TranslationParams
    ) -> list[str]:
        import torch

        prefix, forced, src_lang = self._codes(source, target)
        if src_lang is not None:
            self.tokenizer.src_lang = src_lang
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        done = [""] * len(chunks)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            inputs = self.tokenizer(
                [prefix + chunks[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
            ).to(self.device)
            longest = int(inputs["input_ids"].shape[1])
            kwargs: dict[str, Any] = {
                "max_new_tokens": params.max_new_tokens or min(self.max_tokens, 2 * longest + 16)
            }
            if params.num_beams is not None:
                kwargs["num_beams"] = params.num_beams
            if forced is not None:
                kwargs["forced_bos_token_id"] = forced
            with torch.inference_mode():
                output = self.model.generate(
                    input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], **kwargs
                )
            decoded = self.tokenizer.batch_decode(output, skip_special_tokens=True)
            for i, text in zip(batch, decoded, strict=True):
                done[i] = " ".join(str(text).split())
        return done


def _code(value: Any) -> str | None:
    try:
        return languages.parse(value).code if isinstance(value, str) else None
    except ValidationError:
        return None
