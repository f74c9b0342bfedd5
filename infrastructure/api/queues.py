"""Queue depths for the dashboard's System view: RabbitMQ's management API, or the in-memory bus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from infrastructure.api.schemas import QueuesView, QueueView
from infrastructure.messaging.memory import InMemoryBus

QueueDepths = Callable[[], Awaitable[QueuesView]]
"""Lists the bus's queues with their depths."""


def memory_queue_depths(bus: InMemoryBus) -> QueueDepths:
    """The in-memory bus delivers synchronously: nothing waits; the delivered counts are shown."""

    async def depths() -> QueuesView:
        stats = bus.queue_stats()
        return QueuesView(
            available=True,
            queues=[QueueView(name=name, messages=0, consumers=1, delivered=delivered) for name, (delivered, _) in
                    stats.items()],
        )  # fmt: skip

    return depths


def public_url(url: str) -> str:
    """``url`` without its credentials (for the dashboard's link)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def vhost_of(amqp_url: str) -> str:
    """The virtual host of an AMQP URL (``/`` when the path is empty)."""
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def management_queue_depths(url: str, vhost: str, timeout_s: float = 3.0) -> QueueDepths:
    """Queue depths from RabbitMQ's management API at ``url`` (``http://user:pass@host:15672``)."""
    parts = urlsplit(url)
    auth = (parts.username or "", parts.password or "") if parts.username else None
    endpoint = f"{public_url(url).rstrip('/')}/api/queues/{quote(vhost, safe='')}"

    async def depths() -> QueuesView:
        try:
            async with httpx.AsyncClient(timeout=timeout_s, auth=auth) as client:
                response = await client.get(endpoint, params={"columns": "name,messages,consumers"})
                response.raise_for_status()
                rows = response.json()
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            why = " (check the monitoring user's password and tag)" if code in (401, 403) else ""
            return QueuesView(available=False, message=f"RabbitMQ's management API answered {code}{why}")
        except (httpx.HTTPError, ValueError) as exc:
            return QueuesView(available=False, message=f"RabbitMQ management API unreachable: {type(exc).__name__}")
        queues = [
            QueueView(name=str(r["name"]), messages=int(r.get("messages") or 0), consumers=int(r.get("consumers") or 0))
            for r in rows
            if isinstance(r, dict) and "name" in r
        ]
        return QueuesView(available=True, queues=sorted(queues, key=lambda q: (-q.messages, q.name)))

    return depths
