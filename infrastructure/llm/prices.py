"""The per-model price table: the estimated cost of a call from its token usage.

Prices are USD per million tokens, input and output apart, as the providers publish them. The
built-in table is a starting point (list prices when it was written); set ``LLM_PRICES`` for the
models and the provider you really use. A model missing from the table costs ``0`` and is named
by :meth:`PriceTable.known` so reports can say the cost is unknown rather than free.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from core.llm import Usage

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million input and output tokens of one model."""

    input_per_million: Decimal
    output_per_million: Decimal

    def cost(self, usage: Usage) -> Decimal:
        """The cost of ``usage`` in USD (exact decimal)."""
        return (usage.tokens_in * self.input_per_million + usage.tokens_out * self.output_per_million) / MILLION


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(Decimal("0.15"), Decimal("0.60")),
    "gpt-4o": ModelPrice(Decimal("2.50"), Decimal("10.00")),
    "gpt-4.1-mini": ModelPrice(Decimal("0.40"), Decimal("1.60")),
    "gpt-4.1": ModelPrice(Decimal("2.00"), Decimal("8.00")),
    "rules": ModelPrice(Decimal(0), Decimal(0)),
}
"""List prices (USD per million tokens) of a few common models; the ``rules`` provider is free."""


class PriceTable:
    """Looks up a model's price; unknown models cost nothing (and :meth:`known` says so)."""

    def __init__(self, prices: dict[str, ModelPrice] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES if prices is None else prices)

    def known(self, model: str) -> bool:
        """Whether the table has a price for ``model``."""
        return model in self._prices

    def cost(self, model: str, usage: Usage) -> Decimal:
        """The estimated cost of ``usage`` on ``model`` in USD (0 for an unknown model)."""
        price = self._prices.get(model)
        return price.cost(usage) if price is not None else Decimal(0)

    def items(self) -> list[tuple[str, ModelPrice]]:
        """The table, sorted by model name."""
        return sorted(self._prices.items())


def parse_prices(text: str) -> dict[str, ModelPrice]:
    """Parse ``"model=in/out,model2=in/out"`` (USD per million tokens) into prices.

    Model names may contain ``/`` and ``:`` (``meta-llama/llama-3.1-8b``): the price is after the
    last ``=``.
    """
    out: dict[str, ModelPrice] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        model, sep, price = part.rpartition("=")
        numbers = price.split("/")
        if not sep or not model.strip() or len(numbers) != 2:
            raise ValueError(f"expected model=input/output (USD per million tokens), got {part!r}")
        try:
            pin, pout = Decimal(numbers[0].strip()), Decimal(numbers[1].strip())
        except InvalidOperation:
            raise ValueError(f"prices of {model.strip()!r} are not numbers: {price!r}") from None
        if not (pin.is_finite() and pout.is_finite()) or pin < 0 or pout < 0:
            raise ValueError(f"prices of {model.strip()!r} must be finite and non-negative")
        out[model.strip()] = ModelPrice(pin, pout)
    return out
