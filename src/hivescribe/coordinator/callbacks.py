"""The coordinator's two task housekeepers: webhook deliveries and retention.

``Callbacks.run_once`` makes the deliveries of finished tasks due, takes those due, and sends
each one attempt (signed with the owner's secret, domain/webhooks.py), recording the outcome:
delivered, failed for good (refused by the receiver, or attempts spent), or due again after a
jittered exponential backoff. Every attempt is logged by the sender and counted on its row,
so a restarted coordinator goes on where the last one stopped.

``delete_expired`` deletes the tasks that finished more than ``retention_s`` ago: first their
files (the upload and the output, which are the task's alone), then their rows. Deleting a
blob twice is harmless, so a crash between the two only means the next round does it again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from anyio import to_thread

from hivescribe.coordinator.deps import Coordinator
from hivescribe.coordinator.tasks_api import response_body, status_body
from hivescribe.coordinator.webhooks import WebhookSender
from hivescribe.domain.retry import RetryPolicy
from hivescribe.domain.webhooks import account_secret
from hivescribe.store import Delivery
from hivescribe.store.webhooks import DeliveryState

log = logging.getLogger(__name__)

BATCH = 50  # deliveries sent together in one round


class Callbacks:
    def __init__(self, coord: Coordinator, sender: WebhookSender | None = None) -> None:
        config = coord.config.webhooks
        self.coord = coord
        self.policy = RetryPolicy(
            max_attempts=config.max_attempts,
            backoff_base_s=config.backoff_base_s,
            backoff_max_s=config.backoff_max_s,
        )
        self.sender = sender or WebhookSender(
            policy=self.policy, timeout_s=config.timeout_s, allow_private=config.allow_private
        )
        # An attempt in flight keeps its delivery from being taken again for this long.
        self.lease_s = config.timeout_s + 30.0

    async def aclose(self) -> None:
        await self.sender.aclose()

    async def run_once(self) -> int:
        """One round; returns how many attempts were made."""
        store = self.coord.store.webhooks
        await to_thread.run_sync(store.settle)
        due = await to_thread.run_sync(lambda: store.take_due(self.lease_s, BATCH))
        await asyncio.gather(*(self._attempt(d) for d in due))
        return len(due)

    async def _attempt(self, delivery: Delivery) -> None:
        store = self.coord.store
        view = await to_thread.run_sync(store.tasks.get, delivery.task_id)
        if view is None:  # deleted (retention) before its callback could be made
            await to_thread.run_sync(
                lambda: store.webhooks.record(
                    delivery.id, status=None, error="the task was deleted", state="failed"
                )
            )
            return
        event = delivery.event or "task.completed"
        payload = {
            "event": event,
            "delivery_id": delivery.id,
            "task": status_body(view),
            "result": response_body(view) if view.result is not None else None,
        }
        n = delivery.attempts + 1
        secret = account_secret(self.coord.webhook_key, delivery.owner)
        attempt = await self.sender.attempt(delivery.url, secret, event, payload, delivery.id, n)
        next_at = None
        if attempt.delivered:
            state = DeliveryState.DELIVERED
        elif not attempt.retryable or n >= self.policy.max_attempts:
            state = DeliveryState.FAILED
        else:
            state = DeliveryState.PENDING
            next_at = time.time() + self.policy.backoff_s(n)
        if state == DeliveryState.FAILED:
            log.warning(
                "webhook %s for task %s failed after %d attempt(s): %s",
                delivery.id, view.id, n, attempt.status or attempt.error,
            )  # fmt: skip
        await to_thread.run_sync(
            lambda: store.webhooks.record(
                delivery.id,
                status=attempt.status,
                error=attempt.error,
                state=state,
                next_attempt_at=next_at,
            )
        )


async def delete_expired(coord: Coordinator, now: float | None = None) -> int:
    """Delete the tasks (results, files, deliveries) past retention; returns how many."""
    retention = coord.config.tasks.retention_s
    if retention is None:
        return 0
    cutoff = (time.time() if now is None else now) - retention
    deleted = 0
    while expired := await to_thread.run_sync(coord.store.tasks.expired, cutoff):
        for task in expired:
            for key in task.blobs:
                await coord.blobs.delete(key)
        ids = [task.id for task in expired]
        removed = await to_thread.run_sync(coord.store.tasks.delete, ids)
        deleted += removed
        if not removed:  # another replica got there first
            break
    if deleted:
        log.info("retention: deleted %d task(s) that finished over %.0f s ago", deleted, retention)
    return deleted
