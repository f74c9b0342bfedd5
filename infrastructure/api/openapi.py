"""The committed OpenAPI document (``docs/openapi.json``), generated from the FastAPI app.

``python -m infrastructure.api.openapi`` writes it; ``--check`` fails when it has drifted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import orjson

from infrastructure.api.app import create_app
from infrastructure.api.ports import ControlPlane

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def render_openapi() -> bytes:
    """The OpenAPI document of the API, as stable, sorted, indented JSON."""
    app = create_app(cast(ControlPlane, None), None, None, api_token=None)
    return orjson.dumps(app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main(argv: list[str]) -> int:
    """Write the document, or with ``--check`` compare it with the committed one."""
    rendered = render_openapi()
    if "--check" in argv:
        if not OPENAPI_PATH.exists() or OPENAPI_PATH.read_bytes() != rendered:
            print(f"{OPENAPI_PATH} is out of date: run `python -m infrastructure.api.openapi`", file=sys.stderr)
            return 1
        return 0
    OPENAPI_PATH.parent.mkdir(parents=True, exist_ok=True)
    OPENAPI_PATH.write_bytes(rendered)
    print(f"wrote {OPENAPI_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
