"""Captioning through the real backends, with tiny random models built here (nothing is
downloaded):

- a tiny random BLIP (vision encoder + BERT-style decoder, a word-level tokenizer written here)
  captions a batch of PNG and JPEG images through TransformersCaptioner, unconditionally and
  with prompts; batched results equal one-by-one results;
- a two-stage run proves the second prompt reached the model with the first stage's output
  substituted: BLIP continues its prompt, so with ``strip_prompt: false`` stage two's output
  begins with stage one's caption;
- a tiny random LLaVA (a chat model) runs through the same backend, and through
  OpenAICaptioner against ``transformers serve`` on loopback (a real OpenAI-compatible server);
- retries on 429 (honouring Retry-After) and 503, permanent failure on 400, against a small
  HTTP server run by the test;
- zero-byte, truncated, mislabelled and random-byte files each fail their own item with a
  readable reason while the rest of the batch succeeds;
- prompt templates: fields, job parameters, stages, ``{caption}``, literal braces, and the
  errors for unknown or later placeholders.
"""

from __future__ import annotations

import io
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from tests.tiny_models import WORDS, build_tiny_blip

from hivescribe.backends import (
    BackendOptions,
    Failure,
    InputError,
    Outcome,
    Success,
    WorkItem,
    load_backend,
    registry,
)
from hivescribe.backends.caption_openai import OpenAICaptioner
from hivescribe.backends.caption_transformers import TransformersCaptioner
from hivescribe.backends.caption_vllm import INSTALL_HINT, VLLMCaptioner, llm_kwargs
from hivescribe.backends.images import decode_image, describe_bytes
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.prompts import (
    DEFAULT_PROMPT,
    Stage,
    check_stages,
    placeholders,
    render,
)

# -- inputs -----------------------------------------------------------------------------------


def image_bytes(color: str, fmt: str = "PNG", size: tuple[int, int] = (48, 40)) -> bytes:
    out = io.BytesIO()
    picture = Image.new("RGB", size, color)
    for x in range(0, size[0], 6):  # some structure, so images differ beyond their colour
        picture.putpixel((x, x % size[1]), (x * 5 % 256, 40, 200))
    picture.save(out, fmt)
    return out.getvalue()


def work(key: str, data: bytes | None, filename: str | None = None, **params: Any) -> WorkItem:
    number = abs(hash(key)) % 10_000_000
    return WorkItem(
        number, "tok", "caption", key, "photos", "shard-0", params, data=data, filename=filename
    )


def run_batch(backend: Any, items: list[WorkItem]) -> list[Outcome]:
    """What the worker runtime does: prepare each item (a bad input fails alone), then one
    process_batch for the rest."""
    outcomes: dict[int, Outcome] = {}
    ready = []
    for item in items:
        try:
            backend.prepare(item)
        except InputError as exc:
            outcomes[id(item)] = Failure(f"bad input: {exc}", permanent=True)
        else:
            ready.append(item)
    for item, outcome in zip(ready, backend.process_batch(ready), strict=True):
        outcomes[id(item)] = outcome
    return [outcomes[id(item)] for item in items]


def success(outcome: Outcome) -> Success:
    assert isinstance(outcome, Success), outcome
    return outcome


# -- tiny models, built and saved here ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : "
    "{% if m['content'] is string %}{{ m['content'] }} {% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
    "{% elif c['type'] == 'text' %}{{ c['text'] }} {% endif %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
)


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chat vision-language model: CLIP vision tower, Llama decoder, a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessorPil,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    path = tmp_path_factory.mktemp("tiny-llava")
    specials = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
        },
        text_config={
            "model_type": "llama",
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 256,
            "bos_token_id": vocab["<s>"],
            "eos_token_id": vocab["</s>"],
            "pad_token_id": vocab["<pad>"],
        },
        image_token_index=vocab["<image>"],
        image_seq_length=16,
        vision_feature_layer=-1,
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = vocab["<pad>"]
    # Captions of words only: special tokens (end of text included) are never generated.
    model.generation_config.suppress_tokens = list(range(len(specials)))
    model.save_pretrained(path)
    LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def blip(tiny_blip: Path) -> TransformersCaptioner:
    backend = TransformersCaptioner(BackendOptions(model=str(tiny_blip), device="cpu"))
    backend.load()
    return backend


