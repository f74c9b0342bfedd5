-- The order path schema. Plain PostgreSQL; TimescaleDB upgrades the time-series tables later
-- (migrations/timescale/). Every primary key of a time-series table includes its time column,
-- which is what a hypertable needs for unique constraints.

CREATE TABLE IF NOT EXISTS orders (
    client_order_id   text PRIMARY KEY,
    intent_id         uuid        NOT NULL,
    account           text        NOT NULL,
    venue             text        NOT NULL,
    symbol            text        NOT NULL,
    side              text        NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type        text        NOT NULL,
    quantity          numeric     NOT NULL CHECK (quantity > 0),
    limit_price       numeric,
    status            text        NOT NULL,
    filled_quantity   numeric     NOT NULL DEFAULT 0,
    average_price     numeric,
    venue_order_id    text,
    reason            text        NOT NULL DEFAULT '',
    request           jsonb       NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_open_idx ON orders (status) WHERE status IN ('pending_new', 'submitted', 'accepted', 'partially_filled', 'pending_cancel');
CREATE INDEX IF NOT EXISTS orders_intent_idx ON orders (intent_id);

CREATE TABLE IF NOT EXISTS fills (
    venue           text        NOT NULL,
    fill_id         text        NOT NULL,
    ts              timestamptz NOT NULL,
    account         text        NOT NULL,
    client_order_id text        NOT NULL,
    venue_order_id  text,
    intent_id       uuid        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL CHECK (side IN ('buy', 'sell')),
    price           numeric     NOT NULL CHECK (price > 0),
    quantity        numeric     NOT NULL CHECK (quantity > 0),
    fee             numeric     NOT NULL DEFAULT 0,
    fee_currency    text        NOT NULL DEFAULT '',
    liquidity       text        NOT NULL,
    PRIMARY KEY (venue, fill_id, ts)
);
CREATE INDEX IF NOT EXISTS fills_account_ts_idx ON fills (account, ts);

CREATE TABLE IF NOT EXISTS positions (
    account        text        NOT NULL,
    venue          text        NOT NULL,
    symbol         text        NOT NULL,
    quantity       numeric     NOT NULL,
    average_price  numeric     NOT NULL,
    realized_pnl   numeric     NOT NULL,
    fees           numeric     NOT NULL,
    mark_price     numeric,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, venue, symbol)
);

CREATE TABLE IF NOT EXISTS portfolio_snapshots (
    account         text        NOT NULL,
    ts              timestamptz NOT NULL,
    cash            numeric     NOT NULL,
    equity          numeric     NOT NULL,
    peak_equity     numeric     NOT NULL,
    gross_exposure  numeric     NOT NULL,
    net_exposure    numeric     NOT NULL,
    realized_pnl    numeric     NOT NULL,
    unrealized_pnl  numeric     NOT NULL,
    fees            numeric     NOT NULL,
    drawdown        double precision NOT NULL,
    open_positions  integer     NOT NULL,
    trading_state   text        NOT NULL,
    positions       jsonb       NOT NULL,
    PRIMARY KEY (account, ts)
);

CREATE TABLE IF NOT EXISTS signals (
    intent_id  uuid        NOT NULL,
    ts         timestamptz NOT NULL,
    venue      text        NOT NULL,
    symbol     text        NOT NULL,
    payload    jsonb       NOT NULL,
    PRIMARY KEY (intent_id, ts)
);

CREATE TABLE IF NOT EXISTS decisions (
    intent_id  uuid        NOT NULL,
    stage      text        NOT NULL CHECK (stage IN ('risk', 'compliance')),
    ts         timestamptz NOT NULL,
    verdict    text        NOT NULL,
    reason     text        NOT NULL,
    payload    jsonb       NOT NULL,
    PRIMARY KEY (intent_id, stage, ts)
);

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical row). Not a hypertable: the
-- chain must stay whole (no retention), and seq is its order.
CREATE TABLE IF NOT EXISTS audit_log (
    seq        bigint      PRIMARY KEY CHECK (seq > 0),
    ts         timestamptz NOT NULL,
    kind       text        NOT NULL,
    ref        text        NOT NULL,
    payload    text        NOT NULL,
    prev_hash  char(64)    NOT NULL,
    hash       char(64)    NOT NULL UNIQUE
);
CREATE INDEX IF NOT EXISTS audit_log_ts_idx ON audit_log (ts);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE IF NOT EXISTS heartbeats (
    agent_id    text        NOT NULL,
    ts          timestamptz NOT NULL,
    agent_kind  text        NOT NULL,
    payload     jsonb       NOT NULL,
    PRIMARY KEY (agent_id, ts)
);
