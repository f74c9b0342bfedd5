"""The desk's pipeline: three analysts concurrently, then researcher, trader, risk manager.

One reasoning round per role, no debates::

    [technical | sentiment | tokenomics]  (cheap tier, concurrently)
      -> researcher -> trader -> risk manager  (strong tier)
      -> DeskDecision (and, on APPROVE/ADJUST of a BUY or SELL, a TradeIntent)

Failure semantics: an analyst that fails, has no input, or is skipped for budget is reported
``unavailable`` and the others go on (the researcher sees it marked so). A researcher, trader or
risk-manager failure, or an exhausted budget there, ends the decision with verdict ``NO_TRADE``, the
reason stored in the decision, and :attr:`DeskOutcome.alert` set for the agent to raise. The roles
after a failed one are reported ``unavailable`` ("not run").

Look-ahead: every input is taken "as of" the decision time ``ts`` (the close of the last candle);
the sources never return an item available after it. Blind mode hides the symbol's name and every
absolute date and rescales the one absolute price level to 100, so a model's memory of history
cannot leak into a backtest.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from pydantic import BaseModel

from agents.desk.features import CandleSummary, summarize
from agents.desk.prompts import PROMPT_VERSIONS, render
from core.desk.inputs import DeskInputs
from core.desk.roles import (
    ANALYSTS,
    OUTPUT_MODELS,
    ResearchThesis,
    RiskReview,
    Role,
    TradeProposal,
    tier_of,
)
from core.domain import Direction, Side
from core.ids import content_id
from core.llm import BudgetExhausted, CallOutcome, LanguageModel, LLMCall, LLMCallRecord, LLMError
from core.messages import DeskDecision, DeskRoleReport, TradeIntent

DEFAULT_MAX_TOKENS: dict[Role, int] = {
    Role.TECHNICAL: 400,
    Role.SENTIMENT: 500,
    Role.TOKENOMICS: 400,
    Role.RESEARCHER: 600,
    Role.TRADER: 400,
    Role.RISK_MANAGER: 400,
}


@dataclass(frozen=True, slots=True)
class DeskLimits:
    """The trader's size cap and the risk manager's rules (percent of equity, percent per candle)."""

    max_size_pct: float = 10.0
    max_position_pct: float = 20.0
    max_exposure_pct: float = 60.0
    max_volatility_pct: float = 2.5
    headlines: int = 12
    headline_lookback_h: float = 48.0
    sentiment_days: int = 7


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the desk knows at decision time ``ts``: the candle window and the portfolio."""

    venue: str
    symbol: str
    timeframe: str
    ts: datetime
    closes: Sequence[float]
    highs: Sequence[float]
    lows: Sequence[float]
    position_pct: float = 0.0
    """The value of the position in ``symbol`` in percent of equity (negative when short)."""
    exposure_pct: float = 0.0
    """Gross exposure of the whole portfolio in percent of equity."""


@dataclass(frozen=True, slots=True)
class DeskOutcome:
    """A decision, and the alert to raise when no trade was possible (``(code, message)``)."""

    decision: DeskDecision
    alert: tuple[str, str] | None = None


@dataclass(slots=True)
class _Run:
    decision_id: UUID
    view: MarketView
    provider: str
    reports: dict[Role, DeskRoleReport] = field(default_factory=dict)
    outputs: dict[Role, BaseModel] = field(default_factory=dict)


def asset_of(symbol: str) -> str:
    """``BTC`` of ``BTC/USDT`` (and of ``BTC/USDT:USDT``)."""
    return symbol.split("/", 1)[0]


_ASSET_NAMES = {"BTC": ("Bitcoin", "BTC"), "ETH": ("Ethereum", "Ether", "ETH"), "SOL": ("Solana", "SOL")}


def _blind_text(text: str, asset: str) -> str:
    """``text`` without the asset's names, years and quoted prices (``$97K``, ``$1,850.50``)."""
    for word in _ASSET_NAMES.get(asset, (asset,)):
        text = re.sub(rf"\b{re.escape(word)}\b", "ASSET", text, flags=re.IGNORECASE)
    text = re.sub(r"\$\s?\d[\d,]*(?:\.\d+)?(?:\s?[kKmMbB]\b)?", "$N", text)
    return re.sub(r"\b(19|20)\d\d\b", "YEAR", text)


