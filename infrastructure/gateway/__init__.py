"""The exchange gateway: the ONLY package that imports ccxt (market data, and orders in live mode)."""

from infrastructure.gateway.ccxt_gateway import CcxtGateway
from infrastructure.gateway.errors import map_ccxt_error, parse_retry_after
from infrastructure.gateway.ratelimit import VenueRateLimiter, reset_limiters, shared_limiter

__all__ = ["CcxtGateway", "VenueRateLimiter", "map_ccxt_error", "parse_retry_after", "reset_limiters", "shared_limiter"]
