"""Retry policy as a value: the coordinator, which holds attempt counts, is the one that decides."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # the default for new jobs; each item carries its job's limit
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    jitter: float = 0.5  # the delay is multiplied by a factor drawn from [1 - jitter, 1 + jitter]

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff times must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def backoff_s(self, attempts: int, rng: random.Random | None = None) -> float:
        """Delay before the next attempt after ``attempts`` tries: jittered, exponential, capped."""
        raw = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempts - 1))
        factor = 1 + (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, raw * factor)
