"""Venue adapters behind :class:`core.trading.venue.VenuePort`: the paper venue (default, also used
by the backtester) and the live venue (through the ccxt gateway port)."""
