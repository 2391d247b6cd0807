"""Fixtures of the API tests: apps in process on one migrated database (SQLite and PostgreSQL,
through ``database_url``), with the config tokens of tests/task_api.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.app_clients import MakeClient, app_clients
from tests.task_api import ADMIN_TOKEN, NO_TASK_LIMIT, WORKER_TOKEN


@pytest.fixture
def make_client(database_url: str, tmp_path: Path) -> Iterator[MakeClient]:
    """``make_client(**orchestrator)``: a client of an app with those settings."""
    with app_clients(
        database_url, tmp_path, admin_token=ADMIN_TOKEN, worker_token=WORKER_TOKEN
    ) as make:
        yield make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """An app without the limit on unfinished tasks per account (tests submit many)."""
    return make_client(tasks=NO_TASK_LIMIT)
