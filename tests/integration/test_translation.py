"""Text translation through the real backend (TranslationBackend.process_batch), nothing
downloaded:

- Apertium (Debian's apertium with apertium-eng-spa): every text of a batch comes back exactly
  as ``apertium eng-spa`` prints it alone, paragraphs and punctuation included;
- tiny random MarianMT, mBART-50 and NLLB models built here (their tokenizers too) go through
  ``generate``: one non-empty translation per item, order kept, long texts in chunks, and the
  target language reaching the model as ``forced_bos_token_id``;
- an OpenAI-compatible endpoint: a real HTTP server on loopback;
- input that can never be translated fails its own item for good, saying what to fix.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hivescribe.backends import BackendOptions, Failure, Outcome, Success, WorkItem
from hivescribe.backends.translate import TranslationBackend, Translator, split_chunks
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.inputs import MAX_INLINE_TEXT

TEXTS = [
    "Hello world.",
    "The cat is on the table.\n\nThe dog sleeps in the garden, and the birds sing!\n",
    "Where is the station? I have three tickets; we leave at 9:30 a.m.\n\n\n"
    '  An indented paragraph: with colons, (parentheses) and "quotes"...',
    "It's John's car. Isn't it? Yes, it is.",
    "Line one\nline two\n\nDr. Smith bought 3.5 kg of apples for $12 & 4 pears.",
    "Brackets [like these] and symbols ^ $ / @ < > \\ survive.",
    "Zyxqwv flurbish gromble.",  # unknown words: apertium marks them with *
    "   leading and trailing spaces   ",
    "Ünïcödé café naïve résumé — «guillemets» and emoji 🙂.",
]


def item(
    text: str | None = None, data: bytes | None = None, filename: str | None = None, **params: Any
) -> WorkItem:
    return WorkItem(
        item_id=1,
        token="t",
        task_type="text-translation",
        item_key="k",
        dataset="d",
        shard="s",
        params={
            k: v
            for k, v in {"source_language": "en", "target_language": "es", **params}.items()
            if v is not None
        },
        text=text,
        data=data,
        filename=filename,
    )


def succeeded(outcome: Outcome) -> Success:
    assert isinstance(outcome, Success), outcome
    return outcome


def failed_for_good(outcome: Outcome) -> str:
    assert isinstance(outcome, Failure) and outcome.permanent, outcome
    assert outcome.error.startswith("bad input: ")
    return outcome.error


def apertium(text: str, *flags: str, mode: str = "eng-spa") -> str:
    done = subprocess.run(["apertium", *flags, mode], input=text.encode(), capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


@pytest.fixture(scope="module")
def backend() -> TranslationBackend:
    translator = TranslationBackend(BackendOptions())
    translator.load()
    return translator


# -- Apertium --------------------------------------------------------------------------------


def test_apertium_matches_the_apertium_command(backend: TranslationBackend) -> None:
    works = [item(text) for text in TEXTS]
    works.append(item(data=TEXTS[1].encode(), filename="story.txt"))
    outcomes = backend.process_batch(works)
    for text, outcome in zip([*TEXTS, TEXTS[1]], outcomes, strict=True):
        result = succeeded(outcome)
        assert result.text == apertium(text)
        assert result.model == "apertium"
        assert result.output == {
            "source_language": "en", "target_language": "es", "model": "apertium", "chunks": 1,
        }  # fmt: skip
    assert "\n\n" in succeeded(outcomes[1]).text  # paragraphs kept
    assert "*Zyxqwv" in succeeded(outcomes[6]).text


def test_apertium_without_unknown_marks_matches_apertium_u(backend: TranslationBackend) -> None:
    outcomes = backend.process_batch([item(text, mark_unknown=False) for text in TEXTS[5:7]])
    for text, outcome in zip(TEXTS[5:7], outcomes, strict=True):
        assert succeeded(outcome).text == apertium(text, "-u")


@pytest.mark.parametrize(
    ("source", "target", "mode"),
    [("Spanish", "English", "spa-eng"), ("fr", "es", "fr-es"), ("eng", "ca", "eng-cat")],
)
def test_apertium_other_pairs(
    backend: TranslationBackend, source: str, target: str, mode: str
) -> None:
    text = {"Spanish": "El gato está en la mesa.", "fr": "Le chat est sur la table."}.get(
        source, "The cat is on the table."
    )
    work = item(text, source_language=source, target_language=target)
    assert succeeded(backend.process_batch([work])[0]).text == apertium(text, mode=mode)


def test_one_apertium_process_serves_many_texts(backend: TranslationBackend) -> None:
    translator = backend.translator
    texts = [f"The house number {i} is red.\n\nIt has {i} windows." for i in range(40)]
    translated = translator.translate(texts, "en", "es")
    assert len(translated) == len(texts)
    for i in (0, 17, 18, 39):  # each answer belongs to its own text: nothing shifted
        assert translated[i] == apertium(texts[i])
        assert f"{i} ventanas" in translated[i]
    assert translator.translate(["", "  ", "Hello."], "en", "es") == ["", "  ", "Hola."]


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("work", "says"),
    [
        (item(""), "the text is empty"),
        (item(" \n\t "), "the text is empty"),
        (item(data=b""), "the text is empty"),
        (item(), "no text to translate"),
        (item("a" * (MAX_INLINE_TEXT + 1)), f"at most {MAX_INLINE_TEXT}"),
        (item(data=b"ab " * (MAX_INLINE_TEXT // 2)), f"at most {MAX_INLINE_TEXT}"),
        (item(data=b"\xff\xfe\x00bad \x80 bytes"), "not UTF-8 text"),
        (item(data=b"text\x00with nul"), "not text"),
        (item(data=b"%PDF-1.7", filename="paper.pdf"), "with document-translation"),
        (item("Hello.", target_language="eng"), "source and target language are the same"),
        (item("Hello.", target_language="English"), "source and target language are the same"),
        (item("Hello.", target_language="de"), "installed pairs: .*en->es"),
        (item("Hello.", target_language="xx"), "target_language: .*unknown language 'xx'"),
        (item("Hello.", source_language=None), "source_language"),
        (item("Hello.", max_chunk_chars=1), "max_chunk_chars"),
    ],
    ids=[
        "empty", "whitespace", "empty-file", "nothing", "too-long", "too-long-file", "not-utf8",
        "nul", "pdf", "same", "same-by-name", "no-pair", "unknown-code", "no-source", "chunk",
    ],
)  # fmt: skip
def test_unusable_input_fails_for_good(
    backend: TranslationBackend, work: WorkItem, says: str
) -> None:
    good = item("The cat is on the table.")
    outcomes = backend.process_batch([work, good])
    assert re.search(says, failed_for_good(outcomes[0])), outcomes[0]
    assert succeeded(outcomes[1]).text == apertium(good.text or "")  # the rest of the batch


def test_a_missing_apertium_program_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ValidationError, match="apt-get install apertium apertium-eng-spa"):
        Translator().load()


# -- chunks ----------------------------------------------------------------------------------


def test_long_text_is_cut_on_sentences_and_keeps_paragraphs() -> None:
    text = (
        "The first sentence is right here. Second one is a bit longer than that. Third!\n\n"
        "  Next paragraph, one sentence only.\n\n\n" + "word " * 60
    )
    chunks, template = split_chunks(text, 60)
    assert chunks[:3] == [
        "The first sentence is right here.",
        "Second one is a bit longer than that. Third!",
        "Next paragraph, one sentence only.",
    ]
    assert all(len(chunk) <= 60 for chunk in chunks)
    assert " ".join(chunks[3:]) == " ".join(["word"] * 60)  # a run-on cut between words
    assert template == [2, "\n\n  ", 1, "\n\n\n", len(chunks) - 3]
    assert split_chunks("中文句子。" * 30, 40)[0][0] == "中文句子。" * 8  # after CJK stops


# -- tiny random seq2seq models --------------------------------------------------------------

_SENTENCES = [
    "the cat is on the table", "hello world", "el gato está en la mesa", "hola mundo",
    "a small red house", "una casa roja pequeña", "the dog sleeps", "el perro duerme",
]  # fmt: skip
_CHARS = "abcdefghijklmnopqrstuvwxyz.,"


def _tiny_dims(vocab_size: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size, "d_model": 16, "encoder_layers": 1, "decoder_layers": 1,
        "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 32,
        "decoder_ffn_dim": 32, "max_position_embeddings": 256,
    }  # fmt: skip


def build_tiny_marian(path: Path) -> Path:
    """A MarianMT en->es with a SentencePiece model trained here on a few sentences."""
    import sentencepiece
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    path.mkdir(parents=True, exist_ok=True)
    spm = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_SENTENCES * 10),
        model_writer=spm,
        vocab_size=60,
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
    )
    for name in ("source.spm", "target.spm"):
        (path / name).write_bytes(spm.getvalue())
    pieces = sentencepiece.SentencePieceProcessor(model_proto=spm.getvalue())
    vocab = {"</s>": 0, "<unk>": 1, "<pad>": 2}
    for index in range(pieces.get_piece_size()):
        vocab.setdefault(pieces.id_to_piece(index), len(vocab))
    (path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = MarianTokenizer(
        str(path / "source.spm"), str(path / "target.spm"), str(path / "vocab.json"),
        source_lang="en", target_lang="es",
    )  # fmt: skip
    torch.manual_seed(0)
    config = MarianConfig(
        **_tiny_dims(len(vocab)), pad_token_id=2, eos_token_id=0, decoder_start_token_id=2
    )
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        model.final_logits_bias[:, :3] = -1e4  # never a special token: never empty, never stops
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_mbart50(path: Path) -> Path:
    """An mBART-50 with a character vocabulary (and mBART-50's 52 language codes)."""
    import torch
    from transformers import MBart50Tokenizer, MBartConfig, MBartForConditionalGeneration

    pieces = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("▁", -2.0)]
    tokenizer = MBart50Tokenizer(vocab=pieces + [(c, -3.0) for c in _CHARS], src_lang="en_XX")
    torch.manual_seed(0)
    config = MBartConfig(
        **_tiny_dims(len(tokenizer)), pad_token_id=1, bos_token_id=0, eos_token_id=2,
        decoder_start_token_id=2, forced_eos_token_id=2,
    )  # fmt: skip
    model = MBartForConditionalGeneration(config).eval()
    with torch.no_grad():  # only characters after the forced language code
        model.final_logits_bias[:, :4] = -1e4
        model.final_logits_bias[:, 4 + len(_CHARS) :] = -1e4
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_nllb(path: Path) -> Path:
    """An NLLB (M2M100 architecture) with a character vocabulary and three language codes."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "▁": 4}
    vocab.update({c: 5 + i for i, c in enumerate(_CHARS)})
    tokenizer = NllbTokenizer(
        vocab=vocab, merges=[], additional_special_tokens=["eng_Latn", "spa_Latn", "fra_Latn"]
    )
    torch.manual_seed(0)
    config = M2M100Config(
        **_tiny_dims(len(tokenizer)), pad_token_id=1, bos_token_id=0, eos_token_id=2,
        decoder_start_token_id=2,
    )  # fmt: skip
    model = M2M100ForConditionalGeneration(config).eval()
    model.generation_config.suppress_tokens = [0, 1, 2, 3]
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_t5(path: Path) -> Path:
    """A T5 with a character vocabulary: translation is asked for with a text prefix."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    letters = _CHARS + ":ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    tokenizer = T5Tokenizer(vocab=pieces + [(c, -3.0) for c in letters], extra_ids=0)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config).eval()
    model.generation_config.suppress_tokens = [0, 1, 2]  # never empty
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("models") / "opus-mt-en-es")


