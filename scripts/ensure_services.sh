#!/usr/bin/env bash
# Make sure the local services the tests talk to are installed and running on loopback:
# RabbitMQ (5672), PostgreSQL (5432), InfluxDB 1.x (8086), plus the `promtool`/`prometheus`
# binaries the deployment tests run, and Chromium for the dashboard's browser tests. Idempotent; starts only what is down. Needs root for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

# --- packages the tests need that a fresh machine may lack --------------------------------------
command -v promtool >/dev/null 2>&1 || apt_install prometheus
command -v kubectl >/dev/null 2>&1 || apt_install kubernetes-client  # kubectl (with kustomize) for the k8s render tests
# Chromium for the dashboard's browser tests (Playwright drives Debian's package: it cannot download its own)
[ -x /usr/bin/chromium ] || apt_install chromium

# --- RabbitMQ -------------------------------------------------------------------------------------
# Every broker command is bounded: a node that is up with its application stopped (a test or a
# killed run left `rabbitmqctl stop_app` behind) makes `await_startup` wait forever.
rmq() { timeout 60 rabbitmqctl "$@"; }  # node up (ping) is not app running (check_running)
if ! timeout 60 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
  echo "services: starting RabbitMQ"
  as_root rabbitmq-server -detached
fi
rabbit_running() { timeout 30 rabbitmq-diagnostics -q check_running >/dev/null 2>&1; }
deadline=$((SECONDS + 180)); app_started=0
until rabbit_running; do
  if [ "$SECONDS" -ge "$deadline" ]; then echo "services: RabbitMQ did not come up" >&2; exit 1; fi
  if [ "$app_started" -eq 0 ] && [ "$SECONDS" -ge $((deadline - 165)) ] && timeout 60 rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    echo "services: the RabbitMQ node is up but its application is stopped: starting it"
    rmq start_app >/dev/null 2>&1 || true
    app_started=1
  fi
  sleep 1
done
echo "services: RabbitMQ is up"

# --- PostgreSQL -----------------------------------------------------------------------------------
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "services: starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
pg_isready -h 127.0.0.1 -p 5432 -q
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'tradeswarm'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE tradeswarm"
echo "services: PostgreSQL is up"

# --- InfluxDB 1.x ---------------------------------------------------------------------------------
bash scripts/install_influxdb.sh
