"""One async rate limiter per venue, shared by everything in the process.

A token bucket (``rate_per_s`` requests per second, ``burst`` at most at once) that every REST call
to a venue goes through, whichever gateway object or agent makes it. When the venue answers 429
with ``Retry-After``, :meth:`VenueRateLimiter.pause` holds every caller until that time.
"""

from __future__ import annotations

import asyncio
import time


class VenueRateLimiter:
    """An async token bucket with a venue-wide pause."""

    def __init__(self, rate_per_s: float, burst: int = 1) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.pauses: list[float] = []
        """Every pause asked for, in seconds (for metrics and tests)."""
        self.waited_s = 0.0
        """Total seconds callers spent waiting (for metrics and tests)."""

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (a venue's ``Retry-After``)."""
        self.pauses.append(seconds)
        self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))

    @property
    def paused_for(self) -> float:
        """Seconds the pause still lasts."""
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self) -> None:
        """Wait until one request may go out."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    delay = self._paused_until - now
                else:
                    self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
                    self._updated = now
                    if self._tokens >= 1:
                        self._tokens -= 1
                        return
                    delay = (1 - self._tokens) / self.rate_per_s
                self.waited_s += delay
                await asyncio.sleep(delay)


_LIMITERS: dict[str, VenueRateLimiter] = {}


def shared_limiter(venue: str, rate_per_s: float, burst: int = 1) -> VenueRateLimiter:
    """The process-wide limiter of ``venue`` (created with the first caller's rate)."""
    limiter = _LIMITERS.get(venue)
    if limiter is None:
        limiter = _LIMITERS[venue] = VenueRateLimiter(rate_per_s, burst)
    return limiter


def reset_limiters() -> None:
    """Forget every shared limiter (tests)."""
    _LIMITERS.clear()
