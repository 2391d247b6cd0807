"""One Settings object: config.yaml, then HIVESCRIBE_* environment variables, then flags.

The file's shape is spec/captionflow.md's config.yaml (orchestrator, worker, monitor).
Nested keys come from the environment as ``HIVESCRIBE_ORCHESTRATOR__PORT=9000``; the CLI's
own flags also read flat variables (``HIVESCRIBE_DATABASE_URL``, ``HIVESCRIBE_TOKEN`` ...),
listed in ``FLAG_ENV_VARS``. An unknown key or variable, or a bad value, is a ValidationError
that names it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from hivescribe.domain.errors import ValidationError

ENV_PREFIX = "HIVESCRIBE_"

# Flat variables read by CLI flags (Typer's envvar=); they are known, not typos.
FLAG_ENV_VARS = frozenset(
    {
        "HIVESCRIBE_CONFIG",
        "HIVESCRIBE_DATA_DIR",
        "HIVESCRIBE_DATABASE_URL",
        "HIVESCRIBE_HOST",
        "HIVESCRIBE_PORT",
        "HIVESCRIBE_CERT",
        "HIVESCRIBE_KEY",
        "HIVESCRIBE_SERVER",
        "HIVESCRIBE_TOKEN",
        "HIVESCRIBE_NAME",
        "HIVESCRIBE_TASKS",
        "HIVESCRIBE_MODEL",
        "HIVESCRIBE_DEVICE",
        "HIVESCRIBE_COMPUTE_TYPE",
        "HIVESCRIBE_NO_VERIFY_SSL",
        "HIVESCRIBE_NO_PROGRESS",
        "HIVESCRIBE_HEARTBEAT_INTERVAL",
        "HIVESCRIBE_BACKEND",
        "HIVESCRIBE_ENDPOINT",
        "HIVESCRIBE_API_KEY",
        "HIVESCRIBE_TRUST_REMOTE_CODE",
        "HIVESCRIBE_BATCH_SIZE",
        "HIVESCRIBE_STATE_DIR",
        "HIVESCRIBE_VOICES_DIR",
        "HIVESCRIBE_LEASE_TTL_S",
        "HIVESCRIBE_LOG_LEVEL",
        "HIVESCRIBE_CREDENTIALS",
        "HIVESCRIBE_ENROLLMENT_TOKEN",
        "HIVESCRIBE_ADMIN_KEY",
        "HIVESCRIBE_STATUS_PORT",
        "HIVESCRIBE_STATUS_HOST",
        "HIVESCRIBE_NO_STATUS_UI",
    }
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SSLConfig(_Section):
    cert: Path | None = None
    key: Path | None = None


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # as blobs.s3.BUCKET


class StorageConfig(_Section):
    data_dir: Path = Path("./hivescribe_data")
    checkpoint_interval: int = Field(1000, gt=0)
    # Where the bytes of inputs and outputs live. None: <data_dir>/blobs. A folder (or
    # file:///folder). Or s3://bucket/prefix on AWS S3, Cloudflare R2, MinIO... (needs the
    # ``s3`` extra). S3 credentials come from s3_access_key_id/s3_secret_access_key below or
    # else the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    # AWS_SESSION_TOKEN, AWS_PROFILE) or an instance role. They stay on the coordinator:
    # workers only ever get presigned URLs.
    blobs_url: str | None = Field(None, min_length=1, max_length=1000)
    # The S3 API endpoint for non-AWS services, e.g. https://<account>.r2.cloudflarestorage.com
    # or http://minio:9000 (then path-style addressing is used). None: AWS. Workers fetch and
    # upload through presigned URLs on this host, so it must be reachable from them.
    s3_endpoint_url: str | None = Field(None, max_length=1000)
    # The bucket's region (R2: "auto"). None: the AWS default (AWS_DEFAULT_REGION...).
    s3_region: str | None = Field(None, min_length=1, max_length=64)
    # Explicit S3 credentials, both or neither; prefer the AWS variables or a role.
    s3_access_key_id: SecretStr | None = Field(None, repr=False)
    s3_secret_access_key: SecretStr | None = Field(None, repr=False)
    # Lifetime of presigned GET (inputs) and PUT (outputs) URLs handed to workers.
    presign_ttl_s: int = Field(3600, ge=60, le=7 * 86400)

    @pydantic.field_validator("blobs_url")
    @classmethod
    def _blobs_url(cls, value: str | None) -> str | None:
        if value is None or value.startswith("file://") or "://" not in value:
            return value
        if not value.startswith("s3://"):
            raise ValueError("blobs_url must be a folder, file:///folder or s3://bucket/prefix")
        bucket, _, prefix = value[len("s3://") :].partition("/")
        if not _BUCKET.match(bucket):
            raise ValueError(
                f"{bucket!r} is not a bucket name (3-63 lowercase letters, digits, dots, hyphens)"
            )
        if prefix.strip("/") and {"", ".", ".."} & set(prefix.strip("/").split("/")):
            raise ValueError("the prefix of blobs_url has an empty, '.' or '..' part")
        return value

    @pydantic.field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("s3_endpoint_url must start with http:// or https://")
        return value

    @pydantic.model_validator(mode="after")
    def _s3_settings(self) -> StorageConfig:
        is_s3 = bool(self.blobs_url and self.blobs_url.startswith("s3://"))
        s3_only = ("s3_endpoint_url", "s3_region", "s3_access_key_id", "s3_secret_access_key")
        stray = [name for name in s3_only if getattr(self, name) is not None]
        if stray and not is_s3:
            raise ValueError(f"{', '.join(stray)} set, but blobs_url is not an s3:// URL")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("set both s3_access_key_id and s3_secret_access_key, or neither")
        return self


class WorkerTokenConfig(_Section):
    token: SecretStr = Field(min_length=1)
    name: str = Field(min_length=1, max_length=200)


class AuthConfig(_Section):
    worker_tokens: list[WorkerTokenConfig] = []
    admin_tokens: list[SecretStr] = []
    # Each lets a machine register itself as a worker (POST /api/v1/workers/register, or
    # `hivescribe worker register --enrollment-token T`) and get its own worker account and
    # API key. Kept, like the other tokens, only as hashes once the coordinator starts.
    enrollment_tokens: list[SecretStr] = []
    # Anyone may POST /api/v1/auth/register for an account with the "user" role. False: only
    # admins create accounts (that endpoint with an admin key, or `hivescribe users create`).
    open_registration: bool = True


class RateLimitConfig(_Section):
    """Requests per key (or per client address without one) to every endpoint but the
    workers' and health checks; over it, 429 with Retry-After."""

    enabled: bool = True
    requests_per_s: float = Field(50.0, gt=0)
    burst: int = Field(200, ge=1)


