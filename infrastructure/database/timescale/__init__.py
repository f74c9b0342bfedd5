"""PostgreSQL / TimescaleDB persistence of the order path: pool, migrations, stores."""

from infrastructure.database.timescale.migrate import apply_migrations
from infrastructure.database.timescale.pool import Database
from infrastructure.database.timescale.stores import PostgresAuditStore, PostgresDecisionStore, PostgresExecutionStore

__all__ = ["Database", "PostgresAuditStore", "PostgresDecisionStore", "PostgresExecutionStore", "apply_migrations"]
