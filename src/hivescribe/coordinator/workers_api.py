"""Worker registration over HTTP: a machine trades an enrollment token for its own account.

``POST /api/v1/workers/register`` (an enrollment token from the config, or an admin) makes an
account holding only the worker role, named after the worker, and answers its first API key:
the one time that key is shown. ``DELETE /api/v1/workers/{worker_id}`` (or ``POST
.../unregister``), by the worker itself or an admin, revokes its keys and disables the account,
so nothing it held works again. Results it already delivered stay credited to its name.

Admins manage worker accounts for the dashboard's Workers page: ``GET .../accounts`` lists
them (key prefixes only, never a key), ``PATCH .../{worker_id}`` sets a worker's priority (lower
preferred when several idle workers wait for work) and the URL of its status page, and
``POST .../{worker_id}/test`` has the coordinator fetch ``<url>/status.json`` to see whether
the worker is reachable. Testing is optional: workers pull work, nobody needs to reach them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hivescribe.coordinator.auth import Principal, Role, bearer_token
from hivescribe.coordinator.auth_api import valid_unicode
from hivescribe.coordinator.deps import admin_principal, any_principal, coordinator
from hivescribe.coordinator.openapi import errors
from hivescribe.domain.accounts import check_username
from hivescribe.domain.errors import AuthError, ConflictError, ForbiddenError, ValidationError
from hivescribe.store import User, UserStore
from hivescribe.store.worker_profiles import DEFAULT_PRIORITY, MAX_PRIORITY, WorkerAccount

__all__ = ["router", "username_for"]

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/v1/workers", tags=["workers"], responses=errors(401, 403, 413, 422, 429)
)

_NOT_USERNAME = re.compile(r"[^A-Za-z0-9_.-]+")
MAX_URL = 2000
TEST_TIMEOUT_S = 5.0  # the whole of a connectivity test: connect, answer, body
MAX_STATUS_BYTES = 1024 * 1024  # a status document is a few KiB; more is not one


WorkerName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="What to call the worker, e.g. 'M4 MacBook Pro'; its account's username is "
        "made from it (m4-macbook-pro)",
        examples=["gpu-box-1"],
    ),
    AfterValidator(valid_unicode),
]
WorkerIdPath = Annotated[
    str, Path(pattern=r"^[0-9a-f]{32}$", description="The worker's id (its account's user id)")
]


def check_worker_url(url: str) -> str:
    """A Pydantic check of a worker's status-page URL: http(s) with a host, no credentials,
    query or fragment (``/status.json`` is appended to its path)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - parsing the port is what refuses "host:notaport"
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError("must not carry a query or fragment")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("must not contain spaces or control characters")
    try:
        httpx.URL(url)  # what the test will fetch: refuse now what it could not
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a usable URL: {exc}") from None
    return url


WorkerUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL,
        description="Where the worker's status page answers (its --status-port), for "
        "connectivity tests: GET <url>/status.json",
        examples=["http://10.0.0.5:8001"],
    ),
    AfterValidator(valid_unicode),
    AfterValidator(check_worker_url),
]
Priority = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=MAX_PRIORITY,
        description="Lower is preferred: when several idle workers wait for the same kind of "
        "work on one coordinator, the lowest number gets it first",
    ),
]


class Enrollment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: WorkerName
    url: WorkerUrl | None = None
    priority: Priority = Field(
        DEFAULT_PRIORITY, description="Lower is preferred (an admin only sets it)"
    )


class WorkerSettings(BaseModel):
    """A PATCH: only the fields sent change; ``url: null`` clears the URL."""

    model_config = ConfigDict(extra="forbid")

    url: WorkerUrl | None = None
    priority: Priority = DEFAULT_PRIORITY


class RegisteredWorker(BaseModel):
    worker_id: str = Field(description="The worker account's user id")
    name: str = Field(description="The name sent")
    username: str = Field(description="The account's username: the worker's results are "
                          "credited to it")  # fmt: skip
    key_prefix: str = Field(description="The key's first characters, as listings show it")
    api_key: str = Field(description="The key itself, shown this once: only its hash is kept")
    url: str | None = Field(description="Its status page's URL, for connectivity tests")
    priority: int = Field(description="Lower is preferred")


