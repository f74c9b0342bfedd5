"""structlog setup: JSON lines when not on a terminal, readable console output otherwise.

Handlers bind the ids of the message in hand (``correlation_id``, ``causation_id``, ``message_id``)
through :func:`bind_message_context`, so every line logged while handling it carries them.
Secrets never reach a log line: settings hold them as ``SecretStr``, whose repr is masked.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import structlog

CURRENT_MESSAGE: ContextVar[Mapping[str, Any] | None] = ContextVar("tradeswarm_current_message", default=None)
"""The envelope being handled in this task (set by the agent runtime; cheap: one ContextVar.set).

Its ids are added to a log line only when a line is actually written, so handling a message costs
nothing extra when it logs nothing (backtests push millions of messages)."""

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    **static: Any,
) -> None:
    """Configure structlog (and the standard library's logging) for this process.

    ``static`` key/values (agent id, kind) are bound on every line.
    """
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_message_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if static:
        shared.insert(0, _static_fields(static))
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(_LEVELS.get(level, logging.INFO), logging.WARNING), stream=sys.stderr)


def _add_message_ids(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    envelope = CURRENT_MESSAGE.get()
    if envelope is not None:
        for key in ("message_id", "correlation_id", "causation_id", "type"):
            value = getattr(envelope, key, None) if not isinstance(envelope, Mapping) else envelope.get(key)
            if value is not None:
                event.setdefault("message_type" if key == "type" else key, str(value))
    return event


def _static_fields(fields: Mapping[str, Any]) -> Any:
    def processor(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return processor


def get_logger(name: str | None = None, **bound: Any) -> Any:
    """A structlog logger, optionally with bound key/values."""
    logger = structlog.get_logger(name)
    return logger.bind(**bound) if bound else logger


@contextmanager
def bind_message_context(context: Mapping[str, Any]) -> Iterator[None]:
    """Bind message ids to every log line within the block (contextvars, task-local)."""
    tokens = structlog.contextvars.bind_contextvars(**context)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
