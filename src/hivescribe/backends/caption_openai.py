"""caption-openai: captions from an OpenAI-compatible chat endpoint with image input.

Works with vLLM (``vllm serve``), Ollama, llama.cpp's server, LM Studio, ``transformers serve``
and OpenAI itself. Each stage of each item is one ``POST {endpoint}/chat/completions`` carrying
the rendered prompt and the image as a ``data:`` URL; the requests of a batch run concurrently.

Worker options (``BackendOptions.extra``): ``endpoint`` (base URL, e.g.
``http://127.0.0.1:8000/v1``), ``api_key`` (sent as ``Authorization: Bearer``), and optionally
``concurrency`` (8), ``timeout_s`` (120), ``max_retries`` (5), ``retry_base_s`` (0.5),
``max_retry_after_s`` (120), ``max_image_pixels``.

429, 5xx, timeouts and connection errors are retried with jittered exponential backoff,
waiting at least what ``Retry-After`` asks; when retries run out the item fails for now (the
coordinator tries it again later). Any other 4xx fails the item for good, with the server's
own message.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from hivescribe.backends import registry
from hivescribe.backends.base import Backend, Failure, Outcome, WorkItem
from hivescribe.backends.images import MAX_PIXELS, decode_image, decoded_image
from hivescribe.backends.prompts import CaptionRequest, run_stages
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.prompts import DEFAULT_PROMPT


def retryable(status: int) -> bool:
    """Worth asking again: rate limits, timeouts and server errors (not "not implemented")."""
    return status in (408, 425, 429) or (status >= 500 and status not in (501, 505))


def chat_messages(prompt: str | None, image_url: str) -> list[dict[str, Any]]:
    """The OpenAI chat ``messages`` for one caption request."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prompt or DEFAULT_PROMPT},
                {"type": "image_url", "image_url": {"url": image_url}},
            ],
        }
    ]


def chat_body(model: str, prompt: str | None, image_url: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": chat_messages(prompt, image_url),
        "max_tokens": max_tokens,
        "stream": False,
    }


class OpenAICaptioner(Backend):
    task_types = ("caption",)

    _client: httpx.Client | None = None

    def load(self) -> None:
        extra = self.options.extra
        endpoint = str(extra.get("endpoint") or "").rstrip("/")
        if not endpoint:
            raise ValidationError(
                "caption-openai needs --endpoint http://HOST:PORT/v1 (the server's base URL) "
                "and --model NAME (the model it serves)"
            )
        if not endpoint.startswith(("http://", "https://")):
            raise ValidationError(f"--endpoint must start with http:// or https://: {endpoint!r}")
        if not self.options.model:
            registry.choose("caption", None, endpoint=endpoint)  # raises: says what to pass
        self.url = f"{endpoint}/chat/completions"
        self.concurrency = max(1, int(extra.get("concurrency", 8)))
        self.max_retries = max(0, int(extra.get("max_retries", 5)))
        self.retry_base_s = float(extra.get("retry_base_s", 0.5))
        self.max_retry_after_s = float(extra.get("max_retry_after_s", 120.0))
        headers = {"Accept": "application/json"}
        if extra.get("api_key"):
            headers["Authorization"] = f"Bearer {extra['api_key']}"
        timeout = float(extra.get("timeout_s", 120.0))
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=self.concurrency),
            follow_redirects=False,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def prepare(self, item: WorkItem) -> None:
        max_pixels = int(self.options.extra.get("max_image_pixels", MAX_PIXELS))
        item.decoded = decode_image(item.data, filename=item.filename, max_pixels=max_pixels)

    def process_batch(self, items: list[WorkItem]) -> list[Outcome]:
        if self._client is None:
            self.load()
        return run_stages(items, self._generate, self.options.model)

    def _generate(self, requests: list[CaptionRequest]) -> list[str | Failure]:
        if len(requests) <= 1 or self.concurrency == 1:
            return [self._one(r) for r in requests]
        with ThreadPoolExecutor(min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, request: CaptionRequest) -> str | Failure:
        image = decoded_image(self, request.item)
        if isinstance(image, Failure):
            return image
        body = chat_body(
            str(self.options.model), request.prompt, image.data_url(), request.stage.max_new_tokens
        )
        return self.complete(body)

    def complete(self, body: dict[str, Any]) -> str | Failure:
        """POST one chat completion, with retries; the reply's text, or why there is none."""
        assert self._client is not None
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TransportError as exc:  # connection refused or reset, timeouts
                problem = f"cannot reach {self.url}: {type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return _caption_from(response)
                problem = f"the server answered {response.status_code}: {_server_message(response)}"
                if not retryable(response.status_code):
                    return Failure(problem, permanent=response.status_code < 500)
                retry_after = _retry_after(response.headers.get("retry-after"))
                if retry_after is not None and retry_after > self.max_retry_after_s:
                    return Failure(f"{problem} (it asks to wait {retry_after:.0f} s; try later)")
            if attempt >= self.max_retries:
                return Failure(f"{problem} (after {attempt + 1} attempts)")
            backoff = min(30.0, self.retry_base_s * 2**attempt) * random.uniform(0.5, 1.0)
            time.sleep(max(backoff, retry_after or 0.0))
            attempt += 1


def _caption_from(response: httpx.Response) -> str | Failure:
    try:
        reply = response.json()
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return Failure(f"the server's reply is not a chat completion: {response.text[:300]!r}")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None:
        content = ""  # an empty caption: run_stages says so
    if not isinstance(content, str):
        return Failure(f"the server's reply has no text: {response.text[:300]!r}")
    return content.strip()


def _server_message(response: httpx.Response) -> str:
    """The error text a server sent: OpenAI's ``error.message``, FastAPI's ``detail``, or text."""
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip()[:1000] or response.reason_phrase
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:1000]
        for key in ("error", "detail", "message"):
            if payload.get(key):
                value = payload[key]
                return (value if isinstance(value, str) else json.dumps(value))[:1000]
    return json.dumps(payload)[:1000]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
