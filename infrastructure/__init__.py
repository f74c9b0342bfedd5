"""Adapters: messaging (RabbitMQ, in-memory), databases, the exchange gateway, observability."""
