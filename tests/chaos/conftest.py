"""The chaos suite's scoreboard hooks: reference outcomes are collected, the board printed at the end."""

from __future__ import annotations

import pytest

from tests.chaos.scoreboard import BOARD, REFERENCE_OUTCOMES, REFERENCES, render


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note the outcome of the referenced tests of other suites that ran in this session."""
    if report.nodeid in REFERENCES and (report.when == "call" or report.outcome != "passed"):
        if report.outcome == "passed" and report.when == "call":
            REFERENCE_OUTCOMES.setdefault(report.nodeid, "pass")
        elif report.outcome == "failed":
            REFERENCE_OUTCOMES[report.nodeid] = "FAIL"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the scoreboard (scenario, invariant, pass/fail) when any chaos scenario ran."""
    if not BOARD.rows:
        return
    terminalreporter.section("chaos scoreboard")
    for line in render(BOARD, REFERENCE_OUTCOMES):
        terminalreporter.write_line(line)
