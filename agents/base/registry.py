"""Where each agent's ``build`` lives, resolved lazily so agents never import each other."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from core.errors import ConfigurationError

if TYPE_CHECKING:
    from agents.base.agent import Agent, AgentContext

AgentBuilder = Callable[["AgentContext"], Awaitable["Agent"]]

AGENT_NAMES: tuple[str, ...] = (
    "data_collection",
    "technical_analysis",
    "strategy",
    "risk",
    "compliance",
    "execution",
    "orchestrator",
    "desk",
)
"""Every agent kind, in pipeline order (the AI desk, an optional decider, last)."""

_BUILDER_MODULES = ("wiring", "agent", "")


def load_builder(name: str) -> AgentBuilder:
    """The ``async def build(ctx) -> Agent`` of agent ``name``.

    Looked up as ``agents.<name>.wiring.build``, then ``agents.<name>.agent.build``, then
    ``agents.<name>.build``. Raises :class:`ConfigurationError` with the known names otherwise.
    """
    if name not in AGENT_NAMES:
        raise ConfigurationError(f"unknown agent {name!r}; choose one of: {', '.join(AGENT_NAMES)}")
    for module_suffix in _BUILDER_MODULES:
        module_name = f"agents.{name}.{module_suffix}" if module_suffix else f"agents.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        builder = getattr(module, "build", None)
        if builder is not None:
            return cast(AgentBuilder, builder)
    raise ConfigurationError(f"agent {name!r} is not available in this build (no build() in agents.{name})")
