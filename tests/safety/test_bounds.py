"""Magnitude bounds in the contracts (issue #19): absurd prices and quantities are refused where the
message is validated (when it is made, and when it is decoded from the wire — then dead-lettered)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from core.errors import MessageRejected
from core.messages import Envelope, Fill, OrderRequest, PortfolioSnapshot
from core.messages.base import MAX_MAGNITUDE, MIN_POSITIVE
from core.messages.codec import JsonCodec
from core.ports import QueueSpec
from infrastructure.messaging.rabbitmq import RabbitMQBus
from tests.control.data import approved_order
from tests.factories import T0, candle, candle_envelope

ABSURD = ["1e308", "1" + "0" * 40, "1e19", "-1e19"]


@pytest.mark.parametrize("value", [*ABSURD, "1e-19", "1e-300"])
def test_an_order_with_an_absurd_quantity_or_price_is_refused(value: str) -> None:
    base = approved_order(0).model_dump()
    for field in ("quantity", "reference_price"):
        with pytest.raises(ValidationError):
            OrderRequest.model_validate({**base, field: Decimal(value)})


@pytest.mark.parametrize("value", ABSURD)
def test_candles_fills_and_snapshots_refuse_absurd_numbers(value: str) -> None:
    c = candle(0).model_dump()
    with pytest.raises(ValidationError):
        type(candle(0)).model_validate({**c, "high": Decimal(value)})
    with pytest.raises(ValidationError):
        type(candle(0)).model_validate({**c, "volume": Decimal(value)})
    fill = {
        "fill_id": "f1", "client_order_id": "c1", "intent_id": "00000000-0000-0000-0000-000000000001",
        "venue": "binance", "symbol": "BTC/USDT", "side": "buy", "price": "60000", "quantity": "0.1", "ts": T0,
    }  # fmt: skip
    Fill.model_validate(fill)
    with pytest.raises(ValidationError):
        Fill.model_validate({**fill, "fee": value})
    snapshot = {
        "account": "paper", "cash": "1", "equity": "1", "peak_equity": "1", "gross_exposure": "0", "net_exposure": "0",
        "realized_pnl": "0", "unrealized_pnl": "0", "fees": "0", "drawdown": 0.0, "open_positions": 0, "ts": T0,
    }  # fmt: skip
    PortfolioSnapshot.model_validate(snapshot)
    with pytest.raises(ValidationError):
        PortfolioSnapshot.model_validate({**snapshot, "cash": value})


def test_real_values_stay_well_inside_the_bounds() -> None:
    order = approved_order(0)
    tiny = order.model_copy(update={"quantity": Decimal("0.00000001")})  # one satoshi
    OrderRequest.model_validate(tiny.model_dump())
    meme = OrderRequest.model_validate(
        {**order.model_dump(), "quantity": Decimal("4.2e14"), "reference_price": MIN_POSITIVE}
    )
    assert meme.quantity < MAX_MAGNITUDE


def test_the_codec_refuses_an_absurd_message_from_the_wire() -> None:
    envelope = candle_envelope(0)
    raw = orjson.loads(JsonCodec().encode(envelope))
    raw["payload"]["close"] = "1e308"
    raw["payload"]["high"] = "1e308"
    with pytest.raises(MessageRejected, match="less than or equal"):
        JsonCodec().decode(orjson.dumps(raw))


@pytest.mark.integration
async def test_an_absurd_message_is_dead_lettered_with_the_reason(rabbit_url: str) -> None:
    handled: list[Envelope] = []

    async def handler(envelope: Envelope) -> None:
        handled.append(envelope)

    bus = RabbitMQBus(rabbit_url, connection_name="bounds")
    await bus.start()
    try:
        await bus.subscribe(QueueSpec("execution.bounds", ("market.#",)), handler)
        raw = orjson.loads(JsonCodec().encode(candle_envelope(0)))
        raw["payload"]["volume"] = "1" + "0" * 40
        await bus.publish_raw("market.candle.binance.BTC-USDT.1h", orjson.dumps(raw))
        letters = []
        for _ in range(100):
            letters = list(await bus.dead_letters("execution.bounds"))
            if letters:
                break
            await asyncio.sleep(0.05)
        assert handled == []
        (letter,) = letters
        assert "volume" in letter.reason
        assert "less than or equal" in letter.reason
    finally:
        await bus.close()
