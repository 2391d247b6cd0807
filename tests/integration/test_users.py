"""Accounts and API keys in store.UserStore, on a real database: each test runs on SQLite and on
PostgreSQL. Passwords use argon2's cheapest parameters here (the real ones cost 0.2 s a hash);
the time of ``last_used_at`` comes from the fake clock."""

from __future__ import annotations

import hashlib
import threading

import argon2
import pytest
import sqlalchemy as sa
from tests.conftest import FakeClock

from hivescribe.domain.accounts import PasswordHasher, Role
from hivescribe.domain.errors import AuthError, ConflictError, NotFoundError, ValidationError
from hivescribe.store import Database, Store, UserStore
from hivescribe.store.schema import api_keys, users
from hivescribe.store.users import LOGIN_FAILED, TOUCH_EVERY_S

CHEAP = PasswordHasher(argon2.profiles.CHEAPEST)
PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(clocked_store: Store, clock: FakeClock) -> UserStore:
    return UserStore(clocked_store.db, passwords=CHEAP, clock=clock)


def rows(db: Database, table: sa.Table) -> list[dict[str, object]]:
    with db.read() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(table))]


# -- creating accounts -----------------------------------------------------------------------


def test_create_user_stores_hashes_only(accounts: UserStore, clock: FakeClock) -> None:
    user, key = accounts.create_user("Alice", PASSWORD, key_name="laptop")
    assert (user.username, user.roles, user.disabled, user.has_password) == (
        "alice",
        {Role.USER},
        False,
        True,
    )
    assert user.created_at == clock() and len(user.id) == 32
    assert key.api_key.startswith("hs_") and key.prefix == key.api_key[:10]
    (stored,) = rows(accounts.db, users)
    assert stored["password_hash"].startswith("$argon2id$")  # type: ignore[union-attr]
    assert stored["roles"] == "user"
    (stored_key,) = rows(accounts.db, api_keys)
    assert stored_key["key_hash"] == hashlib.sha256(key.api_key.encode()).hexdigest()
    assert (stored_key["user_id"], stored_key["name"], stored_key["revoked_at"]) == (
        user.id,
        "laptop",
        None,
    )
    assert accounts.get_user(user.id) == user
    assert accounts.find_user("ALICE") == user
    assert accounts.find_user(user.id) == user


def test_create_user_without_password_and_with_roles(accounts: UserStore) -> None:
    user, _ = accounts.create_user("gpu-box", None, [Role.WORKER, Role.VALIDATOR])
    assert user.roles == {Role.WORKER, Role.VALIDATOR} and not user.has_password
    with pytest.raises(AuthError, match=LOGIN_FAILED):
        accounts.login("gpu-box", "")


@pytest.mark.parametrize(
    ("username", "password"),
    [("ab", PASSWORD), ("a b c", PASSWORD), ("x" * 65, PASSWORD), ("alice", "short"),
     ("alice", "x" * 1025), ("alice", "\udfff" * 8)],
)  # fmt: skip
def test_bad_names_and_passwords_create_nothing(
    accounts: UserStore, username: str, password: str
) -> None:
    with pytest.raises(ValidationError):
        accounts.create_user(username, password)
    assert rows(accounts.db, users) == [] and rows(accounts.db, api_keys) == []


def test_a_taken_username_is_a_conflict_in_any_letter_case(accounts: UserStore) -> None:
    accounts.create_user("alice", PASSWORD)
    with pytest.raises(ConflictError, match="'alice' is taken"):
        accounts.create_user("ALICE", "another password")
    assert len(rows(accounts.db, users)) == 1 and len(rows(accounts.db, api_keys)) == 1


def test_concurrent_registrations_of_one_name_make_one_account(accounts: UserStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def register() -> None:
        barrier.wait()
        try:
            accounts.create_user("racer", PASSWORD)
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]
    assert len(rows(accounts.db, users)) == 1 and len(rows(accounts.db, api_keys)) == 1


def test_key_names_are_checked(accounts: UserStore) -> None:
    with pytest.raises(ValidationError, match="200"):
        accounts.create_user("alice", PASSWORD, key_name="k" * 201)
    user, _ = accounts.create_user("alice", PASSWORD)
    for bad in ("\udfff", "nul\x00"):  # lone surrogate; NUL (PostgreSQL text refuses it)
        try:
            accounts.issue_key(user.id, name=bad)
        except ValidationError:
            continue
        assert accounts.db.is_sqlite and bad == "nul\x00"  # SQLite stores NUL; that is fine


# -- passwords ---------------------------------------------------------------------------------


def test_login_issues_a_new_key(accounts: UserStore) -> None:
    user, first = accounts.create_user("alice", PASSWORD)
    same, second = accounts.login("Alice", PASSWORD, key_name="phone")
    assert same == user and second.api_key != first.api_key and second.name == "phone"
    assert len(rows(accounts.db, api_keys)) == 2


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password"), ("nobody", PASSWORD), ("no such name!", PASSWORD),
     ("alice", "\udfff" * 9), ("\udfffalice", PASSWORD), ("alice", "")],
)  # fmt: skip
def test_wrong_password_and_unknown_user_fail_alike(
    accounts: UserStore, username: str, password: str
) -> None:
    accounts.create_user("alice", PASSWORD)
    with pytest.raises(AuthError) as raised:
        accounts.login(username, password)
    assert raised.value.detail == LOGIN_FAILED
    assert len(rows(accounts.db, api_keys)) == 1


