"""The coordinator's API as a Python client."""

from hivescribe.client.api import ApiError, CoordinatorClient

__all__ = ["ApiError", "CoordinatorClient"]
