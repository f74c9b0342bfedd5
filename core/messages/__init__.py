"""Message contracts: the envelope and every payload the pipeline exchanges.

Importing this package registers every built-in contract in :data:`REGISTRY`.
"""

from core.messages.base import Envelope, Payload
from core.messages.codec import DEFAULT_MAX_MESSAGE_BYTES, JsonCodec
from core.messages.control import AgentStatus, Command, CommandAck, Heartbeat, PartitionAssignment, RiskAlert
from core.messages.decisions import ComplianceDecision, RiskDecision
from core.messages.desk import DeskDecision, DeskRoleReport
from core.messages.market import BookTop, Candle, IndicatorSnapshot, Trade
from core.messages.orders import (
    LEGAL_TRANSITIONS,
    Fill,
    OrderRequest,
    OrderUpdate,
    PortfolioSnapshot,
    PositionsSettled,
    PositionUpdate,
    can_transition,
    transition,
)
from core.messages.registry import REGISTRY, MessageRegistry
from core.messages.reviews import ReviewDecision, ReviewRequest
from core.messages.signals import ConsensusDecision, StrategyVote, TradeIntent

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "LEGAL_TRANSITIONS",
    "REGISTRY",
    "AgentStatus",
    "BookTop",
    "Candle",
    "Command",
    "CommandAck",
    "ComplianceDecision",
    "ConsensusDecision",
    "DeskDecision",
    "DeskRoleReport",
    "Envelope",
    "Fill",
    "Heartbeat",
    "IndicatorSnapshot",
    "JsonCodec",
    "MessageRegistry",
    "OrderRequest",
    "OrderUpdate",
    "PartitionAssignment",
    "Payload",
    "PortfolioSnapshot",
    "PositionUpdate",
    "PositionsSettled",
    "RiskAlert",
    "ReviewDecision",
    "ReviewRequest",
    "RiskDecision",
    "StrategyVote",
    "Trade",
    "TradeIntent",
    "can_transition",
    "transition",
]
