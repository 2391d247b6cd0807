"""The OpenAI-compatible endpoint engine of :class:`~hivescribe.backends.translate.Translator`
(``extra["endpoint"]`` with ``--model NAME``): one chat completion per chunk; the translator
sends a few at a time (``extra["concurrency"]``, 4). A 4xx answer (other than 408, 425 and 429)
is the request's fault and raises InputError; anything else is worth retrying.
"""

from __future__ import annotations

from typing import Any

from hivescribe.backends.base import BackendOptions, InputError
from hivescribe.backends.text_models import chat_client, chat_url
from hivescribe.domain import languages
from hivescribe.domain.inputs import TranslationParams

SYSTEM_PROMPT = (
    "You are a translator. Translate the user's text from {source} to {target}. Keep its "
    "meaning, tone, names, numbers and line breaks. Reply with the translation only: no notes, "
    "no quotes, no explanations."
)


class EndpointEngine:
    """Mixed into Translator: opens the HTTP client and asks for one chunk's translation. Its
    state lives on the translator (``url``, ``_client``, which ``Translator.close`` closes)."""

    options: BackendOptions
    mode: str | None
    _client: Any

    def _load_endpoint(self) -> None:
        self.url = chat_url(self.options)
        if self._client is None:
            self._client = chat_client(self.options)
        self.mode = "endpoint"

    def _complete(self, chunk: str, source: str, target: str, params: TranslationParams) -> str:
        names = {"source": languages.english_name(source), "target": languages.english_name(target)}
        body = {
            "model": self.options.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT.format(**names)},
                {"role": "user", "content": chunk},
            ],
            "max_tokens": params.max_new_tokens or max(256, len(chunk)),
            "temperature": 0,
            "stream": False,
        }
        response = self._client.post(self.url, json=body)
        if response.status_code >= 400:
            message = f"server answered {response.status_code}: {response.text[:500]}"
            if response.status_code < 500 and response.status_code not in (408, 425, 429):
                raise InputError(message)
            raise RuntimeError(message)
        try:
            content = str(response.json()["choices"][0]["message"]["content"] or "").strip()
        except (ValueError, KeyError, IndexError, TypeError):
            raise RuntimeError(f"unexpected response: {response.text[:500]}") from None
        if not content:
            raise RuntimeError("the server returned an empty translation")
        return content
