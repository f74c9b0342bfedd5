"""Database adapters: TimescaleDB/PostgreSQL (asyncpg) and InfluxDB (tick store)."""