class TasksConfig(_Section):
    """Policies for the tasks of /api/v1 (one file or text per request), not for dataset jobs."""

    # Unfinished tasks one account may have at once (admins: no limit); None: no limit.
    max_active_per_user: int | None = Field(1, ge=1)
    admin_first: bool = True  # an admin's tasks are claimed before everyone else's
    # Tasks being processed at once, system-wide (dataset jobs are not counted); None: no cap.
    max_running: int | None = Field(None, ge=1)
    # Finished tasks, their results and their files are deleted this long after they finish.
    retention_s: float | None = Field(24 * 3600.0, gt=0)
    cleanup_interval_s: float = Field(60.0, gt=0, le=86400)


class WebhooksConfig(_Section):
    """Signed callbacks to a task's callback_url when it completes, fails or is cancelled."""

    # Each account's signing secret is derived from this key (HMAC-SHA256); when unset, a key
    # is made once and kept in <data_dir>/webhook.key (mode 0600).
    signing_key: SecretStr | None = Field(None, min_length=32, repr=False)
    allow_private: bool = False  # callbacks to loopback and private addresses (tests, LANs)
    max_attempts: int = Field(8, ge=1, le=50)
    backoff_base_s: float = Field(2.0, ge=0)
    backoff_max_s: float = Field(3600.0, ge=0)
    timeout_s: float = Field(10.0, gt=0, le=300)


