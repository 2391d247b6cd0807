"""What every router needs: the coordinator's parts, and the caller's principal."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Header, Request
from pydantic import SecretStr

from hivescribe.blobs import BlobStore, StoredBlob, UploadDesk, open_blob_store
from hivescribe.config import OrchestratorConfig, StorageConfig
from hivescribe.coordinator.auth import Principal, Role, TokenAuth, bearer_token
from hivescribe.coordinator.protocol import UploadBody
from hivescribe.coordinator.service import WorkerService
from hivescribe.coordinator.telemetry import Telemetry
from hivescribe.domain import ValidationError
from hivescribe.store import Store


@dataclass
class Coordinator:
    config: OrchestratorConfig
    store: Store
    auth: TokenAuth
    service: WorkerService
    blobs: BlobStore
    uploads: UploadDesk
    webhook_key: bytes  # each account's webhook secret is derived from it
    telemetry: Telemetry

    @classmethod
    def build(cls, config: OrchestratorConfig, store: Store) -> Coordinator:
        blobs = blob_store(config.storage)
        store.queue.max_running_tasks = config.tasks.max_running
        telemetry = Telemetry()
        return cls(
            config=config,
            store=store,
            auth=TokenAuth(config.auth, store.users),
            service=WorkerService(store, config, blobs=blobs, telemetry=telemetry),
            blobs=blobs,
            uploads=UploadDesk(
                blobs, max_bytes=config.max_upload_bytes, ttl_s=config.storage.presign_ttl_s
            ),
            webhook_key=webhook_signing_key(config),
            telemetry=telemetry,
        )

    async def issue_upload(
        self, contributor_id: str, worker_id: str, body: UploadBody
    ) -> dict[str, Any]:
        """Where a worker uploads an output file: only for a live lease it holds (else 404)."""
        await self.service.lease_input(worker_id, body.item_id, body.token)
        return await self.uploads.issue(
            contributor_id=contributor_id,
            worker_id=worker_id,
            item_id=body.item_id,
            token=body.token,
            filename=body.filename,
            size=body.size,
            sha256=body.sha256,
        )

    async def receive_upload(
        self, principal: Principal, upload_id: str, chunks: AsyncIterator[bytes]
    ) -> StoredBlob:
        """The body of ``PUT /api/v1/worker/uploads/{upload_id}`` (stores without presigned
        URLs), while the lease it was issued for is still live."""
        pending = self.uploads.pending(upload_id, principal.name)
        await self.service.lease_input(pending.worker_id, pending.item_id, pending.token)
        return await self.uploads.receive(pending, chunks)


def blob_store(storage: StorageConfig) -> BlobStore:
    """The blob store that ``orchestrator.storage`` describes."""

    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    return open_blob_store(
        storage.blobs_url,
        default_root=Path(storage.data_dir) / "blobs",
        endpoint_url=storage.s3_endpoint_url,
        region=storage.s3_region,
        access_key_id=secret(storage.s3_access_key_id),
        secret_access_key=secret(storage.s3_secret_access_key),
        presign_ttl_s=storage.presign_ttl_s,
    )


def webhook_signing_key(config: OrchestratorConfig) -> bytes:
    """``webhooks.signing_key``, or the key in <data_dir>/webhook.key, made (0600) the first
    time. Replicas that share a database must share the key: configure it for them."""
    if config.webhooks.signing_key is not None:
        return config.webhooks.signing_key.get_secret_value().encode()
    path = Path(config.storage.data_dir) / "webhook.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValidationError(f"{path} holds no usable webhook signing key; delete it to make one")
    return key.encode()


def coordinator(request: Request) -> Coordinator:
    return request.app.state.coordinator


async def worker_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <API key or token>"),
    x_api_key: str | None = Header(None, description="<API key>, instead of Authorization"),
) -> Principal:
    """A config worker token, or the key of an account holding the worker role."""
    token = bearer_token(authorization, x_api_key)
    return await coordinator(request).auth.require_async(token, Role.WORKER)


async def admin_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <API key or token>"),
    x_api_key: str | None = Header(None, description="<API key>, instead of Authorization"),
) -> Principal:
    """A config admin token, or the key of an account holding the admin role."""
    token = bearer_token(authorization, x_api_key)
    return await coordinator(request).auth.require_async(token, Role.ADMIN)


async def any_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <API key or token>"),
    x_api_key: str | None = Header(None, description="<API key>, instead of Authorization"),
) -> Principal:
    """Any valid token or key, whatever its roles."""
    token = bearer_token(authorization, x_api_key)
    return await coordinator(request).auth.authenticate_async(token)


async def optional_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <API key or token>"),
    x_api_key: str | None = Header(None, description="<API key>, instead of Authorization"),
) -> Principal | None:
    """None without credentials; wrong credentials are still a 401."""
    token = bearer_token(authorization, x_api_key)
    return None if token is None else await coordinator(request).auth.authenticate_async(token)
