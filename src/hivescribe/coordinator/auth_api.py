"""Accounts over HTTP: register, log in, issue and check API keys; admins grant roles and
revoke keys.

A key appears in clear in exactly one response: the one that issued it. Passwords are checked
with argon2 in worker threads, a few at a time (each check takes 64 MiB and a fraction of a
second), so a burst of logins cannot starve the coordinator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, TypeVar

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hivescribe.coordinator.auth import Principal, Role
from hivescribe.coordinator.deps import (
    admin_principal,
    any_principal,
    coordinator,
    optional_principal,
)
from hivescribe.coordinator.openapi import errors
from hivescribe.domain.accounts import PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, USERNAME_PATTERN
from hivescribe.domain.errors import AuthError, ForbiddenError
from hivescribe.store import IssuedKey, User

log = logging.getLogger(__name__)
# Every route may answer 401 (no or a wrong key; login: a wrong password), 413, 422 and 429.
router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=errors(401, 413, 422, 429))

PASSWORD_CHECKS_AT_ONCE = 2
ID_PATTERN = r"^[0-9a-f]{32}$"
T = TypeVar("T")


def valid_unicode(value: str) -> str:
    """A Pydantic check: refuse lone surrogates, which cannot be stored or sent on."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Username = Annotated[
    str,
    Field(
        pattern=USERNAME_PATTERN,
        description="3-64 letters, digits, '_', '.' or '-'; stored in lower case",
        examples=["alice"],
    ),
]
Password = Annotated[
    str,
    Field(min_length=PASSWORD_MIN_CHARS, max_length=PASSWORD_MAX_CHARS),
    AfterValidator(valid_unicode),
]
KeyName = Annotated[
    str,
    Field(max_length=200, description="A label to tell keys apart, e.g. the machine's name"),
    AfterValidator(valid_unicode),
]
UserIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="The user's id")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Registration(_Body):
    username: Username
    password: Password
    key_name: KeyName = ""


class Login(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_CHARS)
    key_name: KeyName = ""


class KeyRequest(_Body):
    name: KeyName = ""


class RoleChange(_Body):
    grant: list[Role] = Field(default_factory=list, max_length=len(Role))
    revoke: list[Role] = Field(default_factory=list, max_length=len(Role))


class KeyRevocation(_Body):
    key_id: str | None = Field(
        None, pattern=ID_PATTERN, description="One key; leave it out to revoke all the user's keys"
    )


class AccountKey(BaseModel):
    """An account and a key just issued to it."""

    user_id: str
    username: str
    roles: list[Role]
    key_id: str
    key_prefix: str = Field(description="The key's first characters, as listings show it")
    api_key: str = Field(description="The key itself, shown this once: only its hash is kept")


class NewKey(BaseModel):
    key_id: str
    key_prefix: str
    name: str
    created_at: float
    api_key: str = Field(description="The key itself, shown this once: only its hash is kept")


class Identity(BaseModel):
    """Who a key or token belongs to (never the key itself)."""

    user_id: str | None = Field(description="None for a token from the config file")
    username: str
    roles: list[Role]
    key_id: str | None


class UserOut(BaseModel):
    user_id: str
    username: str
    roles: list[Role]
    created_at: float
    disabled: bool
    has_password: bool


class UserList(BaseModel):
    users: list[UserOut]


class Revoked(BaseModel):
    revoked: int = Field(description="How many live keys were revoked")


@router.post(
    "/register",
    status_code=201,
    summary="Create an account (role: user) and its first API key",
    responses=errors(
        400,
        401,
        403,
        409,
        e400="The username is reserved, or the body is not JSON",
        e401="Registration is closed and no admin key was sent, or a wrong key was",
        e403="Registration is closed and the key sent is not an admin's",
        e409="The username is taken",
    ),
)
async def register(
    body: Registration,
    request: Request,
    principal: Principal | None = Depends(optional_principal),
) -> AccountKey:
    coord = coordinator(request)
    if not coord.config.auth.open_registration:
        closed = "registration is closed: an admin creates accounts"
        if principal is None:
            raise AuthError(f"{closed} (send an admin's key, or run `hivescribe users create`)")
        if Role.ADMIN not in principal.roles:
            raise ForbiddenError(closed)
    users = coord.store.users
    user, key = await _hashing(
        request,
        lambda: users.create_user(body.username, body.password, key_name=body.key_name),
    )
    log.info("registered account %s", user.username)
    return _account_key(user, key)


