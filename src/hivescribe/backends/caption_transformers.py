"""caption-transformers: local image-to-text models through Hugging Face transformers.

BLIP, Florence-2, SmolVLM/Idefics3, LLaVA, Qwen2.5-VL and other models that
``AutoModelForImageTextToText`` knows, from a hub id or a local folder (``--model``). Batched:
every item of a batch goes through ``generate`` together, stage after stage. float16 on CUDA
(``--compute-type`` picks another dtype), float32 on CPU. ``--device auto`` takes CUDA when
there is one. Remote model code stays off unless the worker's owner sets
``extra["trust_remote_code"]``: a worker never runs code sent by others.

Two conventions, told apart by the processor:

- *Chat models* (the processor has a chat template): each prompt becomes a user turn with the
  image; batches are left-padded and only the newly generated tokens are decoded.
- *Captioning models* (BLIP, Florence-2): the prompt is given to the processor as it is, or
  left out for unconditional captioning when a stage has none (Florence-2 wants a task
  prompt such as ``<MORE_DETAILED_CAPTION>``). BLIP continues the prompt, so
  its output starts with the prompt; that echo is removed unless the job sets
  ``strip_prompt: false`` (then the output shows exactly what the model was given). Prompts of
  one generate call must tokenise to the same length (BLIP cannot pad a prompt), so such a
  stage is split into groups by prompt length.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from hivescribe.backends import registry
from hivescribe.backends.base import Backend, Failure, Outcome, WorkItem
from hivescribe.backends.images import MAX_PIXELS, decode_image, decoded_image
from hivescribe.backends.prompts import CaptionRequest, run_stages
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.prompts import DEFAULT_PROMPT

DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


def pick_device(requested: str) -> str:
    if requested in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValidationError(f"--device {requested}: this machine has no CUDA device")
    return requested


def pick_dtype(compute_type: str, device: str) -> torch.dtype:
    if compute_type in ("", "default", "auto"):
        return torch.float16 if device.startswith("cuda") else torch.float32
    if compute_type not in DTYPES:
        raise ValidationError(
            f"--compute-type {compute_type!r} is not one of: default, {', '.join(DTYPES)}"
        )
    return DTYPES[compute_type]


def load_model_class(model_id: str, *, trust_remote_code: bool) -> Any:
    """The transformers class that generates text from images for this checkpoint."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
    for auto_name in ("AutoModelForImageTextToText", "AutoModelForVision2Seq"):
        auto = getattr(transformers, auto_name, None)
        mapping = getattr(auto, "_model_mapping", None)
        if auto is not None and mapping is not None and type(config) in mapping:
            return auto
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None and hasattr(cls, "generate"):
            return cls
    if trust_remote_code and getattr(config, "auto_map", None):
        return transformers.AutoModelForCausalLM  # remote code, allowed by the worker's owner
    raise ValidationError(
        f"{model_id!r} ({config.model_type}) is not an image-to-text model that transformers "
        "can load for captioning (AutoModelForImageTextToText does not know it)"
    )


