"""Accounts without a database: the rules for names, passwords, roles and keys, the hashes, and
how TokenAuth turns a config token or an account's key into a Principal."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import argon2
import pytest

from hivescribe.config import AuthConfig
from hivescribe.coordinator.auth import Principal, Role, TokenAuth
from hivescribe.domain.accounts import (
    PasswordHasher,
    check_password,
    check_username,
    format_roles,
    key_digest,
    key_display_prefix,
    looks_like_api_key,
    new_api_key,
    parse_role,
    parse_roles,
)
from hivescribe.domain.errors import AuthError, ForbiddenError, ValidationError
from hivescribe.store import KeyOwner, User

CHEAP = PasswordHasher(argon2.profiles.CHEAPEST)

# -- keys ------------------------------------------------------------------------------------


def test_api_keys_are_256_random_bits_with_a_prefix() -> None:
    keys = {new_api_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in keys:
        assert key.startswith("hs_") and len(key) == 3 + 43  # token_urlsafe(32): 256 bits
        assert looks_like_api_key(key)
        assert key_display_prefix(key) == key[:10]


@pytest.mark.parametrize(
    "token",
    ["", "hs_", "hs_" + "a" * 42, "hs_" + "a" * 44, "HS_" + "a" * 43, "hs_" + "a" * 42 + "=",
     "hs_" + "\udfff" * 43, "admin-secret-token-1"],
)  # fmt: skip
def test_only_key_shaped_tokens_look_like_keys(token: str) -> None:
    assert not looks_like_api_key(token)


def test_key_digest_is_sha256_hex_and_survives_lone_surrogates() -> None:
    key = new_api_key()
    assert key_digest(key) == hashlib.sha256(key.encode()).hexdigest()
    assert len(key_digest("\udfff")) == 64


# -- names, passwords, roles -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "Alice", "a.b-c_d", "x" * 64, "007"])
def test_good_usernames_are_folded_to_lower_case(name: str) -> None:
    assert check_username(name) == name.lower()


@pytest.mark.parametrize(
    "name",
    ["", "ab", "x" * 65, "a b", "ali ce", "alice\n", "ålice", "al/ice", "a\x00b", "\udfffabc",
     "admin;drop", "\uff41\uff42\uff43"],
)  # fmt: skip
def test_bad_usernames_are_validation_errors(name: str) -> None:
    with pytest.raises(ValidationError, match="3 to 64 characters"):
        check_username(name)


@pytest.mark.parametrize("password", ["12345678", "x" * 1024, "pässwörd", "with spaces ok"])
def test_good_passwords(password: str) -> None:
    assert check_password(password) == password


@pytest.mark.parametrize("password", ["", "1234567", "x" * 1025, "\udfff" * 8])
def test_bad_passwords_never_repeat_the_password(password: str) -> None:
    with pytest.raises(ValidationError) as raised:
        check_password(password)
    assert password not in raised.value.detail or not password


def test_roles_round_trip_and_unknown_roles_are_named() -> None:
    assert {r.value for r in Role} == {"admin", "user", "worker", "validator"}
    assert format_roles([Role.WORKER, Role.ADMIN, Role.WORKER]) == "admin,worker"
    assert parse_roles("admin,worker") == {Role.ADMIN, Role.WORKER}
    assert parse_roles("") == frozenset()
    assert parse_role("validator") is Role.VALIDATOR
    with pytest.raises(ValidationError, match=r"unknown role 'root'.*admin, user, worker"):
        parse_role("root")


# -- password hashes -------------------------------------------------------------------------


def test_default_password_hashes_are_argon2id_rfc9106() -> None:
    hashed = PasswordHasher().hash("correct horse")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "correct horse" not in hashed


def test_password_hasher_verifies() -> None:
    hashed = CHEAP.hash("correct horse")
    assert hashed.startswith("$argon2id$")
    assert CHEAP.verify(hashed, "correct horse")
    assert not CHEAP.verify(hashed, "correct horsE")
    assert not CHEAP.verify(hashed, "\udfff" * 9)  # a lone surrogate fails, it does not raise
    assert not CHEAP.verify("not a hash", "correct horse")
    assert not CHEAP.verify(None, "correct horse")  # an unknown user: a dummy hash is checked
    assert not CHEAP.needs_rehash(hashed)
    assert PasswordHasher().needs_rehash(hashed)  # other parameters: upgraded at next login


# -- TokenAuth -------------------------------------------------------------------------------

ADMIN, WORKER = "admin-secret-unit-2", "worker-secret-unit-2"


@dataclass
class FakeUsers:
    """Stands in for store.UserStore: one key, owned by ``user``."""

    key: str
    user: User
    lookups: int = 0

    def key_owner(self, api_key: str) -> KeyOwner | None:
        self.lookups += 1
        return KeyOwner(self.user, "k1") if api_key == self.key else None


def account(*roles: Role, name: str = "alice") -> User:
    return User("u1", name, frozenset(roles), 1.0, False, True)


def token_auth(users: FakeUsers) -> TokenAuth:
    config = AuthConfig.model_validate(
        {"worker_tokens": [{"token": WORKER, "name": "W"}], "admin_tokens": [ADMIN]}
    )
    return TokenAuth(config, users)  # type: ignore[arg-type]


def test_config_tokens_are_checked_before_the_database() -> None:
    users = FakeUsers(new_api_key(), account(Role.USER))
    auth = token_auth(users)
    assert auth.require(ADMIN, Role.ADMIN) == Principal(Role.ADMIN, "admin-1")
    assert auth.require(WORKER, Role.WORKER).roles == {Role.WORKER}
    assert users.lookups == 0


def test_an_accounts_key_acts_in_the_role_it_was_admitted_under() -> None:
    key = new_api_key()
    auth = token_auth(FakeUsers(key, account(Role.USER, Role.WORKER, name="bob")))
    principal = auth.authenticate(key)
    assert (principal.role, principal.name, principal.user_id, principal.key_id) == (
        Role.WORKER,
        "bob",
        "u1",
        "k1",
    )
    assert principal.roles == {Role.USER, Role.WORKER}
    assert auth.require(key, Role.USER).role is Role.USER
    assert auth.require(key, Role.ADMIN, Role.WORKER).role is Role.WORKER
    with pytest.raises(ForbiddenError, match=r"needs the admin role.*user, worker"):
        auth.require(key, Role.ADMIN)


def test_an_account_with_no_role_authenticates_but_is_admitted_nowhere() -> None:
    key = new_api_key()
    auth = token_auth(FakeUsers(key, account()))
    assert auth.authenticate(key).role is None
    for role in Role:
        with pytest.raises(ForbiddenError, match="roles: none"):
            auth.require(key, role)


def test_unknown_keys_are_401_and_never_repeated() -> None:
    users = FakeUsers(new_api_key(), account(Role.ADMIN))
    auth = token_auth(users)
    for token in (None, "", new_api_key(), "nope", "\udfff"):
        with pytest.raises(AuthError) as raised:
            auth.require(token, Role.ADMIN)
        if token:
            assert token not in raised.value.detail


def test_without_a_user_store_only_config_tokens_work() -> None:
    auth = TokenAuth(AuthConfig.model_validate({"admin_tokens": [ADMIN]}))
    assert auth.require(ADMIN, Role.ADMIN).name == "admin-1"
    with pytest.raises(AuthError):
        auth.authenticate(new_api_key())


@pytest.mark.parametrize("name", ["admin-1", "Admin-12", "local", "ADMIN", "root", "system"])
def test_names_the_coordinator_uses_itself_are_reserved(name: str) -> None:
    with pytest.raises(ValidationError, match="is reserved: choose another"):
        check_username(name)
