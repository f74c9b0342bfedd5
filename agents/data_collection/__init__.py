"""The data collection agent."""
