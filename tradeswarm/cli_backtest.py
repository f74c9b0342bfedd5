"""``tradeswarm backtest``, ``tradeswarm optimize`` and ``tradeswarm run`` (the embedded session).

Mounted on the main app by :func:`register`. Heavy modules (agents, numpy, matplotlib, optuna) are
imported inside the commands so that ``tradeswarm --help`` stays fast. Bad arguments end with a
one-line ``error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from core.errors import TradeswarmError

if TYPE_CHECKING:
    from backtesting.config import BacktestConfig
    from backtesting.data import SeriesSource
    from backtesting.engine import BacktestResult, DeskRun

AGENT_SECTIONS = ("risk", "compliance", "strategy", "ta", "execution")


class UsageError(TradeswarmError):
    """A bad command-line argument."""


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn our errors (and bad values) into ``error: ...`` and exit 2."""
    try:
        yield
    except (TradeswarmError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _scalar(text: str) -> Any:
    value = text.strip()
    low = value.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value) if any(c in value for c in ".eE") and "/" not in value else value
    except ValueError:
        return value


def parse_params(items: list[str], strategies: list[str]) -> dict[str, dict[str, Any]]:
    """``--param fast=10`` (single strategy) or ``--param sma_cross.fast=10``."""
    params: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"bad --param {item!r}; expected KEY=VALUE or STRATEGY.KEY=VALUE")
        strategy, dot, key = name.strip().rpartition(".")
        if not dot:
            if len(strategies) != 1:
                raise UsageError(f"--param {item!r} is ambiguous with several strategies; write STRATEGY.{name}=...")
            strategy = strategies[0]
        if strategy not in strategies:
            raise UsageError(f"--param {item!r} names {strategy!r}, which is not a --strategy")
        params.setdefault(strategy, {})[key] = _scalar(value)
    return params


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--set risk.max_position_pct=0.5`` -> ``{"risk": {"max_position_pct": 0.5}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        section, dot, key = name.strip().partition(".")
        if not sep or not dot or section not in AGENT_SECTIONS or not key:
            raise UsageError(
                f"bad --set {item!r}; expected AGENT.FIELD=VALUE with AGENT one of {', '.join(AGENT_SECTIONS)}"
            )
        raw = value.strip()
        parsed: Any = [p.strip() for p in raw.split(",")] if "," in raw else _scalar(raw)
        out.setdefault(section, {})[key] = parsed
    return out


def parse_sizing(text: str) -> tuple[str, Decimal | None, dict[str, Any]]:
    """``fixed_fraction[:F]``, ``volatility[:RISK]`` or ``kelly[:CAP]`` -> (mode, fraction, risk overrides)."""
    mode, _, arg = text.partition(":")
    mode = mode.strip()
    if mode not in ("fixed_fraction", "volatility", "kelly"):
        raise UsageError(f"bad --sizing {text!r}; expected fixed_fraction[:F], volatility[:RISK] or kelly[:CAP]")
    value: Decimal | None = None
    if arg:
        try:
            value = Decimal(arg)
        except InvalidOperation:
            raise UsageError(f"bad --sizing {text!r}: {arg!r} is not a number") from None
        if not (Decimal(0) < value <= Decimal(1)):
            raise UsageError(f"bad --sizing {text!r}: the value must be in (0, 1]")
    extra: dict[str, Any] = {}
    if mode == "volatility" and value is not None:
        extra["risk_per_trade"] = value
    if mode == "kelly" and value is not None:
        extra["kelly_cap"] = value
    return mode, value if mode == "fixed_fraction" else None, extra


def parse_time(text: str | None, name: str) -> datetime | None:
    """An ISO date or date-time (UTC when no zone is given)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"bad {name} {text!r}; expected an ISO date like 2025-01-31 or 2025-01-31T12:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_config(
    strategies: list[str],
    params: list[str],
    sizing: str,
    fee_bps: float,
    slippage_bps: float,
    cash: float,
    no_limits: bool,
    overrides: list[str],
    intrabar: str = "worst",
) -> BacktestConfig:
    """The backtest configuration from CLI options (validated; raises ``ConfigurationError``)."""
    from pydantic import ValidationError

    from backtesting.config import BacktestConfig

    if not strategies:
        raise UsageError("give at least one --strategy")
    if intrabar not in ("worst", "next_bar"):
        raise UsageError(f"bad --intrabar {intrabar!r}; choose worst or next_bar")
    mode, fraction, sizing_risk = parse_sizing(sizing)
    sections = parse_overrides(overrides)
    risk = {**sizing_risk, **sections.get("risk", {})}
    try:
        config = BacktestConfig(
            strategies=tuple(strategies),
            params=parse_params(params, strategies),
            sizing=mode,  # type: ignore[arg-type]
            fraction=fraction,
            fee_bps=Decimal(str(fee_bps)),
            slippage_bps=Decimal(str(slippage_bps)),
            initial_cash=Decimal(str(cash)),
            no_limits=no_limits,
            intrabar=intrabar,  # type: ignore[arg-type]
            risk=risk,
            compliance=sections.get("compliance", {}),
            strategy=sections.get("strategy", {}),
            ta=sections.get("ta", {}),
            execution=sections.get("execution", {}),
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{field}: {err['msg']}") from None
    config.specs()  # unknown strategies and bad parameters fail here, with every problem listed
    return config


async def resolve_sources(specs: list[str], start: datetime | None, end: datetime | None) -> list[SeriesSource]:
    """Files, InfluxDB series and gateway downloads as backtest sources."""
    from backtesting.data import DataError, file_source, list_source, parse_remote_spec

    sources: list[SeriesSource] = []
    for spec in specs:
        remote = parse_remote_spec(spec)
        if remote is None:
            sources.append(file_source(spec, start, end))
            continue
        kind, key = remote
        since = start or datetime(2017, 1, 1, tzinfo=UTC)
        if kind == "influx":
            from core.settings import load_settings
            from infrastructure.database.influx import tick_store_from_settings

            s = load_settings()
            store = tick_store_from_settings(s.influx_api, s.influx_url, token=s.influx_token.get_secret_value(),
                                             org=s.influx_org, bucket=s.influx_bucket)  # fmt: skip
            try:
                await store.start()
                candles = await store.query_candles(key, since, end)
            finally:
                await store.close()
        else:
            from agents.data_collection.settings import DataCollectionSettings
            from infrastructure.gateway import CcxtGateway

            gateway = CcxtGateway(key.venue, urls=DataCollectionSettings().api_urls or None, use_websocket=False)
            try:
                candles = await gateway.fetch_candles(key.symbol, key.timeframe, since, end)
            finally:
                await gateway.close()
        if not candles:
            raise DataError(f"{spec}: no candles in the requested period")
        sources.append(list_source(key, candles, spec))
    return sources


def _count_rows(sources: list[SeriesSource]) -> int | None:
    total = 0
    for s in sources:
        path = Path(s.label)
        if not path.is_file() or path.suffix.lower() != ".csv":
            return None
        with path.open("rb") as handle:
            total += max(0, sum(1 for _ in handle) - 1)
    return total


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
    sys.stdout.flush()


def backtest_command(
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            help="Candle file (.csv/.parquet), influx:VENUE:BASE-QUOTE:TF or exchange:VENUE:BASE-QUOTE:TF "
            "(repeat for several series).",
        ),
    ],
    strategy: Annotated[
        list[str] | None, typer.Option("--strategy", help="Strategy name (repeat to combine; votes are fused).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="KEY=VALUE or STRATEGY.KEY=VALUE (repeat).")
    ] = None,
    sizing: Annotated[
        str, typer.Option(help="fixed_fraction[:F] | volatility[:RISK] | kelly[:CAP].")
    ] = "fixed_fraction",
    fee_bps: Annotated[
        float, typer.Option("--fee-bps", min=0, max=1000, help="Fee in bps of notional (maker and taker).")
    ] = 10.0,
    slippage_bps: Annotated[
        float, typer.Option("--slippage-bps", min=0, max=1000, help="Slippage in bps against the taker.")
    ] = 0.0,
    cash: Annotated[float, typer.Option(min=0.01, help="Initial cash (quote currency).")] = 10_000.0,
    start: Annotated[str | None, typer.Option(help="First candle open time (ISO, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="End (exclusive) of candle open times (ISO, UTC).")] = None,
    no_limits: Annotated[
        bool, typer.Option("--no-limits", help="Lift risk/compliance limits and protective stops (research mode).")
    ] = False,
    intrabar: Annotated[
        str,
        typer.Option(
            "--intrabar",
            help="Protective exits: worst = checked from the entry candle (a stop touched inside it is hit, stop "
            "before take-profit); next_bar = from the next candle (optimistic).",
        ),
    ] = "worst",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Agent setting override AGENT.FIELD=VALUE, AGENT in risk, compliance, strategy, ta, execution.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write trades.csv, equity.csv, summary.json, equity.png and report.html here."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object on stdout.")] = False,
    desk: Annotated[bool, typer.Option("--desk", help="The AI desk decides instead of the strategies.")] = False,
    every: Annotated[int, typer.Option(help="With --desk: decide every N closed candles per symbol.")] = 24,
    max_decisions: Annotated[
        int | None, typer.Option("--max-decisions", help="With --desk: stop deciding after M decisions.")
    ] = None,
    llm_provider: Annotated[
        str, typer.Option("--llm-provider", help="With --desk: rules | replay | openai.")
    ] = "rules",
    blind: Annotated[
        bool, typer.Option("--blind", help="With --desk: hide symbol, dates and price level from the prompts.")
    ] = False,
) -> None:
    """Backtest strategies on history through the real agents (in-memory bus, simulated clock, paper venue).

    Example: tradeswarm backtest --data data/samples/binance_BTC-USDT_1h.csv --strategy sma_cross
    --param fast=10 --param slow=30 --report reports/sma
    """
    from rich.console import Console

    err = Console(stderr=True)
    with one_line_errors():
        config = build_config(strategy or ["sma_cross"], param or [], sizing, fee_bps, slippage_bps, cash, no_limits,
                              set_ or [], intrabar)  # fmt: skip
        t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
        sources = asyncio.run(resolve_sources(data, t0, t1))
        run = None
        if desk:
            from backtesting.desk_api import desk_run

            run = desk_run(every, max_decisions, llm_provider, blind)
        result = _run_backtest(config, sources, err, show_progress=not as_json, desk=run)
        files = None
        if report is not None:
            from backtesting.report import write_report
            from backtesting.report_html import source_bars

            files = write_report(result, report, source_bars(sources))
            if result.desk_decisions:
                (report / "desk_decisions.jsonl").write_text(
                    "".join(d.model_dump_json() + "\n" for d in result.desk_decisions)
                )
    if as_json:
        _emit_json(result.summary())
        return
    from backtesting.report import limits_tables, summary_table

    out = Console()
    out.print(summary_table(result))
    for table in limits_tables(result):
        out.print(table)
    if result.desk_decisions:
        from backtesting.desk_cards import decision_line

        d = result.summary()["desk"]
        out.print(f"desk [{d['provider']}]: {d['decisions']} decisions {d['verdicts']}, {d['intents']} intents, "
                  f"tokens {d['tokens_in']} in / {d['tokens_out']} out, cost ${d['cost_usd']:.4f}")  # fmt: skip
        for decision in result.desk_decisions[-5:]:
            out.print(decision_line(decision))
    if result.dead_letters:
        err.print(f"[yellow]warning: {result.dead_letters} message(s) were dead-lettered by the agents[/]")
    if files is not None:
        out.print(f"report: {files.html}  (trades.csv, equity.csv, summary.json, equity.png beside it)")


def _run_backtest(
    config: BacktestConfig, sources: list[SeriesSource], err: Any, *, show_progress: bool, desk: DeskRun | None = None
) -> BacktestResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from backtesting.engine import BacktestEngine

    engine = BacktestEngine(config, sources, desk=desk)
    total = _count_rows(sources)
    if not show_progress:
        return asyncio.run(engine.run())
    columns = (TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TextColumn("candles"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("backtest", total=total)
        return asyncio.run(engine.run(lambda n: progress.update(task, completed=n), progress_every=2000))


def optimize_command(
    data: Annotated[list[str], typer.Option("--data", help="Candle CSV file(s).")],
    space: Annotated[
        list[str], typer.Option("--space", help="STRATEGY.PARAM=LOW:HIGH[:STEP] or STRATEGY.PARAM=A,B,C (repeat).")
    ],
    strategy: Annotated[list[str] | None, typer.Option("--strategy", help="Strategy name (repeat).")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Fixed KEY=VALUE parameters (repeat).")] = None,
    objective: Annotated[
        list[str] | None,
        typer.Option(
            "--objective",
            help="sharpe, sortino, calmar, return, cagr, drawdown, profit_factor, win_rate "
            "(repeat for multi-objective NSGA-II; default sharpe).",
        ),
    ] = None,
    sampler: Annotated[str, typer.Option(help="grid, tpe or nsga2 (the genetic algorithm).")] = "tpe",
    trials: Annotated[int, typer.Option(min=1, help="Trials (grid: at most the grid size).")] = 20,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=64, help="Worker processes.")] = 2,
    seed: Annotated[int, typer.Option(help="Sampler seed (reproducible studies).")] = 42,
    walk_forward: Annotated[
        int, typer.Option("--walk-forward", min=0, help="Walk-forward folds (0 = plain optimisation).")
    ] = 0,
    in_sample_ratio: Annotated[
        float, typer.Option(min=0.1, help="In-sample window length / out-of-sample length.")
    ] = 3.0,
    sizing: Annotated[
        str, typer.Option(help="fixed_fraction[:F] | volatility[:RISK] | kelly[:CAP].")
    ] = "fixed_fraction",
    fee_bps: Annotated[float, typer.Option("--fee-bps", min=0, max=1000)] = 10.0,
    slippage_bps: Annotated[float, typer.Option("--slippage-bps", min=0, max=1000)] = 0.0,
    no_limits: Annotated[bool, typer.Option("--no-limits")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="AGENT.FIELD=VALUE (repeat).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the study as one JSON object on stdout.")] = False,
) -> None:
    """Optimise strategy parameters with optuna (grid, TPE, NSGA-II), optionally walk-forward validated.

    Example: tradeswarm optimize --data data/samples/binance_BTC-USDT_1h.csv --space sma_cross.fast=5:20
    --space sma_cross.slow=30:80:10 --sampler tpe --trials 30 --objective sharpe --walk-forward 3
    """
    from rich.console import Console
    from rich.table import Table

    from backtesting import optimize as opt

    out, err = Console(), Console(stderr=True)
    with one_line_errors():
        if sampler not in ("grid", "tpe", "nsga2"):
            raise UsageError(f"bad --sampler {sampler!r}; choose grid, tpe or nsga2")
        objective = objective or ["sharpe"]
        unknown = [o for o in objective if o not in opt.OBJECTIVES]
        if unknown:
            raise UsageError(f"unknown --objective {unknown}; choose from {', '.join(opt.OBJECTIVES)}")
        if walk_forward and len(objective) > 1:
            raise UsageError("walk-forward validates one objective; give a single --objective")
        strategies = strategy or ["sma_cross"]
        config = build_config(strategies, param or [], sizing, fee_bps, slippage_bps, 10_000.0, no_limits, set_ or [])
        dims = opt.parse_space(space)
        for p in data:
            if not Path(p).is_file():
                raise UsageError(f"data file not found: {p}")
        if walk_forward:
            folds = opt.walk_forward(data, config, dims, objective=objective[0], sampler=sampler,  # type: ignore[arg-type]
                                     trials=trials, folds=walk_forward, in_sample_ratio=in_sample_ratio, n_jobs=jobs,
                                     seed=seed,
                                     on_fold=None if as_json else lambda f: err.print(f"fold {f.index} done"),
                                     )  # fmt: skip
            if as_json:
                _emit_json({"walk_forward": [
                    {"fold": f.index, "in_sample": [opt.iso(x) for x in f.in_sample],
                     "out_of_sample": [opt.iso(x) for x in f.out_of_sample], "params": f.params,
                     "in_sample_value": f.in_sample_values[0], "out_of_sample_value": f.out_of_sample_values[0]}
                    for f in folds]})  # fmt: skip
                return
            table = Table(title=f"Walk-forward ({objective[0]}, {sampler}, {trials} trials per fold)")
            for col in (
                "fold",
                "in-sample",
                "out-of-sample",
                "best params",
                f"IS {objective[0]}",
                f"OOS {objective[0]}",
            ):
                table.add_column(col)
            for f in folds:
                table.add_row(str(f.index), f"{opt.iso(f.in_sample[0])} → {opt.iso(f.in_sample[1])}",
                              f"{opt.iso(f.out_of_sample[0])} → {opt.iso(f.out_of_sample[1])}",
                              orjson.dumps(f.params).decode(), f"{f.in_sample_values[0]:.3f}",
                              f"{f.out_of_sample_values[0]:.3f}")  # fmt: skip
            out.print(table)
            return
        study = opt.optimise(data, config, dims, objectives=objective, sampler=sampler,  # type: ignore[arg-type]
                             trials=trials, n_jobs=jobs, seed=seed,
                             on_trial=None if as_json else lambda t: err.print(
                                 f"trial {t.number}: {orjson.dumps(t.params).decode()} -> "
                                 + ", ".join(f"{v:.4f}" for v in t.values)
                                 + f"  ({t.metrics.get('trial_s', 0.0):.1f} s)"))  # fmt: skip
    if as_json:
        _emit_json(study.as_dict())
        return
    err.print(study.speed_line(), soft_wrap=True)
    table = Table(
        title=f"Best trial(s): {', '.join(objective)} ({sampler}, {len(study.trials)} trials, {jobs} processes)"
    )
    table.add_column("trial")
    table.add_column("params")
    for name in objective:
        table.add_column(name, justify="right")
    for t in study.best:
        table.add_row(str(t.number), orjson.dumps(t.params).decode(), *(f"{v:.4f}" for v in t.values))
    out.print(table)


def run_command(
    data: Annotated[
        list[str] | None,
        typer.Option("--data", help="Candle files to replay (default: the shipped samples in data/samples)."),
    ] = None,
    speed: Annotated[
        float, typer.Option(min=0, help="Replay pace in candles per second (0 = as fast as possible).")
    ] = 400.0,
    max_candles: Annotated[
        int | None, typer.Option("--max-candles", min=1, help="Stop after this many candles.")
    ] = None,
    live_data: Annotated[
        bool,
        typer.Option(
            "--live-data", help="Trade public live candles from the exchange (network) instead of the samples."
        ),
    ] = False,
    exchange: Annotated[str, typer.Option(help="Exchange of --live-data (ccxt id).")] = "binance",
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Symbols of --live-data (repeat).")] = None,
    timeframe: Annotated[str, typer.Option(help="Timeframe of --live-data.")] = "1m",
    strategy: Annotated[list[str] | None, typer.Option("--strategy", help="Strategy name (repeat).")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="KEY=VALUE or STRATEGY.KEY=VALUE (repeat).")
    ] = None,
    report: Annotated[Path, typer.Option(help="Where the session report is written.")] = Path("reports/session"),
    view: Annotated[bool, typer.Option("--view/--no-view", help="The live terminal view.")] = True,
    ui: Annotated[
        bool, typer.Option("--ui", help="Serve the web dashboard (and the API) while the session runs, until Ctrl-C.")
    ] = False,
    host: Annotated[str, typer.Option(help="Address of --ui.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of --ui (0 = any free port).")] = 8000,
    desk: Annotated[
        str,
        typer.Option(
            help="The AI desk (rules provider, no key): advise (cards only), trade (instead of the strategies) or off."
        ),
    ] = "advise",
    desk_every: Annotated[int, typer.Option("--desk-every", min=1, help="Desk decision every N candles.")] = 24,
) -> None:
    """Run every agent in this process on the in-memory bus with the paper venue (no service, key or network).

    By default it replays the sample data shipped in data/samples at an accelerated pace, shows a
    live view (prices, signals, decisions, positions, equity) and writes the session report.
    """
    from rich.console import Console

    from backtesting.dashboard import DashboardOptions
    from backtesting.data import list_source
    from backtesting.report import limits_tables, summary_table, write_report
    from backtesting.report_html import source_bars
    from backtesting.session import SessionOptions, gateway_feed, run_session, sample_files
    from core.gateway import CandleKey

    out = Console()
    with one_line_errors():
        symbol = symbol or ["BTC/USDT", "ETH/USDT"]
        config = build_config(strategy or ["sma_cross"], param or [], "fixed_fraction", 10.0, 0.0, 10_000.0, False, [])
        dashboard = DashboardOptions(host=host, port=port) if ui else None
        options = SessionOptions(speed=speed, max_candles=max_candles, view=view, ui=dashboard)
        desk_run = _session_desk(desk, desk_every)
        if live_data:
            from agents.data_collection.settings import DataCollectionSettings
            from infrastructure.gateway import CcxtGateway

            sources = [
                list_source(CandleKey(exchange, s, timeframe), [], f"{exchange}:{s}:{timeframe}") for s in symbol
            ]
            gateway = CcxtGateway(exchange, urls=DataCollectionSettings().api_urls or None)

            async def live() -> BacktestResult:
                try:
                    feed = gateway_feed(gateway, symbol, timeframe)
                    return await run_session(config, sources, options, live_feed=feed, console=out,
                                             desk=desk_run)  # fmt: skip
                finally:
                    await gateway.close()

            result = asyncio.run(live())
        else:
            paths = data or [str(p) for p in sample_files()]
            if not paths:
                raise UsageError("no sample data found in data/samples; pass --data FILE")
            sources = asyncio.run(resolve_sources(paths, None, None))
            result = asyncio.run(run_session(config, sources, options, console=out, desk=desk_run))
        files = write_report(result, report, source_bars(sources))
    out.print()
    out.print(summary_table(result, title="Paper session"))
    for table in limits_tables(result):
        out.print(table)
    _print_desk(out, result)
    out.print(f"session report: {files.html}  (trades.csv, equity.csv, summary.json, equity.png beside it)")


def _session_desk(mode: str, every: int) -> DeskRun | None:
    """The desk of ``tradeswarm run``: ``advise`` (decides and shows, the strategies trade), ``trade``
    (its approved decisions trade, instead of the strategies) or ``off``."""
    if mode not in ("advise", "trade", "off"):
        raise UsageError(f"--desk {mode!r}: choose advise, trade or off")
    if mode == "off":
        return None
    from agents.desk.rules import RulesModel
    from agents.desk.settings import DeskSettings
    from agents.desk.wiring import build_desk
    from backtesting.engine import DeskRun
    from core.settings import Settings

    settings = DeskSettings(every=every, trade=mode == "trade")
    return DeskRun(build_desk(settings, Settings(), RulesModel()), settings, replace_strategies=mode == "trade")


def _print_desk(out: Any, result: BacktestResult) -> None:
    """The desk's tally and its last decision as cards."""
    if not result.desk_decisions:
        return
    from backtesting.desk_cards import decision_cards

    d = result.summary()["desk"]
    out.print(f"AI desk [{d['provider']}]: {d['decisions']} decisions, verdicts {d['verdicts']}, actions "
              f"{d['actions']}, {d['intents']} intents, tokens {d['tokens_in']}+{d['tokens_out']}, "
              f"cost ${d['cost_usd']:.4f}", markup=False)  # fmt: skip
    out.print(decision_cards(result.desk_decisions[-1]))


def register(app: typer.Typer) -> None:
    """Mount the commands on the main ``tradeswarm`` app."""
    app.command("backtest")(backtest_command)
    app.command("optimize")(optimize_command)
    app.command("run")(run_command)
