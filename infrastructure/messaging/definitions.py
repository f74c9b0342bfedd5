"""RabbitMQ definitions (the broker's JSON import format) generated from ``core.routing``.

One document holds the whole broker setup of the swarm (see ``docs/security.md``):

* vhosts ``paper`` and ``live`` (separate worlds: a paper credential cannot touch live);
* per vhost the two exchanges (:data:`core.routing.EXCHANGE`, :data:`core.routing.DEAD_LETTER_EXCHANGE`),
  each agent's durable quorum queues with the exact arguments the bus declares (DLX, dead-letter
  routing key, ``x-delivery-limit``), their dead-letter queues, and the bindings;
* policies;
* one user per agent and vhost (``<kind>`` on ``paper``, ``<kind>_live`` on ``live``, ``<kind>@<vhost>``
  when the paper definitions are applied to another vhost: :func:`user_name`), WITHOUT a
  password (an empty ``password_hash`` cannot log in): ``tradeswarm broker apply`` sets the
  passwords from the environment or secret files, so no secret is ever committed;
* permissions: each user may configure/write/read only the two exchanges and its own queues
  (``^<kind>\\.``), and ``topic_permissions`` limit the routing keys it may publish to the ones its
  agent owns: only compliance may publish ``order.approved.*``, only execution ``execution.*``,
  only the orchestrator ``control.command.*`` (and ``control.assignment.*``, and the verdicts of
  the review queue, ``review.decision.*``).

This module is pure (no I/O); ``tradeswarm/broker.py`` discovers the agents' queues and applies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import routing
from core.ports import QueueSpec
from core.routing import Topic
from infrastructure.messaging import rabbitmq_topology as topology

VHOSTS: Mapping[str, str] = {"paper": "", "live": "_live"}
"""Vhost -> suffix of its user names."""

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"

PUBLISHES: Mapping[str, tuple[Topic, ...]] = {
    "data_collection": (routing.CANDLES, routing.TRADES, routing.BOOK),
    "technical_analysis": (routing.INDICATORS,),
    "strategy": (routing.VOTES, routing.CONSENSUS, routing.INTENTS, routing.REVIEW_REQUESTS),
    "risk": (routing.RISK_APPROVED, routing.RISK_REJECTED),
    "compliance": (routing.COMPLIANCE_DECISIONS, routing.ORDERS_APPROVED),
    "execution": (routing.ORDER_UPDATES, routing.FILLS, routing.POSITIONS, routing.SETTLED, routing.PORTFOLIO),
    "orchestrator": (
        routing.COMMANDS,
        routing.AGENT_STATUS,
        routing.ASSIGNMENTS,
        routing.REVIEW_DECISIONS,
        routing.DESK_ROLES,
        routing.DESK_DECISIONS,
    ),
    "desk": (routing.DESK_ROLES, routing.DESK_DECISIONS, routing.INTENTS),
}
"""The topics each agent kind owns: the only routing keys its user may publish (plus its own
heartbeats and command acknowledgements, and alerts)."""

COMMON_TOPICS: tuple[Topic, ...] = (routing.ALERTS,)
"""Topics every agent may publish (alerts are informational, never acted on as orders)."""


@dataclass(frozen=True, slots=True)
class AgentTopology:
    """One agent kind: the queues it consumes (as its ``subscriptions()`` declare them)."""

    kind: str
    queues: tuple[QueueSpec, ...] = ()
    publishes: tuple[Topic, ...] = field(default=())


def _topic_regex(topic: Topic) -> str:
    return re.escape(topic.prefix) + r"\..+"


def write_routing_keys(kind: str, publishes: Iterable[Topic]) -> str:
    """The topic-permission ``write`` regex of an agent kind (anchored)."""
    own = [
        re.escape(routing.HEARTBEATS.prefix) + r"\." + re.escape(kind) + r"\.[^.]+",
        re.escape(routing.COMMAND_ACKS.prefix) + r"\." + re.escape(kind) + r"\.[^.]+",
    ]
    parts = own + [_topic_regex(t) for t in (*publishes, *COMMON_TOPICS)]
    return "^(" + "|".join(parts) + ")$"


def resource_regex(kind: str) -> str:
    """The configure/write/read regex: the two exchanges and the agent's own queues."""
    exchanges = "|".join(re.escape(x) for x in (routing.EXCHANGE, routing.DEAD_LETTER_EXCHANGE))
    return f"^({exchanges}|{re.escape(kind)}\\..+)$"


def user_name(kind: str, vhost: str, prefix: str = "", *, profile: str | None = None) -> str:
    """The broker user of agent ``kind`` on ``vhost``.

    On the two standard vhosts: ``<kind>`` on ``paper``, ``<kind>_live`` on ``live``. On any other
    vhost (a second stack on the same broker, a staging copy, a test), whose definitions are those
    of ``profile`` (default ``paper``), the vhost is part of the name: ``<kind>[_live]@<vhost>``.
    RabbitMQ users are global to a broker, so two stacks on two vhosts never share a user and
    applying one never resets the other's passwords.
    """
    source = profile or (vhost if vhost in VHOSTS else "paper")
    return vhost_user(f"{prefix}{kind}{VHOSTS.get(source, '')}", source, vhost)


