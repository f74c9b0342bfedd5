"""``python -m tradeswarm`` is the ``tradeswarm`` command."""

from tradeswarm.cli import main

main()
