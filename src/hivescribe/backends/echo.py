"""echo: returns its input after ``delay_ms``. A tool for smoke tests and benchmarks, not a model.

Text comes back as ``{"text": ...}``; bytes as their size and SHA-256. Items whose key is in
``fail_keys`` fail permanently, to exercise failure paths end to end."""

from __future__ import annotations

import hashlib
import time

from hivescribe.backends.base import Backend, Failure, Outcome, Success, WorkItem


class EchoBackend(Backend):
    task_types = ("echo",)

    @property
    def models(self) -> list[str]:
        return ["echo"]

    def process_one(self, item: WorkItem) -> Outcome:
        delay_ms = int(item.params.get("delay_ms", 0))
        if delay_ms:
            time.sleep(delay_ms / 1000)
        if item.item_key in item.params.get("fail_keys", ()):
            return Failure("echo: this item is listed in fail_keys", permanent=True)
        if item.text is not None:
            return Success({"text": item.text}, text=item.text, model="echo")
        data = item.data or b""
        digest = hashlib.sha256(data).hexdigest()
        return Success({"size": len(data), "sha256": digest}, text=digest, model="echo")
