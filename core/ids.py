"""Identifiers: time-ordered message ids and deterministic, content-derived ids.

Message ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds then random bits, so they sort by
creation time and index well. Content ids are UUIDv5 over a canonical string of their parts, so the
same intent seen twice (a replayed candle, a restarted agent) always gets the same id, which is
what makes deduplication and client order ids work.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from collections.abc import Callable

NAMESPACE = uuid.UUID("6f1c1e52-6b0e-4d2b-9a53-2f7f6c1d8b11")
"""The UUIDv5 namespace of every tradeswarm content id."""

_rng = random.Random(os.urandom(32))  # noqa: S311 - ids need uniqueness, not secrecy
_last_ms = 0
_counter = 0


# uuid7() runs for every message: the UUID is assembled through its slots (no __init__ parsing)
# and the hot callables are bound once (_rng is reseeded in place, so _bits stays valid)
_bits = _rng.getrandbits
_time_ns = time.time_ns
_new_uuid = object.__new__
_set_uuid_int = uuid.UUID.__dict__["int"].__set__
_set_uuid_safe = uuid.UUID.__dict__["is_safe"].__set__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def _reseed() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def uuid7(now_ms: Callable[[], int] | None = None) -> uuid.UUID:
    """Return a new UUIDv7; ids made in one process are strictly increasing.

    Within one millisecond a 12-bit counter (seeded randomly each millisecond) keeps the order
    monotonic; 62 random bits follow. The generator is reseeded in forked children, so processes
    never share a sequence. Not for secrets: ids need uniqueness, not unpredictability.
    """
    global _last_ms, _counter  # noqa: PLW0603 - the generator's state is process-wide by design
    ms = now_ms() if now_ms is not None else _time_ns() // 1_000_000
    if ms > _last_ms:
        _last_ms = ms
        _counter = _bits(10)
    else:
        _counter += 1
        if _counter > 0xFFF:
            _last_ms += 1
            _counter = 0
    value = (_last_ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | _counter << 64 | 0b10 << 62 | _bits(62)
    result: uuid.UUID = _new_uuid(uuid.UUID)
    _set_uuid_int(result, value)
    _set_uuid_safe(result, _UNKNOWN_SAFETY)
    return result


class CounterIds:
    """Message ids for a simulated clock: the UUIDv7 layout with the clock's milliseconds and a counter.

    The 48-bit timestamp is the SIMULATED time in milliseconds; the 74 bits that are random in
    :func:`uuid7` hold a counter instead (``stream`` in its top 26 bits, the sequence number in the
    other 48), with the version (7) and variant bits in place. So a backtest's ids are reproducible
    run after run, sort by (market time, creation order) and cost no random numbers. ``stream``
    keeps the ids of generators that share a namespace apart (one per process of a replay).
    """

    __slots__ = ("_base", "_last_ms", "_seq", "count")

    def __init__(self, stream: int = 0) -> None:
        if not 0 <= stream < 1 << 26:
            raise ValueError("stream must fit in 26 bits")
        self._base = stream << 48
        self._seq = 0
        self._last_ms = 0
        self.count = 0
        """Ids handed out so far."""

    def next(self, ms: int) -> uuid.UUID:
        """The next id at simulated time ``ms`` (never smaller than the previous one)."""
        ms = max(ms, self._last_ms)  # a clock never goes back; ids stay ordered anyway
        self._last_ms = ms
        seq = self._seq
        if seq >= 1 << 48:
            raise OverflowError("counter ids exhausted (2**48 ids in one stream)")
        self._seq = seq + 1
        self.count += 1
        counter = self._base | seq
        value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (counter >> 62) << 64 | 0b10 << 62 | (counter & _LOW62)
        result: uuid.UUID = _new_uuid(uuid.UUID)
        _set_uuid_int(result, value)
        _set_uuid_safe(result, _UNKNOWN_SAFETY)
        return result


_LOW62 = (1 << 62) - 1


def uuid7_time_ms(value: uuid.UUID) -> int:
    """The Unix millisecond timestamp embedded in a UUIDv7."""
    return value.int >> 80


def content_id(kind: str, *parts: object) -> uuid.UUID:
    """A deterministic id for ``kind`` over ``parts`` (UUIDv5 of a canonical, unambiguous string)."""
    canonical = "\x1f".join([kind, *(str(p) for p in parts)])
    # ``uuid.uuid5(NAMESPACE, canonical)`` bit for bit (tests/unit), without its per-call import and
    # ``UUID.__init__``'s checks: the SHA-1 of namespace + name, version 5, RFC 4122 variant
    value = int.from_bytes(_sha1(_NAMESPACE_BYTES + canonical.encode()).digest()[:16], "big")
    value = (value & _V5_CLEAR) | _V5_SET
    result: uuid.UUID = _new_uuid(uuid.UUID)
    _set_uuid_int(result, value)
    _set_uuid_safe(result, _UNKNOWN_SAFETY)
    return result


_NAMESPACE_BYTES = NAMESPACE.bytes
_sha1 = hashlib.sha1
_V5_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_V5_SET = (0x8000 << 48) | (5 << 76)


def client_order_id(intent_id: uuid.UUID, attempt: int = 0) -> str:
    """The client order id of an intent: short, venue-safe (``[A-Za-z0-9-]``, <= 32 chars), stable.

    ``attempt`` distinguishes a deliberate replacement order (never a retry of the same order).
    """
    base = f"ts{intent_id.hex[:26]}"
    return base if attempt == 0 else f"{base}-{attempt}"
