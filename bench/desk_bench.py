"""AI desk benchmark: the pipeline's own overhead per decision, against a zero-latency model.

The model answers every role at once with an answer computed beforehand (no rules, no network),
so what is measured is the desk itself: building the inputs (candle summary, headlines, index,
metadata), rendering six prompts, validating six answers, the reports and the decision. A second
run gives every call a fixed latency to show the analysts run concurrently: a decision then takes
about 4 latencies (one for the three analysts, one each for researcher, trader, risk manager),
not 6. Target: overhead under 50 ms per decision.

    .venv/bin/python bench/desk_bench.py [--decisions 200] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.desk.pipeline import Desk
from agents.desk.rules import RulesModel
from core.llm import LLMAnswer, LLMCall, OutputT, Usage
from infrastructure.feeds.desk_files import DeskDataFiles
from tests.desk.helpers import sample_rows, view_at


class Canned:
    """A zero-latency model: the answers of one decision, replayed for every decision."""

    provider = "canned"

    def __init__(self, answers: dict[str, Any], latency_s: float = 0.0) -> None:
        self.answers = answers
        self.latency_s = latency_s

    async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
        """The canned answer of the role (validated like any answer)."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return LLMAnswer(value=output.model_validate(self.answers[call.role]), usage=Usage(500, 100), model="canned")


async def canned_answers() -> dict[str, Any]:
    captured: dict[str, Any] = {}

    class Capture(RulesModel):
        async def ask(self, call: LLMCall, output: type[OutputT]) -> LLMAnswer[OutputT]:
            answer = await super().ask(call, output)
            captured[call.role] = answer.value.model_dump(mode="json")
            return answer

    await Desk(Capture(), DeskDataFiles().load()).decide(view_at(len(sample_rows()) - 1))
    return captured


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    inputs = DeskDataFiles().load()
    answers = await canned_answers()
    views = [view_at(end) for end in range(len(sample_rows()) - args.decisions, len(sample_rows()))]
    desk = Desk(Canned(answers), inputs)
    times = []
    for view in views:
        started = time.perf_counter()
        await desk.decide(view)
        times.append((time.perf_counter() - started) * 1000)
    print(f"overhead per decision (zero-latency model, {len(times)} decisions): "
          f"p50 {statistics.median(times):.2f} ms, p99 {sorted(times)[int(len(times) * 0.99) - 1]:.2f} ms, "
          f"max {max(times):.2f} ms")  # fmt: skip
    slow = Desk(Canned(answers, args.latency_ms / 1000), inputs)
    started = time.perf_counter()
    for view in views[:10]:
        await slow.decide(view)
    per = (time.perf_counter() - started) * 1000 / 10
    print(f"with {args.latency_ms:.0f} ms per call: {per:.1f} ms per decision "
          f"({per / args.latency_ms:.2f} latencies: the three analysts run concurrently)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
