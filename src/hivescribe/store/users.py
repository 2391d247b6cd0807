"""Accounts and their API keys: create, sign in, issue and revoke keys, grant roles.

Keys and passwords reach this module in clear and leave it only as hashes. Password checks
(argon2, a fraction of a second each) run outside any transaction, so they never hold the
database's write lock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hivescribe.domain.accounts import (
    PasswordHasher,
    Role,
    check_password,
    check_username,
    format_roles,
    key_digest,
    key_display_prefix,
    looks_like_api_key,
    new_api_key,
    parse_roles,
)
from hivescribe.domain.errors import AuthError, ConflictError, NotFoundError, ValidationError
from hivescribe.store.db import Database
from hivescribe.store.schema import api_keys, users

__all__ = ["ApiKey", "IssuedKey", "KeyOwner", "User", "UserStore"]

LOGIN_FAILED = "wrong username or password"
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key
KEY_NAME_MAX = 200


@dataclass(frozen=True)
class User:
    id: str
    username: str
    roles: frozenset[Role]
    created_at: float
    disabled: bool
    has_password: bool


@dataclass(frozen=True)
class ApiKey:
    """A key as listings show it: never the key itself, only its first characters."""

    id: str
    user_id: str
    prefix: str
    name: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


@dataclass(frozen=True)
class IssuedKey:
    """A new key: ``api_key`` is the only copy in clear, to hand to its owner once."""

    id: str
    api_key: str
    prefix: str
    name: str
    created_at: float


@dataclass(frozen=True)
class KeyOwner:
    user: User
    key_id: str


class UserStore:
    def __init__(
        self,
        db: Database,
        *,
        passwords: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.passwords = passwords or PasswordHasher()
        self.clock = clock

    # -- accounts --------------------------------------------------------------------------

    def create_user(
        self,
        username: str,
        password: str | None,
        roles: Iterable[Role] = (Role.USER,),
        *,
        key_name: str = "",
    ) -> tuple[User, IssuedKey]:
        """A new account and its first API key. Without a password it signs in by key only.
        A taken username (in any letter case) is a ConflictError."""
        username = check_username(username)
        password_hash = None if password is None else self.passwords.hash(check_password(password))
        now = self.clock()
        user_id = uuid.uuid4().hex
        row: dict[str, Any] = {
            "id": user_id,
            "username": username,
            "password_hash": password_hash,
            "roles": format_roles(roles),
            "created_at": now,
            "disabled": False,
        }
        try:
            with self.db.write() as conn:
                taken = conn.execute(
                    sa.select(users.c.id).where(users.c.username == username)
                ).first()
                if taken is not None:
                    raise ConflictError(f"the username {username!r} is taken")
                conn.execute(users.insert().values(**row))
                key = self._issue(conn, user_id, key_name, now)
        except sa.exc.IntegrityError:  # another replica took it between the check and insert
            raise ConflictError(f"the username {username!r} is taken") from None
        return _user(row), key

    def get_user(self, user_id: str) -> User:
        with self.db.read() as conn:
            row = conn.execute(sa.select(users).where(users.c.id == user_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no user {user_id!r}")
        return _user(row._mapping)

    def find_user(self, name_or_id: str) -> User:
        """A user by username (any letter case) or by id."""
        if not _encodable(name_or_id):
            raise NotFoundError("no such user (the name is not valid Unicode)")
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(users).where(
                    sa.or_(users.c.username == name_or_id.lower(), users.c.id == name_or_id)
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no user {name_or_id!r}")
        return _user(row._mapping)

    def list_users(self, *, limit: int | None = None) -> list[User]:
        query = sa.select(users).order_by(users.c.created_at, users.c.id).limit(limit)
        with self.db.read() as conn:
            return [_user(row._mapping) for row in conn.execute(query)]

    def set_roles(
        self, user_id: str, *, grant: Iterable[Role] = (), revoke: Iterable[Role] = ()
    ) -> User:
        """Add ``grant`` and take away ``revoke`` (a role in both is an error)."""
        grant, revoke = frozenset(grant), frozenset(revoke)
        if grant & revoke:
            both = ", ".join(sorted(grant & revoke))
            raise ValidationError(f"cannot grant and revoke the same role: {both}")
        with self.db.write() as conn:
            row = conn.execute(sa.select(users.c.roles).where(users.c.id == user_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"no user {user_id!r}")
            roles = (parse_roles(row.roles) | grant) - revoke
            conn.execute(
                sa.update(users).where(users.c.id == user_id).values(roles=format_roles(roles))
            )
        return self.get_user(user_id)

    def set_disabled(self, user_id: str, disabled: bool) -> User:
        """A disabled account keeps its keys, but neither they nor its password work."""
        with self.db.write() as conn:
            changed = conn.execute(
                sa.update(users).where(users.c.id == user_id).values(disabled=disabled)
            ).rowcount
        if not changed:
            raise NotFoundError(f"no user {user_id!r}")
        return self.get_user(user_id)

    # -- passwords -------------------------------------------------------------------------

    def login(self, username: str, password: str, *, key_name: str = "") -> tuple[User, IssuedKey]:
        """A new API key for the right password. A wrong password, an unknown user and an
        account without a password all fail alike, in about the same time."""
        try:
            username = check_username(username)
        except ValidationError:  # no such account can exist; answer as for an unknown one
            self.passwords.verify(None, password)
            raise AuthError(LOGIN_FAILED) from None
        with self.db.read() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).one_or_none()
        password_hash = None if row is None else row.password_hash
        if not self.passwords.verify(password_hash, password) or row is None:
            raise AuthError(LOGIN_FAILED)
        if row.disabled:
            raise AuthError("this account is disabled")
        rehash = self.passwords.needs_rehash(row.password_hash)
        new_hash = self.passwords.hash(password) if rehash else None
        now = self.clock()
        with self.db.write() as conn:
            if new_hash is not None:  # hashed with older parameters: upgrade it now
                conn.execute(
                    sa.update(users)
                    .where(users.c.id == row.id, users.c.password_hash == row.password_hash)
                    .values(password_hash=new_hash)
                )
            key = self._issue(conn, row.id, key_name, now)
        return _user(row._mapping), key

    # -- keys ------------------------------------------------------------------------------

    def issue_key(self, user_id: str, *, name: str = "") -> IssuedKey:
        with self.db.write() as conn:
            found = conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).first()
            if found is None:
                raise NotFoundError(f"no user {user_id!r}")
            return self._issue(conn, user_id, name, self.clock())

    def key_owner(self, api_key: str) -> KeyOwner | None:
        """The account behind a live key (not revoked, account not disabled), else None.
        Looked up by hash, so the lookup's timing says nothing about the key."""
        if not looks_like_api_key(api_key):
            return None
        query = (
            sa.select(users, api_keys.c.id.label("key_id"), api_keys.c.last_used_at)
            .join(users, users.c.id == api_keys.c.user_id)
            .where(api_keys.c.key_hash == key_digest(api_key), api_keys.c.revoked_at.is_(None))
        )
        with self.db.read() as conn:
            row = conn.execute(query).one_or_none()
        if row is None or row.disabled:
            return None
        now = self.clock()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY_S:
            with self.db.write() as conn:
                conn.execute(
                    sa.update(api_keys).where(api_keys.c.id == row.key_id).values(last_used_at=now)
                )
        return KeyOwner(_user(row._mapping), row.key_id)

    def list_keys(self, user_id: str | None = None) -> list[ApiKey]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if user_id is not None:
            query = query.where(api_keys.c.user_id == user_id)
        with self.db.read() as conn:
            return [
                ApiKey(
                    id=row.id,
                    user_id=row.user_id,
                    prefix=row.prefix,
                    name=row.name,
                    created_at=row.created_at,
                    last_used_at=row.last_used_at,
                    revoked_at=row.revoked_at,
                )
                for row in conn.execute(query)
            ]

    def revoke_keys(self, user_id: str, key_id: str | None = None) -> int:
        """Revoke one of the user's keys, or all of them; returns how many were live."""
        where = [api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None)]
        if key_id is not None:
            where.append(api_keys.c.id == key_id)
        with self.db.write() as conn:
            found = conn.execute(sa.select(users.c.id).where(users.c.id == user_id)).first()
            if found is None:
                raise NotFoundError(f"no user {user_id!r}")
            revoked = conn.execute(
                sa.update(api_keys).where(*where).values(revoked_at=self.clock())
            ).rowcount
            if key_id is not None and not revoked:
                exists = conn.execute(
                    sa.select(api_keys.c.id).where(
                        api_keys.c.id == key_id, api_keys.c.user_id == user_id
                    )
                ).first()
                if exists is None:
                    raise NotFoundError(f"user {user_id!r} has no key {key_id!r}")
        return int(revoked)

    def _issue(self, conn: Connection, user_id: str, name: str, now: float) -> IssuedKey:
        if len(name) > KEY_NAME_MAX:
            raise ValidationError(f"a key name has at most {KEY_NAME_MAX} characters")
        api_key = new_api_key()
        issued = IssuedKey(
            id=uuid.uuid4().hex,
            api_key=api_key,
            prefix=key_display_prefix(api_key),
            name=name,
            created_at=now,
        )
        conn.execute(
            api_keys.insert().values(
                id=issued.id,
                user_id=user_id,
                key_hash=key_digest(api_key),
                prefix=issued.prefix,
                name=name,
                created_at=now,
            )
        )
        return issued


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _user(row: Any) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        roles=parse_roles(row["roles"]),
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
        has_password=row["password_hash"] is not None,
    )
