"""What an item's input may be, and the parameters each task type accepts."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from hivescribe.domain.errors import ValidationError
from hivescribe.domain.tasks import TaskType

MAX_INLINE_TEXT = 1_000_000
BLOB_KEY = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}$")
URL_SCHEMES = ("http://", "https://", "s3://")


def check_input(value: Any, *, allow_paths: bool) -> dict[str, str]:
    """An item input is exactly one of: text, url, blob (uploaded bytes), or path (a file the
    coordinator itself can read, which only admins may name)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValidationError("an item input must be an object with one of: text, url, blob, path")
    ((kind, data),) = value.items()
    if not isinstance(data, str):
        raise ValidationError(f"item input {kind!r} must be a string")
    if kind == "text":
        if len(data) > MAX_INLINE_TEXT:
            raise ValidationError(f"inline text is limited to {MAX_INLINE_TEXT} characters")
    elif kind == "url":
        if not data.startswith(URL_SCHEMES) or len(data) > 4000:
            raise ValidationError(f"item url must start with {', '.join(URL_SCHEMES)}")
    elif kind == "blob":
        if not BLOB_KEY.match(data):
            raise ValidationError("item blob must be a key returned by POST /api/v1/blobs")
    elif kind == "path":
        if not allow_paths:
            raise ValidationError("only admins may name coordinator-side paths; upload instead")
        if not data.startswith("/") or "\x00" in data:
            raise ValidationError("item path must be absolute")
    else:
        raise ValidationError(f"unknown item input kind {kind!r}; use text, url, blob or path")
    return {kind: data}


class EchoParams(BaseModel):
    """echo: returns its input after ``delay_ms``; ``fail_keys`` items fail (for tests)."""

    model_config = ConfigDict(extra="forbid")

    delay_ms: int = Field(0, ge=0, le=3_600_000)
    fail_keys: list[str] = Field(default_factory=list, max_length=10_000)


PARAM_SCHEMAS: dict[TaskType, type[BaseModel]] = {TaskType.ECHO: EchoParams}


def check_params(task_type: TaskType, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a job's parameters against its task type's schema (where one is declared)."""
    schema = PARAM_SCHEMAS.get(task_type)
    if schema is None:
        return params
    try:
        return schema.model_validate(params).model_dump()
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()
        )
        raise ValidationError(f"bad parameters for {task_type.value}: {problems}") from None
