"""The agent runtime: the :class:`Agent` base class, its context, and the process host."""

from agents.base.agent import Agent, AgentContext, AgentCounters, CommandFailed, Subscription, TypedHandler

__all__ = ["Agent", "AgentContext", "AgentCounters", "CommandFailed", "Subscription", "TypedHandler"]
