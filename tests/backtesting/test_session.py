"""``tradeswarm run --live-data`` wiring, against the local fake Binance venue (real ccxt code)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
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
