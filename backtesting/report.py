"""Backtest reports: ``trades.csv``, ``equity.csv``, ``summary.json``, ``equity.png``, ``report.html``
and rich tables for the terminal.

Everything written is a deterministic function of the result (fixed decimal formatting, sorted
JSON keys, no timestamps of the run itself in the files that tests compare), so two runs on the
same data give byte-identical ``trades.csv``, ``equity.csv`` and ``summary.json`` apart from
``elapsed_s`` and ``bars_per_second``. The HTML report is self-contained and interactive: its charts
are drawn in the browser by the inlined lightweight-charts (:mod:`backtesting.report_html`); the
PNG of the equity curve is written beside it.

``trades.csv`` lists every round trip: the closed ones, then those still open at the end
(``status`` ``open``, no exit, ``pnl`` valued at ``mark_price``, the last close). ``equity.csv``
has one row per sample (bar close): equity, drawdown, whether a position was open, and the
buy-and-hold benchmark. Undefined metrics (:mod:`backtesting.metrics`) are shown as ``n/a`` with
their reason. Every report also says what the limits did: rejections, adjustments and alerts by
reason, the time in each trading state, and the effective limits.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from backtesting.metrics import drawdown_series
from backtesting.outcomes import reason_rows
from backtesting.report_html import REPORT_CSS, Bar, close_bars, inline_scripts, report_data
from backtesting.trades import RoundTrip

if TYPE_CHECKING:
    from rich.table import Table

    from backtesting.engine import BacktestResult

TRADE_COLUMNS = (
    "symbol", "side", "entry_time", "entry_price", "exit_time", "exit_price", "quantity", "fees", "pnl", "status",
    "mark_price",
)  # fmt: skip
EQUITY_COLUMNS = ("time", "equity", "drawdown", "in_market", "benchmark")
_Q = Decimal("0.00000001")
MAX_PLOT_POINTS = 4000


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where a report was written."""

    directory: Path
    trades_csv: Path
    summary_json: Path
    equity_png: Path
    html: Path
    equity_csv: Path


def _dec(value: Decimal | None) -> str:
    if value is None:
        return ""
    return format(value.quantize(_Q).normalize(), "f")


def _time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trade_rows(trips: list[RoundTrip]) -> list[list[str]]:
    """Round trips as CSV rows (strings), in the order of :data:`TRADE_COLUMNS`."""
    return [
        [t.symbol, t.side, _time(t.entry_time), _dec(t.entry_price), _time(t.exit_time), _dec(t.exit_price),
         _dec(t.quantity), _dec(t.fees), _dec(t.pnl), "closed" if t.closed else "open", _dec(t.mark_price)]
        for t in trips
    ]  # fmt: skip


def write_trades_csv(path: Path, trips: list[RoundTrip]) -> None:
    """One row per round trip: the closed ones, then those still open (marked ``open``)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRADE_COLUMNS)
        writer.writerows(trade_rows(trips))


def equity_rows(result: BacktestResult) -> list[list[str]]:
    """The equity curve as CSV rows, in the order of :data:`EQUITY_COLUMNS`."""
    times = result.times_ms
    equity = np.asarray(result.equity)
    drawdown = drawdown_series(equity)
    benchmark = np.asarray(result.benchmark())
    has_benchmark = benchmark.size == len(times)
    return [
        [
            datetime.fromtimestamp(times[i] / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{equity[i]:.8f}",
            f"{drawdown[i]:.8f}",
            str(result.in_market[i]),
            f"{benchmark[i]:.8f}" if has_benchmark else "",
        ]
        for i in range(len(times))
    ]


def write_equity_csv(path: Path, result: BacktestResult) -> None:
    """One row per sample (bar close): equity, drawdown, a position open (1/0), buy and hold."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(EQUITY_COLUMNS)
        writer.writerows(equity_rows(result))


