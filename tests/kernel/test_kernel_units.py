"""The kernel's building blocks: merged columns, counter ids, the bus's latest-per-key hand-over and
the all-awake switch."""

from __future__ import annotations

import asyncio
import gc
import uuid
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.base import Agent, AgentContext, Subscription
from backtesting.columns import column_blocks
from backtesting.data import file_source, list_source, merge
from backtesting.synthetic import gbm_source
from core.clock import SimulatedClock
from core.gateway import CandleKey
from core.ids import NAMESPACE, CounterIds, content_id, uuid7_time_ms
from core.messages import Candle, Envelope
from core.routing import CANDLES, routing_key
from core.settings import Settings
from core.wake import LatestPerKey
from infrastructure.messaging.memory import InMemoryBus
from tests.factories import candle

ROOT = Path(__file__).resolve().parents[2]


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=3), block=st.integers(1, 25),
       offsets=st.lists(st.integers(0, 7), min_size=3, max_size=3))  # fmt: skip
def test_merged_columns_list_the_candles_in_merge_order(sizes: list[int], block: int, offsets: list[int]) -> None:
    sources = []
    for k, n in enumerate(sizes):
        tf = ("1h", "4h", "1h")[k]
        symbol = ("BTC/USDT", "BTC/USDT", "ETH/USDT")[k]
        candles = [candle(i * (4 if tf == "4h" else 1) + offsets[k], symbol=symbol, timeframe=tf) for i in range(n)]
        if tf == "4h":
            candles = [c.model_copy(update={"close_time": c.open_time + timedelta(hours=4)}) for c in candles]
        sources.append(list_source(CandleKey(venue="binance", symbol=symbol, timeframe=tf), candles, f"s{k}"))
    expected = list(merge(sources))
    got = []
    for column in column_blocks(sources, source_id="feed", clock=None, size=block):
        for i in range(column.n):
            c = column.build(i)
            got.append(c)
            assert column.close[i] == float(c.close)
            assert column.close_decimal(i) == c.close
            assert column.table[int(column.series[i])].routing_key == routing_key(c)
    assert got == expected


def test_gbm_columns_build_exactly_the_candles_of_the_row_feed() -> None:
    source = gbm_source(3000, seed=5)
    rows = [c for column in column_blocks([source], source_id="f", clock=None) for c in
            (column.build(i) for i in range(column.n))]  # fmt: skip
    assert rows == list(source.candles())


def test_file_columns_keep_the_decimals_as_written() -> None:
    source = file_source(ROOT / "data" / "samples" / "binance_BTC-USDT_1h.csv")
    columns = list(column_blocks([source], source_id="f", clock=None))
    first = columns[0].build(0)
    assert str(first.open) == "93576"  # not 93576.0: the Decimal of the file, not of a float
    assert np.array_equal(columns[0].close[:3], [float(c.close) for c in list(source.candles())[:3]])


@settings(max_examples=200, deadline=None)
@given(
    kind=st.text(min_size=1, max_size=12),
    parts=st.lists(
        st.one_of(st.text(max_size=40), st.integers(), st.decimals(allow_nan=False, allow_infinity=False)), max_size=6
    ),
)
def test_content_ids_are_uuid5_bit_for_bit(kind: str, parts: list[object]) -> None:
    """The fast content id is the stdlib's ``uuid5`` of the canonical string (any text, any parts)."""
    canonical = "\x1f".join([kind, *(str(p) for p in parts)])
    try:
        expected = uuid.uuid5(NAMESPACE, canonical)
    except UnicodeEncodeError:  # a lone surrogate: both refuse it
        try:
            content_id(kind, *parts)
        except UnicodeEncodeError:
            return
        raise AssertionError("content_id accepted what uuid5 refuses") from None
    got = content_id(kind, *parts)
    assert got == expected
    assert (got.int, got.version, got.variant, got.is_safe, str(got)) == (
        expected.int, expected.version, expected.variant, expected.is_safe, str(expected))  # fmt: skip


