-- The review queue: MANUAL_REVIEW consensus decisions waiting for a person (core/trading/reviews.py).
-- The orchestrator stores each ReviewRequest once (review_id = the intent id an approval publishes)
-- and records the verdict atomically (pending -> approved | rejected, only before expires_at).
-- An undecided review past expires_at is reported as expired. Plain PostgreSQL.

CREATE TABLE IF NOT EXISTS review_queue (
    review_id     uuid        PRIMARY KEY,
    state         text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected')),
    venue         text        NOT NULL,
    symbol        text        NOT NULL,
    timeframe     text        NOT NULL,
    side          text        NOT NULL,
    direction     text        NOT NULL,
    requested_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    received_at   timestamptz NOT NULL,
    decided_at    timestamptz,
    decided_by    text,
    note          text        NOT NULL DEFAULT '',
    request       jsonb       NOT NULL
);

CREATE INDEX IF NOT EXISTS review_queue_requested ON review_queue (requested_at DESC, review_id);
CREATE INDEX IF NOT EXISTS review_queue_pending ON review_queue (expires_at) WHERE state = 'pending';