class TransformersCaptioner(Backend):
    task_types = ("caption",)

    model: Any = None
    processor: Any = None

    def load(self) -> None:
        model_id = self.options.model
        if not model_id:
            registry.choose("caption", None)  # raises, saying how to configure a model
            raise ValidationError("no caption model configured")
        from transformers import AutoProcessor

        trust = bool(self.options.extra.get("trust_remote_code"))
        self.device = pick_device(self.options.device)
        self.dtype = pick_dtype(self.options.compute_type, self.device)
        try:
            self.processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=trust)
            model_cls = load_model_class(model_id, trust_remote_code=trust)
            model = model_cls.from_pretrained(model_id, dtype=self.dtype, trust_remote_code=trust)
        except ValidationError:
            raise
        except (OSError, ValueError) as exc:
            raise ValidationError(f"cannot load caption model {model_id!r}: {exc}") from None
        self.model = model.to(self.device).eval()
        self.chat = bool(getattr(self.processor, "chat_template", None)) and hasattr(
            self.processor, "apply_chat_template"
        )
        tokenizer = self.tokenizer
        if self.chat and tokenizer is not None and not self.model.config.is_encoder_decoder:
            tokenizer.padding_side = "left"  # decoder-only: generate after the last real token
        # transformers 5 takes the processor's own arguments apart; 4.x took them as they came.
        template_params = (
            inspect.signature(self.processor.apply_chat_template).parameters if self.chat else {}
        )
        self._chat_padding: dict[str, Any] = (
            {"processor_kwargs": {"padding": True}}
            if self.chat and "processor_kwargs" in template_params
            else {"padding": True}
        )

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", None)

    def prepare(self, item: WorkItem) -> None:
        max_pixels = int(self.options.extra.get("max_image_pixels", MAX_PIXELS))
        item.decoded = decode_image(item.data, filename=item.filename, max_pixels=max_pixels)

    def process_batch(self, items: list[WorkItem]) -> list[Outcome]:
        if self.model is None:
            self.load()
        return run_stages(items, self._generate, self.options.model)

    # -- generation ------------------------------------------------------------------------------

    def _generate(self, requests: list[CaptionRequest]) -> list[str | Failure]:
        results: list[str | Failure] = [Failure("not generated")] * len(requests)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, request in enumerate(requests):
            image = decoded_image(self, request.item)
            if isinstance(image, Failure):
                results[index] = image
                continue
            key = (request.stage.max_new_tokens, self._prompt_length(request.prompt))
            groups.setdefault(key, []).append(index)
        for (max_new_tokens, _), indexes in groups.items():
            group = [requests[i] for i in indexes]
            texts = self._run(group, max_new_tokens)
            for i, text in zip(indexes, texts, strict=True):
                results[i] = text
        return results

    def _prompt_length(self, prompt: str | None) -> int:
        """Chat prompts pad; a captioning model's prompts are grouped by token count."""
        if self.chat or prompt is None or self.tokenizer is None:
            return -1
        return len(self.tokenizer(prompt)["input_ids"])

    def _run(self, requests: list[CaptionRequest], max_new_tokens: int) -> list[str]:
        images = [r.item.decoded.image for r in requests]
        prompts = [r.prompt for r in requests]
        if self.chat:
            conversations = [
                [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "image": image},
                            {"type": "text", "text": prompt or DEFAULT_PROMPT},
                        ],
                    }
                ]
                for image, prompt in zip(images, prompts, strict=True)
            ]
            inputs = self.processor.apply_chat_template(
                conversations,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                **self._chat_padding,
            )
        elif prompts[0] is None:
            inputs = self.processor(images=images, return_tensors="pt")
        else:
            inputs = self.processor(images=images, text=prompts, return_tensors="pt", padding=True)
        inputs = inputs.to(self.device)
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor) and torch.is_floating_point(value):
                inputs[key] = value.to(self.dtype)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens)
        prompt_ids = inputs.get("input_ids")
        length = 0 if prompt_ids is None else prompt_ids.shape[1]
        if length and output.shape[1] >= length and torch.equal(output[:, :length], prompt_ids):
            output = output[:, length:]  # decoder-only models return the prompt first
        texts = [
            str(t).strip() for t in self.processor.batch_decode(output, skip_special_tokens=True)
        ]
        if not self.chat:
            texts = [self._strip_echo(t, r) for t, r in zip(texts, requests, strict=True)]
        return texts

    def _strip_echo(self, text: str, request: CaptionRequest) -> str:
        """BLIP continues its prompt: remove it (as the tokenizer writes it) from the output."""
        if request.prompt is None or not request.item.params.get("strip_prompt", True):
            return text
        tokenizer = self.tokenizer
        if tokenizer is None:
            return text
        ids = tokenizer(request.prompt, add_special_tokens=False)["input_ids"]
        echo = str(tokenizer.decode(ids, skip_special_tokens=True)).strip()
        if echo and text.startswith(echo):
            return text[len(echo) :].strip()
        return text
