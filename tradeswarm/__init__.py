"""The composition root: the ``tradeswarm`` command line and process entry points."""

__version__ = "0.1.0"
