"""The pure domain: statuses and their transitions, job status, retry policy, task types."""

from __future__ import annotations

import importlib
import itertools
import pkgutil
import random
import warnings
from pathlib import Path

import pytest

import hivescribe.domain
import hivescribe.store
from hivescribe.domain import (
    ITEM_TRANSITIONS,
    TASK_TYPES,
    ConflictError,
    ItemStatus,
    JobStatus,
    RetryPolicy,
    TaskType,
    ValidationError,
    check_transition,
    job_status_from_counts,
    parse_task_type,
)
from hivescribe.store.queue import TRANSITIONS

ALL_PAIRS = list(itertools.product(ItemStatus, ItemStatus))

# -- statuses and transitions ----------------------------------------------------------------


def test_every_status_has_a_transition_entry() -> None:
    assert set(ITEM_TRANSITIONS) == set(ItemStatus)


@pytest.mark.parametrize(("src", "dst"), sorted(TRANSITIONS), ids=lambda s: str(s))
def test_every_queue_transition_is_allowed(src: ItemStatus, dst: ItemStatus) -> None:
    assert dst in ITEM_TRANSITIONS[src]
    check_transition(src, dst)


def test_queue_uses_every_allowed_transition() -> None:
    allowed = {(src, dst) for src, dsts in ITEM_TRANSITIONS.items() for dst in dsts}
    assert allowed == set(TRANSITIONS)


@pytest.mark.parametrize("terminal", [ItemStatus.DONE, ItemStatus.CANCELLED])
def test_terminal_states_have_no_way_out(terminal: ItemStatus) -> None:
    assert ITEM_TRANSITIONS[terminal] == frozenset()
    for dst in ItemStatus:
        with pytest.raises(ConflictError):
            check_transition(terminal, dst)


@pytest.mark.parametrize(
    ("src", "dst"),
    [(s, d) for s, d in ALL_PAIRS if d not in ITEM_TRANSITIONS[s]],
    ids=lambda s: str(s),
)
def test_disallowed_transition_raises_conflict(src: ItemStatus, dst: ItemStatus) -> None:
    with pytest.raises(ConflictError, match=f"from {src} to {dst}") as info:
        check_transition(src, dst)
    assert info.value.status_code == 409


def test_no_status_goes_to_itself() -> None:
    for status in ItemStatus:
        assert status not in ITEM_TRANSITIONS[status]


def test_status_values_are_the_stored_strings() -> None:
    assert [s.value for s in ItemStatus] == ["pending", "leased", "done", "failed", "cancelled"]
    assert ItemStatus("leased") is ItemStatus.LEASED


# -- job status ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "cancelled", "expected"),
    [
        ({"pending": 3}, False, JobStatus.QUEUED),
        ({"pending": 2, "leased": 1}, False, JobStatus.RUNNING),
        ({"pending": 2, "done": 1}, False, JobStatus.RUNNING),
        ({"pending": 2, "failed": 1}, False, JobStatus.RUNNING),
        ({"leased": 1}, False, JobStatus.RUNNING),
        ({"leased": 1, "failed": 4}, False, JobStatus.RUNNING),
        ({"done": 5}, False, JobStatus.DONE),
        ({"done": 5, "failed": 1}, False, JobStatus.FAILED),
        ({"failed": 1}, False, JobStatus.FAILED),
        ({"done": 2, "cancelled": 3}, False, JobStatus.DONE),
        ({}, False, JobStatus.DONE),
        (
            {"pending": 0, "leased": 0, "done": 0, "failed": 0, "cancelled": 0},
            False,
            JobStatus.DONE,
        ),
        ({"pending": 3}, True, JobStatus.CANCELLED),
        ({"done": 3}, True, JobStatus.CANCELLED),
        ({"failed": 1, "leased": 1}, True, JobStatus.CANCELLED),
    ],
)
def test_job_status_from_counts(
    counts: dict[str, int], cancelled: bool, expected: JobStatus
) -> None:
    assert job_status_from_counts(counts, cancelled=cancelled) is expected


def test_job_status_accepts_enum_keys() -> None:
    counts = {ItemStatus.PENDING: 1, ItemStatus.LEASED: 1}
    assert job_status_from_counts(counts, cancelled=False) is JobStatus.RUNNING


