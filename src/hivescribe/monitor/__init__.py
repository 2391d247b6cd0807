"""`hivescribe monitor`: a Textual TUI that watches a coordinator over its HTTP API.

It is a remote client like any other: it reads the admin and miners endpoints and never
imports the store or the coordinator.
"""

from hivescribe.monitor.app import MonitorApp
from hivescribe.monitor.data import (
    CoordinatorReader,
    MonitorError,
    RateMeter,
    Snapshot,
    activity,
    leaderboard,
)

__all__ = [
    "CoordinatorReader",
    "MonitorApp",
    "MonitorError",
    "RateMeter",
    "Snapshot",
    "activity",
    "leaderboard",
]
