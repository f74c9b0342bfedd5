"""RabbitMQ topology and header helpers of the aio-pika bus: pure functions, no I/O.

Everything here turns tradeswarm's topology decisions (``core.routing``) into the AMQP arguments and
headers the broker understands, so the bus module only does I/O and the rules are unit-testable.

Topology (see ``docs/messaging.md``):

* ``routing.EXCHANGE``: a durable topic exchange every message is published to;
* ``routing.DEAD_LETTER_EXCHANGE``: a durable direct exchange; the DLQ of queue ``q`` is bound to it
  with the routing key ``q``;
* per subscription a durable quorum queue with ``x-dead-letter-exchange``,
  ``x-dead-letter-routing-key`` (its own name), an explicit ``x-delivery-limit`` and a length cap
  (``x-max-length`` with ``x-overflow: drop-head``: past the cap the oldest message is dead-lettered
  with reason ``maxlen``), and a durable quorum dead-letter queue ``routing.dead_letter_queue(q)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core import routing
from core.ports import QueueSpec

QUORUM = "quorum"

OVERFLOW = "drop-head"
"""What a full queue does: drop (dead-letter, as the queue has a DLX) its oldest message."""

MAX_LENGTH_REASON = "maxlen"
"""The ``x-death`` reason of a message the broker dead-lettered because its queue was full."""

DELIVERY_COUNT_HEADER = "x-delivery-count"
"""Set by quorum queues on redelivered messages: how many times the message was returned."""

DEATH_HEADER = "x-death"
"""Set by the broker when IT dead-letters a message (delivery limit reached, rejected, expired)."""

RESERVED_ARGUMENTS = frozenset(
    {
        "x-queue-type",
        "x-dead-letter-exchange",
        "x-dead-letter-routing-key",
        "x-delivery-limit",
        "x-single-active-consumer",
        "x-max-length",
        "x-overflow",
    }
)
"""Queue arguments the bus owns; ``QueueSpec.arguments`` may not override them."""


def queue_arguments(
    spec: QueueSpec, default_delivery_limit: int, default_max_length: int = routing.DEFAULT_MAX_QUEUE_LENGTH
) -> dict[str, Any]:
    """The declare arguments of a subscription's quorum queue.

    ``x-delivery-limit`` is always explicit (RabbitMQ 3.10 has no default: without it a poison
    message would be redelivered forever). ``x-max-length`` caps the queue; ``x-overflow:
    drop-head`` then dead-letters the oldest message (quorum queues in 3.10 offer ``drop-head`` and
    ``reject-publish``, not ``reject-publish-dlx``; ``reject-publish`` would stall every publisher
    of a topic because one consumer is gone). Extra ``spec.arguments`` are merged in, but may not
    replace the ones the bus owns. ``spec.patterns`` may be empty (a symbol partition with no
    symbol still exists, so every partition can be consumed and counted the same way).
    """
    limit = spec.delivery_limit if spec.delivery_limit is not None else default_delivery_limit
    if limit < 1:
        raise ValueError(f"queue {spec.name}: delivery limit must be >= 1, got {limit}")
    max_length = spec.max_length if spec.max_length is not None else default_max_length
    if max_length < 1:
        raise ValueError(f"queue {spec.name}: max length must be >= 1, got {max_length}")
    if spec.prefetch < 1:
        raise ValueError(f"queue {spec.name}: prefetch must be >= 1, got {spec.prefetch}")
    clash = RESERVED_ARGUMENTS.intersection(spec.arguments)
    if clash:
        raise ValueError(f"queue {spec.name}: arguments {sorted(clash)} are set by the bus; use QueueSpec fields")
    arguments: dict[str, Any] = {
        **spec.arguments,
        "x-queue-type": QUORUM,
        "x-dead-letter-exchange": routing.DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": spec.name,
        "x-delivery-limit": limit,
        "x-max-length": max_length,
        "x-overflow": OVERFLOW,
    }
    if spec.single_active_consumer:
        arguments["x-single-active-consumer"] = True
    return arguments


def dead_letter_queue_arguments() -> dict[str, Any]:
    """The declare arguments of a dead-letter queue: a plain durable quorum queue.

    No delivery limit and no dead-letter exchange of its own, so reading it for inspection
    (get, then requeue) can never lose a message.
    """
    return {"x-queue-type": QUORUM}


def effective_delivery_limit(spec: QueueSpec, default_delivery_limit: int) -> int:
    """The number of deliveries a message of ``spec``'s queue gets before it is dead-lettered."""
    return spec.delivery_limit if spec.delivery_limit is not None else default_delivery_limit


def delivery_count(headers: Mapping[str, Any] | None) -> int:
    """How many times the broker already delivered (and got back) this message: quorum queues'
    ``x-delivery-count`` header, absent (0) on the first delivery."""
    if not headers:
        return 0
    value = headers.get(DELIVERY_COUNT_HEADER)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(value, 0)


def is_last_delivery(headers: Mapping[str, Any] | None, limit: int) -> bool:
    """True when this delivery is the last one the queue's delivery limit allows."""
    return delivery_count(headers) + 1 >= limit


def dead_letter_headers(
    original: Mapping[str, Any] | None, *, reason: str, queue: str, routing_key: str
) -> dict[str, Any]:
    """Headers of a message the bus dead-letters itself: the original ones plus why and whence."""
    headers = dict(original or {})
    headers.pop(DELIVERY_COUNT_HEADER, None)
    headers[routing.REASON_HEADER] = truncate_reason(reason)
    headers[routing.ORIGINAL_QUEUE_HEADER] = queue
    headers[routing.ORIGINAL_ROUTING_KEY_HEADER] = routing_key
    return headers


MAX_REASON_CHARS = 1000


def truncate_reason(reason: str) -> str:
    """A reason short enough for a header (AMQP short strings are not needed: long strings are)."""
    reason = reason.strip() or "unspecified"
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 3] + "..."


def exception_reason(exc: BaseException, attempts: int) -> str:
    """The dead-letter reason of a handler exception after ``attempts`` deliveries."""
    text = str(exc)
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"handler failed after {attempts} deliveries: {detail}"


def describe_dead_letter(headers: Mapping[str, Any] | None, delivered_routing_key: str | None) -> tuple[str, str]:
    """``(original routing key, reason)`` of a message read from a dead-letter queue.

    Messages the bus dead-lettered carry tradeswarm's own headers; messages the BROKER dead-lettered
    (delivery limit hit by a consumer that kept dying, or an operator's reject) carry ``x-death``.
    """
    headers = headers or {}
    reason = _text(headers.get(routing.REASON_HEADER))
    key = _text(headers.get(routing.ORIGINAL_ROUTING_KEY_HEADER))
    death = _first_death(headers.get(DEATH_HEADER))
    if death is not None:
        if key is None:
            keys = death.get("routing-keys")
            if isinstance(keys, list | tuple) and keys:
                key = _text(keys[0])
        if reason is None:
            reason = f"broker dead-lettered it: {_text(death.get('reason')) or 'unknown'}"
    return key or delivered_routing_key or "", reason or "unknown"


def _first_death(value: object) -> Mapping[str, Any] | None:
    if isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
        return value[0]
    return None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)
