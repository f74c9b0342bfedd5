"""The web dashboard: its static files at ``/`` and the read endpoints only it needs.

The dashboard is plain HTML, CSS and JavaScript modules in ``static/`` (no build step), with
TradingView's lightweight-charts vendored in ``static/vendor`` (Apache-2.0, licence beside it): it
works offline and is installed with the wheel as package data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from infrastructure.api.events import EventHub
from infrastructure.api.queues import QueueDepths
from infrastructure.api.schemas import DashboardConfig, EventView, QueuesView
from strategies.registry import available_strategies

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The dashboard's files (package data)."""

_NO_CACHE = {"Cache-Control": "no-cache"}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""The page runs only the dashboard's own files (the token it keeps is worth protecting)."""


def add_dashboard(
    app: FastAPI,
    *,
    events: EventHub | None,
    queues: QueueDepths | None,
    links: Mapping[str, str],
    mode: Callable[[], str],
    version: str,
    token_required: bool,
    desk: bool = False,
) -> None:
    """Serve the dashboard at ``/`` (files under ``/ui``), the live stream and its read endpoints."""
    app.mount("/ui", StaticFiles(directory=STATIC_DIR), name="ui")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        headers = {**_NO_CACHE, "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    @app.get("/dashboard/config", tags=["dashboard"])
    async def dashboard_config() -> DashboardConfig:
        """Links to the operator tools, the trading mode and whether live events stream."""
        return DashboardConfig(
            version=version,
            mode=mode(),
            links=dict(links),
            live_events=events is not None,
            token_required=token_required,
            desk=desk,
            strategies=sorted(available_strategies()),
        )

    @app.get("/alerts", tags=["dashboard"])
    async def alerts(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[EventView]:
        """The latest alerts seen on the bus, newest first (empty when the stream is off)."""
        if events is None:
            return []
        return [EventView.model_validate(a) for a in events.alerts(limit)]

    @app.get("/consensus", tags=["dashboard"])
    async def consensus(
        symbol: str | None = None,
        outcome: Literal["execute", "manual_review", "reject"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> list[EventView]:
        """The strategies' latest consensus decisions with every vote, newest first (seen on the bus
        since the orchestrator started)."""
        if events is None:
            return []
        return [EventView.model_validate(e) for e in events.consensus(symbol, outcome, limit)]

    @app.get("/queues", tags=["dashboard"])
    async def queue_depths() -> QueuesView:
        """The bus's queues with the messages waiting in each."""
        if queues is None:
            return QueuesView(
                available=False,
                message="queue depths need the RabbitMQ management API: set "
                "TRADESWARM_ORCHESTRATOR_RABBITMQ_MANAGEMENT_URL",
            )
        return await queues()

    @app.get(
        "/events",
        tags=["dashboard"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
    )
    async def event_stream(request: Request) -> StreamingResponse:
        """Server-sent events fed from the bus: ``candle``, ``consensus_decision``, ``order_update``,
        ``fill``, ``portfolio_snapshot``, ``risk_alert``, ``risk_decision``, ``compliance_decision``,
        ``command_ack``; ``lagged`` when this client fell behind and lost events."""
        if events is None:
            body = b"retry: 60000\nevent: unavailable\ndata: {}\n\n"
            return StreamingResponse(iter([body]), media_type="text/event-stream", headers=_NO_CACHE)
        return StreamingResponse(
            events.stream(), media_type="text/event-stream", headers={**_NO_CACHE, "X-Accel-Buffering": "no"}
        )
