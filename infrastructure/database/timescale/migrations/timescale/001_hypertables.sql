-- Applied only when the timescaledb extension is available (see migrate.py).
CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('fills', 'ts', if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('portfolio_snapshots', 'ts', if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('signals', 'ts', if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('decisions', 'ts', if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('heartbeats', 'ts', if_not_exists => TRUE, migrate_data => TRUE);

ALTER TABLE portfolio_snapshots SET (timescaledb.compress, timescaledb.compress_segmentby = 'account');
ALTER TABLE heartbeats SET (timescaledb.compress, timescaledb.compress_segmentby = 'agent_id');
ALTER TABLE signals SET (timescaledb.compress, timescaledb.compress_segmentby = 'symbol');
ALTER TABLE decisions SET (timescaledb.compress, timescaledb.compress_segmentby = 'stage');

SELECT add_compression_policy('portfolio_snapshots', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_compression_policy('heartbeats', INTERVAL '1 day', if_not_exists => TRUE);
SELECT add_compression_policy('signals', INTERVAL '30 days', if_not_exists => TRUE);
SELECT add_compression_policy('decisions', INTERVAL '30 days', if_not_exists => TRUE);

-- Fills, orders, positions and the audit log are records: never dropped by a policy.
SELECT add_retention_policy('heartbeats', INTERVAL '30 days', if_not_exists => TRUE);
SELECT add_retention_policy('portfolio_snapshots', INTERVAL '365 days', if_not_exists => TRUE);
