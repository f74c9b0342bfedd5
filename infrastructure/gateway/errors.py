"""Mapping of ccxt's exception hierarchy onto tradeswarm's temporary / permanent taxonomy.

Temporary (retried with backoff): ``NetworkError`` and its subclasses (``RequestTimeout``,
``ExchangeNotAvailable``, ``OnMaintenance``, ``DDoSProtection``, ``RateLimitExceeded``),
``InvalidNonce``, plus plain transport failures (timeouts, connection resets).
Permanent (raised at once): ``BadSymbol``, ``AuthenticationError``, ``PermissionDenied``,
``AccountSuspended``, ``InvalidOrder``, ``BadRequest``, ``NotSupported`` and any other ccxt
``ExchangeError``.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime

import ccxt

from core.errors import TradeswarmError
from core.gateway import RateLimited, VenueAuthError, VenueRejected, VenueUnavailable


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """The ``Retry-After`` hint of a response's headers (case-insensitive), if any."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            return parse_retry_after(value)
    return None


def map_ccxt_error(venue: str, exc: BaseException, headers: Mapping[str, str] | None = None) -> TradeswarmError:
    """Our error for a ccxt (or transport) exception; the original is kept as ``__cause__`` by callers."""
    text = f"{venue}: {type(exc).__name__}: {exc}"
    if isinstance(exc, TradeswarmError):
        return exc
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return RateLimited(text, retry_after_from_headers(headers))
    if isinstance(exc, ccxt.NetworkError | ccxt.InvalidNonce):
        return VenueUnavailable(text)
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied | ccxt.AccountSuspended):
        return VenueAuthError(text)
    if isinstance(exc, ccxt.BaseError):
        return VenueRejected(text)
    if isinstance(exc, TimeoutError | ConnectionError | OSError):
        return VenueUnavailable(text)
    return VenueRejected(text)
