"""Who is calling: a token from the config, or an account's API key from the database.

Config tokens (``orchestrator.auth``) are kept only as hashes and compared in constant time;
they are checked first. Anything else shaped like an API key is looked up by its hash.
Enrollment tokens are no principal: they only let a machine register itself as a worker.
Missing or unknown credentials are a 401; a known caller without the role an endpoint needs
is a 403.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from dataclasses import dataclass

from anyio import to_thread

from hivescribe.config import AuthConfig
from hivescribe.domain.accounts import Role
from hivescribe.domain.errors import AuthError, ForbiddenError
from hivescribe.store import UserStore

__all__ = ["Principal", "Role", "TokenAuth", "bearer_token"]

# The order a principal's main role is picked in, when it holds several.
_ROLE_RANK = (Role.ADMIN, Role.VALIDATOR, Role.WORKER, Role.USER)


@dataclass(frozen=True)
class Principal:
    # The role this call acts in: the one require() admitted it under; for a bare
    # authenticate(), the highest the caller holds (None: an account with no role).
    role: Role | None
    # A config worker token: the contributor credited with its results. An account: its
    # username (also the contributor its worker results are credited to).
    name: str
    roles: frozenset[Role] = frozenset()  # every role held (a config token: its one role)
    user_id: str | None = None  # None for config tokens
    key_id: str | None = None  # the API key used, for an account

    def __post_init__(self) -> None:
        if not self.roles and self.role is not None:
            object.__setattr__(self, "roles", frozenset({self.role}))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenAuth:
    def __init__(self, config: AuthConfig, users: UserStore | None = None) -> None:
        self.users = users
        self._entries: list[tuple[bytes, Principal]] = [
            (_digest(t.token.get_secret_value()), Principal(Role.WORKER, t.name))
            for t in config.worker_tokens
        ]
        self._entries += [
            (_digest(t.get_secret_value()), Principal(Role.ADMIN, f"admin-{i + 1}"))
            for i, t in enumerate(config.admin_tokens)
        ]
        self._enrollment = [_digest(t.get_secret_value()) for t in config.enrollment_tokens]

    def admin_digests(self) -> frozenset[str]:
        """SHA-256 hex digests of the config's admin tokens (the rate limit lets them through)."""
        return frozenset(d.hex() for d, p in self._entries if p.role is Role.ADMIN)

    def is_enrollment_token(self, token: str | None) -> bool:
        """Whether ``token`` is one of the config's enrollment tokens (each is compared, so
        timing reveals nothing about which matched)."""
        if not token:
            return False
        digest = _digest(token)
        found = False
        for expected in self._enrollment:
            found |= hmac.compare_digest(expected, digest)
        return found

    def authenticate(self, token: str | None) -> Principal:
        """The principal a token or API key belongs to (this may read the database)."""
        token = _present(token)
        return self._config_principal(token) or self._key_principal(token)

    async def authenticate_async(self, token: str | None) -> Principal:
        """As ``authenticate``; a database lookup runs in a worker thread."""
        token = _present(token)
        principal = self._config_principal(token)
        if principal is None:
            principal = await to_thread.run_sync(self._key_principal, token)
        return principal

    def require(self, token: str | None, *roles: Role) -> Principal:
        return _admit(self.authenticate(token), roles)

    async def require_async(self, token: str | None, *roles: Role) -> Principal:
        return _admit(await self.authenticate_async(token), roles)

    def _config_principal(self, token: str) -> Principal | None:
        """Every config entry is compared, so timing reveals nothing about which matched."""
        digest = _digest(token)
        found: Principal | None = None
        for expected, principal in self._entries:
            if hmac.compare_digest(expected, digest):
                found = principal
        return found

    def _key_principal(self, token: str) -> Principal:
        owner = self.users.key_owner(token) if self.users is not None else None
        if owner is None:
            raise AuthError("invalid token")  # unknown, revoked, or its account disabled
        user = owner.user
        return Principal(
            role=next((r for r in _ROLE_RANK if r in user.roles), None),
            name=user.username,
            roles=user.roles,
            user_id=user.id,
            key_id=owner.key_id,
        )


def _present(token: str | None) -> str:
    if not token:
        raise AuthError(
            "missing token or API key: send it as 'Authorization: Bearer <token>' or "
            "'X-API-Key: <token>'"
        )
    return token


def _admit(principal: Principal, roles: tuple[Role, ...]) -> Principal:
    """The principal acting in the first of ``roles`` it holds, or a ForbiddenError."""
    for role in roles:
        if role in principal.roles:
            return dataclasses.replace(principal, role=role)
    held = ", ".join(sorted(principal.roles)) or "none"
    raise ForbiddenError(
        f"this endpoint needs the {' or '.join(r.value for r in roles)} role "
        f"(this caller's roles: {held})"
    )


def bearer_token(authorization: str | None, api_key: str | None = None) -> str | None:
    """The token from an ``Authorization: Bearer`` header, or an ``X-API-Key`` header."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return api_key or None
