"""Observability: the metric catalogue (prometheus-client) and the per-agent HTTP endpoint."""
