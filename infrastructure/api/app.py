"""The FastAPI application: read endpoints, backtest jobs, and authenticated control commands.

Errors are always JSON ``{"status": <int>, "message": <str>}``. Mutating endpoints (``POST``) need
``Authorization: Bearer <TRADESWARM_API_TOKEN>``, compared in constant time; with no token
configured they are refused (fail closed).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.routing import escape
from infrastructure.api.dashboard import add_dashboard
from infrastructure.api.desk import DeskApi, add_desk_routes
from infrastructure.api.events import EventHub
from infrastructure.api.jobs import BacktestJobs
from infrastructure.api.ports import (
    CommandRefused,
    ControlPlane,
    ReviewConflict,
    ReviewNotFound,
    TradingReadModel,
    UnknownTarget,
)
from infrastructure.api.queues import QueueDepths
from infrastructure.api.schemas import (
    AgentView,
    BacktestJobView,
    BacktestRequest,
    CommandView,
    ControlRequest,
    DecisionView,
    EquityPoint,
    ErrorBody,
    HealthView,
    OrderView,
    Page,
    PortfolioView,
    PositionView,
    ReviewVerdictRequest,
    ReviewView,
    SeriesView,
    SignalView,
    SnapshotView,
    TradeView,
)
from tradeswarm import __version__

API_TITLE = "tradeswarm"
MAX_PAGE = 500

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The request body could not be parsed (not JSON, not UTF-8)."},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    404: {"model": ErrorBody, "description": "Not found."},
    409: {"model": ErrorBody, "description": "The resource's state does not allow it (e.g. a review already decided)."},
    422: {"model": ErrorBody, "description": "Invalid request."},
    503: {"model": ErrorBody, "description": "A dependency is unavailable."},
}

_BEARER = HTTPBearer(auto_error=False, description="The API token (TRADESWARM_API_TOKEN).")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""Free-text filters: no control characters (PostgreSQL stores no NUL; nothing legitimate has one)."""
Filter = Annotated[str | None, Query(max_length=128, pattern=PRINTABLE)]


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(status=status, message=message).model_dump(), status_code=status, headers=headers)


