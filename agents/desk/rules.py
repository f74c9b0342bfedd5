"""The ``rules`` provider: a deterministic, offline :class:`~core.llm.LanguageModel` with no key.

It reads the same JSON input every provider gets (the rendered prompt's user message) and fills the
same output models by transparent rules, so the quick start shows the whole desk with no key and no
network, and CI runs desk backtests offline. Its answers are labelled ``rules`` (provider) and
``rules-v1`` (model) wherever shown; it reports zero tokens (nothing is spent).

The rules, role by role:

* technical: trend from the EMA-20/EMA-50 distances (both above +0.2% up, both below -0.2% down,
  else sideways); momentum strong when |MACD histogram| >= 0.05% of price or |6-candle return| >=
  2 x volatility; condition from RSI-14 (>= 70 overbought, <= 30 oversold);
* sentiment: the latest Fear & Greed value (>= 55 bullish, <= 45 bearish) plus a headline keyword
  score (+1 per positive word, -1 per negative word over the headlines); the sum decides;
* tokenomics: a fixed supply cap is a strength, a fee burn a strength, open-ended issuance a risk;
  positive with two strengths, negative with none, else neutral;
* researcher: points = technical (trend ±1, x1.5 when strong; overbought -0.5, oversold +0.5) +
  sentiment (±0.75) + tokenomics (±0.25); bullish >= 1, bearish <= -1; confidence 0.3 + 0.15 x
  |points| (at most 0.9), times the share of available analysts;
* trader: flat/long and bullish with confidence >= 0.5 and room below the cap: BUY
  max_size_pct x confidence (capped by the room), stop 2 x volatility x 3 (at least 1.5%),
  take-profit twice the stop; long and bearish: SELL the whole position; otherwise HOLD;
* risk manager: HOLD approved at 0; volatility above the threshold rejects a BUY; a BUY is cut to
  the room left under max position and max exposure (ADJUST, or REJECT when no room is left);
  a SELL is always approved.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from agents.desk.prompts import PromptInputError, input_of
from core.desk.roles import Role
from core.llm import CallOutcome, LLMAnswer, LLMCall, LLMError, OutputT, Usage

MODEL = "rules-v1"

POSITIVE = frozenset(
    [
        "surge",
        "surges",
        "soar",
        "soars",
        "jump",
        "jumps",
        "rally",
        "rallies",
        "gain",
        "gains",
        "record",
        "high",
        "highs",
        "bullish",
        "inflow",
        "inflows",
        "approve",
        "approves",
        "approval",
        "adopt",
        "adopts",
        "adoption",
        "buy",
        "buys",
        "buying",
        "rise",
        "rises",
        "rising",
        "climbs",
        "breakout",
    ]
)
NEGATIVE = frozenset(
    [
        "fall",
        "falls",
        "drop",
        "drops",
        "plunge",
        "plunges",
        "crash",
        "crashes",
        "bearish",
        "outflow",
        "outflows",
        "hack",
        "hacked",
        "exploit",
        "lawsuit",
        "ban",
        "bans",
        "sell-off",
        "selloff",
        "dump",
        "dumps",
        "decline",
        "declines",
        "slump",
        "slumps",
        "fear",
        "fears",
        "warning",
        "liquidation",
    ]
)


def _words(text: str) -> list[str]:
    return [w.strip(".,:;!?'\"()[]").lower() for w in text.split()]


def technical(data: dict[str, Any]) -> dict[str, Any]:
    """The technical analyst's rules."""
    s = data["summary"]
    e20, e50 = float(s["ema_20_distance_pct"]), float(s["ema_50_distance_pct"])
    trend = "up" if e20 > 0.2 and e50 > 0.2 else "down" if e20 < -0.2 and e50 < -0.2 else "sideways"
    vol = max(float(s["volatility_pct"]), 1e-9)
    strong = abs(float(s["macd_hist_pct"])) >= 0.05 or abs(float(s["return_6_pct"])) >= 2 * vol
    rsi = float(s["rsi_14"])
    condition = "overbought" if rsi >= 70 else "oversold" if rsi <= 30 else "neutral"
    return {
        "trend": trend,
        "momentum": "strong" if strong else "weak",
        "condition": condition,
        "reasoning": [
            f"EMA-20 distance {e20:+.2f}%, EMA-50 distance {e50:+.2f}% -> {trend}",
            (
                f"MACD histogram {float(s['macd_hist_pct']):+.3f}%, 6-candle return {float(s['return_6_pct']):+.2f}% "
                f"vs volatility {vol:.2f}%"
            ),
            f"RSI-14 {rsi:.1f} -> {condition}",
        ],
    }


