r"""Item and job statuses, and the only transitions an item may make.

    pending --claim--> leased --complete--> done
       ^                 |  \--fail(permanent) or attempts spent--> failed
       |                 |                                            |
       +--expire/release/fail(retryable)--+                           |
       +------------------------- admin retry ------------------------+
    pending, leased --cancel--> cancelled

store/ asserts every change it makes against ``ITEM_TRANSITIONS`` (see tests/unit).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from hivescribe.domain.errors import ConflictError


class ItemStatus(StrEnum):
    PENDING = "pending"  # waiting for a worker; may be held back until available_at (backoff)
    LEASED = "leased"  # one worker holds a lease (token, expires_at) on it
    DONE = "done"  # a result was accepted; terminal
    FAILED = "failed"  # permanent error or attempts spent; an admin may retry it
    CANCELLED = "cancelled"  # its job was cancelled before it finished; terminal


ITEM_TRANSITIONS: Mapping[ItemStatus, frozenset[ItemStatus]] = {
    ItemStatus.PENDING: frozenset({ItemStatus.LEASED, ItemStatus.CANCELLED}),
    ItemStatus.LEASED: frozenset(
        {ItemStatus.DONE, ItemStatus.PENDING, ItemStatus.FAILED, ItemStatus.CANCELLED}
    ),
    ItemStatus.FAILED: frozenset({ItemStatus.PENDING}),
    ItemStatus.DONE: frozenset(),
    ItemStatus.CANCELLED: frozenset(),
}


def check_transition(src: ItemStatus, dst: ItemStatus) -> None:
    """Raise ConflictError unless ``src -> dst`` is an allowed item transition."""
    if dst not in ITEM_TRANSITIONS[src]:
        raise ConflictError(f"item cannot go from {src} to {dst}")


class JobStatus(StrEnum):
    QUEUED = "queued"  # no item has been claimed yet
    RUNNING = "running"  # some items are done or leased, some still open
    DONE = "done"  # every item is done
    FAILED = "failed"  # nothing is open and at least one item failed
    CANCELLED = "cancelled"  # the job was cancelled


def job_status_from_counts(counts: Mapping[str, int], *, cancelled: bool) -> JobStatus:
    """A job's status follows from its items' counts (DESIGN.md: the work model)."""
    if cancelled:
        return JobStatus.CANCELLED
    pending = counts.get(ItemStatus.PENDING, 0)
    leased = counts.get(ItemStatus.LEASED, 0)
    done = counts.get(ItemStatus.DONE, 0)
    failed = counts.get(ItemStatus.FAILED, 0)
    if pending or leased:
        return JobStatus.RUNNING if (leased or done or failed) else JobStatus.QUEUED
    if failed:
        return JobStatus.FAILED
    return JobStatus.DONE
