"""The execution agent."""
