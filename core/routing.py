"""The one module that owns routing keys and broker topology names.

Routing keys follow ``<domain>.<kind>.<venue>.<symbol>[.<timeframe>]`` for market and trading
messages, with symbols escaped (``BTC/USDT`` -> ``BTC-USDT``, ``BTC/USDT:USDT`` -> ``BTC-USDT-USDT``)
because ``/`` and ``:`` are awkward and ``.`` is a separator. Control messages use
``control.<kind>.<agent kind>[.<agent id>]`` (partition assignments ``control.assignment.<agent kind>``),
alerts ``alert.<severity>.<code>``, the AI desk ``desk.role.<venue>.<symbol>`` (one report per
role) and ``desk.decision.<venue>.<symbol>``.

No other module writes a routing key or an exchange/queue name as a string literal: agents build
their subscription patterns with :data:`TOPICS` and the queue names with :func:`queue_name`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.messages.base import Payload
from core.messages.control import AgentStatus, Command, CommandAck, Heartbeat, PartitionAssignment, RiskAlert
from core.messages.decisions import ComplianceDecision, RiskDecision
from core.messages.desk import DeskDecision, DeskRoleReport
from core.messages.market import BookTop, Candle, IndicatorSnapshot, Trade
from core.messages.orders import (
    Fill,
    OrderRequest,
    OrderUpdate,
    PortfolioSnapshot,
    PositionsSettled,
    PositionUpdate,
)
from core.messages.reviews import ReviewDecision, ReviewRequest
from core.messages.signals import ConsensusDecision, StrategyVote, TradeIntent

EXCHANGE = "tradeswarm.events"
"""The durable topic exchange every message is published to."""

DEAD_LETTER_EXCHANGE = "tradeswarm.dlx"
"""The durable direct exchange dead letters go to; each DLQ is bound with its queue's name."""

DEFAULT_DELIVERY_LIMIT = 5
"""Deliveries of one message before it is dead-lettered (``x-delivery-limit``; 3.10 has no default)."""

DEFAULT_MAX_QUEUE_LENGTH = 100_000
"""``x-max-length`` of every agent queue: a queue nobody drains cannot grow until the broker blocks
every publisher; past the cap the OLDEST message is dead-lettered (``drop-head`` with the queue's
dead-letter exchange: quorum queues on RabbitMQ 3.10 support ``drop-head`` and ``reject-publish``,
not ``reject-publish-dlx``), so it lands in the DLQ with reason ``maxlen`` instead of vanishing."""

REASON_HEADER = "x-tradeswarm-reason"
"""Header with the human-readable reason a message was dead-lettered."""

ORIGINAL_QUEUE_HEADER = "x-tradeswarm-queue"
"""Header naming the queue a dead letter came from."""

ORIGINAL_ROUTING_KEY_HEADER = "x-tradeswarm-routing-key"
"""Header with the routing key a dead letter was first published with."""


def escape(word: str) -> str:
    """Make a value safe as one routing-key word (``BTC/USDT:USDT`` -> ``BTC-USDT-USDT``)."""
    escaped = _ESCAPED.get(word)
    if escaped is None:
        escaped = word.replace("/", "-").replace(":", "-").replace(".", "_")
        if len(_ESCAPED) < 10_000:  # symbols and venues: a handful (bounded anyway)
            _ESCAPED[word] = escaped
    return escaped


_ESCAPED: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Topic:
    """A family of routing keys: a fixed prefix plus named variable words."""

    prefix: str
    fields: tuple[str, ...]

    def key(self, **values: str) -> str:
        """A concrete routing key; every field is required and escaped."""
        missing = [f for f in self.fields if f not in values]
        if missing:
            raise ValueError(f"routing key {self.prefix} needs {missing}")
        return ".".join([self.prefix, *(escape(values[f]) for f in self.fields)])

    def pattern(self, **values: str) -> str:
        """A binding pattern: omitted fields match any single word (``*``)."""
        unknown = set(values) - set(self.fields)
        if unknown:
            raise ValueError(f"{self.prefix} has no fields {sorted(unknown)}")
        words = [escape(values[f]) if f in values else "*" for f in self.fields]
        return ".".join([self.prefix, *words])

    def all(self) -> str:
        """A pattern matching every key of this topic."""
        return f"{self.prefix}.#"


