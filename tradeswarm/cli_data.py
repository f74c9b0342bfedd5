"""``tradeswarm data``: download candle history from a venue to CSV, import CSV/Parquet into InfluxDB.

Mounted by ``tradeswarm/cli.py`` as ``app.add_typer(data_app, name="data")``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.candles import timeframe_ms
from core.clock import ms_from_utc
from core.errors import ConfigurationError, TradeswarmError
from core.gateway import CandleKey

data_app = typer.Typer(help="Market data: download history to CSV, import files into InfluxDB.", no_args_is_help=True)
console = Console(stderr=True)


def parse_when(value: str) -> datetime:
    """A UTC instant from ``2024-01-01``, ``2024-01-01T12:00``, an ISO time with offset, or epoch ms."""
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (use e.g. 2024-01-01 or 2024-01-01T12:00:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(1)


@data_app.command("download")
def download(
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="ccxt unified symbol, e.g. BTC/USDT.")],
    since: Annotated[str, typer.Option(help="First candle open time (UTC date/time or epoch ms).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write (timestamp,open,high,low,close,volume).")],
    exchange: Annotated[str, typer.Option("--exchange", "-e", help="ccxt exchange id.")] = "binance",
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="ccxt timeframe, e.g. 1m, 1h, 1d.")] = "1h",
    until: Annotated[str | None, typer.Option(help="End (exclusive); default: now (closed candles only).")] = None,
) -> None:
    """Download closed candles with since <= open time < until from a venue into a CSV file.

    Example: tradeswarm data download -e binance -s BTC/USDT -t 1h --since 2024-01-01 --out btc.csv
    """
    start = parse_when(since)
    end = parse_when(until) if until else None
    if end is not None and end <= start:
        raise typer.BadParameter("--until must be after --since")
    try:
        rows = asyncio.run(_download(exchange, symbol, timeframe, start, end, out))
    except (TradeswarmError, ValueError) as exc:
        raise _fail(exc) from None
    console.print(f"wrote {rows} candles to {out}")


async def _download(
    exchange: str, symbol: str, timeframe: str, start: datetime, end: datetime | None, out: Path
) -> int:
    from agents.data_collection.settings import DataCollectionSettings
    from infrastructure.feeds import CandleCsvWriter
    from infrastructure.gateway import CcxtGateway

    config = DataCollectionSettings()
    gateway = CcxtGateway(
        exchange, urls=config.api_urls or None, rate_per_s=config.rate_limit_per_s, use_websocket=False
    )
    try:
        await gateway.validate_symbol(symbol)
        await gateway.validate_timeframe(timeframe)
        stop = end or gateway.clock.now()
        total = max(0, (ms_from_utc(stop) - ms_from_utc(start)) // timeframe_ms(timeframe))
        tmp = out.with_name(out.name + ".part")
        writer = CandleCsvWriter(tmp)
        try:
            with _progress() as progress:
                task = progress.add_task(f"{exchange} {symbol} {timeframe}", total=total)
                async for page in gateway.iter_candle_pages(symbol, timeframe, start, end):
                    writer.write(page)
                    progress.update(task, advance=len(page))
                progress.update(task, total=writer.rows, completed=writer.rows)
        finally:
            writer.close()
        tmp.replace(out)
        return writer.rows
    finally:
        await gateway.close()


@data_app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            help="Candle file (.csv or .parquet), e.g. binance_BTC-USDT_1h.csv.", exists=True, dir_okay=False
        ),
    ],
    exchange: Annotated[str | None, typer.Option(help="Venue of the candles (default: from the file name).")] = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol (default: from the file name).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Timeframe (default: from the file name).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Lines per write.")] = 5000,
) -> None:
    """Import a candle file into InfluxDB (TRADESWARM_INFLUX_*; idempotent: re-importing stores once)."""
    try:
        count = asyncio.run(_import(file, exchange, symbol, timeframe, batch_size))
    except (TradeswarmError, ValueError) as exc:
        raise _fail(exc) from None
    console.print(f"imported {count} candles from {file}")


async def _import(file: Path, exchange: str | None, symbol: str | None, timeframe: str | None, batch_size: int) -> int:
    from core.settings import load_settings
    from infrastructure.database.influx import tick_store_from_settings
    from infrastructure.feeds import key_from_filename, read_candles

    if exchange and symbol and timeframe:
        key = CandleKey(exchange, symbol, timeframe)
    else:
        guessed = key_from_filename(file)
        key = CandleKey(exchange or guessed.venue, symbol or guessed.symbol, timeframe or guessed.timeframe)
    candles = read_candles(file, key)
    settings = load_settings()
    store = tick_store_from_settings(
        settings.influx_api,
        settings.influx_url,
        token=settings.influx_token.get_secret_value(),
        org=settings.influx_org,
        bucket=settings.influx_bucket,
        batch_size=batch_size,
    )
    try:
        await store.start()
    except TradeswarmError as exc:
        raise ConfigurationError(f"cannot reach InfluxDB at {settings.influx_url}: {exc}") from exc
    try:
        with _progress() as progress:
            task = progress.add_task(f"import {key.symbol} {key.timeframe}", total=len(candles))
            for i in range(0, len(candles), batch_size):
                chunk = candles[i : i + batch_size]
                await store.write_candles(chunk)
                progress.update(task, advance=len(chunk))
    finally:
        await store.close()
    return len(candles)
