"""A per-key request rate limit: a token bucket for each key, in this process's memory.

Each process of a deployment keeps its own buckets, so behind N web processes a key
gets up to N times the rate: a guard against one client's runaway loop, not a quota
(the tenant's budgets are the quota, enforced by the core on every run).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimit:
    """``rate`` requests a second per key, in bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key_id: str) -> int:
        """Spend one request of ``key_id``: 0 if allowed, else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()  # bounded memory; a reset only forgives
            bucket = self._buckets[key_id] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))
