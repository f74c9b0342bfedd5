#!/usr/bin/env bash
# Install (if missing) and start (if not running) a local InfluxDB 1.x for the integration tests.
#
# Idempotent: safe to run again and again (CI calls it before the tests).
#   * `apt-get install -y influxdb` when `influxd` is not on the PATH;
#   * start `influxd` in the background with a config that writes under $INFLUX_HOME
#     (default /var/lib/tradeswarm-influxdb) when nothing answers on $INFLUX_URL/ping;
#   * wait until `/ping` answers 204 (fails after $INFLUX_WAIT_S seconds, default 60).
set -euo pipefail

INFLUX_URL="${INFLUX_URL:-http://127.0.0.1:8086}"
INFLUX_HOME="${INFLUX_HOME:-/var/lib/tradeswarm-influxdb}"
INFLUX_WAIT_S="${INFLUX_WAIT_S:-60}"

ping_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${INFLUX_URL}/ping" 2>/dev/null || true
}

if [ "$(ping_code)" = "204" ]; then
  echo "influxdb: already answering on ${INFLUX_URL}"
  exit 0
fi

if ! command -v influxd >/dev/null 2>&1; then
  echo "influxdb: installing the Debian package"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=""; fi
  $SUDO apt-get update -qq  # a fresh machine may have no package lists yet
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y influxdb
fi

mkdir -p "${INFLUX_HOME}/meta" "${INFLUX_HOME}/data" "${INFLUX_HOME}/wal"
CONF="${INFLUX_HOME}/influxdb.conf"
cat > "${CONF}" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:8088"
[meta]
  dir = "${INFLUX_HOME}/meta"
[data]
  dir = "${INFLUX_HOME}/data"
  wal-dir = "${INFLUX_HOME}/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
[http]
  enabled = true
  bind-address = "127.0.0.1:8086"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
CONF

if ! pgrep -x influxd >/dev/null 2>&1; then
  echo "influxdb: starting influxd (data under ${INFLUX_HOME})"
  nohup influxd -config "${CONF}" >"${INFLUX_HOME}/influxd.log" 2>&1 &
fi

for _ in $(seq 1 "$((INFLUX_WAIT_S * 2))"); do
  if [ "$(ping_code)" = "204" ]; then
    echo "influxdb: ready on ${INFLUX_URL}"
    exit 0
  fi
  sleep 0.5
done
echo "influxdb: ${INFLUX_URL}/ping did not answer 204 within ${INFLUX_WAIT_S}s; see ${INFLUX_HOME}/influxd.log" >&2
exit 1
