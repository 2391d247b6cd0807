"""echo: returns its input after ``delay_ms``. A tool for smoke tests and benchmarks, not a model.

While it waits it reports progress every PROGRESS_STEP_S (the percent of the delay gone), so
tests can watch live progress end to end.

Text comes back as ``{"text": ...}``; bytes as their size and SHA-256. Items whose key is in
``fail_keys`` fail permanently, to exercise failure paths end to end. With ``blob_output: true``
the input's bytes (text as UTF-8) also come back as an output file named ``<item_key>.bin``,
which the worker uploads to the coordinator's blob store (the result's ``blob_key``): a way to
exercise output uploads without a speech or document model."""

from __future__ import annotations

import hashlib
import time

from hivescribe.backends.base import Backend, Failure, Outcome, Success, WorkItem

PROGRESS_STEP_S = 0.1


class EchoBackend(Backend):
    task_types = ("echo",)

    @property
    def models(self) -> list[str]:
        return ["echo"]

    def process_one(self, item: WorkItem) -> Outcome:
        delay_ms = int(item.params.get("delay_ms", 0))
        if delay_ms:
            _wait_reporting(item, delay_ms / 1000)
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


def _wait_reporting(item: WorkItem, delay_s: float) -> None:
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < delay_s:
        item.report_progress(100 * elapsed / delay_s, f"{elapsed:.1f} of {delay_s:.1f} s")
        time.sleep(min(PROGRESS_STEP_S, delay_s - elapsed))
