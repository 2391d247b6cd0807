"""The worker's outbox keeps results on disk until acknowledged (invariant 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivescribe.worker.outbox import Outbox
from hivescribe.worker.state import StateDir


def result(item_id: int, token: str = "t1") -> dict[str, object]:
    return {"item_id": item_id, "token": token, "output": {"text": str(item_id)}}


def test_results_survive_a_restart_until_acknowledged(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.put("result", [result(1), result(2)])
    box.put("fail", [{"item_id": 3, "token": "t1", "error": "bad", "permanent": True}])
    box.close()

    reopened = Outbox(tmp_path / "outbox.db")  # a new process after a crash
    assert len(reopened) == 3
    assert sorted(p["item_id"] for _, p in reopened.pending()) == [1, 2, 3]
    reopened.acknowledge([(1, "t1"), (3, "t1")])
    assert [(k, p["item_id"]) for k, p in reopened.pending()] == [("result", 2)]
    assert reopened.held() == [(2, "t1")]
    reopened.close()


def test_one_entry_per_lease_and_acknowledging_another_token_keeps_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.put("result", [result(1, "old")])
    box.put("result", [result(1, "old"), result(1, "new")])  # a resend, and a later lease
    assert sorted(box.held()) == [(1, "new"), (1, "old")]
    box.acknowledge([(1, "old")])
    assert box.held() == [(1, "new")]
    box.close()


def test_two_workers_cannot_share_a_state_dir(tmp_path: Path) -> None:
    first = StateDir(tmp_path / "w")
    with pytest.raises(RuntimeError, match="another worker is using"):
        StateDir(tmp_path / "w")
    worker_id = first.worker_id
    first.close()
    second = StateDir(tmp_path / "w")
    assert second.worker_id == worker_id  # stable across restarts: outbox leases still match
    second.close()
