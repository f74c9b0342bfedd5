"""The JSON wire codec: envelope <-> bytes, with a size limit and full validation on decode."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from core.errors import MessageRejected, MessageTooLarge
from core.messages.base import Envelope
from core.messages.registry import REGISTRY, MessageRegistry

DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024
"""Default maximum size of one encoded message (256 KiB)."""

CONTENT_TYPE = "application/json"


class JsonCodec:
    """Encodes envelopes as JSON and decodes bytes back into validated envelopes.

    Decoding never half-succeeds: the bytes are size-checked, parsed, the payload class is resolved
    from ``type`` + ``schema_version`` and every field is validated, or :class:`MessageRejected` is
    raised with a reason fit for a dead-letter header.
    """

    def __init__(
        self,
        registry: MessageRegistry = REGISTRY,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if max_message_bytes < 1024:
            raise ValueError("max_message_bytes must be at least 1024")
        self.registry = registry
        self.max_message_bytes = max_message_bytes

    def encode(self, envelope: Envelope) -> bytes:
        """Serialise an envelope; raises :class:`MessageTooLarge` over the limit."""
        body = envelope.model_dump_json().encode()
        if len(body) > self.max_message_bytes:
            raise MessageTooLarge(
                f"{envelope.type} message is {len(body)} bytes, over the {self.max_message_bytes} limit"
            )
        return body

    def decode(self, body: bytes) -> Envelope:
        """Parse and validate bytes into an envelope; raises :class:`MessageRejected` with a reason."""
        if len(body) > self.max_message_bytes:
            raise MessageTooLarge(f"message is {len(body)} bytes, over the {self.max_message_bytes} limit")
        try:
            raw: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MessageRejected(f"not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise MessageRejected("a message must be a JSON object")
        payload_cls = self.registry.resolve(raw.get("type"), raw.get("schema_version"))
        try:
            payload = payload_cls.model_validate(raw.get("payload"))
            return Envelope.model_validate({**raw, "payload": payload})
        except ValidationError as exc:
            raise MessageRejected(_summarise(raw.get("type"), exc)) from None


def _summarise(type_: object, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    suffix = f" (+{more} more)" if more > 0 else ""
    return f"invalid {type_}: " + "; ".join(parts) + suffix
