"""``tradeswarm broker``: the RabbitMQ topology and permissions as code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

broker_app = typer.Typer(
    help="RabbitMQ vhosts, exchanges, queues, policies, users and permissions (docker/rabbitmq/definitions.json).",
    no_args_is_help=True,
)


@broker_app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option(help="Where to write the definitions (default: the committed file).")
    ] = None,
) -> None:
    """Regenerate the definitions from core/routing.py and the agents' subscriptions."""
    from tradeswarm.broker import DEFINITIONS_PATH, render_definitions

    path = out or DEFINITIONS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_definitions())
    typer.echo(f"wrote {path}")


@broker_app.command("check")
def check(
    path: Annotated[Path | None, typer.Option(help="The committed definitions file.")] = None,
) -> None:
    """Fail when the committed definitions differ from what the code declares."""
    from tradeswarm.broker import DEFINITIONS_PATH, render_definitions

    path = path or DEFINITIONS_PATH
    if not path.exists() or path.read_bytes() != render_definitions():
        typer.echo(f"{path} is out of date: run `tradeswarm broker export`", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path} matches the code")


@broker_app.command("apply")
def apply_command(
    vhost: Annotated[str, typer.Option(help="The vhost to set up (created when missing).")] = "paper",
    source_vhost: Annotated[
        str | None, typer.Option(help="Which vhost of the definitions to apply (default: --vhost, else paper).")
    ] = None,
    definitions: Annotated[Path | None, typer.Option(help="Definitions file (default: the committed one).")] = None,
    secrets_dir: Annotated[
        Path | None, typer.Option(help="Folder with files RABBITMQ_PASSWORD_<USER> (Docker/Kubernetes secrets).")
    ] = None,
) -> None:
    """Apply the definitions to the local broker with rabbitmqctl (run as root on the broker host).

    Passwords come from RABBITMQ_PASSWORD_<USER> (environment or --secrets-dir), never from the file;
    a new user without one is created without a password and cannot log in until it gets one.
    """
    from tradeswarm.broker import apply, load_definitions

    doc = load_definitions(definitions) if definitions is not None else None
    users = apply(vhost, source_vhost=source_vhost, definitions=doc, secrets_dir=secrets_dir)
    typer.echo(f"applied to vhost {vhost!r}: users {', '.join(users)}")
