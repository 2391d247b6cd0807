"""The credentials `hivescribe worker register` saves and `worker start` reads.

One JSON file, {server, worker_id, name, api_key}, readable by its owner only (0600): by
default $XDG_CONFIG_HOME/hivescribe/worker.json, else ~/.config/hivescribe/worker.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hivescribe.domain.errors import ValidationError

__all__ = ["WorkerCredentials", "default_path", "delete", "load", "masked", "save"]

FILE_MODE = 0o600
DIR_MODE = 0o700
_SHOWN_CHARS = 10  # as the coordinator's key listings: "hs_" and 7 random characters


@dataclass(frozen=True)
class WorkerCredentials:
    server: str
    worker_id: str
    name: str
    api_key: str = field(repr=False)


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hivescribe" / "worker.json"


def masked(api_key: str) -> str:
    """The key's first characters, enough to tell keys apart and never enough to use one."""
    return api_key[:_SHOWN_CHARS] + "..."


def save(path: Path, credentials: WorkerCredentials) -> None:
    """Write the file whole, mode 0600 from its first byte (a reader never sees half a file,
    nor a moment where others may read the key)."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".worker-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(credentials), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load(path: Path) -> WorkerCredentials:
    """The saved credentials, or a ValidationError that names the file and what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(
            f"no worker credentials at {path}: run `hivescribe worker register` first"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"worker credentials {path} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Not str(exc) alone: it is safe (no file content), but say which file and what to do.
        raise ValidationError(
            f"worker credentials {path} are not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}): register again, or fix the file"
        ) from None
    fields = ("server", "worker_id", "name", "api_key")
    if not isinstance(data, dict):
        raise ValidationError(f"worker credentials {path} must hold a JSON object")
    bad = [f for f in fields if not isinstance(data.get(f), str) or not data[f]]
    if bad:
        raise ValidationError(
            f"worker credentials {path} lack {', '.join(bad)}: register again, or fix the file"
        )
    return WorkerCredentials(**{f: data[f] for f in fields})


def delete(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
