"""``tradeswarm run --live-data`` wiring, against the local fake Binance venue (real ccxt code)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

from backtesting.config import BacktestConfig
from backtesting.data import list_source
from backtesting.session import SessionOptions, gateway_feed, run_session
from core.gateway import CandleKey
from infrastructure.gateway import CcxtGateway
from tests.fakevenue import FakeBinance

EXE = Path(sys.executable).parent / "tradeswarm"


async def test_session_trades_live_candles_from_the_gateway() -> None:
    async with FakeBinance(stream_start=100, stream_end=200) as venue:
        gateway = CcxtGateway("binance", clock=venue.clock, urls=venue.ccxt_urls())
        try:
            sources = [list_source(CandleKey("binance", "BTC/USDT", "1h"), [], "live")]
            config = BacktestConfig(params={"sma_cross": {"fast": 3, "slow": 8}}, no_limits=True)
            result = await asyncio.wait_for(
                run_session(
                    config,
                    sources,
                    SessionOptions(max_candles=60, view=False),
                    live_feed=gateway_feed(gateway, ["BTC/USDT"], "1h"),
                ),
                timeout=120,
            )
        finally:
            await gateway.close()
    assert result.candles == 60
    assert result.series == ["binance:BTC/USDT:1h"]
    assert len(result.times_ms) == 60
    assert list(result.times_ms) == sorted(set(result.times_ms))
    assert result.orders, "the agents traded the streamed candles"
    assert result.dead_letters == 0


async def test_run_live_data_command_against_the_fake_venue(tmp_path: Path) -> None:
    async with FakeBinance(stream_start=100, stream_end=200) as venue:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADESWARM_")}
        env["TRADESWARM_DATA_API_URLS"] = json.dumps(venue.ccxt_urls())
        proc = await asyncio.create_subprocess_exec(
            str(EXE),
            "run",
            "--live-data",
            "--symbol",
            "BTC/USDT",
            "--timeframe",
            "1h",
            "--max-candles",
            "30",
            "--no-view",
            "--report",
            str(tmp_path / "live"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode == 0, err.decode()[-2000:]
    summary = json.loads((tmp_path / "live" / "summary.json").read_text())
    assert summary["bars"] == 30
    assert summary["series"] == ["binance:BTC/USDT:1h"]
    assert "session report:" in out.decode()


async def test_the_live_view_shows_what_the_limits_did(monkeypatch) -> None:
    """The embedded session's terminal view lists rejections, adjustments and alerts by reason."""
    import io

    from rich.console import Console

    from backtesting.data import file_source
    from backtesting.session import sample_files

    for name in [k for k in os.environ if k.startswith("TRADESWARM_")]:
        monkeypatch.delenv(name)
    console = Console(file=io.StringIO(), width=200, record=True, force_terminal=False)
    config = BacktestConfig(fraction=Decimal("0.5"))  # above the default 25% position cap: every entry is cut
    result = await run_session(
        config,
        [file_source(p) for p in sample_files()],
        SessionOptions(speed=0, max_candles=1500, view=True, refresh_per_second=4),
        console=console,
    )
    cut = result.outcomes.as_dict()["adjustments"]["risk"]["max_position"]
    assert cut > 0
    text = console.export_text()
    assert "Rejections, adjustments and alerts" in text
    assert f"risk adjusted max_position {cut}" in text
