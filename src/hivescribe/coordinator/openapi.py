"""The error answers every router declares in the OpenAPI document.

They are the shapes app.py's exception handlers send: ``{"detail": "<text>"}`` for every
deliberate error (and Starlette's HTTPException, e.g. the 413 of an oversized body), and
``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`` for a request that does not
match the schema (422). A router passes ``errors(...)`` as ``responses=``, for itself or for
one route, so a client (and schemathesis) knows every status code it may get, and what its
body holds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ErrorResponse", "ValidationErrorResponse", "errors"]


class ErrorResponse(BaseModel):
    """Every error but a malformed request (422)."""

    detail: str = Field(description="What went wrong, for a person to read")


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then names")
    msg: str
    type: str = Field(description="What kind of problem (missing, string_too_long, ...)")


class ValidationErrorResponse(BaseModel):
    """A request that does not match the schema (a missing field, a wrong type, ...)."""

    detail: list[ValidationProblem]


DESCRIPTIONS = {
    400: "The body cannot be parsed (not JSON, or not UTF-8)",
    401: "Missing or wrong credentials",
    403: "A known caller without the role this needs",
    404: "No such thing (or not the caller's)",
    409: "The state does not allow this (now)",
    413: "The request body is over the configured limit",
    422: "The request does not match this schema",
    429: "Over the rate limit: try again after Retry-After seconds",
}


def errors(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these status codes; ``descriptions`` (``e404="..."``) replaces the
    generic description of a code."""
    stray = set(descriptions) - {f"e{code}" for code in codes}
    if stray:
        raise ValueError(f"descriptions of codes not listed: {', '.join(sorted(stray))}")
    return {
        code: {
            "model": ValidationErrorResponse if code == 422 else ErrorResponse,
            "description": descriptions.get(f"e{code}", DESCRIPTIONS[code]),
        }
        for code in codes
    }
