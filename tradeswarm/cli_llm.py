"""``tradeswarm llm usage``: today's LLM tokens and estimated cost against the daily budget, by role
and model, from the PostgreSQL ledger every desk process shares.

Mounted by ``tradeswarm/cli.py`` as ``app.add_typer(llm_app, name="llm")``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from infrastructure.llm.budget import BudgetStatus

llm_app = typer.Typer(help="The LLM client: token usage and cost against the daily budget.", no_args_is_help=True)
console = Console()

FAILED_OUTCOMES = ("invalid", "error", "budget", "replay_miss")


class UsageUnavailable(Exception):
    """The ledger cannot be read (one line for the user)."""


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A day of the budget plus the failed questions by role and model (from ``agent_logs``)."""

    status: BudgetStatus
    failures: dict[tuple[str, str], int]


def where(dsn: str) -> str:
    """``host:port/database`` of a DSN, never its password."""
    try:
        parts = urlsplit(dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"
    except ValueError:
        return "the configured DSN"


async def load_usage(dsn: str, day: date, configured_budget: int) -> UsageReport | None:
    """The day's budget and usage; None when no desk ever wrote to this database."""
    import asyncpg

    from infrastructure.database.timescale.pool import CONNECTION_ERRORS, Database
    from infrastructure.llm.budget import PostgresTokenBudget

    db = Database(dsn, retry_for_s=3)
    try:
        await db.connect()
    except (*CONNECTION_ERRORS, asyncpg.PostgresError, ValueError) as exc:
        raise UsageUnavailable(f"PostgreSQL is not reachable at {where(dsn)} ({type(exc).__name__})") from None
    try:
        status = await PostgresTokenBudget(db, configured_budget).status(day)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        rows = await db.run(
            "llm_usage_failures",
            lambda c: c.fetch(
                "SELECT agent, model, count(*) AS n FROM agent_logs WHERE ts >= $1 AND ts < $2 "
                "AND outcome = ANY($3::text[]) GROUP BY agent, model",
                start,
                start + timedelta(days=1),
                list(FAILED_OUTCOMES),
            ),
        )
        return UsageReport(status, {(r["agent"], r["model"]): int(r["n"]) for r in rows})
    except asyncpg.UndefinedTableError:
        return None
    except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
        raise UsageUnavailable(f"the LLM ledger at {where(dsn)} cannot be read ({type(exc).__name__})") from None
    finally:
        await db.close()


def render(report: UsageReport) -> None:
    """The headline and the table by role and model."""
    status = report.status
    share = f" ({100 * status.used / status.budget:.1f} %)" if status.budget else ""
    console.print(
        f"LLM usage {status.day.isoformat()} (UTC): {status.used:,} of {status.budget:,} tokens{share}, "
        f"{status.remaining:,} left; estimated cost ${status.cost_usd:.4f}"
    )
    table = Table()
    for col in ("role", "model"):
        table.add_column(col)
    for col in ("calls", "tokens in", "tokens out", "tokens", "cost USD", "failed", "held"):
        table.add_column(col, justify="right")
    keys = sorted({(r.role, r.model) for r in status.rows} | set(report.failures))
    rows = {(r.role, r.model): r for r in status.rows}
    for key in keys:
        row = rows.get(key)
        table.add_row(
            key[0],
            key[1],
            str(row.calls if row else 0),
            f"{row.tokens_in:,}" if row else "0",
            f"{row.tokens_out:,}" if row else "0",
            f"{row.tokens:,}" if row else "0",
            f"{row.cost_usd:.4f}" if row else "0.0000",
            str(report.failures.get(key, 0)),
            f"{row.reserved_open:,}" if row and row.reserved_open else "",
        )
    console.print(table)


def as_json(report: UsageReport) -> str:
    """The report as JSON (numbers as numbers, cost as a decimal string)."""
    status = report.status
    failures = report.failures
    return json.dumps(
        {
            "day": status.day.isoformat(),
            "budget": status.budget,
            "used": status.used,
            "remaining": status.remaining,
            "cost_usd": str(status.cost_usd),
            "rows": [
                {
                    "role": r.role,
                    "model": r.model,
                    "calls": r.calls,
                    "tokens_in": r.tokens_in,
                    "tokens_out": r.tokens_out,
                    "cost_usd": str(r.cost_usd),
                    "failed": failures.get((r.role, r.model), 0),
                    "reserved_open": r.reserved_open,
                }
                for r in status.rows
            ],
        },
        indent=2,
    )


@llm_app.command("usage")
def usage_command(
    day: Annotated[str | None, typer.Option("--date", help="The UTC day, e.g. 2026-12-05 (default: today).")] = None,
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN (default: TRADESWARM_POSTGRES_DSN).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Today's LLM tokens and estimated cost against DAILY_TOKEN_BUDGET, by role and model.

    Reads the budget ledger and the call log (agent_logs) every desk process writes. Exits with
    status 1 and one line when PostgreSQL cannot be reached.
    """
    from infrastructure.llm.settings import load_llm_settings

    try:
        parsed = date.fromisoformat(day) if day else datetime.now(UTC).date()
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date (use YYYY-MM-DD)") from None
    if dsn is None:
        from core.settings import load_settings

        dsn = load_settings().postgres_dsn.get_secret_value()
    budget = load_llm_settings().daily_token_budget
    try:
        report = asyncio.run(load_usage(dsn, parsed, budget))
    except UsageUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if report is None:
        report = UsageReport(BudgetStatus(day=parsed, budget=budget, used=0), {})
        if not json_output:
            console.print(f"no LLM usage recorded in {where(dsn)} yet (no desk has run against it)")
    if json_output:
        typer.echo(as_json(report))
    else:
        render(report)
