"""The accounts API (/api/v1/auth) against the real app, in process, on SQLite and PostgreSQL.

Covers the account life (register, log in, more keys, verify), who may call what (a user's
key on worker endpoints, a worker's key on admin ones: 403), garbage on every input (4xx,
never 5xx) and that no key or password ever shows in the database, the logs or a later
response. Passwords use argon2's cheapest parameters; tests/acceptance/test_accounts.py runs
the real ones in a real coordinator process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.app_clients import MakeClient, app_clients

from hivescribe.coordinator import Coordinator
from hivescribe.store import Database
from hivescribe.store.schema import metadata, results, workers

ADMIN_TOKEN = "admin-token-auth-api-1"
WORKER_TOKEN = "worker-token-auth-api-1"
PASSWORD = "correct horse battery staple"
AUTH = "/api/v1/auth"


@pytest.fixture
def make_client(database_url: str, tmp_path: Path) -> Iterator[MakeClient]:
    """Apps on one migrated database; ``make_client(open_registration=False)`` and so on."""
    tokens = {"admin_token": ADMIN_TOKEN, "worker_token": WORKER_TOKEN}
    with app_clients(database_url, tmp_path, **tokens) as make:
        yield lambda **auth: make(auth=auth)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ADMIN = bearer(ADMIN_TOKEN)


def register(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    reply = client.post(f"{AUTH}/register", json={"username": username, "password": password})
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


def grant(client: TestClient, user_id: str, **change: list[str]) -> dict[str, Any]:
    reply = client.post(f"{AUTH}/users/{user_id}/roles", json=change, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def problem(reply: Any, *statuses: int) -> Any:
    assert reply.status_code in statuses, (reply.status_code, reply.text[:500])
    detail = reply.json()["detail"]
    assert detail
    return detail


# -- the account life ------------------------------------------------------------------------


def test_register_verify_login_and_generate(client: TestClient) -> None:
    account = register(client, "Alice")
    assert set(account) == {"user_id", "username", "roles", "key_id", "key_prefix", "api_key"}
    assert (account["username"], account["roles"]) == ("alice", ["user"])
    first = account["api_key"]
    assert first.startswith("hs_") and account["key_prefix"] == first[:10]

    for headers in (key_header(first), bearer(first)):
        who = client.get(f"{AUTH}/verify-api-key", headers=headers)
        assert who.status_code == 200, who.text
        assert who.json() == {
            "user_id": account["user_id"],
            "username": "alice",
            "roles": ["user"],
            "key_id": account["key_id"],
        }

    login = client.post(f"{AUTH}/login", json={"username": "ALICE", "password": PASSWORD})
    assert login.status_code == 200, login.text
    second = login.json()["api_key"]
    assert second != first and login.json()["user_id"] == account["user_id"]

    made = client.post(f"{AUTH}/generate-api-key", json={"name": "laptop"}, headers=bearer(second))
    assert made.status_code == 201, made.text
    assert set(made.json()) == {"key_id", "key_prefix", "name", "created_at", "api_key"}
    assert made.json()["name"] == "laptop"
    unnamed = client.post(f"{AUTH}/generate-api-key", headers=key_header(first))
    assert unnamed.status_code == 201 and unnamed.json()["name"] == ""
    keys = {first, second, made.json()["api_key"], unnamed.json()["api_key"]}
    assert len(keys) == 4
    for key in keys:
        assert client.get(f"{AUTH}/verify-api-key", headers=key_header(key)).status_code == 200


def test_verify_names_config_tokens_too(client: TestClient) -> None:
    who = client.get(f"{AUTH}/verify-api-key", headers=ADMIN).json()
    assert who == {"user_id": None, "username": "admin-1", "roles": ["admin"], "key_id": None}
    who = client.get(f"{AUTH}/verify-api-key", headers=key_header(WORKER_TOKEN)).json()
    assert who == {"user_id": None, "username": "GPU-1", "roles": ["worker"], "key_id": None}
    # config tokens live in the config file: they have no account to hold keys
    problem(client.post(f"{AUTH}/generate-api-key", headers=ADMIN), 403)


def test_a_taken_username_is_409_in_any_letter_case(client: TestClient) -> None:
    register(client, "alice")
    reply = client.post(f"{AUTH}/register", json={"username": "Alice", "password": PASSWORD})
    assert "taken" in problem(reply, 409)


def test_wrong_password_and_unknown_user_get_the_same_401(client: TestClient) -> None:
    register(client, "alice")
    replies = [
        client.post(f"{AUTH}/login", json={"username": name, "password": password})
        for name, password in [
            ("alice", "wrong password"),
            ("nobody", PASSWORD),
            ("not a name", PASSWORD),
            ("alice", "x"),
        ]
    ]
    details = {problem(reply, 401) for reply in replies}
    assert details == {"wrong username or password"}
    assert all(r.headers["WWW-Authenticate"] == "Bearer" for r in replies)


def test_missing_unknown_and_revoked_keys_are_401(client: TestClient) -> None:
    account = register(client, "alice")
    key = account["api_key"]
    url = f"{AUTH}/verify-api-key"
    assert "X-API-Key" in problem(client.get(url), 401)
    forged = "hs_" + "A" * 43
    for headers in (key_header(forged), bearer(forged), key_header("nope"), bearer("")):
        problem(client.get(url, headers=headers), 401)
    revoked = client.post(f"{AUTH}/users/{account['user_id']}/revoke-keys", headers=ADMIN)
    assert revoked.json() == {"revoked": 1}
    assert problem(client.get(url, headers=key_header(key)), 401) == "invalid token"
    problem(client.post(f"{AUTH}/generate-api-key", headers=key_header(key)), 401)


def test_revoke_one_key_keeps_the_others(client: TestClient) -> None:
    account = register(client, "alice")
    other = client.post(f"{AUTH}/generate-api-key", headers=key_header(account["api_key"])).json()
    url = f"{AUTH}/users/{account['user_id']}/revoke-keys"
    reply = client.post(url, json={"key_id": other["key_id"]}, headers=ADMIN)
    assert reply.json() == {"revoked": 1}
    verify = f"{AUTH}/verify-api-key"
    assert client.get(verify, headers=key_header(other["api_key"])).status_code == 401
    assert client.get(verify, headers=key_header(account["api_key"])).status_code == 200
    problem(client.post(url, json={"key_id": "f" * 32}, headers=ADMIN), 404)
    problem(client.post(f"{AUTH}/users/{'0' * 32}/revoke-keys", headers=ADMIN), 404)


# -- who may call what -------------------------------------------------------------------------

CLAIM = {
    "worker_id": "box-1",
    "name": "box-1",
    "capabilities": {"tasks": ["echo"]},
    "max_items": 1,
    "wait_s": 0,
}


def echo_job(client: TestClient, headers: dict[str, str], text: str = "hello") -> str:
    reply = client.post("/api/v1/jobs", json={"task_type": "echo", "dataset": "d"}, headers=headers)
    assert reply.status_code == 201, reply.text
    job_id: str = reply.json()["job_id"]
    items = {"items": [{"item_key": "k1", "input": {"text": text}}]}
    reply = client.post(f"/api/v1/jobs/{job_id}/items", json=items, headers=headers)
    assert reply.status_code == 200, reply.text
    return job_id


def test_a_users_key_cannot_call_worker_or_admin_endpoints(client: TestClient) -> None:
    key = register(client, "alice")["api_key"]
    for headers in (key_header(key), bearer(key)):
        assert "worker role" in problem(
            client.post("/api/v1/worker/claim", json=CLAIM, headers=headers), 403
        )
        assert "admin role" in problem(client.get("/api/v1/jobs", headers=headers), 403)
        problem(client.get(f"{AUTH}/users", headers=headers), 403)
        problem(client.post(f"{AUTH}/users/{'0' * 32}/roles", json={}, headers=headers), 403)


def test_a_worker_accounts_key_works_only_on_worker_endpoints(
    client: TestClient, make_client: MakeClient
) -> None:
    account = register(client, "gpu-volunteer")
    changed = grant(client, account["user_id"], grant=["worker"], revoke=["user"])
    assert changed["roles"] == ["worker"]
    key = key_header(account["api_key"])
    assert "admin role" in problem(client.get("/api/v1/jobs", headers=key), 403)
    problem(
        client.post("/api/v1/jobs", json={"task_type": "echo", "dataset": "d"}, headers=key), 403
    )
    problem(client.get(f"{AUTH}/users", headers=key), 403)
    problem(client.post(f"{AUTH}/generate-api-key", headers=key), 403)  # no user role

    job_id = echo_job(client, ADMIN)
    claimed = client.post("/api/v1/worker/claim", json=CLAIM, headers=key)
    assert claimed.status_code == 200, claimed.text
    (lease,) = claimed.json()["leases"]
    assert lease["job_id"] == job_id
    result = {"item_id": lease["item_id"], "token": lease["token"], "output": {"text": "hello"}}
    ack = client.post(
        "/api/v1/worker/results", json={"worker_id": "box-1", "results": [result]}, headers=key
    )
    assert ack.json() == {"accepted": [lease["item_id"]], "stale": []}
    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    with coord.store.db.read() as conn:
        credited = conn.execute(sa.select(results.c.contributor_id)).scalars().all()
        contributor = conn.execute(sa.select(workers.c.contributor_id)).scalar_one()
    assert credited == ["gpu-volunteer"] and contributor == "gpu-volunteer"


def test_a_worker_accounts_key_authenticates_over_websocket(client: TestClient) -> None:
    worker = register(client, "ws-volunteer")
    grant(client, worker["user_id"], grant=["worker"])
    plain = register(client, "plain-user")
    hello = {"type": "auth", "worker_id": "ws-1", "name": "ws-1", "capabilities": {}}
    with client.websocket_connect("/api/v1/worker/ws") as ws:
        ws.send_text(json.dumps({**hello, "token": worker["api_key"]}))
        welcome = ws.receive_json()
    assert welcome["type"] == "welcome" and welcome["contributor"] == "ws-volunteer"
    with client.websocket_connect("/api/v1/worker/ws") as ws:
        ws.send_text(json.dumps({**hello, "token": plain["api_key"]}))
        closed = ws.receive()
    assert closed["type"] == "websocket.close" and closed["code"] == 1008
    assert "worker role" in closed["reason"]


def test_an_admin_account_runs_jobs_and_accounts(client: TestClient) -> None:
    boss = register(client, "boss")
    problem(client.get("/api/v1/jobs", headers=key_header(boss["api_key"])), 403)
    grant(client, boss["user_id"], grant=["admin"])
    key = key_header(boss["api_key"])
    job_id = echo_job(client, key)
    assert client.get(f"/api/v1/jobs/{job_id}", headers=key).json()["owner"] == "boss"
    listed = client.get(f"{AUTH}/users", headers=key).json()["users"]
    assert [(u["username"], u["roles"]) for u in listed] == [("boss", ["admin", "user"])]
    assert listed[0]["has_password"] and not listed[0]["disabled"]
    other = register(client, "carol")
    url = f"{AUTH}/users/{other['user_id']}/roles"
    reply = client.post(url, json={"grant": ["validator"]}, headers=key)
    assert reply.json()["roles"] == ["user", "validator"]
    # admin does not imply worker: an admin's key on a worker endpoint is still a 403
    problem(client.post("/api/v1/worker/claim", json=CLAIM, headers=key), 403)
    problem(client.post("/api/v1/worker/claim", json=CLAIM, headers=ADMIN), 403)


def test_roles_change_on_the_next_request(client: TestClient) -> None:
    account = register(client, "alice")
    key = key_header(account["api_key"])
    grant(client, account["user_id"], grant=["admin"])
    assert client.get("/api/v1/jobs", headers=key).status_code == 200
    grant(client, account["user_id"], revoke=["admin"])
    problem(client.get("/api/v1/jobs", headers=key), 403)


def test_closed_registration(make_client: MakeClient) -> None:
    client = make_client(open_registration=False)
    body = {"username": "alice", "password": PASSWORD}
    assert "registration is closed" in problem(client.post(f"{AUTH}/register", json=body), 401)
    made = client.post(f"{AUTH}/register", json=body, headers=ADMIN)
    assert made.status_code == 201, made.text
    user_key = key_header(made.json()["api_key"])
    later = {"username": "bob", "password": PASSWORD}
    problem(client.post(f"{AUTH}/register", json=later, headers=user_key), 403)
    problem(client.post(f"{AUTH}/register", json=later, headers=bearer("hs_" + "x" * 43)), 401)
    login = client.post(f"{AUTH}/login", json=body)  # logging in is not registering
    assert login.status_code == 200, login.text


# -- garbage in, 4xx out -----------------------------------------------------------------------

GOOD = {"username": "alice", "password": PASSWORD}
PW = PASSWORD.encode()


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


GARBAGE_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not-json", b"username=alice&password=x"),
    ("truncated", b'{"username": "alice", "pass'),
    ("array", b"[]"),
    ("string", b'"alice"'),
    ("null", b"null"),
    ("number", b"12345678901234567890123456789"),
    ("nested", b"[" * 5000 + b"]" * 5000),
    ("no-password", _json({"username": "alice"})),
    ("no-username", _json({"password": PASSWORD})),
    ("username-int", _json({**GOOD, "username": 5})),
    ("username-list", _json({**GOOD, "username": ["alice"]})),
    ("username-null", _json({**GOOD, "username": None})),
    ("username-space", _json({**GOOD, "username": "ali ce"})),
    ("username-newline", _json({**GOOD, "username": "alice\n"})),
    ("username-short", _json({**GOOD, "username": "ab"})),
    ("username-long", _json({**GOOD, "username": "a" * 65})),
    ("username-huge", _json({**GOOD, "username": "a" * 100_000})),
    ("username-unicode", _json({**GOOD, "username": "ålice"})),
    ("username-nul", _json({**GOOD, "username": "ali\x00ce"})),
    ("username-surrogate", b'{"username": "\\udfffalice", "password": "%s"}' % PW),
    ("password-short", _json({**GOOD, "password": "short"})),
    ("password-long", _json({**GOOD, "password": "x" * 1025})),
    ("password-int", _json({**GOOD, "password": 12345678})),
    ("password-surrogate", b'{"username": "alice", "password": "%s"}' % (b"\\udfff" * 8)),
    ("extra-role", _json({**GOOD, "roles": ["admin"]})),
    ("extra-role-singular", _json({**GOOD, "role": "admin"})),
    ("key-name-long", _json({**GOOD, "key_name": "k" * 201})),
    ("key-name-int", _json({**GOOD, "key_name": 5})),
    ("key-name-surrogate", b'{"username": "alice", "password": "%s", "key_name": "\\udfff"}' % PW),
    ("invalid-utf8", b'{"username": "al\xffice", "password": "%s"}' % PW),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body"), GARBAGE_BODIES, ids=[c for c, _ in GARBAGE_BODIES])
@pytest.mark.parametrize("endpoint", ["register", "login"])
def test_garbage_account_bodies_are_4xx(
    client: TestClient, endpoint: str, case: str, body: bytes
) -> None:
    if endpoint == "login":
        register(client, "alice")
    reply = client.post(
        f"{AUTH}/{endpoint}", content=body, headers={"Content-Type": "application/json"}
    )
    # 400: a body that cannot be parsed at all (absurd nesting); login answers 401 to names
    # and passwords that cannot exist; never anything in 5xx
    detail = problem(reply, 400, 422, 401) if endpoint == "login" else problem(reply, 400, 422)
    if reply.status_code == 422:
        assert isinstance(detail, list) and all(p["msg"] for p in detail)
    assert PASSWORD not in reply.text
    assert client.get("/health").status_code == 200


def test_a_nul_in_a_key_name_is_stored_or_refused_never_a_500(client: TestClient) -> None:
    reply = client.post(f"{AUTH}/register", json={**GOOD, "key_name": "a\x00b"})
    assert reply.status_code in (201, 400), reply.text  # PostgreSQL text cannot hold NUL


GARBAGE_KEY_BODIES = [
    b"garbage",
    b"[]",
    _json({"name": 5}),
    _json({"name": "k" * 201}),
    _json({"nope": 1}),
    b'{"name": "\\udfff"}',
]


@pytest.mark.parametrize("body", GARBAGE_KEY_BODIES)
def test_garbage_generate_api_key_bodies_are_422(client: TestClient, body: bytes) -> None:
    key = register(client, "alice")["api_key"]
    headers = {**key_header(key), "Content-Type": "application/json"}
    problem(client.post(f"{AUTH}/generate-api-key", content=body, headers=headers), 422)


@pytest.mark.parametrize(
    ("path", "body", "statuses"),
    [
        ("roles", {"grant": ["root"]}, (422,)),
        ("roles", {"grant": "admin"}, (422,)),
        ("roles", {"grant": [None]}, (422,)),
        ("roles", {"grant": ["admin"] * 5}, (422,)),
        ("roles", {"grant": ["admin"], "revoke": ["admin"]}, (400,)),
        ("roles", {"add": ["admin"]}, (422,)),
        ("roles", [], (422,)),
        ("revoke-keys", {"key_id": "x"}, (422,)),
        ("revoke-keys", {"key_id": 5}, (422,)),
        ("revoke-keys", {"key_id": "F" * 32}, (422,)),
        ("revoke-keys", {"key_id": "f" * 32}, (404,)),
        ("revoke-keys", {"all": True}, (422,)),
        ("revoke-keys", "garbage", (422,)),
    ],
)
def test_garbage_admin_bodies_are_4xx(
    client: TestClient, path: str, body: Any, statuses: tuple[int, ...]
) -> None:
    user_id = register(client, "alice")["user_id"]
    reply = client.post(f"{AUTH}/users/{user_id}/{path}", json=body, headers=ADMIN)
    problem(reply, *statuses)


@pytest.mark.parametrize(
    "user_id", ["nope", "0" * 31, "0" * 33, "G" * 32, "%2e%2e%2f%2e%2e", "%00" * 32, "é" * 32]
)
def test_garbage_user_ids_are_422(client: TestClient, user_id: str) -> None:
    for path in ("roles", "revoke-keys"):
        reply = client.post(f"{AUTH}/users/{user_id}/{path}", json={}, headers=ADMIN)
        problem(reply, 404, 422)
    problem(client.post(f"{AUTH}/users/{'0' * 32}/roles", json={}, headers=ADMIN), 404)


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "10001", "1e3", str(2**70)])
def test_garbage_list_limits_are_422(client: TestClient, limit: str) -> None:
    problem(client.get(f"{AUTH}/users", params={"limit": limit}, headers=ADMIN), 422)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "hs_" + "é" * 43},
        {"X-API-Key": "hs_" + "a" * 10_000},
        {"Authorization": "Bearer " + "b" * 10_000},
        {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
        {"Authorization": "Bearer"},
        {"X-API-Key": ""},
        {"X-API-Key": "\x7f" * 46},
    ],
)
def test_garbage_credentials_are_401(client: TestClient, headers: dict[str, str]) -> None:
    encoded = {k: v.encode("latin-1") for k, v in headers.items()}
    for method, path in (("GET", "verify-api-key"), ("POST", "generate-api-key")):
        problem(client.request(method, f"{AUTH}/{path}", headers=encoded), 401)
    problem(client.get("/api/v1/jobs", headers=encoded), 401)


# -- secrets -----------------------------------------------------------------------------------


def database_text(db: Database) -> str:
    """Every value of every table, as text."""
    parts: list[str] = []
    with db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def database_files(database_url: str) -> bytes:
    """The raw bytes of a SQLite database and its WAL ("" for PostgreSQL)."""
    if not database_url.startswith("sqlite"):
        return b""
    path = Path(database_url.split("///", 1)[1])
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_keys_and_passwords_never_show_in_clear(
    client: TestClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "p4ssw0rd-that-must-not-leak"
    issued: list[str] = []

    account = register(client, "alice", password)
    issued.append(account["api_key"])
    login = client.post(f"{AUTH}/login", json={"username": "alice", "password": password})
    issued.append(login.json()["api_key"])
    made = client.post(f"{AUTH}/generate-api-key", headers=key_header(issued[0]))
    issued.append(made.json()["api_key"])
    wrong = client.post(f"{AUTH}/login", json={"username": "alice", "password": password + "x"})
    assert wrong.status_code == 401

    later = [
        wrong,
        client.get(f"{AUTH}/verify-api-key", headers=key_header(issued[1])),
        client.get(f"{AUTH}/verify-api-key", headers=bearer(issued[2])),
        client.get(f"{AUTH}/users", headers=ADMIN),
        client.post(f"{AUTH}/users/{account['user_id']}/roles", json={"grant": ["admin"]},
                    headers=ADMIN),
        client.get("/api/v1/jobs", headers=key_header(issued[0])),
        client.post(f"{AUTH}/register", json={"username": "alice", "password": password}),
        client.post(f"{AUTH}/register", json={"username": "bob", "password": password[:5]}),
        client.post(f"{AUTH}/login", json={"username": password, "password": password}),
        client.post(f"{AUTH}/generate-api-key", content=password,
                    headers=key_header(issued[0])),
        client.post(f"{AUTH}/users/{account['user_id']}/revoke-keys", headers=ADMIN),
        client.get(f"{AUTH}/verify-api-key", headers=key_header(issued[0])),
        client.get("/openapi.json"),
    ]  # fmt: skip
    assert [r.status_code for r in later] == [
        401, 200, 200, 200, 200, 200, 409, 422, 401, 422, 200, 401, 200,
    ]  # fmt: skip

    coord: Coordinator = client.app.state.coordinator  # type: ignore[attr-defined]
    stored = database_text(coord.store.db)
    raw = database_files(database_url)
    assert "$argon2id$" in stored
    assert "registered account alice" in caplog.text  # the logs were captured
    secrets = [password, *issued]
    for secret in secrets:
        assert secret not in stored
        assert secret.encode() not in raw
        assert secret not in caplog.text
        for reply in later:
            assert secret not in reply.text
            assert all(secret not in value for value in reply.headers.values())


def test_the_openapi_document_describes_the_accounts_api(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for path, method in [
        ("/register", "post"),
        ("/login", "post"),
        ("/generate-api-key", "post"),
        ("/verify-api-key", "get"),
        ("/users", "get"),
        ("/users/{user_id}/roles", "post"),
        ("/users/{user_id}/revoke-keys", "post"),
    ]:
        assert method in paths[AUTH + path], path
    register_op = paths[f"{AUTH}/register"]["post"]
    body = register_op["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/Registration")
    created = register_op["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["$ref"].endswith("/AccountKey")
    schemas = doc["components"]["schemas"]
    assert {"Registration", "Login", "AccountKey", "NewKey", "Identity", "RoleChange"} <= set(
        schemas
    )
    assert set(schemas["Role"]["enum"]) == {"admin", "user", "worker", "validator"}