CANDLES = Topic("market.candle", ("venue", "symbol", "timeframe"))
TRADES = Topic("market.trade", ("venue", "symbol"))
BOOK = Topic("market.book", ("venue", "symbol"))
INDICATORS = Topic("analysis.indicators", ("venue", "symbol", "timeframe"))
VOTES = Topic("signal.vote", ("venue", "symbol"))
CONSENSUS = Topic("signal.consensus", ("venue", "symbol"))
INTENTS = Topic("signal.intent", ("venue", "symbol"))
REVIEW_REQUESTS = Topic("signal.review", ("venue", "symbol"))
REVIEW_DECISIONS = Topic("review.decision", ("venue", "symbol"))
RISK_APPROVED = Topic("risk.approved", ("venue", "symbol"))
RISK_REJECTED = Topic("risk.rejected", ("venue", "symbol"))
COMPLIANCE_DECISIONS = Topic("compliance.decision", ("venue", "symbol"))
ORDERS_APPROVED = Topic("order.approved", ("venue", "symbol"))
ORDER_UPDATES = Topic("execution.order", ("venue", "symbol"))
FILLS = Topic("execution.fill", ("venue", "symbol"))
POSITIONS = Topic("portfolio.position", ("venue", "symbol"))
SETTLED = Topic("execution.settled", ("venue", "symbol"))
PORTFOLIO = Topic("portfolio.snapshot", ("account",))
ALERTS = Topic("alert", ("severity", "code"))
HEARTBEATS = Topic("control.heartbeat", ("agent_kind", "agent_id"))
COMMANDS = Topic("control.command", ("target",))
COMMAND_ACKS = Topic("control.ack", ("agent_kind", "agent_id"))
AGENT_STATUS = Topic("control.status", ("agent_kind", "agent_id"))
ASSIGNMENTS = Topic("control.assignment", ("agent_kind",))
DESK_ROLES = Topic("desk.role", ("venue", "symbol"))
DESK_DECISIONS = Topic("desk.decision", ("venue", "symbol"))


def _risk_key(p: RiskDecision) -> str:
    topic = RISK_APPROVED if p.approved else RISK_REJECTED
    return f"{topic.prefix}.{p.venue}.{escape(p.symbol)}"


_KEY_BUILDERS: dict[type[Payload], Callable[[Any], str]] = {
    Candle: lambda p: f"market.candle.{p.venue}.{escape(p.symbol)}.{p.timeframe}",
    Trade: lambda p: f"market.trade.{p.venue}.{escape(p.symbol)}",
    BookTop: lambda p: f"market.book.{p.venue}.{escape(p.symbol)}",
    IndicatorSnapshot: lambda p: f"analysis.indicators.{p.venue}.{escape(p.symbol)}.{p.timeframe}",
    StrategyVote: lambda p: f"signal.vote.{p.venue}.{escape(p.symbol)}",
    ConsensusDecision: lambda p: f"signal.consensus.{p.venue}.{escape(p.symbol)}",
    TradeIntent: lambda p: f"signal.intent.{p.venue}.{escape(p.symbol)}",
    ReviewRequest: lambda p: f"signal.review.{p.venue}.{escape(p.symbol)}",
    ReviewDecision: lambda p: f"review.decision.{p.request.venue}.{escape(p.request.symbol)}",
    RiskDecision: _risk_key,
    ComplianceDecision: lambda p: f"compliance.decision.{p.venue}.{escape(p.symbol)}",
    OrderRequest: lambda p: f"order.approved.{p.venue}.{escape(p.symbol)}",
    OrderUpdate: lambda p: f"execution.order.{p.venue}.{escape(p.symbol)}",
    Fill: lambda p: f"execution.fill.{p.venue}.{escape(p.symbol)}",
    PositionUpdate: lambda p: f"portfolio.position.{p.venue}.{escape(p.symbol)}",
    PositionsSettled: lambda p: f"execution.settled.{p.venue}.{escape(p.symbol)}",
    PortfolioSnapshot: lambda p: f"portfolio.snapshot.{p.account}",
    RiskAlert: lambda p: f"alert.{p.severity.value}.{p.code}",
    Heartbeat: lambda p: f"control.heartbeat.{p.agent_kind}.{p.agent_id}",
    Command: lambda p: f"control.command.{p.target}",
    CommandAck: lambda p: f"control.ack.{p.agent_kind}.{p.agent_id}",
    AgentStatus: lambda p: f"control.status.{p.agent_kind}.{p.agent_id}",
    PartitionAssignment: lambda p: f"control.assignment.{p.agent_kind}",
    DeskRoleReport: lambda p: f"desk.role.{p.venue}.{escape(p.symbol)}",
    DeskDecision: lambda p: f"desk.decision.{p.venue}.{escape(p.symbol)}",
}


