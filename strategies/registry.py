"""Finding strategies by name (built-ins and the ``tradeswarm.strategies`` entry-point group) and
building them from settings, with parameters validated at start-up.

A third-party package registers a strategy class in its own ``pyproject.toml``::

    [project.entry-points."tradeswarm.strategies"]
    my_strategy = "my_package.module:MyStrategy"

The entry-point name must equal the class's ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from core.errors import ConfigurationError
from strategies.base import Strategy, StrategyParams
from strategies.builtin import (
    BollingerBreakout,
    BollingerReversion,
    EmaCross,
    MacdMomentum,
    RegimeFilter,
    RsiReversion,
    SmaCross,
)

ENTRY_POINT_GROUP = "tradeswarm.strategies"

StrategyClass = type[Strategy[Any]]

BUILTINS: dict[str, StrategyClass] = {
    cls.name: cls
    for cls in (SmaCross, EmaCross, RsiReversion, MacdMomentum, BollingerReversion, BollingerBreakout, RegimeFilter)
}
"""The strategies shipped with tradeswarm, by name."""


def available_strategies() -> dict[str, StrategyClass]:
    """Built-ins plus every strategy registered in the entry-point group, by name.

    Raises :class:`ConfigurationError` for a plug-in that is not a strategy, whose name does not
    match its entry point, or that would shadow a different strategy of the same name.
    """
    found: dict[str, StrategyClass] = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigurationError(f"strategy plug-in {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        if not (isinstance(obj, type) and issubclass(obj, Strategy)):
            raise ConfigurationError(f"strategy plug-in {ep.name!r} ({ep.value}) is not a Strategy subclass")
        declared = getattr(obj, "name", None)
        if declared != ep.name:
            raise ConfigurationError(
                f"strategy plug-in {ep.value} is registered as {ep.name!r} but its name is {declared!r}"
            )
        existing = found.get(ep.name)
        if existing is not None and existing is not obj:
            raise ConfigurationError(
                f"two strategies are named {ep.name!r}: {existing.__module__} and {obj.__module__}"
            )
        found[ep.name] = obj
    return found


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """A configured strategy: its class, validated parameters and consensus weight."""

    name: str
    cls: StrategyClass
    params: StrategyParams
    weight: float

    @property
    def version(self) -> str:
        """The strategy's version."""
        return self.cls.version

    def create(self) -> Strategy[Any]:
        """A fresh instance (one per (venue, symbol, timeframe) series)."""
        return self.cls(self.params)


def build_specs(
    names: list[str] | tuple[str, ...],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[StrategySpec]:
    """Resolve ``names`` and validate their parameters; every problem is reported at once.

    Raises :class:`ConfigurationError` naming unknown strategies (with the available ones),
    parameters that fail validation (with the field and the reason), and parameters or weights
    given for strategies that are not enabled.
    """
    params = params or {}
    weights = weights or {}
    registry = available_strategies()
    problems: list[str] = []
    if not names:
        problems.append("no strategy is enabled")
    if len(set(names)) != len(names):
        problems.append(f"a strategy is listed twice: {list(names)}")
    specs: list[StrategySpec] = []
    for name in names:
        cls = registry.get(name)
        if cls is None:
            problems.append(f"unknown strategy {name!r}; available: {', '.join(sorted(registry))}")
            continue
        try:
            validated = cls.Params.model_validate(dict(params.get(name, {})))
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = ".".join(str(p) for p in err["loc"]) or "params"
                problems.append(f"{name}.{loc}: {err['msg'].removeprefix('Value error, ')}")
            continue
        weight = float(weights.get(name, 1.0))
        if not weight >= 0.0 or weight == float("inf"):
            problems.append(f"{name}: weight must be a finite number >= 0, got {weight}")
            continue
        specs.append(StrategySpec(name=name, cls=cls, params=validated, weight=weight))
    for extra in sorted((set(params) | set(weights)) - set(names)):
        problems.append(f"parameters or a weight are given for {extra!r}, which is not enabled")
    if problems:
        raise ConfigurationError("invalid strategy configuration: " + "; ".join(problems))
    return specs