class DashboardConfig(_Section):
    """The web dashboard at /dashboard and its live feed (/api/v1/dashboard/live)."""

    enabled: bool = True
    # How often each open dashboard gets a fresh view of workers and leases.
    refresh_s: float = Field(2.0, ge=0.1, le=60)
    # How often item counts (queue, jobs) and the leaderboard, which read whole tables, are
    # re-read for it; never more often than refresh_s.
    counts_every_s: float = Field(5.0, ge=0.1, le=600)
    # A worker not heard from for this long shows as offline, whatever its connection says.
    offline_after_s: float = Field(90.0, gt=0, le=86400)


class OrchestratorConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=1, le=65535)
    ssl: SSLConfig = SSLConfig()
    storage: StorageConfig = StorageConfig()
    auth: AuthConfig = AuthConfig()
    database_url: str | None = Field(None, repr=False)  # may hold a password
    lease_ttl_s: float = Field(60.0, gt=0, le=86400)
    reaper_interval_s: float = Field(2.0, gt=0, le=10)
    max_attempts: int = Field(3, ge=1, le=100)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(300.0, ge=0)
    claim_wait_max_s: float = Field(30.0, ge=0, le=300)
    max_batch_size: int = Field(1024, ge=1)
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(2 * 1024**3, ge=1024)
    rate_limit: RateLimitConfig = RateLimitConfig()
    tasks: TasksConfig = TasksConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    dashboard: DashboardConfig = DashboardConfig()


class WorkerConfig(_Section):
    server: str | None = None
    token: SecretStr | None = None
    name: str | None = None
    tasks: list[str] = []
    batch_size: int = Field(32, ge=1, le=4096)
    model: str | None = None
    device: str = "auto"
    compute_type: str = "default"
    max_retries: int = Field(3, ge=0)
    heartbeat_interval: float = Field(30.0, gt=0)
    verify_ssl: bool = True
    state_dir: Path | None = None
    prefetch_batches: int = Field(2, ge=0, le=16)
    status_port: int = Field(8001, ge=1, le=65535)  # the worker's own status page
    status_host: str = "127.0.0.1"
    status_ui: bool = True


class MonitorConfig(_Section):
    refresh_rate: float = Field(1.0, gt=0)
    show_contributors: bool = True
    show_quality_metrics: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    orchestrator: OrchestratorConfig = OrchestratorConfig()
    worker: WorkerConfig = WorkerConfig()
    monitor: MonitorConfig = MonitorConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: flags (init), then the environment, then the YAML file.
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """The config file named by load_settings, read once."""

    data: dict[str, Any] = {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a config.yaml into a mapping, with errors that name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"config file {path} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Not str(exc): PyYAML quotes the offending line, which may hold a token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ValidationError(f"config file {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationError(f"config file {path} must hold a mapping at the top level")
    return data


def check_environment(environ: Mapping[str, str]) -> None:
    """Refuse HIVESCRIBE_* variables that name no setting (a typo would otherwise be ignored)."""
    for name in environ:
        if not name.startswith(ENV_PREFIX) or name in FLAG_ENV_VARS:
            continue
        if name.startswith(ENV_PREFIX + "TEST_"):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        model: type[BaseModel] | None = Settings
        for part in path:
            fields = model.model_fields if model is not None else {}
            if part not in fields:
                raise ValidationError(
                    f"environment variable {name} names no setting; nested settings are "
                    f"spelled like HIVESCRIBE_ORCHESTRATOR__PORT"
                )
            annotation = fields[part].annotation
            model = (
                annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel)
                else None
            )


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Settings from the file, then the environment, then ``overrides`` (flags; None = unset)."""
    check_environment(os.environ)
    _YamlSource.data = read_config_file(config_file) if config_file else {}
    try:
        return Settings(**_drop_none(dict(overrides or {})))
    except pydantic.ValidationError as exc:
        origin = f" (from {config_file}, HIVESCRIBE_* variables or flags)" if config_file else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ValidationError(f"bad configuration{origin}: {problems}") from None
    except SettingsError as exc:
        raise ValidationError(
            f"bad configuration: {exc} (HIVESCRIBE_* list and object values must be JSON, "
            "e.g. HIVESCRIBE_WORKER__TASKS='[\"echo\"]')"
        ) from None
    finally:
        _YamlSource.data = {}


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    """Flags left unset arrive as None; they must not hide the file or the environment."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out