def _allowed_methods(app: FastAPI, path: str) -> str:
    """Every documented method of every route whose path matches ``path`` (a path served by two
    routes, e.g. ``GET`` and ``POST /backtests``, must list both in a 405's ``Allow``)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.include_in_schema and route.path_regex.fullmatch(path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def create_app(
    control: ControlPlane,
    read_model: TradingReadModel | None,
    jobs: BacktestJobs | None,
    *,
    api_token: SecretStr | None,
    desk: DeskApi | None = None,
    events: EventHub | None = None,
    queues: QueueDepths | None = None,
    links: Mapping[str, str] | None = None,
) -> FastAPI:
    """The API over ``control`` (live swarm), ``read_model`` (PostgreSQL) and ``jobs`` (backtests),
    and the web dashboard at ``/`` with its live stream (``events``) and queue depths (``queues``).

    ``read_model``/``jobs`` may be None (no database / no backtester configured): their endpoints
    then answer 503 with a message saying so.
    """
    app = FastAPI(
        title=API_TITLE,
        version=__version__,
        description=(
            "REST API of the tradeswarm orchestrator: agents and health, market snapshots, portfolio, "
            "orders, trades, signals and decisions, backtest jobs, the review queue of MANUAL_REVIEW decisions, "
            "and the control commands (pause, resume, halt = kill switch, flatten). POST endpoints need a bearer "
            "token."
        ),
        responses=_ERRORS,
    )
    token = api_token.get_secret_value().encode() if api_token and api_token.get_secret_value() else None

    async def require_token(credentials: Credentials) -> None:
        if token is None:
            raise HTTPException(503, "mutating endpoints are disabled: TRADESWARM_API_TOKEN is not set")
        given = credentials.credentials.encode() if credentials is not None else b""
        if credentials is None or credentials.scheme.lower() != "bearer" or not hmac.compare_digest(given, token):
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})

    def need_db() -> TradingReadModel:
        if read_model is None:
            raise HTTPException(503, "no database is configured for the API")
        return read_model

    def need_jobs() -> BacktestJobs:
        if jobs is None:
            raise HTTPException(503, "no backtest runner is configured")
        return jobs

    add_dashboard(
        app,
        events=events,
        queues=queues,
        links=links or {},
        mode=lambda: control.health().mode,
        version=__version__,
        token_required=token is not None,
        desk=desk is not None and desk.analyzer is not None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (allowed := _allowed_methods(app, request.url.path)):
            headers = {**(headers or {}), "Allow": allowed}
        return _error(exc.status_code, str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}" for err in exc.errors()
        )
        return _error(422, f"invalid request: {problems}")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}")

    # ------------------------------------------------------------------------------ live state

    @app.get("/health", tags=["swarm"])
    async def health() -> HealthView:
        """The swarm's status (derived from every agent's heartbeats) and the trading mode."""
        return control.health()

    @app.get("/agents", tags=["swarm"])
    async def agents() -> list[AgentView]:
        """Every agent known from its heartbeats, with its state (up / degraded / down)."""
        return control.agents()

    @app.get("/market/symbols", tags=["market"])
    async def market_symbols() -> list[SeriesView]:
        """The series (venue, symbol, timeframe) with recent indicator snapshots."""
        return control.market_series()

    @app.get("/market/{symbol:path}/latest", tags=["market"])
    async def market_latest(
        symbol: Annotated[
            str, Path(description="`BTC/USDT` or its escaped form `BTC-USDT`.", max_length=128, pattern=PRINTABLE)
        ],
        timeframe: Annotated[str | None, Query(pattern=r"^\d{1,3}[smhdwM]$")] = None,
        venue: Filter = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> list[SnapshotView]:
        """Recent closed candles of one symbol with their indicators, oldest first."""
        snapshots = control.market_latest(escape(symbol), timeframe, venue, limit)
        if not snapshots:
            raise HTTPException(404, f"no snapshots for {symbol}")
        return snapshots

    # ------------------------------------------------------------------------------ stored state

    @app.get("/portfolio", tags=["trading"])
    async def portfolio(account: Filter = None) -> PortfolioView:
        """The latest portfolio snapshot."""
        view = await need_db().portfolio(account)
        if view is None:
            raise HTTPException(404, "no portfolio snapshot stored yet")
        return view

    @app.get("/portfolio/equity", tags=["trading"])
    async def equity_curve(
        account: Filter = None, limit: Annotated[int, Query(ge=1, le=5000)] = 1000
    ) -> list[EquityPoint]:
        """The equity of the stored portfolio snapshots (the latest ``limit``), oldest first."""
        return await need_db().equity_curve(account, limit)

    @app.get("/positions", tags=["trading"])
    async def positions(account: Filter = None, include_flat: bool = False) -> list[PositionView]:
        """Open positions (all with ``include_flat``)."""
        return await need_db().positions(account, include_flat)

    @app.get("/orders", tags=["trading"])
    async def orders(
        limit: Limit = 50, offset: Offset = 0, status: Filter = None, symbol: Filter = None
    ) -> Page[OrderView]:
        """Orders, newest first."""
        return await need_db().orders(status=status, symbol=symbol, limit=limit, offset=offset)

    @app.get("/trades", tags=["trading"])
    async def trades(limit: Limit = 50, offset: Offset = 0, symbol: Filter = None) -> Page[TradeView]:
        """Fills, newest first."""
        return await need_db().trades(symbol=symbol, limit=limit, offset=offset)

    @app.get("/signals", tags=["trading"])
    async def signals(limit: Limit = 50, offset: Offset = 0, symbol: Filter = None) -> Page[SignalView]:
        """Trade intents of the strategy agent, newest first."""
        return await need_db().signals(symbol=symbol, limit=limit, offset=offset)

    add_desk_routes(app, desk, require_token)

    @app.get("/decisions", tags=["trading"])
    async def decisions(
        limit: Limit = 50, offset: Offset = 0, stage: Literal["risk", "compliance", "desk"] | None = None
    ) -> Page[DecisionView]:
        """Risk, compliance and AI desk decisions, each with its rationale, newest first."""
        return await need_db().decisions(stage=stage, limit=limit, offset=offset)

    # ------------------------------------------------------------------------------ backtests

    @app.post("/backtests", status_code=202, tags=["backtests"], dependencies=[Depends(require_token)])
    async def start_backtest(request: BacktestRequest) -> BacktestJobView:
        """Start a backtest job in the background; poll ``GET /backtests/{id}``."""
        return need_jobs().submit(request)

    @app.get("/backtests", tags=["backtests"])
    async def list_backtests(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[BacktestJobView]:
        """Recent backtest jobs, newest first, without their results (``GET /backtests/{id}`` has them)."""
        summaries = []
        for job in need_jobs().list()[:limit]:
            result = job.result
            if result is not None:
                result = result.model_copy(update={"equity_curve": [], "trades": [], "limits": {}})
            summaries.append(job.model_copy(update={"result": result}))
        return summaries

    @app.get("/backtests/{job_id}", tags=["backtests"])
    async def get_backtest(job_id: UUID) -> BacktestJobView:
        """A backtest job: its state and, once succeeded, summary, equity curve and trades."""
        job = need_jobs().get(job_id)
        if job is None:
            raise HTTPException(404, f"no backtest job {job_id}")
        return job

    # ------------------------------------------------------------------------------ review queue

    @app.get("/reviews", tags=["reviews"])
    async def list_reviews(
        state: Literal["pending", "approved", "rejected", "expired"] | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[ReviewView]:
        """MANUAL_REVIEW decisions waiting for (or decided by) a person, newest first. A pending
        review past its ``expires_at`` is ``expired`` and can no longer be decided."""
        return await control.reviews(state, limit, offset)

    @app.get("/reviews/{review_id}", tags=["reviews"])
    async def get_review(review_id: UUID) -> ReviewView:
        """One review: the trade the consensus would make, its votes, and the verdict once given."""
        view = await control.review(review_id)
        if view is None:
            raise HTTPException(404, f"no review {review_id}")
        return view

    async def _decide(review_id: UUID, approve: bool, body: ReviewVerdictRequest) -> ReviewView:
        try:
            return await control.decide_review(review_id, approve=approve, reviewer=body.reviewer, note=body.note)
        except ReviewNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except ReviewConflict as exc:
            raise HTTPException(409, str(exc)) from None
        except CommandRefused as exc:
            raise HTTPException(503, str(exc)) from None

    @app.post("/reviews/{review_id}/approve", tags=["reviews"], dependencies=[Depends(require_token)])
    async def approve_review(review_id: UUID, body: ReviewVerdictRequest) -> ReviewView:
        """Approve a pending review: the strategy agent turns it into its trade intent, which then
        goes through risk, compliance and execution like any other (they may still refuse it)."""
        return await _decide(review_id, True, body)

    @app.post("/reviews/{review_id}/reject", tags=["reviews"], dependencies=[Depends(require_token)])
    async def reject_review(review_id: UUID, body: ReviewVerdictRequest) -> ReviewView:
        """Reject a pending review: nothing trades."""
        return await _decide(review_id, False, body)

    # ------------------------------------------------------------------------------ control

    @app.api_route(
        "/control/commands", methods=["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"], include_in_schema=False
    )
    async def _commands_are_read_only() -> JSONResponse:
        # without this, POST /control/commands would reach POST /control/{command} and answer 422
        return _error(405, "Method Not Allowed", headers={"Allow": "GET"})

    @app.post("/control/{command}", status_code=202, tags=["control"], dependencies=[Depends(require_token)])
    async def control_command(
        command: Literal["pause", "resume", "halt", "flatten"], body: ControlRequest | None = None
    ) -> CommandView:
        """Publish a command to the agents. HALT is the kill switch (no new orders, open orders
        cancelled); poll ``GET /control/commands/{id}`` until ``complete``."""
        body = body or ControlRequest()
        try:
            return await control.issue(command, target=body.target, reason=body.reason, issued_by="api")
        except UnknownTarget as exc:
            raise HTTPException(404, str(exc)) from None
        except CommandRefused as exc:
            raise HTTPException(503, str(exc)) from None

    @app.get("/control/commands", tags=["control"])
    async def list_commands(limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50) -> list[CommandView]:
        """Recent commands with their acknowledgements, newest first."""
        return control.commands(limit)

    @app.get("/control/commands/{command_id}", tags=["control"])
    async def get_command(command_id: UUID) -> CommandView:
        """One command's progress: which agents acknowledged it, which are awaited."""
        view = control.command(command_id)
        if view is None:
            raise HTTPException(404, f"no command {command_id}")
        return view

    return app