def test_a_disabled_account_cannot_log_in_or_use_its_keys(accounts: UserStore) -> None:
    user, key = accounts.create_user("alice", PASSWORD)
    assert accounts.set_disabled(user.id, True).disabled
    with pytest.raises(AuthError, match="disabled"):
        accounts.login("alice", PASSWORD)
    assert accounts.key_owner(key.api_key) is None
    accounts.set_disabled(user.id, False)
    assert accounts.key_owner(key.api_key) is not None
    with pytest.raises(NotFoundError):
        accounts.set_disabled("0" * 32, True)


def test_login_upgrades_a_hash_made_with_older_parameters(
    accounts: UserStore, clock: FakeClock
) -> None:
    accounts.create_user("alice", PASSWORD)
    (before,) = rows(accounts.db, users)
    stronger = PasswordHasher(argon2.Parameters(argon2.Type.ID, 19, 16, 32, 2, 1024, 1))
    upgraded = UserStore(accounts.db, passwords=stronger, clock=clock)
    upgraded.login("alice", PASSWORD)
    (after,) = rows(accounts.db, users)
    assert after["password_hash"] != before["password_hash"]
    assert "m=1024,t=2" in str(after["password_hash"])
    upgraded.login("alice", PASSWORD)  # and the new hash verifies


# -- keys --------------------------------------------------------------------------------------


def test_key_owner_finds_live_keys_only(accounts: UserStore) -> None:
    user, key = accounts.create_user("alice", PASSWORD, [Role.ADMIN])
    owner = accounts.key_owner(key.api_key)
    assert owner is not None and owner.user == user and owner.key_id == key.id
    other = key.api_key[:-1] + ("A" if key.api_key[-1] != "A" else "B")
    for token in (other, "", "hs_", key.api_key + "x", key.api_key.upper(), key.prefix):
        assert accounts.key_owner(token) is None
    assert accounts.revoke_keys(user.id, key.id) == 1
    assert accounts.key_owner(key.api_key) is None


def test_last_used_at_is_written_at_most_once_a_minute(
    accounts: UserStore, clock: FakeClock
) -> None:
    _, key = accounts.create_user("alice", PASSWORD)

    def last_used() -> object:
        (row,) = rows(accounts.db, api_keys)
        return row["last_used_at"]

    assert last_used() is None
    first = clock()
    accounts.key_owner(key.api_key)
    assert last_used() == first
    clock.advance(TOUCH_EVERY_S - 1)
    accounts.key_owner(key.api_key)
    assert last_used() == first
    clock.advance(1)
    accounts.key_owner(key.api_key)
    assert last_used() == clock()


def test_revoke_one_key_or_all(accounts: UserStore, clock: FakeClock) -> None:
    user, first = accounts.create_user("alice", PASSWORD)
    clock.advance(1)
    second = accounts.issue_key(user.id, name="two")
    clock.advance(1)
    third = accounts.issue_key(user.id, name="three")
    other, other_key = accounts.create_user("bob", PASSWORD)
    assert accounts.revoke_keys(user.id, second.id) == 1
    assert accounts.revoke_keys(user.id, second.id) == 0  # already revoked
    assert accounts.key_owner(first.api_key) is not None
    assert accounts.revoke_keys(user.id) == 2
    for key in (first, second, third):
        assert accounts.key_owner(key.api_key) is None
    assert accounts.key_owner(other_key.api_key) is not None  # bob's keys are untouched
    with pytest.raises(NotFoundError):
        accounts.revoke_keys(user.id, other_key.id)  # not alice's key
    with pytest.raises(NotFoundError):
        accounts.revoke_keys("0" * 32)
    listed = accounts.list_keys(user.id)
    assert [k.id for k in listed] == [first.id, second.id, third.id]
    assert all(k.revoked_at is not None for k in listed)
    assert {k.user_id for k in accounts.list_keys()} == {user.id, other.id}
    with pytest.raises(NotFoundError):
        accounts.issue_key("0" * 32)


# -- roles -------------------------------------------------------------------------------------


def test_grant_and_revoke_roles(accounts: UserStore) -> None:
    user, key = accounts.create_user("alice", PASSWORD)
    changed = accounts.set_roles(user.id, grant=[Role.WORKER, Role.ADMIN])
    assert changed.roles == {Role.USER, Role.WORKER, Role.ADMIN}
    changed = accounts.set_roles(user.id, grant=[Role.VALIDATOR], revoke=[Role.USER, Role.ADMIN])
    assert changed.roles == {Role.WORKER, Role.VALIDATOR}
    owner = accounts.key_owner(key.api_key)  # keys act with their user's roles of the moment
    assert owner is not None and owner.user.roles == {Role.WORKER, Role.VALIDATOR}
    assert accounts.set_roles(user.id, revoke=list(Role)).roles == frozenset()
    with pytest.raises(ValidationError, match="grant and revoke the same role"):
        accounts.set_roles(user.id, grant=[Role.USER], revoke=[Role.USER])
    with pytest.raises(NotFoundError):
        accounts.set_roles("0" * 32, grant=[Role.USER])


def test_list_and_find_users(accounts: UserStore, clock: FakeClock) -> None:
    names = ["carol", "alice", "bob"]
    for name in names:
        accounts.create_user(name, None)
        clock.advance(1)
    assert [u.username for u in accounts.list_users()] == names
    assert [u.username for u in accounts.list_users(limit=2)] == names[:2]
    for missing in ("dave", "\udfff", ""):
        with pytest.raises(NotFoundError):
            accounts.find_user(missing)
    with pytest.raises(NotFoundError):
        accounts.get_user("0" * 32)


def test_the_store_carries_a_user_store(clocked_store: Store) -> None:
    assert isinstance(clocked_store.users, UserStore)
    assert clocked_store.users.db is clocked_store.db
