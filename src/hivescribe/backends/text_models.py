"""Loading what the text backends share: a transformers seq2seq model (summarization and
translation both run ``AutoModelForSeq2SeqLM.generate``), and the HTTP client for an
OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp, OpenAI). Torch, transformers and
httpx are imported only when a backend asks for them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hivescribe.backends.base import BackendOptions
from hivescribe.domain.errors import ValidationError

DTYPES = ("float16", "bfloat16", "float32")
T5_TYPES = ("t5", "mt5", "umt5", "longt5")  # model types that want a task prefix


@dataclass
class Seq2Seq:
    tokenizer: Any
    model: Any  # on ``device``, in eval mode
    device: str

    @property
    def model_type(self) -> str:
        return str(getattr(self.model.config, "model_type", ""))

    def max_input_tokens(self, default: int) -> int:
        """The longest input the model takes: the smaller of the tokenizer's and the model's
        own limits, ignoring the placeholder huge values some tokenizers report."""
        limits = [
            int(x)
            for x in (
                getattr(self.tokenizer, "model_max_length", None),
                getattr(self.model.config, "max_position_embeddings", None),
            )
            if isinstance(x, int) and 0 < x < 1_000_000
        ]
        return min(limits) if limits else default


def load_seq2seq(model_id: str, options: BackendOptions, *, purpose: str) -> Seq2Seq:
    """The tokenizer and model of ``model_id`` (a hub id or a local folder) on the worker's
    --device, in its --compute-type: float32 unless asked (float16 overflows in BART and T5;
    ask for bfloat16 outright). ``purpose`` names the task in the error of a model that does
    not load."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    device = options.device
    if device in ("", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise ValidationError(f"--device {device}: this machine has no CUDA device")
    compute = options.compute_type
    compute = "float32" if compute in ("", "default", "auto") else compute
    if compute not in DTYPES:
        raise ValidationError(f"--compute-type {compute!r} is not one of: {', '.join(DTYPES)}")
    trust = bool(options.extra.get("trust_remote_code"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, trust_remote_code=trust)
        model = AutoModelForSeq2SeqLM.from_pretrained(
            model_id, dtype=getattr(torch, compute), trust_remote_code=trust
        )
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot load {purpose} model {model_id!r}: {exc}") from None
    return Seq2Seq(tokenizer, model.to(device).eval(), device)


def chat_url(options: BackendOptions) -> str:
    """The chat completions URL of the worker's --endpoint (which needs --model)."""
    endpoint = str(options.extra["endpoint"]).rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise ValidationError(f"--endpoint must start with http:// or https://: {endpoint!r}")
    if not options.model:
        raise ValidationError("--endpoint needs --model: the model name the server serves")
    return f"{endpoint}/chat/completions"


def chat_client(options: BackendOptions) -> Any:
    """An httpx.Client for the endpoint: --api-key as a bearer token, ``extra["timeout_s"]``
    (120) per request."""
    import httpx

    headers = {}
    if options.extra.get("api_key"):
        headers["Authorization"] = f"Bearer {options.extra['api_key']}"
    return httpx.Client(headers=headers, timeout=float(options.extra.get("timeout_s", 120)))
