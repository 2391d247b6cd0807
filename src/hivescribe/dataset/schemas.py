"""The Arrow schemas of the dataset's tables. captionflow.md's columns are the floor: columns
are added, never dropped or renamed."""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
# One timed piece of a transcript; a segment's optional word timings stay in ``output``.
SEGMENT = pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())])
SEGMENTS = pa.list_(SEGMENT)

# Key-value metadata of a written captions.parquet: which results the snapshot holds.
MAX_RESULT_ID_KEY = b"hivescribe.max_result_id"
RESULT_COUNT_KEY = b"hivescribe.results"

CAPTIONS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("dataset", pa.string()),
        ("shard", pa.string()),
        ("item_key", pa.string()),
        ("caption", pa.string()),  # the result's main text, whatever the task
        ("contributor_id", pa.string()),
        ("timestamp", TIMESTAMP),
        ("quality_score", pa.float64()),
        ("task_type", pa.string()),
        ("model", pa.string()),
        ("worker_id", pa.string()),
        ("attempt", pa.int32()),
        ("replica", pa.int32()),
        ("item_id", pa.int64()),
        ("output", pa.string()),  # the full structured result, as JSON text
        ("blob_key", pa.string()),
        ("segments", SEGMENTS),  # null when the output has none
        ("language", pa.string()),
        ("duration", pa.float64()),
    ]
)
JOBS_SCHEMA = pa.schema(
    [
        ("job_id", pa.string()),
        ("dataset", pa.string()),
        ("shard", pa.string()),
        ("status", pa.string()),
        ("assigned_to", pa.string()),
        ("timestamp", TIMESTAMP),
        ("task_type", pa.string()),
        ("total", pa.int64()),
        ("done", pa.int64()),
        ("failed", pa.int64()),
    ]
)
CONTRIBUTORS_SCHEMA = pa.schema(
    [
        ("contributor_id", pa.string()),
        ("name", pa.string()),
        ("total_captions", pa.int64()),  # accepted results, counted from the results table
        ("trust_level", pa.int32()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("job_id", pa.string()),
        ("dataset", pa.string()),
        ("shard", pa.string()),
        ("item_key", pa.string()),
        ("replica", pa.int32()),
        ("status", pa.string()),
        ("attempts", pa.int32()),
        ("max_attempts", pa.int32()),
        ("last_error", pa.string()),
        ("worker_id", pa.string()),
        ("updated_at", TIMESTAMP),
    ]
)
