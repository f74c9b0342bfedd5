"""The ``tradeswarm`` command line. Sub-commands of other areas are mounted here.

Bad arguments and bad settings get a one-line explanation and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from agents.base.registry import AGENT_NAMES
from core.errors import TradeswarmError
from tradeswarm import __version__
from tradeswarm.cli_backtest import register as register_backtest_commands
from tradeswarm.cli_broker import broker_app
from tradeswarm.cli_compliance import compliance_app
from tradeswarm.cli_data import data_app
from tradeswarm.cli_desk import register as register_desk_commands
from tradeswarm.cli_llm import llm_app
from tradeswarm.cli_stack import stack_app

CONTRACT_PATH = Path("docs/contracts/asyncapi.json")

app = typer.Typer(
    name="tradeswarm",
    help=(
        "tradeswarm: an event-driven swarm of crypto trading agents.\n\n"
        "Each agent runs as its own process on RabbitMQ (`tradeswarm agent NAME`), or all of them in one "
        "process on an in-memory bus. Settings come from TRADESWARM_* environment variables "
        "(see .env.example)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
contracts_app = typer.Typer(help="The message contracts as an AsyncAPI document.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(data_app, name="data")
app.add_typer(stack_app, name="stack")
app.add_typer(broker_app, name="broker")
app.add_typer(compliance_app, name="compliance")
app.add_typer(llm_app, name="llm")
register_backtest_commands(app)  # backtest, optimize, run
register_desk_commands(app)  # analyze


@app.command()
def version() -> None:
    """Print the tradeswarm version."""
    typer.echo(__version__)


@app.command("agent")
def agent_command(
    name: Annotated[str, typer.Argument(help=f"The agent to run: {', '.join(AGENT_NAMES)}.")],
) -> None:
    """Run one agent in this process, on RabbitMQ, until SIGTERM (graceful: drain, ack, exit).

    Example: TRADESWARM_SYMBOLS=BTC/USDT,ETH/USDT tradeswarm agent technical_analysis
    """
    from agents.base.host import run_agent

    raise typer.Exit(run_agent(name))


@app.command("agents")
def list_agents() -> None:
    """List the agents, in pipeline order."""
    for name in AGENT_NAMES:
        typer.echo(name)


def _render_contract() -> bytes:
    from core.messages.contract_doc import build_contract_document

    document = build_contract_document(__version__)
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


@contracts_app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Where to write the AsyncAPI JSON document.")] = CONTRACT_PATH,
) -> None:
    """Write the AsyncAPI document generated from the message models."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_render_contract())
    typer.echo(f"wrote {out}")


@contracts_app.command("check")
def contracts_check(
    path: Annotated[Path, typer.Option(help="The committed AsyncAPI document.")] = CONTRACT_PATH,
) -> None:
    """Fail when the committed contract document differs from the models."""
    if not path.exists() or path.read_bytes() != _render_contract():
        typer.echo(f"{path} is out of date: run `tradeswarm contracts export`", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path} matches the models")


def main() -> None:
    """Console-script entry point: run the app; turn our errors into one-line messages."""
    try:
        app()
    except TradeswarmError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