CHANNELS: dict[type[Payload], tuple[Topic, ...]] = {
    Candle: (CANDLES,),
    Trade: (TRADES,),
    BookTop: (BOOK,),
    IndicatorSnapshot: (INDICATORS,),
    StrategyVote: (VOTES,),
    ConsensusDecision: (CONSENSUS,),
    TradeIntent: (INTENTS,),
    ReviewRequest: (REVIEW_REQUESTS,),
    ReviewDecision: (REVIEW_DECISIONS,),
    RiskDecision: (RISK_APPROVED, RISK_REJECTED),
    ComplianceDecision: (COMPLIANCE_DECISIONS,),
    OrderRequest: (ORDERS_APPROVED,),
    OrderUpdate: (ORDER_UPDATES,),
    Fill: (FILLS,),
    PositionUpdate: (POSITIONS,),
    PositionsSettled: (SETTLED,),
    PortfolioSnapshot: (PORTFOLIO,),
    RiskAlert: (ALERTS,),
    Heartbeat: (HEARTBEATS,),
    Command: (COMMANDS,),
    CommandAck: (COMMAND_ACKS,),
    AgentStatus: (AGENT_STATUS,),
    PartitionAssignment: (ASSIGNMENTS,),
    DeskRoleReport: (DESK_ROLES,),
    DeskDecision: (DESK_DECISIONS,),
}
"""The topic(s) each message type is published on (for the contract document and tests)."""


def routing_key(payload: Payload) -> str:
    """The routing key a payload is published with."""
    try:
        builder = _KEY_BUILDERS[type(payload)]
    except KeyError:
        raise ValueError(f"no routing key is defined for {type(payload).__name__}") from None
    return builder(payload)


def routed_types() -> frozenset[type[Payload]]:
    """Every payload class that has a routing key (all registered contracts)."""
    return frozenset(_KEY_BUILDERS)


def queue_name(agent_kind: str, purpose: str, partition: int | None = None) -> str:
    """A durable queue's name: ``<agent kind>.<purpose>[.p<N>]`` (readable in the management UI)."""
    base = f"{agent_kind}.{purpose}"
    return base if partition is None else f"{base}.p{partition}"


def dead_letter_queue(queue: str) -> str:
    """The dead-letter queue of ``queue``."""
    return f"{queue}.dlq"


def partition_of(symbol: str, partitions: int) -> int:
    """The partition of a symbol (stable across processes and runs: CRC-32, not ``hash``).

    When an agent is scaled out to N partition queues, each bound only to its symbols and consumed
    with single-active-consumer, every symbol's messages stay in order.
    """
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    return zlib.crc32(symbol.encode()) % partitions


def partition_symbols(symbols: Sequence[str], partition: int, partitions: int) -> list[str]:
    """The symbols of ``partition`` (``partition_of(symbol, partitions) == partition``), in the
    order given; empty when no symbol falls in it (the partition queue exists all the same)."""
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} is not in 0..{partitions - 1}")
    return [s for s in symbols if partition_of(s, partitions) == partition]


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words."""
    return _match(pattern.split("."), 0, key.split("."), 0)


def _match(pat: list[str], i: int, words: list[str], j: int) -> bool:
    while i < len(pat):
        word = pat[i]
        if word == "#":
            if i == len(pat) - 1:
                return True
            return any(_match(pat, i + 1, words, k) for k in range(j, len(words) + 1))
        if j >= len(words):
            return False
        if word not in ("*", words[j]):
            return False
        i += 1
        j += 1
    return j == len(words)