def seq2seq(path: Path) -> TranslationBackend:
    backend = TranslationBackend(BackendOptions(model=str(path), device="cpu"))
    backend.load()
    assert backend.translator.mode == "seq2seq"
    return backend


@pytest.mark.slow
def test_a_tiny_marian_translates_through_generate(tiny_marian: Path) -> None:
    backend = seq2seq(tiny_marian)
    assert backend.translator.family == "marian"
    long_text = "The cat is on the table. " * 12 + "\n\nHello world. The dog sleeps."
    works = [
        item("Hello world.", max_new_tokens=5),
        item("The cat is on the table.\n\nThe dog sleeps.", max_new_tokens=5),
        item(long_text, max_new_tokens=5, max_chunk_chars=60),
        item("Hello.", max_new_tokens=5, target_language="fr"),  # not this model's pair
        item("Hello world.", max_new_tokens=5, num_beams=2),
    ]
    outcomes = backend.process_batch(works)
    results = [succeeded(o) for o in outcomes[:3]] + [succeeded(outcomes[4])]
    for result in results:
        assert result.text and result.text.strip()
        assert result.model == str(tiny_marian)
    assert [r.output["chunks"] for r in results] == [1, 2, 7, 1]
    assert results[1].text.count("\n\n") == 1  # paragraphs kept
    long_result = results[2].text
    assert long_result.count("\n\n") == 1 and len(long_result.split("\n\n")[0].split()) >= 6
    error = failed_for_good(outcomes[3])
    assert "translates en to es only" in error and "opus-mt-en-fr" in error
    # Batched or alone, each item gets the same translation (order kept, nothing mixed up).
    alone = [succeeded(backend.process_batch([w])[0]).text for w in works[:2]]
    assert alone == [r.text for r in results[:2]]


