"""tradeswarm core: pure domain code (contracts, domain types, ports, settings, clock, ids, errors).

Nothing in this package performs I/O or imports an I/O library; import-linter enforces it.
"""
