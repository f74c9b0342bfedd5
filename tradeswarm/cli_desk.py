"""``tradeswarm analyze SYMBOL``: one desk decision on recorded candles, shown as role cards.

Also the backtest's desk options (:func:`desk_run`). Bad arguments end with a one-line error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

PROVIDERS = ("rules", "replay", "openai")
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def analyze_command(
    symbol: Annotated[str, typer.Argument(help="The symbol, e.g. BTC/USDT.")],
    data: Annotated[
        Path | None, typer.Option(help="Candle CSV (default: the shipped 1h sample of the symbol).")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Decision time (ISO, UTC): the candles closed by then (default: the last).")
    ] = None,
    provider: Annotated[str, typer.Option("--llm-provider", help="rules | replay | openai.")] = "rules",
    blind: Annotated[bool, typer.Option(help="Hide the symbol, dates and price level from the prompts.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Run the AI desk once on SYMBOL and show every role's card and the final decision.

    Offline by default (the rules provider on the shipped sample candles): no key, no network.
    """
    from rich.console import Console

    from agents.desk.pipeline import MarketView
    from agents.desk.settings import DeskSettings
    from agents.desk.wiring import build_desk, language_model
    from backtesting.data import csv_candles
    from backtesting.desk_cards import decision_cards
    from core.gateway import CandleKey
    from core.settings import Settings
    from infrastructure.feeds.files import key_from_filename
    from tradeswarm.cli_backtest import UsageError, one_line_errors, parse_time

    with one_line_errors():
        if provider not in PROVIDERS:
            raise UsageError(f"--llm-provider {provider!r}: choose one of {', '.join(PROVIDERS)}")
        path = data or SAMPLES / f"binance_{symbol.replace('/', '-')}_1h.csv"
        if not path.is_file():
            raise UsageError(f"no candle file {path} (pass --data FILE)")
        key = key_from_filename(path)
        if key.symbol != symbol:
            raise UsageError(f"{path.name} holds {key.symbol}, not {symbol}")
        until = parse_time(at, "--at")
        settings = DeskSettings(blind=blind)
        rows = [c for c in csv_candles(path, CandleKey(key.venue, key.symbol, key.timeframe))
                if until is None or c.close_time <= until][-settings.window :]  # fmt: skip
        if len(rows) < 35:
            raise UsageError(f"only {len(rows)} candles closed by {until}: the desk needs 35")
        view = MarketView(
            venue=key.venue,
            symbol=key.symbol,
            timeframe=key.timeframe,
            ts=rows[-1].close_time,
            closes=[float(c.close) for c in rows],
            highs=[float(c.high) for c in rows],
            lows=[float(c.low) for c in rows],
        )
        desk = build_desk(settings, Settings(), language_model(provider))
        outcome = asyncio.run(desk.decide(view))
        assert outcome is not None
    if as_json:
        typer.echo(outcome.decision.model_dump_json(indent=2))
        return
    Console().print(decision_cards(outcome.decision))


def register(app: typer.Typer) -> None:
    """Mount ``analyze`` on the main app."""
    app.command("analyze")(analyze_command)
