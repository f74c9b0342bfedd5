"""The domain error taxonomy shared by every layer.

Every error raised on purpose by tradeswarm derives from :class:`TradeswarmError`, so callers can
tell our decisions from library failures. Errors that are safe to retry derive from
:class:`TemporaryError`; everything else is permanent and must surface at once.
"""

from __future__ import annotations


class TradeswarmError(Exception):
    """Base class of every error tradeswarm raises on purpose."""


class ConfigurationError(TradeswarmError):
    """Settings are missing, contradictory or unsafe (for example live mode without confirmation)."""


class MessageRejected(TradeswarmError):
    """A message could not be decoded or validated; it is dead-lettered with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageTooLarge(MessageRejected):
    """An encoded message exceeds the configured maximum size."""


class UnknownMessageType(MessageRejected):
    """No contract is registered for a message's ``type`` and ``schema_version``."""


class UnroutableMessage(TradeswarmError):
    """A mandatory publish matched no queue: the message would have been silently dropped."""

    def __init__(self, routing_key: str) -> None:
        super().__init__(f"no queue is bound for routing key {routing_key!r}")
        self.routing_key = routing_key


class PublishNotConfirmed(TradeswarmError):
    """The broker did not confirm (nacked) a published message."""


class BusClosed(TradeswarmError):
    """The bus was used after it was closed, or before it was started."""


class IllegalTransition(TradeswarmError):
    """An order state change that the order state machine does not allow."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"illegal order transition {current} -> {target}")
        self.current = current
        self.target = target


class TemporaryError(TradeswarmError):
    """A failure that may succeed when retried (network, rate limit, venue unavailable)."""


class PermanentError(TradeswarmError):
    """A failure that retrying cannot fix (bad symbol, rejected credentials, invalid order)."""