def summary_bytes(summary: dict[str, Any]) -> bytes:
    """``summary.json`` content: sorted keys, indented, NaN-free."""
    return orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS) + b"\n"


def _stride(n: int) -> int:
    return max(1, n // MAX_PLOT_POINTS)


def _dates(times_ms: Any) -> Any:
    return np.asarray(times_ms, dtype="datetime64[ms]")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def equity_png(result: BacktestResult) -> bytes:
    """Equity against buy-and-hold, with the drawdown underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(result.times_ms)
    e = np.asarray(result.equity)
    b = np.asarray(result.benchmark())
    step = _stride(t.size)
    dates = _dates(t[::step])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax1.plot(dates, e[::step], label="strategy", color="#1f77b4", linewidth=1.2)
    if b.size == t.size:
        ax1.plot(dates, b[::step], label="buy & hold", color="#999999", linewidth=1.0, linestyle="--")
    ax1.set_ylabel("equity")
    ax1.set_title(f"{', '.join(result.config.strategies)} on {', '.join(result.series)}")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    dd = drawdown_series(e)
    ax2.fill_between(dates, -dd[::step] * 100, 0, color="#d62728", alpha=0.4, step="post")
    ax2.set_ylabel("drawdown %")
    ax2.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def price_png(result: BacktestResult) -> bytes:
    """Each symbol's close with entry (^) and exit (v) markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    symbols = result.symbols[:4]
    fig, axes = plt.subplots(len(symbols), 1, figsize=(10, 2.6 * len(symbols)), sharex=True, squeeze=False)
    t = np.asarray(result.times_ms)
    step = _stride(t.size)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        closes = np.asarray(result.closes[symbol])
        ax.plot(_dates(t[::step]), closes[::step], color="#444444", linewidth=0.9)
        trips = [x for x in result.trips + result.open_trips if x.symbol == symbol][:2000]
        if trips:
            ax.scatter(
                [np.datetime64(x.entry_time.replace(tzinfo=None), "ms") for x in trips],
                [float(x.entry_price) for x in trips],
                marker="^",
                color="#2ca02c",
                s=28,
                label="entry",
                zorder=3,
            )
            exits = [x for x in trips if x.exit_time is not None and x.exit_price is not None]
            ax.scatter([np.datetime64(x.exit_time.replace(tzinfo=None), "ms") for x in exits if x.exit_time],
                       [float(x.exit_price) for x in exits if x.exit_price], marker="v", color="#d62728", s=28,
                       label="exit", zorder=3)  # fmt: skip
            ax.legend(loc="upper left")
        ax.set_ylabel(symbol)
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


METRIC_LABELS: dict[str, tuple[str, str]] = {
    "total_return": ("Total return", "pct"),
    "cagr": ("CAGR", "pct"),
    "annualised_volatility": ("Annualised volatility", "pct"),
    "sharpe": ("Sharpe", "num"),
    "sortino": ("Sortino", "num"),
    "calmar": ("Calmar", "num"),
    "max_drawdown": ("Max drawdown", "pct"),
    "max_drawdown_duration_days": ("Max drawdown duration (days)", "num"),
    "trades": ("Trades", "int"),
    "win_rate": ("Win rate", "pct"),
    "profit_factor": ("Profit factor", "num"),
    "avg_win": ("Average win", "money"),
    "avg_loss": ("Average loss", "money"),
    "exposure": ("Exposure time", "pct"),
    "fees": ("Fees paid", "money"),
    "turnover": ("Turnover (x avg equity)", "num"),
    "initial_equity": ("Initial equity", "money"),
    "final_equity": ("Final equity", "money"),
    "benchmark_return": ("Buy & hold return", "pct"),
    "benchmark_max_drawdown": ("Buy & hold max drawdown", "pct"),
}


def format_metric(value: Any, kind: str, undefined: str | None = None) -> str:
    """A metric for humans; ``n/a (why)`` when it is undefined."""
    if undefined is not None:
        return f"n/a ({undefined})"
    if value is None:
        return "inf" if kind == "num" else "-"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "int":
        return f"{int(value)}"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:.3f}"


