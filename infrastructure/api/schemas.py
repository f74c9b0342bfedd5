"""Response and request bodies of the REST API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

T = TypeVar("T")


def _plain(value: Decimal) -> str:
    """A decimal as a plain decimal string: ``10000``, never ``1E+4``."""
    return format(value, "f")


Money = Annotated[Decimal, PlainSerializer(_plain, return_type=str, when_used="json")]
"""A Decimal amount written in JSON as a plain decimal string (``"10000"``, ``"0.00012"``)."""

POSITIVE_DECIMAL = r"^([1-9][0-9]{0,14}(\.[0-9]{1,18})?|0\.[0-9]{0,17}[1-9][0-9]{0,17}|1000000000000000(\.0{1,18})?)$"
"""A positive decimal up to 10**15 written out plainly (no exponent, no sign, no leading zero): the
same bound as the number form, so a string the schema allows is never refused (schemathesis found
an 18-digit one that was)."""


def _positive_decimal_input(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(POSITIVE_DECIMAL, value):
        raise ValueError("a positive decimal string like 10000 or 2500.50 (no exponent, no sign)")
    if isinstance(value, bool):
        raise ValueError("a number or a decimal string, not a boolean")
    return value


def _timestamp_input(value: object) -> object:
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("an RFC 3339 date-time string with its UTC offset, e.g. 2024-01-31T00:00:00Z")
    return value


PositiveAmount = Annotated[
    Decimal,
    BeforeValidator(_positive_decimal_input),
    Field(gt=0, le=Decimal(10) ** 15),
    PlainSerializer(_plain, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 10**15},
                {"type": "string", "pattern": POSITIVE_DECIMAL},
            ]
        },
        mode="validation",
    ),
]
"""A positive amount given as a JSON number or a plain decimal string (schema and validation agree)."""

Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_input)]
"""An RFC 3339 date-time WITH its offset (a number or a naive date-time is refused)."""


class ApiModel(BaseModel):
    """Base of every API body: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(ApiModel):
    """Every error response: the HTTP status again and a human-readable message."""

    status: int
    message: str


class Page(ApiModel, Generic[T]):
    """One page of a list, newest first."""

    items: list[T]
    total: int = Field(ge=0, description="Rows matching the filters, over all pages.")
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)


class AgentView(ApiModel):
    """One agent as seen through its heartbeats."""

    agent_id: str
    kind: str
    version: str
    host: str
    pid: int
    started_at: datetime
    last_seen: datetime
    state: Literal["up", "degraded", "down"]
    ready: bool
    paused: bool
    halted: bool
    processed: int
    failed: int
    dead_lettered: int
    restarts: int
    down_since: datetime | None = None


class AckView(ApiModel):
    """One acknowledgement of a command."""

    agent_id: str
    agent_kind: str
    ok: bool
    detail: str
    received_at: datetime


class CommandView(ApiModel):
    """A command and its progress: complete once every required agent acknowledged it."""

    command_id: UUID
    kind: Literal["pause", "resume", "halt", "flatten"]
    target: str
    reason: str
    issued_by: str
    issued_at: datetime
    state: Literal["pending", "complete", "failed"]
    complete: bool
    required_kinds: list[str]
    acknowledged: list[str]
    awaiting: list[str] = Field(description="Live agents of a required kind that have not acknowledged yet.")
    missing_kinds: list[str] = Field(description="Required kinds from which no acknowledgement arrived yet.")
    acks: list[AckView]


class HealthView(ApiModel):
    """The swarm at a glance."""

    status: Literal["ok", "degraded", "down", "empty"]
    trading: Literal["active", "paused", "halted", "mixed"] = Field(
        description="What the agents that obey HALT and PAUSE report doing (their acknowledgements and heartbeats); "
        "mixed: some do, some do not."
    )
    trading_intended: Literal["active", "paused", "halted"] = Field(
        description="What the operator last asked for (kept durably by the orchestrator)."
    )
    disagreeing: list[str] = Field(
        default_factory=list,
        description="Ids of live agents whose reported state differs from the intended one (commanded again).",
    )
    mode: str
    now: datetime
    agents_up: int
    agents_down: int
    agents_total: int
    down: list[str] = Field(description="Ids of the agents reported DOWN.")
    last_halt: CommandView | None = None


