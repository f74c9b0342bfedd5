"""A local fake Binance spot venue for tests (see README.md)."""

from tests.fakevenue.server import Candles, FakeBinance, Faults, VenueClock

__all__ = ["Candles", "FakeBinance", "Faults", "VenueClock"]
