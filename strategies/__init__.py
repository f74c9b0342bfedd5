"""Strategy plug-ins and the consensus (signal-fusion) engine. Pure: no I/O.

* :mod:`strategies.base`: the strategy interface (:class:`Strategy`, :class:`StrategyParams`,
  :class:`Position`);
* :mod:`strategies.builtin`: ``sma_cross``, ``ema_cross``, ``rsi_reversion``, ``macd_momentum``,
  ``bollinger_reversion``, ``bollinger_breakout``, ``regime_filter``;
* :mod:`strategies.registry`: lookup by name and the ``tradeswarm.strategies`` entry-point group;
* :mod:`strategies.runner`: running a set of strategies on one series, failures contained;
* :mod:`strategies.consensus`: the weighted and Bayesian fusion of votes.
"""

from strategies.base import FLAT, Position, Strategy, StrategyParams
from strategies.consensus import ConsensusConfig, ConsensusResult, fuse
from strategies.registry import BUILTINS, ENTRY_POINT_GROUP, StrategySpec, available_strategies, build_specs
from strategies.runner import StrategyBook

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "FLAT",
    "ConsensusConfig",
    "ConsensusResult",
    "Position",
    "Strategy",
    "StrategyBook",
    "StrategyParams",
    "StrategySpec",
    "available_strategies",
    "build_specs",
    "fuse",
]
