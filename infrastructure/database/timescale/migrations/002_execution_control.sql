-- Execution's trading control state (the kill switch), one row per account: a restarted execution
-- agent restores it before it consumes any order, so HALT survives a restart. Plain PostgreSQL.

CREATE TABLE IF NOT EXISTS execution_control (
    account     text        PRIMARY KEY,
    halted      boolean     NOT NULL,
    command_id  uuid,
    reason      text        NOT NULL DEFAULT '',
    changed_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
