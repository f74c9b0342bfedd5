"""The technical analysis agent."""
