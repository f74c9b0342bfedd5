"""The live event stream of the dashboard: bus messages fanned out to browsers as server-sent events.

The orchestrator hands every message of its ``feed`` subscription (candles, consensus decisions,
orders, fills, portfolio snapshots, alerts, risk and compliance decisions, command acknowledgements)
to :meth:`EventHub.publish`, which never blocks: each browser has a bounded queue, and a browser
too slow to keep up loses its oldest events (it is told with a ``lagged`` event and reloads what it
shows). The hub also keeps the latest alerts for ``GET /alerts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson

from core.messages import Envelope, Payload

KEEPALIVE_S = 15.0
"""A comment line is sent this often so proxies keep an idle stream open."""

_CLOSED: dict[str, Any] = {"type": "__closed__"}


def event_name(payload: Payload) -> str:
    """The SSE event name of a payload: its message type (``candle``, ``fill``, ``risk_alert``...)."""
    return payload.TYPE


class EventHub:
    """Fans events out to subscribers without ever blocking the publisher."""

    def __init__(self, *, queue_size: int = 1000, keep_alerts: int = 200, keep_consensus: int = 500) -> None:
        if queue_size < 3:
            raise ValueError("queue_size must be >= 3")
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._alerts: deque[dict[str, Any]] = deque(maxlen=keep_alerts)
        self._consensus: deque[dict[str, Any]] = deque(maxlen=keep_consensus)
        self._ids = itertools.count(1)
        self._closed = False

    @property
    def subscribers(self) -> int:
        """Open streams."""
        return len(self._subscribers)

    def publish_message(self, payload: Payload, envelope: Envelope | None = None) -> None:
        """Publish a bus message (its payload as JSON, with its event time)."""
        data = payload.model_dump(mode="json")
        ts = envelope.ts_event.isoformat() if envelope is not None else None
        self.publish(event_name(payload), data, ts=ts)

    def publish(self, name: str, data: dict[str, Any], *, ts: str | None = None) -> None:
        """Queue one event for every subscriber (dropping a slow subscriber's oldest)."""
        event = {"id": next(self._ids), "type": name, "ts": ts, "data": data}
        if name == "risk_alert":
            self._alerts.append(event)
        elif name == "consensus_decision":
            self._consensus.append(event)
        for queue in list(self._subscribers):
            if queue.full():  # room for the news that events were lost, and for this one
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                    queue.get_nowait()
                queue.put_nowait({"id": event["id"], "type": "lagged", "ts": ts, "data": {}})
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def alerts(self, limit: int) -> list[dict[str, Any]]:
        """The latest alerts, newest first."""
        return list(itertools.islice(reversed(self._alerts), limit))

    def consensus(self, symbol: str | None, outcome: str | None, limit: int) -> list[dict[str, Any]]:
        """The latest consensus decisions (with their votes), newest first, optionally of one symbol/outcome."""
        out: list[dict[str, Any]] = []
        for event in reversed(self._consensus):
            data = event["data"]
            if (symbol is None or data.get("symbol") == symbol) and (outcome is None or data.get("outcome") == outcome):
                out.append(event)
                if len(out) >= limit:
                    break
        return out

    def close(self) -> None:
        """End every open stream (at shutdown: a streaming response would hold the server open)."""
        self._closed = True
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueEmpty):
                while queue.full():
                    queue.get_nowait()
            queue.put_nowait(_CLOSED)

    async def stream(self, keepalive_s: float = KEEPALIVE_S) -> AsyncIterator[bytes]:
        """The server-sent-event lines of one subscriber, until :meth:`close`."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
            while not self._closed:
                try:
                    event = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is _CLOSED:
                    return
                body = orjson.dumps({"ts": event["ts"], "data": event["data"]})
                yield b"id: %d\nevent: %s\ndata: %s\n\n" % (event["id"], event["type"].encode(), body)
        finally:
            self._subscribers.discard(queue)

    async def start(self) -> None:
        """Nothing to start (a service of the orchestrator, so that it is closed at shutdown)."""
        self._closed = False

    async def stop(self) -> None:
        """See :meth:`close`."""
        self.close()