def sentiment(data: dict[str, Any]) -> dict[str, Any]:
    """The sentiment/news analyst's rules."""
    index = data.get("fear_greed") or []
    latest = index[-1] if index else None
    points = 0.0
    reasoning = []
    narrative: list[str] = []
    if latest is not None:
        value = int(latest["value"])
        points += 1.0 if value >= 55 else -1.0 if value <= 45 else 0.0
        reasoning.append(f"Fear & Greed {value} ({latest.get('label', '')})")
        narrative.append(f"index {value} {latest.get('label', '')}".strip())
    else:
        reasoning.append("no sentiment index available")
    headlines = data.get("headlines") or []
    score = 0
    for h in headlines:
        words = _words(str(h["title"]))
        hit = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
        score += hit
        if hit and len(narrative) < 5:
            narrative.append(("+ " if hit > 0 else "- ") + str(h["title"])[:180])
    if headlines:
        points += max(-1.0, min(1.0, score / 3.0))
        reasoning.append(f"{len(headlines)} headlines, keyword score {score:+d}")
    else:
        reasoning.append("no headlines at or before the decision time")
    mood = "bullish" if points >= 0.75 else "bearish" if points <= -0.75 else "neutral"
    reasoning.append(f"points {points:+.2f} -> {mood}")
    return {"sentiment": mood, "narrative": narrative, "reasoning": reasoning}


def tokenomics(data: dict[str, Any]) -> dict[str, Any]:
    """The tokenomics analyst's rules."""
    factors: list[str] = []
    strengths = 0
    capped = str(data.get("max_supply", "not provided")) not in ("not provided", "", "None")
    if capped:
        strengths += 1
        factors.append(f"strength: fixed supply cap ({data['max_supply']})")
    else:
        factors.append("risk: no fixed supply cap")
    if str(data.get("fee_burn", "not provided")) != "not provided":
        strengths += 1
        factors.append("strength: fees are burned")
    for risk in data.get("risks") or []:
        if len(factors) >= 4:
            break
        factors.append(f"risk: {risk}"[:200])
    if len(factors) < 2:
        factors.append("risk: no documented structural risks (unverified)")
    outlook = "positive" if strengths >= 2 or (capped and strengths == 1) else "neutral" if strengths else "negative"
    return {
        "outlook": outlook,
        "factors": factors[:4],
        "reasoning": [f"{strengths} structural strengths, {len(data.get('risks') or [])} documented risks"],
    }


def researcher(data: dict[str, Any]) -> dict[str, Any]:
    """The researcher's rules."""
    a = data["analysts"]
    points = 0.0
    available = 0
    reasoning = []
    risks: list[str] = []
    t = a.get("technical", {})
    if t.get("status") == "ok":
        available += 1
        tp = {"up": 1.0, "down": -1.0}.get(t["trend"], 0.0) * (1.5 if t["momentum"] == "strong" else 1.0)
        tp += {"overbought": -0.5, "oversold": 0.5}.get(t["condition"], 0.0)
        points += tp
        reasoning.append(f"technical {t['trend']}/{t['momentum']}/{t['condition']}: {tp:+.2f}")
        if t["condition"] == "overbought":
            risks.append("overbought: a pullback is likely")
    else:
        risks.append("technical view unavailable")
    s = a.get("sentiment", {})
    if s.get("status") == "ok":
        available += 1
        sp = {"bullish": 0.75, "bearish": -0.75}.get(s["sentiment"], 0.0)
        points += sp
        reasoning.append(f"sentiment {s['sentiment']}: {sp:+.2f}")
    else:
        risks.append("sentiment view unavailable")
    k = a.get("tokenomics", {})
    if k.get("status") == "ok":
        available += 1
        kp = {"positive": 0.25, "negative": -0.25}.get(k["outlook"], 0.0)
        points += kp
        reasoning.append(f"tokenomics {k['outlook']}: {kp:+.2f}")
        risks += [f for f in k.get("factors", []) if str(f).startswith("risk:")]
    else:
        risks.append("tokenomics view unavailable")
    thesis = "bullish" if points >= 1.0 else "bearish" if points <= -1.0 else "neutral"
    confidence = round(min(0.9, 0.3 + 0.15 * abs(points)) * available / 3.0, 4)
    reasoning.append(f"points {points:+.2f} with {available}/3 analysts -> {thesis}")
    return {
        "thesis": thesis,
        "confidence": confidence,
        "risks": [r[:200] for r in risks[:3]],
        "justification": f"Rule score {points:+.2f} from {available} of 3 analysts gives a {thesis} thesis.",
        "reasoning": reasoning[:5],
    }


