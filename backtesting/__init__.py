"""Backtesting: replay feeds, simulated clock, reports and metrics, optimisation.

It drives the very same agents over the in-memory bus; it is not a second implementation.
"""
