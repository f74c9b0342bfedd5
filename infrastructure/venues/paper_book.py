"""Where the paper venue keeps its book, so that it outlives the process that hosts it.

A real exchange remembers every order after the trader's process died; the paper venue must too,
or a killed execution agent restarts against a venue that forgot its working orders (their fills
never arrive, and the next orders reuse the old venue ids). A :class:`PaperBook` saves the venue's
state (:class:`PaperState`: id prefix and sequence, kill switch, net positions, last candle closes,
protective exits) and its orders (JSON documents keyed by client order id) after every change, and
gives them back to :meth:`infrastructure.venues.paper.PaperVenue.restore`. Orders the venue forgot
(retention: terminal, their intent expired more than the grace ago) leave the book with the next save.

Two books: :class:`JsonPaperBook` (one JSON file, rewritten atomically: tests, a single process) and
``infrastructure.database.timescale.paper_book.PostgresPaperBook`` (tables ``paper_venue_state`` and
``paper_venue_orders``: the execution agent's default when its store is PostgreSQL).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Set
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

OrderRows = Mapping[str, dict[str, Any]]
"""Orders as JSON documents by client order id."""


@dataclass(frozen=True, slots=True)
class PaperState:
    """The paper venue apart from its orders (JSON-ready values)."""

    id_prefix: str
    seq: int
    halted: bool
    net: dict[str, str] = field(default_factory=dict)
    last_close: dict[str, str] = field(default_factory=dict)
    protections: list[dict[str, Any]] = field(default_factory=list)
    cash: str | None = None
    """The paper account's cash (None: the venue does not track cash)."""


class PaperBook(Protocol):
    """Saves and loads a paper venue's book."""

    async def load(self) -> tuple[PaperState, list[dict[str, Any]]] | None:
        """The saved state and every saved order (in the order they were created), or None."""
        ...

    async def save(
        self,
        state: PaperState,
        changed: OrderRows,
        everything: Callable[[], OrderRows],
        removed: Set[str] = frozenset(),
    ) -> None:
        """Save ``state`` and the ``changed`` orders durably before returning and drop the ``removed``
        ones (client order ids the venue forgot); ``everything()`` gives all orders the venue holds, for
        a book that rewrites itself whole."""
        ...


class JsonPaperBook:
    """A book in one JSON file, replaced atomically (write, fsync, rename) on every save."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load_now(self) -> tuple[PaperState, list[dict[str, Any]]] | None:
        """:meth:`load`, synchronously (the file is local)."""
        if not self.path.exists():
            return None
        raw = json.loads(self.path.read_text())
        state = PaperState(
            id_prefix=str(raw.get("id_prefix", "P")),
            seq=int(raw["seq"]),
            halted=bool(raw.get("halted", False)),
            net=dict(raw.get("net", {})),
            last_close=dict(raw.get("last_close", {})),
            protections=list(raw.get("protections", [])),
            cash=raw.get("cash"),
        )
        return state, list(raw.get("orders", []))

    async def load(self) -> tuple[PaperState, list[dict[str, Any]]] | None:
        """See :class:`PaperBook`."""
        return self.load_now()

    async def save(
        self,
        state: PaperState,
        changed: OrderRows,
        everything: Callable[[], OrderRows],
        removed: Set[str] = frozenset(),
    ) -> None:
        """See :class:`PaperBook`: the whole book is rewritten (so the ``removed`` orders are gone)."""
        document = {**asdict(state), "orders": list(everything().values())}
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(document, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
