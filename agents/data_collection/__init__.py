"""The data collection agent: closed candles and trades from a venue (or replay / synthetic) to the
bus and to InfluxDB, gap-free, duplicate-free and ordered."""
