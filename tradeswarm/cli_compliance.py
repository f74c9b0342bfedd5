"""``tradeswarm compliance report --date D``: one day of the audit trail, its violations, and whether
the hash chain is intact.

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
from core.trading.audit import GENESIS_HASH, verify_chain

compliance_app = typer.Typer(help="Compliance: the daily audit report.", no_args_is_help=True)
console = Console()


async def load_report(dsn: str, day: date) -> DailyReport:
    """Read one UTC day of the audit log and check its chain (from the record before the day)."""
    from infrastructure.database.timescale import Database, PostgresAuditStore

    db = Database(dsn, retry_for_s=10)
    await db.connect()
    try:
        store = PostgresAuditStore(db)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        records = await store.records(start, start + timedelta(days=1))
        problem = None
        if records:
            prev = await store.before(records[0].seq)
            prev_hash = prev.hash if prev is not None else GENESIS_HASH
            if prev is None and records[0].seq != 1:
                prev_hash = "missing"
            problem = verify_chain(records, prev_hash, records[0].seq)
        return build_report(records, problem)
    finally:
        await db.close()


def render(report: DailyReport, day: date) -> None:
    """Print the report as rich tables."""
    console.rule(f"Compliance report {day.isoformat()} (UTC)")
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
    if report.records == 0:
        console.print("no audit records on this day")
    elif report.chain_problem is None:
        console.print(f"[green]audit chain intact[/green] (seq {report.first_seq}..{report.last_seq})")
    else:
        console.print(
            f"[bold red]AUDIT CHAIN BROKEN at seq {report.chain_problem.seq}: {report.chain_problem.reason}[/bold red]"
        )


@compliance_app.command("report")
def report_command(
    day: Annotated[str, typer.Option("--date", help="The UTC day, e.g. 2024-09-16.")],
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN (default: TRADESWARM_POSTGRES_DSN).")] = None,
) -> None:
    """Print one day's activity, decisions and violations, and check the audit hash chain.

    Exits with status 1 when the chain is broken (tampering or a missing row).
    """
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date (use YYYY-MM-DD)") from None
    if dsn is None:
        from core.settings import load_settings

        dsn = load_settings().postgres_dsn.get_secret_value()
    report = asyncio.run(load_report(dsn, parsed))
    render(report, parsed)
    if report.chain_problem is not None:
        raise typer.Exit(1)
