"""The structured part of results: segments, language and duration, read out of each result's
``output`` JSON a whole batch at a time.

The fast path hands the batch to Arrow's JSON reader (C++, one pass, no Python objects per
row). A batch it refuses (a field of an unexpected type somewhere) is parsed row by row in
Python, where a value of the wrong type becomes null instead of failing the export.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from hivescribe.dataset.schemas import SEGMENTS

# The fields read out of an output; every other field stays in the ``output`` column only.
OUTPUT_FIELDS = pa.schema(
    [
        ("text", pa.string()),
        ("segments", SEGMENTS),
        ("language", pa.string()),
        ("duration", pa.float64()),
    ]
)
_PARSE = pajson.ParseOptions(explicit_schema=OUTPUT_FIELDS, unexpected_field_behavior="ignore")


def parse_outputs(outputs: Sequence[str | None]) -> pa.Table:
    """One row per output (JSON text of an object), with the columns of OUTPUT_FIELDS."""
    if not outputs:
        return OUTPUT_FIELDS.empty_table()
    # Stored outputs are compact JSON objects, one line each; anything else goes the slow way.
    lines = [text if text and text[0] == "{" else "{}" for text in outputs]
    if not any("\n" in line for line in lines):
        data = "\n".join(lines).encode()
        try:
            table = pajson.read_json(
                pa.BufferReader(data),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=_PARSE,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = None
        if table is not None and table.num_rows == len(lines):
            return table.combine_chunks()
    return _parse_slowly(lines)


def main_text(text: pa.Array, parsed: pa.Table) -> pa.Array:
    """The result's main text: the worker's ``text``, else the output's ``text``, else its
    segments' texts joined by spaces."""
    text = pc.coalesce(text, parsed.column("text").combine_chunks())
    if not text.null_count:
        return text
    values = text.to_pylist()
    segments = parsed.column("segments")
    for i, value in enumerate(values):
        if value is None and segments[i].is_valid:
            pieces = [s["text"] for s in segments[i].as_py() if s["text"]]
            values[i] = " ".join(p.strip() for p in pieces) or None
    return pa.array(values, pa.string())


def _parse_slowly(lines: list[str]) -> pa.Table:
    rows = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        rows.append(_coerce(value if isinstance(value, dict) else {}))
    return pa.Table.from_pylist(rows, schema=OUTPUT_FIELDS)


def _coerce(output: dict[str, Any]) -> dict[str, Any]:
    segments = output.get("segments")
    return {
        "text": _string(output.get("text")),
        "segments": (
            [_segment(s) for s in segments if isinstance(s, dict)]
            if isinstance(segments, list)
            else None
        ),
        "language": _string(output.get("language")),
        "duration": _number(output.get("duration")),
    }


def _segment(segment: dict[str, Any]) -> dict[str, Any]:
    return {
        "start": _number(segment.get("start")),
        "end": _number(segment.get("end")),
        "text": _string(segment.get("text")),
    }


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
