"""Worker registration without a coordinator: the saved credentials file, the usernames made
from worker names, and enrollment-token checks."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from hivescribe.cli import worker_credentials as creds
from hivescribe.config import AuthConfig, WorkerTokenConfig
from hivescribe.coordinator.auth import TokenAuth
from hivescribe.coordinator.workers_api import username_for
from hivescribe.domain.errors import AuthError, ValidationError

KEY = "hs_" + "k" * 43
SAVED = creds.WorkerCredentials(
    server="http://127.0.0.1:8765", worker_id="f" * 32, name="GPU Box 1", api_key=KEY
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_credentials_are_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "worker.json"
    creds.save(path, SAVED)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert json.loads(path.read_text()) == {
        "server": SAVED.server,
        "worker_id": SAVED.worker_id,
        "name": SAVED.name,
        "api_key": KEY,
    }
    assert creds.load(path) == SAVED
    assert KEY not in repr(SAVED)
    assert [p.name for p in path.parent.iterdir()] == ["worker.json"]  # no temporary left


def test_saving_over_a_readable_file_makes_it_private(tmp_path: Path) -> None:
    path = tmp_path / "worker.json"
    path.write_text("{}")
    path.chmod(0o644)
    creds.save(path, SAVED)
    assert mode(path) == 0o600 and creds.load(path) == SAVED


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ('{"server": "http://h"', "not valid JSON (line 1"),
        ("", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"server": "http://h", "worker_id": "x", "name": "n"}', "lack api_key"),
        ('{"server": 1, "worker_id": "x", "name": "", "api_key": "k"}', "lack server, name"),
    ],
)
def test_a_broken_file_is_a_clear_error(tmp_path: Path, text: str, phrase: str) -> None:
    path = tmp_path / "worker.json"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        creds.load(path)
    assert str(path) in info.value.detail and phrase in info.value.detail


def test_a_missing_file_says_to_register(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="hivescribe worker register"):
        creds.load(tmp_path / "none.json")
    creds.delete(tmp_path / "none.json")  # deleting nothing is fine


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert creds.default_path() == tmp_path / "xdg" / "hivescribe" / "worker.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert creds.default_path() == tmp_path / "home" / ".config" / "hivescribe" / "worker.json"


def test_masked_key_shows_only_its_start() -> None:
    assert creds.masked(KEY) == KEY[:10] + "..."


@pytest.mark.parametrize(
    ("name", "username"),
    [
        ("M4 MacBook Pro", "m4-macbook-pro"),
        ("gpu_box.1", "gpu_box.1"),
        ("  Über-GPU!! ", "ber-gpu"),
        ("-.-abc-.-", "abc"),
    ],
)
def test_usernames_from_worker_names(name: str, username: str) -> None:
    assert username_for(name) == username


@pytest.mark.parametrize("name", ["", "!!", "é", "ab", "x" * 65, "Admin", "local", "admin-3"])
def test_names_that_make_no_username(name: str) -> None:
    with pytest.raises(ValidationError):
        username_for(name)


def test_enrollment_tokens_are_no_principal() -> None:
    auth = TokenAuth(
        AuthConfig(
            worker_tokens=[WorkerTokenConfig(token=SecretStr("w"), name="w")],
            admin_tokens=[SecretStr("a")],
            enrollment_tokens=[SecretStr("e1"), SecretStr("e2")],
        )
    )
    assert auth.is_enrollment_token("e1") and auth.is_enrollment_token("e2")
    assert not any(auth.is_enrollment_token(t) for t in (None, "", "e", "w", "a"))
    with pytest.raises(AuthError):
        auth.authenticate("e1")  # it registers workers, and opens nothing else
    assert not TokenAuth(AuthConfig()).is_enrollment_token("e1")