class WorkerAccountOut(BaseModel):
    """A worker account as the Workers page lists it: key prefixes, never a key."""

    worker_id: str
    username: str
    name: str = Field(description="The name it registered under")
    url: str | None
    priority: int = Field(description="Lower is preferred")
    disabled: bool = Field(description="Unregistered: its keys are revoked")
    created_at: float
    key_prefixes: list[str] = Field(description="The first characters of each live key")
    online: bool = Field(description="Its newest worker process is connected (registry)")
    last_seen_at: float | None = Field(description="When a process of it last called in")
    transport: str | None = Field(description="ws or http, of its newest process")
    instance: str | None = Field(description="Its newest process's own name")

    @classmethod
    def of(cls, account: WorkerAccount) -> WorkerAccountOut:
        return cls(**{**vars(account), "key_prefixes": list(account.key_prefixes)})


class WorkerAccounts(BaseModel):
    workers: list[WorkerAccountOut]


class WorkerStatus(BaseModel):
    """What the worker's status.json said about itself, picked and checked field by field."""

    name: str | None = None
    id: str | None = None
    version: str | None = None
    connected: bool | None = Field(None, description="Connected to its coordinator")
    tasks: list[str] | None = None
    device: str | None = None
    hostname: str | None = None
    current_items: int | None = Field(None, description="Items it is running now")


class WorkerTest(BaseModel):
    ok: bool = Field(description="A worker's status page answered")
    url: str = Field(description="The URL fetched")
    status_code: int | None = Field(description="The HTTP status, when anything answered")
    latency_ms: float | None = Field(description="Request to full answer, when one came")
    error: str | None = Field(description="Why not ok, in one line")
    worker: WorkerStatus | None = Field(description="From the answer, when it is a status page")


class UnregisteredWorker(BaseModel):
    worker_id: str
    username: str
    revoked: int = Field(description="How many live keys were revoked")
    disabled: bool


UNREGISTER_ERRORS = errors(
    403,
    404,
    409,
    e403="Neither the worker itself nor an admin",
    e404="No such account",
    e409="The account is not a worker's",
)
ACCOUNT_ERRORS = errors(
    400, 403, 404, 409, e404="No such account", e409="The account is not a worker-only one"
)


def username_for(name: str) -> str:
    """The account username for a worker name: runs of other characters become '-', folded to
    lower case ('M4 MacBook Pro' -> 'm4-macbook-pro'). A ValidationError if nothing usable is
    left, or the result is reserved."""
    username = _NOT_USERNAME.sub("-", name).strip("-.")
    if len(username) < 3:
        raise ValidationError(
            f"the worker name {name!r} has too few letters or digits to make a username "
            "(3-64 letters, digits, '_', '.' or '-')"
        )
    return check_username(username)


@router.post(
    "/register",
    status_code=201,
    summary="Register a worker: an account with the worker role and its first API key",
    responses=errors(
        400,
        401,
        403,
        409,
        e400="The name makes no valid username, or a reserved one; or the body is not JSON",
        e401="No enrollment token or admin key, or a wrong one",
        e403="A valid key without the admin role, or an enrollment token sending a priority",
        e409="The username is taken",
    ),
)
async def register(
    body: Enrollment,
    request: Request,
    authorization: str | None = Header(None, description="Bearer <enrollment token or key>"),
    x_api_key: str | None = Header(None, description="<token or key>, instead of Authorization"),
) -> RegisteredWorker:
    coord = coordinator(request)
    token = bearer_token(authorization, x_api_key)
    if coord.auth.is_enrollment_token(token):
        by = "an enrollment token"
        if "priority" in body.model_fields_set:  # else any machine could put itself first
            raise ForbiddenError("only an admin sets a worker's priority")
    elif token is None:
        raise AuthError("send an enrollment token or an admin's key as 'Authorization: Bearer'")
    else:
        by = (await coord.auth.require_async(token, Role.ADMIN)).name
    username = username_for(body.name)
    if username in {t.name.lower() for t in coord.config.auth.worker_tokens}:
        raise ConflictError(f"the name {username!r} is taken by a worker token in the config")
    store = coord.store
    user, key = await to_thread.run_sync(
        lambda: store.users.create_user(username, None, (Role.WORKER,), key_name=body.name)
    )
    profile = await to_thread.run_sync(
        lambda: store.worker_profiles.update(user.id, {"url": body.url, "priority": body.priority})
    )
    log.info("registered worker %s (%s) with %s", user.username, user.id, by)
    return RegisteredWorker(
        worker_id=user.id,
        name=body.name,
        username=user.username,
        key_prefix=key.prefix,
        api_key=key.api_key,
        url=profile.url,
        priority=profile.priority,
    )