INTRABAR_NOTE = {
    "worst": " (protective exits from the entry candle; stop before take-profit)",
    "next_bar": " (protective exits from the candle after the entry: optimistic)",
}


def summary_table(result: BacktestResult, title: str = "Backtest") -> Table:
    """The headline metrics as a rich table for the terminal."""
    from rich.table import Table

    m = result.metrics.as_dict()
    undefined = result.metrics.undefined
    table = Table(title=f"{title}: {', '.join(result.config.strategies)} on {', '.join(result.series)}",
                  show_header=True, header_style="bold")  # fmt: skip
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, (label, kind) in METRIC_LABELS.items():
        table.add_row(label, format_metric(m[key], kind, undefined.get(key)))
    if result.min_cash is not None:
        table.add_row("Lowest cash", f"{result.min_cash:,.2f}")
    table.add_row("Intrabar policy", result.config.intrabar)
    table.add_row("Candles", f"{result.candles:,}")
    table.add_row("Speed", f"{result.bars_per_second:,.0f} candles/s ({result.elapsed_s:.2f} s)")
    return table


def limits_tables(result: BacktestResult) -> list[Table]:
    """What the limits did (rejections, adjustments, alerts by reason), the time in each trading
    state, and the effective limits, as rich tables."""
    from rich.table import Table

    summary = result.outcomes.as_dict()
    did = Table(title="Rejections, adjustments and alerts", show_header=True, header_style="bold")
    did.add_column("stage")
    did.add_column("reason")
    did.add_column("count", justify="right")
    rows = reason_rows(summary)
    for stage, reason, count in rows:
        did.add_row(stage, reason, f"{count:,}")
    if not rows:
        did.add_row("-", "no rejection, adjustment or alert", "0")
    consensus = ", ".join(f"{k} {v:,}" for k, v in summary["consensus"].items())
    did.caption = (
        f"risk approved {summary['approved']['risk']:,} as asked; consensus: {consensus}; "
        f"reviews requested {summary['reviews']['requested']:,} (nobody reviews in a backtest: they expired)"
    )
    states = Table(title="Time in each trading state", show_header=True, header_style="bold")
    for col in ("state", "time", "share"):
        states.add_column(col, justify="left" if col == "state" else "right")
    for state, spent in result.trading_states().items():
        states.add_row(state, _duration(spent["seconds"]), f"{spent['share'] * 100:.2f}%")
    limits = Table(title="Effective limits and costs", show_header=True, header_style="bold")
    for col in ("agent", "setting", "value"):
        limits.add_column(col, justify="right" if col == "value" else "left")
    for agent, values in result.limits.items():
        for name, value in values.items():
            limits.add_row(agent, name, _setting(value))
    return [did, states, limits]