class SeriesView(ApiModel):
    """A market series the orchestrator has indicator snapshots for."""

    venue: str
    symbol: str
    timeframe: str
    snapshots: int
    last_close_time: datetime | None


class SnapshotView(ApiModel):
    """One closed candle with its indicators, regime and patterns."""

    venue: str
    symbol: str
    timeframe: str
    open_time: datetime
    close_time: datetime
    open: Money
    high: Money
    low: Money
    close: Money
    volume: Money
    indicators: dict[str, float]
    patterns: dict[str, int]
    regime: str


class OrderView(ApiModel):
    """An order as stored by the execution agent."""

    client_order_id: str
    intent_id: UUID
    account: str
    venue: str
    symbol: str
    side: str
    order_type: str
    quantity: Money
    limit_price: Money | None
    status: str
    filled_quantity: Money
    average_price: Money | None
    venue_order_id: str | None
    reason: str
    created_at: datetime
    updated_at: datetime


class TradeView(ApiModel):
    """One fill."""

    fill_id: str
    ts: datetime
    account: str
    venue: str
    symbol: str
    side: str
    price: Money
    quantity: Money
    fee: Money
    fee_currency: str
    liquidity: str
    client_order_id: str
    venue_order_id: str | None
    intent_id: UUID


class PositionView(ApiModel):
    """A position of one account."""

    account: str
    venue: str
    symbol: str
    quantity: Money
    average_price: Money
    realized_pnl: Money
    fees: Money
    mark_price: Money | None
    updated_at: datetime


class PortfolioView(ApiModel):
    """The latest portfolio snapshot of one account."""

    account: str
    ts: datetime
    cash: Money
    equity: Money
    peak_equity: Money
    gross_exposure: Money
    net_exposure: Money
    realized_pnl: Money
    unrealized_pnl: Money
    fees: Money
    drawdown: float
    open_positions: int
    trading_state: str


class SignalView(ApiModel):
    """A trade intent emitted by the strategy agent (with the fused votes' rationale)."""

    intent_id: UUID
    ts: datetime
    venue: str
    symbol: str
    payload: dict[str, Any]


class DecisionView(ApiModel):
    """A risk, compliance or AI desk decision with its rationale (a desk decision's ``intent_id`` is its
    decision id)."""

    intent_id: UUID
    stage: Literal["risk", "compliance", "desk"]
    ts: datetime
    verdict: str
    rationale: str
    payload: dict[str, Any]


class VoteView(ApiModel):
    """One strategy's vote behind a consensus."""

    strategy: str
    direction: str
    score: float
    confidence: float
    rationale: str


class ReviewView(ApiModel):
    """A MANUAL_REVIEW in the review queue: the trade the consensus would make, and the verdict."""

    review_id: UUID = Field(description="Also the id of the trade intent an approval publishes.")
    state: Literal["pending", "approved", "rejected", "expired"]
    venue: str
    symbol: str
    timeframe: str
    side: Literal["buy", "sell"]
    direction: Literal["long", "short", "exit"]
    reference_price: Money
    stop_loss: Money | None
    take_profit: Money | None
    score: float
    variance: float = Field(description="Disagreement between directions (docs/strategies.md).")
    method: str
    strategies: list[str]
    votes: list[VoteView]
    rationale: str
    requested_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str = ""


class ReviewVerdictRequest(ApiModel):
    """Who decides a review, and why."""

    reviewer: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$", description="The person deciding.")
    note: str = Field(default="", max_length=2000)


