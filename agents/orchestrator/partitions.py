"""Partition assignment: which live replica of a scaled-out agent kind consumes which partition.

:func:`assign_partitions` is pure and deterministic (the same members and previous owners give the
same result in any process, whatever the order the members are listed in):

* **balanced**: every member gets ``P // R`` or ``P // R + 1`` of the ``P`` partitions; which
  members get one more is decided by a stable hash of their id;
* **sticky** (minimal movement): a partition stays with its previous owner while that owner is
  alive and under its quota, so a join or leave moves only the partitions that must move;
* the partitions that must move go, one by one, to the member with room that ranks highest for
  that partition under rendezvous (highest-random-weight) hashing.

:class:`PartitionPlanner` keeps the current assignment per kind and turns membership into
:class:`~core.messages.PartitionAssignment` messages for the orchestrator to publish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.messages import PartitionAssignment


def _weight(*words: str) -> int:
    """A stable 64-bit hash (not Python's salted ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(words).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def quotas(members: Sequence[str], partitions: int) -> dict[str, int]:
    """How many partitions each member owns: ``P // R`` each, plus one for the ``P % R`` members
    with the highest stable hash (so the extra ones do not depend on the listing order)."""
    base, extra = divmod(partitions, len(members))
    ranked = sorted(members, key=lambda m: (_weight("quota", m), m), reverse=True)
    return {m: base + (1 if i < extra else 0) for i, m in enumerate(ranked)}


def assign_partitions(
    members: Iterable[str], partitions: int, previous: Sequence[str] | None = None
) -> tuple[str, ...]:
    """``owners[i]``: the member that consumes partition ``i`` (see the module docstring).

    ``previous`` is the last assignment (owners by partition) when there is one; an empty member
    set has no assignment (``ValueError``).
    """
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    alive = sorted(set(members))
    if not alive:
        raise ValueError("no member to assign partitions to")
    quota = quotas(alive, partitions)
    load = dict.fromkeys(alive, 0)
    owners: list[str | None] = [None] * partitions
    if previous is not None and len(previous) == partitions:
        for partition, owner in enumerate(previous):
            if owner in load and load[owner] < quota[owner]:
                owners[partition] = owner
                load[owner] += 1
    for partition in range(partitions):
        if owners[partition] is not None:
            continue
        candidates = [m for m in alive if load[m] < quota[m]]
        chosen = max(candidates, key=lambda m: (_weight(m, str(partition)), m))
        owners[partition] = chosen
        load[chosen] += 1
    return tuple(o for o in owners if o is not None)


@dataclass(slots=True)
class _KindState:
    owners: tuple[str, ...]
    generation: int


class PartitionPlanner:
    """The current assignment of every partitioned kind; a new generation when membership changes."""

    def __init__(self, partitions: int, valid_for_s: float) -> None:
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self.partitions = partitions
        self.valid_for_s = valid_for_s
        self._kinds: dict[str, _KindState] = {}

    def plan(self, kind: str, members: Iterable[str]) -> tuple[PartitionAssignment | None, bool]:
        """The assignment of ``kind`` for ``members`` and whether it changed; ``(None, False)`` when
        no member is alive (the last assignment is kept: replicas fall back once it expires)."""
        alive = sorted(set(members))
        current = self._kinds.get(kind)
        if not alive:
            return None, False
        owners = assign_partitions(alive, self.partitions, current.owners if current else None)
        changed = current is None or owners != current.owners
        if changed:
            current = _KindState(owners, (current.generation + 1) if current else 1)
            self._kinds[kind] = current
        assert current is not None
        message = PartitionAssignment(
            agent_kind=kind,
            partitions=self.partitions,
            owners=current.owners,
            generation=current.generation,
            valid_for_s=self.valid_for_s,
        )
        return message, changed

    def current(self, kind: str) -> tuple[str, ...] | None:
        """The owners of ``kind``'s partitions as last planned (None before the first plan)."""
        state = self._kinds.get(kind)
        return state.owners if state else None
