"""The `hivescribe` command line, run as real processes.

Help texts, generate-cert, TLS between real coordinator and worker processes, the admin
commands (submit, status, jobs cancel/retry-failed), export, the embedded `run`, and the
precedence flags > HIVESCRIBE_* > config file.
"""

from __future__ import annotations

import csv
import json
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
import typer
import yaml

from hivescribe.cli.main import app
from tests.acceptance.harness import (
    ADMIN_TOKEN,
    WORKER_NAME,
    CoordinatorProc,
    clean_env,
    create_echo_job,
    free_port,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

HIVESCRIBE = [sys.executable, "-m", "hivescribe"]
COUNT_KEYS = {"pending", "leased", "done", "failed", "cancelled"}
DATASET_FILES = ("captions.parquet", "jobs.parquet", "contributors.parquet", "items.parquet")


def hs(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `hivescribe ARGS` to completion with no HIVESCRIBE_* variable of ours leaking in."""
    return subprocess.run(
        [*HIVESCRIBE, *args],
        env=env if env is not None else clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> str:
    """A non-zero exit with a message and no traceback; returns stdout + stderr."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert output.strip(), "a failure must say what went wrong"
    return output


def counts(client: httpx.Client, job_id: str) -> dict[str, int]:
    reply = client.get(f"/api/v1/jobs/{job_id}")
    reply.raise_for_status()
    result: dict[str, int] = reply.json()["counts"]
    return result


def wait_finished(client: httpx.Client, job_id: str, total: int, timeout_s: float = 30) -> dict:
    def finished() -> dict[str, int] | None:
        c = counts(client, job_id)
        return c if c["done"] + c["failed"] + c["cancelled"] == total else None

    result: dict[str, int] = wait_for(finished, timeout_s)
    return result


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        writer.writerows(rows)
    return path


# -- --help ----------------------------------------------------------------------------------

COMMANDS = (
    ("run",),
    ("orchestrator",),
    ("serve",),
    ("worker",),
    ("submit",),
    ("status",),
    ("jobs", "cancel"),
    ("jobs", "retry-failed"),
    ("export",),
    ("generate-cert",),
)

# At least these must be advertised (the rest come from the commands' own declarations).
REQUIRED_ENV_VARS = {
    ("worker",): {"HIVESCRIBE_SERVER", "HIVESCRIBE_TOKEN"},
    ("orchestrator",): {"HIVESCRIBE_DATABASE_URL", "HIVESCRIBE_PORT", "HIVESCRIBE_CERT"},
    ("serve",): {"HIVESCRIBE_DATABASE_URL"},
    ("submit",): {"HIVESCRIBE_SERVER", "HIVESCRIBE_TOKEN"},
    ("status",): {"HIVESCRIBE_SERVER", "HIVESCRIBE_TOKEN"},
    ("jobs", "cancel"): {"HIVESCRIBE_SERVER", "HIVESCRIBE_TOKEN"},
    ("jobs", "retry-failed"): {"HIVESCRIBE_SERVER", "HIVESCRIBE_TOKEN"},
    ("export",): {"HIVESCRIBE_DATA_DIR", "HIVESCRIBE_DATABASE_URL"},
    ("run",): {"HIVESCRIBE_DATA_DIR"},
}


def declared(path: tuple[str, ...]) -> tuple[list[str], set[str]]:
    """The command's option flags and the environment variables its parameters read."""
    # Typer vendors its own click: look at the objects by their attributes, not their types.
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    flags: list[str] = []
    env_vars: set[str] = set()
    for param in command.params:
        if param.param_type_name == "option":
            flags.extend(opt for opt in param.opts if opt.startswith("--"))
        envvar = param.envvar
        if isinstance(envvar, str):
            env_vars.add(envvar)
        elif envvar:
            env_vars.update(envvar)
    return flags, env_vars


@pytest.fixture(scope="module")
def help_texts() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every command's --help, run side by side to keep the suite quick."""
    env = clean_env(COLUMNS="200")
    procs = {
        path: subprocess.Popen(
            [*HIVESCRIBE, *path, "--help"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in COMMANDS
    }
    results = {}
    for path, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        results[path] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help(
    path: tuple[str, ...], help_texts: dict[tuple[str, ...], subprocess.CompletedProcess[str]]
) -> None:
    result = help_texts[path]
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Usage:" in text
    assert " ".join(path) in text
    flags, env_vars = declared(path)
    assert REQUIRED_ENV_VARS.get(path, set()) <= env_vars
    for flag in flags:
        assert flag in text, f"{flag} missing from `{' '.join(path)} --help`"
    for var in env_vars:
        assert var in text, f"{var} missing from `{' '.join(path)} --help`"


def test_root_help_lists_the_commands() -> None:
    result = hs("--help")
    assert result.returncode == 0, result.stderr
    for name in ("run", "orchestrator", "worker", "submit", "status", "jobs", "export"):
        assert name in result.stdout
    assert "generate-cert" in result.stdout


# -- generate-cert ---------------------------------------------------------------------------


def test_generate_self_signed(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    out = tmp_path / "certs"
    result = hs("generate-cert", "--self-signed", "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    cert_path, key_path = out / "cert.pem", out / "key.pem"
    assert cert_path.is_file() and key_path.is_file()

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert cert.not_valid_after_utc > cert.not_valid_before_utc

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_generate_self_signed_over_an_old_key_keeps_it_private(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    out.mkdir()
    (out / "key.pem").write_text("old")
    (out / "key.pem").chmod(0o644)
    result = hs("generate-cert", "--self-signed", "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600


def test_generate_cert_without_certbot(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = clean_env(PATH=str(empty_bin))
    assert shutil.which("certbot", path=env["PATH"]) is None
    result = hs("generate-cert", "--domain", "x.example", "--email", "a@b", env=env, cwd=tmp_path)
    output = assert_clean_failure(result)
    assert "certbot is not installed" in output


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--self-signed", "--domain", "x.example", "--email", "a@b"),
    ],
    ids=["neither", "both"],
)
def test_generate_cert_needs_exactly_one_mode(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = hs("generate-cert", *args, "--output-dir", str(tmp_path / "certs"), cwd=tmp_path)
    output = assert_clean_failure(result)
    assert "--self-signed" in output and "--domain" in output
    assert not (tmp_path / "certs").exists()


def test_generate_cert_domain_needs_email(tmp_path: Path) -> None:
    result = hs("generate-cert", "--domain", "x.example", cwd=tmp_path)
    assert "--email" in assert_clean_failure(result)


# -- TLS end to end --------------------------------------------------------------------------


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path]:
    from hivescribe.cli.certs import write_self_signed

    return write_self_signed(tmp_path / "certs", ["localhost", "127.0.0.1"])


@pytest.fixture
def tls_coord(
    coordinator_factory: Callable[..., CoordinatorProc], certs: tuple[Path, Path]
) -> Iterator[CoordinatorProc]:
    cert, key = certs
    yield coordinator_factory(args=("--cert", str(cert), "--key", str(key)), scheme="https")


def test_tls_coordinator_refuses_plain_http(tls_coord: CoordinatorProc) -> None:
    assert httpx.get(f"{tls_coord.http_url}/health", verify=False).status_code == 200
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_coord.port}/health", timeout=3)
    with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        httpx.get(f"{tls_coord.http_url}/health", timeout=3)


@pytest.mark.parametrize("transport", ["wss", "https"])
def test_tls_worker_with_no_verify_ssl_completes_a_job(
    tls_coord: CoordinatorProc,
    worker_factory: Callable[..., subprocess.Popen[bytes]],
    transport: str,
) -> None:
    server = tls_coord.ws_url if transport == "wss" else tls_coord.http_url
    assert server.startswith(f"{transport}://")
    with tls_coord.admin() as admin:
        job_id = create_echo_job(admin, 25)
        worker_factory(server, "w1", "--no-verify-ssl")
        final = wait_finished(admin, job_id, 25)
        assert final["done"] == 25
        workers = admin.get("/api/v1/workers").json()["workers"]
    assert any(w.get("name") == "w1" for w in workers), workers


def test_tls_worker_that_verifies_refuses_a_self_signed_cert(
    tls_coord: CoordinatorProc,
    worker_factory: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    with tls_coord.admin() as admin:
        job_id = create_echo_job(admin, 5)
        proc = worker_factory(tls_coord.ws_url, "strict")
        log = tmp_path / "strict.log"

        def complained() -> bool:
            text = log.read_text(errors="replace") if log.exists() else ""
            return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text

        wait_for(complained, 20)
        assert proc.poll() is None, "the worker keeps retrying rather than exiting"
        proc.kill()
        proc.wait(timeout=10)
        assert counts(admin, job_id) == {
            "pending": 5,
            "leased": 0,
            "done": 0,
            "failed": 0,
            "cancelled": 0,
        }
        assert admin.get("/api/v1/workers").json()["workers"] == []


def test_no_ssl_serves_plain_http_despite_certs(
    coordinator_factory: Callable[..., CoordinatorProc],
    worker_factory: Callable[..., subprocess.Popen[bytes]],
    certs: tuple[Path, Path],
) -> None:
    cert, key = certs
    # Certificates in the config file and on the command line; --no-ssl wins over both.
    coord = coordinator_factory(
        args=("--no-ssl", "--cert", str(cert), "--key", str(key)),
        scheme="http",
        ssl={"cert": str(cert), "key": str(key)},
    )
    assert httpx.get(f"http://127.0.0.1:{coord.port}/health").status_code == 200
    with coord.admin() as admin:
        job_id = create_echo_job(admin, 5)
        worker_factory(coord.ws_url, "plain")
        assert wait_finished(admin, job_id, 5)["done"] == 5


def test_tls_from_the_config_file(
    coordinator_factory: Callable[..., CoordinatorProc], certs: tuple[Path, Path]
) -> None:
    cert, key = certs
    coord = coordinator_factory(args=(), scheme="https", ssl={"cert": str(cert), "key": str(key)})
    assert httpx.get(f"{coord.http_url}/health", verify=False).status_code == 200


def test_tls_with_a_missing_key_file_is_a_clear_error(
    tmp_path: Path, certs: tuple[Path, Path]
) -> None:
    config = write_config(tmp_path / "c.yaml", tmp_path / "data")
    result = hs(
        "orchestrator",
        "--config",
        str(config),
        "--port",
        str(free_port()),
        "--cert",
        str(certs[0]),
        "--key",
        str(tmp_path / "nope.pem"),
        timeout=30,
    )
    output = assert_clean_failure(result)
    assert "nope.pem" in output


# -- submit, status, jobs --------------------------------------------------------------------


@pytest.fixture
def coord(coordinator_factory: Callable[..., CoordinatorProc]) -> CoordinatorProc:
    return coordinator_factory()


def admin_args(coord: CoordinatorProc) -> list[str]:
    return ["--server", coord.http_url, "--token", ADMIN_TOKEN]


def submit_json(coord: CoordinatorProc, source: Path, *extra: str) -> str:
    result = hs(
        "submit", *admin_args(coord), "--task", "echo", "--source", str(source), *extra, "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == ["job_id"]
    assert isinstance(data["job_id"], str) and data["job_id"]
    return str(data["job_id"])


def status_json(coord: CoordinatorProc, job_id: str) -> dict[str, Any]:
    result = hs("status", *admin_args(coord), "--job", job_id, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_submit_status_and_cancel(coord: CoordinatorProc, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "lines.csv", [(f"id{i}", f"line {i}") for i in range(12)])
    job_id = submit_json(coord, source, "--key-column", "id")

    status = status_json(coord, job_id)
    assert status["job_id"] == job_id
    assert isinstance(status["status"], str)
    assert set(status["counts"]) == COUNT_KEYS
    assert status["counts"] == {"pending": 12, "leased": 0, "done": 0, "failed": 0, "cancelled": 0}

    listing = hs("status", *admin_args(coord), "--json")
    assert listing.returncode == 0, listing.stderr
    assert job_id in listing.stdout

    result = hs("jobs", "cancel", job_id, *admin_args(coord))
    assert result.returncode == 0, result.stderr
    assert "12" in result.stdout
    status = status_json(coord, job_id)
    assert status["counts"] == {"pending": 0, "leased": 0, "done": 0, "failed": 0, "cancelled": 12}
    assert status["status"] == "cancelled"


def test_admin_commands_with_a_wrong_token_or_job(coord: CoordinatorProc) -> None:
    result = hs("status", "--server", coord.http_url, "--token", "not-a-token", "--json")
    output = assert_clean_failure(result)
    assert "401" in output
    assert "not-a-token" not in output

    result = hs("jobs", "cancel", "no-such-job", *admin_args(coord))
    assert "404" in assert_clean_failure(result)


def test_retry_failed(
    coord: CoordinatorProc,
    worker_factory: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    source = write_csv(tmp_path / "lines.csv", [(f"id{i}", f"line {i}") for i in range(10)])
    job_id = submit_json(coord, source, "--key-column", "id", "--param", 'fail_keys=["id3","id7"]')
    with coord.admin() as admin:
        worker = worker_factory(coord.ws_url, "w1")
        final = wait_finished(admin, job_id, 10)
        assert final == {"pending": 0, "leased": 0, "done": 8, "failed": 2, "cancelled": 0}
        failed = admin.get(f"/api/v1/jobs/{job_id}/failed").json()["items"]
        assert sorted(f["item_key"] for f in failed) == ["id3", "id7"]
        assert {f["attempts"] for f in failed} == {1}  # permanent: no second attempt

        # Without a worker, the retried items wait in pending with a fresh set of attempts.
        worker.terminate()
        worker.wait(timeout=30)
        result = hs("jobs", "retry-failed", job_id, *admin_args(coord))
        assert result.returncode == 0, result.stderr
        assert "2" in result.stdout
        status = status_json(coord, job_id)
        assert status["counts"] == {
            "pending": 2,
            "leased": 0,
            "done": 8,
            "failed": 0,
            "cancelled": 0,
        }
        assert admin.get(f"/api/v1/jobs/{job_id}/failed").json()["items"] == []

        # A worker takes them again; they fail again, after one attempt (the count was reset).
        worker_factory(coord.ws_url, "w2")
        final = wait_finished(admin, job_id, 10)
        assert final == {"pending": 0, "leased": 0, "done": 8, "failed": 2, "cancelled": 0}
        failed = admin.get(f"/api/v1/jobs/{job_id}/failed").json()["items"]
        assert sorted(f["item_key"] for f in failed) == ["id3", "id7"]
        assert {f["attempts"] for f in failed} == {1}


# -- export ----------------------------------------------------------------------------------


def test_export_after_a_job(
    coordinator_factory: Callable[..., CoordinatorProc],
    worker_factory: Callable[..., subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    coord = coordinator_factory(data_dir=data_dir)
    with coord.admin() as admin:
        job_id = create_echo_job(admin, 30)
        worker_factory(coord.ws_url, "w1")
        assert wait_finished(admin, job_id, 30)["done"] == 30

    out = tmp_path / "out"
    result = hs("export", "--data-dir", str(data_dir), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = {name: pq.read_table(out / name).num_rows for name in DATASET_FILES}
    assert rows == {
        "captions.parquet": 30,
        "jobs.parquet": 1,
        "contributors.parquet": 1,
        "items.parquet": 30,
    }
    captions = pq.read_table(out / "captions.parquet").to_pylist()
    assert {c["job_id"] for c in captions} == {job_id}
    assert {c["contributor_id"] for c in captions} == {WORKER_NAME}
    assert len({c["item_key"] for c in captions}) == 30
    assert sorted(c["caption"] for c in captions) == sorted(f"text {i}" for i in range(30))
    for name in DATASET_FILES:
        assert str(out / name) in result.stdout


def test_export_without_a_database(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = hs("export", "--data-dir", str(empty), "--output", str(tmp_path / "out"))
    output = assert_clean_failure(result)
    assert "hivescribe.db" in output
    assert not (tmp_path / "out").exists()


# -- run (embedded) --------------------------------------------------------------------------


def test_run_and_resume(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "rows.csv", [(str(i), f"row {i}") for i in range(300)])
    data_dir = tmp_path / "data"
    args = ("run", str(source), "--task", "echo", "--workers", "2", "--data-dir", str(data_dir))

    first = hs(*args, timeout=90, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "created" in first.stderr
    captions = pq.read_table(data_dir / "dataset" / "captions.parquet")
    assert captions.num_rows == 300
    assert len(set(captions.column("item_key").to_pylist())) == 300
    for name in DATASET_FILES:
        assert (data_dir / "dataset" / name).is_file()

    second = hs(*args, timeout=90, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming" in second.stderr
    assert " 0 new items" in second.stderr
    assert pq.read_table(data_dir / "dataset" / "captions.parquet").num_rows == 300
    assert pq.read_table(data_dir / "dataset" / "items.parquet").num_rows == 300


def test_run_with_a_missing_source(tmp_path: Path) -> None:
    result = hs(
        "run",
        str(tmp_path / "nope.csv"),
        "--task",
        "echo",
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
    )
    assert "nope.csv" in assert_clean_failure(result)


# -- precedence ------------------------------------------------------------------------------


def listening(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_flags_beat_env_and_config(tmp_path: Path, processes: list[Any]) -> None:
    port_file, port_env, port_flag = free_port(), free_port(), free_port()
    assert len({port_file, port_env, port_flag}) == 3
    config = write_config(tmp_path / "c.yaml", tmp_path / "data", port=port_file)
    assert yaml.safe_load(config.read_text())["orchestrator"]["port"] == port_file
    with (tmp_path / "prec.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                *HIVESCRIBE,
                "orchestrator",
                "--config",
                str(config),
                "--no-ssl",
                "--port",
                str(port_flag),
            ],
            env=clean_env(HIVESCRIBE_PORT=str(port_env)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    processes.append(proc)
    wait_for(lambda: listening(port_flag) or proc.poll() is not None, 30, 0.1)
    assert proc.poll() is None, (tmp_path / "prec.log").read_text()
    assert listening(port_flag)
    assert not listening(port_env)
    assert not listening(port_file)
    proc.terminate()
    proc.wait(timeout=30)


def test_env_beats_config(tmp_path: Path, processes: list[Any]) -> None:
    port_file, port_env = free_port(), free_port()
    config = write_config(tmp_path / "c.yaml", tmp_path / "data", port=port_file)
    with (tmp_path / "env.log").open("ab") as log:
        proc = subprocess.Popen(
            [*HIVESCRIBE, "orchestrator", "--no-ssl"],
            env=clean_env(HIVESCRIBE_PORT=str(port_env), HIVESCRIBE_CONFIG=str(config)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    processes.append(proc)
    wait_for(lambda: listening(port_env) or proc.poll() is not None, 30, 0.1)
    assert proc.poll() is None, (tmp_path / "env.log").read_text()
    assert not listening(port_file)
    proc.terminate()
    proc.wait(timeout=30)


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("orchestrator:\n  prot: 8765\n", encoding="utf-8")
    result = hs("orchestrator", "--config", str(config), "--no-ssl", timeout=30)
    assert "orchestrator.prot" in assert_clean_failure(result)

    result = hs("orchestrator", "--no-ssl", env=clean_env(HIVESCRIBE_ORCHESTRATOR__PROT="1"))
    assert "HIVESCRIBE_ORCHESTRATOR__PROT" in assert_clean_failure(result)


def test_non_json_list_env_var_is_a_clear_error(tmp_path: Path) -> None:
    env = clean_env(HIVESCRIBE_WORKER__TASKS="echo")
    result = hs("worker", "--server", "ws://127.0.0.1:1", "--token", "t", env=env, timeout=30)
    assert_clean_failure(result)
