"""echo: returns its input after ``delay_ms``. A tool for smoke tests and benchmarks, not a model.

Text comes back as ``{"text": ...}``; bytes as their size and SHA-256. Items whose key is in
``fail_keys`` fail permanently, to exercise failure paths end to end. With ``blob_output: true``
the input's bytes (text as UTF-8) also come back as an output file named ``<item_key>.bin``,
which the worker uploads to the coordinator's blob store (the result's ``blob_key``): a way to
exercise output uploads without a speech or document model."""

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
            outcome = Success({"text": item.text}, text=item.text, model="echo")
            data = item.text.encode("utf-8")
        else:
            data = item.data or b""
            digest = hashlib.sha256(data).hexdigest()
            outcome = Success({"size": len(data), "sha256": digest}, text=digest, model="echo")
        if item.params.get("blob_output"):
            outcome.blob = data
            outcome.blob_name = f"{item.item_key}.bin"
        return outcome
