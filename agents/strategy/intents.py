"""From an EXECUTE consensus to a :class:`TradeIntent`: side, protective levels, id and expiry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from uuid import UUID

from core.domain import Direction, Side
from core.ids import content_id
from core.messages import IndicatorSnapshot, StrategyVote, TradeIntent
from strategies.base import Position
from strategies.consensus import ConsensusResult


def intent_side(direction: Direction, position: Position) -> Side | None:
    """The order side of ``direction`` given the position; None when there is nothing to do."""
    if direction is Direction.LONG:
        return Side.BUY
    if direction is Direction.SHORT:
        return Side.SELL
    if direction is Direction.EXIT:
        if position.is_long:
            return Side.SELL
        if position.is_short:
            return Side.BUY
    return None


def intent_id_for(snapshot: IndicatorSnapshot, direction: Direction, strategy_set: Sequence[str]) -> UUID:
    """The deterministic id: the same decision on the same candle is the same intent."""
    return content_id(
        "intent",
        snapshot.venue,
        snapshot.symbol,
        snapshot.timeframe,
        snapshot.close_time.isoformat(),
        direction.value,
        ",".join(sorted(strategy_set)),
    )


def price_level(value: float, like: Decimal) -> Decimal | None:
    """``value`` as a positive Decimal price with ``like``'s precision (at least 2 decimals)."""
    if not value > 0.0:
        return None
    exponent = like.as_tuple().exponent
    quantum = Decimal(1).scaleb(min(exponent if isinstance(exponent, int) else -2, -2))
    level = Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_EVEN)
    return level if level > 0 else None


def protective_levels(
    direction: Direction, reference: Decimal, atr: float | None, stop_mult: float, tp_mult: float
) -> tuple[Decimal | None, Decimal | None]:
    """Stop-loss and take-profit hints ``k * ATR`` away from the reference (entries only)."""
    if atr is None or not atr > 0.0 or direction not in (Direction.LONG, Direction.SHORT):
        return None, None
    ref = float(reference)
    sign = 1.0 if direction is Direction.LONG else -1.0
    stop = price_level(ref - sign * stop_mult * atr, reference) if stop_mult > 0 else None
    take = price_level(ref + sign * tp_mult * atr, reference) if tp_mult > 0 else None
    if direction is Direction.LONG:
        stop = stop if stop is not None and stop < reference else None
        take = take if take is not None and take > reference else None
    else:
        stop = stop if stop is not None and stop > reference else None
        take = take if take is not None and take < reference else None
    return stop, take


def build_intent(
    snapshot: IndicatorSnapshot,
    result: ConsensusResult,
    side: Side,
    votes: Sequence[StrategyVote],
    strategy_set: Sequence[str],
    *,
    decided_at: datetime,
    ttl: timedelta,
    atr: float | None,
    stop_mult: float,
    tp_mult: float,
) -> TradeIntent:
    """The intent of an EXECUTE decision (reference price = the snapshot's close)."""
    agreeing = [v for v in votes if v.direction is result.direction]
    confidence = sum(v.confidence for v in agreeing) / len(agreeing) if agreeing else 0.0
    stop, take = protective_levels(result.direction, snapshot.close, atr, stop_mult, tp_mult)
    return TradeIntent(
        intent_id=intent_id_for(snapshot, result.direction, strategy_set),
        venue=snapshot.venue,
        symbol=snapshot.symbol,
        timeframe=snapshot.timeframe,
        side=side,
        direction=result.direction,
        reference_price=snapshot.close,
        stop_loss=stop,
        take_profit=take,
        score=result.score,
        confidence=min(1.0, confidence),
        decided_at=decided_at,
        expires_at=decided_at + ttl,
        strategies=tuple(dict.fromkeys(v.strategy for v in agreeing))[:64],
        rationale=result.rationale[:2000],
    )
