"""The risk agent."""
