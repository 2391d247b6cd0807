"""Worker registration with a real coordinator process and the real CLI.

`hivescribe worker register` trades an enrollment token for a worker account whose key is
saved 0600; `worker start` runs a real worker with it; `worker status` checks it; `worker
unregister` revokes it and deletes the file. Wrong tokens, user keys and garbage names are
refused, and neither key nor token reaches the coordinator's log.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from hivescribe.cli.main import app
from tests.acceptance.harness import (
    ADMIN_TOKEN,
    WORKER_NAME,
    WORKER_TOKEN,
    CoordinatorProc,
    clean_env,
    create_echo_job,
    free_port,
    wait_for,
)

pytestmark = pytest.mark.slow

HIVESCRIBE = [sys.executable, "-m", "hivescribe"]
ENROLL = "enrollment-secret-token-1"
SUBCOMMANDS = ("register", "start", "status", "unregister")


def hs(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The CLI with its config directory under ``home`` (where worker.json goes by default)."""
    return subprocess.run(
        [*HIVESCRIBE, *args],
        env=clean_env(COLUMNS="200", NO_COLOR="1", XDG_CONFIG_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], phrase: str, code: int = 1) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    assert phrase in " ".join(output.split()), output


@pytest.fixture
def coord(coordinator_factory: Callable[..., CoordinatorProc]) -> CoordinatorProc:
    return coordinator_factory(
        auth={
            "worker_tokens": [{"token": WORKER_TOKEN, "name": WORKER_NAME}],
            "admin_tokens": [ADMIN_TOKEN],
            "enrollment_tokens": [ENROLL],
        }
    )


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help_lists_every_flag_and_variable(sub: str, tmp_path: Path) -> None:
    text = ok(hs("worker", sub, "--help", home=tmp_path))
    command: Any = typer.main.get_command(app).commands["worker"].commands[sub]  # type: ignore[attr-defined]
    for param in command.params:
        for opt in param.opts:
            assert opt in text or not opt.startswith("--"), f"{opt} missing from {sub} --help"
        if isinstance(param.envvar, str):
            assert param.envvar in text
    assert "HIVESCRIBE_CREDENTIALS" in text


def test_worker_help_teaches_both_uses(tmp_path: Path) -> None:
    text = " ".join(ok(hs("worker", "--help", home=tmp_path)).split())
    assert "hivescribe worker --server" in text and "--token" in text
    assert "hivescribe worker register" in text and "hivescribe worker start" in text
    for sub in SUBCOMMANDS:
        assert sub in text


