"""Migrations applied to an empty database produce exactly the schema store/schema.py declares.

Two checks, because each misses something the other sees:
- Alembic's ``compare_metadata`` finds missing or extra tables, columns, indexes, unique
  constraints and foreign keys, and type or nullability changes;
- it ignores CHECK constraints, server defaults and partial-index predicates (``WHERE status =
  'pending'``), so the DDL the database itself reports after ``migrate()`` is also compared with
  the DDL of ``metadata.create_all`` in a second empty database of the same kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from hivescribe.store.db import MIGRATIONS_DIR, Database
from hivescribe.store.schema import metadata

EmptyDatabase = Callable[[], str]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> EmptyDatabase:
    """A factory of fresh, EMPTY databases (PostgreSQL ones are not cloned from the template)."""
    if request.param == "postgres":
        make_pg_database = request.getfixturevalue("make_pg_database")
        return lambda: make_pg_database(prefix="hs_e_")
    counter = iter(range(1000))
    return lambda: f"sqlite:///{tmp_path}/empty{next(counter)}.db"


@pytest.fixture
def database(empty_database: EmptyDatabase) -> Iterator[Database]:
    db = Database(empty_database())
    try:
        yield db
    finally:
        db.dispose()


def _head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def _schema_ddl(db: Database) -> dict[str, object]:
    """Everything the database says about its tables, keyed by object: DDL as stored."""
    out: dict[str, object] = {}
    with db.engine.connect() as conn:
        if db.is_sqlite:
            for row in conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE tbl_name != 'alembic_version'"
            ):
                out[f"{row.type}:{row.name}"] = (row.tbl_name, row.sql)
            return out
        for row in conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename != 'alembic_version'"
        ):
            out[f"index:{row.indexname}"] = row.indexdef
        for row in conn.exec_driver_sql(
            "SELECT conrelid::regclass::text AS tbl, conname, "
            "pg_get_constraintdef(oid) AS definition "
            "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace "
            "AND conrelid::regclass::text != 'alembic_version'"
        ):
            out[f"constraint:{row.tbl}.{row.conname}"] = row.definition
        for row in conn.exec_driver_sql(
            "SELECT table_name, column_name, ordinal_position, data_type, "
            "character_maximum_length, numeric_precision, is_nullable, column_default "
            "FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name != 'alembic_version'"
        ):
            out[f"column:{row.table_name}.{row.column_name}"] = tuple(row)[2:]
    return out


def _version(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())


def test_migrations_match_declared_schema(database: Database) -> None:
    database.migrate()
    with database.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_migrated_ddl_equals_create_all_ddl(empty_database: EmptyDatabase) -> None:
    migrated = Database(empty_database())
    declared = Database(empty_database())
    try:
        migrated.migrate()
        metadata.create_all(declared.engine)
        got, want = _schema_ddl(migrated), _schema_ddl(declared)
    finally:
        migrated.dispose()
        declared.dispose()
    assert {k for k in want if k.startswith(("table:", "index:"))} >= {
        f"{kind}:{name}"
        for kind, name in [
            ("index", "ix_items_claim"),
            ("index", "ix_items_lease_expiry"),
            ("index", "ix_items_job_status"),
            ("index", "ix_results_job"),
            ("index", "ix_results_contributor"),
        ]
    }
    mismatched = {
        k: (got.get(k), want.get(k)) for k in got.keys() | want.keys() if got.get(k) != want.get(k)
    }
    assert not mismatched


def test_partial_indexes_keep_their_predicate(database: Database) -> None:
    """The claim and reaper indexes only cover the rows those queries read."""
    database.migrate()
    indexes = {
        k.split(":", 1)[1]: v for k, v in _schema_ddl(database).items() if k.startswith("index:")
    }
    claim, expiry = str(indexes["ix_items_claim"]), str(indexes["ix_items_lease_expiry"])
    assert "pending" in claim and "DESC" in claim.upper()
    assert "leased" in expiry


def test_migrate_creates_every_table_at_head(database: Database) -> None:
    database.migrate()
    assert _version(database) == [_head()]
    tables = set(sa.inspect(database.engine).get_table_names())
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_migrating_twice_is_a_no_op(database: Database) -> None:
    database.migrate()
    before = _schema_ddl(database)
    database.migrate()
    assert _schema_ddl(database) == before
    assert _version(database) == [_head()]
    with database.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_migrate_keeps_data(database: Database) -> None:
    database.migrate()
    with database.write() as conn:
        conn.execute(
            metadata.tables["contributors"].insert().values(id="c1", name="c1", created_at=1.0)
        )
    database.migrate()
    with database.read() as conn:
        names = conn.execute(sa.select(metadata.tables["contributors"].c.name)).scalars().all()
    assert names == ["c1"]
