"""Bytes of inputs and outputs. A local folder now; S3 comes with presigned URLs."""

from hivescribe.blobs.local import LocalBlobs

__all__ = ["LocalBlobs"]
