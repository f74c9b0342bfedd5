-- Crash safety and control (issues #19, #20). Plain PostgreSQL.

-- The paper venue's book: it plays an exchange, which outlives the execution process. One state row
-- per paper venue (id prefix and sequence of venue order ids, kill switch, nets, last closes,
-- protective exits, the spot account's cash as an exact decimal string) and one row per order (its
-- JSON document). Venue order ids are unique.
CREATE TABLE IF NOT EXISTS paper_venue_state (
    venue        text        PRIMARY KEY,
    id_prefix    text        NOT NULL,
    seq          bigint      NOT NULL CHECK (seq >= 0),
    halted       boolean     NOT NULL,
    net          jsonb       NOT NULL,
    last_close   jsonb       NOT NULL,
    protections  jsonb       NOT NULL,
    cash         text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS paper_venue_orders (
    row_id           bigserial,
    venue            text        NOT NULL,
    client_order_id  text        NOT NULL,
    venue_order_id   text        NOT NULL,
    status           text        NOT NULL,
    body             jsonb       NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, client_order_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS paper_venue_orders_venue_id_idx ON paper_venue_orders (venue, venue_order_id);

-- A fill is identified by its order too: venues number trades (and orders) per symbol, so a fill id
-- alone can repeat across orders of different symbols.
ALTER TABLE fills DROP CONSTRAINT IF EXISTS fills_pkey;
ALTER TABLE fills ADD CONSTRAINT fills_pkey PRIMARY KEY (venue, client_order_id, fill_id, ts);

-- Fills stored but not yet confirmed on the bus: a restarted execution agent publishes them before it
-- consumes anything (the fill outbox), so every fill reaches the bus even when the process died
-- between storing and publishing it.
ALTER TABLE fills ADD COLUMN IF NOT EXISTS published boolean NOT NULL DEFAULT true;
ALTER TABLE fills ALTER COLUMN published SET DEFAULT false;
CREATE INDEX IF NOT EXISTS fills_unpublished_idx ON fills (account) WHERE NOT published;

-- The orchestrator's intended trading state (ACTIVE / PAUSED / HALTED): what the operator asked for,
-- kept across orchestrator restarts and reconciled with what the agents report.
CREATE TABLE IF NOT EXISTS trading_intent (
    scope       text        PRIMARY KEY,
    mode        text        NOT NULL CHECK (mode IN ('active', 'paused', 'halted')),
    command_id  uuid,
    reason      text        NOT NULL DEFAULT '',
    issued_by   text        NOT NULL DEFAULT '',
    changed_at  timestamptz NOT NULL
);

-- Risk decides each intent once: the first decision per intent id, with the message that carried the
-- intent (a redelivery of that message publishes the same decision again; another message with the
-- same intent id is a duplicate and is not decided again, even after a restart).
CREATE TABLE IF NOT EXISTS risk_intents (
    intent_id   uuid        PRIMARY KEY,
    message_id  uuid        NOT NULL,
    decision    jsonb       NOT NULL,
    decided_at  timestamptz NOT NULL
);
