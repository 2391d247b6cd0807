"""HTML for document translation: the text nodes of the body and the <title> are translated;
every tag and attribute stays, and script, style, code, pre, textarea and template contents are
not touched. Parsed with Python's own html.parser (through BeautifulSoup), which keeps the
document as written rather than repairing it, and written back in its original encoding.
"""

from __future__ import annotations

from typing import Any

from hivescribe.backends.base import InputError
from hivescribe.backends.documents_text import Segments, Template
from hivescribe.backends.images import describe_bytes

__all__ = ["fill_html", "html_text", "parse_html", "translate_html"]

SKIP = frozenset({"script", "style", "code", "pre", "textarea", "template", "kbd", "samp", "svg"})
HIDDEN = frozenset({"script", "style", "template", "noscript", "svg"})  # not in the readable text
BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
        "h4", "h5", "h6", "header", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
        "table", "td", "th", "title", "tr", "ul",
    }
)  # fmt: skip


def parse_html(data: bytes, name: str) -> Any:
    from bs4 import BeautifulSoup
    from bs4.exceptions import ParserRejectedMarkup

    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{name} is not HTML: it is {describe_bytes(data)}")
    try:
        return BeautifulSoup(data, "html.parser")
    except (ParserRejectedMarkup, AssertionError, ValueError) as exc:
        raise InputError(f"{name} is HTML that cannot be parsed: {exc}") from None


def _text_nodes(soup: Any, skip: frozenset[str] = SKIP) -> list[Any]:
    """The text nodes of the title and body (or the whole fragment), in document order,
    outside the elements named in ``skip``."""
    from bs4 import NavigableString

    roots = [soup.title, soup.body] if soup.body is not None else [soup]
    nodes = []
    for root in roots:
        if root is None:
            continue
        for node in root.find_all(string=True):
            if type(node) is NavigableString and not any(p.name in skip for p in node.parents):
                nodes.append(node)
    return nodes


def html_text(soup: Any) -> str:
    """The readable text: the text of each block element, blocks apart by blank lines."""
    blocks: list[list[str]] = []
    last: Any = None
    for node in _text_nodes(soup, HIDDEN):
        block = next((p for p in node.parents if p.name in BLOCKS), None)
        if block is not last or not blocks:
            blocks.append([])
            last = block
        previous = node.previous_sibling
        breaks = previous is not None and getattr(previous, "name", None) in ("br", "hr")
        blocks[-1].append(f" {node}" if breaks else str(node))
    paragraphs = (" ".join("".join(parts).split()) for parts in blocks)
    return "\n\n".join(p for p in paragraphs if p)


def translate_html(soup: Any, segments: Segments) -> list[tuple[Any, Template]]:
    """A template per text node; :func:`fill_html` puts the translations back."""
    found = []
    for node in _text_nodes(soup):
        template = Template(segments)
        template.text(str(node))
        if any(isinstance(part, tuple) for part in template.parts):
            found.append((node, template))
    return found


def fill_html(soup: Any, found: list[tuple[Any, Template]]) -> bytes:
    from bs4 import NavigableString

    for node, template in found:
        node.replace_with(NavigableString(template.render()))
    encoding = soup.original_encoding or "utf-8"
    data: bytes = soup.encode(encoding, formatter="minimal")
    return data
