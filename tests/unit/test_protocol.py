"""The worker protocol's messages, item inputs and tokens refuse bad input (no I/O here).

The same rules are exercised end to end, against a real coordinator, in
tests/acceptance/test_bad_input.py.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from hivescribe.config import AuthConfig
from hivescribe.coordinator.auth import Role, TokenAuth, bearer_token
from hivescribe.coordinator.protocol import (
    MAX_REFS,
    AuthMsg,
    ClaimMsg,
    HttpClaim,
    HttpResults,
    LeaseRefIn,
    ResultsMsg,
    WorkerEnvelope,
)
from hivescribe.domain import TaskType
from hivescribe.domain.errors import AuthError, ForbiddenError, ValidationError
from hivescribe.domain.inputs import check_input, check_params

WORKER, ADMIN = "worker-token-unit", "admin-token-unit"


# -- WebSocket envelope ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"type": "nope", "id": 1},
        {"id": 1, "max_items": 1},
        {"type": "claim", "max_items": 1},
        {"type": "claim", "id": 1, "max_items": 0},
        {"type": "claim", "id": 1, "max_items": -1},
        {"type": "claim", "id": 1, "max_items": "many"},
        {"type": "claim", "id": 1, "max_items": 1, "wait_s": -1},
        {"type": "claim", "id": 1, "max_items": 1, "wait_s": 301},
        {"type": "claim", "id": 1, "max_items": 1, "wait_s": float("nan")},
        {"type": "claim", "id": 1, "max_items": 1, "extra": True},
        {"type": "claim", "id": "x" * 65, "max_items": 1},
        {"type": "claim", "id": {"a": 1}, "max_items": 1},
        {"type": "auth", "token": "t", "worker_id": "w", "name": "n"},  # only as first message
        {"type": "heartbeat", "id": 1, "leases": "all"},
        {"type": "heartbeat", "id": 1, "leases": [{"item_id": 0, "token": "t"}]},
        {"type": "results", "id": 1, "results": [{"item_id": 1, "token": "t"}]},
        {"type": "results", "id": 1, "results": [{"item_id": 1, "token": "", "output": {}}]},
        {"type": "fail", "id": 1, "failures": [{"item_id": 1, "token": "t"}]},
        {"type": "release", "id": 1, "leases": [{"item_id": 1}]},
        [1, 2],
        None,
        "claim",
    ],
)
def test_envelope_refuses_bad_messages(message: Any) -> None:
    with pytest.raises(pydantic.ValidationError):
        WorkerEnvelope.model_validate({"msg": message})


def test_envelope_accepts_a_claim() -> None:
    msg = WorkerEnvelope.model_validate(
        {"msg": {"type": "claim", "id": "a-1", "max_items": 3, "wait_s": 2}}
    ).msg
    assert isinstance(msg, ClaimMsg) and msg.max_items == 3


def test_batches_are_capped() -> None:
    refs = [{"item_id": 1, "token": "t", "output": {}}] * (MAX_REFS + 1)
    with pytest.raises(pydantic.ValidationError):
        ResultsMsg.model_validate({"type": "results", "id": 1, "results": refs})
    with pytest.raises(pydantic.ValidationError):
        HttpResults.model_validate({"worker_id": "w", "results": refs})


@pytest.mark.parametrize(
    "hello",
    [
        {"type": "auth", "worker_id": "w", "name": "n"},
        {"type": "auth", "token": "t", "worker_id": "../etc", "name": "n"},
        {"type": "auth", "token": "t", "worker_id": "w" * 65, "name": "n"},
        {"type": "auth", "token": "t", "worker_id": "w", "name": ""},
        {"type": "auth", "token": "t" * 1025, "worker_id": "w", "name": "n"},
        {"type": "auth", "token": "t", "worker_id": "w", "name": "n", "extra": 1},
        {"type": "claim", "token": "t", "worker_id": "w", "name": "n"},
    ],
)
def test_auth_message_refuses_bad_hellos(hello: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        AuthMsg.model_validate(hello)


def test_http_claim_refuses_zero_items_and_bad_worker_ids() -> None:
    for body in (
        {"worker_id": "w", "name": "n", "max_items": 0},
        {"worker_id": "a/b", "name": "n", "max_items": 1},
        {"worker_id": "w", "name": "n", "max_items": 1, "capabilities": {"tasks": "echo"}},
    ):
        with pytest.raises(pydantic.ValidationError):
            HttpClaim.model_validate(body)


def test_item_ids_beyond_64_bits_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        LeaseRefIn.model_validate({"item_id": 2**63, "token": "t"})


# -- item inputs and parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"text": "a", "url": "https://x"},
        {},
        {"video": "x"},
        {"text": 5},
        {"url": "ftp://x"},
        {"url": "file:///etc/passwd"},
        {"blob": "../../etc/passwd"},
        {"blob": "ab/cd/" + "0" * 63},
        {"path": "relative"},
        {"path": "/a\x00b"},
        "text",
        None,
    ],
)
def test_check_input_refuses(value: Any) -> None:
    with pytest.raises(ValidationError):
        check_input(value, allow_paths=True)


def test_only_admins_name_paths() -> None:
    assert check_input({"path": "/data/a.wav"}, allow_paths=True) == {"path": "/data/a.wav"}
    with pytest.raises(ValidationError, match="only admins"):
        check_input({"path": "/data/a.wav"}, allow_paths=False)


@pytest.mark.parametrize(
    "params", [{"delay_ms": -1}, {"delay_ms": "x"}, {"nope": 1}, {"fail_keys": "k"}]
)
def test_bad_echo_params(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="bad parameters for echo"):
        check_params(TaskType.ECHO, params)


# -- tokens -----------------------------------------------------------------------------------


@pytest.fixture
def auth() -> TokenAuth:
    return TokenAuth(
        AuthConfig.model_validate(
            {"worker_tokens": [{"token": WORKER, "name": "W"}], "admin_tokens": [ADMIN]}
        )
    )


def test_missing_and_wrong_tokens_are_auth_errors_that_never_repeat_the_token(
    auth: TokenAuth,
) -> None:
    for token in (None, "", "wrong-secret-unit", "\udfff"):
        with pytest.raises(AuthError) as raised:
            auth.require(token, Role.ADMIN)
        if token:
            assert token not in raised.value.detail


def test_roles_are_enforced(auth: TokenAuth) -> None:
    assert auth.require(ADMIN, Role.ADMIN).role is Role.ADMIN
    assert auth.require(WORKER, Role.WORKER).name == "W"
    with pytest.raises(ForbiddenError):
        auth.require(WORKER, Role.ADMIN)
    with pytest.raises(ForbiddenError):
        auth.require(ADMIN, Role.WORKER)


@pytest.mark.parametrize(
    ("authorization", "api_key", "expected"),
    [
        ("Bearer abc", None, "abc"),
        ("bearer  abc ", None, "abc"),
        ("Basic abc", None, None),
        ("Bearer", None, None),
        ("Bearer   ", "key", "key"),
        (None, "key", "key"),
        (None, "", None),
        (None, None, None),
    ],
)
def test_bearer_token(authorization: str | None, api_key: str | None, expected: str | None) -> None:
    assert bearer_token(authorization, api_key) == expected