@pytest.mark.slow
@pytest.mark.parametrize("build", [build_tiny_mbart50, build_tiny_nllb], ids=["mbart50", "nllb"])
def test_many_to_many_models_get_the_target_as_forced_bos(
    build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = seq2seq(build(tmp_path / "model"))
    translator = backend.translator
    seen: list[dict[str, Any]] = []
    generate = translator.model.generate

    def recording(**kwargs: Any) -> Any:
        output = generate(**kwargs)
        seen.append({"forced": kwargs.get("forced_bos_token_id"), "first": output[:, 1].tolist()})
        return output

    monkeypatch.setattr(translator.model, "generate", recording)
    texts = ["the cat is on the table.", "hello world.", "a small red house."]
    to_es = backend.process_batch([item(t, max_new_tokens=6) for t in texts])
    to_fr = backend.process_batch([item(t, max_new_tokens=6, target_language="fr") for t in texts])
    for outcome in [*to_es, *to_fr]:
        assert succeeded(outcome).text
    tokens = translator.tokenizer.convert_tokens_to_ids
    es, fr = ("es_XX", "fr_XX") if translator.family == "mbart50" else ("spa_Latn", "fra_Latn")
    assert seen == [
        {"forced": tokens(es), "first": [tokens(es)] * 3},
        {"forced": tokens(fr), "first": [tokens(fr)] * 3},
    ]
    missing = backend.process_batch([item("hello.", target_language="ca")])[0]
    assert "(ca)" in failed_for_good(missing)  # not in mBART-50; not in the tiny NLLB


@pytest.mark.slow
def test_t5_gets_its_task_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = seq2seq(build_tiny_t5(tmp_path / "t5"))
    translator = backend.translator
    seen: list[str] = []
    generate = translator.model.generate

    def recording(**kwargs: Any) -> Any:
        seen.extend(
            translator.tokenizer.batch_decode(kwargs["input_ids"], skip_special_tokens=True)
        )
        return generate(**kwargs)

    monkeypatch.setattr(translator.model, "generate", recording)
    works = [item("hello world.", target_language="de", max_new_tokens=4), item("hello.")]
    outcomes = backend.process_batch(works)
    assert succeeded(outcomes[0]).text
    assert seen == ["translate English to German: hello world."]
    assert "T5 translates only English to German, French or Romanian" in failed_for_good(
        outcomes[1]
    )


# -- an OpenAI-compatible endpoint on loopback -----------------------------------------------


class ChatServer:
    """A real HTTP server on loopback that 'translates' by upper-casing the user's text;
    a text containing FAIL gets a 400, one containing BUSY a 503. Records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, **body})
                text = body["messages"][-1]["content"]
                status = 400 if "FAIL" in text else 503 if "BUSY" in text else 200
                reply = {"choices": [{"message": {"role": "assistant", "content": text.upper()}}]}
                payload = json.dumps(reply if status == 200 else {"error": "no"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(5)


def test_an_openai_compatible_endpoint_translates(chat_server: ChatServer) -> None:
    options = BackendOptions(model="served-llm", extra={"endpoint": chat_server.url})
    backend = TranslationBackend(options)
    backend.load()
    long_text = "One sentence here, and it goes on. Another one there, and more.\n\nA second one."
    outcomes = backend.process_batch(
        [
            item(long_text, max_chunk_chars=50, target_language="pt-BR"),
            item("Please FAIL this one."),
            item("The server is BUSY."),
            item("Hello there."),
        ]
    )
    first = succeeded(outcomes[0])
    assert first.text == long_text.upper()
    chunks = sorted(r["messages"][-1]["content"] for r in chat_server.requests[:3])
    assert chunks == [
        "A second one.",
        "Another one there, and more.",
        "One sentence here, and it goes on.",
    ]
    assert first.output == {
        "source_language": "en", "target_language": "pt-BR", "model": "served-llm", "chunks": 3,
    }  # fmt: skip
    assert "server answered 400" in failed_for_good(outcomes[1])
    busy = outcomes[2]
    assert isinstance(busy, Failure) and not busy.permanent and "503" in busy.error
    assert succeeded(outcomes[3]).text == "HELLO THERE."
    request = next(
        r for r in chat_server.requests if r["messages"][-1]["content"] == "Hello there."
    )
    assert request["path"] == "/v1/chat/completions"
    assert request["model"] == "served-llm" and request["temperature"] == 0
    system = request["messages"][0]["content"]
    assert "from English to Spanish" in system and "translation only" in system
    assert all(
        "to Portuguese (pt-BR)" in r["messages"][0]["content"] for r in chat_server.requests[:3]
    )
    backend.close()
