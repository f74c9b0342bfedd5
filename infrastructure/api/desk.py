"""The AI desk's endpoints: ``POST /analyze``, ``GET /desk/decisions``, ``GET /desk/decisions/{id}``.

Each decision is shown as one JSON shape (the dashboard builds on it)::

    {decision_id, symbol, timeframe, ts, provider,
     roles: {technical|sentiment|tokenomics|researcher|trader|risk_manager:
             {status: ok|unavailable|failed, output: {...}|null, model, tokens_in, tokens_out, reason}},
     final: {action: BUY|SELL|HOLD, size_pct, verdict: APPROVE|ADJUST|REJECT|NO_TRADE, reason},
     tokens: {in, out, cost_usd}}

``/analyze`` adds ``portfolio``: the portfolio after the trade when the decision made one, else null.
The analysis itself is done by a :class:`DeskAnalyzer` the API host provides (the orchestrator loads
``backtesting.desk_api:desk_analyzer`` by name, so it never imports the desk's code).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import ConfigDict, Field

from core.desk.store import DeskStore
from core.errors import TradeswarmError
from core.messages.desk import DeskDecision
from infrastructure.api.schemas import ApiModel, Money, Page, Timestamp

Mode = Literal["live", "backtest_step"]


class DeskRoleView(ApiModel):
    """One role of a desk decision."""

    status: Literal["ok", "unavailable", "failed"]
    output: dict[str, Any] | None
    model: str
    tokens_in: int
    tokens_out: int
    reason: str


class DeskFinalView(ApiModel):
    """The desk's final decision."""

    action: Literal["BUY", "SELL", "HOLD"]
    size_pct: float
    verdict: Literal["APPROVE", "ADJUST", "REJECT", "NO_TRADE"]
    reason: str


class DeskTokensView(ApiModel):
    """Tokens and cost of a decision (every role's calls)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)

    tokens_in: int = Field(alias="in")
    tokens_out: int = Field(alias="out")
    cost_usd: Money


class DeskDecisionView(ApiModel):
    """A desk decision with every role's output."""

    decision_id: UUID
    symbol: str
    timeframe: str
    ts: datetime
    provider: str
    roles: dict[str, DeskRoleView]
    final: DeskFinalView
    tokens: DeskTokensView


class DeskAnalysisView(DeskDecisionView):
    """``POST /analyze``: the decision, and the portfolio when a trade was executed."""

    portfolio: dict[str, Any] | None = None


class AnalyzeRequest(ApiModel):
    """Run the desk once on ``symbol``: on the live market (``live``) or on the recorded candles up to
    ``timestamp`` through the backtest path (``backtest_step``)."""

    symbol: str = Field(pattern=r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
    mode: Mode = "live"
    timestamp: Timestamp | None = Field(
        default=None, description="backtest_step: the decision time, RFC 3339 with its offset (default: last)."
    )


class AnalysisFailed(TradeswarmError):
    """The desk could not analyse a valid request: 404 for a symbol without candles, 409 (the data's
    state does not allow it: too few candles closed by then, no decision) by default. Never 422: the
    request itself was valid (the API fuzz holds the API to that)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class DeskAnalyzer(Protocol):
    """Runs one desk decision for the API."""

    async def analyze(
        self, symbol: str, mode: Mode, timestamp: datetime | None
    ) -> tuple[DeskDecision, dict[str, Any] | None]:
        """The decision (stored and published by the analyzer) and the portfolio after a trade, or
        raise :class:`AnalysisFailed`."""
        ...


@dataclass(frozen=True, slots=True)
class DeskApi:
    """What the desk endpoints use: the decision store and, optionally, an analyzer."""

    store: DeskStore
    analyzer: DeskAnalyzer | None = None


def desk_view(d: DeskDecision) -> DeskDecisionView:
    """The API shape of a decision."""
    roles = {
        r.role.value: DeskRoleView(
            status=r.status,
            output=r.output.model_dump(mode="json") if r.output is not None else None,
            model=r.model,
            tokens_in=r.tokens_in,
            tokens_out=r.tokens_out,
            reason=r.reason,
        )
        for r in d.roles
    }
    return DeskDecisionView(
        decision_id=d.decision_id,
        symbol=d.symbol,
        timeframe=d.timeframe,
        ts=d.ts,
        provider=d.provider,
        roles=roles,
        final=DeskFinalView(action=d.action, size_pct=d.size_pct, verdict=d.verdict, reason=d.reason),
        tokens=DeskTokensView(tokens_in=d.tokens_in, tokens_out=d.tokens_out, cost_usd=d.cost_usd),
    )


def add_desk_routes(app: FastAPI, desk: DeskApi | None, require_token: Callable[..., Awaitable[None]]) -> None:
    """Mount the desk's endpoints (503 when no desk is configured)."""

    def need_desk() -> DeskApi:
        if desk is None:
            raise HTTPException(503, "the AI desk is not configured for the API")
        return desk

    @app.post("/analyze", tags=["desk"], dependencies=[Depends(require_token)])
    async def analyze(request: AnalyzeRequest) -> DeskAnalysisView:
        """Run the AI desk once on a symbol: every role's output, the final decision, and the portfolio
        snapshot when the decision made a trade."""
        api = need_desk()
        if api.analyzer is None:
            raise HTTPException(503, "no desk analyzer is configured")
        try:
            decision, portfolio = await api.analyzer.analyze(request.symbol, request.mode, request.timestamp)
        except AnalysisFailed as exc:
            raise HTTPException(exc.status, str(exc)) from None
        view = desk_view(decision)
        return DeskAnalysisView(**dict(view), portfolio=portfolio)

    @app.get("/desk/decisions", tags=["desk"])
    async def desk_decisions(
        symbol: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")] = None,
        outcome: Annotated[Literal["APPROVE", "ADJUST", "REJECT", "NO_TRADE"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")] = 0,
    ) -> Page[DeskDecisionView]:
        """The desk's decisions, newest first (``outcome`` filters on the verdict)."""
        rows, total = await need_desk().store.query(symbol=symbol, outcome=outcome, limit=limit, offset=offset)
        return Page(items=[desk_view(d) for d in rows], total=total, limit=limit, offset=offset)

    @app.get("/desk/decisions/{decision_id}", tags=["desk"])
    async def desk_decision(decision_id: UUID) -> DeskDecisionView:
        """One desk decision with every role's output."""
        decision = await need_desk().store.get(decision_id)
        if decision is None:
            raise HTTPException(404, f"no desk decision {decision_id}")
        return desk_view(decision)
