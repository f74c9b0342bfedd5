"""Typed access to the parts of TA-Lib 0.8 that its bundled stubs do not declare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import talib
from talib import abstract, stream

StreamFactory = Callable[..., Any]
"""A ``talib.stream`` handle class: ``factory(*history_arrays, **params)`` -> handle with ``update``."""

InsufficientHistory = cast(type[Exception], talib.__dict__["InsufficientHistory"])
"""Raised by a stream handle opened on too short a history."""


def stream_factory(function: str) -> StreamFactory:
    """The ``talib.stream`` handle class of ``function`` (``SMA``, ``CDLENGULFING``...)."""
    factory = getattr(stream, function, None)
    if factory is None:
        raise ValueError(f"TA-Lib has no streaming handle for {function!r}")
    return cast(StreamFactory, factory)


def lookback(function: str, **params: float) -> int:
    """TA-Lib's lookback of ``function`` with ``params`` (bars before the first output)."""
    return int(abstract.__dict__["Function"](function, **params).lookback)
