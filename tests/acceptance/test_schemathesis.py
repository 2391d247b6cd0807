"""The live coordinator fuzzed against its own OpenAPI document (schemathesis, real HTTP).

A real coordinator process on loopback serves /openapi.json; schemathesis' engine (what
``schemathesis run`` drives) generates requests for every operation from it (the examples,
coverage and fuzzing phases, positive and negative data) and checks every answer: no 5xx,
and every answer, errors included, has a documented status code, a documented content type
and a body matching the documented schema. It runs once per kind of caller, because each
reaches different code behind authentication:

- ``admin``: the config's admin token (jobs, accounts, workers; 403 from the worker protocol);
- ``user``: an account's key from POST /api/v1/auth/register (tasks; 403 elsewhere);
- ``worker``: the config's worker token (the worker protocol; 403 elsewhere). Claims do not
  long-poll here (``claim_wait_max_s`` 0), or each would wait for work that never comes.

No operation is excluded from any run, and every one must have been sent requests. The
credentials cannot be destroyed from inside a run: the config's tokens cannot be revoked by
any endpoint, and only an admin may revoke a user's keys (the other runs get 403 from
revoke-keys and unregister; the admin run revokes the keys of ids that do not exist, 404).
The worker WebSocket (/api/v1/worker/ws) is not in the OpenAPI document: the worker tests
cover it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from tests.acceptance.harness import ADMIN_TOKEN, WORKER_TOKEN, CoordinatorProc

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 25  # per operation and phase; with the seed, every run sends the same requests
SEED = 20_261_122
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


# Operations each caller must have got a 2xx answer from (else the run tested nothing but
# the authentication in front of them).
REACHED = {
    "admin": ("POST /api/v1/jobs", "GET /api/v1/auth/users", "POST /api/v1/workers/register"),
    "user": ("POST /api/v1/tts", "GET /api/v1/tasks", "POST /api/v1/auth/generate-api-key"),
    "worker": ("POST /api/v1/worker/claim", "POST /api/v1/worker/heartbeat"),
}


def fuzz(base_url: str, key: str) -> tuple[list[str], dict[str, set[int]]]:
    """Run schemathesis against the coordinator at ``base_url`` as ``key``: each failure
    found, described with the request that caused it, and the status codes each operation
    answered."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "request-timeout": 30,
            "headers": {"Authorization": f"Bearer {key}"},
            # The operations declare Authorization as a header parameter: send the key there
            # too, not a generated value (that would test nothing past the 401).
            "parameters": {"header.authorization": f"Bearer {key}"},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    problems: list[str] = []
    statuses: dict[str, set[int]] = {}
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            statuses.setdefault(recorder.label, set()).update(
                i.response.status_code for i in recorder.interactions.values() if i.response
            )
            problems += _failures(recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"schemathesis error: {event!r}")
    documented = {
        f"{method.upper()} {path}"
        for path, item in httpx.get(f"{base_url}/openapi.json").json()["paths"].items()
        for method in item
    }
    missing = documented - {label for label, codes in statuses.items() if codes}
    assert not missing, f"schemathesis sent no request to {sorted(missing)}"
    return problems, statuses


def _failures(recorder: Any) -> list[str]:
    found = []
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            interaction = recorder.interactions.get(case_id)
            response = interaction.response if interaction else None
            answer = (
                f"{response.status_code} {response.content[:500]!r}" if response else "no answer"
            )
            found.append(
                f"{recorder.label}: {check.name}: {check.failure_info.failure.title}: "
                f"{check.failure_info.failure.message[:800]}\n  answer: {answer}\n"
                f"  reproduce: {check.failure_info.code_sample[:1500]}"
            )
    return found


@pytest.mark.parametrize("caller", ["admin", "user", "worker"])
def test_every_operation_conforms_to_the_schema(
    caller: str, coordinator_factory: Callable[..., CoordinatorProc]
) -> None:
    coord = coordinator_factory(
        rate_limit={"enabled": False},
        tasks={"max_active_per_user": None},
        claim_wait_max_s=0,
    )
    key = {"admin": ADMIN_TOKEN, "worker": WORKER_TOKEN}.get(caller, "")
    if caller == "user":
        reply = httpx.post(
            f"{coord.http_url}/api/v1/auth/register",
            json={"username": "fuzzer", "password": "a-long-enough-password"},
            timeout=30,
        )
        assert reply.status_code == 201, reply.text
        key = reply.json()["api_key"]
    problems, statuses = fuzz(coord.http_url, key)
    assert not problems, f"{len(problems)} failures:\n" + "\n".join(problems)
    # The run got past authentication: these operations did their work at least once.
    for operation in REACHED[caller]:
        assert any(200 <= code < 300 for code in statuses[operation]), (operation, statuses)
    # The credentials still work: the run tested past the authentication to its end.
    check = httpx.get(
        f"{coord.http_url}/api/v1/auth/verify-api-key",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert check.status_code == 200, check.text