def trader(data: dict[str, Any]) -> dict[str, Any]:
    """The trader's rules."""
    th = data["thesis"]
    pos = float(data.get("position_pct", 0.0))
    cap = float(data.get("max_size_pct", 10.0))
    vol = float(data["price_action"]["volatility_pct"])
    conf = float(th["confidence"])
    if th["thesis"] == "bullish" and conf >= 0.5 and pos >= 0.0 and pos < cap:
        size = round(min(cap * conf, cap - pos), 3)
        stop = round(max(1.5, 6.0 * vol), 3)
        return {
            "action": "BUY",
            "size_pct": size,
            "stop_loss_pct": stop,
            "take_profit_pct": round(2 * stop, 3),
            "reasoning": [f"bullish thesis at confidence {conf:.2f}", f"position {pos:.2f}% below cap {cap:.1f}%"],
        }
    if th["thesis"] == "bearish" and pos > 0.0:
        return {
            "action": "SELL",
            "size_pct": round(min(pos, 100.0), 3),
            "stop_loss_pct": None,
            "take_profit_pct": None,
            "reasoning": [f"bearish thesis at confidence {conf:.2f}", f"close the {pos:.2f}% long"],
        }
    why = "no position to sell" if th["thesis"] == "bearish" else f"{th['thesis']} thesis at confidence {conf:.2f}"
    return {"action": "HOLD", "size_pct": 0.0, "stop_loss_pct": None, "take_profit_pct": None, "reasoning": [why]}


def risk_manager(data: dict[str, Any]) -> dict[str, Any]:
    """The risk manager's rules."""
    p = data["proposal"]
    rules = data["rules"]
    port = data["portfolio"]
    size = float(p["size_pct"])
    vol = float(data["volatility_pct"])
    if p["action"] == "HOLD":
        return {"decision": "APPROVE", "adjusted_size_pct": 0.0, "explanation": "nothing to trade",
                "reasoning": ["HOLD needs no review"]}  # fmt: skip
    if p["action"] == "SELL":
        return {"decision": "APPROVE", "adjusted_size_pct": size, "explanation": "reducing risk is always allowed",
                "reasoning": [f"sell {size:.2f}% of equity"]}  # fmt: skip
    if vol > float(rules["max_volatility_pct"]):
        return {
            "decision": "REJECT",
            "adjusted_size_pct": 0.0,
            "explanation": f"volatility {vol:.2f}% above the {float(rules['max_volatility_pct']):.2f}% threshold",
            "reasoning": ["volatility threshold"],
        }
    room = min(
        float(rules["max_position_pct"]) - float(port["position_pct"]),
        float(rules["max_exposure_pct"]) - float(port["exposure_pct"]),
    )
    if room <= 0.0:
        return {"decision": "REJECT", "adjusted_size_pct": 0.0, "explanation": "no room under the position or "
                "exposure limit", "reasoning": [f"room {room:.2f}%"]}  # fmt: skip
    if size > room:
        return {
            "decision": "ADJUST",
            "adjusted_size_pct": round(room, 3),
            "explanation": f"cut from {size:.2f}% to the {room:.2f}% left under the limits",
            "reasoning": [f"position {float(port['position_pct']):.2f}%, exposure {float(port['exposure_pct']):.2f}%"],
        }
    return {"decision": "APPROVE", "adjusted_size_pct": size, "explanation": f"{size:.2f}% fits every limit",
            "reasoning": [f"volatility {vol:.2f}% within threshold", f"room {room:.2f}%"]}  # fmt: skip


RULES = {
    Role.TECHNICAL: technical,
    Role.SENTIMENT: sentiment,
    Role.TOKENOMICS: tokenomics,
    Role.RESEARCHER: researcher,
    Role.TRADER: trader,
    Role.RISK_MANAGER: risk_manager,
}


class RulesModel:
    """The offline rules provider (see the module docstring)."""

    provider = "rules"

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """Apply the role's rules to the call's JSON input and validate against ``output``."""
        try:
            role = Role(call.role)
            data = input_of(call.messages)
            raw = RULES[role](data)
            value = output.model_validate_json(json.dumps(raw))
        except (ValueError, KeyError, TypeError, PromptInputError, ValidationError) as exc:
            raise LLMError(CallOutcome.INVALID, f"rules cannot answer {call.role}: {exc}") from None
        return LLMAnswer(value=value, usage=Usage(0, 0), model=MODEL)
