"""A test agent whose handler takes a while, run as its own process by test_host.py.

Usage: python -m tests.runtime.slow_agent MARKER_DIR  (settings from TRADESWARM_* variables)
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.base import Agent, AgentContext, Subscription
from agents.base.host import AgentHost
from core.logging import configure_logging
from core.messages import Candle, Envelope
from core.routing import CANDLES
from core.settings import load_settings


class SlowAgent(Agent):
    """Writes ``start-<seq>`` when a candle arrives and ``done-<seq>`` two seconds later."""

    kind = "slow_test"

    def __init__(self, ctx: AgentContext, markers: Path) -> None:
        super().__init__(ctx)
        self.markers = markers

    def subscriptions(self) -> Sequence[Subscription]:
        return [Subscription("candles", (CANDLES.all(),), {Candle: self.on_candle})]

    async def on_candle(self, candle: Candle, envelope: Envelope) -> None:
        (self.markers / f"start-{candle.sequence}").touch()
        await asyncio.sleep(2.0)
        (self.markers / f"done-{candle.sequence}").touch()


def main() -> int:
    markers = Path(sys.argv[1])
    settings = load_settings()
    configure_logging("info", "json")

    async def build(ctx: AgentContext) -> Agent:
        return SlowAgent(ctx, markers)

    host = AgentHost("slow_test", build, settings)
    return asyncio.run(host.run())


if __name__ == "__main__":
    raise SystemExit(main())
