"""Metric names in a PromQL expression, and the names the code really exports.

No PromQL parser ships for Python, so this is a small lexer that is exact for the expressions
tradeswarm writes: it drops strings, label matchers, ranges, grouping label lists, numbers,
durations, Grafana variables, keywords and function names; what is left are metric names.
The real Prometheus engine also parses every dashboard expression in test_prometheus.py.
"""

from __future__ import annotations

import re

from infrastructure.observability.metrics import CATALOGUE

RABBITMQ_METRICS = frozenset(
    {
        # rabbitmq_prometheus plugin with prometheus.return_per_object_metrics = true
        # (docker/rabbitmq/rabbitmq.conf): per-queue gauges labelled vhost and queue.
        "rabbitmq_queue_messages",
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_consumers",
    }
)
"""RabbitMQ's own metrics the dashboards and alerts use (allow-list, not in our catalogue)."""

STANDARD_METRICS = frozenset(
    {
        "up",  # synthesised by Prometheus for every scrape target
        # the default process collector of prometheus_client (every agent's /metrics on Linux)
        "process_start_time_seconds",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    }
)
"""Series every scrape has without being in the catalogue."""

KEYWORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
        "offset", "inf", "nan", "atan2",
        # aggregation operators (followed by "by (...)" before their parenthesis, so not caught as calls)
        "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
        "count_values", "group",
    }
)  # fmt: skip

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+)(?:ms|[smhdwy])?(?![\w:])")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    text = _STRING.sub(" ", expr)
    text = _VARIABLE.sub(" 1 ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):  # a function call
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def exported_names() -> frozenset[str]:
    """Every series name the catalogue exports, plus the allow-listed RabbitMQ and standard ones."""
    names = {name for spec in CATALOGUE.values() for name in spec.exported_names()}
    return frozenset(names | RABBITMQ_METRICS | STANDARD_METRICS)
