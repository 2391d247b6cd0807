"""The worker runtime: speaks the coordinator's API (never the database) and runs backends."""

from hivescribe.worker.runtime import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