@router.post(
    "/login",
    summary="Trade a username and password for a new API key",
    responses=errors(400, 401, e401="Wrong username or password, or a disabled account"),
)
async def login(body: Login, request: Request) -> AccountKey:
    users = coordinator(request).store.users
    user, key = await _hashing(
        request, lambda: users.login(body.username, body.password, key_name=body.key_name)
    )
    return _account_key(user, key)


@router.post(
    "/generate-api-key",
    status_code=201,
    summary="Issue another API key to the calling account",
    responses=errors(400, 403, e403="A config-file token (no account), or a worker's key"),
)
async def generate_api_key(
    request: Request,
    body: KeyRequest | None = None,
    principal: Principal = Depends(any_principal),
) -> NewKey:
    if principal.user_id is None:
        raise ForbiddenError("config-file tokens have no account to hold API keys")
    if not principal.roles & {Role.USER, Role.ADMIN, Role.VALIDATOR}:
        raise ForbiddenError("a worker's key cannot issue keys: ask an admin, or log in")
    users, user_id = coordinator(request).store.users, principal.user_id
    name = body.name if body else ""
    key = await to_thread.run_sync(lambda: users.issue_key(user_id, name=name))
    return NewKey(
        key_id=key.id,
        key_prefix=key.prefix,
        name=key.name,
        created_at=key.created_at,
        api_key=key.api_key,
    )


@router.get("/verify-api-key", summary="Who the key (or token) sent belongs to")
async def verify_api_key(principal: Principal = Depends(any_principal)) -> Identity:
    return Identity(
        user_id=principal.user_id,
        username=principal.name,
        roles=sorted(principal.roles),
        key_id=principal.key_id,
    )


@router.get("/users", summary="Accounts, oldest first (admins)", responses=errors(403))
async def list_users(
    request: Request,
    limit: int = Query(1000, ge=1, le=10_000),
    principal: Principal = Depends(admin_principal),
) -> UserList:
    users = coordinator(request).store.users
    found = await to_thread.run_sync(lambda: users.list_users(limit=limit))
    return UserList(users=[_user_out(u) for u in found])


@router.post(
    "/users/{user_id}/roles",
    summary="Grant and revoke an account's roles (admins)",
    responses=errors(
        400,
        403,
        404,
        e400="A role both granted and revoked, or a body not JSON",
    ),
)
async def change_roles(
    user_id: UserIdPath,
    body: RoleChange,
    request: Request,
    principal: Principal = Depends(admin_principal),
) -> UserOut:
    users = coordinator(request).store.users
    user = await to_thread.run_sync(
        lambda: users.set_roles(user_id, grant=body.grant, revoke=body.revoke)
    )
    log.info(
        "%s changed the roles of %s to %s",
        principal.name,
        user.username,
        ",".join(sorted(user.roles)) or "none",
    )
    return _user_out(user)


@router.post(
    "/users/{user_id}/revoke-keys",
    summary="Revoke one API key of an account, or all of them (admins)",
    responses=errors(400, 403, 404, e404="No such user, or no such key of theirs"),
)
async def revoke_keys(
    user_id: UserIdPath,
    request: Request,
    body: KeyRevocation | None = None,
    principal: Principal = Depends(admin_principal),
) -> Revoked:
    users = coordinator(request).store.users
    key_id = body.key_id if body else None
    revoked = await to_thread.run_sync(lambda: users.revoke_keys(user_id, key_id))
    log.info("%s revoked %d keys of user %s", principal.name, revoked, user_id)
    return Revoked(revoked=revoked)


async def _hashing(request: Request, work: Callable[[], T]) -> T:
    """Run ``work`` (which hashes or checks a password) in a worker thread, a few at a time."""
    state = request.app.state
    limiter = getattr(state, "password_limiter", None)
    if limiter is None:  # made here: a limiter belongs to the running event loop
        limiter = state.password_limiter = CapacityLimiter(PASSWORD_CHECKS_AT_ONCE)
    return await to_thread.run_sync(work, limiter=limiter)


def _account_key(user: User, key: IssuedKey) -> AccountKey:
    return AccountKey(
        user_id=user.id,
        username=user.username,
        roles=sorted(user.roles),
        key_id=key.id,
        key_prefix=key.prefix,
        api_key=key.api_key,
    )


def _user_out(user: User) -> UserOut:
    return UserOut(
        user_id=user.id,
        username=user.username,
        roles=sorted(user.roles),
        created_at=user.created_at,
        disabled=user.disabled,
        has_password=user.has_password,
    )