@router.get(
    "/accounts",
    summary="Every worker account, with its priority, URL, live key prefixes and presence",
    responses=errors(403, e403="A caller without the admin role"),
)
async def list_accounts(
    request: Request, principal: Principal = Depends(admin_principal)
) -> WorkerAccounts:
    accounts = await to_thread.run_sync(coordinator(request).store.worker_profiles.list_accounts)
    return WorkerAccounts(workers=[WorkerAccountOut.of(a) for a in accounts])


@router.patch(
    "/{worker_id}",
    summary="Set a worker's priority and/or status-page URL",
    responses=ACCOUNT_ERRORS,
)
async def update_worker(
    worker_id: WorkerIdPath,
    body: WorkerSettings,
    request: Request,
    principal: Principal = Depends(admin_principal),
) -> WorkerAccountOut:
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise ValidationError("send priority and/or url to change")
    store = coordinator(request).store

    def update() -> WorkerAccount:
        _worker_account(store.users, worker_id)
        store.worker_profiles.update(worker_id, changes)
        (account,) = store.worker_profiles.list_accounts(worker_id)
        return account

    account = await to_thread.run_sync(update)
    log.info("%s set worker %s: %s", principal.name, account.username, changes)
    return WorkerAccountOut.of(account)


@router.post(
    "/{worker_id}/test",
    summary="Have the coordinator fetch the worker's status page (<url>/status.json)",
    responses=errors(
        403, 404, 409, e404="No such account", e409="Not a worker account, or it has no url"
    ),
)
async def test_worker(
    worker_id: WorkerIdPath, request: Request, principal: Principal = Depends(admin_principal)
) -> WorkerTest:
    """A reachable worker answers ok with what its status page says; an unreachable one, or
    anything that is not a status page, is ok=false with the reason: never an error status."""
    store = coordinator(request).store

    def profile_url() -> str | None:
        _worker_account(store.users, worker_id)
        return store.worker_profiles.get(worker_id).url

    url = await to_thread.run_sync(profile_url)
    if url is None:
        raise ConflictError("this worker has no url to test: set one with PATCH first")
    return await probe(status_url(url))


@router.delete(
    "/{worker_id}",
    summary="Unregister a worker: revoke its keys and disable its account",
    responses=UNREGISTER_ERRORS,
)
async def unregister(
    worker_id: WorkerIdPath, request: Request, principal: Principal = Depends(any_principal)
) -> UnregisteredWorker:
    itself = principal.user_id == worker_id and Role.WORKER in principal.roles
    if not itself and Role.ADMIN not in principal.roles:
        raise ForbiddenError("only the worker itself or an admin may unregister a worker")
    users = coordinator(request).store.users

    def revoke() -> tuple[User, int]:
        user = users.get_user(worker_id)
        if user.roles != {Role.WORKER}:
            held = ", ".join(sorted(user.roles)) or "none"
            raise ConflictError(
                f"{user.username} is not a worker-only account (roles: {held}): revoke its "
                "keys with /api/v1/auth/users/{user_id}/revoke-keys instead"
            )
        revoked = users.revoke_keys(worker_id)
        return users.set_disabled(worker_id, True), revoked

    user, revoked = await to_thread.run_sync(revoke)
    log.info("%s unregistered worker %s (%d keys revoked)", principal.name, user.username, revoked)
    return UnregisteredWorker(
        worker_id=user.id, username=user.username, revoked=revoked, disabled=user.disabled
    )


