"""Control-plane contracts: heartbeats, commands and their acknowledgements, agent status, alerts."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import Field

from core.domain import CommandKind, Severity
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
