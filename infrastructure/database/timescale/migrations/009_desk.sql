-- The AI desk (agents/desk): every decision with its role reports. desk_decisions holds the
-- decision (the full DeskDecision message in payload, the columns the API filters on beside it);
-- desk_role_outputs one row per role of a decision (status ok | unavailable | failed, the validated
-- output when ok, tokens and cost). Written once per decision (idempotent by decision_id).

CREATE TABLE IF NOT EXISTS desk_decisions (
    decision_id  uuid             PRIMARY KEY,
    ts           timestamptz      NOT NULL,
    venue        text             NOT NULL,
    symbol       text             NOT NULL,
    timeframe    text             NOT NULL,
    provider     text             NOT NULL,
    blind        boolean          NOT NULL DEFAULT false,
    action       text             NOT NULL CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    size_pct     double precision NOT NULL,
    verdict      text             NOT NULL CHECK (verdict IN ('APPROVE', 'ADJUST', 'REJECT', 'NO_TRADE')),
    reason       text             NOT NULL,
    intent_id    uuid,
    tokens_in    integer          NOT NULL DEFAULT 0,
    tokens_out   integer          NOT NULL DEFAULT 0,
    cost_usd     numeric          NOT NULL DEFAULT 0,
    payload      jsonb            NOT NULL,
    recorded_at  timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS desk_decisions_ts ON desk_decisions (ts DESC, decision_id);
CREATE INDEX IF NOT EXISTS desk_decisions_symbol_ts ON desk_decisions (symbol, ts DESC);

CREATE TABLE IF NOT EXISTS desk_role_outputs (
    decision_id     uuid        NOT NULL REFERENCES desk_decisions (decision_id) ON DELETE CASCADE,
    role            text        NOT NULL CHECK (role IN ('technical', 'sentiment', 'tokenomics', 'researcher',
                                                          'trader', 'risk_manager')),
    status          text        NOT NULL CHECK (status IN ('ok', 'unavailable', 'failed')),
    model           text        NOT NULL,
    prompt_version  text        NOT NULL,
    tokens_in       integer     NOT NULL DEFAULT 0,
    tokens_out      integer     NOT NULL DEFAULT 0,
    cost_usd        numeric     NOT NULL DEFAULT 0,
    reason          text        NOT NULL,
    output          jsonb,
    PRIMARY KEY (decision_id, role)
);