def _worker_account(users: UserStore, worker_id: str) -> User:
    """The account (NotFoundError if none), a ConflictError unless it is a worker-only one."""
    user = users.get_user(worker_id)
    if user.roles != {Role.WORKER}:
        raise ConflictError(f"{user.username} is not a worker account")
    return user


def status_url(url: str) -> str:
    """Where a worker whose status page is at ``url`` serves its JSON."""
    return url.rstrip("/") + "/status.json"


async def probe(url: str) -> WorkerTest:
    """GET ``url`` once, within TEST_TIMEOUT_S in all, following no redirect."""
    started = time.monotonic()
    try:
        status, body = await asyncio.wait_for(_fetch(url), TEST_TIMEOUT_S)
    except (TimeoutError, httpx.TimeoutException):
        return _failed(url, None, None, f"no answer within {TEST_TIMEOUT_S:g} s")
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        return _failed(url, None, None, f"cannot reach it: {_one_line(exc)}")
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    if body is None:
        return _failed(url, status, latency_ms, f"the answer is over {MAX_STATUS_BYTES} bytes")
    if not 200 <= status < 300:
        where = " (redirects are not followed)" if 300 <= status < 400 else ""
        return _failed(url, status, latency_ms, f"it answered HTTP {status}{where}")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _failed(url, status, latency_ms, "the answer is not JSON: not a status page")
    worker = _worker_status(document)
    if worker is None:
        return _failed(
            url, status, latency_ms, "the JSON has no 'worker' object: not a status page"
        )
    return WorkerTest(
        ok=True, url=url, status_code=status, latency_ms=latency_ms, error=None, worker=worker
    )


async def _fetch(url: str) -> tuple[int, bytes | None]:
    """The status and body (None when over MAX_STATUS_BYTES) of one GET."""
    async with (
        httpx.AsyncClient(
            timeout=TEST_TIMEOUT_S, follow_redirects=False, trust_env=False
        ) as client,
        client.stream("GET", url, headers={"Accept": "application/json"}) as reply,
    ):
        body = bytearray()
        async for chunk in reply.aiter_bytes():
            body += chunk
            if len(body) > MAX_STATUS_BYTES:
                return reply.status_code, None
        return reply.status_code, bytes(body)


def _failed(url: str, status: int | None, latency_ms: float | None, error: str) -> WorkerTest:
    return WorkerTest(
        ok=False, url=url, status_code=status, latency_ms=latency_ms, error=error, worker=None
    )


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _worker_status(document: Any) -> WorkerStatus | None:
    """The fields of a status document worth showing, each kept only if of the right type."""
    if not isinstance(document, dict) or not isinstance(document.get("worker"), dict):
        return None
    worker, system = document["worker"], document.get("system")

    def text(source: Any, key: str) -> str | None:
        value = source.get(key) if isinstance(source, dict) else None
        return value[:200] if isinstance(value, str) else None

    tasks = worker.get("tasks")
    current = document.get("current")
    return WorkerStatus(
        name=text(worker, "name"),
        id=text(worker, "id"),
        version=text(worker, "version"),
        connected=worker["connected"] if isinstance(worker.get("connected"), bool) else None,
        tasks=[t[:64] for t in tasks if isinstance(t, str)][:50]
        if isinstance(tasks, list)
        else None,
        device=text(worker, "device"),
        hostname=text(system, "hostname"),
        current_items=len(current) if isinstance(current, list) else None,
    )


router.add_api_route(
    "/{worker_id}/unregister",
    unregister,
    methods=["POST"],
    summary="Unregister a worker (as DELETE /api/v1/workers/{worker_id})",
    responses=UNREGISTER_ERRORS,
    response_model=UnregisteredWorker,
)