def test_register_start_status_unregister(
    coord: CoordinatorProc, tmp_path: Path, processes: list[Any]
) -> None:
    home = tmp_path / "config-home"
    made = hs(
        "worker", "register", "--server", coord.http_url, "--name", "GPU Box 1",
        "--enrollment-token", ENROLL, home=home,
    )  # fmt: skip
    out = ok(made)
    path = home / "hivescribe" / "worker.json"
    assert str(path) in " ".join(out.split()) and "hivescribe worker start" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    key = saved["api_key"]
    assert saved["server"] == coord.http_url and saved["name"] == "GPU Box 1"
    assert key not in made.stdout + made.stderr

    as_worker = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=coord.http_url, timeout=30) as http:
        who = http.get("/api/v1/auth/verify-api-key", headers=as_worker).json()
        assert who["user_id"] == saved["worker_id"]
        assert (who["username"], who["roles"]) == ("gpu-box-1", ["worker"])

    # a real worker started from the saved credentials does the work
    with coord.admin() as admin:
        job_id = create_echo_job(admin, 20)
        with (tmp_path / "started.log").open("ab") as log:
            worker = subprocess.Popen(
                [*HIVESCRIBE, "worker", "start", "--task", "echo",
                 "--state-dir", str(tmp_path / "state")],
                env=clean_env(XDG_CONFIG_HOME=str(home)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        processes.append(worker)
        wait_for(lambda: admin.get(f"/api/v1/jobs/{job_id}").json()["counts"]["done"] == 20, 60)
        workers = admin.get("/api/v1/workers").json()["workers"]
        assert {(w["name"], w["contributor_id"]) for w in workers} == {("GPU Box 1", "gpu-box-1")}
        worker.terminate()
        assert worker.wait(timeout=30) == 0, (tmp_path / "started.log").read_text()

    status = ok(hs("worker", "status", home=home))
    assert "coordinator: ok" in status and "gpu-box-1" in status
    assert key[:10] in status and key not in status

    gone = ok(hs("worker", "unregister", home=home))
    assert "1 key(s) revoked" in gone and not path.exists()
    with httpx.Client(base_url=coord.http_url, timeout=30) as http:
        assert http.get("/api/v1/auth/verify-api-key", headers=as_worker).status_code == 401
        claim = {"worker_id": "w", "name": "w", "max_items": 1, "wait_s": 0}
        assert http.post("/api/v1/worker/claim", json=claim, headers=as_worker).status_code == 401
    refused(hs("worker", "status", home=home), "run `hivescribe worker register` first", 2)
    refused(hs("worker", "start", home=home), "run `hivescribe worker register` first", 2)

    coord.kill()
    coord_log = coord.log_path.read_text(errors="replace")
    assert "registered worker gpu-box-1" in " ".join(coord_log.split())
    unwrapped = "".join(coord_log.split())  # rich wraps long lines: a secret could be split
    for secret in (key, ENROLL):
        assert secret not in coord_log and secret not in unwrapped


def test_register_refusals(coord: CoordinatorProc, tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / "hivescribe" / "worker.json"
    register = ("worker", "register", "--server", coord.ws_url, "--name", "box")

    refused(hs(*register, "--enrollment-token", "wrong", home=home), "wrong enrollment token")
    refused(hs(*register, home=home), "exactly one of --enrollment-token", 2)
    refused(hs(*register, "--enrollment-token", ENROLL, "--admin-key", "k", home=home), "one", 2)
    assert not path.exists()

    with httpx.Client(base_url=coord.http_url, timeout=30) as http:
        user = http.post("/api/v1/auth/register", json={"username": "alice", "password": "x" * 12})
        user_key = user.json()["api_key"]
        as_user = {"Authorization": f"Bearer {user_key}"}
        enroll = {"Authorization": f"Bearer {ENROLL}"}
        reply = http.post("/api/v1/workers/register", json={"name": "box2"}, headers=as_user)
        assert reply.status_code == 403, reply.text
        assert http.post("/api/v1/workers/register", json={"name": "box2"}).status_code == 401
        for body, code in [
            ({"name": ""}, 422),
            ({"name": "x" * 201}, 422),
            ({}, 422),
            ({"name": "box2", "roles": ["admin"]}, 422),
            ({"name": "!!!"}, 400),
            ({"name": "Admin"}, 400),
            ({"name": "x" * 65}, 400),
            ({"name": "ALICE"}, 409),
            ({"name": WORKER_NAME}, 409),  # a config worker token's contributor
        ]:
            reply = http.post("/api/v1/workers/register", json=body, headers=enroll)
            assert reply.status_code == code, (body, reply.text)
    refused(hs(*register, "--admin-key", user_key, home=home), "403")

    # an admin registers one by hand; the saved file is not overwritten by accident
    ok(hs(*register, "--admin-key", ADMIN_TOKEN, home=home))
    saved = json.loads(path.read_text())
    refused(hs(*register, "--admin-key", ADMIN_TOKEN, home=home), "already holds", 2)
    refused(hs(*register, "--admin-key", ADMIN_TOKEN, "--force", home=home), "'box' is taken")

    with httpx.Client(base_url=coord.http_url, timeout=30) as http:
        other = http.post("/api/v1/workers/register", json={"name": "other"}, headers=enroll).json()
        as_box = {"Authorization": f"Bearer {saved['api_key']}"}
        as_other = {"Authorization": f"Bearer {other['api_key']}"}
        # a worker unregisters itself only; an admin may unregister any worker, not a user
        assert (
            http.delete(f"/api/v1/workers/{other['worker_id']}", headers=as_box).status_code == 403
        )
        assert (
            http.delete(f"/api/v1/workers/{user.json()['user_id']}", headers=as_user).status_code
            == 403
        )
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert (
            http.delete(f"/api/v1/workers/{user.json()['user_id']}", headers=admin).status_code
            == 409
        )
        assert http.delete(f"/api/v1/workers/{'0' * 32}", headers=admin).status_code == 404
        done = http.post(f"/api/v1/workers/{other['worker_id']}/unregister", headers=admin)
        assert done.status_code == 200 and done.json()["revoked"] == 1 and done.json()["disabled"]
        assert http.get("/api/v1/auth/verify-api-key", headers=as_other).status_code == 401
        # the box's key, revoked by an admin: status says so, and unregister tidies up
        http.delete(f"/api/v1/workers/{saved['worker_id']}", headers=admin).raise_for_status()
    refused(hs("worker", "status", home=home), "key revoked")
    assert "already refuses this key" in ok(hs("worker", "unregister", home=home))
    assert not path.exists()


def test_status_of_an_unreachable_coordinator(tmp_path: Path) -> None:
    credentials = tmp_path / "w.json"
    credentials.write_text(
        json.dumps(
            {"server": f"http://127.0.0.1:{free_port()}", "worker_id": "f" * 32,
             "name": "w", "api_key": "hs_" + "k" * 43}
        )
    )  # fmt: skip
    result = hs("worker", "status", "--credentials", str(credentials), home=tmp_path)
    refused(result, "coordinator: unreachable")
    assert "hs_kkkkkkk..." in result.stdout and "k" * 43 not in result.stdout
    credentials.write_text("{not json")
    refused(hs("worker", "status", "--credentials", str(credentials), home=tmp_path),
            "not valid JSON", 2)  # fmt: skip
