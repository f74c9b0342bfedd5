"""Pure trading logic shared by the order-path agents, the venues and the backtester.

``portfolio``: Decimal position and account accounting; ``fillmodel``: fees, slippage and the
next-bar fill rules of the paper venue; ``protective``: stop-loss / take-profit / trailing levels;
``stores``: the persistence ports of the order path with their in-memory adapters;
``audit``: the hash-chained audit trail.
"""
