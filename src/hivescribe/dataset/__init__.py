"""The dataset: Parquet files written from committed results."""

from __future__ import annotations

from hivescribe.dataset.export import SUPPORTED_FORMATS, export_dataset, shard_status

__all__ = ["SUPPORTED_FORMATS", "export_dataset", "shard_status"]
