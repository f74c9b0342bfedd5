"""The published contract: an AsyncAPI 2.6 document generated from the models.

``tradeswarm contracts export`` writes it to ``docs/contracts/asyncapi.json``; a test regenerates
it and fails when the committed file drifts from the code.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from core.messages.base import Envelope, Payload
from core.messages.registry import REGISTRY
from core.routing import CHANNELS, DEAD_LETTER_EXCHANGE, EXCHANGE

ASYNCAPI_VERSION = "2.6.0"


def _channel_address(prefix: str, fields: tuple[str, ...]) -> str:
    return ".".join([prefix, *(f"{{{f}}}" for f in fields)])


def build_contract_document(version: str) -> dict[str, Any]:
    """The AsyncAPI document of every registered message type and the channel it travels on."""
    payloads: list[type[Payload]] = list(REGISTRY)
    _, defs = models_json_schema(
        [(cls, "validation") for cls in payloads] + [(Envelope, "validation")],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(sorted(defs.get("$defs", {}).items()))
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for cls in payloads:
        name = cls.__name__
        messages[name] = {
            "name": cls.TYPE,
            "title": name,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "headers": {"$ref": "#/components/schemas/Envelope"},
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "x-schema-version": cls.SCHEMA_VERSION,
        }
        for topic in CHANNELS.get(cls, ()):
            address = _channel_address(topic.prefix, topic.fields)
            channel = channels.setdefault(
                address,
                {
                    "description": f"Topic on exchange {EXCHANGE}",
                    "parameters": {f: {"schema": {"type": "string"}} for f in topic.fields},
                    "subscribe": {"message": {"oneOf": []}},
                    "bindings": {
                        "amqp": {"is": "routingKey", "exchange": {"name": EXCHANGE, "type": "topic", "durable": True}}
                    },
                },
            )
            channel["subscribe"]["message"]["oneOf"].append({"$ref": f"#/components/messages/{name}"})
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "tradeswarm message contracts",
            "version": version,
            "description": (
                "Every message is an Envelope whose `payload` is one of the schemas below, selected by "
                f"`type` + `schema_version`. Dead letters go to the `{DEAD_LETTER_EXCHANGE}` exchange."
            ),
        },
        "defaultContentType": "application/json",
        "channels": dict(sorted(channels.items())),
        "components": {"messages": messages, "schemas": schemas},
    }
