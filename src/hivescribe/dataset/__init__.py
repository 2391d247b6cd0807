"""The dataset: Parquet (and JSONL, CSV, subtitles, a Hugging Face folder) written from
committed results only, by `hivescribe export` and by the coordinator's checkpoints."""

from __future__ import annotations

from hivescribe.dataset.checkpoint import Checkpointer
from hivescribe.dataset.export import (
    OUTPUTS_DIR,
    SUPPORTED_FORMATS,
    expected_rows,
    export_dataset,
    export_output_files,
    shard_status,
)

__all__ = [
    "OUTPUTS_DIR",
    "SUPPORTED_FORMATS",
    "Checkpointer",
    "expected_rows",
    "export_dataset",
    "export_output_files",
    "shard_status",
]