def test_counter_ids_have_the_uuid7_layout_under_simulated_time() -> None:
    clock = SimulatedClock(datetime(2025, 1, 1, tzinfo=UTC), ids=CounterIds())
    first = clock.message_id()
    clock.advance_to(datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC))
    ids = [i for i in (clock.message_id() for _ in range(5000)) if i is not None]
    assert first is not None
    assert all(i is not None for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    assert first < ids[0]
    for value in (first, ids[-1]):
        assert isinstance(value, uuid.UUID)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
    assert uuid7_time_ms(ids[0]) == 1735689601000  # the simulated time, not the wall clock
    # the same run gives the same ids
    again = SimulatedClock(datetime(2025, 1, 1, tzinfo=UTC), ids=CounterIds())
    assert again.message_id() == first
    # envelopes made under such a clock carry them
    env = Envelope.wrap(candle(0), source="feed", clock=again)
    assert uuid7_time_ms(env.message_id) == 1735689600000
    assert CounterIds(stream=3).next(5) != CounterIds(stream=4).next(5)


class LastPrice(Agent):
    """A consumer of the newest price per series only (like compliance), and of orders."""

    kind = "lastprice"

    def __init__(self, ctx: AgentContext) -> None:
        super().__init__(ctx)
        self.seen: list[tuple[str, str]] = []

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("market", (CANDLES.all(),), {Candle: self.on_candle}, wake=LatestPerKey()),
            Subscription("other", ("other.#",), {Candle: self.on_other}),
        ]

    def on_candle(self, c: Candle, envelope: Envelope) -> None:
        self.seen.append(("market", f"{c.symbol}@{c.sequence}"))

    def on_other(self, c: Candle, envelope: Envelope) -> None:
        self.seen.append(("other", f"{c.symbol}@{c.sequence}"))


async def _run(wake: bool) -> list[tuple[str, str]]:
    bus = InMemoryBus(wake=wake)
    clock = SimulatedClock(candle(0).open_time)
    await bus.start()
    ctx = AgentContext(bus=bus, clock=clock, settings=Settings(), agent_id="lp", log=structlog.get_logger("t"),
                       instrument=False)  # fmt: skip
    agent = LastPrice(ctx)
    await agent.start()
    for i in range(3):
        for symbol in ("BTC/USDT", "ETH/USDT"):
            c = candle(i, symbol=symbol)
            await bus.publish(Envelope.wrap(c, source="feed", clock=clock), routing_key(c))
    await bus.publish(Envelope.wrap(candle(9), source="feed", clock=clock), "other.x")
    await bus.publish(
        Envelope.wrap(candle(5, symbol="ETH/USDT"), source="feed", clock=clock),
        routing_key(candle(5, symbol="ETH/USDT")),
    )
    await bus.close()
    return agent.seen


def test_latest_per_key_hands_the_newest_over_before_the_next_delivery_and_at_close() -> None:
    awake = asyncio.run(_run(wake=False))
    woken = asyncio.run(_run(wake=True))
    assert len(awake) == 8
    # the newest per series, in arrival order, before the consumer's next delivery; the rest at close
    assert woken == [("market", "BTC/USDT@2"), ("market", "ETH/USDT@2"), ("other", "BTC/USDT@9"),
                     ("market", "ETH/USDT@5")]  # fmt: skip
    assert woken[-1] == awake[-1]


def test_a_block_is_freed_as_soon_as_it_is_dropped_lists_included() -> None:
    """A replay drops each block of a million-candle run when it is done; nothing in a block may hold
    a reference cycle (the cycle collector runs rarely: a cycle kept every block alive, and the
    bench's peak memory doubled)."""
    clock = SimulatedClock(datetime(2024, 1, 1, tzinfo=UTC))
    column = next(column_blocks([gbm_source(500, seed=1)], source_id="feed", clock=clock))
    lists = column.lists()
    assert lists.close == column.close.tolist()
    assert lists.day == (column.close_ms // 86_400_000).tolist()
    assert (lists.series, lists.open_ms, lists.close_ms, lists.high, lists.low) == (
        column.series.tolist(),
        column.open_ms.tolist(),
        column.close_ms.tolist(),
        column.high.tolist(),
        column.low.tolist(),
    )
    column.close_decimal(3)
    ref = weakref.ref(column)
    gc.disable()
    try:
        del column
        assert ref() is None, "the block outlived its last reference (a reference cycle)"
    finally:
        gc.enable()
    assert lists.close[3] > 0  # the lists stay usable on their own
