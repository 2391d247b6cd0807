"""Pure domain types: statuses, transitions, task types, errors. No I/O lives here."""

from hivescribe.domain.errors import (
    AuthError,
    ConflictError,
    HivescribeError,
    LeaseLostError,
    NotFoundError,
    PayloadTooLargeError,
    TooManyRequestsError,
    ValidationError,
)
from hivescribe.domain.retry import RetryPolicy
from hivescribe.domain.status import (
    ITEM_TRANSITIONS,
    ItemStatus,
    JobStatus,
    check_transition,
    job_status_from_counts,
)
from hivescribe.domain.tasks import TASK_TYPES, TaskType, parse_task_type

__all__ = [
    "ITEM_TRANSITIONS",
    "TASK_TYPES",
    "AuthError",
    "ConflictError",
    "HivescribeError",
    "ItemStatus",
    "JobStatus",
    "LeaseLostError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "TaskType",
    "TooManyRequestsError",
    "ValidationError",
    "check_transition",
    "job_status_from_counts",
    "parse_task_type",
]
