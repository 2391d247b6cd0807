"""ProgressHub: progress counts only for live leases their worker holds, the latest wins, ends
drop it, and followers are woken by each change."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.conftest import FakeClock

from hivescribe.coordinator.progress import PRUNE_EVERY_S, ProgressHub
from hivescribe.coordinator.protocol import ProgressBody


def lease(item_id: int, job_id: str = "job-a", token: str = "tok", ttl_s: float = 30.0) -> Any:
    return {
        "item_id": item_id,
        "job_id": job_id,
        "token": token,
        "expires_at": 1_700_000_000 + ttl_s,
    }


def update(item_id: int, percent: float, token: str = "tok", step: str = "running") -> ProgressBody:
    return ProgressBody(item_id=item_id, token=token, percent=percent, step=step)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def hub(clock: FakeClock) -> ProgressHub:
    return ProgressHub(clock)


def test_only_live_leases_of_the_reporting_worker_count(hub: ProgressHub, clock: FakeClock) -> None:
    hub.leased("w1", [lease(1), lease(2, job_id="job-b")])
    ack = hub.report("w1", [update(1, 10), update(2, 20, token="other"), update(3, 30)])
    assert ack == {"accepted": [1], "stale": [2, 3]}
    assert hub.report("w2", [update(1, 50)]) == {"accepted": [], "stale": [1]}
    latest = hub.latest("job-a")
    assert latest is not None and (latest.item_id, latest.percent) == (1, 10)
    assert hub.latest("job-b") is None  # its only report was stale
    clock.advance(31)  # the lease expired without a heartbeat
    assert hub.report("w1", [update(1, 60)]) == {"accepted": [], "stale": [1]}
    kept = hub.latest("job-a")
    assert kept is not None and kept.percent == 10


def test_latest_wins_and_heartbeats_extend(hub: ProgressHub, clock: FakeClock) -> None:
    hub.leased("w1", [lease(1)])
    hub.report("w1", [update(1, 10, step="fetching input")])
    clock.advance(1)
    hub.report("w1", [update(1, 40, step="running echo")])
    latest = hub.latest("job-a")
    assert latest is not None
    assert (latest.step, latest.percent, latest.updated_at) == ("running echo", 40, clock.now)
    hub.extended("w2", [1], clock.now + 300)  # not its lease: ignored
    clock.advance(40)
    assert hub.report("w1", [update(1, 50)])["stale"] == [1]
    hub.extended("w1", [1], clock.now + 30)
    assert hub.report("w1", [update(1, 50)])["accepted"] == [1]


def test_ends_drop_progress_only_for_the_same_lease(hub: ProgressHub) -> None:
    hub.leased("w1", [lease(1), lease(2)])
    hub.report("w1", [update(1, 10), update(2, 20)])
    hub.ended("w1", [(1, "not-the-token")])
    hub.ended("w2", [(1, "tok")])
    assert len(hub) == 2
    hub.ended("w1", [(1, "tok"), (2, "tok")])
    assert len(hub) == 0 and hub.latest("job-a") is None
    assert hub.report("w1", [update(1, 90)])["stale"] == [1]


def test_a_new_lease_starts_without_the_old_progress(hub: ProgressHub) -> None:
    hub.leased("w1", [lease(1)])
    hub.report("w1", [update(1, 70)])
    hub.leased("w2", [lease(1, token="tok2")])  # expired and claimed again elsewhere
    assert hub.latest("job-a") is None
    assert hub.report("w1", [update(1, 80)])["stale"] == [1]
    assert hub.report("w2", [update(1, 5, token="tok2")])["accepted"] == [1]


def test_expired_leases_are_pruned(hub: ProgressHub, clock: FakeClock) -> None:
    hub.leased("w1", [lease(1, ttl_s=5)])
    clock.advance(PRUNE_EVERY_S + 1)
    hub.leased("w1", [lease(2, ttl_s=PRUNE_EVERY_S + 60)])
    assert len(hub) == 1
    assert hub.report("w1", [update(2, 1)])["accepted"] == [2]


def test_followers_are_woken_by_changes_of_their_job_only(hub: ProgressHub) -> None:
    async def scenario() -> None:
        with hub.follow("job-a") as a, hub.follow("job-b") as b:
            assert not await a.wait(0.01)
            hub.leased("w1", [lease(1)])
            assert await a.wait(0.01)
            assert not await b.wait(0.01)
            hub.report("w1", [update(1, 30)])
            assert await a.wait(0.01)
            assert not await a.wait(0.01)  # each change wakes once
            hub.ended("w1", [(1, "tok")])
            assert await a.wait(0.01)
        assert not hub._followers  # left with the with block

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "bad",
    [
        {"percent": 150},
        {"percent": -1},
        {"percent": "50"},
        {"percent": True},
        {"percent": float("nan")},
        {"step": ""},
        {"step": "x" * 65},
        {"details": "x" * 501},
        {"item_id": 0},
        {"token": ""},
        {"extra": 1},
    ],
)
def test_progress_updates_are_validated(bad: dict[str, Any]) -> None:
    body = {"item_id": 1, "token": "t", "percent": 50, "step": "running", **bad}
    with pytest.raises(ValueError):
        ProgressBody.model_validate(body)
