"""Worker registration over HTTP: a machine trades an enrollment token for its own account.

``POST /api/v1/workers/register`` (an enrollment token from the config, or an admin) makes an
account holding only the worker role, named after the worker, and answers its first API key:
the one time that key is shown. ``DELETE /api/v1/workers/{worker_id}`` (or ``POST
.../unregister``), by the worker itself or an admin, revokes its keys and disables the account,
so nothing it held works again. Results it already delivered stay credited to its name.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hivescribe.coordinator.auth import Principal, Role, bearer_token
from hivescribe.coordinator.auth_api import valid_unicode
from hivescribe.coordinator.deps import any_principal, coordinator
from hivescribe.coordinator.openapi import errors
from hivescribe.domain.accounts import check_username
from hivescribe.domain.errors import AuthError, ConflictError, ForbiddenError, ValidationError
from hivescribe.store import User

__all__ = ["router", "username_for"]

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/v1/workers", tags=["workers"], responses=errors(401, 403, 413, 422, 429)
)

_NOT_USERNAME = re.compile(r"[^A-Za-z0-9_.-]+")


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


class Enrollment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: WorkerName


class RegisteredWorker(BaseModel):
    worker_id: str = Field(description="The worker account's user id")
    name: str = Field(description="The name sent")
    username: str = Field(description="The account's username: the worker's results are "
                          "credited to it")  # fmt: skip
    key_prefix: str = Field(description="The key's first characters, as listings show it")
    api_key: str = Field(description="The key itself, shown this once: only its hash is kept")


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
        e403="A valid key without the admin role",
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
    elif token is None:
        raise AuthError("send an enrollment token or an admin's key as 'Authorization: Bearer'")
    else:
        by = (await coord.auth.require_async(token, Role.ADMIN)).name
    username = username_for(body.name)
    if username in {t.name.lower() for t in coord.config.auth.worker_tokens}:
        raise ConflictError(f"the name {username!r} is taken by a worker token in the config")
    users = coord.store.users
    user, key = await to_thread.run_sync(
        lambda: users.create_user(username, None, (Role.WORKER,), key_name=body.name)
    )
    log.info("registered worker %s (%s) with %s", user.username, user.id, by)
    return RegisteredWorker(
        worker_id=user.id,
        name=body.name,
        username=user.username,
        key_prefix=key.prefix,
        api_key=key.api_key,
    )


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


router.add_api_route(
    "/{worker_id}/unregister",
    unregister,
    methods=["POST"],
    summary="Unregister a worker (as DELETE /api/v1/workers/{worker_id})",
    responses=UNREGISTER_ERRORS,
    response_model=UnregisteredWorker,
)
