"""Small builders of valid messages for tests (values from a real BTC/USDT 1h candle)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from core.clock import Clock, SimulatedClock
from core.messages import Candle, Envelope

T0 = datetime(2024, 9, 14, tzinfo=UTC)


def candle(i: int = 0, *, symbol: str = "BTC/USDT", timeframe: str = "1h", venue: str = "binance") -> Candle:
    """The i-th of a series of valid hourly candles (prices drift with i)."""
    base = Decimal("59960.01") + Decimal(i)
    return Candle(
        venue=venue,
        symbol=symbol,
        timeframe=timeframe,
        open_time=T0 + timedelta(hours=i),
        close_time=T0 + timedelta(hours=i + 1),
        open=base,
        high=base + Decimal("120.5"),
        low=base - Decimal("80.25"),
        close=base + Decimal("10"),
        volume=Decimal("312.45678"),
        sequence=i,
    )


def candle_envelope(i: int = 0, *, source: str = "test", clock: Clock | None = None, **kw: str) -> Envelope:
    """A wrapped candle."""
    c = candle(i, **kw)
    return Envelope.wrap(c, source=source, clock=clock or SimulatedClock(T0), ts_event=c.close_time)


async def eventually(condition: Callable[[], bool], timeout: float = 20.0, interval: float = 0.02) -> None:
    """Wait until ``condition()`` holds; fail with AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.02
) -> None:
    """Like :func:`eventually` for an async condition."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port free on loopback right now, BELOW the ephemeral range: a client polling a port in
    that range before its server listens can be handed that very port as its own source port and
    connect to itself (TCP simultaneous open), which then keeps the server from binding it."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(15_000, max(15_001, low - 16))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")
