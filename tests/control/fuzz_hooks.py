"""Schemathesis hooks of the API fuzz (``tests/control/test_api_fuzz.py``; ``SCHEMATHESIS_HOOKS``).

One rule of the API cannot be written in JSON Schema: a backtest's ``end`` must come after its
``start``. Schemathesis sees such a request as schema-valid and the API's 422 as a valid request
refused. Only that failure is dropped, and only when the API said exactly why; every other finding
on every operation is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis


def _end_not_after_start(body: object) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("start"), str) or not isinstance(body.get("end"), str):
        return False
    try:
        return datetime.fromisoformat(body["end"]) <= datetime.fromisoformat(body["start"])
    except (TypeError, ValueError):
        return False


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but POST /backtests refusing ``end <= start`` with that very reason."""
    refused_period = (
        case.operation.method.upper() == "POST"
        and case.operation.path == "/backtests"
        and response.status_code == 422
        and "end must be after start" in response.text
        and _end_not_after_start(case.body)
    )
    return not refused_period
