"""A small synchronous client for the jobs API (the CLI's submit, status and jobs commands).

The httpx transport is pluggable: tests may pass ``httpx.ASGITransport`` or use a real server.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from hivescribe.client.urls import http_base, ssl_context


class ApiError(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class CoordinatorClient:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        verify_ssl: bool = True,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        base = http_base(server)
        self.http = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl_context(verify_ssl) if base.startswith("https") else True,
            transport=transport,
            timeout=timeout_s,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            detail: Any = response.text
            with contextlib.suppress(ValueError):
                detail = response.json().get("detail", detail)
            raise ApiError(response.status_code, detail)
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def create_job(self, **fields: Any) -> str:
        return self._call("POST", "/api/v1/jobs", json=fields)["job_id"]

    def add_items(self, job_id: str, items: Iterable[dict[str, Any]]) -> int:
        reply = self._call("POST", f"/api/v1/jobs/{job_id}/items", json={"items": list(items)})
        return int(reply["added"])

    def upload(self, path: Path) -> dict[str, Any]:
        """Upload a file's bytes; returns ``{"blob": key, "size": n, "sha256": hex}``."""
        with path.open("rb") as body:
            return self._call(
                "POST",
                "/api/v1/blobs",
                content=body,
                headers={"Content-Type": "application/octet-stream"},
            )

    def upload_bytes(self, data: bytes) -> dict[str, Any]:
        """Upload bytes held in memory (a tar member, a Parquet cell)."""
        return self._call(
            "POST",
            "/api/v1/blobs",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/jobs/{job_id}")

    def jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/jobs", params={"limit": limit})["jobs"]

    def failed(self, job_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/api/v1/jobs/{job_id}/failed")["items"]

    def cancel(self, job_id: str) -> int:
        return int(self._call("POST", f"/api/v1/jobs/{job_id}/cancel")["cancelled"])

    def retry_failed(self, job_id: str) -> int:
        return int(self._call("POST", f"/api/v1/jobs/{job_id}/retry-failed")["retried"])

    def workers(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/workers")["workers"]

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
