"""Accounts: roles, the rules for usernames and passwords, and how keys and passwords are hashed.

API keys are 256 random bits, so one SHA-256 is enough to store them: nobody can guess their
way back. Passwords are chosen by people, so they get argon2id, which makes each guess costly.
Nothing here touches the database; store/users.py keeps the hashes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from enum import StrEnum

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from hivescribe.domain.errors import ValidationError

__all__ = [
    "API_KEY_PREFIX",
    "PASSWORD_MAX_CHARS",
    "PASSWORD_MIN_CHARS",
    "USERNAME_PATTERN",
    "PasswordHasher",
    "Role",
    "check_password",
    "check_username",
    "format_roles",
    "key_digest",
    "key_display_prefix",
    "looks_like_api_key",
    "new_api_key",
    "parse_role",
    "parse_roles",
]


class Role(StrEnum):
    ADMIN = "admin"  # runs the coordinator: jobs of everyone, accounts, roles and keys
    USER = "user"  # submits work and reads its own results (what registration grants)
    WORKER = "worker"  # claims items and submits results, credited to its name
    VALIDATOR = "validator"  # reviews results (its endpoints come with issue 5's later parts)


USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,64}$"  # for Pydantic, whose regex $ ends the text
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 1024
API_KEY_PREFIX = "hs_"
_KEY_BYTES = 32  # 256 bits
# Python's $ also matches before a final newline: these are used with fullmatch.
_KEY = re.compile(r"hs_[A-Za-z0-9_-]{43}")  # API_KEY_PREFIX + token_urlsafe(32)
_USERNAME = re.compile(USERNAME_PATTERN.strip("^$"))
# Names the coordinator gives its own principals (config admin tokens, `hivescribe run`): an
# account may not take them, or it would share their jobs and credit.
_RESERVED = re.compile(r"admin-\d+|local|admin|root|system")
_DISPLAY_CHARS = 10  # "hs_" and 7 random characters: enough to tell keys apart in a list


def parse_role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValidationError(f"unknown role {name!r}; roles are: {known}") from None


def parse_roles(text: str) -> frozenset[Role]:
    """Roles as the users table stores them: comma-separated names."""
    return frozenset(Role(name) for name in text.split(",") if name)


def format_roles(roles: Iterable[Role]) -> str:
    return ",".join(sorted({Role(r).value for r in roles}))


def check_username(username: str) -> str:
    """The username to store: 3-64 letters, digits, '_', '.' or '-', folded to lower case so
    that 'Alice' and 'alice' are one account."""
    if not _USERNAME.fullmatch(username):
        raise ValidationError(
            "a username has 3 to 64 characters, each a letter, digit, '_', '.' or '-'"
        )
    folded = username.lower()
    if _RESERVED.fullmatch(folded):
        raise ValidationError(f"the username {folded!r} is reserved: choose another")
    return folded


def check_password(password: str) -> str:
    """A password to hash: 8-1024 characters of valid Unicode. The message never repeats it."""
    if not PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS:
        raise ValidationError(
            f"a password has {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters"
        )
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("a password must be valid Unicode text") from None
    return password


def new_api_key() -> str:
    """A fresh API key, shown to its owner once; only ``key_digest`` of it is stored."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def looks_like_api_key(token: str) -> bool:
    """Whether a token has the shape of an API key (anything else is not looked up)."""
    return bool(_KEY.fullmatch(token))


def key_digest(api_key: str) -> str:
    """What the database keeps of a key: its SHA-256, in hex."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def key_display_prefix(api_key: str) -> str:
    """The first characters of a key, kept in clear so people can tell their keys apart."""
    return api_key[:_DISPLAY_CHARS]


class PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106, low memory: 64 MiB, 3 passes), or
    cheaper parameters for tests. Hashing takes a fraction of a second on purpose: run it in a
    worker thread, never on the event loop."""

    def __init__(self, parameters: argon2.Parameters | None = None) -> None:
        self._hasher = (
            argon2.PasswordHasher()
            if parameters is None
            else argon2.PasswordHasher.from_parameters(parameters)
        )
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        return self._hasher.hash(_secret_bytes(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches. With no hash (an unknown user, or an account without a
        password) a dummy hash is checked instead, so the answer takes as long either way."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = self.hash(secrets.token_urlsafe(16))
            password_hash = self._dummy
            matched = False
        else:
            matched = True
        try:
            self._hasher.verify(password_hash, _secret_bytes(password))
        except (VerificationError, InvalidHashError):
            return False
        return matched

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than this hasher's."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


def _secret_bytes(password: str) -> bytes:
    # surrogatepass: a lone surrogate sent to login must fail to match, not raise
    return password.encode("utf-8", "surrogatepass")
