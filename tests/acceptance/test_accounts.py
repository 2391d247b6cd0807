"""Accounts through the real CLI and a real coordinator process (real argon2 parameters).

`hivescribe users create|list|grant|revoke-key` on SQLite and PostgreSQL; a worker account made
by the CLI runs a real worker process; keys revoked by the CLI stop working in the running
coordinator at once; and no key or password reaches the coordinator's log, its database
files, or the CLI's output after the one that issued it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from hivescribe.cli.main import app
from tests.acceptance.harness import ADMIN_TOKEN, CoordinatorProc, clean_env, wait_for

pytestmark = pytest.mark.slow

HIVESCRIBE = [sys.executable, "-m", "hivescribe"]
PASSWORD = "a-real-argon2-password"
USERS_COMMANDS = (("users",), ("users", "create"), ("users", "list"), ("users", "grant"),
                  ("users", "revoke-key"))  # fmt: skip


def hs(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HIVESCRIBE, *args],
        env=env if env is not None else clean_env(COLUMNS="200", NO_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def clean_failure(result: subprocess.CompletedProcess[str], phrase: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert phrase in " ".join(output.split()), output


# -- --help ------------------------------------------------------------------------------------


def _declared(path: tuple[str, ...]) -> tuple[list[str], set[str]]:
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    flags = [
        opt
        for param in command.params
        if param.param_type_name == "option"
        for opt in param.opts
        if opt.startswith("--")
    ]
    env_vars = {param.envvar for param in command.params if isinstance(param.envvar, str)}
    return flags, env_vars


@pytest.mark.parametrize("path", USERS_COMMANDS, ids=" ".join)
def test_users_help_lists_every_flag_and_variable(path: tuple[str, ...]) -> None:
    text = ok(hs(*path, "--help"))
    assert "Usage:" in text and " ".join(path) in text
    flags, env_vars = _declared(path)
    if path != ("users",):
        assert {"HIVESCRIBE_DATA_DIR", "HIVESCRIBE_DATABASE_URL", "HIVESCRIBE_CONFIG"} <= env_vars
    for flag in flags:
        assert flag in text, f"{flag} missing from `{' '.join(path)} --help`"
    for var in env_vars:
        assert var in text, f"{var} missing from `{' '.join(path)} --help`"


def test_users_is_listed_in_the_root_help() -> None:
    assert "users" in ok(hs("--help"))


# -- the CLI on both databases -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """How the CLI finds the database: --data-dir, or HIVESCRIBE_DATABASE_URL (as env)."""
    if request.param == "postgres":
        return ["env:" + request.getfixturevalue("pg_url")]
    return ["--data-dir", str(tmp_path / "data")]


def users_cmd(where: list[str], *args: str, stdin: str | None = None) -> Any:
    if where[0].startswith("env:"):
        env = clean_env(COLUMNS="200", NO_COLOR="1", HIVESCRIBE_DATABASE_URL=where[0][4:])
        return hs("users", *args, env=env, stdin=stdin)
    return hs("users", *args, *where, stdin=stdin)


def test_users_create_list_grant_and_revoke(where: list[str]) -> None:
    created = users_cmd(where, "create", "Alice", "--role", "admin", "--role", "worker")
    key = ok(created).strip()
    assert key.startswith("hs_") and len(key) == 46
    assert "shown only this once" in created.stderr and key not in created.stderr

    bob = json.loads(
        ok(users_cmd(where, "create", "bob", "--password-stdin", "--json", stdin=PASSWORD + "\n"))
    )
    assert bob["username"] == "bob" and bob["roles"] == ["user"]

    listing = json.loads(ok(users_cmd(where, "list", "--json", "--keys")))
    users = {u["username"]: u for u in listing["users"]}
    assert users["alice"]["roles"] == ["admin", "worker"] and not users["alice"]["has_password"]
    assert users["bob"]["has_password"] and users["bob"]["live_keys"] == 1
    assert {k["prefix"] for k in listing["keys"]} == {key[:10], bob["api_key"][:10]}
    text = ok(users_cmd(where, "list", "--keys"))
    assert "alice" in text and users["alice"]["user_id"] in text and bob["key_id"] in text
    for output in (json.dumps(listing), text):
        assert key not in output and bob["api_key"] not in output and PASSWORD not in output

    assert ok(users_cmd(where, "grant", "bob", "validator", "worker")).strip() == (
        "bob: user, validator, worker"
    )
    assert ok(users_cmd(where, "grant", bob["user_id"], "user", "--revoke")).strip() == (
        "bob: validator, worker"
    )
    assert "revoked 1 key of bob" in ok(
        users_cmd(where, "revoke-key", "bob", "--key-id", bob["key_id"])
    )
    assert "revoked 0 keys of bob" in ok(users_cmd(where, "revoke-key", "bob", "--all"))
    assert "revoked 1 key of alice" in ok(users_cmd(where, "revoke-key", "ALICE", "--all"))
    listing = json.loads(ok(users_cmd(where, "list", "--json")))
    assert [u["live_keys"] for u in listing["users"]] == [0, 0]


def test_users_cli_errors_are_one_clear_line(where: list[str]) -> None:
    ok(users_cmd(where, "create", "alice"))
    cases = [
        (("create", "a b"), "3 to 64 characters"),
        (("create", "ALICE"), "'alice' is taken"),
        (("create", "carol", "--role", "root"), "unknown role 'root'"),
        (("create", "carol", "--password-stdin"), "8 to 1024 characters"),
        (("create", "carol", "--password", "--password-stdin"), "not both"),
        (("grant", "nobody", "admin"), "no user 'nobody'"),
        (("grant", "alice", "superuser"), "unknown role 'superuser'"),
        (("revoke-key", "alice"), "exactly one of --key-id ID or --all"),
        (("revoke-key", "alice", "--all", "--key-id", "x"), "exactly one"),
        (("revoke-key", "alice", "--key-id", "f" * 32), "has no key"),
        (("revoke-key", "nobody", "--all"), "no user 'nobody'"),
    ]
    for args, phrase in cases:
        clean_failure(users_cmd(where, *args, stdin=""), phrase)
    listing = json.loads(ok(users_cmd(where, "list", "--json")))
    assert [u["username"] for u in listing["users"]] == ["alice"]  # nothing half-made


def test_users_list_without_a_database_says_where_it_looked(tmp_path: Path) -> None:
    clean_failure(hs("users", "list", "--data-dir", str(tmp_path / "nowhere")), "no hivescribe.db")
    assert not (tmp_path / "nowhere").exists()


def test_users_reads_the_database_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "coord.yaml"
    config.write_text(f"orchestrator:\n  storage:\n    data_dir: {tmp_path / 'from-config'}\n")
    ok(hs("users", "create", "alice", "--config", str(config)))
    assert (tmp_path / "from-config" / "hivescribe.db").exists()
    listing = json.loads(ok(hs("users", "list", "--json", "--config", str(config))))
    assert [u["username"] for u in listing["users"]] == ["alice"]


# -- with a running coordinator ----------------------------------------------------------------


def test_accounts_with_a_real_coordinator_and_worker(
    tmp_path: Path,
    coordinator_factory: Callable[..., CoordinatorProc],
    worker_factory: Callable[..., subprocess.Popen[bytes]],
) -> None:
    data = tmp_path / "data"
    made = hs("users", "create", "gpu-box", "--role", "worker", "--json", "--data-dir", str(data))
    worker_key = json.loads(ok(made))["api_key"]
    coord = coordinator_factory(data_dir=data)
    base = coord.http_url
    secrets = [worker_key, PASSWORD]

    with httpx.Client(base_url=base, timeout=30) as http:
        account = http.post(
            "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
        )
        assert account.status_code == 201, account.text
        secrets.append(account.json()["api_key"])
        login = http.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
        assert login.status_code == 200, login.text
        user_key = login.json()["api_key"]
        secrets.append(user_key)
        wrong = http.post("/api/v1/auth/login", json={"username": "alice", "password": "nope-nope"})
        assert wrong.status_code == 401

        as_user = {"X-API-Key": user_key}
        as_worker = {"Authorization": f"Bearer {worker_key}"}
        claim = {"worker_id": "w", "name": "w", "max_items": 1, "wait_s": 0}
        assert http.post("/api/v1/worker/claim", json=claim, headers=as_user).status_code == 403
        assert http.get("/api/v1/jobs", headers=as_worker).status_code == 403
        who = http.get("/api/v1/auth/verify-api-key", headers=as_worker).json()
        assert (who["username"], who["roles"]) == ("gpu-box", ["worker"])

        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        job = http.post("/api/v1/jobs", json={"task_type": "echo", "dataset": "d"}, headers=admin)
        job_id = job.json()["job_id"]
        items = [{"item_key": f"k{i}", "input": {"text": f"t{i}"}} for i in range(5)]
        http.post(f"/api/v1/jobs/{job_id}/items", json={"items": items}, headers=admin)

        worker_factory(coord.ws_url, "gpu-box-1", token=worker_key)
        wait_for(
            lambda: http.get(f"/api/v1/jobs/{job_id}", headers=admin).json()["counts"]["done"] == 5,
            timeout_s=60,
        )
        contributors = {
            w["contributor_id"]
            for w in http.get("/api/v1/workers", headers=admin).json()["workers"]
        }
        assert contributors == {"gpu-box"}

        # After the answer that issued them, no answer shows a key or a password again.
        task = http.post(
            "/api/v1/summarization", data={"text": "A text. Another one."}, headers=as_user
        )
        assert task.status_code == 201, task.text
        task_id = task.json()["task_id"]
        later = [
            http.get("/api/v1/auth/verify-api-key", headers=as_user),
            http.get("/api/v1/auth/verify-api-key", headers=as_worker),
            http.get("/api/v1/auth/users", headers=admin),
            http.get("/api/v1/workers", headers=admin),
            http.get("/api/v1/tasks", headers=as_user),
            http.get(f"/api/v1/task/{task_id}/status", headers=as_user),
            http.get(f"/api/v1/task/{task_id}/responses", headers=admin),
            http.get(f"/api/v1/jobs/{job_id}", headers=admin),
            http.get("/api/v1/jobs", headers=admin),
            http.get("/api/v1/miners", headers=as_user),
            http.get("/api/v1/miners/performance", headers=admin),
            http.get("/api/v1/miners/network-status", headers=admin),
            http.get("/api/v1/metrics", headers=admin),
            http.get("/api/v1/metrics/json", headers=admin),
            http.get("/api/v1/files/stats", headers=as_user),
            http.get("/openapi.json"),
        ]
        for answer in later:
            assert answer.status_code == 200, (answer.url, answer.text)
            for secret in secrets:
                assert secret not in answer.text, answer.url

        # the CLI revokes in the database; the running coordinator refuses the key at once
        ok(hs("users", "revoke-key", "gpu-box", "--all", "--data-dir", str(data)))
        who = http.get("/api/v1/auth/verify-api-key", headers=as_worker)
        assert who.status_code == 401

    coord.kill()
    log = coord.log_path.read_text(errors="replace")
    assert "registered account alice" in " ".join(log.split())
    unwrapped = "".join(log.split())  # rich wraps long lines: a key could be split
    raw = b"".join(p.read_bytes() for p in data.glob("hivescribe.db*"))
    listing = ok(hs("users", "list", "--json", "--keys", "--data-dir", str(data)))
    for secret in secrets:
        assert secret not in log and secret not in unwrapped
        assert secret.encode() not in raw
        assert secret not in listing
