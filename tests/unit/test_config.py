"""hivescribe.config: spec/captionflow.md's config.yaml, HIVESCRIBE_* variables and flags.

Precedence is file < environment < overrides (flags); every mistake is a ValidationError whose
message names the key, variable or file at fault, and never repeats a token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hivescribe.cli.certs import write_self_signed
from hivescribe.config import Settings, load_settings
from hivescribe.domain.errors import ValidationError

# spec/captionflow.md, "Configuration", verbatim but for the two certificate paths.
SPEC_CONFIG = """\
orchestrator:
  host: 0.0.0.0
  port: 8765
  ssl:
    cert: /path/to/cert.pem
    key: /path/to/key.pem
  storage:
    data_dir: ./caption_data
    checkpoint_interval: 1000
  auth:
    worker_tokens:
      - token: "worker-token-1"
        name: "GPU-Server-1"
      - token: "worker-token-2"
        name: "Community-Worker"
    admin_tokens:
      - "admin-token-1"

worker:
  batch_size: 32
  model: "llava-v1.6-34b"
  max_retries: 3
  heartbeat_interval: 30

monitor:
  refresh_rate: 1.0
  show_contributors: true
  show_quality_metrics: true
"""

SECRETS = ("worker-token-1", "worker-token-2", "admin-token-1")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_self_signed(tmp_path_factory.mktemp("certs"), ["localhost", "127.0.0.1"])


@pytest.fixture
def spec_file(tmp_path: Path, certs: tuple[Path, Path]) -> Path:
    cert, key = certs
    text = SPEC_CONFIG.replace("/path/to/cert.pem", str(cert)).replace("/path/to/key.pem", str(key))
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(config: Path | None = None, overrides: dict | None = None) -> str:
    with pytest.raises(ValidationError) as info:
        load_settings(config, overrides)
    message = info.value.detail
    assert str(info.value) == message
    for secret in SECRETS:
        assert secret not in message
    return message


# -- the spec's file -------------------------------------------------------------------------


def test_spec_config_loads_unchanged(spec_file: Path, certs: tuple[Path, Path]) -> None:
    settings = load_settings(spec_file)
    orch = settings.orchestrator
    assert orch.host == "0.0.0.0"
    assert orch.port == 8765
    assert orch.ssl.cert == certs[0]
    assert orch.ssl.key == certs[1]
    assert orch.ssl.cert is not None and orch.ssl.cert.is_file()
    assert orch.storage.data_dir == Path("./caption_data")
    assert orch.storage.checkpoint_interval == 1000
    tokens = [(t.token.get_secret_value(), t.name) for t in orch.auth.worker_tokens]
    assert tokens == [("worker-token-1", "GPU-Server-1"), ("worker-token-2", "Community-Worker")]
    assert [t.get_secret_value() for t in orch.auth.admin_tokens] == ["admin-token-1"]

    worker = settings.worker
    assert worker.batch_size == 32
    assert worker.model == "llava-v1.6-34b"
    assert worker.max_retries == 3
    assert worker.heartbeat_interval == 30

    monitor = settings.monitor
    assert monitor.refresh_rate == 1.0
    assert monitor.show_contributors is True
    assert monitor.show_quality_metrics is True


def test_secrets_stay_out_of_repr(spec_file: Path) -> None:
    settings = load_settings(spec_file)
    for text in (repr(settings), str(settings), repr(settings.orchestrator.auth)):
        for secret in SECRETS:
            assert secret not in text


def test_no_file_gives_defaults() -> None:
    settings = load_settings(None)
    assert isinstance(settings, Settings)
    assert settings.orchestrator.port == 8765
    assert settings.worker.batch_size == 32
    assert settings.orchestrator.auth.worker_tokens == []


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")).orchestrator.port == 8765


# -- precedence ------------------------------------------------------------------------------


def test_env_beats_file(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__PORT", "9001")
    monkeypatch.setenv("HIVESCRIBE_WORKER__BATCH_SIZE", "8")
    settings = load_settings(spec_file)
    assert settings.orchestrator.port == 9001
    assert settings.worker.batch_size == 8
    # Untouched keys still come from the file.
    assert settings.orchestrator.host == "0.0.0.0"
    assert settings.worker.model == "llava-v1.6-34b"


def test_nested_env_keeps_sibling_keys_of_the_file(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__STORAGE__DATA_DIR", str(tmp_path / "env-data"))
    settings = load_settings(spec_file)
    storage = settings.orchestrator.storage
    assert storage.data_dir == tmp_path / "env-data"
    assert storage.checkpoint_interval == 1000  # sibling in the file survives
    assert settings.orchestrator.port == 8765
    assert settings.orchestrator.ssl.cert is not None  # other orchestrator sections too
    assert len(settings.orchestrator.auth.worker_tokens) == 2


def test_overrides_beat_env_and_file(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__PORT", "9001")
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__HOST", "10.0.0.1")
    settings = load_settings(spec_file, {"orchestrator": {"port": 9003}})
    assert settings.orchestrator.port == 9003
    assert settings.orchestrator.host == "10.0.0.1"  # env still beats the file
    assert settings.orchestrator.storage.checkpoint_interval == 1000


def test_unset_overrides_hide_nothing(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flags left unset arrive as None and must not replace the file or the environment."""
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__PORT", "9001")
    settings = load_settings(
        spec_file,
        {
            "orchestrator": {
                "host": None,
                "port": None,
                "ssl": {"cert": None, "key": None},
                "storage": {"data_dir": None},
            },
            "worker": {"token": None, "batch_size": None},
        },
    )
    assert settings.orchestrator.port == 9001
    assert settings.orchestrator.host == "0.0.0.0"
    assert settings.orchestrator.ssl.cert is not None
    assert settings.orchestrator.storage.data_dir == Path("caption_data")
    assert settings.worker.batch_size == 32


