"""Shared CLI pieces: error reporting, logging, and turning flags into Settings."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console

from hivescribe.config import Settings, load_settings
from hivescribe.domain.errors import HivescribeError

err_console = Console(stderr=True, soft_wrap=True)

ConfigOpt = typer.Option(
    None,
    "--config",
    envvar="HIVESCRIBE_CONFIG",
    help="A config.yaml (the shape of spec/captionflow.md). Flags and HIVESCRIBE_* win over it.",
    exists=False,
)

# The task parameters users set most, as flags of `run` and `submit` (each is also --param KEY=).
SourceLanguageOpt = typer.Option(
    None,
    "--source-language",
    help="Translation: the language of the input (en, eng or English). Required for "
    "text-translation and document-translation.",
)
TargetLanguageOpt = typer.Option(
    None,
    "--target-language",
    help="Translation: the language to translate into (es, spa or Spanish); must differ "
    "from --source-language.",
)
VoiceOpt = typer.Option(
    None,
    "--voice",
    help="tts: the voice. espeak-ng takes a voice name (en-us, es, fr); Piper and Coqui "
    "check it against the voice or speaker the worker serves.",
)


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known errors become one clear line and a non-zero exit, not a traceback."""
    from hivescribe.client import ApiError
    from hivescribe.worker.transport import AuthFailed, ConnectionLost

    try:
        yield
    except HivescribeError as exc:
        fail(exc.detail)
    except ApiError as exc:
        fail(f"the coordinator answered {exc.status}: {exc.detail}", 1)
    except (AuthFailed, ConnectionLost) as exc:
        fail(str(exc), 1)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the coordinator: {exc}", 1)


def settings_from(config: Path | None, overrides: dict[str, Any]) -> Settings:
    return load_settings(config, overrides)


def setup_logging(level: str) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=level.upper(),
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def exit_on(fn: Callable[[], Any]) -> Any:
    with friendly_errors():
        return fn()


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
