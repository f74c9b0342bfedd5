"""The daily compliance report: activity, decisions, violations and audit-chain integrity. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.trading.audit import AuditRecord, ChainProblem

VIOLATION_KINDS = ("risk_decision", "compliance_decision")


@dataclass(frozen=True, slots=True)
class Violation:
    """A blocked trade or a control event worth a compliance officer's eye."""

    ts: str
    stage: str
    symbol: str
    reason: str
    detail: str
    ref: str


@dataclass(slots=True)
class DailyReport:
    """What :func:`build_report` found in one day of the audit trail."""

    records: int = 0
    activity: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    chain_problem: ChainProblem | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    anchored: bool = False
    """Verified with the audit key (HMAC chain and signed checkpoints)."""
    problems: list[ChainProblem] = field(default_factory=list)
    """Every problem found (``chain_problem`` is the first)."""
    checkpoints: int = 0
    """Signed checkpoints verified in the range."""


def _payload(record: AuditRecord) -> dict[str, Any]:
    body: Any = orjson.loads(record.payload)
    if isinstance(body, dict) and "payload" in body and isinstance(body["payload"], dict):
        return dict(body["payload"])
    return dict(body) if isinstance(body, dict) else {}


def build_report(
    records: Sequence[AuditRecord], chain_problem: ChainProblem | None, *, anchored: bool = False
) -> DailyReport:
    """Summarise a range of audit records."""
    report = DailyReport(records=len(records), chain_problem=chain_problem, anchored=anchored)
    if records:
        report.first_seq, report.last_seq = records[0].seq, records[-1].seq
    for rec in records:
        report.activity[rec.kind] += 1
        body = _payload(rec)
        if rec.kind in VIOLATION_KINDS:
            stage = "risk" if rec.kind == "risk_decision" else "compliance"
            verdict = str(body.get("verdict", "?"))
            reason = str(body.get("reason", "?"))
            report.outcomes[(stage, verdict, reason)] += 1
            if verdict == "reject" and reason != "duplicate_intent":
                report.violations.append(
                    Violation(
                        rec.ts.isoformat(),
                        stage,
                        str(body.get("symbol", "")),
                        reason,
                        str(body.get("detail", ""))[:120],
                        rec.ref,
                    )
                )
        elif rec.kind == "command":
            report.violations.append(
                Violation(
                    rec.ts.isoformat(),
                    "control",
                    "",
                    str(body.get("kind", "")),
                    str(body.get("reason", ""))[:120],
                    rec.ref,
                )
            )
        elif rec.kind == "alert":
            report.violations.append(
                Violation(
                    rec.ts.isoformat(),
                    "compliance",
                    str(body.get("symbol", "") or ""),
                    str(body.get("code", "")),
                    str(body.get("message", ""))[:120],
                    rec.ref,
                )
            )
        elif rec.kind == "order_update" and body.get("status") == "rejected":
            report.violations.append(
                Violation(
                    rec.ts.isoformat(),
                    "execution",
                    str(body.get("symbol", "")),
                    "order_rejected",
                    str(body.get("reason", ""))[:120],
                    rec.ref,
                )
            )
    return report
