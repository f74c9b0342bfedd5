"""The strategy agent: indicator snapshots in, consensus decisions and trade intents out.

Per (venue, symbol, timeframe) series it runs the configured strategies (one instance each, so a
strategy may keep state between snapshots), tracks the position of each symbol from fills and
position updates, fuses the votes (:mod:`strategies.consensus`) and publishes

* a :class:`ConsensusDecision` for every snapshot on which at least one strategy voted, whatever
  the outcome (EXECUTE, MANUAL_REVIEW, REJECT), with the votes embedded and the rationale;
* a :class:`TradeIntent` on EXECUTE, published before its decision (which carries its id);
* a :class:`ReviewRequest` on a MANUAL_REVIEW that could trade: the trade it would make, for a
  person to approve or reject through the orchestrator's review queue (API ``/reviews``) within
  ``review_ttl_s``. The person's :class:`ReviewDecision` comes back here: an approval still valid
  and still feasible (not halted, not paused for an entry, something to exit, no pyramiding) is
  published as the :class:`TradeIntent` (id = the review's id) and takes the normal path, risk,
  compliance, execution; either way the outcome is published as a second ConsensusDecision.

**Settlement barrier** (``await_settlement``, on by default; docs/backtesting.md, Parity). The fills a
candle causes and the snapshot of that candle come from different processes on different queues: the
strategy could read the snapshot first and decide on a stale position. Execution marks each candle
settled (:class:`PositionsSettled`, published after that candle's fills, on the strategy's positions
queue, so after them), and a snapshot waits until its symbol is settled as of its close time (at most
``settlement_timeout_s`` of wall-clock time). It engages for a symbol once a first mark was seen (a
stack without marks is not blocked); backtests turn it off, the in-memory bus handing each candle to
execution before the analysis of it starts.

Individual :class:`StrategyVote` messages are published only with ``publish_votes`` (they are in
the decision anyway; a message per strategy per candle would cost more than the whole pipeline's
per-candle budget). A snapshot on which no strategy voted produces nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from agents.base import Agent, AgentContext, Subscription
from agents.base.partitions import symbol_partitions
from agents.strategy.intents import build_intent, intent_side
from agents.strategy.settings import StrategySettings
from core.clock import ms_from_utc
from core.columns import Column, IndicatorColumn, utc_from_ms
from core.domain import ConsensusOutcome, Direction, Side
from core.errors import UnroutableMessage
from core.messages import (
    Command,
    ConsensusDecision,
    DeskDecision,
    Envelope,
    Fill,
    IndicatorSnapshot,
    PositionsSettled,
    PositionUpdate,
    ReviewDecision,
    ReviewRequest,
    StrategyVote,
    TradeIntent,
)
from core.routing import DESK_DECISIONS, FILLS, INDICATORS, POSITIONS, REVIEW_DECISIONS, SETTLED, partition_of
from core.wake import WakeOn
from infrastructure.observability import metrics
from strategies import FLAT, Position, StrategyBook, fuse
from strategies.base import Columns, Rows
from strategies.consensus import ConsensusResult
from strategies.desk_vote import desk_vote, still_valid
from strategies.runner import BookTwin

SeriesKey = tuple[str, str, str]
PositionKey = tuple[str, str]
_SEEN_FILLS_LIMIT = 10_000


@dataclass(slots=True)
class _SeriesState:
    book: StrategyBook
    last_close_time: datetime | None = None
    pending_votes: list[StrategyVote] | None = None
    """The votes on the last snapshot while its decision has not been published (for a redelivery)."""


class StrategyAgent(Agent):
    """Runs strategies, fuses their votes and emits intents (see the module docstring)."""

    kind = "strategy"

    def __init__(self, ctx: AgentContext, settings: StrategySettings | None = None) -> None:
        super().__init__(ctx)
        self.strategy_settings = settings or StrategySettings()
        self.specs = self.strategy_settings.strategy_specs()
        self.strategy_names = tuple(spec.name for spec in self.specs)
        self.consensus = self.strategy_settings.consensus_config()
        self.ttl = timedelta(seconds=self.strategy_settings.intent_ttl_s)
        self.review_ttl = timedelta(seconds=self.strategy_settings.review_ttl_s)
        self.series: dict[SeriesKey, _SeriesState] = {}
        self.positions: dict[PositionKey, Position] = {}
        self._seen_fills: dict[str, None] = {}
        self.settled: dict[PositionKey, datetime] = {}
        """Per (venue, symbol): the close time of the last candle execution marked settled."""
        self._settle_event = asyncio.Event()
        self.decisions = 0
        self.intents = 0
        self.strategy_errors: dict[str, int] = {}
        self.desk_decisions: dict[PositionKey, DeskDecision] = {}
        """The AI desk's latest decision per (venue, symbol), its vote while valid (``desk_weight`` > 0)."""
        self.desk_votes = 0
        self._twins: dict[int, tuple[Column, Rows, BookTwin]] = {}
        """Per series of the column being published: (column, its rows still to apply, the twin)."""

    def subscriptions(self) -> list[Subscription]:
        """Snapshots of the configured symbols and timeframes; fills and positions of the configured
        symbols (any venue: series and positions are kept per venue).

        Single-active-consumer, and with ``rabbitmq_partitions`` = N > 1 both queues are split into
        symbol partitions (``strategy.indicators.p<i>``, ``strategy.positions.p<i>``): the replica
        that owns a partition gets its symbols' snapshots and their fills and positions.
        """
        s = self.ctx.settings
        # the broker's definitions are computed on an agent built without __init__ (settings from the env)
        desk_weight = (self.__dict__.get("strategy_settings") or StrategySettings()).desk_weight
        subscriptions = []
        for partition, symbols in symbol_partitions(s.symbols, s.rabbitmq_partitions):
            snapshots = tuple(
                INDICATORS.pattern(symbol=symbol, timeframe=tf) for symbol in symbols for tf in s.timeframes
            )
            topics = (FILLS, POSITIONS, SETTLED)
            positions = tuple(topic.pattern(symbol=symbol) for symbol in symbols for topic in topics)
            reviews = tuple(REVIEW_DECISIONS.pattern(symbol=symbol) for symbol in symbols)
            if desk_weight > 0:  # the AI desk as one more voter
                subscriptions.append(
                    Subscription(
                        purpose="desk",
                        patterns=tuple(DESK_DECISIONS.pattern(symbol=symbol) for symbol in symbols),
                        handlers={DeskDecision: self.on_desk_decision},
                        partition=partition,
                        single_active_consumer=True,
                    )
                )
            subscriptions += [
                Subscription(
                    purpose="indicators",
                    patterns=snapshots,
                    handlers={IndicatorSnapshot: self.on_snapshot},
                    partition=partition,
                    single_active_consumer=True,
                    wake=WakeOn(self._next_vote, self._skip_snapshots),
                ),
                Subscription(
                    purpose="positions",
                    patterns=positions,
                    handlers={Fill: self.on_fill, PositionUpdate: self.on_position, PositionsSettled: self.on_settled},
                    partition=partition,
                    single_active_consumer=True,
                ),
                Subscription(
                    purpose="reviews",
                    patterns=reviews,
                    handlers={ReviewDecision: self.on_review},
                    partition=partition,
                    single_active_consumer=True,
                ),
            ]
        return subscriptions

    # -- wake condition: only the snapshots some strategy votes on ---------------------------------

    def _twin(self, column: Column, s: int) -> tuple[Rows, BookTwin] | None:
        """The book twin of series ``s`` of ``column`` (its rows not applied yet), built once per column."""
        cached = self._twins.get(s)
        if cached is not None and cached[0] is column:
            return cached[1], cached[2]
        if not isinstance(column, IndicatorColumn):
            return None
        info = column.table[s]
        state = self._state_of(info.venue, info.symbol, info.timeframe)
        if state is None:
            return None
        rows = column.rows(s)
        if state.last_close_time is not None:  # replays of snapshots already seen are ignored
            rows = rows[column.close_ms[rows] > ms_from_utc(state.last_close_time)]
        twin = BookTwin(state.book, Columns({k: v[rows] for k, v in column.values.items()}, column.close[rows],
                                            column.regime[rows]))  # fmt: skip
        self._twins[s] = (column, rows, twin)
        return rows, twin

    def _next_vote(self, column: Column, sids: Sequence[int], start: int, stop: int) -> int:
        """The first snapshot in ``[start, stop)`` on which some strategy would vote."""
        for s in sids:
            found = self._twin(column, s)
            if found is None:
                continue
            rows, twin = found
            k, end = rows.searchsorted(start), rows.searchsorted(stop)
            if k >= end:
                continue
            if not twin.valid_at(int(k)):  # a strategy's state moved some other way: look again from here
                del self._twins[s]
                found = self._twin(column, s)
                assert found is not None
                rows, twin = found
                k, end = rows.searchsorted(start), rows.searchsorted(stop)
            info = column.table[s]
            j = twin.next_vote(int(k), int(end), self.position(info.venue, info.symbol))
            if j < end:
                stop = int(rows[j])
        return stop

    def _skip_snapshots(self, column: Column, sids: Sequence[int], start: int, stop: int) -> None:
        """Apply the snapshots in ``[start, stop)`` on which no strategy votes."""
        for s in sids:
            found = self._twin(column, s)
            if found is None:
                continue
            rows, twin = found
            k, end = rows.searchsorted(start), rows.searchsorted(stop)
            if k >= end:
                continue
            twin.skip(int(k), int(end))
            info = column.table[s]
            state = self._state_of(info.venue, info.symbol, info.timeframe)
            assert state is not None
            assert isinstance(column, IndicatorColumn)
            state.last_close_time = utc_from_ms(int(column.close_ms[rows[end - 1]]))

    async def on_partitions_changed(self, gained: frozenset[int], lost: frozenset[int]) -> None:
        """Forget the strategy state and positions of symbols whose partition moved: a regained
        symbol starts like a fresh replica (flat until its next fill or position update) rather than
        from state that missed what another replica handled meanwhile."""
        s = self.ctx.settings
        moved = {sym for sym in s.symbols if partition_of(sym, s.rabbitmq_partitions) in gained | lost}
        for key in [k for k in self.series if k[1] in moved]:
            del self.series[key]
        for position in [k for k in self.positions if k[1] in moved]:
            del self.positions[position]

    # -- positions -----------------------------------------------------------------------------

    def position(self, venue: str, symbol: str) -> Position:
        """The position the agent knows for ``symbol`` (flat when none was reported)."""
        return self.positions.get((venue, symbol), FLAT)

    def on_fill(self, fill: Fill, envelope: Envelope) -> None:
        """Apply a fill to the position (each ``fill_id`` once)."""
        if fill.fill_id in self._seen_fills:
            return
        self._seen_fills[fill.fill_id] = None
        if len(self._seen_fills) > _SEEN_FILLS_LIMIT:
            del self._seen_fills[next(iter(self._seen_fills))]
        key = (fill.venue, fill.symbol)
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        self.positions[key] = Position(self.position(*key).quantity + signed)

    def on_position(self, update: PositionUpdate, envelope: Envelope) -> None:
        """A position update is authoritative: it replaces what the fills added up to."""
        self.positions[(update.venue, update.symbol)] = Position(Decimal(update.quantity))

    # -- the AI desk's votes ----------------------------------------------------------------------

    def on_desk_decision(self, decision: DeskDecision, envelope: Envelope) -> None:
        """Keep the desk's latest decision of the symbol as its vote (``desk_weight`` > 0)."""
        key = (decision.venue, decision.symbol)
        known = self.desk_decisions.get(key)
        if known is None or decision.ts >= known.ts:
            self.desk_decisions[key] = decision

    def _desk_vote(self, snapshot: IndicatorSnapshot) -> StrategyVote | None:
        decision = self.desk_decisions.get((snapshot.venue, snapshot.symbol))
        if decision is None or decision.timeframe != snapshot.timeframe:
            return None
        ttl = timedelta(seconds=self.strategy_settings.desk_vote_ttl_s)
        if not still_valid(decision.ts, snapshot.close_time, ttl):
            return None
        return desk_vote(decision)

    # -- commands ------------------------------------------------------------------------------

    async def on_command(self, command: Command, envelope: Envelope) -> str | None:
        """PAUSE: no new entries (exits still allowed); HALT: no intents at all; RESUME: both off."""
        return self.gate_command(command)

    # -- snapshots -----------------------------------------------------------------------------

    def on_settled(self, mark: PositionsSettled, envelope: Envelope) -> None:
        """Execution settled a candle of a symbol: wake the snapshots waiting for it."""
        key = (mark.venue, mark.symbol)
        known = self.settled.get(key)
        if known is None or mark.as_of > known:
            self.settled[key] = mark.as_of
            self._settle_event.set()
            self._settle_event = asyncio.Event()

    async def _await_settlement(self, snapshot: IndicatorSnapshot) -> None:
        """Wait until execution settled the snapshot's candle (see the module docstring)."""
        key = (snapshot.venue, snapshot.symbol)
        if key not in self.settled:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.strategy_settings.settlement_timeout_s
        while self.settled[key] < snapshot.close_time:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._settle_event.wait(), remaining)
            except TimeoutError:
                self.log.warning(
                    "deciding without execution's settlement",
                    symbol=snapshot.symbol,
                    close_time=snapshot.close_time.isoformat(),
                    settled=self.settled[key].isoformat(),
                )
                return

    async def on_snapshot(self, snapshot: IndicatorSnapshot, envelope: Envelope) -> None:
        """Run the strategies, fuse, publish the intent (on EXECUTE) and the decision."""
        state = self._state_for(snapshot)
        if state is None:
            return
        if self.settled and self.strategy_settings.await_settlement:
            await self._await_settlement(snapshot)
        position = self.position(snapshot.venue, snapshot.symbol)
        last = state.last_close_time
        if last is not None and snapshot.close_time == last and state.pending_votes is not None:
            votes = state.pending_votes  # a redelivery after a failed publish: decide on the same votes
        elif last is not None and snapshot.close_time <= last:
            return  # a redelivered or replayed snapshot: strategies must not see it twice
        else:
            state.last_close_time = snapshot.close_time
            votes = state.book.evaluate(snapshot, position)
            if not votes:
                return
            if self.strategy_settings.desk_weight > 0:
                vote = self._desk_vote(snapshot)
                if vote is not None:
                    votes = [*votes, vote]
                    self.desk_votes += 1
            state.pending_votes = votes
        if self.strategy_settings.publish_votes:
            for vote in votes:
                await self.publish(vote, cause=envelope)
        result = fuse(votes, self.consensus)
        result, side = self._feasible(result, position)
        intent_id: UUID | None = None
        if side is not None and result.outcome in (ConsensusOutcome.EXECUTE, ConsensusOutcome.MANUAL_REVIEW):
            review = result.outcome is ConsensusOutcome.MANUAL_REVIEW
            intent = build_intent(
                snapshot,
                result,
                side,
                votes,
                self.strategy_names,
                decided_at=self.ctx.clock.now(),
                ttl=self.review_ttl if review else self.ttl,
                atr=snapshot.values.get(self.strategy_settings.atr_indicator),
                stop_mult=self.strategy_settings.stop_atr_multiple,
                tp_mult=self.strategy_settings.take_profit_atr_multiple,
            )
            if review:
                await self._request_review(intent, result, votes, envelope)
            else:
                await self.publish(intent, cause=envelope)
                intent_id = intent.intent_id
                self.intents += 1
        try:
            await self.publish(self._decision(snapshot, result, votes, intent_id), cause=envelope)
        except UnroutableMessage:
            # decisions feed the audit trail and dashboards when they run; intents always raise
            self.log.debug("consensus decision unroutable: no consumer is bound", symbol=snapshot.symbol)
        state.pending_votes = None
        self.decisions += 1
        if self.ctx.instrument:
            metrics.CONSENSUS_DECISIONS.labels(result.outcome.value, self.consensus.method).inc()

    async def _request_review(
        self, proposed: TradeIntent, result: ConsensusResult, votes: list[StrategyVote], envelope: Envelope
    ) -> None:
        """Queue a MANUAL_REVIEW for a person (the orchestrator keeps the queue)."""
        request = ReviewRequest(
            review_id=proposed.intent_id,
            venue=proposed.venue,
            symbol=proposed.symbol,
            timeframe=proposed.timeframe,
            side=proposed.side,
            direction=proposed.direction,
            reference_price=proposed.reference_price,
            stop_loss=proposed.stop_loss,
            take_profit=proposed.take_profit,
            score=result.score,
            variance=result.variance,
            confidence=proposed.confidence,
            method=self.consensus.method,
            requested_at=proposed.decided_at,
            expires_at=proposed.expires_at,
            strategies=proposed.strategies,
            votes=tuple(votes[:64]),
            rationale=proposed.rationale,
        )
        try:
            await self.publish(request, cause=envelope)
        except UnroutableMessage:
            self.log.warning(
                "manual review not queued: no review queue is bound (is the orchestrator deployed?)",
                symbol=proposed.symbol,
                review_id=str(request.review_id),
            )

    # -- reviews -------------------------------------------------------------------------------

    async def on_review(self, verdict: ReviewDecision, envelope: Envelope) -> None:
        """A person's verdict on a review: an approval still valid and feasible becomes the intent
        (the normal path); the outcome is published as a ConsensusDecision either way. Only a verdict
        the broker saw come from the orchestrator's user counts: any other is dead-lettered and alerted
        on (a forged approval must not make a trade)."""
        await self.require_control_sender(envelope)
        request = verdict.request
        now = self.ctx.clock.now()
        position = self.position(request.venue, request.symbol)
        who = f"review {request.review_id} by {verdict.reviewer}"
        note = f" ({verdict.note})" if verdict.note else ""
        head = ConsensusResult(ConsensusOutcome.EXECUTE, request.direction, request.score, request.variance, "")
        side: Side | None = None
        reason: str | None
        if not verdict.approved:
            reason = f"rejected in {who}{note}"
        elif now >= request.expires_at:
            reason = f"approved in {who} after the review expired at {request.expires_at.isoformat()}"
        else:
            checked, side = self._feasible(head, position)
            reason = None if side is not None else f"approved in {who} but {checked.rationale.rstrip('; ')}"
        intent_id: UUID | None = None
        if side is not None:
            intent = self._approved_intent(request, side, now, f"approved in {who}{note}")
            await self.publish(intent, cause=envelope)
            intent_id = intent.intent_id
            self.intents += 1
            outcome, rationale = ConsensusOutcome.EXECUTE, intent.rationale
        else:
            outcome, rationale = ConsensusOutcome.REJECT, f"{reason}; {request.rationale}"
        decision = ConsensusDecision(
            venue=request.venue,
            symbol=request.symbol,
            timeframe=request.timeframe,
            method=request.method,
            outcome=outcome,
            direction=request.direction,
            weighted_score=request.score,
            variance=request.variance,
            votes=request.votes,
            intent_id=intent_id,
            rationale=rationale[:2000],
        )
        try:
            await self.publish(decision, cause=envelope)
        except UnroutableMessage:
            self.log.debug("consensus decision unroutable: no consumer is bound", symbol=request.symbol)
        self.log.info("review decided", review_id=str(request.review_id), outcome=outcome.value, detail=rationale[:200])

    def _approved_intent(self, request: ReviewRequest, side: Side, now: datetime, why: str) -> TradeIntent:
        """The intent of an approved review: the reviewed trade, valid ``intent_ttl_s`` from now."""
        entry = request.direction in (Direction.LONG, Direction.SHORT)
        return TradeIntent(
            intent_id=request.review_id,
            venue=request.venue,
            symbol=request.symbol,
            timeframe=request.timeframe,
            side=side,
            direction=request.direction,
            reference_price=request.reference_price,
            stop_loss=request.stop_loss if entry else None,
            take_profit=request.take_profit if entry else None,
            score=request.score,
            confidence=request.confidence,
            decided_at=now,
            expires_at=now + self.ttl,
            strategies=request.strategies,
            rationale=f"{why}; {request.rationale}"[:2000],
        )

    def _feasible(self, result: ConsensusResult, position: Position) -> tuple[ConsensusResult, Side | None]:
        """Turn an EXECUTE (or a MANUAL_REVIEW) that cannot or must not trade into a REJECT with the
        reason: a person is not asked about a trade that could not be made."""
        if result.outcome not in (ConsensusOutcome.EXECUTE, ConsensusOutcome.MANUAL_REVIEW):
            return result, None
        direction = result.direction
        if direction is Direction.FLAT:  # a review of a tie: the strategies split, no trade to propose
            return result, None
        reason = None
        side = intent_side(direction, position)
        if self.halted:
            reason = "halted: no intents"
        elif self.paused and direction is not Direction.EXIT:
            reason = "paused: no new entries"
        elif side is None:
            reason = "nothing to exit: the position is flat"
        elif not self.strategy_settings.allow_pyramiding and (
            (direction is Direction.LONG and position.is_long) or (direction is Direction.SHORT and position.is_short)
        ):
            reason = f"already {direction.value}: pyramiding is off"
        if reason is None:
            return result, side
        rejected = ConsensusResult(
            ConsensusOutcome.REJECT, direction, result.score, result.variance, f"{reason}; {result.rationale}"
        )
        return rejected, None

    def _decision(
        self, snapshot: IndicatorSnapshot, result: ConsensusResult, votes: list[StrategyVote], intent_id: UUID | None
    ) -> ConsensusDecision:
        return ConsensusDecision(
            venue=snapshot.venue,
            symbol=snapshot.symbol,
            timeframe=snapshot.timeframe,
            method=self.consensus.method,
            outcome=result.outcome,
            direction=result.direction,
            weighted_score=result.score,
            variance=result.variance,
            votes=tuple(votes[:64]),
            intent_id=intent_id,
            rationale=result.rationale[:2000],
        )

    def _state_for(self, snapshot: IndicatorSnapshot) -> _SeriesState | None:
        return self._state_of(snapshot.venue, snapshot.symbol, snapshot.timeframe)

    def _state_of(self, venue: str, symbol: str, timeframe: str) -> _SeriesState | None:
        key = (venue, symbol, timeframe)
        state = self.series.get(key)
        if state is None:
            if len(self.series) >= self.strategy_settings.max_series:
                self.log.warning("too many series: snapshot ignored", symbol=symbol)
                return None
            state = _SeriesState(
                StrategyBook(self.specs, on_error=self._on_strategy_error, on_missing=self._on_missing)
            )
            self.series[key] = state
        return state

    def _on_strategy_error(self, name: str, exc: BaseException) -> None:
        if self.ctx.instrument:
            metrics.STRATEGY_ERRORS.labels(name).inc()
        count = self.strategy_errors.get(name, 0) + 1
        self.strategy_errors[name] = count
        # the first failure with its traceback; later ones (a bug fires on every candle) without
        self.log.error(
            "strategy failed: vote dropped",
            strategy=name,
            error=repr(exc),
            failures=count,
            exc_info=exc if count == 1 else None,
        )

    def _on_missing(self, name: str, missing: tuple[str, ...]) -> None:
        self.log.warning(
            "strategy skipped: indicators missing from the snapshot (enable them in TRADESWARM_TA_*)",
            strategy=name,
            missing=list(missing),
        )


async def build(ctx: AgentContext) -> StrategyAgent:
    """The agent with its settings from the environment (strategies validated here, at start-up)."""
    return StrategyAgent(ctx, StrategySettings())
