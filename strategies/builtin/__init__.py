"""The built-in strategies."""

from strategies.builtin.bollinger import BollingerBreakout, BollingerReversion
from strategies.builtin.crossover import EmaCross, SmaCross
from strategies.builtin.macd_momentum import MacdMomentum
from strategies.builtin.regime_filter import RegimeFilter
from strategies.builtin.rsi_reversion import RsiReversion

__all__ = [
    "BollingerBreakout",
    "BollingerReversion",
    "EmaCross",
    "MacdMomentum",
    "RegimeFilter",
    "RsiReversion",
    "SmaCross",
]
