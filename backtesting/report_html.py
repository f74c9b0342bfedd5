"""The interactive HTML report (``report.html``): one self-contained file.

Candlesticks of every symbol with the entries and exits, equity against buy-and-hold with the
drawdown underneath, and a sortable trades table: TradingView's lightweight-charts and the
dashboard's chart helpers are inlined with the data (JSON), so the file opens offline from disk,
with no CDN and no other file. The PNG (``equity.png``) is still written beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from backtesting.trades import RoundTrip

if TYPE_CHECKING:
    from backtesting.data import SeriesSource
    from backtesting.engine import BacktestResult

MAX_BARS = 5000
"""Bars per symbol in the report: beyond this, consecutive candles are merged into larger bars."""
MAX_EQUITY_POINTS = 5000

Bar = tuple[int, float, float, float, float]
"""(open time in UTC seconds, open, high, low, close)."""

_ASSETS = ("vendor/lightweight-charts.standalone.production.js", "js/charts.js", "js/report.js")


def _static(name: str) -> str:
    return (resources.files("infrastructure.api") / "static" / name).read_text(encoding="utf-8")


def merge_bars(t: Any, o: Any, h: Any, low: Any, c: Any, max_bars: int = MAX_BARS) -> list[Bar]:
    """Bars from arrays, ``k`` consecutive rows merged into one when there are more than ``max_bars``."""
    n = len(t)
    if n == 0:
        return []
    k = max(1, -(-n // max_bars))
    starts = np.arange(0, n, k)
    highs = np.maximum.reduceat(np.asarray(h, dtype=float), starts)
    lows = np.minimum.reduceat(np.asarray(low, dtype=float), starts)
    ends = np.minimum(starts + k, n) - 1
    ts = np.asarray(t)[starts]
    opens = np.asarray(o, dtype=float)[starts]
    closes = np.asarray(c, dtype=float)[ends]
    return [
        (int(ts[i]), float(opens[i]), float(highs[i]), float(lows[i]), float(closes[i])) for i in range(starts.size)
    ]


def source_bars(sources: Iterable[SeriesSource], max_bars: int = MAX_BARS) -> dict[str, list[Bar]]:
    """The candles of each source as bars (read again from the files: arrays when the source has them)."""
    out: dict[str, list[Bar]] = {}
    for source in sources:
        if source.blocks is not None:
            blocks = list(source.blocks())
            if not blocks:
                continue
            cols = {name: np.concatenate([getattr(b, name) for b in blocks]) for name in
                    ("open_ms", "open", "high", "low", "close")}  # fmt: skip
            t = cols["open_ms"] // 1000
            out[source.key.symbol] = merge_bars(t, cols["open"], cols["high"], cols["low"], cols["close"], max_bars)
            continue
        rows = list(source.candles())
        if rows:
            t = np.array([int(r.open_time.timestamp()) for r in rows])
            out[source.key.symbol] = merge_bars(t, [float(r.open) for r in rows], [float(r.high) for r in rows],
                                                [float(r.low) for r in rows], [float(r.close) for r in rows],
                                                max_bars)  # fmt: skip
    return out


def close_bars(result: BacktestResult, max_bars: int = MAX_BARS) -> dict[str, list[Bar]]:
    """Bars made of the sampled closes alone (when the candles are not at hand): open = previous close."""
    t = np.asarray(result.times_ms) // 1000
    out: dict[str, list[Bar]] = {}
    for symbol in result.symbols:
        c = np.asarray(result.closes[symbol], dtype=float)
        if c.size == 0 or c.size != t.size:
            continue
        o = np.concatenate([c[:1], c[:-1]])
        out[symbol] = merge_bars(t, o, np.maximum(o, c), np.minimum(o, c), c, max_bars)
    return out


def _trip(t: RoundTrip) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "side": t.side,
        "entry_time": int(t.entry_time.timestamp()),
        "entry_price": float(t.entry_price),
        "exit_time": int(t.exit_time.timestamp()) if t.exit_time is not None else None,
        "exit_price": float(t.exit_price) if t.exit_price is not None else None,
        "pnl": float(t.pnl),
    }


def _curve(times_ms: Any, values: Any) -> list[tuple[int, float]]:
    t = np.asarray(times_ms) // 1000
    v = np.asarray(values, dtype=float)
    step = max(1, -(-t.size // MAX_EQUITY_POINTS))
    idx = list(range(0, t.size, step))
    if t.size and idx[-1] != t.size - 1:
        idx.append(t.size - 1)
    return [(int(t[i]), round(float(v[i]), 6)) for i in idx]


def report_data(result: BacktestResult, bars: Mapping[str, Sequence[Bar]]) -> dict[str, Any]:
    """What the report's script draws."""
    bench = np.asarray(result.benchmark())
    return {
        "bars": {symbol: list(rows) for symbol, rows in bars.items()},
        "trades": [_trip(t) for t in [*result.trips, *result.open_trips]],
        "equity": _curve(result.times_ms, result.equity),
        "benchmark": _curve(result.times_ms, bench) if bench.size == len(result.times_ms) else [],
    }


def inline_scripts(data: dict[str, Any]) -> str:
    """The ``<script>`` elements of the report: the data, then the inlined libraries and the report code."""
    payload = orjson.dumps(data).decode().replace("</", "<\\/")
    scripts = [f'<script type="application/json" id="report-data">{payload}</script>']
    for name in _ASSETS:
        code = _static(name).replace("</script", "<\\/script")
        scripts.append(f"<script>/* {name} */\n{code}\n</script>")
    return "\n".join(scripts)


REPORT_CSS = """
:root{--bg:#f4f6f9;--panel:#fff;--panel2:#f8fafc;--fg:#111827;--muted:#6b7280;--border:#e5e7eb;
--grid:rgba(100,116,139,.14);--accent:#2563eb;--up:#16a34a;--down:#dc2626}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:var(--bg);color:var(--fg)}
main{max-width:1200px;margin:0 auto;padding:24px}
section{background:var(--panel);border:1px solid var(--border);border-radius:10px;padding:16px;margin:14px 0}
h1{font-size:22px;margin:0 0 6px}h2{font-size:16px;margin:0 0 10px}h3{font-size:14px;margin:10px 0 6px}
.chart{width:100%}.muted{color:var(--muted)}
table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
td,th{border-bottom:1px solid var(--border);padding:4px 10px;font-size:13px;text-align:left}
th{color:var(--muted);font-weight:600}th.sortable{cursor:pointer;user-select:none}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
.num{text-align:right}.scroll{max-height:520px;overflow:auto}
"""