def _duration(seconds: float) -> str:
    days, rest = divmod(round(seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours:02d}h {rest // 60:02d}m"


def _setting(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_html(result: BacktestResult, bars: Mapping[str, Sequence[Bar]] | None = None) -> str:
    """The self-contained, interactive HTML report (:mod:`backtesting.report_html`): candlesticks with
    the trades, equity and drawdown, metrics, what the limits did, and a sortable trades table."""
    m = result.metrics.as_dict()
    undefined = result.metrics.undefined
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        f"<td class=num>{html.escape(format_metric(m[key], kind, undefined.get(key)))}</td></tr>"
        for key, (label, kind) in METRIC_LABELS.items()
    )
    trade_head = "".join(f"<th>{c}</th>" for c in TRADE_COLUMNS)
    trade_body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
        for row in trade_rows(result.trips + result.open_trips)
    )
    limits_html = _limits_html(result)
    title = html.escape(f"tradeswarm backtest: {', '.join(result.config.strategies)}")
    params = html.escape(orjson.dumps(result.config.params, option=orjson.OPT_SORT_KEYS).decode())
    data = report_data(result, {**close_bars(result), **(bars or {})})
    return f"""<!doctype html>
<html lang="en" data-theme="light"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{REPORT_CSS}</style></head><body><main>
<h1>{title}</h1>
<p class="muted">Series: {html.escape(", ".join(result.series))} &middot; candles: {result.candles:,} &middot;
parameters: <code>{params}</code> &middot; fees {result.config.fee_bps} bps &middot;
slippage {result.config.slippage_bps} bps &middot; sizing {html.escape(result.config.sizing)} &middot;
intrabar {html.escape(result.config.intrabar)}{INTRABAR_NOTE.get(result.config.intrabar, "")}</p>
<section><h2>Prices and trades</h2><p class="muted">Entries &#9650; and exits &#9660; on the candles; scroll to zoom,
drag to pan, hover for values.</p><div id="price-charts"></div></section>
<section><h2>Equity and drawdown</h2><div id="equity-chart" class="chart"></div></section>
<section><h2>Metrics</h2><table>{rows}</table></section>
<section>{limits_html}</section>
<section><h2>Trades ({len(result.trips)} closed, {len(result.open_trips)} open at the end)</h2>
<p class="muted">Click a column to sort.</p>
<div class="scroll"><table id="trades-table"><thead><tr>{trade_head}</tr></thead>
<tbody>{trade_body}</tbody></table></div>
</section></main>
{inline_scripts(data)}
</body></html>
"""


def _table_html(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"


def _limits_html(result: BacktestResult) -> str:
    """The report's sections on what the limits did, the trading states and the effective limits."""
    summary = result.outcomes.as_dict()
    did = [(stage, reason, f"{n:,}") for stage, reason, n in reason_rows(summary)] or [
        ("-", "no rejection, adjustment or alert", "0")
    ]
    consensus = ", ".join(f"{k} {v:,}" for k, v in summary["consensus"].items())
    states = [
        (state, _duration(spent["seconds"]), f"{spent['share'] * 100:.2f}%")
        for state, spent in result.trading_states().items()
    ]
    limits = [
        (agent, name, _setting(value)) for agent, values in result.limits.items() for name, value in values.items()
    ]
    cash = f"{result.min_cash:,.2f}" if result.min_cash is not None else "-"
    return (
        "<h2>Rejections, adjustments and alerts</h2>"
        + _table_html(("stage", "reason", "count"), did)
        + f"<p>Risk approved {summary['approved']['risk']:,} intents as asked; consensus: {html.escape(consensus)};"
        f" manual reviews requested {summary['reviews']['requested']:,} (nobody reviews in a backtest: they"
        f" expired). Lowest cash after a fill: {cash}.</p>"
        + "<h2>Time in each trading state</h2>"
        + _table_html(("state", "time", "share"), states)
        + "<h2>Effective limits and costs</h2>"
        + _table_html(("agent", "setting", "value"), limits)
    )


def write_report(
    result: BacktestResult, directory: str | Path, bars: Mapping[str, Sequence[Bar]] | None = None
) -> ReportFiles:
    """Write every report file into ``directory`` (created when missing). ``bars``: the candles of
    each symbol for the report's charts (:func:`backtesting.report_html.source_bars`); without them
    the bars are made of the sampled closes."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out, out / "trades.csv", out / "summary.json", out / "equity.png", out / "report.html",
                        out / "equity.csv")  # fmt: skip
    write_trades_csv(files.trades_csv, result.trips + result.open_trips)
    write_equity_csv(files.equity_csv, result)
    files.summary_json.write_bytes(summary_bytes(result.summary()))
    files.equity_png.write_bytes(equity_png(result))
    files.html.write_text(render_html(result, bars), encoding="utf-8")
    return files