def test_nested_override_keeps_sibling_keys(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__STORAGE__DATA_DIR", str(tmp_path / "env"))
    settings = load_settings(
        spec_file, {"orchestrator": {"storage": {"data_dir": tmp_path / "flag"}}}
    )
    assert settings.orchestrator.storage.data_dir == tmp_path / "flag"
    assert settings.orchestrator.storage.checkpoint_interval == 1000
    assert settings.orchestrator.port == 8765


def test_env_secret_is_read_and_hidden(spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_WORKER__TOKEN", "env-worker-secret")
    settings = load_settings(spec_file)
    assert settings.worker.token is not None
    assert settings.worker.token.get_secret_value() == "env-worker-secret"
    assert "env-worker-secret" not in repr(settings)


def test_known_flag_variables_are_accepted(
    spec_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVESCRIBE_DATABASE_URL", "postgresql://db.example/hs")
    monkeypatch.setenv("HIVESCRIBE_PORT", "1234")
    monkeypatch.setenv("HIVESCRIBE_TOKEN", "flat-token")
    monkeypatch.setenv("HIVESCRIBE_SERVER", "ws://localhost:8765")
    settings = load_settings(spec_file)  # no "names no setting" error
    assert settings.orchestrator.host == "0.0.0.0"
    assert len(settings.orchestrator.auth.worker_tokens) == 2


# -- errors that name the problem ------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, SPEC_CONFIG + "monitr:\n  refresh_rate: 2\n"))
    assert "monitr" in message
    assert "config.yaml" in message


def test_unknown_nested_key(tmp_path: Path) -> None:
    text = SPEC_CONFIG.replace("data_dir: ./caption_data", "dta_dir: ./caption_data")
    message = error_of(write(tmp_path, text))
    assert "orchestrator.storage.dta_dir" in message


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("port: 8765", "port: 99999", "orchestrator.port"),
        ("batch_size: 32", 'batch_size: "many"', "worker.batch_size"),
        ("checkpoint_interval: 1000", "checkpoint_interval: -5", "storage.checkpoint_interval"),
        ("refresh_rate: 1.0", "refresh_rate: fast", "monitor.refresh_rate"),
    ],
)
def test_bad_value(tmp_path: Path, old: str, new: str, where: str) -> None:
    text = SPEC_CONFIG.replace(old, new)
    assert text != SPEC_CONFIG
    message = error_of(write(tmp_path, text))
    assert where in message


def test_bad_value_from_override(spec_file: Path) -> None:
    message = error_of(spec_file, {"orchestrator": {"port": 0}})
    assert "orchestrator.port" in message


def test_worker_token_without_name(tmp_path: Path) -> None:
    text = SPEC_CONFIG.replace('        name: "Community-Worker"\n', "")
    assert text != SPEC_CONFIG
    message = error_of(write(tmp_path, text))
    assert "worker_tokens.1.name" in message
    assert "worker-token-2" not in message


def test_empty_worker_token(tmp_path: Path) -> None:
    text = SPEC_CONFIG.replace('"worker-token-2"', '""')
    message = error_of(write(tmp_path, text))
    assert "worker_tokens.1.token" in message


def test_invalid_yaml(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "orchestrator:\n  port: [8765\n  host: x\n"))
    assert "not valid YAML" in message
    assert "config.yaml" in message


def test_invalid_yaml_does_not_echo_a_token(tmp_path: Path) -> None:
    text = SPEC_CONFIG.replace('- "admin-token-1"', '- "admin-token-1')
    message = error_of(write(tmp_path, text))
    assert "not valid YAML" in message


def test_top_level_list(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "- orchestrator\n- worker\n"))
    assert "mapping" in message
    assert "config.yaml" in message


def test_top_level_scalar(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "just a string\n"))
    assert "mapping" in message


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    message = error_of(missing)
    assert str(missing) in message
    assert "does not exist" in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("orchestrator:\n  host: caf\xe9\n".encode("latin-1"))
    message = error_of(path)
    assert str(path) in message
    assert "cannot be read" in message


def test_unknown_nested_env_var(monkeypatch: pytest.MonkeyPatch, spec_file: Path) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__PROT", "9000")
    message = error_of(spec_file)
    assert "HIVESCRIBE_ORCHESTRATOR__PROT" in message


def test_unknown_flat_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_FOO", "1")
    message = error_of(None)
    assert "HIVESCRIBE_FOO" in message


def test_env_var_too_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__PORT__X", "1")
    assert "HIVESCRIBE_ORCHESTRATOR__PORT__X" in error_of(None)


def test_bad_env_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__PORT", "eighty")
    assert "orchestrator.port" in error_of(None)


def test_env_error_does_not_echo_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_ORCHESTRATOR__AUTH__ADMIN_TOKENS", '[{"t": "admin-token-1"}]')
    message = error_of(None)
    assert "admin_tokens" in message


def test_env_value_that_is_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVESCRIBE_WORKER__TASKS", "echo")
    message = error_of(None)
    assert "HIVESCRIBE_WORKER__TASKS" in message or "worker" in message
