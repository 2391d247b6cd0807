"""Engines for SQLite (WAL, the embedded default) and PostgreSQL, and migrations on start."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from hivescribe.domain.errors import ValidationError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x68697665  # "hive": one replica migrates at a time


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+pysqlite:///{(data_dir / 'hivescribe.db').resolve()}"


def normalize_url(url: str) -> str:
    """Accept the URL spellings people paste; always drive PostgreSQL through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+pysqlite:///" + url[len("sqlite:///") :]
    if url.startswith(("postgresql+psycopg://", "sqlite+pysqlite://")):
        return url
    raise ValidationError(
        f"database_url must start with postgresql:// or sqlite:///, got {url.split(':', 1)[0]!r}"
    )


class Database:
    """One engine plus the transaction helpers store/ uses.

    On SQLite every write transaction is ``BEGIN IMMEDIATE`` and writers inside this process
    queue on a lock, so a transaction never fails half-way on a busy database.
    """

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            path = self.url.removeprefix("sqlite+pysqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = sa.create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=20,
            )
            sa.event.listen(self.engine, "connect", _sqlite_on_connect)
            sa.event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = sa.create_engine(
                self.url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True
            )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction: committed on success, rolled back on any error."""
        try:
            if self._write_lock is None:
                with self.engine.begin() as conn:
                    yield conn
                return
            with self._write_lock, self.engine.begin() as conn:
                yield conn
        except UnicodeEncodeError:
            raise ValidationError("text must be valid UTF-8 (it holds a lone surrogate)") from None
        except sa.exc.DataError as exc:
            # A value the database cannot hold (a NUL in PostgreSQL text, a number out of range).
            problem = str(exc.orig).splitlines()[0] if exc.orig else "invalid value"
            raise ValidationError(f"the database refused a value: {problem}") from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a plain BEGIN on SQLite, so writers are not held up)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(hivescribe_readonly=True)
            with conn.begin():
                yield conn

    def migrate(self) -> None:
        """Apply Alembic migrations up to head; replicas starting together take turns."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_MIGRATION_LOCK})")
                conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if not self.is_sqlite:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_MIGRATION_LOCK})")
                    conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_on_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives any process crash (SIGKILL); only power loss can drop
    # the last transactions.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    readonly = conn.get_execution_options().get("hivescribe_readonly", False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