def vhost_user(user: str, source_vhost: str, target_vhost: str) -> str:
    """The name user ``user`` of the ``source_vhost`` definitions has when they are applied to
    ``target_vhost``: unchanged on its own vhost, ``<user>@<target_vhost>`` elsewhere."""
    return user if target_vhost == source_vhost else f"{user}@{target_vhost}"


def _queue(name: str, vhost: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": dict(arguments)}


def _binding(source: str, vhost: str, queue: str, key: str) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": key,
        "arguments": {},
    }


def policies(vhost: str) -> list[dict[str, Any]]:
    """Policies of a vhost: bounded dead-letter queues that refuse (never drop) when full."""
    return [
        {
            "vhost": vhost,
            "name": "dead-letter-queues",
            "pattern": r"\.dlq$",
            "apply-to": "queues",
            "priority": 10,
            "definition": {"max-length": 1_000_000, "overflow": "reject-publish"},
        }
    ]


def build_definitions(
    agents: Sequence[AgentTopology],
    *,
    vhosts: Iterable[str] = tuple(VHOSTS),
    delivery_limit: int = routing.DEFAULT_DELIVERY_LIMIT,
    user_prefix: str = "",
    max_queue_length: int = routing.DEFAULT_MAX_QUEUE_LENGTH,
) -> dict[str, Any]:
    """The definitions document for ``agents`` on ``vhosts`` (stable order, for a drift check)."""
    doc: dict[str, Any] = {
        "users": [],
        "vhosts": [],
        "permissions": [],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [],
        "queues": [],
        "exchanges": [],
        "bindings": [],
    }
    for vhost in vhosts:
        doc["vhosts"].append({"name": vhost})
        doc["exchanges"] += [
            {"name": routing.EXCHANGE, "vhost": vhost, "type": "topic", "durable": True, "auto_delete": False,
             "internal": False, "arguments": {}},
            {"name": routing.DEAD_LETTER_EXCHANGE, "vhost": vhost, "type": "direct", "durable": True,
             "auto_delete": False, "internal": False, "arguments": {}},
        ]  # fmt: skip
        doc["policies"] += policies(vhost)
        for agent in agents:
            user = user_name(agent.kind, vhost, user_prefix)
            if not any(u["name"] == user for u in doc["users"]):
                doc["users"].append(
                    {"name": user, "password_hash": "", "hashing_algorithm": HASHING_ALGORITHM, "tags": []}
                )
            resources = resource_regex(agent.kind)
            doc["permissions"].append(
                {"user": user, "vhost": vhost, "configure": resources, "write": resources, "read": resources}
            )
            doc["topic_permissions"].append(
                {
                    "user": user,
                    "vhost": vhost,
                    "exchange": routing.EXCHANGE,
                    "write": write_routing_keys(agent.kind, agent.publishes),
                    "read": ".*",
                }
            )
            for spec in agent.queues:
                dlq = routing.dead_letter_queue(spec.name)
                doc["queues"].append(_queue(dlq, vhost, topology.dead_letter_queue_arguments()))
                doc["queues"].append(
                    _queue(spec.name, vhost, topology.queue_arguments(spec, delivery_limit, max_queue_length))
                )
                doc["bindings"].append(_binding(routing.DEAD_LETTER_EXCHANGE, vhost, dlq, spec.name))
                doc["bindings"] += [_binding(routing.EXCHANGE, vhost, spec.name, p) for p in spec.patterns]
    return doc


def for_vhost(doc: Mapping[str, Any], source_vhost: str, target_vhost: str | None = None) -> dict[str, Any]:
    """The part of ``doc`` about ``source_vhost``, moved to ``target_vhost`` (users excluded:
    they are global and are created with their passwords by ``broker apply``). Moved to another
    vhost, the permissions name that vhost's users (:func:`vhost_user`)."""
    target = target_vhost or source_vhost
    out: dict[str, Any] = {}
    for key, items in doc.items():
        if key == "users":
            continue
        if key == "vhosts":
            out[key] = [{**v, "name": target} for v in items if v["name"] == source_vhost]
        elif key in ("parameters", "global_parameters"):
            out[key] = list(items)
        elif key in ("permissions", "topic_permissions"):
            out[key] = [
                {**item, "vhost": target, "user": vhost_user(item["user"], source_vhost, target)}
                for item in items
                if item.get("vhost") == source_vhost
            ]
        else:
            out[key] = [{**item, "vhost": target} for item in items if item.get("vhost") == source_vhost]
    return out


def users_of(doc: Mapping[str, Any], vhost: str, target_vhost: str | None = None) -> list[str]:
    """The users with permissions on ``vhost`` (named as on ``target_vhost`` when given)."""
    return [vhost_user(p["user"], vhost, target_vhost or vhost) for p in doc["permissions"] if p["vhost"] == vhost]
