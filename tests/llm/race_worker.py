"""One desk-like process of the budget race: asks the fake server many questions through
MeteredModel on the shared PostgreSQL budget, and prints how many were answered or refused.

``python -m tests.llm.race_worker DSN BASE_URL KEY BUDGET CALLS WORKER``: prints ``ready`` once
connected, starts asking when it reads a line on stdin (so both workers start together).
"""

from __future__ import annotations

import asyncio
import json
import sys

from core.llm import BudgetExhausted, LLMCall
from infrastructure.llm.factory import build_language_model, open_postgres_ledgers
from infrastructure.llm.settings import load_llm_settings
from tests.llm.helpers import TechnicalView, make_call

PROMPT = "Candles (close, volume): " + ", ".join(f"{60000 + 17 * i}.5 {3 + i % 7}.25" for i in range(400))
"""A long, numeric prompt: the settled usage is a good share of a reservation, so the budget runs out."""


def race_call(decision_id: str) -> LLMCall:
    """The question every worker asks."""
    return make_call(decision_id=decision_id, max_tokens=64, content=PROMPT)


async def main(dsn: str, base_url: str, key: str, budget: int, calls: int, worker: str) -> None:
    db, ledger, log = await open_postgres_ledgers(dsn, budget)
    settings = load_llm_settings(
        provider="openai",
        base_url=base_url,
        api_key=key,
        cheap_model="fake-mini",
        daily_token_budget=budget,
        prices="fake-mini=0.15/0.60",
    )
    model = build_language_model(settings, budget=ledger, log=log, instrument=False)
    answered = refused = 0
    gate = asyncio.Semaphore(4)

    async def one(i: int) -> None:
        nonlocal answered, refused
        async with gate:
            try:
                await model.ask(race_call(f"{worker}-{i}"), TechnicalView)
                answered += 1
            except BudgetExhausted:
                refused += 1

    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await asyncio.gather(*(one(i) for i in range(calls)))
    await db.close()
    print(json.dumps({"worker": worker, "answered": answered, "refused": refused}), flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], int(a[3]), int(a[4]), a[5]))