# -- retry policy ----------------------------------------------------------------------------


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.backoff_base_s == 1.0
    assert policy.backoff_max_s == 300.0
    assert policy.jitter == 0.5


def test_backoff_is_exponential_without_jitter() -> None:
    policy = RetryPolicy(backoff_base_s=2.0, backoff_max_s=1000.0, jitter=0.0)
    assert [policy.backoff_s(n) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0]
    assert policy.backoff_s(0) == 2.0  # before any attempt: the base delay


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=10.0, jitter=0.0)
    assert policy.backoff_s(4) == 8.0
    assert policy.backoff_s(5) == 10.0
    assert policy.backoff_s(60) == 10.0


def test_zero_base_means_no_backoff() -> None:
    policy = RetryPolicy(backoff_base_s=0.0)
    assert all(policy.backoff_s(n) == 0.0 for n in range(10))


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5, 1.0])
def test_backoff_jitter_stays_in_bounds(jitter: float) -> None:
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=50.0, jitter=jitter)
    rng = random.Random(1234)
    for attempts in range(1, 10):
        raw = min(50.0, 2.0 ** (attempts - 1))
        delays = [policy.backoff_s(attempts, rng) for _ in range(200)]
        assert all(raw * (1 - jitter) <= d <= raw * (1 + jitter) for d in delays)
        assert all(d >= 0 for d in delays)
        if jitter:
            assert len(set(delays)) > 1  # it does jitter
            # and spreads across most of the band
            assert min(delays) < raw * (1 - jitter / 2) < raw * (1 + jitter / 2) < max(delays)


def test_backoff_is_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy(backoff_base_s=1.0)
    first = [policy.backoff_s(n, random.Random(7)) for n in range(1, 6)]
    second = [policy.backoff_s(n, random.Random(7)) for n in range(1, 6)]
    assert first == second


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"backoff_base_s": -0.1},
        {"backoff_max_s": -1.0},
        {"jitter": -0.01},
        {"jitter": 1.01},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_invalid_retry_policy_raises(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy()
    assert policy == RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 5  # type: ignore[misc]


# -- task types ------------------------------------------------------------------------------


def test_task_type_names() -> None:
    assert set(TASK_TYPES) == {
        "caption",
        "transcription",
        "video-transcription",
        "tts",
        "summarization",
        "text-translation",
        "document-translation",
        "ocr",
        "echo",
    }


@pytest.mark.parametrize("name", TASK_TYPES)
def test_parse_known_task_type(name: str) -> None:
    assert parse_task_type(name) is TaskType(name)


@pytest.mark.parametrize("name", ["", "Caption", "translate", "video_transcription", "caption "])
def test_parse_unknown_task_type_lists_the_known_ones(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_task_type(name)
    message = str(info.value)
    assert repr(name) in message
    for known in TASK_TYPES:
        assert known in message
    assert info.value.status_code == 400
    assert info.value.detail == message


# -- package hygiene -------------------------------------------------------------------------


@pytest.mark.parametrize("package", [hivescribe.domain, hivescribe.store], ids=lambda p: p.__name__)
def test_all_names_exist(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names)), "duplicate names in __all__"
    missing = [name for name in names if not hasattr(package, name)]
    assert not missing


def _package_modules() -> list[str]:
    names = []
    for package in (hivescribe.domain, hivescribe.store):
        names.append(package.__name__)
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if not info.ispkg and info.name.rsplit(".", 1)[-1] != "migrations":
                names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module_name", _package_modules())
def test_submodule_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", []):
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"


def _source_files() -> list[Path]:
    return [
        path
        for package in (hivescribe.domain, hivescribe.store)
        for path in sorted(Path(package.__path__[0]).rglob("*.py"))
    ]


def _source_id(path: Path) -> str:
    return path.relative_to(Path(hivescribe.__path__[0])).as_posix()  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", _source_files(), ids=_source_id)
def test_source_compiles_without_warnings(path: Path) -> None:
    """A fresh checkout imports with -W error (pytest runs with warnings as errors)."""
    source = path.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(source, str(path), "exec", dont_inherit=True)
