-- The LLM client (issue 14): the daily token budget shared by every process, and the call log.
-- Plain PostgreSQL.

-- One row per UTC day: the budget in force and the tokens used (settled usage plus open
-- reservations). A reservation increments `used` in the same statement that checks the budget
-- (INSERT ... ON CONFLICT DO UPDATE ... WHERE used + n <= budget, which locks the row), so
-- processes racing for the last tokens can never take more than the budget together.
CREATE TABLE IF NOT EXISTS llm_budget_days (
    day     date   PRIMARY KEY,
    budget  bigint NOT NULL CHECK (budget >= 0),
    used    bigint NOT NULL CHECK (used >= 0)
);

-- One row per reservation: what was held, and once settled, the real usage and estimated cost.
CREATE TABLE IF NOT EXISTS llm_budget_ledger (
    reservation_id  uuid           PRIMARY KEY,
    day             date           NOT NULL,
    role            text           NOT NULL,
    model           text           NOT NULL,
    reserved        bigint         NOT NULL CHECK (reserved >= 0),
    tokens_in       bigint         CHECK (tokens_in >= 0),
    tokens_out      bigint         CHECK (tokens_out >= 0),
    cost_usd        numeric(20, 10),
    reserved_at     timestamptz    NOT NULL DEFAULT now(),
    settled_at      timestamptz
);
CREATE INDEX IF NOT EXISTS llm_budget_ledger_day_idx ON llm_budget_ledger (day, role, model);

-- Every model call (and every question refused for budget): the desk's audit of what it asked,
-- what it spent and what came back. `agent` is the desk role; never the API key, never the full
-- prompt (summaries only). `record_key` makes a retried write idempotent.
CREATE TABLE IF NOT EXISTS agent_logs (
    record_key      text             PRIMARY KEY,
    ts              timestamptz      NOT NULL,
    decision_id     text             NOT NULL,
    agent           text             NOT NULL,
    symbol          text             NOT NULL,
    provider        text             NOT NULL,
    model           text             NOT NULL,
    tokens_in       integer          NOT NULL CHECK (tokens_in >= 0),
    tokens_out      integer          NOT NULL CHECK (tokens_out >= 0),
    cost_usd        numeric(20, 10)  NOT NULL CHECK (cost_usd >= 0),
    latency_s       double precision NOT NULL CHECK (latency_s >= 0),
    outcome         text             NOT NULL,
    input_summary   text             NOT NULL,
    output_summary  text             NOT NULL,
    error           text
);
CREATE INDEX IF NOT EXISTS agent_logs_ts_idx ON agent_logs (ts);
CREATE INDEX IF NOT EXISTS agent_logs_decision_idx ON agent_logs (decision_id);
