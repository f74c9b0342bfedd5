"""The broker-verified sender of the message in hand, and the check the executor applies to it.

RabbitMQ refuses a message whose ``user_id`` property differs from the user of the connection that
published it (``PRECONDITION_FAILED``), so ``user_id`` is a sender identity the broker vouches for,
unlike the envelope's ``source`` which anyone can write. The RabbitMQ bus publishes every message
with its connection's user as ``user_id`` and, while a handler runs, exposes the ``user_id`` of the
delivery through :data:`CURRENT_DELIVERY`. The in-memory bus has no users: there it stays ``None``
(nothing to verify inside one process).
"""

from __future__ import annotations

from collections.abc import Collection
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.errors import MessageRejected
from infrastructure.messaging.definitions import user_name


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the broker verified about the message being handled."""

    user_id: str | None
    """The AMQP ``user_id`` property (checked by the broker), None when the publisher set none."""


CURRENT_DELIVERY: ContextVar[Delivery | None] = ContextVar("tradeswarm_current_delivery", default=None)
"""Set by a bus that can verify senders (RabbitMQ) while a handler runs; None otherwise."""


def verified_sender() -> Delivery | None:
    """The delivery facts of the message in hand (None on a bus without sender verification)."""
    return CURRENT_DELIVERY.get()


def require_sender(trusted: Collection[str], what: str = "message") -> None:
    """Raise :class:`MessageRejected` unless the broker-verified sender is one of ``trusted``.

    On a bus without sender verification (in-memory: backtests, one process) it passes.
    """
    delivery = CURRENT_DELIVERY.get()
    if delivery is None:
        return
    if delivery.user_id is None:
        raise MessageRejected(f"{what} has no broker-verified sender (no user_id): refused")
    if delivery.user_id not in trusted:
        raise MessageRejected(
            f"{what} sent by broker user {delivery.user_id!r}, not by a trusted sender ({', '.join(sorted(trusted))})"
        )


class OrderSenderSettings(BaseSettings):
    """Who may send approved orders to the executor (environment prefix ``TRADESWARM_EXECUTION_``)."""

    model_config = SettingsConfigDict(env_prefix="TRADESWARM_EXECUTION_", extra="ignore", frozen=True)

    trusted_order_senders: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["compliance", "compliance_live"],
        description="Broker users allowed to send approved orders (the compliance agent's users).",
    )

    @field_validator("trusted_order_senders", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class ControlSenderSettings(BaseSettings):
    """Who may send control messages (commands, partition assignments): ``TRADESWARM_CONTROL_SENDERS``."""

    model_config = SettingsConfigDict(env_prefix="TRADESWARM_", extra="ignore", frozen=True)

    control_senders: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["orchestrator", "orchestrator_live"],
        description="Broker users allowed to send commands (HALT, RESUME, PAUSE, FLATTEN) and partition "
        "assignments: the orchestrator's users.",
    )

    @field_validator("control_senders", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def trusted_control_senders(rabbitmq_url: str) -> frozenset[str]:
    """The broker users whose commands an agent obeys: ``TRADESWARM_CONTROL_SENDERS`` (default the
    orchestrator's users ``orchestrator``, ``orchestrator_live``) plus, as for orders, the agent's own
    user (a development broker where every agent shares ``guest`` cannot tell senders apart)."""
    own = urlsplit(rabbitmq_url).username
    configured = set(ControlSenderSettings().control_senders)
    return frozenset(configured | ({unquote(own)} if own else set()))


def trusted_order_senders(rabbitmq_url: str) -> frozenset[str]:
    """The configured trusted senders plus the executor's own broker user.

    When every agent shares one broker user (a development broker with ``guest``), the broker
    cannot tell senders apart, so that shared user is trusted; with one user per agent (the
    definitions in ``docker/rabbitmq/definitions.json``) only compliance's users are.
    """
    own = urlsplit(rabbitmq_url).username
    configured = set(OrderSenderSettings().trusted_order_senders)
    return frozenset(configured | ({unquote(own)} if own else set()))


@dataclass(frozen=True, slots=True)
class AgentSenders:
    """Which broker users may speak for an agent kind (its heartbeats), seen from one process.

    The broker user of agent kind ``K`` is the definitions' :func:`~infrastructure.messaging.definitions.user_name`
    ``<prefix>K[_live][@<vhost>]``, on the vhost of this process and with the user prefix of this
    process's own user (``tradeswarm stack up --broker-user-prefix``). This process's own user is
    also accepted: on a development broker where every agent shares ``guest`` the broker cannot tell
    agents apart (as for orders and commands). Build it with :meth:`of`.
    """

    own: str | None
    """This process's broker user (None: the URL names none)."""
    vhost: str
    prefix: str

    @classmethod
    def of(cls, rabbitmq_url: str, own_kind: str) -> AgentSenders:
        """From this process's broker URL and agent kind (whose user name gives away the prefix)."""
        parts = urlsplit(rabbitmq_url)
        own = unquote(parts.username) if parts.username else None
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        base = user_name(own_kind, vhost)
        prefix = own[: -len(base)] if own is not None and own.endswith(base) else ""
        return cls(own, vhost, prefix)

    def users(self, kind: str) -> frozenset[str]:
        """The broker users whose messages may claim to come from an agent of ``kind``."""
        expected = {user_name(kind, self.vhost, self.prefix)}
        if self.own is not None:
            expected.add(self.own)
        return frozenset(expected)


def require_agent_sender(senders: AgentSenders, kind: str, what: str) -> None:
    """Raise :class:`MessageRejected` unless the broker-verified sender is a user of agent ``kind``
    (see :class:`AgentSenders`): ``what`` claims to come from such an agent.

    On a bus without sender verification (in-memory: backtests, one process) it passes.
    """
    delivery = CURRENT_DELIVERY.get()
    if delivery is None:
        return
    if delivery.user_id is None:
        raise MessageRejected(f"{what} has no broker-verified sender (no user_id): refused")
    trusted = senders.users(kind)
    if delivery.user_id not in trusted:
        raise MessageRejected(
            f"{what} sent by broker user {delivery.user_id!r}, not by that agent's user ({', '.join(sorted(trusted))})"
        )
