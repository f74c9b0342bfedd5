"""The committed OpenAPI document matches the API."""

from __future__ import annotations

import orjson

from infrastructure.api.openapi import OPENAPI_PATH, render_openapi


def test_committed_openapi_matches_the_app() -> None:
    assert OPENAPI_PATH.exists(), "run `python -m infrastructure.api.openapi`"
    assert OPENAPI_PATH.read_bytes() == render_openapi(), (
        "docs/openapi.json drifted: run `python -m infrastructure.api.openapi`"
    )


def test_openapi_documents_auth_and_errors() -> None:
    document = orjson.loads(render_openapi())
    halt = document["paths"]["/control/{command}"]["post"]
    assert halt["security"] == [{"HTTPBearer": []}]
    assert "security" not in document["paths"]["/orders"]["get"]
    assert document["components"]["schemas"]["ErrorBody"]["required"] == ["status", "message"]
    for path in ("/health", "/agents", "/market/symbols", "/market/{symbol}/latest", "/portfolio", "/positions",
                 "/orders", "/trades", "/signals", "/decisions", "/backtests", "/backtests/{job_id}"):  # fmt: skip
        assert path in document["paths"], path
