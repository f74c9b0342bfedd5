"""A minimal valid instance of a JSON schema (what a well-behaved model would answer).

Covers what pydantic emits for the desk's output models: objects, ``$ref``/``$defs``, enums and
consts, ``anyOf`` (the first non-null branch), strings, numbers with bounds, booleans and arrays
with ``minItems``.
"""

from __future__ import annotations

from typing import Any


def instance_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A value that validates against ``schema`` (whose ``$defs`` live in ``root``)."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return instance_from_schema(root.get("$defs", {})[name], root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"] or schema[key]
            return instance_from_schema(branches[0], root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: instance_from_schema(sub, root) for name, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        item = instance_from_schema(schema.get("items", {"type": "string"}), root)
        return [item for _ in range(count)]
    if kind == "string":
        return "x" * max(1, int(schema.get("minLength", 1)))
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 1))
        if kind == "integer":
            return int(low) + (1 if "exclusiveMinimum" in schema else 0)
        return (low + high) / 2
    if kind == "boolean":
        return False
    return None