@pytest.fixture(scope="module")
def llava(tiny_llava: Path) -> TransformersCaptioner:
    backend = TransformersCaptioner(BackendOptions(model=str(tiny_llava)))
    backend.load()
    return backend


# -- local transformers models -----------------------------------------------------------------


def test_tiny_blip_captions_a_batch_of_png_and_jpeg(blip: TransformersCaptioner) -> None:
    assert not blip.chat and blip.device == "cpu"
    items = [
        work("red.png", image_bytes("red"), "red.png", max_new_tokens=12),
        work("blue.jpg", image_bytes("blue", "JPEG"), "blue.jpg", max_new_tokens=12),
        work("green.webp", image_bytes("green", "WEBP"), "green.webp", max_new_tokens=12),
    ]
    for outcome in run_batch(blip, items):
        result = success(outcome)
        caption = result.output["caption"]
        assert isinstance(caption, str) and caption.strip()
        assert result.text == caption
        assert result.output["stages"] == {"caption": caption}
        assert result.output["prompts"] == {"caption": None}  # unconditional: no prompt
        assert result.model == blip.options.model
        assert set(caption.split()) <= set(WORDS) and len(caption.split()) == 12


def test_conditional_captions_lose_the_prompt_echo_and_batch_like_single(
    blip: TransformersCaptioner,
) -> None:
    # Prompts of different lengths in one batch: BLIP cannot pad them, so the backend groups
    # them; each item must come out as it does alone.
    prompt, n = "a picture of {item_key}", 6
    keys = ["dog", "the big cat", "a small red car", "tree"]
    colors = ["red", "blue", "green", "orange"]
    batch = [
        work(k, image_bytes(c), prompt=prompt, max_new_tokens=n)
        for k, c in zip(keys, colors, strict=True)
    ]
    together = [success(o).output for o in run_batch(blip, batch)]
    for item, output in zip(batch, together, strict=True):
        alone = run_batch(blip, [work(item.item_key, item.data, **item.params)])
        assert success(alone[0]).output == output
        assert output["prompts"] == {"caption": f"a picture of {item.item_key}"}
        assert len(output["caption"].split()) == n
        echo = run_batch(blip, [work(item.item_key, item.data, **item.params, strip_prompt=False)])
        raw = success(echo[0]).output["caption"]
        # BLIP's output continues the prompt; by default that echo is cut off.
        assert raw.startswith(f"a picture of {item.item_key}")
        assert raw.endswith(output["caption"])


def test_second_stage_prompt_receives_the_first_stage_output(blip: TransformersCaptioner) -> None:
    stages = [
        {"name": "short", "prompt": None, "max_new_tokens": 6},
        {"name": "detailed", "prompt": "{short} then", "max_new_tokens": 6},
    ]
    items = [work(c, image_bytes(c), stages=stages, strip_prompt=False) for c in ("red", "blue")]
    for outcome in run_batch(blip, items):
        output = success(outcome).output
        short, detailed = output["stages"]["short"], output["stages"]["detailed"]
        assert short and "{" not in output["prompts"]["detailed"]
        assert output["prompts"] == {"short": None, "detailed": f"{short} then"}
        # The model continued "<stage one's caption> then": the substituted text reached it.
        assert detailed.startswith(f"{short} then")
        assert output["caption"] == detailed == outcome.text  # type: ignore[union-attr]


def test_chat_model_through_the_transformers_backend(llava: TransformersCaptioner) -> None:
    assert llava.chat
    items = [
        work("a.png", image_bytes("red"), "a.png", max_new_tokens=6),
        work("b.jpg", image_bytes("blue", "JPEG"), "b.jpg", prompt="describe {filename}"),
        work(
            "c.png",
            image_bytes("green"),
            max_new_tokens=6,
            stages=[
                {"name": "short", "prompt": "a short caption"},
                {"name": "long", "prompt": "describe it : {caption}", "max_new_tokens": 5},
            ],
        ),
    ]
    results = [success(o).output for o in run_batch(llava, items)]
    assert results[0]["prompts"] == {"caption": None}  # the chat default is used
    assert results[1]["prompts"] == {"caption": "describe b.jpg"}
    assert results[2]["prompts"]["long"] == f"describe it : {results[2]['stages']['short']}"
    for output in results:
        assert output["caption"].strip()
        assert "assistant :" not in output["caption"]  # only new tokens are decoded
    # Prompts of different lengths are left-padded together; each comes out as it does alone.
    for item, output in zip(items, results, strict=True):
        alone = run_batch(llava, [work(item.item_key, item.data, item.filename, **item.params)])
        assert success(alone[0]).output == output


