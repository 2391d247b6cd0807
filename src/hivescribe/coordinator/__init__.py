"""The coordinator: a FastAPI app serving the worker protocol and the jobs API."""

from hivescribe.coordinator.app import create_app
from hivescribe.coordinator.deps import Coordinator

__all__ = ["Coordinator", "create_app"]
