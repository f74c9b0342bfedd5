"""The desk's role cards in the terminal (``tradeswarm analyze``, the live view of ``tradeswarm run``).

One card per role: its status, its output fields and its reasoning bullets; the final decision
underneath. The provider is in every title, so an answer of the offline ``rules`` provider is
never mistaken for a model's.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from core.desk.roles import Role
from core.messages.desk import DeskDecision, DeskRoleReport

TITLES = {
    Role.TECHNICAL: "Technical analyst",
    Role.SENTIMENT: "Sentiment / news analyst",
    Role.TOKENOMICS: "Tokenomics analyst",
    Role.RESEARCHER: "Researcher",
    Role.TRADER: "Trader",
    Role.RISK_MANAGER: "Risk manager",
}
VERDICT_STYLE = {"APPROVE": "green", "ADJUST": "yellow", "REJECT": "red", "NO_TRADE": "red"}


def _fields(report: DeskRoleReport) -> list[str]:
    if report.output is None:
        return [f"[red]{report.status}[/]: {escape(report.reason)}"]
    lines = []
    data = report.output.model_dump(mode="json")
    reasoning = data.pop("reasoning", [])
    for key, value in data.items():
        if isinstance(value, list):
            lines += [f"[bold]{key}[/]:"] + [f"  - {escape(str(v))}" for v in value]
        elif value is not None:
            lines.append(f"[bold]{key}[/]: {escape(str(value))}")
    lines += [f"[dim]· {escape(str(r))}[/]" for r in reasoning]
    return lines


def role_card(report: DeskRoleReport, *, width: int | None = None) -> Any:
    """The card of one role (a rich Panel)."""
    from rich.panel import Panel

    tokens = f"{report.tokens_in}+{report.tokens_out} tok" if report.tokens_in or report.tokens_out else "0 tok"
    subtitle = f"{report.model or report.provider} · {report.prompt_version} · {tokens}"
    style = "green" if report.status == "ok" else "yellow" if report.status == "unavailable" else "red"
    return Panel(
        "\n".join(_fields(report)),
        title=escape(f"{TITLES[report.role]} [{report.provider}]"),
        subtitle=subtitle,
        border_style=style,
        width=width,
    )


def decision_line(decision: DeskDecision) -> str:
    """The final decision in one line (rich markup)."""
    style = VERDICT_STYLE.get(decision.verdict, "white")
    levels = ""
    if decision.stop_loss_pct:
        levels += f" stop -{decision.stop_loss_pct:g}%"
    if decision.take_profit_pct:
        levels += f" take +{decision.take_profit_pct:g}%"
    return (
        f"[bold]{decision.symbol}[/] {decision.ts:%Y-%m-%d %H:%M} {escape(f'[{decision.provider}]')} "
        f"{decision.action} {decision.size_pct:g}%{levels} -> [{style}]{decision.verdict}[/] {escape(decision.reason)}"
    )


def decision_cards(decision: DeskDecision) -> Any:
    """Every role's card, three per row, and the final decision (a rich renderable)."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.panel import Panel

    cards = [role_card(r, width=42) for r in decision.roles]
    final = Panel(
        decision_line(decision) + f"\n[dim]tokens {decision.tokens_in} in, {decision.tokens_out} out, "
        f"cost ${decision.cost_usd:.4f} · decision {decision.decision_id}[/]",
        title=escape(f"Desk decision [{decision.provider}]" + (" (blind)" if decision.blind else "")),
        border_style=VERDICT_STYLE.get(decision.verdict, "white"),
    )
    return Group(Columns(cards[:3]), Columns(cards[3:]), final)


def role_summary(report: DeskRoleReport) -> str:
    """One line of a role's answer (the live view's compact desk panel)."""
    out = report.output
    if out is None:
        return f"[yellow]{report.status}[/] {escape(report.reason[:80])}"
    data = out.model_dump(mode="json")
    if report.role is Role.TECHNICAL:
        return f"{data['trend']} · {data['momentum']} · {data['condition']}"
    if report.role is Role.SENTIMENT:
        return f"{data['sentiment']} · " + escape("; ".join(data["narrative"][:2])[:90])
    if report.role is Role.TOKENOMICS:
        return f"{data['outlook']} · " + escape("; ".join(data["factors"][:2])[:90])
    if report.role is Role.RESEARCHER:
        return f"{data['thesis']} (confidence {data['confidence']:.2f})"
    if report.role is Role.TRADER:
        levels = ""
        if data.get("stop_loss_pct"):
            levels = f" stop -{data['stop_loss_pct']:g}% take +{data['take_profit_pct'] or 0:g}%"
        return f"{data['action']} {data['size_pct']:g}%{levels}"
    return f"{data['decision']} {data['adjusted_size_pct']:g}% · {escape(data['explanation'][:80])}"


def desk_panel(decision: DeskDecision | None, decisions: int, *, advisory: bool) -> Any:
    """The live view's desk panel: the last decision, one line per role, and the final line."""
    from rich.panel import Panel
    from rich.table import Table

    mode = "advisory: the strategies trade" if advisory else "trading"
    if decision is None:
        return Panel("no desk decision yet", title=escape(f"AI desk [rules] · {mode}"))
    table = Table(show_header=False, expand=True, box=None)
    table.add_column("role", style="cyan", no_wrap=True)
    table.add_column("answer")
    for report in decision.roles:
        table.add_row(TITLES[report.role], role_summary(report))
    table.add_row("[bold]decision[/]", decision_line(decision))
    title = escape(f"AI desk [{decision.provider}] · {decisions} decisions · {mode}")
    return Panel(table, title=title, border_style=VERDICT_STYLE.get(decision.verdict, "white"))
