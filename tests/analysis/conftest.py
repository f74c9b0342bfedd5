"""Fixtures of the analysis tests: a fresh database on the real local InfluxDB 1.x."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from infrastructure.database.influx import InfluxV1Store

INFLUX_URL = os.environ.get("TRADESWARM_TEST_INFLUX_URL", "http://127.0.0.1:8086")


@pytest.fixture
async def analysis_influx_store() -> AsyncIterator[InfluxV1Store]:
    """A started v1 tick store on a database of its own (dropped afterwards). Fails if InfluxDB is down."""
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{INFLUX_URL}/ping") as resp:
            if resp.status != 204:
                pytest.fail(f"InfluxDB at {INFLUX_URL} answered /ping with {resp.status}")
    except aiohttp.ClientError as exc:
        pytest.fail(f"InfluxDB is not reachable at {INFLUX_URL}: {exc}")
    store = InfluxV1Store(INFLUX_URL, f"ts_ta_test_{uuid.uuid4().hex[:12]}")
    await store.start()
    yield store
    await store.drop_database()
    await store.close()
