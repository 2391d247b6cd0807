"""Fixtures shared by every test tier.

- No ``HIVESCRIBE_*`` variable of the developer's shell leaks into a test.
- ``database_url`` runs a test on SQLite and on PostgreSQL (marked ``postgres``). Each
  PostgreSQL test gets its own database, cloned from a template migrated once per session.
  An unreachable PostgreSQL server fails those tests; it never skips them.
- ``store`` is a migrated ``hivescribe.store.Store`` on the real clock; ``clocked_store`` is
  one on a ``FakeClock``, so lease expiry and backoff are tested without sleeping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from hivescribe.domain import RetryPolicy
from hivescribe.store import Database, Store, open_store

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Every test store: three attempts, no backoff, 30 s leases.
TEST_POLICY = RetryPolicy(max_attempts=3, backoff_base_s=0.0)
LEASE_TTL_S = 30.0


# -- environment -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_hivescribe_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HIVESCRIBE_"):
            monkeypatch.delenv(name)


# -- PostgreSQL ------------------------------------------------------------------------------


def pg_database_url(name: str) -> str:
    """The URL of database ``name`` on the test server (``postgresql://...``)."""
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _admin_engine() -> Engine:
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An AUTOCOMMIT engine on the admin database, for CREATE/DROP DATABASE."""
    engine = _admin_engine()
    error = None
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        error = str(exc.orig).strip()
    if error is not None:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} (set TEST_POSTGRES_URL, or start "
            "it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): "
            f"{error}",
            pytrace=False,
        )
    yield engine
    engine.dispose()


def create_pg_database(admin: Engine, prefix: str, *, template: str | None = None) -> str:
    name = f"{prefix}{uuid.uuid4().hex[:16]}"
    sql = f'CREATE DATABASE "{name}"'
    if template is not None:
        sql += f' TEMPLATE "{template}"'
    with admin.connect() as conn:
        conn.exec_driver_sql(sql)
    return name


def drop_pg_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_template(pg_admin: Engine) -> Iterator[str]:
    """A database with every migration applied, cloned by each PostgreSQL test."""
    name = create_pg_database(pg_admin, "hs_tmpl_")
    try:
        db = Database(pg_database_url(name))
        try:
            db.migrate()
        finally:
            db.dispose()  # CREATE DATABASE ... TEMPLATE refuses a template anyone is using
        yield name
    finally:
        drop_pg_database(pg_admin, name)


@pytest.fixture
def make_pg_database(pg_admin: Engine) -> Iterator[Callable[..., str]]:
    """A factory of fresh PostgreSQL databases, all dropped after the test.

    ``make_pg_database()`` is EMPTY; ``make_pg_database(template=name)`` is a clone."""
    created: list[str] = []

    def make(*, template: str | None = None, prefix: str = "hs_t_") -> str:
        created.append(create_pg_database(pg_admin, prefix, template=template))
        return pg_database_url(created[-1])

    try:
        yield make
    finally:
        for name in created:
            drop_pg_database(pg_admin, name)


@pytest.fixture
def pg_url(make_pg_database: Callable[..., str], pg_template: str) -> str:
    """A fresh, migrated PostgreSQL database of this test's own."""
    return make_pg_database(template=pg_template)


# -- SQLite, and both ------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet (open_store or Database.migrate creates it)."""
    return f"sqlite:///{tmp_path}/hivescribe.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty-of-data database, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")


# -- stores ----------------------------------------------------------------------------------


class FakeClock:
    """A clock the test moves by hand: ``clock()`` is the time, ``clock.advance(s)`` moves it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    s = open_store(database_url, tmp_path, policy=TEST_POLICY, lease_ttl_s=LEASE_TTL_S)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_store(database_url: str, clock: FakeClock) -> Iterator[Store]:
    """A migrated store whose queue, jobs and registry all read ``clock``."""
    db = Database(database_url)
    db.migrate()
    s = Store(db, clock=clock, policy=TEST_POLICY, lease_ttl_s=LEASE_TTL_S)
    try:
        yield s
    finally:
        s.close()
