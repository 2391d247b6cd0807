"""Worker and admin tokens from the config: kept only as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from hivescribe.config import AuthConfig
from hivescribe.domain.errors import AuthError, ForbiddenError


class Role(StrEnum):
    ADMIN = "admin"
    WORKER = "worker"


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str  # for a worker token: the contributor credited with its results


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenAuth:
    def __init__(self, config: AuthConfig) -> None:
        self._entries: list[tuple[bytes, Principal]] = [
            (_digest(t.token.get_secret_value()), Principal(Role.WORKER, t.name))
            for t in config.worker_tokens
        ]
        self._entries += [
            (_digest(t.get_secret_value()), Principal(Role.ADMIN, f"admin-{i + 1}"))
            for i, t in enumerate(config.admin_tokens)
        ]

    def authenticate(self, token: str | None) -> Principal:
        """The principal a token belongs to. Every entry is compared, so timing reveals nothing."""
        if not token:
            raise AuthError("missing token: send it as 'Authorization: Bearer <token>'")
        digest = _digest(token)
        found: Principal | None = None
        for expected, principal in self._entries:
            if hmac.compare_digest(expected, digest):
                found = principal
        if found is None:
            raise AuthError("invalid token")
        return found

    def require(self, token: str | None, *roles: Role) -> Principal:
        principal = self.authenticate(token)
        if principal.role not in roles:
            raise ForbiddenError(
                f"this endpoint is for {' or '.join(r.value for r in roles)} tokens only"
            )
        return principal


def bearer_token(authorization: str | None, api_key: str | None = None) -> str | None:
    """The token from an ``Authorization: Bearer`` header, or an ``X-API-Key`` header."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return api_key or None
