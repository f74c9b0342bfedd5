"""Commands issued by the orchestrator and the acknowledgements collected for them.

A command is *complete* when every live (not DOWN) agent of each required kind acknowledged it,
and at least one agent of each required kind did: a HALT with no execution agent alive cannot be
confirmed, so it stays pending (fail closed) and the API says which kinds are missing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from agents.orchestrator.registry import AgentRecord, AgentState
from core.domain import CommandKind
from core.messages import Command, CommandAck


class TradingMode(StrEnum):
    """What the last trading command asked for."""

    ACTIVE = "active"
    PAUSED = "paused"
    HALTED = "halted"


class CommandState(StrEnum):
    """Progress of one command."""

    PENDING = "pending"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Ack:
    """One agent's acknowledgement."""

    agent_id: str
    agent_kind: str
    ok: bool
    detail: str
    received_at: datetime


@dataclass(slots=True)
class CommandRecord:
    """A command, when it was issued, who must acknowledge it, and who did."""

    command: Command
    issued_at: datetime
    required_kinds: tuple[str, ...]
    acks: dict[str, Ack] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandProgress:
    """Derived view of a command: its state, who acknowledged and who is still awaited."""

    state: CommandState
    acknowledged: tuple[str, ...]
    awaiting: tuple[str, ...]
    missing_kinds: tuple[str, ...]
    failed: tuple[str, ...]


def progress(record: CommandRecord, agents: Sequence[AgentRecord]) -> CommandProgress:
    """The progress of ``record`` given the agents known now (a pure function)."""
    required = set(record.required_kinds)
    live = [a for a in agents if a.kind in required and a.state is not AgentState.DOWN]
    failed = tuple(sorted(a.agent_id for a in record.acks.values() if not a.ok))
    acked_ok = {a.agent_id for a in record.acks.values() if a.ok}
    awaiting = tuple(sorted(a.agent_id for a in live if a.agent_id not in acked_ok))
    acked_kinds = {a.agent_kind for a in record.acks.values() if a.ok}
    missing = tuple(sorted(required - acked_kinds))
    if failed:
        state = CommandState.FAILED
    elif not awaiting and not missing:
        state = CommandState.COMPLETE
    else:
        state = CommandState.PENDING
    return CommandProgress(
        state=state,
        acknowledged=tuple(sorted(acked_ok)),
        awaiting=awaiting,
        missing_kinds=missing,
        failed=failed,
    )


class CommandBook:
    """The last ``keep`` commands by id, their acknowledgements, and the resulting trading mode."""

    def __init__(self, required: Mapping[CommandKind, Sequence[str]], keep: int = 200) -> None:
        self._required = {kind: tuple(required.get(kind, ())) for kind in CommandKind}
        self._keep = keep
        self._records: OrderedDict[UUID, CommandRecord] = OrderedDict()
        self.mode = TradingMode.ACTIVE

    def required_kinds(self, kind: CommandKind) -> tuple[str, ...]:
        """The agent kinds that must acknowledge ``kind``."""
        return self._required[kind]

    def issue(self, command: Command, now: datetime) -> CommandRecord:
        """Remember a command about to be published and update the trading mode."""
        required = self._required[command.kind]
        if command.target != "all":  # a command to one kind is acknowledged by that kind only
            required = tuple(k for k in required if k == command.target) or (command.target,)
        record = CommandRecord(command=command, issued_at=now, required_kinds=required)
        self._records[command.command_id] = record
        while len(self._records) > self._keep:
            self._records.popitem(last=False)
        if command.target == "all":
            if command.kind is CommandKind.HALT:
                self.mode = TradingMode.HALTED
            elif command.kind is CommandKind.PAUSE and self.mode is not TradingMode.HALTED:
                self.mode = TradingMode.PAUSED
            elif command.kind is CommandKind.RESUME:
                self.mode = TradingMode.ACTIVE
        return record

    def adopt(self, halted: bool, paused: bool) -> None:
        """Recover the trading mode from an agent's heartbeat (after the orchestrator restarted,
        before it issued any command itself)."""
        if halted:
            self.mode = TradingMode.HALTED
        elif paused and self.mode is TradingMode.ACTIVE:
            self.mode = TradingMode.PAUSED

    def retract(self, command_id: UUID, mode: TradingMode) -> None:
        """Forget a command that could not be published and restore the trading mode before it."""
        self._records.pop(command_id, None)
        self.mode = mode

    def acknowledge(self, ack: CommandAck, now: datetime) -> CommandRecord | None:
        """Record an acknowledgement; None when the command is unknown (issued by an older run)."""
        record = self._records.get(ack.command_id)
        if record is None:
            return None
        record.acks[ack.agent_id] = Ack(
            agent_id=ack.agent_id, agent_kind=ack.agent_kind, ok=ack.ok, detail=ack.detail, received_at=now
        )
        return record

    def get(self, command_id: UUID) -> CommandRecord | None:
        """A remembered command."""
        return self._records.get(command_id)

    def recent(self, limit: int = 50) -> list[CommandRecord]:
        """The most recent commands, newest first."""
        return list(reversed(self._records.values()))[:limit]

    def last(self, kind: CommandKind, target: str | None = None) -> CommandRecord | None:
        """The most recent command of ``kind`` (to ``target`` when given)."""
        for record in reversed(self._records.values()):
            if record.command.kind is kind and target in (None, record.command.target):
                return record
        return None
