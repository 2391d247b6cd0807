"""The coordinator's app in process (FastAPI's TestClient) on one migrated database, for the
API tests: ``make(auth={...}, **orchestrator)`` gives a client of an app with those settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import argon2
from fastapi.testclient import TestClient

from hivescribe.config import OrchestratorConfig
from hivescribe.coordinator import Coordinator, create_app
from hivescribe.domain.accounts import PasswordHasher
from hivescribe.store import Database, Store
from tests.conftest import LEASE_TTL_S, TEST_POLICY

CHEAP = PasswordHasher(argon2.profiles.CHEAPEST)  # passwords cost nothing in these tests
MakeClient = Callable[..., TestClient]


@contextmanager
def app_clients(
    database_url: str, tmp_path: Path, *, admin_token: str, worker_token: str
) -> Iterator[MakeClient]:
    db = Database(database_url)
    db.migrate()
    store = Store(db, policy=TEST_POLICY, lease_ttl_s=LEASE_TTL_S, passwords=CHEAP)

    def make(auth: dict[str, Any] | None = None, **orchestrator: Any) -> TestClient:
        config = OrchestratorConfig.model_validate(
            {
                "storage": {"data_dir": tmp_path},
                "auth": {
                    "worker_tokens": [{"token": worker_token, "name": "GPU-1"}],
                    "admin_tokens": [admin_token],
                    **(auth or {}),
                },
                **orchestrator,
            }
        )
        return TestClient(create_app(Coordinator.build(config, store)))

    try:
        yield make
    finally:
        store.close()
