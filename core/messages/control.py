"""Control-plane contracts: heartbeats, commands and their acknowledgements, agent status, alerts,
partition assignments."""

from __future__ import annotations

from typing import Annotated, Self
from uuid import UUID

from pydantic import Field, model_validator

from core.domain import CommandKind, Severity, TradingState
from core.messages.base import (
    AgentId,
    Payload,
    ReasonCode,
    ShortText,
    Symbol,
    UtcDatetime,
    Venue,
)
from core.messages.registry import register

AgentKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


@register
class Heartbeat(Payload):
    """An agent's periodic sign of life, with its counters."""

    TYPE = "heartbeat"

    agent_id: AgentId
    agent_kind: AgentKind
    version: str = Field(max_length=32)
    host: str = Field(max_length=255)
    pid: int = Field(ge=0)
    started_at: UtcDatetime
    processed: int = Field(ge=0)
    failed: int = Field(ge=0)
    dead_lettered: int = Field(ge=0)
    ready: bool
    paused: bool = False
    halted: bool = False


@register
class Command(Payload):
    """An orchestrator command: pause / resume / halt (kill switch) / flatten.

    ``target`` is ``all`` or an agent kind. Agents that obey it answer with a :class:`CommandAck`.
    """

    TYPE = "command"

    command_id: UUID
    kind: CommandKind
    target: Annotated[str, Field(pattern=r"^(all|[a-z][a-z0-9_]{0,39})$")] = "all"
    reason: ShortText = ""
    issued_by: str = Field(default="orchestrator", max_length=64)


@register
class CommandAck(Payload):
    """An agent's acknowledgement that it has carried out a command."""

    TYPE = "command_ack"

    command_id: UUID
    kind: CommandKind
    agent_id: AgentId
    agent_kind: AgentKind
    ok: bool = True
    detail: ShortText = ""


@register
class AgentStatus(Payload):
    """The orchestrator's view of one agent (UP, DEGRADED, DOWN...)."""

    TYPE = "agent_status"

    agent_id: AgentId
    agent_kind: AgentKind
    state: Annotated[str, Field(pattern=r"^(starting|up|degraded|down|stopped)$")]
    last_seen: UtcDatetime | None = None
    detail: ShortText = ""


@register
class RiskAlert(Payload):
    """A warning or critical condition: a limit breached, VaR over budget, a stale feed, an agent down."""

    TYPE = "risk_alert"

    severity: Severity
    code: ReasonCode
    message: ShortText
    venue: Venue | None = None
    symbol: Symbol | None = None
    value: FiniteFloat | None = None
    limit: FiniteFloat | None = None
    trading_state: TradingState | None = None
    """The risk trading state from this alert on; set only by the alerts that change it (the drawdown
    breaker tripping or lifting, a command), so the alerts alone tell the state's history."""


@register
class PartitionAssignment(Payload):
    """Which live replica of a symbol-partitioned agent kind consumes which partition queue.

    Published by the orchestrator on ``control.assignment.<agent kind>`` whenever the kind's live
    replicas change, and again periodically (late joiners, lost messages). ``owners[i]`` is the
    agent id that consumes partition ``i``; a replica consumes exactly the partitions naming it.
    An assignment older than ``valid_for_s`` is stale: replicas then fall back to consuming every
    partition (single-active-consumer keeps that correct, just unbalanced).
    """

    TYPE = "partition_assignment"

    agent_kind: AgentKind
    partitions: int = Field(ge=1, le=64)
    owners: tuple[AgentId, ...] = Field(min_length=1, max_length=64)
    generation: int = Field(ge=0)
    """Counts the assignments the orchestrator computed for this kind (changes of membership)."""
    valid_for_s: FiniteFloat = Field(gt=0, le=86_400)

    @model_validator(mode="after")
    def _one_owner_per_partition(self) -> Self:
        if len(self.owners) != self.partitions:
            raise ValueError(f"owners names {len(self.owners)} partitions, expected {self.partitions}")
        return self

    def owned_by(self, agent_id: str) -> frozenset[int]:
        """The partitions ``agent_id`` consumes under this assignment."""
        return frozenset(i for i, owner in enumerate(self.owners) if owner == agent_id)