# -- bad inputs --------------------------------------------------------------------------------


def bad_files() -> dict[str, tuple[str, bytes, str]]:
    """name -> (filename, bytes, words the reason must contain)."""
    noise = random.Random(7).randbytes(4096)
    out = io.BytesIO()
    Image.frombytes("L", (64, 64), noise).convert("RGB").save(out, "JPEG")
    jpeg, png = out.getvalue(), image_bytes("red", "PNG", (64, 64))
    return {
        "zero-byte": ("empty.jpg", b"", "empty (0 bytes)"),
        "truncated jpeg": ("cut.jpg", jpeg[: len(jpeg) // 2], "truncated or corrupt JPEG"),
        "truncated png": ("cut.png", png[: len(png) - 30], "truncated or corrupt PNG"),
        "truncated jpeg header": ("head.jpg", jpeg[:300], "truncated or corrupt JPEG"),
        "text named .jpg": ("notes.jpg", b"hello, this is not a picture\n" * 3, "text"),
        "pdf named .png": ("scan.png", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF document"),
        "random bytes": ("noise.jpg", noise, "unrecognised binary data"),
    }


@pytest.mark.parametrize("case", sorted(bad_files()))
def test_bad_image_files_fail_with_a_readable_reason(case: str) -> None:
    filename, data, words = bad_files()[case]
    with pytest.raises(InputError) as caught:
        decode_image(data, filename=filename)
    reason = str(caught.value)
    assert words in reason
    assert repr(filename) in reason
    if case in ("text named .jpg", "pdf named .png", "random bytes"):
        assert "named like an image" in reason


def test_bad_files_fail_alone_in_a_batch(blip: TransformersCaptioner) -> None:
    bad = bad_files()
    items = [work("good-1", image_bytes("red"), "good-1.png", max_new_tokens=4)]
    items += [work(name, data, filename) for name, (filename, data, _) in bad.items()]
    items.append(work("good-2", image_bytes("blue", "JPEG"), "good-2.jpg", max_new_tokens=4))
    outcomes = run_batch(blip, items)
    assert success(outcomes[0]).output["caption"]
    assert success(outcomes[-1]).output["caption"]
    for (_, _, words), outcome in zip(bad.values(), outcomes[1:-1], strict=True):
        assert isinstance(outcome, Failure) and outcome.permanent
        assert outcome.error.startswith("bad input: ") and words in outcome.error


def test_image_limits_and_conversions() -> None:
    big = image_bytes("red", "PNG", (200, 100))
    with pytest.raises(InputError, match=r"200x100 .*over this worker's limit"):
        decode_image(big, filename="big.png", max_pixels=10_000)
    with pytest.raises(InputError, match="over this worker's limit"):
        decode_image(big, max_bytes=100)
    with pytest.raises(InputError, match="has no bytes"):
        decode_image(None)
    # Transparent pixels become white, palette transparency converts without warnings.
    rgba = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(rgba, "PNG")
    decoded = decode_image(rgba.getvalue())
    assert decoded.image.mode == "RGB" and decoded.image.getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.putpixel((0, 0), 1)
    out = io.BytesIO()
    palette.save(out, "PNG", transparency=0)
    decoded = decode_image(out.getvalue())
    assert decoded.image.getpixel((1, 1)) == (255, 255, 255)
    assert decoded.image.getpixel((0, 0)) == (0, 0, 255)
    # EXIF orientation 6 (rotate 90): the picture comes back upright and is re-encoded to send.
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = io.BytesIO()
    Image.new("RGB", (30, 10), "red").save(rotated, "JPEG", exif=exif)
    upright = decode_image(rotated.getvalue())
    assert upright.size == (10, 30) and upright.transposed
    assert upright.data_url().startswith("data:image/jpeg;base64,")
    # Formats a server takes as they are go as they are; others are re-encoded.
    png = decode_image(image_bytes("red"))
    assert png.format == "PNG" and png.data_url().startswith("data:image/png;base64,")
    bmp = decode_image(image_bytes("red", "BMP"))
    assert bmp.format == "BMP" and bmp.data_url().startswith("data:image/jpeg;base64,")
    # A real format whatever the name says: a PNG named .jpg is fine.
    assert decode_image(image_bytes("red"), filename="photo.jpg").format == "PNG"
    assert describe_bytes(b"<!DOCTYPE html><html>").startswith("an HTML page")
    assert describe_bytes(b"%!PS-Adobe-3.0 EPSF").startswith("a PostScript/EPS")


# -- configuration -----------------------------------------------------------------------------


def test_no_model_configured_says_how_to_configure_one() -> None:
    with pytest.raises(ValidationError) as caught:
        registry.choose("caption", None)
    message = caught.value.detail
    assert "no model configured for caption" in message
    assert "--model" in message and "--endpoint" in message
    with pytest.raises(ValidationError, match="--model"):
        TransformersCaptioner(BackendOptions()).load()
    with pytest.raises(ValidationError, match="--endpoint"):
        OpenAICaptioner(BackendOptions(model="m")).load()
    with pytest.raises(ValidationError, match="--model"):
        OpenAICaptioner(BackendOptions(extra={"endpoint": "http://127.0.0.1:9/v1"})).load()


def test_backends_are_found_through_their_entry_points(tiny_blip: Path) -> None:
    options = BackendOptions(model=str(tiny_blip))
    assert isinstance(load_backend("caption-transformers", options), TransformersCaptioner)
    assert isinstance(load_backend("caption-openai", options), OpenAICaptioner)
    assert isinstance(load_backend("caption-vllm", options), VLLMCaptioner)
    for cls in (TransformersCaptioner, OpenAICaptioner, VLLMCaptioner):
        assert cls.task_types == ("caption",)


def test_remote_code_stays_off_unless_the_owner_allows_it(
    tiny_blip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    seen: list[tuple[str, object]] = []
    for cls in (transformers.AutoProcessor, transformers.AutoConfig):
        original = cls.from_pretrained

        def spy(*args: Any, _original: Any = original, _name: str = cls.__name__, **kw: Any) -> Any:
            seen.append((_name, kw.get("trust_remote_code")))
            return _original(*args, **kw)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    TransformersCaptioner(BackendOptions(model=str(tiny_blip))).load()
    assert {name for name, _ in seen} == {"AutoProcessor", "AutoConfig"}
    assert {trust for _, trust in seen} == {False}
    seen.clear()
    options = BackendOptions(model=str(tiny_blip), extra={"trust_remote_code": True})
    TransformersCaptioner(options).load()
    assert {name for name, _ in seen} == {"AutoProcessor", "AutoConfig"}
    assert {trust for _, trust in seen} == {True}
    assert llm_kwargs("m", "default", {})["trust_remote_code"] is False
    assert llm_kwargs("m", "default", {"trust_remote_code": True})["trust_remote_code"] is True
    kwargs = llm_kwargs("m", "float16", {"max_model_len": "4096"})
    assert kwargs["dtype"] == "float16" and kwargs["max_model_len"] == 4096
    assert kwargs["limit_mm_per_prompt"] == {"image": 1}


def test_vllm_backend_without_vllm_says_what_to_install() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vllm is installed here")
    backend = VLLMCaptioner(BackendOptions(model="Qwen/Qwen2.5-VL-3B-Instruct"))
    with pytest.raises(ValidationError) as caught:
        backend.load()
    assert caught.value.detail == INSTALL_HINT
    assert "pip install" in INSTALL_HINT and "vllm" in INSTALL_HINT and "GPU" in INSTALL_HINT


def test_vllm_backend_builds_one_chat_batch_per_stage() -> None:
    """Without vLLM: what the backend hands to ``LLM.chat`` (recorded by a stand-in)."""

    class Output:
        def __init__(self, text: str) -> None:
            self.outputs = [type("Completion", (), {"text": text})()]

    calls: list[tuple[list[Any], list[Any]]] = []

    class RecordingLLM:
        def chat(self, conversations: list[Any], sampling: list[Any], use_tqdm: bool) -> list[Any]:
            calls.append((conversations, sampling))
            return [Output(f"reply {len(calls)}.{i}") for i in range(len(conversations))]

    backend = VLLMCaptioner(BackendOptions(model="some/vlm"))
    backend.llm = RecordingLLM()
    backend._sampling_params = dict
    stages = [{"name": "short", "prompt": None}, {"name": "long", "prompt": "More: {short}"}]
    items = [
        work("a", image_bytes("red"), stages=stages, max_new_tokens=20),
        work("b", image_bytes("blue", "JPEG"), prompt="Caption {item_key}"),
        work("bad", b"", "bad.png"),
    ]
    outcomes = run_batch(backend, items)
    assert isinstance(outcomes[2], Failure) and "empty (0 bytes)" in outcomes[2].error
    first, second = calls
    assert [c[0]["content"][0]["text"] for c in first[0]] == [DEFAULT_PROMPT, "Caption b"]
    image_part = first[0][0][0]["content"][1]
    assert image_part["type"] == "image_url"
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert first[1] == [{"max_tokens": 20}, {"max_tokens": 128}]
    assert [c[0]["content"][0]["text"] for c in second[0]] == ["More: reply 1.0"]
    assert success(outcomes[0]).output["stages"] == {"short": "reply 1.0", "long": "reply 2.0"}
    assert success(outcomes[1]).text == "reply 1.1"


# -- an OpenAI-compatible endpoint ----------------------------------------------------------------


class StubServer:
    """A real HTTP server on loopback that answers chat completions from a script (status,
    headers, body), then with "caption of <prompt>"; it records every request."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.requests.append(body)
                    stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                    stub.times.append(time.monotonic())
                    scripted = stub.script.pop(0) if stub.script else None
                if scripted is None:
                    text = body["messages"][0]["content"][0]["text"]
                    reply = {
                        "choices": [
                            {"message": {"role": "assistant", "content": f"caption of {text}"}}
                        ]
                    }
                    scripted = (200, {}, json.dumps(reply).encode())
                status, headers, payload = scripted
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def prompts(self) -> list[str]:
        return [r["messages"][0]["content"][0]["text"] for r in self.requests]


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    server.thread.start()
    try:
        yield server
    finally:
        while _OPENED:
            _OPENED.pop().close()
        server.server.shutdown()
        server.server.server_close()
        server.thread.join(5)


_OPENED: list[OpenAICaptioner] = []  # closed when the test's stub server stops


def endpoint_backend(url: str, **extra: Any) -> OpenAICaptioner:
    options = {"endpoint": url, "retry_base_s": 0.01, "max_retries": 3, "api_key": "sk-test"}
    backend = OpenAICaptioner(BackendOptions(model="tiny-vlm", extra={**options, **extra}))
    backend.load()
    _OPENED.append(backend)
    return backend


def error_body(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()


def test_endpoint_request_and_two_stages(stub: StubServer) -> None:
    backend = endpoint_backend(stub.url)
    stages = [
        {"name": "short", "prompt": "Short caption of {filename}:"},
        {"name": "detailed", "prompt": "Expand on: {short}", "max_new_tokens": 64},
    ]
    outcomes = run_batch(backend, [work("cat", image_bytes("red"), "cat.png", stages=stages)])
    output = success(outcomes[0]).output
    assert stub.prompts() == [
        "Short caption of cat.png:",
        "Expand on: caption of Short caption of cat.png:",  # stage one's reply, substituted
    ]
    assert output["stages"] == {
        "short": "caption of Short caption of cat.png:",
        "detailed": "caption of Expand on: caption of Short caption of cat.png:",
    }
    assert output["caption"] == output["stages"]["detailed"]
    first = stub.requests[0]
    assert first["model"] == "tiny-vlm" and first["max_tokens"] == 128
    assert stub.requests[1]["max_tokens"] == 64
    image = first["messages"][0]["content"][1]["image_url"]["url"]
    assert image.startswith("data:image/png;base64,")
    assert stub.headers[0]["authorization"] == "Bearer sk-test"


def test_endpoint_retries_429_honouring_retry_after_then_succeeds(stub: StubServer) -> None:
    stub.script = [(429, {"Retry-After": "1"}, error_body("slow down"))]
    outcomes = run_batch(endpoint_backend(stub.url), [work("a", image_bytes("red"))])
    assert success(outcomes[0]).text == f"caption of {DEFAULT_PROMPT}"
    assert len(stub.requests) == 2
    assert stub.times[1] - stub.times[0] >= 0.95  # waited as asked, not the 10 ms backoff


def test_endpoint_retries_5xx_then_succeeds(stub: StubServer) -> None:
    stub.script = [(503, {}, b"overloaded"), (502, {}, b"bad gateway")]
    outcomes = run_batch(endpoint_backend(stub.url), [work("a", image_bytes("red"))])
    assert success(outcomes[0]).text
    assert len(stub.requests) == 3


def test_endpoint_gives_up_for_now_when_errors_persist(stub: StubServer) -> None:
    stub.script = [(503, {}, error_body("model is loading"))] * 3
    outcomes = run_batch(endpoint_backend(stub.url, max_retries=2), [work("a", image_bytes("red"))])
    failure = outcomes[0]
    assert isinstance(failure, Failure) and not failure.permanent
    assert "503" in failure.error and "model is loading" in failure.error
    assert "after 3 attempts" in failure.error
    stub.script = [(429, {"Retry-After": "3600"}, error_body("quota"))]
    outcomes = run_batch(endpoint_backend(stub.url), [work("b", image_bytes("red"))])
    assert isinstance(outcomes[0], Failure) and not outcomes[0].permanent
    assert "3600" in outcomes[0].error and len(stub.requests) == 4  # no hour-long sleep


def test_endpoint_400_fails_the_item_permanently_with_the_server_message(
    stub: StubServer,
) -> None:
    stub.script = [(400, {}, error_body("image_url is not supported by this model"))]
    items = [work("a", image_bytes("red")), work("b", image_bytes("blue"))]
    outcomes = run_batch(endpoint_backend(stub.url, concurrency=1), items)
    failure = outcomes[0]
    assert isinstance(failure, Failure) and failure.permanent
    assert "400" in failure.error and "image_url is not supported by this model" in failure.error
    assert success(outcomes[1]).text  # the other item goes on
    assert len(stub.requests) == 2  # a 400 is not retried


def test_endpoint_unreachable_fails_for_now() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = endpoint_backend(f"http://127.0.0.1:{port}/v1", max_retries=1)
    outcomes = run_batch(backend, [work("a", image_bytes("red"))])
    assert isinstance(outcomes[0], Failure) and not outcomes[0].permanent
    assert "cannot reach" in outcomes[0].error
    backend.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def transformers_serve(tiny_llava: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``transformers serve`` (a real OpenAI-compatible server) with the tiny LLaVA, on
    loopback, offline. Yields its base URL."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.fail("transformers serve needs its extras: pip install openai accelerate")
    home = tmp_path_factory.mktemp("hf-home")
    log_path = home / "serve.log"
    port = free_port()
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        sys.executable,
        "-c",
        "from transformers.cli.transformers import main; main()",
        "serve",
        str(tiny_llava),
        "--device",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"transformers serve exited early:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.mark.slow
def test_endpoint_backend_against_transformers_serve(
    transformers_serve: str, tiny_llava: Path
) -> None:
    backend = OpenAICaptioner(
        BackendOptions(model=str(tiny_llava), extra={"endpoint": transformers_serve})
    )
    backend.load()
    stages = [
        {"name": "short", "prompt": "a short caption", "max_new_tokens": 5},
        {"name": "long", "prompt": "describe it : {short}", "max_new_tokens": 5},
    ]
    items = [
        work("red", image_bytes("red"), "red.png", max_new_tokens=6),
        work("blue", image_bytes("blue", "JPEG"), "blue.jpg", prompt="describe {filename}"),
        work("two", image_bytes("green", "WEBP"), "two.webp", stages=stages),
        work("notes", b"not an image at all", "notes.jpg"),
    ]
    outcomes = run_batch(backend, items)
    for outcome in outcomes[:3]:
        result = success(outcome)
        assert result.text and result.text == result.output["caption"]
        assert set(result.text.split()) <= set(WORDS)
        assert result.model == str(tiny_llava)
    assert len(success(outcomes[0]).text.split()) == 6  # type: ignore[union-attr]
    two = success(outcomes[2]).output
    assert two["prompts"]["long"] == f"describe it : {two['stages']['short']}"
    assert isinstance(outcomes[3], Failure) and "named like an image" in outcomes[3].error
    # A model the server does not serve: its 4xx fails the item for good, with its reason.
    other = OpenAICaptioner(
        BackendOptions(model="not-this-one", extra={"endpoint": transformers_serve})
    )
    other.load()
    refused = run_batch(other, [work("x", image_bytes("red"))])[0]
    assert isinstance(refused, Failure) and refused.permanent
    assert "400" in refused.error and "pinned" in refused.error
    backend.close()
    other.close()


# -- prompt templates ---------------------------------------------------------------------------


def recorded_run(
    items: list[WorkItem], reply: Callable[[str | None], str]
) -> tuple[list[Outcome], list[list[str | None]]]:
    """run_stages with a generate function that answers ``reply(prompt)``; the prompts of each
    step are recorded."""
    from hivescribe.backends.prompts import CaptionRequest, run_stages

    steps: list[list[str | None]] = []

    def generate(requests: list[CaptionRequest]) -> list[str | Failure]:
        steps.append([r.prompt for r in requests])
        return [reply(r.prompt) for r in requests]

    return run_stages(items, generate, "m"), steps


def test_templates_substitute_item_fields_and_job_params() -> None:
    params: dict[str, Any] = {
        "prompt": "{item_key} of {dataset}/{shard} ({filename}), {style}, {n} {ok}"
    }
    params |= {"style": "terse", "n": 3, "ok": True, "fail_keys": ["x"]}
    item = work("k1", image_bytes("red"), "k1.png", **params)
    outcomes, steps = recorded_run([item], lambda p: f"got {p}")
    assert steps == [["k1 of photos/shard-0 (k1.png), terse, 3 true"]]
    assert success(outcomes[0]).output == {
        "caption": "got k1 of photos/shard-0 (k1.png), terse, 3 true",
        "stages": {"caption": "got k1 of photos/shard-0 (k1.png), terse, 3 true"},
        "prompts": {"caption": "k1 of photos/shard-0 (k1.png), terse, 3 true"},
    }
    assert render("{{literal}} {a} {{{a}}}", {"a": "x"}) == "{literal} x {x}"
    assert placeholders("{{not}} {a} and {b}{a}") == ["a", "b", "a"]
    no_name = work("k2", image_bytes("red"), prompt="about {filename}!")
    assert recorded_run([no_name], str)[1] == [["about !"]]  # no filename: empty


def test_stages_see_earlier_outputs_by_name_and_as_caption() -> None:
    stages: list[dict[str, Any]] = [
        {"name": "tags", "prompt": "Tags for {item_key}:"},
        {"name": "short", "prompt": "One line from {tags}"},
        {"name": "long", "prompt": "Expand {caption} using {tags}", "max_new_tokens": 300},
    ]
    items = [work("a", None, stages=stages), work("b", None, prompt="Plain {item_key}")]
    outcomes, steps = recorded_run(items, lambda p: f"<{p}>")
    assert steps == [
        ["Tags for a:", "Plain b"],
        ["One line from <Tags for a:>"],
        ["Expand <One line from <Tags for a:>> using <Tags for a:>"],
    ]
    output = success(outcomes[0]).output
    assert list(output["stages"]) == ["tags", "short", "long"]
    assert output["caption"] == output["stages"]["long"] == success(outcomes[0]).text
    assert check_stages({"stages": stages})[2] == Stage("long", stages[2]["prompt"], 300)
    assert check_stages({}) == [Stage("caption", None, 128)]
    assert check_stages({"prompt": "", "max_new_tokens": 7}) == [Stage("caption", None, 7)]


def test_a_failed_stage_stops_its_item_only() -> None:
    from hivescribe.backends.prompts import CaptionRequest, run_stages

    stages = [{"name": "one", "prompt": "x {item_key}"}, {"name": "two", "prompt": "y {one}"}]
    items = [
        work("ok", None, stages=stages),
        work("down", None, stages=stages),
        work("empty", None, stages=stages),
        work("bad", None, prompt="{nope}"),
    ]

    def generate(requests: list[CaptionRequest]) -> list[str | Failure]:
        return [
            Failure("server said no", permanent=True)
            if r.item.item_key == "down"
            else ("" if r.item.item_key == "empty" else "fine")
            for r in requests
        ]

    ok, down, empty, bad = run_stages(items, generate, "m")
    assert success(ok).output["stages"] == {"one": "fine", "two": "fine"}
    assert isinstance(down, Failure) and down.permanent
    assert down.error == "stage 'one': server said no"
    assert isinstance(empty, Failure) and not empty.permanent
    assert empty.error == "stage 'one': the model returned an empty caption"
    assert isinstance(bad, Failure) and bad.permanent
    assert bad.error.startswith("bad caption parameters: ") and "{nope}" in bad.error


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"prompt": "Describe {colour} and {size}"}, "unknown placeholders {colour}, {size}"),
        ({"prompt": "Describe {caption}"}, "no stage runs before it"),
        ({"prompt": "Open { brace"}, "malformed prompt template"),
        ({"prompt": "Close } brace"}, "malformed prompt template"),
        ({"prompt": "{item_key.upper}"}, "is not a plain name"),
        ({"prompt": "{item_key[0]}"}, "is not a plain name"),
        ({"prompt": "{item_key!r}"}, "is not a plain name"),
        ({"prompt": "{item_key:>9}"}, "is not a plain name"),
        ({"prompt": "{0}"}, "is not a plain name"),
        ({"prompt": "{}"}, "is not a plain name"),
        ({"prompt": 5}, "prompt must be text"),
        ({"prompt": "a", "stages": [{"name": "s", "prompt": "b"}]}, "not both"),
        ({"stages": []}, "list of 1 to 8 stages"),
        ({"stages": [{"name": f"s{i}"} for i in range(9)]}, "list of 1 to 8 stages"),
        ({"stages": ["text"]}, "stage 1 must be an object"),
        ({"stages": [{"name": "a b"}]}, "needs a name made of letters"),
        ({"stages": [{"name": "caption"}]}, "is reserved"),
        ({"stages": [{"name": "filename"}]}, "is reserved"),
        ({"stages": [{"name": "s"}, {"name": "s"}]}, "two stages are named 's'"),
        ({"stages": [{"name": "s", "temperature": 1}]}, "unknown keys ['temperature']"),
        (
            {"stages": [{"name": "a", "prompt": "{b}"}, {"name": "b", "prompt": "x"}]},
            "uses {b}: a stage that has not run yet",
        ),
        (
            {"stages": [{"name": "a", "prompt": "{a}"}]},
            "uses {a}: a stage that has not run yet",
        ),
        (
            {"stages": [{"name": "a", "prompt": "x"}, {"name": "b", "prompt": "{c}"}]},
            "stage 'b' uses unknown placeholders {c}; known here: {a}, {caption}, {dataset}",
        ),
        ({"max_new_tokens": 0}, "max_new_tokens must be a whole number"),
        ({"max_new_tokens": True}, "max_new_tokens must be a whole number"),
        ({"max_new_tokens": "64"}, "max_new_tokens must be a whole number"),
        ({"stages": [{"name": "s", "max_new_tokens": 10**6}]}, "stage 's' max_new_tokens"),
        ({"strip_prompt": "no"}, "strip_prompt must be true or false"),
    ],
)
def test_bad_prompts_and_stages_are_refused_with_a_reason(
    params: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        check_stages(params)
    assert words in caught.value.detail


def test_literal_braces_and_params_named_like_stages() -> None:
    stages = [{"name": "short", "prompt": 'Answer as JSON {{"caption": ...}} for {item_key}'}]
    item = work("k", None, stages=stages)
    assert recorded_run([item], str)[1] == [['Answer as JSON {"caption": ...} for k']]
    # A stage named like a job parameter would make {name} ambiguous.
    with pytest.raises(ValidationError, match=r"stage names \['b'\] are also job parameters"):
        check_stages({"stages": [{"name": "a"}, {"name": "b"}], "b": "param"})