class Desk:
    """Runs one decision through the six roles of a :class:`LanguageModel` (see the module doc)."""

    def __init__(
        self,
        model: LanguageModel,
        inputs: DeskInputs,
        *,
        limits: DeskLimits | None = None,
        max_tokens: dict[Role, int] | None = None,
        deadline_s: float = 60.0,
        blind: bool = False,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.limits = limits or DeskLimits()
        self.max_tokens = {**DEFAULT_MAX_TOKENS, **(max_tokens or {})}
        self.deadline = timedelta(seconds=deadline_s)
        self.blind = blind
        self.wall = wall

    @property
    def provider(self) -> str:
        """The provider's label (``rules``, ``openai``, ``replay``...)."""
        return str(getattr(self.model, "provider", "unknown"))

    async def decide(self, view: MarketView) -> DeskOutcome | None:
        """One decision at ``view.ts``; None when the window is too short to summarise."""
        summary = summarize(view.closes, view.highs, view.lows)
        if summary is None:
            return None
        decision_id = content_id(
            "desk_decision", view.venue, view.symbol, view.timeframe, view.ts.isoformat(), self.provider, self.blind
        )
        run = _Run(decision_id, view, self.provider)
        deadline = self.wall() + self.deadline
        scale = 100.0 / summary.last_close if self.blind else 1.0
        analyst_inputs = {
            Role.TECHNICAL: self._technical_input(view, summary, scale),
            Role.SENTIMENT: self._sentiment_input(view),
            Role.TOKENOMICS: self._tokenomics_input(view),
        }
        await asyncio.gather(*(self._ask(run, role, analyst_inputs[role], deadline) for role in ANALYSTS))
        failure: str | None = None
        budget = False
        strong_inputs: list[tuple[Role, Callable[[], dict[str, Any]]]] = [
            (Role.RESEARCHER, lambda: self._researcher_input(run)),
            (Role.TRADER, lambda: self._trader_input(run, summary, scale)),
            (Role.RISK_MANAGER, lambda: self._risk_input(run, summary)),
        ]
        for role, build in strong_inputs:
            if failure is not None:
                run.reports[role] = self._report(run, role, "unavailable", reason=f"not run: {failure}")
                continue
            ok = await self._ask(run, role, build(), deadline)
            if not ok:
                report = run.reports[role]
                budget = budget or report.reason.startswith("budget")
                failure = f"{role.value} failed: {report.reason}"
        return self._final(run, summary, failure, budget)

    # -- inputs -----------------------------------------------------------------------------------

    def _name(self, view: MarketView) -> str:
        return "ASSET/QUOTE" if self.blind else view.symbol

    def _technical_input(self, view: MarketView, summary: CandleSummary, scale: float) -> dict[str, Any]:
        return {
            "symbol": self._name(view),
            "timeframe": view.timeframe,
            "summary": summary.as_prompt(price_scale=scale),
        }

    def _sentiment_input(self, view: MarketView) -> dict[str, Any]:
        asset = asset_of(view.symbol)
        lim = self.limits
        readings = self.inputs.sentiment.readings(view.ts, days=lim.sentiment_days)
        news = self.inputs.news.headlines(asset, view.ts, limit=lim.headlines, lookback_h=lim.headline_lookback_h)
        index = [{"days_ago": (view.ts - r.day_start).days, "value": r.value, "label": r.label} for r in readings]
        headlines = [
            {
                "age_h": round((view.ts - h.first_seen).total_seconds() / 3600.0, 1),
                "source": h.source,
                "title": _blind_text(h.title, asset) if self.blind else h.title,
            }
            for h in news
        ]
        return {"symbol": self._name(view), "fear_greed": index, "headlines": headlines}

    def _tokenomics_input(self, view: MarketView) -> dict[str, Any] | None:
        asset = asset_of(view.symbol)
        profile = self.inputs.tokenomics.profile(asset)
        if profile is None:
            return None

        def hide(text: str) -> str:
            return _blind_text(text, asset) if self.blind else text

        return {
            "asset": "ASSET" if self.blind else profile.asset,
            "name": "hidden" if self.blind else profile.name,
            "category": hide(profile.category),
            "max_supply": profile.max_supply,
            "issuance": hide(profile.issuance),
            "fee_burn": hide(profile.fee_burn),
            "risks": [hide(r) for r in profile.risks],
        }

    def _researcher_input(self, run: _Run) -> dict[str, Any]:
        views: dict[str, Any] = {}
        for role in ANALYSTS:
            out = run.outputs.get(role)
            if out is None:
                views[role.value] = {"status": "unavailable", "reason": run.reports[role].reason[:200]}
            else:
                views[role.value] = {"status": "ok", **out.model_dump(mode="json")}
        return {"symbol": self._name(run.view), "analysts": views}

    def _trader_input(self, run: _Run, summary: CandleSummary, scale: float) -> dict[str, Any]:
        thesis = cast(ResearchThesis, run.outputs[Role.RESEARCHER])
        p = summary.as_prompt(price_scale=scale)
        return {
            "symbol": self._name(run.view),
            "thesis": thesis.model_dump(mode="json"),
            "position_pct": round(run.view.position_pct, 3),
            "max_size_pct": self.limits.max_size_pct,
            "price_action": {
                k: p[k]
                for k in (
                    "last_close",
                    "return_1_pct",
                    "return_6_pct",
                    "return_24_pct",
                    "volatility_pct",
                    "range_24_pct",
                )
            },
        }

    def _risk_input(self, run: _Run, summary: CandleSummary) -> dict[str, Any]:
        proposal = cast(TradeProposal, run.outputs[Role.TRADER])
        lim = self.limits
        return {
            "symbol": self._name(run.view),
            "proposal": proposal.model_dump(mode="json"),
            "portfolio": {
                "position_pct": round(run.view.position_pct, 3),
                "exposure_pct": round(run.view.exposure_pct, 3),
            },
            "rules": {
                "max_position_pct": lim.max_position_pct,
                "max_exposure_pct": lim.max_exposure_pct,
                "max_volatility_pct": lim.max_volatility_pct,
            },
            "volatility_pct": round(summary.volatility_pct, 4),
        }

    # -- calls ------------------------------------------------------------------------------------

    def _report(
        self,
        run: _Run,
        role: Role,
        status: str,
        *,
        output: BaseModel | None = None,
        model: str = "",
        records: Sequence[LLMCallRecord] = (),
        usage: tuple[int, int] | None = None,
        reason: str = "",
    ) -> DeskRoleReport:
        tokens_in = usage[0] if usage else sum(r.usage.tokens_in for r in records)
        tokens_out = usage[1] if usage else sum(r.usage.tokens_out for r in records)
        v = run.view
        return DeskRoleReport.model_validate(
            {
                "decision_id": run.decision_id,
                "venue": v.venue,
                "symbol": v.symbol,
                "timeframe": v.timeframe,
                "ts": v.ts,
                "provider": run.provider,
                "role": role,
                "status": status,
                "output": output,
                "model": model[:128],
                "prompt_version": PROMPT_VERSIONS[role],
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "cost_usd": sum((r.cost_usd for r in records), Decimal(0)),
                "reason": reason[:2000],
            }
        )

    async def _ask(self, run: _Run, role: Role, payload: dict[str, Any] | None, deadline: datetime) -> bool:
        """Ask ``role``; store its report (and output). True when the role answered."""
        failed = "unavailable" if role in ANALYSTS else "failed"
        if payload is None:
            run.reports[role] = self._report(run, role, "unavailable", reason="no input for this symbol")
            return False
        call = LLMCall(
            decision_id=str(run.decision_id),
            role=role.value,
            tier=tier_of(role),
            symbol=run.view.symbol,
            messages=render(role, payload),
            max_tokens=self.max_tokens[role],
            deadline=deadline,
            prompt_version=PROMPT_VERSIONS[role],
        )
        try:
            answer = await self.model.ask(call, OUTPUT_MODELS[role])
        except BudgetExhausted as exc:
            run.reports[role] = self._report(run, role, failed, records=exc.records, reason=f"budget: {exc.reason}")
            return False
        except LLMError as exc:
            reason = f"{exc.outcome.value}: {exc.reason}"
            run.reports[role] = self._report(run, role, failed, records=exc.records, reason=reason)
            return False
        except Exception as exc:  # noqa: BLE001 - a provider bug must not take the desk down: the role failed
            reason = f"{CallOutcome.ERROR.value}: {type(exc).__name__}: {exc}"
            run.reports[role] = self._report(run, role, failed, reason=reason)
            return False
        run.outputs[role] = answer.value
        run.reports[role] = self._report(
            run,
            role,
            "ok",
            output=answer.value,
            model=answer.model,
            records=answer.records,
            usage=(answer.usage.tokens_in, answer.usage.tokens_out),
        )
        return True

    # -- the decision -----------------------------------------------------------------------------

    def _final(self, run: _Run, summary: CandleSummary, failure: str | None, budget: bool) -> DeskOutcome:
        v = run.view
        reports = tuple(run.reports[role] for role in (*ANALYSTS, Role.RESEARCHER, Role.TRADER, Role.RISK_MANAGER))
        action, size, verdict = "HOLD", 0.0, "NO_TRADE"
        stop = take = None
        reason = failure or ""
        alert: tuple[str, str] | None = None
        intent_id: UUID | None = None
        if failure is None:
            proposal = cast(TradeProposal, run.outputs[Role.TRADER])
            review = cast(RiskReview, run.outputs[Role.RISK_MANAGER])
            action, verdict, reason = proposal.action, review.decision, review.explanation
            size = 0.0 if verdict == "REJECT" else min(review.adjusted_size_pct, proposal.size_pct)
            if action == "BUY":
                stop, take = proposal.stop_loss_pct, proposal.take_profit_pct
            if verdict in ("APPROVE", "ADJUST") and action != "HOLD" and size > 0.0:
                intent_id = content_id("desk_intent", run.decision_id)
        else:
            code = "desk_budget_exhausted" if budget else "desk_no_trade"
            alert = (code, f"{v.symbol} {v.ts.isoformat()}: no trade, {failure}")
        decision = DeskDecision.model_validate(
            {
                "decision_id": run.decision_id,
                "venue": v.venue,
                "symbol": v.symbol,
                "timeframe": v.timeframe,
                "ts": v.ts,
                "provider": run.provider,
                "blind": self.blind,
                "reference_price": Decimal(repr(summary.last_close)),
                "action": action,
                "size_pct": size,
                "verdict": verdict,
                "reason": reason[:2000],
                "stop_loss_pct": stop,
                "take_profit_pct": take,
                "intent_id": intent_id,
                "roles": reports,
                "tokens_in": sum(r.tokens_in for r in reports),
                "tokens_out": sum(r.tokens_out for r in reports),
                "cost_usd": sum((r.cost_usd for r in reports), Decimal(0)),
            }
        )
        return DeskOutcome(decision, alert)


def intent_of(decision: DeskDecision, *, now: datetime, ttl: timedelta) -> TradeIntent | None:
    """The TradeIntent an APPROVE/ADJUST decision becomes (None when it places nothing).

    It carries the requested allocation (``allocation_pct``, a fraction of equity, for the risk agent
    to size by and still cap) and the protective levels derived from the trader's percentages.
    """
    if decision.intent_id is None:
        return None
    ref = decision.reference_price
    buy = decision.action == "BUY"
    thesis = decision.report(Role.RESEARCHER)
    confidence = thesis.output.confidence if thesis and isinstance(thesis.output, ResearchThesis) else 0.5
    stop = ref * (1 - Decimal(repr(decision.stop_loss_pct)) / 100) if buy and decision.stop_loss_pct else None
    take = ref * (1 + Decimal(repr(decision.take_profit_pct)) / 100) if buy and decision.take_profit_pct else None
    return TradeIntent(
        intent_id=decision.intent_id,
        venue=decision.venue,
        symbol=decision.symbol,
        timeframe=decision.timeframe,
        side=Side.BUY if buy else Side.SELL,
        direction=Direction.LONG if buy else Direction.EXIT,
        reference_price=ref,
        stop_loss=stop,
        take_profit=take,
        score=round(confidence * 100.0, 4),
        confidence=confidence,
        decided_at=now,
        expires_at=now + ttl,
        strategies=("desk",),
        allocation_pct=decision.size_pct / 100.0 if buy else None,
        rationale=f"desk {decision.provider} {decision.verdict}: {decision.reason}"[:2000],
    )