class BacktestRequest(ApiModel):
    """A backtest job: which data, which period, which parameters."""

    symbol: str = Field(default="BTC/USDT", pattern=r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
    timeframe: str = Field(default="1h", pattern=r"^\d{1,3}[smhdwM]$")
    venue: str = Field(default="binance", pattern=r"^[a-z0-9][a-z0-9_]{0,39}$")
    start: Timestamp | None = None
    end: Timestamp | None = None
    initial_cash: PositiveAmount = Decimal(10_000)
    params: dict[str, Any] = Field(default_factory=dict, description="Runner-specific parameters.")

    @model_validator(mode="after")
    def _period(self) -> BacktestRequest:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class EquityPoint(ApiModel):
    """Equity at one instant."""

    ts: datetime
    equity: Money


class CandleBar(ApiModel):
    """One candle of a backtested series (for the candlestick chart with the trades)."""

    symbol: str
    open_time: datetime
    open: float
    high: float
    low: float
    close: float


class BacktestResult(ApiModel):
    """What a backtest runner returns: summary metrics, the equity curve and the trades."""

    summary: dict[str, float | int | str | None]
    equity_curve: list[EquityPoint]
    trades: list[dict[str, Any]]
    candles: list[CandleBar] = Field(
        default_factory=list, description="The backtested candles (merged into larger bars beyond a few thousand)."
    )
    limits: dict[str, Any] = Field(
        default_factory=dict,
        description="What the limits did: rejections, adjustments and alerts by reason, consensus outcomes, "
        "time in each trading state, the effective limits, the lowest cash and the undefined metrics "
        "with their reasons (the same keys as the CLI's summary.json).",
    )
    desk: dict[str, Any] | None = Field(
        default=None,
        description="An AI desk backtest (params.desk): decisions by verdict and action, intents, tokens in/out, "
        "cost in USD, and every decision with its role outputs (items, the GET /desk/decisions shape).",
    )


class BacktestJobView(ApiModel):
    """A backtest job and, once it finished, its result."""

    job_id: UUID
    state: Literal["queued", "running", "succeeded", "failed"]
    request: BacktestRequest
    submitted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    progress: int | None = Field(default=None, ge=0, description="Candles processed so far (while running).")
    progress_total: int | None = Field(default=None, ge=0, description="Candles the running job will process.")
    result: BacktestResult | None = None


class ControlRequest(ApiModel):
    """Optional body of a control command."""

    reason: str = Field(default="", max_length=2000)
    target: str = Field(default="all", pattern=r"^(all|[a-z][a-z0-9_]{0,39})$")


class EventView(ApiModel):
    """One event of the live stream (``GET /events``) as kept for ``GET /alerts``."""

    id: int
    type: str = Field(description="The message type: candle, fill, order_update, risk_alert, command_ack...")
    ts: str | None = Field(description="The message's event time (ISO 8601).")
    data: dict[str, Any]


class QueueView(ApiModel):
    """One queue of the bus: messages waiting, consumers attached."""

    name: str
    messages: int = Field(ge=0, description="Messages waiting (ready + unacknowledged).")
    consumers: int = Field(ge=0)
    delivered: int | None = Field(default=None, ge=0, description="Messages delivered so far (in-memory bus).")


class QueuesView(ApiModel):
    """The bus's queues, or why they cannot be listed."""

    available: bool
    message: str = ""
    queues: list[QueueView] = Field(default_factory=list)


class DashboardConfig(ApiModel):
    """What the dashboard needs to know about the process serving it."""

    version: str
    mode: str
    links: dict[str, str] = Field(description="Operator tools: rabbitmq (management UI), grafana.")
    live_events: bool = Field(description="Whether GET /events streams bus messages.")
    token_required: bool = Field(description="Whether state-changing calls are enabled (a token is configured).")
    desk: bool = Field(description="Whether the AI desk can analyse on demand (POST /analyze has an analyzer).")
    strategies: list[str] = Field(description="The strategy plugins a backtest can use.")
