"""``tradeswarm compliance report --date D`` (or ``--from D1 --to D2``): a range of UTC days of the
audit trail, its violations, and whether the chain is intact: with the audit key
(``TRADESWARM_COMPLIANCE_AUDIT_SECRET`` / ``_SECRET_FILE``) the HMAC chain and the signed checkpoints of the
range (a recomputed chain, a cut tail or missing checkpoints fail); without it the plain chain only.

Mounted by ``tradeswarm/cli.py`` as ``app.add_typer(compliance_app, name="compliance")``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agents.compliance.report import DailyReport, build_report
from core.trading.audit import GENESIS_HASH, AuditRecord, ChainProblem, verify_chain, verify_range

compliance_app = typer.Typer(help="Compliance: the daily audit report.", no_args_is_help=True)
console = Console()


async def load_report(
    dsn: str,
    first: date,
    last: date | None = None,
    *,
    key: bytes | None = None,
    period: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
) -> DailyReport:
    """Read the UTC days ``first``..``last`` (inclusive) of the audit log and check the chain (from the
    record before the range) and, with the audit ``key``, the HMACs and the range's signed checkpoints
    (:func:`core.trading.audit.verify_range`)."""
    from infrastructure.database.timescale import Database, PostgresAuditStore, apply_migrations

    db = Database(dsn, retry_for_s=10)
    await db.connect()
    try:
        await apply_migrations(db)
        store = PostgresAuditStore(db)
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end_day = last or first
        end = datetime(end_day.year, end_day.month, end_day.day, tzinfo=UTC) + timedelta(days=1)
        records = await store.records(start, end)
        prev_hash = GENESIS_HASH
        if records:
            prev = await store.before(records[0].seq)
            prev_hash = prev.hash if prev is not None else GENESIS_HASH
            if prev is None and records[0].seq != 1:
                prev_hash = "missing"
        if key is None:
            problem = verify_chain(records, prev_hash, records[0].seq) if records else None
            return build_report(records, problem, anchored=False)
        checkpoints = await store.checkpoints(start, end)
        newest = await store.last()
        heads: dict[int, AuditRecord] = {r.seq: r for r in records}
        for cp in checkpoints:
            if 0 < cp.seq <= (newest.seq if newest else 0) and cp.seq not in heads:
                found = await store.before(cp.seq + 1)
                if found is not None:
                    heads[cp.seq] = found
        until = min(end, now or datetime.now(UTC))
        problems = verify_range(
            records,
            checkpoints,
            heads,
            key=key,
            period=period,
            until=until,
            start_prev_hash=prev_hash,
            last_seq=newest.seq if newest else 0,
        )
        report = build_report(records, problems[0] if problems else None, anchored=True)
        report.problems = problems
        report.checkpoints = len(checkpoints)
        return report
    finally:
        await db.close()


def render(report: DailyReport, day: date, last: date | None = None) -> None:
    """Print the report as rich tables."""
    span = day.isoformat() if last is None or last == day else f"{day.isoformat()} .. {last.isoformat()}"
    console.rule(f"Compliance report {span} (UTC)")
    activity = Table(title="Activity")
    activity.add_column("record kind")
    activity.add_column("count", justify="right")
    for kind, count in sorted(report.activity.items()):
        activity.add_row(kind, str(count))
    console.print(activity)
    outcomes = Table(title="Decisions")
    for col in ("stage", "verdict", "reason"):
        outcomes.add_column(col)
    outcomes.add_column("count", justify="right")
    for (stage, verdict, reason), count in sorted(report.outcomes.items()):
        outcomes.add_row(stage, verdict, reason, str(count))
    console.print(outcomes)
    violations = Table(title=f"Violations and blocked trades ({len(report.violations)})")
    for col in ("time", "stage", "symbol", "reason", "detail", "ref"):
        violations.add_column(col)
    for v in report.violations:
        violations.add_row(v.ts, v.stage, v.symbol, v.reason, v.detail, v.ref)
    console.print(violations)
    if report.records == 0 and report.chain_problem is None:
        console.print("no audit records in this range")
    elif report.chain_problem is None:
        anchor = (
            f"HMAC chain and {report.checkpoints} signed checkpoints verified"
            if report.anchored
            else "[yellow]not anchored: no audit key, a recomputed chain or a cut tail cannot be detected[/yellow]"
        )
        console.print(f"[green]audit chain intact[/green] (seq {report.first_seq}..{report.last_seq}); {anchor}")
    else:
        for problem in report.problems or [report.chain_problem]:
            console.print(_broken(problem))


def _broken(problem: ChainProblem) -> str:
    return f"[bold red]AUDIT CHAIN BROKEN at seq {problem.seq}: {problem.reason}[/bold red]"


@compliance_app.command("report")
def report_command(
    day: Annotated[str | None, typer.Option("--date", help="One UTC day, e.g. 2024-09-16.")] = None,
    first: Annotated[str | None, typer.Option("--from", help="First UTC day of a range (with --to).")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last UTC day of the range (inclusive).")] = None,
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN (default: TRADESWARM_POSTGRES_DSN).")] = None,
) -> None:
    """Print the activity, decisions and violations of a day or a range of days, and verify the audit
    chain: with the audit key (TRADESWARM_COMPLIANCE_AUDIT_SECRET / _SECRET_FILE) the HMACs and the signed
    checkpoints too.

    Exits with status 1 when the chain is broken (tampering, a missing row, a cut tail).
    """
    if (day is None) == (first is None):
        raise typer.BadParameter("give --date DAY, or --from DAY [--to DAY]")
    start = _day(day or first or "", "--date" if day else "--from")
    end = _day(last, "--to") if last is not None else start
    if end < start:
        raise typer.BadParameter(f"--to {end} is before --from {start}")
    from agents.compliance.settings import ComplianceSettings

    cs = ComplianceSettings()
    if dsn is None:
        from core.settings import load_settings

        dsn = load_settings().postgres_dsn.get_secret_value()
    period = timedelta(seconds=cs.audit_checkpoint_s)
    report = asyncio.run(load_report(dsn, start, end, key=cs.audit_key_bytes(), period=period))
    render(report, start, end)
    if report.chain_problem is not None:
        raise typer.Exit(1)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r} is not a date (use YYYY-MM-DD)") from None
