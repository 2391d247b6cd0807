"""What every router needs: the coordinator's parts, and the caller's principal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import Header, Request

from hivescribe.blobs import LocalBlobs
from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator.auth import Principal, Role, TokenAuth, bearer_token
from hivescribe.coordinator.service import WorkerService
from hivescribe.store import Store


@dataclass
class Coordinator:
    config: OrchestratorConfig
    store: Store
    auth: TokenAuth
    service: WorkerService
    blobs: LocalBlobs

    @classmethod
    def build(cls, config: OrchestratorConfig, store: Store) -> Coordinator:
        data_dir = Path(config.storage.data_dir)
        return cls(
            config=config,
            store=store,
            auth=TokenAuth(config.auth),
            service=WorkerService(store, config),
            blobs=LocalBlobs(data_dir / "blobs"),
        )


def coordinator(request: Request) -> Coordinator:
    return request.app.state.coordinator


def _principal(request: Request, authorization: str | None, x_api_key: str | None, *roles: Role):
    return coordinator(request).auth.require(bearer_token(authorization, x_api_key), *roles)


async def worker_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <worker token>"),
    x_api_key: str | None = Header(None),
) -> Principal:
    return _principal(request, authorization, x_api_key, Role.WORKER)


async def admin_principal(
    request: Request,
    authorization: str | None = Header(None, description="Bearer <admin token>"),
    x_api_key: str | None = Header(None),
) -> Principal:
    return _principal(request, authorization, x_api_key, Role.ADMIN)
