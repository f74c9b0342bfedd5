-- 005 (corrB): signed checkpoints that anchor the audit chain (core/trading/audit.py).
-- Every period, and when the compliance agent starts and stops, the head of the chain (seq, hash)
-- MACed with the audit key: the verifier detects a cut tail (a checkpoint names a row that is gone,
-- or the checkpoints stop) and a recomputed chain (the row a checkpoint names has another hash).
-- Append-only like audit_log.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    ts         timestamptz NOT NULL,
    seq        bigint      NOT NULL CHECK (seq >= 0),
    head_hash  char(64)    NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('start', 'periodic', 'stop')),
    mac        char(64)    NOT NULL,
    PRIMARY KEY (ts, seq, kind)
);

DROP TRIGGER IF EXISTS audit_checkpoints_no_change ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
