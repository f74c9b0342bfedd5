"""Symbol partitions: queue layout of the scalable agents and the orchestrator's assignment."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from pydantic import ValidationError

from agents.base.partitions import symbol_partitions
from agents.orchestrator.partitions import PartitionPlanner, assign_partitions
from core.messages import PartitionAssignment
from core.routing import partition_of, partition_symbols, routing_key
from core.settings import Settings
from tradeswarm.broker import agent_queues

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ADA/USDT", "DOGE/USDT"]


def _loads(owners: tuple[str, ...]) -> Counter[str]:
    return Counter(owners)


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("replicas", [1, 2, 3, 5, 8])
def test_assignment_is_balanced_and_complete(partitions: int, replicas: int) -> None:
    members = [f"ta-{i}" for i in range(replicas)]
    owners = assign_partitions(members, partitions)
    assert len(owners) == partitions
    assert set(owners) <= set(members)
    loads = [_loads(owners).get(m, 0) for m in members]
    assert max(loads) - min(loads) <= 1
    assert sum(loads) == partitions


def test_assignment_is_deterministic_whatever_the_member_order() -> None:
    members = [f"strategy-{c}" for c in "abcdef"]
    expected = assign_partitions(members, 8)
    for seed in range(20):
        shuffled = members[:]
        random.Random(seed).shuffle(shuffled)
        assert assign_partitions(shuffled + shuffled[:2], 8) == expected  # order and duplicates do not matter
    assert assign_partitions(members, 8, expected) == expected


def test_a_leaving_replica_moves_only_its_own_partitions() -> None:
    members = ["ta-a", "ta-b", "ta-c", "ta-d"]
    before = assign_partitions(members, 8)
    after = assign_partitions(["ta-a", "ta-b", "ta-d"], 8, before)
    moved = [i for i in range(8) if before[i] != after[i]]
    assert moved == [i for i in range(8) if before[i] == "ta-c"]
    assert "ta-c" not in after


def test_a_joining_replica_takes_only_its_share() -> None:
    before = assign_partitions(["ta-a", "ta-b"], 8)
    after = assign_partitions(["ta-a", "ta-b", "ta-c"], 8, before)
    moved = [i for i in range(8) if before[i] != after[i]]
    assert all(after[i] == "ta-c" for i in moved)
    assert len(moved) == _loads(after)["ta-c"] in (2, 3)
    assert max(_loads(after).values()) - min(_loads(after).values()) <= 1


def test_assignment_needs_a_member() -> None:
    with pytest.raises(ValueError, match="no member"):
        assign_partitions([], 4)


def test_planner_counts_generations_only_on_change() -> None:
    planner = PartitionPlanner(4, valid_for_s=30)
    first, changed = planner.plan("technical_analysis", ["ta-a"])
    assert first is not None
    assert changed
    assert first.generation == 1
    assert first.owned_by("ta-a") == frozenset(range(4))
    again, changed = planner.plan("technical_analysis", ["ta-a"])
    assert again is not None
    assert not changed
    assert again.generation == 1
    second, changed = planner.plan("technical_analysis", ["ta-b", "ta-a"])
    assert second is not None
    assert changed
    assert second.generation == 2
    assert second.owned_by("ta-a") | second.owned_by("ta-b") == frozenset(range(4))
    assert not second.owned_by("ta-a") & second.owned_by("ta-b")
    assert planner.plan("technical_analysis", []) == (None, False)
    assert planner.current("technical_analysis") == second.owners
    assert routing_key(second) == "control.assignment.technical_analysis"


def test_assignment_contract_names_one_owner_per_partition() -> None:
    with pytest.raises(ValidationError, match="owners"):
        PartitionAssignment(agent_kind="strategy", partitions=3, owners=("a", "b"), generation=1, valid_for_s=30)
    with pytest.raises(ValidationError):
        PartitionAssignment(agent_kind="strategy", partitions=1, owners=("Bad Id",), generation=1, valid_for_s=30)


def test_partition_symbols_keep_order_and_cover_every_symbol() -> None:
    parts = [partition_symbols(SYMBOLS, i, 4) for i in range(4)]
    assert sorted(s for p in parts for s in p) == sorted(SYMBOLS)
    for i, part in enumerate(parts):
        assert part == [s for s in SYMBOLS if partition_of(s, 4) == i]
    with pytest.raises(ValueError):
        partition_symbols(SYMBOLS, 4, 4)
    assert symbol_partitions(SYMBOLS, 1) == [(None, SYMBOLS)]
    assert [p for p, _ in symbol_partitions(SYMBOLS, 8)] == list(range(8))


def test_scalable_agents_declare_one_single_active_consumer_queue_per_partition() -> None:
    settings = Settings(symbols=["BTC/USDT", "ETH/USDT"], rabbitmq_partitions=8)
    empty = [i for i in range(8) if not partition_symbols(settings.symbols, i, 8)]
    assert empty, "the test needs a partition without symbols"
    for kind, purposes in (("technical_analysis", ("candles",)), ("strategy", ("indicators", "positions", "reviews"))):
        queues = agent_queues(kind, settings)
        assert sorted(q.name for q in queues) == sorted(f"{kind}.{p}.p{i}" for p in purposes for i in range(8))
        assert all(q.single_active_consumer for q in queues)
        for queue in queues:
            partition = int(queue.name.rsplit(".p", 1)[1])
            symbols = partition_symbols(settings.symbols, partition, 8)
            assert all(any(s.replace("/", "-") in p for s in symbols) for p in queue.patterns)
            if partition in empty:
                assert queue.patterns == ()
    single = agent_queues("technical_analysis", Settings(symbols=["BTC/USDT"], rabbitmq_partitions=1))
    assert [(q.name, q.single_active_consumer) for q in single] == [("technical_analysis.candles", True)]
