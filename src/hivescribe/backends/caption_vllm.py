"""caption-vllm: offline batch captioning with vLLM, in the worker's own process.

**Not run in this project's tests**: vLLM needs a Linux machine with a CUDA GPU and the
``vllm`` package (``pip install 'hivescribe[vllm]'``), and the development machines have
neither. What can be checked without vLLM is tested: the requests this backend builds, and
that ``load()`` without vLLM fails with a message that says what to install.

Each stage step hands the whole batch to ``LLM.chat`` at once (vLLM schedules it with
continuous batching): one conversation per item, the rendered prompt and the image as a
``data:`` URL, exactly the messages the OpenAI-compatible backend sends to ``vllm serve``.

Worker options (``BackendOptions.extra``): ``trust_remote_code`` (off unless the worker's
owner turns it on), ``gpu_memory_utilization`` (0.9), ``max_model_len``, ``tensor_parallel_size``,
``max_image_pixels``. ``--compute-type`` is vLLM's dtype (``auto`` by default).
"""

from __future__ import annotations

from typing import Any

from hivescribe.backends import registry
from hivescribe.backends.base import Backend, Failure, Outcome, WorkItem
from hivescribe.backends.caption_openai import chat_messages
from hivescribe.backends.images import MAX_PIXELS, decode_image, decoded_image
from hivescribe.backends.prompts import CaptionRequest, run_stages
from hivescribe.domain.errors import ValidationError

INSTALL_HINT = (
    "the caption-vllm backend needs vLLM, which is not installed: on a Linux machine with an "
    "NVIDIA GPU and CUDA, run pip install 'hivescribe[vllm]' (or pip install vllm); "
    "elsewhere use --backend caption-transformers, or --endpoint with a vLLM server"
)


def llm_kwargs(model: str, compute_type: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Arguments for ``vllm.LLM``: one image per prompt, remote code only if allowed."""
    kwargs: dict[str, Any] = {
        "model": model,
        "trust_remote_code": bool(extra.get("trust_remote_code")),
        "limit_mm_per_prompt": {"image": 1},
        "dtype": "auto" if compute_type in ("", "default") else compute_type,
        "gpu_memory_utilization": float(extra.get("gpu_memory_utilization", 0.9)),
    }
    for key in ("max_model_len", "tensor_parallel_size", "seed"):
        if extra.get(key) is not None:
            kwargs[key] = int(extra[key])
    return kwargs


def build_conversations(
    requests: list[CaptionRequest], image_urls: list[str]
) -> list[list[dict[str, Any]]]:
    """One chat conversation per request, for ``LLM.chat``."""
    return [chat_messages(r.prompt, url) for r, url in zip(requests, image_urls, strict=True)]


class VLLMCaptioner(Backend):
    task_types = ("caption",)

    llm: Any = None
    _sampling_params: Any = None  # vllm.SamplingParams, once loaded

    def load(self) -> None:
        if not self.options.model:
            registry.choose("caption", None)  # raises, saying how to configure a model
        try:
            import vllm
        except ImportError:
            raise ValidationError(INSTALL_HINT) from None
        self._sampling_params = vllm.SamplingParams
        self.llm = vllm.LLM(
            **llm_kwargs(str(self.options.model), self.options.compute_type, self.options.extra)
        )

    def prepare(self, item: WorkItem) -> None:
        max_pixels = int(self.options.extra.get("max_image_pixels", MAX_PIXELS))
        item.decoded = decode_image(item.data, filename=item.filename, max_pixels=max_pixels)

    def process_batch(self, items: list[WorkItem]) -> list[Outcome]:
        if self.llm is None:
            self.load()
        return run_stages(items, self._generate, self.options.model)

    def _generate(self, requests: list[CaptionRequest]) -> list[str | Failure]:
        results: list[str | Failure] = [Failure("not generated")] * len(requests)
        ready: list[int] = []
        urls: list[str] = []
        for index, request in enumerate(requests):
            image = decoded_image(self, request.item)
            if isinstance(image, Failure):
                results[index] = image
            else:
                ready.append(index)
                urls.append(image.data_url())
        if not ready:
            return results
        batch = [requests[i] for i in ready]
        sampling = [self._sampling_params(max_tokens=r.stage.max_new_tokens) for r in batch]
        outputs = self.llm.chat(build_conversations(batch, urls), sampling, use_tqdm=False)
        for index, output in zip(ready, outputs, strict=True):
            results[index] = output.outputs[0].text if output.outputs else ""
        return results
