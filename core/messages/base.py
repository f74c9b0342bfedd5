"""The message envelope and the base of every payload contract.

Payloads are frozen, forbid unknown fields, reject NaN and infinity, and carry money as ``Decimal``.
Each payload class declares its wire ``TYPE`` and ``SCHEMA_VERSION``; the registry maps the pair
back to the class when a message is decoded.

An :class:`Envelope` wraps one payload with the metadata every message carries: its own id, the
type and version of the payload, the agent that made it, the ids that tie it to the conversation it
belongs to (``correlation_id``) and the message that caused it (``causation_id``), and two times:
``ts_event`` (market time: what the message is about) and ``ts_init`` (when it was created).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    model_validator,
)

from core.clock import Clock
from core.ids import uuid7

AGENT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

PAYLOAD_CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    allow_inf_nan=False,
    str_strip_whitespace=False,
    validate_default=False,
    use_enum_values=False,
)


UtcDatetime = AwareDatetime
"""A timezone-aware datetime (naive datetimes are rejected)."""

MAX_MAGNITUDE = Decimal("1e18")
"""The largest absolute value of any price, quantity or amount in a message. Real values stay far
below it (a memecoin's whole supply is ~1e15 units); it refuses absurd numbers (``1e308``, a 40-digit
integer) before they reach arithmetic, a database ``numeric`` column or a venue."""

MIN_POSITIVE = Decimal("1e-18")
"""The smallest strictly positive price or quantity (18 decimals: the finest unit of any token)."""

Price = Annotated[Decimal, Field(ge=MIN_POSITIVE, le=MAX_MAGNITUDE, allow_inf_nan=False)]
"""A strictly positive price, within [``MIN_POSITIVE``, ``MAX_MAGNITUDE``]."""

Quantity = Annotated[Decimal, Field(ge=MIN_POSITIVE, le=MAX_MAGNITUDE, allow_inf_nan=False)]
"""A strictly positive quantity, within [``MIN_POSITIVE``, ``MAX_MAGNITUDE``]."""

NonNegativeDecimal = Annotated[Decimal, Field(ge=0, le=MAX_MAGNITUDE, allow_inf_nan=False)]
"""A decimal that may be zero but not negative (volume, fees, filled quantity), at most ``MAX_MAGNITUDE``."""

SignedDecimal = Annotated[Decimal, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE, allow_inf_nan=False)]
"""Any finite decimal (PnL, signed position) within ±``MAX_MAGNITUDE``."""

Score = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]
"""A vote score in 0..100."""

Confidence = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""A confidence in 0..1."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""A fraction in 0..1 (drawdown, participation)."""

AgentId = Annotated[str, Field(pattern=AGENT_ID_RE.pattern)]
"""An agent id: lowercase letters, digits, ``_`` and ``-`` (it appears in routing keys)."""

Venue = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,39}$")]
"""A venue id: a ccxt exchange id or ``paper``."""

Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")]
"""A ccxt unified symbol, ``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``."""

Timeframe = Annotated[str, Field(pattern=r"^[1-9]\d{0,2}[smhdwM]$")]
"""A ccxt timeframe (``1m``, ``1h``, ``1d``, ``1M``...)."""

ShortText = Annotated[str, Field(max_length=2000)]
"""Free text with a bound (rationales, reasons)."""

ReasonCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A machine-readable reason (``stale_intent``, ``max_position``)."""


class Payload(BaseModel):
    """Base of every message payload: frozen, no unknown fields, no NaN/inf."""

    model_config = PAYLOAD_CONFIG

    TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1


class Envelope(BaseModel):
    """Metadata plus one payload: the unit that travels on the bus."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    message_id: UUID
    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    schema_version: int = Field(ge=1, le=1000)
    source: AgentId
    correlation_id: UUID
    causation_id: UUID | None = None
    ts_event: UtcDatetime
    ts_init: UtcDatetime
    payload: SerializeAsAny[Payload]

    @model_validator(mode="after")
    def _type_matches_payload(self) -> Self:
        payload_type = type(self.payload)
        if self.type != payload_type.TYPE or self.schema_version != payload_type.SCHEMA_VERSION:
            raise ValueError(
                f"envelope says {self.type} v{self.schema_version} but carries "
                f"{payload_type.TYPE} v{payload_type.SCHEMA_VERSION}"
            )
        return self

    @classmethod
    def wrap(
        cls,
        payload: Payload,
        *,
        source: str,
        clock: Clock,
        ts_event: datetime | None = None,
        cause: Envelope | None = None,
    ) -> Envelope:
        """Wrap an already validated payload without validating it again.

        Every field is produced here by trusted code (a fresh UUIDv7, the clock, the cause's ids),
        so the envelope is constructed directly: a payload is validated once, where it is made.
        ``cause`` links the new message to the one that caused it (same correlation id).
        """
        if source not in _CHECKED_SOURCES:
            if not AGENT_ID_RE.match(source):
                raise ValueError(f"invalid agent id {source!r}")
            if len(_CHECKED_SOURCES) < _CHECKED_SOURCES_MAX:
                _CHECKED_SOURCES.add(source)
        now = clock.now()
        new_id = getattr(clock, "message_id", None)  # a simulated clock numbers its own messages
        message_id = (new_id() if new_id is not None else None) or uuid7()
        payload_type = type(payload)
        envelope: Envelope = _object_new(cls)
        _set_dict(
            envelope,
            {
                "message_id": message_id,
                "type": payload_type.TYPE,
                "schema_version": payload_type.SCHEMA_VERSION,
                "source": source,
                "correlation_id": cause.correlation_id if cause is not None else message_id,
                "causation_id": cause.message_id if cause is not None else None,
                "ts_event": ts_event if ts_event is not None else now,
                "ts_init": now,
                "payload": payload,
            },
        )
        _set_fields_set(envelope, set(_ENVELOPE_FIELDS))
        _set_extra(envelope, None)
        _set_private(envelope, None)
        return envelope

    def log_context(self) -> dict[str, Any]:
        """The ids to bind to log lines while this message is handled."""
        return {
            "message_id": str(self.message_id),
            "message_type": self.type,
            "correlation_id": str(self.correlation_id),
            "causation_id": str(self.causation_id) if self.causation_id else None,
        }


_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)

_CHECKED_SOURCES: set[str] = set()
"""Agent ids :meth:`Envelope.wrap` already checked (a process has a handful; bounded anyway)."""
_CHECKED_SOURCES_MAX = 1024

# pydantic's own instance layout, written through its slot descriptors (what ``object.__setattr__``
# does, minus the attribute lookup): ``wrap`` runs for every message
_object_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__
