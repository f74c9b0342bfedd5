"""The committed OpenAPI document matches the API."""

from __future__ import annotations

from decimal import Decimal

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from infrastructure.api.openapi import OPENAPI_PATH, render_openapi
from infrastructure.api.schemas import POSITIVE_DECIMAL, BacktestRequest


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


@settings(max_examples=300, deadline=None)
@given(text=st.from_regex(POSITIVE_DECIMAL, fullmatch=True))
def test_every_amount_string_the_schema_allows_is_accepted(text: str) -> None:
    """The schema's string form of an amount is bounded like its number form (up to 10**15), so a
    string the schema allows is never refused (schemathesis once found an 18-digit one that was)."""
    request = BacktestRequest.model_validate({"initial_cash": text})
    assert Decimal(0) < request.initial_cash <= Decimal(10) ** 15
